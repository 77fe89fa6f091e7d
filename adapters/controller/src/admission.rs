//! Whether a run may start: the per-namespace limit on running runs and the
//! quota pre-check (the run's peak requests against the namespace's
//! ResourceQuota), with the reason written on the run while it waits.

use c8s_pipeline_model::resources::{ResourceList, check_quota};
use k8s_openapi::jiff::Timestamp;

use crate::settings::{Reconciled, Settings};
use crate::status::set_condition;
use crate::steps::RunSteps;

/// What a reconcile knows of the namespace beyond the run itself.
#[derive(Clone, Debug, Default)]
pub struct Admission {
    /// Other runs of the namespace in phase Running.
    pub running_in_namespace: usize,
    /// The namespace's ResourceQuota `hard` limits (the tightest of each).
    pub quota: Option<ResourceList>,
}

/// Whether the run may start now; otherwise records why it waits.
pub(crate) fn admit(
    steps: &RunSteps,
    admission: &Admission,
    settings: &Settings,
    out: &mut Reconciled,
    now: Timestamp,
) -> bool {
    if admission.running_in_namespace >= settings.max_running_per_namespace {
        // No count of the runs running in the message: the count changes
        // while the run waits, and each change was one more status write of
        // a queued run (457 for 5,020 runs in the controller benchmark's
        // queue), where the reason does not change at all.
        let message = format!(
            "the namespace's limit of {} running runs is reached; the run starts when one ends",
            settings.max_running_per_namespace
        );
        set_condition(&mut out.status, "Queued", "True", "NamespaceLimit", &message, now);
        out.requeue_after = Some(settings.poll);
        return false;
    }
    if let Some(quota) = &admission.quota
        && let Err(e) = check_quota(&steps.peak_requests, quota)
    {
        set_condition(
            &mut out.status,
            "Queued",
            "True",
            "QuotaExceeded",
            &e.to_string(),
            now,
        );
        out.requeue_after = Some(settings.poll);
        return false;
    }
    out.status.conditions.retain(|c| c.type_ != "Queued");
    true
}

//! The bounds on a pod that has not started, as `c8s run` keeps them: a
//! cause that will not resolve by itself (a missing claim, Secret or
//! ConfigMap, no node matching the selector) ends the attempt at once, and
//! a pod unschedulable past [`Settings::capacity_wait`] or not started past
//! [`Settings::start_timeout`] ends it naming what it waits for. Both
//! runners read the same rules from the kube adapter
//! ([`c8s_kube::unresolvable`], [`c8s_kube::waited_too_long`]); the
//! reconcile measures the wait from the pod's creation, so it needs no
//! memory between passes.

use c8s_kube::{
    Assessment, Cluster, EVENTS_AFTER, FinishedPod, ObjectEvent, ObjectKind, ObjectRef, TerminationReason,
    unresolvable, waited_too_long,
};
use k8s_openapi::jiff::Timestamp;

use crate::observe::SeenObject;
use crate::settings::Settings;

/// What the bounds make of a step's latest object.
#[derive(Debug)]
pub(crate) enum Waiting {
    /// Its pod is not waiting (it runs, ended, or has no pod yet).
    No,
    /// Its pod waits; look again within this time (a bound, or when its
    /// Events are first read, falls then).
    Until(std::time::Duration),
    /// Its pod waited past a bound, or for a cause that will not resolve:
    /// the attempt ended so, a failure without an exit code, as `c8s run`
    /// ends it.
    Ended(Assessment),
}

/// What the bounds make of `seen` at `now`. Reads the pod's Events only
/// once a scheduled pod has waited [`EVENTS_AFTER`], or when an
/// unschedulable pod's `PodScheduled` condition names a cause that will
/// not resolve (to see whether the cluster autoscaler is adding a node).
pub(crate) async fn waiting<C: Cluster>(
    cluster: &C,
    seen: &SeenObject,
    settings: &Settings,
    now: Timestamp,
) -> Waiting {
    let capacity = match &seen.assessment {
        Assessment::WaitingForCapacity(_) => true,
        Assessment::Starting => false,
        _ => return Waiting::No,
    };
    let waited = seen
        .created_at
        .and_then(|at| std::time::Duration::try_from(now.duration_since(at)).ok())
        .unwrap_or_default();
    let pod = if seen.observation.pod_name.is_empty() {
        seen.object.clone()
    } else {
        ObjectRef::new(ObjectKind::Pod, seen.observation.pod_name.clone())
    };
    let events = if let Assessment::WaitingForCapacity(message) = &seen.assessment {
        let scheduler = ObjectEvent {
            type_: "Warning".into(),
            reason: "FailedScheduling".into(),
            message: message.clone(),
        };
        if unresolvable(std::slice::from_ref(&scheduler)).is_some() {
            // The scheduler's words say it will never fit; its Events may
            // say the cluster autoscaler is adding a node that will.
            let mut events = cluster.events(&pod).await.unwrap_or_default();
            events.push(scheduler);
            events
        } else {
            vec![scheduler]
        }
    } else if waited >= EVENTS_AFTER {
        // Events only explain; the bound still ends the wait.
        cluster.events(&pod).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let bound = if capacity {
        settings.capacity_wait
    } else {
        settings.start_timeout
    };
    let message = match unresolvable(&events) {
        Some(cause) => format!("{pod} cannot start: {cause}"),
        None if waited >= bound => waited_too_long(capacity, bound, &seen.observation, &events),
        None => {
            let mut next = bound - waited;
            if !capacity && waited < EVENTS_AFTER {
                next = next.min(EVENTS_AFTER - waited);
            }
            return Waiting::Until(next);
        }
    };
    Waiting::Ended(Assessment::Finished(FinishedPod {
        exit_code: None,
        reason: TerminationReason::Error,
        message,
        sidecars_still_running: false,
    }))
}

//! What the kube-rs backed files share: kube-rs errors turned into ours,
//! and how a Job's pods are found and its outcome is read.

use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;

use crate::error::{Error, Result};
use crate::observe::{PodObservation, PodPhase};

/// The label the Job controller puts on a Job's pods.
pub(crate) const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// Job conditions after which the Job's outcome cannot change; the first two
/// are set before the Job's pods are terminated (Kubernetes 1.31+).
pub(crate) const JOB_FINAL_CONDITIONS: [&str; 4] =
    ["FailureTarget", "SuccessCriteriaMet", "Failed", "Complete"];

/// Turns a kube-rs error into ours, keeping the API server's status.
pub(crate) fn from_kube(operation: &'static str, object: &str, error: kube::Error) -> Error {
    let object = object.to_owned();
    match error {
        kube::Error::Api(status) => Error::Api {
            operation,
            object,
            code: status.code,
            reason: status.reason,
            message: status.message,
        },
        kube::Error::HyperError(e) => Error::Connection {
            operation,
            object,
            source: Box::new(e),
        },
        kube::Error::Service(e) => Error::Connection {
            operation,
            object,
            source: e,
        },
        kube::Error::ReadEvents(e) => Error::Connection {
            operation,
            object,
            source: Box::new(e),
        },
        other => Error::Protocol {
            operation,
            object,
            detail: other.to_string(),
        },
    }
}

/// What a Job's status says once its pod is gone: failed (with the Job's
/// reason, e.g. `DeadlineExceeded`), complete, or gone; `None` while the Job
/// exists without a verdict: its controller replaces the pod (a pod failure
/// policy that ignores disruptions), so the runner must not retry as well.
pub(crate) async fn job_verdict(jobs: &Api<Job>, name: &str) -> Result<Option<PodObservation>> {
    let job = jobs
        .get_opt(name)
        .await
        .map_err(|e| from_kube("get job", name, e))?;
    let Some(job) = job else {
        return Ok(Some(PodObservation::gone(name)));
    };
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Some(PodObservation::gone(name)));
    }
    let conditions = job.status.and_then(|s| s.conditions).unwrap_or_default();
    let holds = |type_: &str| conditions.iter().find(|c| c.type_ == type_ && c.status == "True");
    let mut observation = PodObservation::gone(name);
    // FailureTarget/SuccessCriteriaMet come first and are already final
    // (https://kubernetes.io/docs/concepts/workloads/controllers/job/#termination-of-job-pods).
    if let Some(failed) = holds("FailureTarget").or_else(|| holds("Failed")) {
        observation.phase = PodPhase::Failed;
        observation.reason = failed.reason.clone().unwrap_or_default();
        observation.message = failed.message.clone().unwrap_or_default();
    } else if holds("SuccessCriteriaMet")
        .or_else(|| holds("Complete"))
        .is_some()
    {
        observation.phase = PodPhase::Succeeded;
    } else {
        return Ok(None);
    }
    Ok(Some(observation))
}

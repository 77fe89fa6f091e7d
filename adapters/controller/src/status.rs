//! How a reconcile writes what it saw into the run's status: each step's
//! phase, object, exit code, reason and message (never a secret value: they
//! come from container states and pod conditions), and the run's conditions.

use c8s_kube::{Assessment, AttemptFailure, ObjectKind, ObjectRef, TerminationReason};
use c8s_pipeline_model::scheduler::Observed;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::crd::{Condition, PipelineRunStatus, StepPhase, StepRunStatus};

/// Records `assessment` of attempt `attempt` on `status` and returns what the
/// scheduler should see. `retry` is the retry rule
/// ([`c8s_kube::RetryPolicy::retry_after`]): when, in milliseconds since the
/// run started, a failed attempt gets another, if it does.
pub(crate) fn read_assessment(
    assessment: &Assessment,
    attempt: u32,
    retry: impl FnOnce(AttemptFailure) -> Option<u64>,
    now_ms: u64,
    now: &str,
    status: &mut StepRunStatus,
) -> Observed {
    match assessment {
        Assessment::Starting | Assessment::WaitingForCapacity(_) => {
            status.phase = StepPhase::Running;
            if let Assessment::WaitingForCapacity(m) = assessment {
                status.reason = "WaitingForCapacity".into();
                status.message = m.clone();
            }
            Observed::Running { attempt, since: None }
        }
        Assessment::Running => {
            status.phase = StepPhase::Running;
            status.reason.clear();
            status.message.clear();
            Observed::Running {
                attempt,
                since: Some(now_ms),
            }
        }
        Assessment::Finished(pod) => {
            status.exit_code = pod.exit_code;
            status.reason = pod.reason.to_string();
            status.message = pod.message.clone();
            if status.completion_time.is_none() {
                status.completion_time = Some(now.to_owned());
            }
            // A pod that ended before any pass saw it run (a quick step, a
            // busy runner) started no later than now: a step that ran has a
            // start time (`c8s run`'s status file always said one).
            if status.start_time.is_none() {
                status.start_time = Some(now.to_owned());
            }
            // The rule of `c8s run`: exit 0 is not enough (e.g. outputs not saved).
            if pod.succeeded() {
                status.phase = StepPhase::Succeeded;
                Observed::Succeeded
            } else {
                let retry_at = retry(AttemptFailure::Ended(pod.reason));
                status.phase = if retry_at.is_some() {
                    StepPhase::Running
                } else {
                    StepPhase::Failed
                };
                Observed::Failed {
                    attempt,
                    retry_at,
                    errored: pod.reason.errored(),
                }
            }
        }
        Assessment::Disrupted(reason, message) => {
            let fault = match reason {
                TerminationReason::ImagePullBackOff => AttemptFailure::ImagePull,
                _ => AttemptFailure::Disruption,
            };
            let retry_at = retry(fault);
            status.reason = reason.to_string();
            status.message = message.clone();
            status.phase = if retry_at.is_some() {
                StepPhase::Running
            } else {
                StepPhase::Failed
            };
            Observed::Failed {
                attempt,
                retry_at,
                errored: true,
            }
        }
    }
}

pub(crate) fn set_object_name(status: &mut StepRunStatus, object: &ObjectRef) {
    match object.kind {
        ObjectKind::Pod => status.pod = Some(object.name.clone()),
        ObjectKind::Job => status.job = Some(object.name.clone()),
    }
}

/// Sets condition `type_`, keeping its transition time when the status is
/// unchanged; each carries the generation it was computed from.
pub(crate) fn set_condition(
    status: &mut PipelineRunStatus,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let condition = Condition {
        type_: type_.to_owned(),
        status: value.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_transition_time: Time(now),
        observed_generation: status.observed_generation,
    };
    match status.conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) if existing.status == value => {
            existing.reason = condition.reason;
            existing.message = condition.message;
            existing.observed_generation = condition.observed_generation;
        }
        Some(existing) => *existing = condition,
        None => status.conditions.push(condition),
    }
}

pub(crate) fn failed_steps(status: &PipelineRunStatus) -> String {
    let failed: Vec<String> = status
        .steps
        .iter()
        .filter(|s| s.phase == StepPhase::Failed)
        .map(|s| {
            // Each failure with its cause, so the condition alone says why
            // (`container main: CreateContainerConfigError: secret "x" not found`).
            let mut said = s.name.clone();
            if !s.reason.is_empty() {
                said = format!("{said} ({}", s.reason);
                if let Some(code) = s.exit_code {
                    said = format!("{said}, exit {code}");
                }
                said.push(')');
            }
            if !s.message.is_empty() {
                said = format!("{said}: {}", s.message);
            }
            said
        })
        .collect();
    format!("failed steps: {}", failed.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_first_seen_ended_still_gets_a_start_time() {
        let mut status = StepRunStatus::default();
        let ended = Assessment::Finished(c8s_kube::FinishedPod {
            exit_code: Some(0),
            reason: TerminationReason::Completed,
            message: String::new(),
            sidecars_still_running: false,
        });
        let seen = read_assessment(&ended, 0, |_| None, 5_000, "2026-01-01T00:00:05Z", &mut status);
        assert_eq!(seen, Observed::Succeeded);
        assert_eq!(status.start_time.as_deref(), Some("2026-01-01T00:00:05Z"));
        assert_eq!(status.completion_time.as_deref(), Some("2026-01-01T00:00:05Z"));
        // A start seen earlier stands.
        let mut status = StepRunStatus {
            start_time: Some("2026-01-01T00:00:01Z".into()),
            ..StepRunStatus::default()
        };
        read_assessment(&ended, 0, |_| None, 5_000, "2026-01-01T00:00:05Z", &mut status);
        assert_eq!(status.start_time.as_deref(), Some("2026-01-01T00:00:01Z"));
    }

    #[test]
    fn the_failure_condition_says_each_failed_steps_cause() {
        let step = |name: &str, phase, reason: &str, exit_code, message: &str| StepRunStatus {
            name: name.to_owned(),
            phase,
            reason: reason.to_owned(),
            exit_code,
            message: message.to_owned(),
            ..StepRunStatus::default()
        };
        let status = PipelineRunStatus {
            steps: vec![
                step("build", StepPhase::Succeeded, "Completed", Some(0), ""),
                step(
                    "test",
                    StepPhase::Failed,
                    "Error",
                    None,
                    "container main: CreateContainerConfigError: secret \"x\" not found",
                ),
                step("lint", StepPhase::Failed, "Error", Some(2), ""),
            ],
            ..PipelineRunStatus::default()
        };
        assert_eq!(
            failed_steps(&status),
            "failed steps: test (Error): container main: CreateContainerConfigError: secret \"x\" not found; lint (Error, exit 2)"
        );
    }
}

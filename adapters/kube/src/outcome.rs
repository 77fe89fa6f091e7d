//! A step's result and the run status record, serialisable as JSON.

use c8s_pipeline_model::RetryCause;
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Why a step's main container (or its pod) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TerminationReason {
    /// Exit code 0.
    Completed,
    /// A non-zero exit code, or a pod that failed without one.
    Error,
    /// The kernel killed `main` for exceeding its memory limit.
    #[serde(rename = "OOMKilled")]
    OomKilled,
    /// The step's timeout (or the pod's `activeDeadlineSeconds`) ran out.
    DeadlineExceeded,
    /// The image could not be pulled (after the retry limit).
    ImagePullBackOff,
    /// The pod was evicted or disrupted (after the retry limit).
    Evicted,
    /// The pod disappeared before `main` finished.
    Lost,
    /// The API server refused the pod (403, 409, 422) or kept failing.
    Rejected,
    /// The run was cancelled or failed fast while the step ran.
    Cancelled,
}

impl TerminationReason {
    /// Which of the user's retry causes an attempt that ended so is, if any
    /// (a timeout or a refused object is never retried).
    pub fn retry_cause(self) -> Option<RetryCause> {
        match self {
            TerminationReason::Error | TerminationReason::OomKilled => Some(RetryCause::Error),
            TerminationReason::ImagePullBackOff | TerminationReason::Evicted | TerminationReason::Lost => {
                Some(RetryCause::Infrastructure)
            }
            _ => None,
        }
    }

    /// Whether an attempt that failed so *errored* rather than failed, as
    /// Concourse tells them apart for `on_error` and `on_failure`: anything
    /// but `main`'s own non-zero exit (an OOM kill is one) is an error — its
    /// timeout, an image that could not be pulled, a disruption, a refusal.
    pub fn errored(self) -> bool {
        !matches!(
            self,
            TerminationReason::Completed | TerminationReason::Error | TerminationReason::OomKilled
        )
    }
}

/// The result of one step: `main`'s exit code and reason, and when it ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepOutcome {
    /// `main`'s exit code, when it terminated.
    pub exit_code: Option<i32>,
    /// Why it ended.
    pub reason: TerminationReason,
    /// Details for a person (scheduler, kubelet or API server message).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When `main` was first seen running (cluster clock).
    pub started_at: Option<Timestamp>,
    /// When the result was recorded (cluster clock).
    pub finished_at: Option<Timestamp>,
}

impl StepOutcome {
    /// Whether the step succeeded: `main` exited 0 *and* the rest of the
    /// step did its part (reason `Completed`; not when `artifact-helper`
    /// could not save the outputs, say). The one rule of `c8s run` and the
    /// controller ([`crate::FinishedPod::succeeded`]).
    pub fn succeeded(&self) -> bool {
        succeeded(self.exit_code, self.reason)
    }
}

/// [`StepOutcome::succeeded`] of a step that ended with `exit_code` and `reason`.
pub(crate) fn succeeded(exit_code: Option<i32>, reason: TerminationReason) -> bool {
    reason == TerminationReason::Completed && exit_code.unwrap_or(0) == 0
}

impl TerminationReason {
    /// What happened to a step that ended so without an exit code of `main`.
    fn without_exit_code(self) -> &'static str {
        match self {
            TerminationReason::Completed | TerminationReason::Error | TerminationReason::OomKilled => {
                "main never ran"
            }
            TerminationReason::DeadlineExceeded => "killed by the deadline",
            TerminationReason::ImagePullBackOff => "never started: its image could not be pulled",
            TerminationReason::Evicted => "its pod was evicted",
            TerminationReason::Lost => "its pod disappeared",
            TerminationReason::Rejected => "never started: the API server refused its pod",
            TerminationReason::Cancelled => "stopped before it ended",
        }
    }
}

impl std::fmt::Display for TerminationReason {
    /// The reason as the status record spells it (`OOMKilled`, `DeadlineExceeded`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TerminationReason::Completed => "Completed",
            TerminationReason::Error => "Error",
            TerminationReason::OomKilled => "OOMKilled",
            TerminationReason::DeadlineExceeded => "DeadlineExceeded",
            TerminationReason::ImagePullBackOff => "ImagePullBackOff",
            TerminationReason::Evicted => "Evicted",
            TerminationReason::Lost => "Lost",
            TerminationReason::Rejected => "Rejected",
            TerminationReason::Cancelled => "Cancelled",
        })
    }
}

impl std::fmt::Display for StepOutcome {
    /// For a person: `Completed, exit 0`; `Error, exit 2`; without an exit
    /// code, what happened instead (`DeadlineExceeded, killed by the
    /// deadline`); then the cluster's message, if any (`container main:
    /// CreateContainerConfigError: secret "x" not found`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.exit_code {
            Some(code) => write!(f, "{}, exit {code}", self.reason)?,
            None => write!(f, "{}, {}", self.reason, self.reason.without_exit_code())?,
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// The state of a whole run: of `c8s run`'s status record, and the phase
/// of a `PipelineRun` in the cluster (the controller's `RunPhase`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunState {
    /// Not started yet (in the cluster: queued behind the namespace's limit
    /// or a quota).
    #[default]
    Pending,
    /// Steps are running.
    Running,
    /// Every step succeeded.
    Succeeded,
    /// A step failed, or the run's timeout ran out.
    Failed,
    /// The run was cancelled (in the cluster: `spec.cancelled` was set).
    Cancelled,
}

impl RunState {
    /// Every state, in the order a run can pass through them.
    pub const ALL: [RunState; 5] = [
        RunState::Pending,
        RunState::Running,
        RunState::Succeeded,
        RunState::Failed,
        RunState::Cancelled,
    ];

    /// Whether the run has ended.
    pub fn is_finished(self) -> bool {
        matches!(self, RunState::Succeeded | RunState::Failed | RunState::Cancelled)
    }

    /// The state's name, as it is serialised (`Pending`, `Running`...).
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "Pending",
            RunState::Running => "Running",
            RunState::Succeeded => "Succeeded",
            RunState::Failed => "Failed",
            RunState::Cancelled => "Cancelled",
        }
    }
}

/// The state of one step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepState {
    /// Waiting for its dependencies or a parallelism slot.
    #[default]
    Pending,
    /// Its pod exists but cannot be scheduled yet ("waiting for capacity").
    WaitingForCapacity,
    /// Its pod exists (starting or running).
    Running,
    /// `main` exited 0.
    Succeeded,
    /// `main` failed, or the step could not run.
    Failed,
    /// Not run because a dependency failed or was skipped.
    Skipped,
    /// Stopped or never started because the run was cancelled, failed fast or timed out.
    Cancelled,
}

impl StepState {
    /// Whether the state is final.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            StepState::Succeeded | StepState::Failed | StepState::Skipped | StepState::Cancelled
        )
    }
}

/// One step in the run status record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepStatus {
    /// The step's name.
    pub name: String,
    /// Its state.
    pub state: StepState,
    /// How many pods were created for it (1 + retries of both kinds).
    pub attempts: u32,
    /// Of those, retries the step's own `retries` asked for.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    /// Of those, the runner's retries of transient faults (evictions, image pulls).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub runner_retries: u32,
    /// The last object created for it.
    pub object: Option<String>,
    /// While waiting for capacity: the scheduler's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_reason: Option<String>,
    /// When its first pod was created.
    pub started_at: Option<Timestamp>,
    /// When it reached a final state.
    pub finished_at: Option<Timestamp>,
    /// Its result, once it ran.
    pub outcome: Option<StepOutcome>,
    /// Why it was skipped or cancelled, or what went wrong without an outcome.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Its logs in the archive, one per attempt and container
    /// ([`crate::RunOptions::archive`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub archived_logs: Vec<ArchivedLogRef>,
    /// Why some of its logs are not in the archive (could not be masked, or
    /// the upload failed); the step's result does not depend on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_archive_error: Option<String>,
}

/// One archived log of a step: which attempt and container, and where it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedLogRef {
    /// The attempt, 0-based.
    pub attempt: u32,
    /// The container.
    pub container: String,
    /// The object's key in the bucket.
    pub key: String,
    /// The object's URL (fetching it needs the archive's credentials).
    pub url: String,
    /// Its size in bytes.
    pub bytes: u64,
}

impl StepStatus {
    /// A pending step called `name`.
    pub fn pending(name: &str) -> Self {
        StepStatus {
            name: name.to_owned(),
            state: StepState::Pending,
            attempts: 0,
            retries: 0,
            runner_retries: 0,
            object: None,
            waiting_reason: None,
            started_at: None,
            finished_at: None,
            outcome: None,
            message: String::new(),
            archived_logs: Vec::new(),
            log_archive_error: None,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The run status record: what `c8s run --status-file` writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStatus {
    /// The run's id (the `c8s.dev/run` label value).
    pub run_id: String,
    /// The run's state.
    pub state: RunState,
    /// When the run started (cluster clock).
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// Why it failed or was cancelled, for a person.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Every step, in input order.
    pub steps: Vec<StepStatus>,
}

impl RunStatus {
    /// The status of the step called `name`.
    pub fn step(&self, name: &str) -> Option<&StepStatus> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// The record as pretty JSON.
    pub fn to_json(&self) -> String {
        // A struct of strings, numbers and timestamps always serialises.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(exit_code: Option<i32>, reason: TerminationReason, message: &str) -> StepOutcome {
        StepOutcome {
            exit_code,
            reason,
            message: message.to_owned(),
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn an_outcome_reads_as_words_not_as_rust_debug_output() {
        assert_eq!(
            outcome(Some(0), TerminationReason::Completed, "").to_string(),
            "Completed, exit 0"
        );
        assert_eq!(
            outcome(Some(2), TerminationReason::Error, "").to_string(),
            "Error, exit 2"
        );
        assert_eq!(
            outcome(
                None,
                TerminationReason::Error,
                "container main: CreateContainerConfigError: secret \"x\" not found"
            )
            .to_string(),
            "Error, main never ran: container main: CreateContainerConfigError: secret \"x\" not found"
        );
        assert_eq!(
            outcome(None, TerminationReason::DeadlineExceeded, "").to_string(),
            "DeadlineExceeded, killed by the deadline"
        );
        assert_eq!(
            outcome(None, TerminationReason::Evicted, "").to_string(),
            "Evicted, its pod was evicted"
        );
    }

    #[test]
    fn a_reason_is_spelled_as_in_the_status_record() {
        for reason in [
            TerminationReason::Completed,
            TerminationReason::Error,
            TerminationReason::OomKilled,
            TerminationReason::DeadlineExceeded,
            TerminationReason::ImagePullBackOff,
            TerminationReason::Evicted,
            TerminationReason::Lost,
            TerminationReason::Rejected,
            TerminationReason::Cancelled,
        ] {
            let json = serde_json::to_string(&reason).unwrap_or_default();
            assert_eq!(json, format!("\"{reason}\""));
        }
    }
}

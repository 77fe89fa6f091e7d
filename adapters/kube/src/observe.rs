//! What c8s reads from a pod's status, and what that means for a step.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde::{Deserialize, Serialize};

use crate::outcome::{StepOutcome, TerminationReason};

pub use c8s_pipeline_model::contract::MAIN as MAIN_CONTAINER;

/// A pod's phase, plus `Gone` for a pod that no longer exists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodPhase {
    /// Accepted, not all containers running (includes "no pod yet" for a Job).
    #[default]
    Pending,
    /// Bound to a node, at least one container running.
    Running,
    /// All containers terminated with success.
    Succeeded,
    /// All containers terminated, at least one in failure.
    Failed,
    /// The kubelet cannot be reached.
    Unknown,
    /// The pod was deleted.
    Gone,
}

/// One container's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerObservation {
    /// No status reported yet.
    #[default]
    Unknown,
    /// Waiting, e.g. `ContainerCreating`, `ImagePullBackOff`, `ErrImagePull`.
    Waiting {
        /// The kubelet's reason.
        reason: String,
        /// The kubelet's message.
        message: String,
    },
    /// Running.
    Running,
    /// Terminated.
    Terminated {
        /// The process's exit code.
        exit_code: i32,
        /// The kubelet's reason: `Completed`, `Error`, `OOMKilled`, ...
        reason: String,
    },
}

/// A pod condition, e.g. `PodScheduled=False` reason `Unschedulable`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodCondition {
    /// `PodScheduled`, `Ready`, `DisruptionTarget`, ...
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// The machine-readable reason.
    pub reason: String,
    /// The human-readable message.
    pub message: String,
}

/// The part of a pod's status c8s acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodObservation {
    /// The pod's name (empty while a Job has no pod yet).
    pub pod_name: String,
    /// The pod's phase.
    pub phase: PodPhase,
    /// `status.reason`, e.g. `Evicted`, `DeadlineExceeded`.
    pub reason: String,
    /// `status.message`.
    pub message: String,
    /// The `main` container.
    pub main: ContainerObservation,
    /// Every other container (native sidecars and legacy sidecars), by name.
    pub sidecars: Vec<(String, ContainerObservation)>,
    /// The pod's conditions.
    pub conditions: Vec<PodCondition>,
}

impl PodObservation {
    /// A pod that no longer exists.
    pub fn gone(pod_name: &str) -> Self {
        PodObservation {
            pod_name: pod_name.to_owned(),
            phase: PodPhase::Gone,
            ..Default::default()
        }
    }

    /// Reads a pod's status.
    pub fn from_pod(pod: &Pod) -> Self {
        let mut observation = PodObservation {
            pod_name: pod.metadata.name.clone().unwrap_or_default(),
            ..Default::default()
        };
        let Some(status) = pod.status.as_ref() else {
            return observation;
        };
        observation.phase = match status.phase.as_deref() {
            Some("Running") => PodPhase::Running,
            Some("Succeeded") => PodPhase::Succeeded,
            Some("Failed") => PodPhase::Failed,
            Some("Unknown") => PodPhase::Unknown,
            _ => PodPhase::Pending,
        };
        observation.reason = status.reason.clone().unwrap_or_default();
        observation.message = status.message.clone().unwrap_or_default();
        let all = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for container in all {
            let state = container_state(container);
            if container.name == MAIN_CONTAINER {
                observation.main = state;
            } else {
                observation.sidecars.push((container.name.clone(), state));
            }
        }
        for condition in status.conditions.iter().flatten() {
            observation.conditions.push(PodCondition {
                type_: condition.type_.clone(),
                status: condition.status.clone(),
                reason: condition.reason.clone().unwrap_or_default(),
                message: condition.message.clone().unwrap_or_default(),
            });
        }
        observation
    }

    /// The condition of `type_`, if reported.
    pub fn condition(&self, type_: &str) -> Option<&PodCondition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Whether any sidecar is still running (legacy mode after `main` ended).
    pub fn sidecars_running(&self) -> bool {
        self.sidecars
            .iter()
            .any(|(_, state)| *state == ContainerObservation::Running)
    }
}

fn container_state(status: &ContainerStatus) -> ContainerObservation {
    let Some(state) = status.state.as_ref() else {
        return ContainerObservation::Unknown;
    };
    if let Some(t) = &state.terminated {
        ContainerObservation::Terminated {
            exit_code: t.exit_code,
            reason: t.reason.clone().unwrap_or_default(),
        }
    } else if state.running.is_some() {
        ContainerObservation::Running
    } else if let Some(w) = &state.waiting {
        ContainerObservation::Waiting {
            reason: w.reason.clone().unwrap_or_default(),
            message: w.message.clone().unwrap_or_default(),
        }
    } else {
        ContainerObservation::Unknown
    }
}

/// What an observation means for the step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Assessment {
    /// Not started yet, for an ordinary reason (creating containers, pulling).
    Starting,
    /// The scheduler cannot place the pod: waiting for capacity, not a failure.
    WaitingForCapacity(String),
    /// `main` is running.
    Running,
    /// `main` finished (or the pod failed for good): the step's result.
    /// Sidecar exit codes (137/143 after `main` ended) never enter it.
    Finished(FinishedPod),
    /// The attempt failed for a reason that a new pod may not have: eviction,
    /// image pull back-off, a pod that vanished.
    Disrupted(TerminationReason, String),
}

/// A finished pod's result and whether the pod still runs (legacy sidecars).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedPod {
    /// The main container's exit code, when it has one.
    pub exit_code: Option<i32>,
    /// Why it ended.
    pub reason: TerminationReason,
    /// Details for a person.
    pub message: String,
    /// Legacy mode: sidecars still run, so the pod must be deleted.
    pub sidecars_still_running: bool,
}

impl FinishedPod {
    /// This result as a step outcome between `started_at` and `finished_at`.
    pub fn outcome(
        &self,
        started_at: Option<k8s_openapi::jiff::Timestamp>,
        finished_at: k8s_openapi::jiff::Timestamp,
    ) -> StepOutcome {
        StepOutcome {
            exit_code: self.exit_code,
            reason: self.reason,
            message: self.message.clone(),
            started_at,
            finished_at: Some(finished_at),
        }
    }
}

/// Reads an observation. Image pull trouble and disruptions come back as
/// [`Assessment::Disrupted`]; the caller decides whether to retry.
pub fn assess(observation: &PodObservation) -> Assessment {
    if let ContainerObservation::Terminated { exit_code, reason } = &observation.main {
        let reason = match (reason.as_str(), *exit_code) {
            ("OOMKilled", _) => TerminationReason::OomKilled,
            (_, 0) => TerminationReason::Completed,
            _ => TerminationReason::Error,
        };
        return Assessment::Finished(FinishedPod {
            exit_code: Some(*exit_code),
            reason,
            message: String::new(),
            sidecars_still_running: observation.phase == PodPhase::Running && observation.sidecars_running(),
        });
    }
    let disruption = observation
        .condition("DisruptionTarget")
        .is_some_and(|c| c.status == "True");
    if observation.reason == "Evicted" || disruption {
        let message = observation
            .condition("DisruptionTarget")
            .map(|c| format!("{}: {}", c.reason, c.message))
            .unwrap_or_else(|| observation.message.clone());
        return Assessment::Disrupted(TerminationReason::Evicted, message);
    }
    if observation.reason == "DeadlineExceeded" {
        return finished(TerminationReason::DeadlineExceeded, &observation.message);
    }
    match observation.phase {
        PodPhase::Gone => {
            return Assessment::Disrupted(TerminationReason::Lost, "the pod was deleted".to_owned());
        }
        PodPhase::Succeeded => return finished_with(Some(0), TerminationReason::Completed, ""),
        PodPhase::Failed => return finished(TerminationReason::Error, &observation.message),
        _ => {}
    }
    if let ContainerObservation::Waiting { reason, message } = &observation.main {
        match reason.as_str() {
            "ImagePullBackOff" | "ErrImagePull" => {
                return Assessment::Disrupted(
                    TerminationReason::ImagePullBackOff,
                    format!("{reason}: {message}"),
                );
            }
            "InvalidImageName" | "CreateContainerConfigError" | "CreateContainerError" => {
                return finished(TerminationReason::Error, &format!("{reason}: {message}"));
            }
            _ => {}
        }
    }
    if let Some(c) = observation.condition("PodScheduled")
        && c.status == "False"
        && c.reason == "Unschedulable"
    {
        return Assessment::WaitingForCapacity(c.message.clone());
    }
    if observation.main == ContainerObservation::Running {
        Assessment::Running
    } else {
        Assessment::Starting
    }
}

fn finished(reason: TerminationReason, message: &str) -> Assessment {
    finished_with(None, reason, message)
}

fn finished_with(exit_code: Option<i32>, reason: TerminationReason, message: &str) -> Assessment {
    Assessment::Finished(FinishedPod {
        exit_code,
        reason,
        message: message.to_owned(),
        sidecars_still_running: false,
    })
}

//! What c8s reads from a pod's status, and what that means for a step.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde::{Deserialize, Serialize};

use c8s_pipeline_model::layout::ARTIFACT_HELPER;

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
    /// Containers that run but are not `started`: a native sidecar whose
    /// startupProbe has not passed yet, which holds back every container after
    /// it (<https://kubernetes.io/docs/concepts/workloads/pods/sidecar-containers/>).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unstarted: Vec<String>,
    /// The pod's conditions.
    pub conditions: Vec<PodCondition>,
    /// Containers the kubelet has restarted, with their `restartCount`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restarts: Vec<(String, i32)>,
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
            if container.restart_count > 0 {
                observation
                    .restarts
                    .push((container.name.clone(), container.restart_count));
            }
            let state = container_state(container);
            if state == ContainerObservation::Running && container.started == Some(false) {
                observation.unstarted.push(container.name.clone());
            }
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

/// How many restarts of a sidecar that holds `main` back (crash-looping, as
/// when its startupProbe keeps failing) end the step: the kubelet's back-off
/// (10 s, 20 s, 40 s...) has then spent the sidecar's start budget three
/// times over, and waiting for the pod's deadline (an hour by default) would
/// only hide the cause.
pub const SIDECAR_RESTART_LIMIT: i32 = 3;

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
    /// Whether the step succeeded, by the rule of [`StepOutcome::succeeded`]:
    /// exit 0 is not enough (the outputs may not have been saved).
    pub fn succeeded(&self) -> bool {
        crate::outcome::succeeded(self.exit_code, self.reason)
    }

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
///
/// The first of these that has a say decides: the pod's own end (evicted,
/// past its deadline), `main`'s exit, the pod's phase, a crash-looping
/// sidecar, a container stuck for good; else where the pod stands.
pub fn assess(observation: &PodObservation) -> Assessment {
    pod_cut_short(observation)
        .or_else(|| main_exited(observation))
        .or_else(|| phase_ended(observation))
        .or_else(|| sidecar_crash_looping(observation))
        .or_else(|| container_stuck(observation))
        .unwrap_or_else(|| progress(observation))
}

/// An eviction or the pod's deadline. They kill `main` with 137: the pod's
/// reason comes first, or they would read as "error 137".
fn pod_cut_short(observation: &PodObservation) -> Option<Assessment> {
    let disruption = observation
        .condition("DisruptionTarget")
        .is_some_and(|c| c.status == "True");
    let succeeded = observation.phase == PodPhase::Succeeded;
    if !succeeded && (observation.reason == "Evicted" || disruption) {
        let message = observation
            .condition("DisruptionTarget")
            .map(|c| format!("{}: {}", c.reason, c.message))
            .unwrap_or_else(|| observation.message.clone());
        return Some(Assessment::Disrupted(TerminationReason::Evicted, message));
    }
    if !succeeded && observation.reason == "DeadlineExceeded" {
        let mut message = observation.message.clone();
        if let Some(waiting) = not_started(observation) {
            message = format!("{message}; {waiting}");
        }
        return Some(finished(TerminationReason::DeadlineExceeded, &message));
    }
    None
}

/// `main` exited: its exit code decides, unless the artifact helper that
/// saves the step's outputs failed or is still saving them.
fn main_exited(observation: &PodObservation) -> Option<Assessment> {
    let ContainerObservation::Terminated { exit_code, reason } = &observation.main else {
        return None;
    };
    let reason = match (reason.as_str(), *exit_code) {
        ("OOMKilled", _) => TerminationReason::OomKilled,
        (_, 0) => TerminationReason::Completed,
        _ => TerminationReason::Error,
    };
    // The artifact helper saves the step's outputs: a step ends with it.
    let helper = observation
        .sidecars
        .iter()
        .find(|(name, _)| name == ARTIFACT_HELPER)
        .map(|(_, state)| state);
    match helper {
        Some(ContainerObservation::Terminated {
            exit_code: code,
            reason: why,
        }) if *code != 0 && *exit_code == 0 => {
            return Some(finished_with(
                Some(*exit_code),
                TerminationReason::Error,
                &format!("container {ARTIFACT_HELPER} exited {code} ({why}): the outputs were not saved"),
            ));
        }
        Some(ContainerObservation::Terminated { .. }) | None => {}
        // A failed main needs no outputs saved; a finished pod waits for nothing.
        Some(_) if *exit_code != 0 || matches!(observation.phase, PodPhase::Failed | PodPhase::Gone) => {}
        Some(_) => return Some(Assessment::Running),
    }
    Some(Assessment::Finished(FinishedPod {
        exit_code: Some(*exit_code),
        reason,
        message: String::new(),
        sidecars_still_running: observation.phase == PodPhase::Running && observation.sidecars_running(),
    }))
}

/// The pod ended (or is gone) while `main` shows no exit.
fn phase_ended(observation: &PodObservation) -> Option<Assessment> {
    match observation.phase {
        PodPhase::Gone => Some(Assessment::Disrupted(
            TerminationReason::Lost,
            "the pod was deleted".to_owned(),
        )),
        PodPhase::Succeeded => Some(finished_with(Some(0), TerminationReason::Completed, "")),
        PodPhase::Failed => {
            // Say which container failed (an init container, usually).
            let failed = observation.sidecars.iter().find_map(|(name, state)| match state {
                ContainerObservation::Terminated { exit_code, reason } if *exit_code != 0 => {
                    Some(format!("container {name} exited {exit_code} ({reason})"))
                }
                _ => None,
            });
            let message = match (failed, observation.message.as_str()) {
                (Some(f), "") => f,
                (Some(f), m) => format!("{f}; {m}"),
                (None, m) => m.to_owned(),
            };
            Some(finished(TerminationReason::Error, &message))
        }
        _ => None,
    }
}

/// A native sidecar that never becomes ready (its startupProbe keeps
/// failing, or it keeps exiting) crash-loops and holds `main` back until the
/// pod's deadline. After its budget was spent several times over (its
/// restarts show it) the step ends, naming it.
fn sidecar_crash_looping(observation: &PodObservation) -> Option<Assessment> {
    if matches!(
        observation.main,
        ContainerObservation::Running | ContainerObservation::Terminated { .. }
    ) {
        return None;
    }
    observation.sidecars.iter().find_map(|(name, state)| {
        let ContainerObservation::Waiting { reason, message } = state else {
            return None;
        };
        let restarts = observation
            .restarts
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, r)| *r);
        (reason == "CrashLoopBackOff" && restarts >= SIDECAR_RESTART_LIMIT).then(|| {
            finished(
                TerminationReason::Error,
                format!("sidecar {name} never became ready: restarted {restarts} times; {reason}: {message}")
                    .trim_end_matches([' ', ':'])
                    .trim_end_matches(';'),
            )
        })
    })
}

/// Any container stuck for a reason that will not pass by itself ends the
/// step, named: init containers (git-clone, inputs), sidecars, the helper.
/// An image that cannot be pulled is a disruption (the caller may retry).
fn container_stuck(observation: &PodObservation) -> Option<Assessment> {
    let containers = std::iter::once((MAIN_CONTAINER, &observation.main))
        .chain(observation.sidecars.iter().map(|(n, s)| (n.as_str(), s)));
    containers.into_iter().find_map(|(name, state)| {
        let ContainerObservation::Waiting { reason, message } = state else {
            return None;
        };
        match reason.as_str() {
            "ImagePullBackOff" | "ErrImagePull" => Some(Assessment::Disrupted(
                TerminationReason::ImagePullBackOff,
                format!("container {name}: {reason}: {message}"),
            )),
            "InvalidImageName"
            | "CreateContainerConfigError"
            | "CreateContainerError"
            | "RunContainerError" => Some(finished(
                TerminationReason::Error,
                &format!("container {name}: {reason}: {message}"),
            )),
            _ => None,
        }
    })
}

/// Where a pod that has not ended stands: waiting for capacity
/// (unschedulable), running, or starting.
fn progress(observation: &PodObservation) -> Assessment {
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

/// The containers that are waiting (or crash-looping) while `main` has not
/// started, named with their reason, e.g. `container db: CrashLoopBackOff: ...`.
pub(crate) fn not_started(observation: &PodObservation) -> Option<String> {
    if matches!(
        observation.main,
        ContainerObservation::Running | ContainerObservation::Terminated { .. }
    ) {
        return None;
    }
    let waiting: Vec<String> = observation
        .sidecars
        .iter()
        .chain(std::iter::once(&(
            MAIN_CONTAINER.to_owned(),
            observation.main.clone(),
        )))
        .filter_map(|(name, state)| match state {
            ContainerObservation::Waiting { reason, message } if reason != "PodInitializing" => Some(
                format!("container {name}: {reason}: {message}")
                    .trim_end_matches([' ', ':'])
                    .to_owned(),
            ),
            _ => None,
        })
        .chain(
            observation
                .unstarted
                .iter()
                .map(|name| format!("container {name}: running, its startupProbe has not passed")),
        )
        .collect();
    (!waiting.is_empty()).then(|| waiting.join("; "))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> PodObservation {
        PodObservation {
            pod_name: "p".to_owned(),
            ..PodObservation::default()
        }
    }

    fn waiting(reason: &str) -> ContainerObservation {
        ContainerObservation::Waiting {
            reason: reason.to_owned(),
            message: "m".to_owned(),
        }
    }

    #[test]
    fn each_concern_speaks_only_to_its_own_case() {
        let fresh = pending();
        assert_eq!(pod_cut_short(&fresh), None);
        assert_eq!(main_exited(&fresh), None);
        assert_eq!(phase_ended(&fresh), None);
        assert_eq!(sidecar_crash_looping(&fresh), None);
        assert_eq!(container_stuck(&fresh), None);
        assert_eq!(progress(&fresh), Assessment::Starting);
        assert_eq!(assess(&fresh), Assessment::Starting);
    }

    #[test]
    fn an_eviction_comes_before_mains_exit() {
        let mut evicted = pending();
        evicted.reason = "Evicted".to_owned();
        evicted.main = ContainerObservation::Terminated {
            exit_code: 137,
            reason: "Error".to_owned(),
        };
        assert!(matches!(
            pod_cut_short(&evicted),
            Some(Assessment::Disrupted(TerminationReason::Evicted, _))
        ));
        assert!(matches!(main_exited(&evicted), Some(Assessment::Finished(_))));
        assert!(matches!(
            assess(&evicted),
            Assessment::Disrupted(TerminationReason::Evicted, _)
        ));
    }

    #[test]
    fn main_waits_for_the_helper_saving_outputs() {
        let mut saving = pending();
        saving.phase = PodPhase::Running;
        saving.main = ContainerObservation::Terminated {
            exit_code: 0,
            reason: "Completed".to_owned(),
        };
        saving.sidecars = vec![(ARTIFACT_HELPER.to_owned(), ContainerObservation::Running)];
        assert_eq!(main_exited(&saving), Some(Assessment::Running));
        saving.sidecars = vec![(
            ARTIFACT_HELPER.to_owned(),
            ContainerObservation::Terminated {
                exit_code: 1,
                reason: "Error".to_owned(),
            },
        )];
        assert!(matches!(
            main_exited(&saving),
            Some(Assessment::Finished(FinishedPod {
                reason: TerminationReason::Error,
                ..
            }))
        ));
    }

    #[test]
    fn a_gone_pod_is_lost_and_a_failed_one_names_its_container() {
        assert!(matches!(
            phase_ended(&PodObservation::gone("p")),
            Some(Assessment::Disrupted(TerminationReason::Lost, _))
        ));
        let mut failed = pending();
        failed.phase = PodPhase::Failed;
        failed.sidecars = vec![(
            "git-clone".to_owned(),
            ContainerObservation::Terminated {
                exit_code: 128,
                reason: "Error".to_owned(),
            },
        )];
        let Some(Assessment::Finished(finished)) = phase_ended(&failed) else {
            panic!("a failed pod is finished");
        };
        assert_eq!(finished.message, "container git-clone exited 128 (Error)");
    }

    #[test]
    fn stuck_and_crash_looping_containers_end_the_step() {
        let mut looping = pending();
        looping.sidecars = vec![("db".to_owned(), waiting("CrashLoopBackOff"))];
        looping.restarts = vec![("db".to_owned(), SIDECAR_RESTART_LIMIT - 1)];
        assert_eq!(sidecar_crash_looping(&looping), None);
        looping.restarts = vec![("db".to_owned(), SIDECAR_RESTART_LIMIT)];
        assert!(matches!(
            sidecar_crash_looping(&looping),
            Some(Assessment::Finished(_))
        ));

        let mut pulling = pending();
        pulling.main = waiting("ImagePullBackOff");
        assert!(matches!(
            container_stuck(&pulling),
            Some(Assessment::Disrupted(TerminationReason::ImagePullBackOff, _))
        ));
        pulling.main = waiting("ContainerCreating");
        assert_eq!(container_stuck(&pulling), None);
    }

    #[test]
    fn an_unschedulable_pod_waits_for_capacity() {
        let mut unschedulable = pending();
        unschedulable.conditions = vec![PodCondition {
            type_: "PodScheduled".to_owned(),
            status: "False".to_owned(),
            reason: "Unschedulable".to_owned(),
            message: "0/3 nodes".to_owned(),
        }];
        assert_eq!(
            progress(&unschedulable),
            Assessment::WaitingForCapacity("0/3 nodes".to_owned())
        );
        unschedulable.main = ContainerObservation::Running;
        unschedulable.conditions.clear();
        assert_eq!(progress(&unschedulable), Assessment::Running);
    }
}

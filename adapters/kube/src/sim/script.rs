//! What a simulated step does, and the pod status it shows at a virtual instant.

use std::collections::VecDeque;
use std::time::Duration;

use crate::cluster::ObjectEvent;
use crate::observe::{ContainerObservation, MAIN_CONTAINER, PodCondition, PodObservation, PodPhase};

/// How long a simulated image pull takes before it fails.
const PULL_TIME: Duration = Duration::from_secs(1);

/// The behaviour of one simulated step, including the faults to inject.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StepScript {
    /// How long `main` runs.
    pub duration: Duration,
    /// `main`'s exit code.
    pub exit_code: i32,
    /// The kubelet's termination reason for `main` (`Completed`, `Error`, `OOMKilled`).
    pub reason: String,
    /// Time from scheduling to `main` running (slow pod start).
    pub start_delay: Duration,
    /// Time a new pod stays unschedulable.
    pub unschedulable_for: Duration,
    /// The first N pods of this step fail to pull their image (`u32::MAX`: always).
    pub image_pull_failures: u32,
    /// The next N pods (after the pull failures) are evicted.
    pub evictions: u32,
    /// How long an evicted pod runs before its eviction.
    pub evict_after: Duration,
    /// Legacy sidecars: a `sidecar` container keeps running after `main` ends.
    pub legacy_sidecars: bool,
    /// Watches of this step's pods that break after their first event.
    pub watch_disconnects: u32,
    /// HTTP status codes returned by the next create calls, in order.
    pub create_errors: VecDeque<u16>,
    /// HTTP status codes returned by the next delete calls, in order.
    pub delete_errors: VecDeque<u16>,
    /// Raw log chunks `main` writes, spread over its run time.
    pub log: Vec<Vec<u8>>,
    /// The next N creates store the pod but answer 504 (a write that
    /// succeeded while its response was lost).
    pub lost_create_responses: u32,
    /// How long a delete takes before the object is gone (graceful
    /// termination, finalizers): the object stays listed meanwhile.
    pub delete_delay: Duration,
    /// The scheduler's message while unschedulable (default: insufficient cpu).
    pub unschedulable_message: Option<String>,
    /// The Events the cluster reports about this step's pods.
    pub events: Vec<ObjectEvent>,
    /// Once scheduled, this container (`main`, a sidecar, an init container)
    /// waits forever with this reason and message; `main` waits behind it.
    pub stuck: Option<(String, String, String)>,
    /// This init container exits with this code (the pod fails).
    pub init_failure: Option<(String, i32)>,
    /// The pod's `activeDeadlineSeconds`: the kubelet kills it then.
    pub active_deadline: Option<Duration>,
    /// Watches of this step's pods that end with 410 Gone after their first event.
    pub watch_expirations: u32,
    /// The next N deletes remove the object but answer 504.
    pub lost_delete_responses: u32,
    /// Log streams stay open after the last chunk (a follow that never ends).
    pub log_stays_open: bool,
    /// The next N pods that run (after pull failures and evictions) exit 1.
    pub failed_runs: u32,
    /// The next N log streams break (a transient error) after their first chunk.
    pub log_breaks: u32,
    /// Raw log chunks of containers other than `main` (sidecars, init
    /// containers, the helper), readable as soon as the pod exists.
    pub container_logs: std::collections::BTreeMap<String, Vec<Vec<u8>>>,
}

impl StepScript {
    /// A step whose `main` runs for `duration` and exits 0, with no faults.
    pub fn new(duration: Duration) -> Self {
        StepScript {
            duration,
            exit_code: 0,
            reason: "Completed".into(),
            start_delay: Duration::ZERO,
            unschedulable_for: Duration::ZERO,
            image_pull_failures: 0,
            evictions: 0,
            evict_after: Duration::ZERO,
            legacy_sidecars: false,
            watch_disconnects: 0,
            create_errors: VecDeque::new(),
            delete_errors: VecDeque::new(),
            log: Vec::new(),
            delete_delay: Duration::ZERO,
            lost_create_responses: 0,
            unschedulable_message: None,
            events: Vec::new(),
            stuck: None,
            init_failure: None,
            active_deadline: None,
            watch_expirations: 0,
            lost_delete_responses: 0,
            log_stays_open: false,
            failed_runs: 0,
            log_breaks: 0,
            container_logs: std::collections::BTreeMap::new(),
        }
    }

    /// The next `n` pods that run `main` exit 1 (a flaky test), later ones as scripted.
    pub fn failed_runs(mut self, n: u32) -> Self {
        self.failed_runs = n;
        self
    }

    /// Pods are never scheduled; the scheduler says `message`.
    pub fn never_schedulable(mut self, message: &str) -> Self {
        self.unschedulable_for = NEVER;
        self.unschedulable_message = Some(message.to_owned());
        self
    }

    /// The cluster reports a Warning Event `reason`: `message` about the pods.
    pub fn event(mut self, reason: &str, message: &str) -> Self {
        self.events.push(ObjectEvent {
            type_: "Warning".into(),
            reason: reason.into(),
            message: message.into(),
        });
        self
    }

    /// Once scheduled, `container` waits forever with `reason` and `message`
    /// (e.g. `CreateContainerConfigError`, or a native sidecar whose
    /// startupProbe keeps failing: `CrashLoopBackOff`).
    pub fn stuck(mut self, container: &str, reason: &str, message: &str) -> Self {
        self.stuck = Some((container.into(), reason.into(), message.into()));
        self
    }

    /// Init container `container` exits `code` once the pod starts.
    pub fn init_fails(mut self, container: &str, code: i32) -> Self {
        self.init_failure = Some((container.into(), code));
        self
    }

    /// The pod's `activeDeadlineSeconds` is `deadline`.
    pub fn active_deadline(mut self, deadline: Duration) -> Self {
        self.active_deadline = Some(deadline);
        self
    }

    /// The first `n` watches end with 410 Gone after their first event.
    pub fn watch_expirations(mut self, n: u32) -> Self {
        self.watch_expirations = n;
        self
    }

    /// The next `n` log streams break after their first chunk.
    pub fn log_breaks(mut self, n: u32) -> Self {
        self.log_breaks = n;
        self
    }

    /// Log streams stay open after the last chunk.
    pub fn log_stays_open(mut self) -> Self {
        self.log_stays_open = true;
        self
    }

    /// The next `n` deletes succeed but answer 504.
    pub fn lost_delete_responses(mut self, n: u32) -> Self {
        self.lost_delete_responses = n;
        self
    }

    /// The next `n` creates succeed but answer 504.
    pub fn lost_create_responses(mut self, n: u32) -> Self {
        self.lost_create_responses = n;
        self
    }

    /// Deletes take `delay` before the object is gone.
    pub fn delete_delay(mut self, delay: Duration) -> Self {
        self.delete_delay = delay;
        self
    }

    /// `main` exits with `code` (reason `Error` unless 0).
    pub fn exit_code(mut self, code: i32) -> Self {
        self.exit_code = code;
        self.reason = if code == 0 {
            "Completed".into()
        } else {
            "Error".into()
        };
        self
    }

    /// `main` is OOM-killed (exit 137).
    pub fn oom_killed(mut self) -> Self {
        self.exit_code = 137;
        self.reason = "OOMKilled".into();
        self
    }

    /// Pods take `delay` from scheduling to `main` running.
    pub fn start_delay(mut self, delay: Duration) -> Self {
        self.start_delay = delay;
        self
    }

    /// Pods stay unschedulable for `time`.
    pub fn unschedulable_for(mut self, time: Duration) -> Self {
        self.unschedulable_for = time;
        self
    }

    /// The first `n` pods fail to pull their image.
    pub fn image_pull_failures(mut self, n: u32) -> Self {
        self.image_pull_failures = n;
        self
    }

    /// The next `n` pods are evicted after running for `after`.
    pub fn evictions(mut self, n: u32, after: Duration) -> Self {
        self.evictions = n;
        self.evict_after = after;
        self
    }

    /// A legacy sidecar keeps the pod running after `main` ends.
    pub fn legacy_sidecars(mut self) -> Self {
        self.legacy_sidecars = true;
        self
    }

    /// The first `n` watches break after their first event.
    pub fn watch_disconnects(mut self, n: u32) -> Self {
        self.watch_disconnects = n;
        self
    }

    /// The next create calls fail with these HTTP codes, in order.
    pub fn create_errors(mut self, codes: impl IntoIterator<Item = u16>) -> Self {
        self.create_errors = codes.into_iter().collect();
        self
    }

    /// The next delete calls fail with these HTTP codes, in order.
    pub fn delete_errors(mut self, codes: impl IntoIterator<Item = u16>) -> Self {
        self.delete_errors = codes.into_iter().collect();
        self
    }

    /// `main` writes these raw chunks while it runs.
    pub fn log<I, B>(mut self, chunks: I) -> Self
    where
        I: IntoIterator<Item = B>,
        B: Into<Vec<u8>>,
    {
        self.log = chunks.into_iter().map(Into::into).collect();
        self
    }

    /// `container` (not `main`) writes these raw chunks.
    pub fn container_log<I, B>(mut self, container: &str, chunks: I) -> Self
    where
        I: IntoIterator<Item = B>,
        B: Into<Vec<u8>>,
    {
        let chunks = chunks.into_iter().map(Into::into).collect();
        self.container_logs.insert(container.to_owned(), chunks);
        self
    }

    /// What pod number `pod` (0-based, per step) does.
    pub(crate) fn fate(&self, pod: u32) -> Fate {
        if pod < self.image_pull_failures {
            Fate::PullFails
        } else if pod - self.image_pull_failures < self.evictions {
            Fate::Evicted
        } else if pod - self.image_pull_failures - self.evictions < self.failed_runs {
            Fate::FailsRun
        } else {
            Fate::Runs
        }
    }

    /// When `main` starts running, relative to the pod's creation.
    pub(crate) fn run_start(&self) -> Duration {
        self.unschedulable_for + self.start_delay
    }

    /// The pod's status `t` after its creation, and when it next changes.
    pub(crate) fn observe(&self, name: &str, fate: Fate, t: Duration) -> (PodObservation, Option<Duration>) {
        let Some(deadline) = self.active_deadline else {
            return self.lifecycle(name, fate, t);
        };
        if t < deadline {
            let (o, next) = self.lifecycle(name, fate, t);
            return (o, Some(next.map_or(deadline, |n| n.min(deadline))));
        }
        let (mut o, _) = self.lifecycle(name, fate, deadline.saturating_sub(Duration::from_millis(1)));
        if matches!(o.phase, PodPhase::Succeeded | PodPhase::Failed) {
            return self.lifecycle(name, fate, t);
        }
        // The kubelet kills every container: `main` ends 137 like any SIGKILL.
        o.phase = PodPhase::Failed;
        o.reason = "DeadlineExceeded".into();
        o.message = "Pod was active on the node longer than the specified deadline".into();
        let killed = ContainerObservation::Terminated {
            exit_code: 137,
            reason: "Error".into(),
        };
        if o.main == ContainerObservation::Running {
            o.main = killed.clone();
        }
        for (_, state) in &mut o.sidecars {
            if *state == ContainerObservation::Running {
                *state = killed.clone();
            }
        }
        (o, None)
    }

    fn lifecycle(&self, name: &str, fate: Fate, t: Duration) -> (PodObservation, Option<Duration>) {
        let mut o = PodObservation {
            pod_name: name.to_owned(),
            ..Default::default()
        };
        let scheduled = self.unschedulable_for;
        if t < scheduled {
            let message = self.unschedulable_message.as_deref().unwrap_or(UNSCHEDULABLE);
            o.conditions
                .push(condition("PodScheduled", "False", "Unschedulable", message));
            o.main = waiting("Pending");
            return (o, Some(scheduled));
        }
        o.conditions.push(condition("PodScheduled", "True", "", ""));
        let start = self.run_start();
        if let Some((container, reason, message)) = &self.stuck {
            let stuck = ContainerObservation::Waiting {
                reason: reason.clone(),
                message: message.clone(),
            };
            if container == MAIN_CONTAINER {
                o.main = stuck;
            } else {
                o.sidecars.push((container.clone(), stuck));
                o.main = waiting("PodInitializing");
            }
            return (o, None);
        }
        if let Some((container, code)) = &self.init_failure {
            o.main = waiting("PodInitializing");
            if t < start {
                o.sidecars
                    .push((container.clone(), ContainerObservation::Running));
                return (o, Some(start));
            }
            o.phase = PodPhase::Failed;
            let exited = ContainerObservation::Terminated {
                exit_code: *code,
                reason: "Error".into(),
            };
            o.sidecars.push((container.clone(), exited));
            return (o, None);
        }
        match fate {
            Fate::PullFails if t < scheduled + PULL_TIME => {
                o.main = waiting("ContainerCreating");
                (o, Some(scheduled + PULL_TIME))
            }
            Fate::PullFails => {
                o.main = waiting("ImagePullBackOff");
                (o, None)
            }
            _ if t < start => {
                o.main = waiting("ContainerCreating");
                self.sidecar(&mut o, ContainerObservation::Running);
                (o, Some(start))
            }
            Fate::Evicted if t >= start + self.evict_after => {
                o.phase = PodPhase::Failed;
                // The kubelet kills `main` on eviction: its 137 must not read as the result.
                o.main = ContainerObservation::Terminated {
                    exit_code: 137,
                    reason: "Error".into(),
                };
                o.reason = "Evicted".into();
                o.message = "The node was low on resource: memory.".into();
                o.conditions.push(condition(
                    "DisruptionTarget",
                    "True",
                    "TerminationByKubelet",
                    "evicted",
                ));
                (o, None)
            }
            Fate::Evicted => {
                o.phase = PodPhase::Running;
                o.main = ContainerObservation::Running;
                self.sidecar(&mut o, ContainerObservation::Running);
                (o, Some(start + self.evict_after))
            }
            _ if t < start + self.duration => {
                o.phase = PodPhase::Running;
                o.main = ContainerObservation::Running;
                self.sidecar(&mut o, ContainerObservation::Running);
                (o, Some(start + self.duration))
            }
            _ => {
                let (exit_code, reason) = match fate {
                    Fate::FailsRun => (1, "Error".to_owned()),
                    _ => (self.exit_code, self.reason.clone()),
                };
                o.main = ContainerObservation::Terminated { exit_code, reason };
                if self.legacy_sidecars {
                    o.phase = PodPhase::Running;
                    self.sidecar(&mut o, ContainerObservation::Running);
                } else {
                    o.phase = if exit_code == 0 {
                        PodPhase::Succeeded
                    } else {
                        PodPhase::Failed
                    };
                    // Native sidecars get SIGTERM after main: 137/143 must not count.
                    let sidecar = ContainerObservation::Terminated {
                        exit_code: 143,
                        reason: "Error".into(),
                    };
                    self.sidecar(&mut o, sidecar);
                }
                (o, None)
            }
        }
    }

    fn sidecar(&self, o: &mut PodObservation, state: ContainerObservation) {
        o.sidecars.push(("sidecar".into(), state));
    }
}

/// "Forever" for a pod that is never scheduled (virtual time).
const NEVER: Duration = Duration::from_secs(100 * 24 * 3600);

/// The scheduler's message while a pod is unschedulable.
pub(crate) const UNSCHEDULABLE: &str = "0/3 nodes are available: 3 Insufficient cpu.";

/// What one simulated pod does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    Runs,
    PullFails,
    Evicted,
    FailsRun,
}

fn waiting(reason: &str) -> ContainerObservation {
    let message = if reason == "ImagePullBackOff" {
        "Back-off pulling image"
    } else {
        ""
    };
    ContainerObservation::Waiting {
        reason: reason.into(),
        message: message.into(),
    }
}

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
    }
}

/// The container whose log a simulated step writes.
pub(crate) fn writes_log(container: &str) -> bool {
    container == MAIN_CONTAINER
}

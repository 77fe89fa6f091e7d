//! Status writes coalesced: a reconcile whose only news is that steps
//! started running (their `startTime`) does not write it at once. It keeps
//! the status it computed here and writes it with the next change that
//! must go out (a step's end, a new pod, the run's end), or after
//! [`COALESCE`] if none comes. A one-step run whose step runs for less than
//! that costs a status write less (3 instead of 4 with its pod's create);
//! a longer step's `startTime` shows up to [`COALESCE`] late, with its
//! value unchanged: the next reconcile computes from the status kept here,
//! so the time first seen is the time written.
//!
//! The step's phase is `Running` from its pod's create on (written with
//! that create's status), so what a person or the dashboard sees is only
//! the start time, late. Events, phases, conditions, pods and ends are
//! never held back.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::crd::PipelineRunStatus;

/// The longest a step's start time waits for a write to go with.
pub const COALESCE: Duration = Duration::from_secs(5);

/// A status computed and not written: the status on the server it was
/// computed from, and since when it waits.
struct Held {
    based_on: PipelineRunStatus,
    status: PipelineRunStatus,
    since: Instant,
}

/// The statuses held back, by run.
#[derive(Default)]
pub struct Deferrals {
    held: Mutex<BTreeMap<String, Held>>,
}

impl Deferrals {
    /// The status held back for run `key` while the server's is still
    /// `on_server` (the one it was computed from): what the next reconcile
    /// starts from instead of `on_server`.
    pub fn held(&self, key: &str, on_server: &PipelineRunStatus) -> Option<PipelineRunStatus> {
        let mut held = self.held.lock().ok()?;
        match held.get(key) {
            Some(h) if h.based_on == *on_server => Some(h.status.clone()),
            Some(_) => {
                // The status on the server changed since: compute from it.
                held.remove(key);
                None
            }
            None => None,
        }
    }

    /// Whether `new` (computed from `on_server`, with no Event to record)
    /// may wait: how long it may still wait, or `None` when it must be
    /// written now.
    pub fn hold(
        &self,
        key: &str,
        on_server: &PipelineRunStatus,
        new: &PipelineRunStatus,
    ) -> Option<Duration> {
        if !only_start_times(on_server, new) {
            self.forget(key);
            return None;
        }
        let mut held = self.held.lock().ok()?;
        let since = match held.get(key) {
            Some(h) if h.based_on == *on_server => h.since,
            _ => Instant::now(),
        };
        let left = COALESCE.checked_sub(since.elapsed()).filter(|d| !d.is_zero());
        match left {
            Some(left) => {
                held.insert(
                    key.to_owned(),
                    Held {
                        based_on: on_server.clone(),
                        status: new.clone(),
                        since,
                    },
                );
                Some(left)
            }
            None => {
                held.remove(key);
                None
            }
        }
    }

    /// Forgets what was held for run `key` (written, or the run is gone).
    pub fn forget(&self, key: &str) {
        if let Ok(mut held) = self.held.lock() {
            held.remove(key);
        }
    }
}

/// Whether `new` differs from `old` only in steps' start times set where
/// there were none: a running run's steps seen running, nothing else.
pub fn only_start_times(old: &PipelineRunStatus, new: &PipelineRunStatus) -> bool {
    let starts = |(a, b): (&crate::crd::StepRunStatus, &crate::crd::StepRunStatus)| {
        a.start_time.is_none() && b.start_time.is_some()
    };
    // Cheap tests first: most writes change more, and the full comparison clones the status.
    if old.phase != new.phase
        || old.steps.len() != new.steps.len()
        || !old.steps.iter().zip(&new.steps).any(starts)
    {
        return false;
    }
    let mut started = false;
    let mut same = new.clone();
    for (step, before) in same.steps.iter_mut().zip(&old.steps) {
        if step.name != before.name {
            return false;
        }
        if before.start_time.is_none() && step.start_time.is_some() {
            step.start_time = None;
            started = true;
        }
    }
    started && same == *old
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{RunPhase, StepPhase, StepRunStatus};

    fn status(started: &[Option<&str>]) -> PipelineRunStatus {
        PipelineRunStatus {
            phase: RunPhase::Running,
            steps: started
                .iter()
                .enumerate()
                .map(|(i, t)| StepRunStatus {
                    name: format!("s{i}"),
                    phase: StepPhase::Running,
                    start_time: t.map(str::to_owned),
                    ..StepRunStatus::default()
                })
                .collect(),
            ..PipelineRunStatus::default()
        }
    }

    #[test]
    fn only_a_step_seen_starting_may_wait() {
        let old = status(&[None, None]);
        assert!(only_start_times(&old, &status(&[Some("t1"), None])));
        assert!(only_start_times(&old, &status(&[Some("t1"), Some("t2")])));
        assert!(!only_start_times(&old, &old), "nothing changed");
        let moved = status(&[Some("t1"), None]);
        assert!(
            !only_start_times(&moved, &status(&[Some("t3"), None])),
            "a start time moved"
        );
        let mut ended = status(&[Some("t1"), None]);
        ended.steps[0].phase = StepPhase::Succeeded;
        assert!(!only_start_times(&old, &ended), "a step ended");
        let mut finished = status(&[Some("t1"), None]);
        finished.phase = RunPhase::Succeeded;
        assert!(!only_start_times(&old, &finished), "the run ended");
        let mut more = status(&[Some("t1"), None]);
        more.steps.push(StepRunStatus::default());
        assert!(!only_start_times(&old, &more), "a step added");
    }

    #[test]
    fn a_held_status_is_the_next_base_until_its_time_or_the_servers_status_changes() {
        let deferrals = Deferrals::default();
        let server = status(&[None]);
        let seen = status(&[Some("t1")]);
        let left = deferrals.hold("r", &server, &seen);
        assert!(left.is_some_and(|d| d <= COALESCE), "{left:?}");
        // The next reconcile computes from the held status: the start time stays t1.
        assert_eq!(deferrals.held("r", &server), Some(seen.clone()));
        assert_eq!(deferrals.held("other", &server), None);
        // A change that must go out is written at once, and forgets the held one.
        let mut ended = seen.clone();
        ended.steps[0].phase = StepPhase::Succeeded;
        assert_eq!(deferrals.hold("r", &server, &ended), None);
        assert_eq!(deferrals.held("r", &server), None);
        // The server's status changed (someone wrote it): the held one is dropped.
        assert!(deferrals.hold("r", &server, &seen).is_some());
        let mut cancelled = server.clone();
        cancelled.phase = RunPhase::Cancelled;
        assert_eq!(deferrals.held("r", &cancelled), None);
        assert_eq!(deferrals.held("r", &server), None, "dropped for good");
    }

    #[test]
    fn a_held_status_is_written_once_it_waited_long_enough() {
        let deferrals = Deferrals::default();
        let server = status(&[None]);
        let seen = status(&[Some("t1")]);
        assert!(deferrals.hold("r", &server, &seen).is_some());
        if let Ok(mut held) = deferrals.held.lock()
            && let Some(h) = held.get_mut("r")
        {
            h.since = Instant::now().checked_sub(COALESCE).unwrap_or_else(Instant::now);
        }
        assert_eq!(
            deferrals.hold("r", &server, &seen),
            None,
            "waited its time: written"
        );
    }
}

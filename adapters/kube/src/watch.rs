//! Watches one attempt's pod to an end, and bounds how long a pod may stay
//! unscheduled or not started: a cause that will not resolve by itself is
//! read from the pod's Events and ends the step at once.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::cluster::{Cluster, ObjectEvent, ObjectKind, ObjectRef};
use crate::error::Error;
use crate::observe::{Assessment, PodObservation, assess, not_started};
use crate::outcome::{StepOutcome, StepState, TerminationReason};
use crate::step::{AttemptEnd, Event, Runner};

/// How long a pod may be pending before its Events are read (a normal start
/// takes seconds; reading Events for every pod would double the requests).
pub const EVENTS_AFTER: Duration = Duration::from_secs(30);
/// How often Events are read again while the pod stays pending.
const EVENTS_EVERY: Duration = Duration::from_secs(60);

/// Why a pod is not running yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiting {
    /// Unschedulable: "waiting for capacity", bounded by `capacity_wait`.
    Capacity,
    /// Scheduled (or a Job without a pod yet), `main` not running: bounded by `start_timeout`.
    Start,
}

/// The bounds on a pending pod, and when to read its Events next.
struct Pending {
    waiting: Option<(Waiting, Instant)>,
    next_events: Option<Instant>,
    last: PodObservation,
    capacity_wait: Duration,
    start_timeout: Duration,
}

impl Pending {
    fn observe(&mut self, observation: &PodObservation, assessment: &Assessment) {
        self.last = observation.clone();
        let now = Instant::now();
        let waiting = match assessment {
            Assessment::WaitingForCapacity(_) => Some(Waiting::Capacity),
            Assessment::Starting => Some(Waiting::Start),
            _ => None,
        };
        match (waiting, self.waiting) {
            (None, _) => {
                self.waiting = None;
                self.next_events = None;
            }
            (Some(w), Some((was, _))) if w == was => {}
            (Some(w), _) => {
                self.waiting = Some((w, now));
                // The scheduler's verdict is already known: read why at once.
                let delay = if w == Waiting::Capacity {
                    Duration::ZERO
                } else {
                    EVENTS_AFTER
                };
                self.next_events = Some(now + delay);
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let (waiting, since) = self.waiting?;
        Some(since + self.bound(waiting))
    }

    fn bound(&self, waiting: Waiting) -> Duration {
        match waiting {
            Waiting::Capacity => self.capacity_wait,
            Waiting::Start => self.start_timeout,
        }
    }

    fn wake_at(&self) -> Option<Instant> {
        match (self.deadline(), self.next_events) {
            (Some(d), Some(e)) => Some(d.min(e)),
            (d, e) => d.or(e),
        }
    }
}

/// A cause in `events` that will not resolve by itself: a missing volume,
/// Secret or ConfigMap, or no node matching the pod's selector (unless the
/// cluster autoscaler said it will add one). The rule `c8s run` and the
/// controller's reconcile both end a pending pod's attempt by.
pub fn unresolvable(events: &[ObjectEvent]) -> Option<String> {
    let scale_up = events.iter().any(|e| e.reason == "TriggeredScaleUp");
    events.iter().rev().find_map(|e| {
        let m = e.message.as_str();
        let permanent = match e.reason.as_str() {
            "FailedMount" => m.contains("not found"),
            "FailedScheduling" => {
                (m.contains("persistentvolumeclaim") && m.contains("not found"))
                    || (m.contains("didn't match Pod's node affinity/selector")
                        && !m.contains("Insufficient")
                        && !scale_up)
            }
            _ => false,
        };
        permanent.then(|| format!("{}: {}", e.reason, e.message))
    })
}

impl<C: Cluster> Runner<'_, C> {
    /// Follows `object`'s pod until the attempt ends, re-subscribing (which
    /// relists, so a 410 Gone costs nothing more) with backoff, up to
    /// `watch_retries` consecutive failures.
    pub(crate) async fn watch(
        &self,
        index: usize,
        object: &ObjectRef,
        events: &mpsc::UnboundedSender<(usize, Event)>,
        started: oneshot::Sender<()>,
    ) -> AttemptEnd {
        let retry = &self.options.retry;
        let mut started = Some(started);
        let mut started_at = None;
        let mut counting = false;
        let mut failures = 0u32;
        let mut last_seen: Option<PodObservation> = None;
        let mut pending = Pending {
            waiting: None,
            next_events: None,
            last: PodObservation::default(),
            capacity_wait: self.options.capacity_wait,
            start_timeout: self.options.start_timeout,
        };
        loop {
            let subscribed = match self.hub {
                Some(hub) => hub.follow(object),
                None => self.cluster.observe(object).await,
            };
            let mut stream = match subscribed {
                Ok(stream) => stream,
                Err(e) if e.is_transient() && failures < retry.watch_retries => {
                    tokio::time::sleep(retry.backoff(&object.name, failures)).await;
                    failures += 1;
                    continue;
                }
                Err(e) => return AttemptEnd::Broken(e),
            };
            loop {
                let next = tokio::select! {
                    biased;
                    next = stream.next() => next,
                    () = sleep_until(pending.wake_at()) => {
                        if let Some(end) = self.check_pending(object, &mut pending).await {
                            return end;
                        }
                        continue;
                    }
                };
                let observation = match next {
                    Some(Ok(observation)) => observation,
                    Some(Err(e)) if !e.is_transient() => return AttemptEnd::Broken(e),
                    Some(Err(e)) => {
                        tracing::debug!(object = %object, error = %e, "watch broke, subscribing again");
                        break;
                    }
                    None => break,
                };
                // Only a change is progress: a watch that breaks after every
                // relist must still run out of re-subscriptions.
                if last_seen.as_ref() != Some(&observation) {
                    failures = 0;
                    last_seen = Some(observation.clone());
                }
                let assessment = assess(&observation);
                pending.observe(&observation, &assessment);
                // The step's time counts once its pod exists and is scheduled.
                let placed = !observation.pod_name.is_empty()
                    && !matches!(assessment, Assessment::WaitingForCapacity(_));
                if !counting && placed {
                    counting = true;
                    let _ = events.send((index, Event::Started));
                }
                match assessment {
                    Assessment::Starting => self.set_state(index, StepState::Running, None),
                    Assessment::WaitingForCapacity(reason) => {
                        self.set_state(index, StepState::WaitingForCapacity, Some(reason));
                    }
                    Assessment::Running => {
                        started_at.get_or_insert_with(|| self.cluster.now());
                        if let Some(tx) = started.take() {
                            let _ = tx.send(());
                        }
                        self.set_state(index, StepState::Running, None);
                    }
                    Assessment::Finished(pod) => {
                        if let Some(tx) = started.take() {
                            let _ = tx.send(());
                        }
                        let outcome = pod.outcome(started_at, self.cluster.now());
                        let delete = !self.options.keep_pods || pod.sidecars_still_running;
                        return AttemptEnd::Finished { outcome, delete };
                    }
                    Assessment::Disrupted(reason, message) => return AttemptEnd::Disrupted(reason, message),
                }
            }
            if failures >= retry.watch_retries {
                return AttemptEnd::Broken(Error::WatchEnded {
                    object: object.to_string(),
                    detail: format!("gave up after {failures} re-subscriptions"),
                });
            }
            tokio::time::sleep(retry.backoff(&object.name, failures)).await;
            failures += 1;
        }
    }

    /// Reads the pending pod's Events when due; ends the attempt on a cause
    /// that will not resolve, or when the pod has waited past its bound.
    async fn check_pending(&self, object: &ObjectRef, pending: &mut Pending) -> Option<AttemptEnd> {
        let now = Instant::now();
        let mut seen = Vec::new();
        if pending.next_events.is_some_and(|at| at <= now) {
            pending.next_events = Some(now + EVENTS_EVERY);
            let about = if pending.last.pod_name.is_empty() {
                object.clone()
            } else {
                ObjectRef::new(ObjectKind::Pod, &pending.last.pod_name)
            };
            let retry = &self.options.retry;
            match self
                .limiter
                .call(retry, &about.name, || self.cluster.events(&about))
                .await
            {
                Ok(events) => seen = events,
                // Events only explain; the bound still ends the wait.
                Err(e) => tracing::debug!(object = %about, error = %e, "could not read events"),
            }
            if let Some(cause) = unresolvable(&seen) {
                return Some(self.pending_end(format!("{about} cannot start: {cause}")));
            }
        }
        let (waiting, _) = pending.waiting?;
        if pending.deadline().is_some_and(|d| d <= now) {
            let bound = pending.bound(waiting);
            let message = waited_too_long(waiting == Waiting::Capacity, bound, &pending.last, &seen);
            return Some(self.pending_end(message));
        }
        None
    }

    fn pending_end(&self, message: String) -> AttemptEnd {
        let outcome = StepOutcome {
            exit_code: None,
            reason: TerminationReason::Error,
            message,
            started_at: None,
            finished_at: Some(self.cluster.now()),
        };
        AttemptEnd::Finished {
            outcome,
            delete: true,
        }
    }
}

/// Why a pod's attempt ends after it waited `bound` without being placed
/// (`capacity`: unschedulable) or without its `main` starting, from what
/// was last seen of it (`last`) and its Events (`events`): the scheduler's
/// words, each container that waits and why, and the last warning. The
/// message `c8s run` and the controller's reconcile both give.
pub fn waited_too_long(
    capacity: bool,
    bound: Duration,
    last: &PodObservation,
    events: &[ObjectEvent],
) -> String {
    let what = if capacity {
        format!("no node could take the pod within {bound:?}")
    } else {
        format!("{} did not start within {bound:?}", crate::MAIN_CONTAINER)
    };
    let mut details: Vec<String> = Vec::new();
    if let Some(c) = last.condition("PodScheduled").filter(|c| c.status == "False") {
        details.push(c.message.clone());
    }
    details.extend(not_started(last));
    if let Some(e) = events.iter().rev().find(|e| e.type_ == "Warning") {
        details.push(format!("{}: {}", e.reason, e.message));
    }
    std::iter::once(what)
        .chain(details)
        .collect::<Vec<_>>()
        .join("; ")
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::unresolvable;
    use crate::cluster::ObjectEvent;

    fn event(reason: &str, message: &str) -> ObjectEvent {
        ObjectEvent {
            type_: "Warning".into(),
            reason: reason.into(),
            message: message.into(),
        }
    }

    #[test]
    fn only_causes_that_will_not_resolve_end_the_wait() {
        let capacity = event("FailedScheduling", "0/3 nodes are available: 3 Insufficient cpu.");
        assert_eq!(unresolvable(std::slice::from_ref(&capacity)), None);
        let pvc = event(
            "FailedScheduling",
            "0/3 nodes are available: persistentvolumeclaim \"cache\" not found.",
        );
        assert!(
            unresolvable(&[capacity.clone(), pvc])
                .unwrap()
                .contains("\"cache\" not found")
        );
        let selector = event(
            "FailedScheduling",
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
        );
        assert!(unresolvable(std::slice::from_ref(&selector)).is_some());
        // The autoscaler is adding a matching node: keep waiting.
        let scale_up = ObjectEvent {
            type_: "Normal".into(),
            ..event("TriggeredScaleUp", "pod triggered scale-up")
        };
        assert_eq!(unresolvable(&[selector, scale_up]), None);
        let mount = event(
            "FailedMount",
            "MountVolume.SetUp failed for volume \"creds\" : secret \"db\" not found",
        );
        assert!(unresolvable(&[mount]).unwrap().starts_with("FailedMount: "));
        let slow = event(
            "FailedMount",
            "Unable to attach or mount volumes: timed out waiting for the condition",
        );
        assert_eq!(unresolvable(&[slow]), None);
    }
}

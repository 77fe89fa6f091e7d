//! Runs one step: create its pod, watch it to an outcome, stream its logs,
//! delete it, and retry transient faults with a fresh pod.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use c8s_pipeline_model::scheduler::StopReason;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::{mpsc, oneshot};

use crate::cluster::{Cluster, ObjectRef, StepObject};
use crate::error::Error;
use crate::hash::fnv1a;
use crate::log_archive::{Archived, Keeping, archive_attempt};
use crate::logs::{LogOptions, LogTarget, failure_logs, stream_masked_logs_until};
use crate::options::{RunOptions, Step};
use crate::outcome::{RunStatus, StepOutcome, StepState, StepStatus, TerminationReason};
use crate::rate::RateLimiter;
use crate::record::{RecordApi, Recorder, StepRecord};
use crate::run_watch::Hub;

/// Longest pod name Kubernetes turns into a hostname without cutting it.
const MAX_NAME: usize = 63;

/// What the scheduler shares with its running steps.
pub(crate) struct Runner<'a, C> {
    pub cluster: &'a C,
    pub options: &'a RunOptions,
    pub status: &'a Mutex<RunStatus>,
    /// The one live object of each step (registered before it is created).
    pub live: &'a Mutex<BTreeMap<usize, ObjectRef>>,
    /// The env values of each started `finally` step's `main` (outcomes).
    pub finally_env: &'a Mutex<BTreeMap<usize, Vec<(String, String)>>>,
    /// The run's one watch, when the cluster offers it.
    pub hub: Option<&'a Hub>,
    /// The client-side rate limit on creates, deletes, lists and Event reads.
    pub limiter: &'a RateLimiter,
    /// The run record (what a resumed run must know).
    pub recorder: &'a Recorder,
}

/// How one attempt (one pod) ended.
pub(crate) enum AttemptEnd {
    Finished { outcome: StepOutcome, delete: bool },
    Disrupted(TerminationReason, String),
    Stopped(StopReason),
    Broken(Error),
}

/// What a running attempt tells the scheduling loop.
pub(crate) enum Event {
    /// The pod stopped waiting for capacity: its timeout counts from now.
    Started,
    /// The attempt ended with this outcome (success or a final failure).
    Ended(StepOutcome),
    /// The attempt was disrupted; its pod is gone and a retry may follow.
    Retryable(TerminationReason, String),
    /// The attempt was stopped on request; the error if its pod could not be deleted.
    Stopped(Option<String>),
}

impl<C: Cluster> Runner<'_, C> {
    /// Applies `change` to step `index`'s status and reports it.
    pub fn update(&self, index: usize, change: impl FnOnce(&mut StepStatus)) {
        let snapshot = {
            let Ok(mut status) = self.status.lock() else {
                return;
            };
            let Some(step) = status.steps.get_mut(index) else {
                return;
            };
            change(step);
            step.clone()
        };
        if let Some(progress) = &self.options.on_progress {
            progress(&snapshot);
        }
    }

    /// Deletes step `index`'s live object, if any, and waits until it is
    /// gone (before a retry); keeps it registered when deletion fails.
    pub async fn delete_live(&self, index: usize) -> Result<(), Error> {
        self.remove_live(index, true).await
    }

    /// Deletes step `index`'s live object, if any, returning once the API
    /// server accepted the delete (the pod may linger for its grace period).
    pub async fn start_delete_live(&self, index: usize) -> Result<(), Error> {
        self.remove_live(index, false).await
    }

    async fn remove_live(&self, index: usize, wait: bool) -> Result<(), Error> {
        let object = self.live.lock().ok().and_then(|live| live.get(&index).cloned());
        let Some(object) = object else { return Ok(()) };
        self.limiter
            .call(&self.options.retry, &object.name, || async {
                if wait {
                    self.cluster.delete(&object).await
                } else {
                    self.cluster.start_delete(&object).await
                }
            })
            .await?;
        // A retry may have registered its own object meanwhile: keep that one.
        if let Ok(mut live) = self.live.lock()
            && live.get(&index) == Some(&object)
        {
            live.remove(&index);
        }
        Ok(())
    }

    /// What the run record's writes go through.
    fn record_api(&self) -> RecordApi<'_, C> {
        RecordApi {
            cluster: self.cluster,
            run_id: &self.options.run_id,
            retry: &self.options.retry,
            limiter: self.limiter,
        }
    }

    /// Changes `step`'s entry in the run record and saves it ([`Recorder::record`]).
    pub async fn record(&self, step: &str, change: impl FnOnce(&mut StepRecord)) -> Result<(), Error> {
        self.recorder.record(&self.record_api(), step, change).await
    }

    /// [`Runner::record`], skipped once the run ended ([`Recorder::record_unless`]).
    pub async fn record_unless(
        &self,
        step: &str,
        skip_if_closing: bool,
        change: impl FnOnce(&mut StepRecord),
    ) -> Result<bool, Error> {
        let api = self.record_api();
        self.recorder
            .record_unless(&api, step, skip_if_closing, change)
            .await
    }

    /// Step `index`'s status once `outcome` is final.
    pub fn finished_status(&self, index: usize, outcome: &StepOutcome) -> StepStatus {
        let now = self.cluster.now();
        let mut status = self
            .status
            .lock()
            .ok()
            .and_then(|s| s.steps.get(index).cloned())
            .unwrap_or_else(|| StepStatus::pending(""));
        status.state = if outcome.succeeded() {
            StepState::Succeeded
        } else {
            StepState::Failed
        };
        status.waiting_reason = None;
        status.finished_at = Some(now);
        status.outcome = Some(outcome.clone());
        status
    }

    /// Runs attempt `attempt` of step `index` until it ends or `stop` fires,
    /// reporting to `events`; `adopt` follows an object that already exists
    /// (a resumed run) instead of creating it. A finished attempt is reported
    /// at once (dependents need not wait), recorded in the run record, then
    /// its deletion is requested; a retryable one is recorded and reported
    /// only once its pod is gone, so a retry never overlaps it.
    pub async fn run_attempt(
        &self,
        index: usize,
        step: &Step,
        attempt: u32,
        adopt: bool,
        stop: oneshot::Receiver<StopReason>,
        events: &mpsc::UnboundedSender<(usize, Event)>,
    ) {
        // With an archive, the attempt's masked logs are kept for it.
        let keeping = match (&self.options.archive, &self.options.logs) {
            (Some(_), Some(logs)) => Some(Arc::new(Keeping::new(logs.sink.clone()))),
            _ => None,
        };
        let end = tokio::select! {
            end = self.attempt(index, step, attempt, adopt, events, keeping.as_ref()) => end,
            Ok(reason) = stop => AttemptEnd::Stopped(reason),
        };
        // An attempt without an exit code of its own ends now.
        let now = self.cluster.now();
        let report = |event| {
            let _ = events.send((index, event));
        };
        match end {
            AttemptEnd::Finished { outcome, delete } => {
                self.finished(index, step, attempt, outcome, delete, report).await;
            }
            AttemptEnd::Stopped(reason) => report(self.stopped(index, step, reason, now).await),
            // Nothing was created: the run stops (refused), nothing to record.
            AttemptEnd::Broken(e @ Error::RunExists { .. }) => {
                report(Event::Ended(runner_failure(
                    TerminationReason::Rejected,
                    e.to_string(),
                    now,
                )));
            }
            AttemptEnd::Broken(e) if !e.is_transient() => report(self.rejected(index, step, &e, now).await),
            AttemptEnd::Broken(e) => {
                let end = self.retryable(
                    index,
                    step,
                    attempt,
                    (TerminationReason::Lost, e.to_string()),
                    now,
                );
                report(end.await);
            }
            AttemptEnd::Disrupted(reason, message) => {
                report(self.retryable(index, step, attempt, (reason, message), now).await);
            }
        }
        // After the end was reported: dependents do not wait for uploads.
        self.archive_logs(index, &step.name, attempt, keeping.map(|k| k.take()))
            .await;
    }

    /// With an archive: stores attempt `attempt`'s `kept` logs (`None`:
    /// none were streamed) and records on the step where they are, or why
    /// they are not there.
    async fn archive_logs(
        &self,
        index: usize,
        step: &str,
        attempt: u32,
        kept: Option<BTreeMap<String, Vec<u8>>>,
    ) {
        let Some(archive) = &self.options.archive else {
            return;
        };
        let archived = match kept {
            Some(kept) => archive_attempt(archive, &self.options.run_id, step, attempt, kept).await,
            None => Archived {
                logs: Vec::new(),
                errors: vec![format!(
                    "logs not archived: {}",
                    archive.withheld.as_deref().unwrap_or("no logs are streamed")
                )],
            },
        };
        self.update(index, |s| {
            s.archived_logs.extend(archived.logs);
            if !archived.errors.is_empty() {
                s.log_archive_error = Some(archived.errors.join("; "));
            }
        });
    }

    /// A finished attempt: reported at once, recorded (final, or a failure
    /// the step's own retries may retry), then its pod's deletion requested
    /// (`delete`) or its pod kept.
    async fn finished(
        &self,
        index: usize,
        step: &Step,
        attempt: u32,
        outcome: StepOutcome,
        delete: bool,
        report: impl Fn(Event),
    ) {
        let done = self.finished_status(index, &outcome);
        // A failure the step's own retries may retry is not final
        // here: the loop decides (a resumed run replays the count).
        let final_end = outcome.succeeded() || step.retries.is_none();
        let reason = outcome.reason;
        report(Event::Ended(outcome));
        // Recorded before the delete: a resumed run knows the step ended,
        // or continues the step's retry count from this failure.
        // The run ending with this step needs no write: its record is
        // deleted before the pod (left registered for the final sweep);
        // a runner killed in between leaves the pod, which a new start
        // adopts (409) and finds finished.
        // A part of a run keeps its record: every end is written.
        let skippable = final_end && delete && !self.options.continued;
        let recorded = self
            .record_unless(&step.name, skippable, |r| {
                r.attempts = attempt + 1;
                if final_end {
                    r.done = Some(done);
                } else {
                    r.user_failures.push(reason);
                    r.last_failure = Some(done);
                }
            })
            .await;
        match recorded {
            Ok(false) => return,
            Ok(true) => {}
            // Only a resumed run would miss it (it would run the step again).
            Err(e) => {
                tracing::warn!(step = %step.name, error = %e, "could not record a finished step")
            }
        }
        if !delete {
            if let Ok(mut live) = self.live.lock() {
                live.remove(&index);
            }
        } else if let Err(e) = self.start_delete_live(index).await {
            // Left registered: the run's final sweep tries again.
            tracing::warn!(step = %step.name, error = %e, "could not delete a finished pod");
        }
    }

    /// A stopped attempt: a step timeout is recorded as the step's end;
    /// its pod's deletion is requested either way.
    async fn stopped(&self, index: usize, step: &Step, reason: StopReason, now: Timestamp) -> Event {
        if reason == StopReason::StepTimeout {
            let outcome = runner_failure(TerminationReason::DeadlineExceeded, reason.to_string(), now);
            let done = self.finished_status(index, &outcome);
            if let Err(e) = self.record(&step.name, |r| r.done = Some(done)).await {
                tracing::warn!(step = %step.name, error = %e, "could not record a timed-out step");
            }
        }
        let deleted = self.start_delete_live(index).await;
        Event::Stopped(deleted.err().map(|e| e.to_string()))
    }

    /// An attempt the API server refused for good: the step's end.
    async fn rejected(&self, index: usize, step: &Step, error: &Error, now: Timestamp) -> Event {
        let outcome = runner_failure(TerminationReason::Rejected, error.to_string(), now);
        let done = self.finished_status(index, &outcome);
        if let Err(e) = self.record(&step.name, |r| r.done = Some(done)).await {
            tracing::warn!(step = %step.name, error = %e, "could not record a rejected step");
        }
        let _ = self.start_delete_live(index).await;
        Event::Ended(outcome)
    }

    /// A disrupted or lost attempt: recorded as retryable, reported once its
    /// pod is gone (a step the record shows succeeded is not run again).
    async fn retryable(
        &self,
        index: usize,
        step: &Step,
        attempt: u32,
        (reason, message): (TerminationReason, String),
        now: Timestamp,
    ) -> Event {
        // The record already holds the step's success: not run again.
        let succeeded = self.recorder.step(&step.name).and_then(|r| r.done);
        if let Some(outcome) = succeeded
            .filter(|done| done.state == StepState::Succeeded)
            .and_then(|done| done.outcome)
        {
            let _ = self.start_delete_live(index).await;
            return Event::Ended(outcome);
        }
        let recorded = self
            .record(&step.name, |r| {
                r.attempts = attempt + 1;
                r.retryable.push(reason);
            })
            .await;
        if let Err(e) = recorded {
            tracing::warn!(step = %step.name, error = %e, "could not record a retryable end");
        }
        match self.delete_live(index).await {
            Ok(()) => Event::Retryable(reason, message),
            Err(e) => Event::Ended(runner_failure(
                reason,
                format!("{message}; the old pod could not be deleted: {e}"),
                now,
            )),
        }
    }

    /// One attempt: its object registered, created (or adopted), watched to
    /// its end with its logs streamed, and on a failure the logs of its
    /// other containers.
    async fn attempt(
        &self,
        index: usize,
        step: &Step,
        attempt: u32,
        adopt: bool,
        events: &mpsc::UnboundedSender<(usize, Event)>,
        keeping: Option<&Arc<Keeping>>,
    ) -> AttemptEnd {
        if let Some(reason) = self.options.unrunnable.get(&step.name) {
            return AttemptEnd::Broken(Error::Unrunnable {
                step: step.name.clone(),
                reason: reason.clone(),
            });
        }
        let name = attempt_name(step.object.name().unwrap_or(&step.name), attempt);
        let object = self.prepare(index, step, &name, attempt);
        let object_ref = ObjectRef::new(object.kind(), &name);
        self.register(index, attempt, &object_ref);
        if let Err(e) = self.create_or_adopt(index, &object, &object_ref, adopt).await {
            return AttemptEnd::Broken(e);
        }
        let (started_tx, started_rx) = oneshot::channel();
        let watch = self.watch(index, &object_ref, events, started_tx);
        let Some(logs) = &self.options.logs else {
            return watch.await;
        };
        let archived_too;
        let logs = match keeping {
            Some(keeping) => {
                archived_too = LogOptions {
                    sink: keeping.clone(),
                    ..logs.clone()
                };
                &archived_too
            }
            None => logs,
        };
        let target = LogTarget {
            step: &step.name,
            attempt,
            container: "",
        };
        let end = self
            .watch_with_logs(watch, &object_ref, target, logs, started_rx)
            .await;
        // A failed step, and a disrupted attempt that will be retried (its
        // pod is deleted next): what its other containers logged, while the
        // pod still exists.
        let failed = matches!(&end, AttemptEnd::Finished { outcome, .. } if !outcome.succeeded());
        if failed || matches!(end, AttemptEnd::Disrupted(..)) {
            let others: Vec<String> = object
                .container_names()
                .into_iter()
                .filter(|c| !logs.containers.contains(c))
                .collect();
            failure_logs(self.cluster, &object_ref, target, &others, logs).await;
        }
        end
    }

    /// Registers `object` as step `index`'s live one (before it is created)
    /// and shows the step running attempt `attempt`.
    fn register(&self, index: usize, attempt: u32, object: &ObjectRef) {
        if let Ok(mut live) = self.live.lock() {
            live.insert(index, object.clone());
        }
        let now = self.cluster.now();
        self.update(index, |s| {
            s.attempts = attempt + 1;
            s.object = Some(object.name.clone());
            s.state = StepState::Running;
            s.waiting_reason = None;
            s.started_at.get_or_insert(now);
        });
    }

    /// Creates `object` (`adopt`: it exists already, from a resumed run).
    /// An object an earlier try created although its answer was lost is
    /// adopted; one refused for good is no longer registered.
    async fn create_or_adopt(
        &self,
        index: usize,
        object: &StepObject,
        object_ref: &ObjectRef,
        adopt: bool,
    ) -> Result<(), Error> {
        if adopt {
            tracing::info!(object = %object_ref, "following the object of a resumed run");
            return Ok(());
        }
        // A write creating the run record goes first: if it finds an
        // earlier run's record, nothing more is created.
        self.recorder.first_write().await;
        if self.recorder.is_refused() {
            return Err(Error::RunExists {
                run_id: self.options.run_id.clone(),
            });
        }
        let name = object_ref.name.as_str();
        let retry = &self.options.retry;
        let created = self
            .limiter
            .call(retry, name, || self.cluster.create(object))
            .await;
        let created = match created {
            Err(e) if e.code() == Some(409) && self.is_ours(object, name).await => {
                // An earlier try was created but its answer lost: adopt it.
                tracing::info!(object = %object_ref, "adopting the object an earlier create made");
                Ok(())
            }
            other => other.map(|_| ()),
        };
        if let Err(e) = &created {
            // Refused for good (409 included): nothing of ours exists under that
            // name, and a pod that does is someone else's: never delete it.
            if !e.is_transient()
                && let Ok(mut live) = self.live.lock()
            {
                live.remove(&index);
            }
        }
        created
    }

    /// Runs `watch` to the attempt's end while the containers of `logs` are
    /// streamed (from the pod's start, `started`); streams still open at the
    /// end get `logs.grace`, then are told to stop and flush their maskers'
    /// held-back tails.
    async fn watch_with_logs(
        &self,
        watch: impl std::future::Future<Output = AttemptEnd>,
        object: &ObjectRef,
        target: LogTarget<'_>,
        logs: &LogOptions,
        started: oneshot::Receiver<()>,
    ) -> AttemptEnd {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stream_logs = async {
            if started.await.is_err() {
                return;
            }
            for container in &logs.containers {
                let mut masker = (logs.masker)(container);
                let mut stop = stop_rx.clone();
                let stopped = async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                };
                let target = LogTarget { container, ..target };
                let sink = logs.sink.as_ref();
                let streamed =
                    stream_masked_logs_until(self.cluster, object, target, masker.as_mut(), sink, stopped);
                if let Err(e) = streamed.await {
                    tracing::warn!(step = %target.step, container, error = %e, "log stream ended early");
                }
            }
        };
        let mut stream_logs = std::pin::pin!(stream_logs);
        let mut watch = std::pin::pin!(watch);
        let mut logs_done = false;
        let end = loop {
            tokio::select! {
                end = &mut watch => break end,
                () = &mut stream_logs, if !logs_done => logs_done = true,
            }
        };
        if !logs_done && tokio::time::timeout(logs.grace, &mut stream_logs).await.is_err() {
            let _ = stop_tx.send(true);
            stream_logs.await;
        }
        end
    }

    /// Whether an object called `name` exists with the run and step labels
    /// this attempt's `object` was created with (`prepare` adds them where
    /// the renderer did not): pod-builder labels a pod with the pipeline's
    /// step name, not with the object's name `c8s run` names its steps after.
    async fn is_ours(&self, object: &StepObject, name: &str) -> bool {
        let selector: Vec<String> = [crate::cluster::RUN_LABEL, crate::cluster::STEP_LABEL]
            .into_iter()
            .filter_map(|key| object.label(key).map(|value| format!("{key}={value}")))
            .collect();
        let selector = selector.join(",");
        let retry = &self.options.retry;
        let listed = self
            .limiter
            .call(retry, name, || self.cluster.list(&selector))
            .await;
        listed.is_ok_and(|objects| objects.iter().any(|o| o.object.name == name))
    }

    /// The object to create for this attempt: renamed, with c8s's labels,
    /// the attempt number (from 1) as label and env, a finally step's outcomes.
    fn prepare(&self, index: usize, step: &Step, name: &str, attempt: u32) -> StepObject {
        let mut object = step.object.renamed(name);
        let number = (attempt + 1).to_string();
        object.set_label(c8s_pipeline_model::finally::ATTEMPT_LABEL, &number);
        object.set_main_env(c8s_pipeline_model::finally::ATTEMPT_ENV, &number);
        let outcomes = self
            .finally_env
            .lock()
            .ok()
            .and_then(|env| env.get(&index).cloned())
            .unwrap_or_default();
        for (var, value) in outcomes {
            object.set_main_env(&var, &value);
        }
        let labels = [
            (crate::cluster::MANAGED_BY_LABEL, crate::cluster::MANAGED_BY_VALUE),
            (crate::cluster::RUN_LABEL, self.options.run_id.as_str()),
            (crate::cluster::STEP_LABEL, step.name.as_str()),
        ];
        for (key, value) in labels {
            if object.label(key).is_none() {
                object.set_label(key, value);
            }
        }
        object
    }

    pub(crate) fn set_state(&self, index: usize, state: StepState, waiting_reason: Option<String>) {
        let unchanged = self
            .status
            .lock()
            .ok()
            .and_then(|s| {
                s.steps
                    .get(index)
                    .map(|s| s.state == state && s.waiting_reason == waiting_reason)
            })
            .unwrap_or(false);
        if !unchanged {
            self.update(index, |s| {
                s.state = state;
                s.waiting_reason = waiting_reason;
            });
        }
    }
}

/// An outcome the runner gives an attempt that has no exit code of its own,
/// ended `at`.
fn runner_failure(reason: TerminationReason, message: String, at: Timestamp) -> StepOutcome {
    StepOutcome {
        exit_code: None,
        reason,
        message,
        started_at: None,
        finished_at: Some(at),
    }
}

/// The object name of a step's attempt: the base name, then `-r1`, `-r2`...,
/// kept a valid 63-character DNS label. A base too long for the suffix is cut
/// and gets a hash of the whole base, so two long names that share their
/// first 50-odd characters still get different retry names.
pub fn attempt_name(base: &str, attempt: u32) -> String {
    if attempt == 0 {
        return base.to_owned();
    }
    let suffix = format!("-r{attempt}");
    if base.len() + suffix.len() <= MAX_NAME {
        return format!("{base}{suffix}");
    }
    let hash = fnv1a(0, &[base.as_bytes()]);
    let tag = format!("-{:06x}", hash & 0xff_ffff);
    let keep = MAX_NAME.saturating_sub(suffix.len() + tag.len()).min(base.len());
    let cut = base.get(..keep).unwrap_or(base).trim_end_matches('-');
    format!("{cut}{tag}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::attempt_name;

    #[test]
    fn attempt_names_stay_valid_labels() {
        assert_eq!(attempt_name("ci-unit", 0), "ci-unit");
        assert_eq!(attempt_name("ci-unit", 2), "ci-unit-r2");
        let long = "a".repeat(62) + "-b";
        let name = attempt_name(&long, 1);
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("-r1") && name.starts_with("aaaa"), "{name}");
        // Two long names sharing their first 62 characters stay distinct.
        let other = attempt_name(&("a".repeat(62) + "-c"), 1);
        assert_ne!(name, other);
        assert_eq!(other.len(), 63);
        assert!(attempt_name(&long, 12).len() <= 63);
    }
}

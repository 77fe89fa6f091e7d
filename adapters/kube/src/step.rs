//! Runs one step: create its pod, watch it to an outcome, stream its logs,
//! delete it, and retry transient faults with a fresh pod.

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures::StreamExt;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::cluster::{Cluster, ObjectRef, StepObject};
use crate::error::Error;
use crate::logs::stream_masked_logs;
use crate::observe::{Assessment, assess};
use crate::options::{RunOptions, Step};
use crate::outcome::{RunStatus, StepOutcome, StepState, StepStatus, TerminationReason};

/// Longest pod name Kubernetes turns into a hostname without cutting it.
const MAX_NAME: usize = 63;

/// What the scheduler shares with its running steps.
pub(crate) struct Runner<'a, C> {
    pub cluster: &'a C,
    pub options: &'a RunOptions,
    pub status: &'a Mutex<RunStatus>,
    /// The one live object of each step (registered before it is created).
    pub live: &'a Mutex<BTreeMap<usize, ObjectRef>>,
}

/// How one attempt (one pod) ended.
enum AttemptEnd {
    Finished { outcome: StepOutcome, delete: bool },
    Disrupted(TerminationReason, String),
    TimedOut,
    Broken(Error),
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

    /// Deletes step `index`'s live object, if any; keeps it registered when deletion fails.
    pub async fn delete_live(&self, index: usize) -> Result<(), Error> {
        let object = self.live.lock().ok().and_then(|live| live.get(&index).cloned());
        let Some(object) = object else { return Ok(()) };
        self.options
            .retry
            .call(&object.name, || self.cluster.delete(&object))
            .await?;
        if let Ok(mut live) = self.live.lock() {
            live.remove(&index);
        }
        Ok(())
    }

    /// Runs step `index` to its outcome. On return the step has no live pod
    /// (unless deletion failed permanently, left for the scheduler's final sweep).
    pub async fn run(&self, index: usize, step: &Step) -> StepOutcome {
        let mut deadline: Option<Instant> = None;
        let (mut pulls, mut disruptions) = (0u32, 0u32);
        let mut attempt = 0u32;
        loop {
            let end = self.attempt(index, step, attempt, &mut deadline).await;
            let keep = matches!(&end, AttemptEnd::Finished { delete: false, .. });
            let deleted = if keep {
                if let Ok(mut live) = self.live.lock() {
                    live.remove(&index);
                }
                Ok(())
            } else {
                self.delete_live(index).await
            };
            let now = self.cluster.now();
            let fail = |reason, message: String| StepOutcome {
                exit_code: None,
                reason,
                message,
                started_at: None,
                finished_at: Some(now),
            };
            let (reason, message) = match end {
                AttemptEnd::Finished { outcome, .. } => return outcome,
                AttemptEnd::TimedOut => {
                    return fail(
                        TerminationReason::DeadlineExceeded,
                        "the step's timeout ran out".into(),
                    );
                }
                AttemptEnd::Broken(e) if e.is_transient() => (TerminationReason::Lost, e.to_string()),
                AttemptEnd::Broken(e) => return fail(TerminationReason::Rejected, e.to_string()),
                AttemptEnd::Disrupted(reason, message) => (reason, message),
            };
            let (count, limit) = match reason {
                TerminationReason::ImagePullBackOff => (&mut pulls, self.options.retry.image_pull_retries),
                _ => (&mut disruptions, self.options.retry.disruption_retries),
            };
            if *count >= limit {
                return fail(reason, message);
            }
            // A retry must never overlap the old pod: only go on once it is gone.
            if let Err(e) = deleted {
                return fail(
                    reason,
                    format!("{message}; the old pod could not be deleted: {e}"),
                );
            }
            *count += 1;
            tracing::info!(step = %step.name, attempt, ?reason, %message, "retrying step with a new pod");
            tokio::time::sleep(self.options.retry.backoff(&step.name, attempt)).await;
            attempt += 1;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return fail(
                    TerminationReason::DeadlineExceeded,
                    "the step's timeout ran out".into(),
                );
            }
        }
    }

    async fn attempt(
        &self,
        index: usize,
        step: &Step,
        attempt: u32,
        deadline: &mut Option<Instant>,
    ) -> AttemptEnd {
        let name = attempt_name(step.object.name().unwrap_or(&step.name), attempt);
        let object = self.prepare(step, &name);
        let object_ref = ObjectRef::new(object.kind(), &name);
        if let Ok(mut live) = self.live.lock() {
            live.insert(index, object_ref.clone());
        }
        let now = self.cluster.now();
        self.update(index, |s| {
            s.attempts = attempt + 1;
            s.object = Some(name.clone());
            s.state = StepState::Running;
            s.waiting_reason = None;
            s.started_at.get_or_insert(now);
        });
        if let Err(e) = self
            .options
            .retry
            .call(&name, || self.cluster.create(&object))
            .await
        {
            // Refused for good (409 included): nothing of ours exists under that
            // name, and a pod that does is someone else's: never delete it.
            if !e.is_transient()
                && let Ok(mut live) = self.live.lock()
            {
                live.remove(&index);
            }
            return AttemptEnd::Broken(e);
        }
        let (started_tx, started_rx) = oneshot::channel();
        let watch = self.watch(index, step, &object_ref, deadline, started_tx);
        let Some(logs) = &self.options.logs else {
            return watch.await;
        };
        let stream_logs = async {
            if started_rx.await.is_err() {
                return;
            }
            for container in &logs.containers {
                let mut masker = (logs.masker)(container);
                let streamed = stream_masked_logs(
                    self.cluster,
                    &object_ref,
                    container,
                    masker.as_mut(),
                    logs.sink.as_ref(),
                    &step.name,
                    attempt,
                );
                if let Err(e) = streamed.await {
                    tracing::warn!(step = %step.name, container, error = %e, "log stream ended early");
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
        if !logs_done {
            let _ = tokio::time::timeout(logs.grace, stream_logs).await;
        }
        end
    }

    /// The object to create for this attempt: renamed, with c8s's labels.
    fn prepare(&self, step: &Step, name: &str) -> StepObject {
        let mut object = step.object.renamed(name);
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

    async fn watch(
        &self,
        index: usize,
        step: &Step,
        object: &ObjectRef,
        deadline: &mut Option<Instant>,
        started: oneshot::Sender<()>,
    ) -> AttemptEnd {
        let retry = &self.options.retry;
        let mut started = Some(started);
        let mut started_at = None;
        let mut failures = 0u32;
        loop {
            let mut stream = match self.cluster.observe(object).await {
                Ok(stream) => stream,
                Err(e) if e.is_transient() && failures < retry.watch_retries => {
                    tokio::time::sleep(retry.backoff(&object.name, failures)).await;
                    failures += 1;
                    continue;
                }
                Err(e) => return AttemptEnd::Broken(e),
            };
            loop {
                let next = match *deadline {
                    Some(d) => match tokio::time::timeout_at(d, stream.next()).await {
                        Ok(next) => next,
                        Err(_) => return AttemptEnd::TimedOut,
                    },
                    None => stream.next().await,
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
                failures = 0;
                let assessment = assess(&observation);
                if deadline.is_none() && !matches!(assessment, Assessment::WaitingForCapacity(_)) {
                    *deadline = step.timeout.map(|t| Instant::now() + t);
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

    fn set_state(&self, index: usize, state: StepState, waiting_reason: Option<String>) {
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

/// The object name of a step's attempt: the base name, then `-r1`, `-r2`...,
/// cut so the whole stays a valid 63-character DNS label.
pub fn attempt_name(base: &str, attempt: u32) -> String {
    if attempt == 0 {
        return base.to_owned();
    }
    let suffix = format!("-r{attempt}");
    let keep = MAX_NAME.saturating_sub(suffix.len()).min(base.len());
    let cut = base.get(..keep).unwrap_or(base).trim_end_matches('-');
    format!("{cut}{suffix}")
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
        assert!(name.ends_with("a-r1"));
    }
}

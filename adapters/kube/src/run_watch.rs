//! One watch per run: a pump reads the run's watch ([`Cluster::watch_run`])
//! and hands each object's observations to the attempt that follows it.
//! Re-subscription backs off and gives up after `watch_retries` relists
//! without progress; then every follower is told, and its step ends.

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures::StreamExt;
use tokio::sync::mpsc;

use crate::cluster::{Cluster, ObjectRef, ObservationStream, RunWatchStream};
use crate::error::{Error, Result};
use crate::observe::PodObservation;
use crate::retry::RetryPolicy;

type Follower = mpsc::UnboundedSender<Result<PodObservation>>;

#[derive(Default)]
struct HubState {
    latest: BTreeMap<ObjectRef, PodObservation>,
    followers: BTreeMap<ObjectRef, Vec<Follower>>,
    dead: Option<String>,
}

/// The observations of a run's objects, shared by its attempts.
#[derive(Default)]
pub(crate) struct Hub {
    state: Mutex<HubState>,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Follows `object`: its latest observation first (a pending pod if the
    /// watch has not seen it yet), then every change.
    pub fn follow(&self, object: &ObjectRef) -> Result<ObservationStream> {
        let mut state = self.lock();
        if let Some(detail) = &state.dead {
            return Err(Error::WatchEnded {
                object: object.to_string(),
                detail: detail.clone(),
            });
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let first = state.latest.get(object).cloned().unwrap_or_default();
        let _ = tx.send(Ok(first));
        state.followers.entry(object.clone()).or_default().push(tx);
        let stream =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        Ok(stream.boxed())
    }

    /// Records a change; whether it was news.
    fn publish(&self, object: ObjectRef, observation: PodObservation) -> bool {
        let mut state = self.lock();
        if state.latest.get(&object) == Some(&observation) {
            return false;
        }
        if let Some(followers) = state.followers.get_mut(&object) {
            followers.retain(|tx| tx.send(Ok(observation.clone())).is_ok());
        }
        state.latest.insert(object, observation);
        true
    }

    /// The watch is gone for good: followers' streams end, new ones fail.
    fn kill(&self, detail: String) {
        let mut state = self.lock();
        state.dead = Some(detail);
        state.followers.clear();
    }
}

/// Reads the run's watch into `hub` until the run ends (never returns while
/// the watch works). `first` is the subscription already opened, if any.
pub(crate) async fn pump<C: Cluster>(
    cluster: &C,
    hub: &Hub,
    run_id: &str,
    retry: &RetryPolicy,
    first: Option<RunWatchStream>,
) {
    let mut stream = first;
    let mut failures = 0u32;
    loop {
        if let Some(mut events) = stream.take() {
            while let Some(event) = events.next().await {
                match event {
                    Ok((object, observation)) => {
                        // Only news is progress: a relist replays what was known.
                        if hub.publish(object, observation) {
                            failures = 0;
                        }
                    }
                    Err(e) if e.is_transient() => {
                        tracing::debug!(run = run_id, error = %e, "the run's watch broke, subscribing again");
                        break;
                    }
                    Err(e) => return hub.kill(e.to_string()),
                }
            }
        }
        if failures >= retry.watch_retries {
            return hub.kill(format!(
                "gave up after {failures} re-subscriptions of the run's watch"
            ));
        }
        tokio::time::sleep(retry.backoff(run_id, failures)).await;
        failures += 1;
        match cluster.watch_run(run_id).await {
            Ok(Some(events)) => stream = Some(events),
            Ok(None) => return hub.kill("the cluster cannot watch a run".into()),
            Err(e) if e.is_transient() => {}
            Err(e) => return hub.kill(e.to_string()),
        }
    }
}

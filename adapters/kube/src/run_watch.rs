//! One watch per run: a pump reads the run's watch ([`Cluster::watch_run`])
//! and hands each object's observations to the attempt that follows it.
//! Re-subscription backs off and gives up after `watch_retries` relists
//! without progress; then every follower is told, and its step ends.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use futures::StreamExt;
use tokio::sync::mpsc;

use crate::cluster::{Cluster, ObjectKind, ObjectRef, ObservationStream, RunWatchStream, is_end_of_list};
use crate::error::{Error, Result};
use crate::observe::{PodObservation, PodPhase};
use crate::retry::RetryPolicy;

type Follower = mpsc::UnboundedSender<Result<PodObservation>>;

#[derive(Default)]
struct HubState {
    latest: BTreeMap<ObjectRef, PodObservation>,
    followers: BTreeMap<ObjectRef, Vec<Follower>>,
    dead: Option<String>,
    /// The objects a list running now has shown so far.
    listing: Option<BTreeSet<ObjectRef>>,
}

/// The observations of a run's objects, shared by its attempts.
pub(crate) struct Hub {
    state: Mutex<HubState>,
    /// Lists completed (bumped once more when the watch dies).
    lists: tokio::sync::watch::Sender<u64>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            state: Mutex::default(),
            lists: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Hub {
    /// Waits for the watch's first list (or its death); whether that list
    /// showed any live object of the run.
    pub async fn first_list_shows_objects(&self) -> bool {
        let mut lists = self.lists.subscribe();
        let _ = lists.wait_for(|&n| n > 0).await;
        let state = self.lock();
        state.latest.values().any(|o| o.phase != PodPhase::Gone)
    }

    /// A (re)subscription starts with a list.
    fn begin_list(&self) {
        self.lock().listing = Some(BTreeSet::new());
    }

    /// The list ended: a bare pod it did not show was deleted while the
    /// watch was down (no DELETED event came), and is judged from the
    /// cluster, not from memory: it is gone. A Job's pod is not (the Job may
    /// be replacing it; its verdict comes with the Job's next pod or status).
    fn end_list(&self) {
        let listed = self.lock().listing.take();
        if let Some(listed) = listed {
            let vanished: Vec<(ObjectRef, String)> = self
                .lock()
                .latest
                .iter()
                .filter(|(o, seen)| {
                    o.kind == ObjectKind::Pod && seen.phase != PodPhase::Gone && !listed.contains(*o)
                })
                .map(|(o, seen)| (o.clone(), seen.pod_name.clone()))
                .collect();
            for (object, pod) in vanished {
                tracing::debug!(object = %object, "missing from the relist: deleted while the watch was down");
                let name = if pod.is_empty() { object.name.clone() } else { pod };
                self.publish(object, PodObservation::gone(&name));
            }
        }
        self.lists.send_modify(|n| *n += 1);
    }

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
        if let Some(listing) = &mut state.listing {
            listing.insert(object.clone());
        }
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
        drop(state);
        self.lists.send_modify(|n| *n += 1);
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
            hub.begin_list();
            while let Some(event) = events.next().await {
                match event {
                    Ok((object, _)) if is_end_of_list(&object) => hub.end_list(),
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

//! The simulated run watch: one stream of every change to a run's pods.

use std::collections::{BTreeMap, VecDeque};

use futures::StreamExt;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{SimCluster, wait_for_change};
use crate::cluster::{ObjectKind, ObjectRef, RUN_LABEL, RunWatchStream};
use crate::error::{Error, Result};
use crate::observe::{PodObservation, PodPhase};

struct RunWatch {
    sim: SimCluster,
    run: String,
    changes: watch::Receiver<u64>,
    last: BTreeMap<String, (ObjectKind, PodObservation)>,
    queue: VecDeque<Result<(ObjectRef, PodObservation)>>,
    ended: bool,
    /// The first look (the watch's list) is done and marked.
    listed: bool,
}

impl RunWatch {
    /// Queues what changed since the last look; returns when to look again.
    fn look(&mut self) -> Option<Instant> {
        let pods: Vec<(String, ObjectKind, String)> = {
            let state = self.sim.lock();
            state
                .pods
                .iter()
                .filter(|(_, p)| p.labels.get(RUN_LABEL) == Some(&self.run))
                .map(|(name, p)| (name.clone(), p.kind, p.step.clone()))
                .collect()
        };
        let mut next_at: Option<Instant> = None;
        for (name, kind, step) in &pods {
            let (observation, next) = self.sim.snapshot(name);
            next_at = match (next_at, next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if self.last.get(name).map(|(_, o)| o) == Some(&observation) {
                continue;
            }
            self.last.insert(name.clone(), (*kind, observation.clone()));
            self.queue
                .push_back(Ok((ObjectRef::new(*kind, name), observation)));
            if let Some(error) = self.sim.watch_break(step, name) {
                // The watch breaks right after this event.
                self.queue.push_back(Err(error));
                self.ended = true;
                return None;
            }
        }
        let gone: Vec<String> = self
            .last
            .keys()
            .filter(|n| !pods.iter().any(|(name, _, _)| name == *n))
            .cloned()
            .collect();
        for name in gone {
            if let Some((kind, seen)) = self.last.remove(&name)
                && seen.phase != PodPhase::Gone
            {
                self.queue
                    .push_back(Ok((ObjectRef::new(kind, &name), PodObservation::gone(&name))));
            }
        }
        next_at
    }
}

impl SimCluster {
    /// A stream of every change to run `run`'s pods.
    pub(super) fn run_watch(&self, run: &str) -> RunWatchStream {
        let start = RunWatch {
            sim: self.clone(),
            run: run.to_owned(),
            changes: self.deletions.subscribe(),
            last: BTreeMap::new(),
            queue: VecDeque::new(),
            ended: false,
            listed: false,
        };
        futures::stream::unfold(start, |mut watch| async move {
            loop {
                if let Some(item) = watch.queue.pop_front() {
                    return Some((item, watch));
                }
                if watch.ended {
                    return None;
                }
                let next = watch.look();
                if !watch.listed && !watch.ended {
                    watch.listed = true;
                    watch.queue.push_back(Ok(crate::cluster::end_of_list()));
                }
                if watch.queue.is_empty() {
                    wait_for_change(&mut watch.changes, next).await;
                }
            }
        })
        .boxed()
    }

    /// Whether a watch breaks after an event of `name` (step `step`'s
    /// scripted disconnects and 410 expiries), and with what error.
    pub(super) fn watch_break(&self, step: &str, name: &str) -> Option<Error> {
        let mut state = self.lock();
        let mut script = state.script(step);
        let error = if script.watch_disconnects > 0 {
            script.watch_disconnects -= 1;
            Error::WatchEnded {
                object: name.to_owned(),
                detail: "injected disconnect".into(),
            }
        } else if script.watch_expirations > 0 {
            script.watch_expirations -= 1;
            Error::api("watch pods", name, 410, "too old resource version")
        } else {
            return None;
        };
        state.scripts.insert(step.to_owned(), script);
        state.stats.watch_disconnects += 1;
        Some(error)
    }
}

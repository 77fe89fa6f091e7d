//! The run's one watch on a real cluster: kube-runtime's `watcher` on the
//! run's label selector, each pod mapped to the object c8s created (the pod,
//! or the Job named by its `batch.kubernetes.io/job-name` label).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use futures::{Stream, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};

use crate::cluster::{ObjectKind, ObjectRef, RUN_LABEL, RunWatchStream};
use crate::error::{Error, Result};
use crate::kube_api::{JOB_NAME_LABEL, from_kube, job_verdict};
use crate::observe::PodObservation;

type Item = Result<(ObjectRef, PodObservation)>;

struct State<S> {
    events: S,
    jobs: Api<Job>,
    /// Every pod seen, by name, with the object it belongs to.
    known: BTreeMap<String, ObjectRef>,
    /// The pods listed since the last `Init`, while a relist runs.
    relisted: Option<BTreeSet<String>>,
    queue: VecDeque<Item>,
}

/// The object c8s created for `pod`.
fn owner(pod: &Pod) -> (String, ObjectRef) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let job = pod.metadata.labels.as_ref().and_then(|l| l.get(JOB_NAME_LABEL));
    let object = match job {
        Some(job) => ObjectRef::new(ObjectKind::Job, job),
        None => ObjectRef::new(ObjectKind::Pod, &name),
    };
    (name, object)
}

impl<S: Stream<Item = watcher::Result<Event<Pod>>> + Unpin> State<S> {
    fn seen(&mut self, pod: &Pod) {
        let (name, object) = owner(pod);
        if let Some(relisted) = &mut self.relisted {
            relisted.insert(name.clone());
        }
        self.known.insert(name, object.clone());
        self.queue.push_back(Ok((object, PodObservation::from_pod(pod))));
    }

    /// A pod is gone: a bare pod says so; a Job's pod lets the Job say why
    /// (nothing while the Job replaces it).
    async fn gone(&mut self, name: &str) {
        let Some(object) = self.known.remove(name) else {
            return;
        };
        match object.kind {
            ObjectKind::Pod => self.queue.push_back(Ok((object, PodObservation::gone(name)))),
            ObjectKind::Job => match job_verdict(&self.jobs, &object.name).await {
                Ok(Some(verdict)) => self.queue.push_back(Ok((object, verdict))),
                Ok(None) => {}
                Err(e) => self.queue.push_back(Err(e)),
            },
        }
    }

    async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            let event = match self.events.next().await? {
                Ok(event) => event,
                Err(e) => return Some(Err(from_watcher(e))),
            };
            match event {
                Event::Apply(pod) | Event::InitApply(pod) => self.seen(&pod),
                Event::Delete(pod) => {
                    let (name, object) = owner(&pod);
                    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                    if object.kind == ObjectKind::Pod && matches!(phase, Some("Succeeded" | "Failed")) {
                        // Deleted (by someone else) before its end was seen:
                        // the DELETED event carries its final status.
                        self.queue.push_back(Ok((object, PodObservation::from_pod(&pod))));
                    }
                    self.gone(&name).await;
                }
                Event::Init => self.relisted = Some(BTreeSet::new()),
                Event::InitDone => {
                    // What vanished while the watch was down shows no Delete.
                    let listed = self.relisted.take().unwrap_or_default();
                    let vanished: Vec<String> = self
                        .known
                        .keys()
                        .filter(|n| !listed.contains(*n))
                        .cloned()
                        .collect();
                    for name in vanished {
                        self.gone(&name).await;
                    }
                    self.queue.push_back(Ok(crate::cluster::end_of_list()));
                }
            }
        }
    }
}

fn from_watcher(error: watcher::Error) -> Error {
    match error {
        watcher::Error::InitialListFailed(e) => from_kube("list pods", "of the run", e),
        watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            from_kube("watch pods", "of the run", e)
        }
        watcher::Error::WatchError(status) => Error::WatchEnded {
            object: "the run's pods".into(),
            detail: format!("{} {}: {}", status.code, status.reason, status.message),
        },
        other => Error::WatchEnded {
            object: "the run's pods".into(),
            detail: other.to_string(),
        },
    }
}

/// Watches run `run_id`'s pods: a list, then a watch, relisting on 410 Gone.
pub(crate) fn run_watch(pods: Api<Pod>, jobs: Api<Job>, run_id: &str) -> RunWatchStream {
    let config = watcher::Config::default().labels(&format!("{RUN_LABEL}={run_id}"));
    let state = State {
        events: watcher::watcher(pods, config).boxed(),
        jobs,
        known: BTreeMap::new(),
        relisted: None,
        queue: VecDeque::new(),
    };
    futures::stream::unfold(state, |mut state| async move {
        let item = state.next().await?;
        Some((item, state))
    })
    .boxed()
}

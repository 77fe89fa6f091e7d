//! The run's pods as the Controller's own watch sees them: the reflector
//! store fed by the stream that also wakes the runs
//! (`Controller::owns_stream`). The controller renders steps as Pods only, so
//! it keeps no Job watch (a Job, should one be asked about, is read from the
//! API server). A reconcile reads step state from them, so a
//! running run costs no request per step; creates, deletes, logs and Events
//! go to the API server. A cache may lag: a pod this controller created less
//! than [`CREATED_LAG`] ago and not cached yet is still being created (no
//! request: the watch's ADDED event wakes the run again); any other pod
//! missing from it is looked up once with a GET before it counts as gone.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use c8s_kube::{
    Cluster, KubeCluster, ListedObject, LogStream, ObjectEvent, ObjectKind, ObjectRef, ObservationStream,
    PodObservation, PodPhase, RUN_LABEL, Result, StepObject,
};
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};

/// How long a pod created here may be missing from the cache before a
/// reconcile asks the API server for it: far longer than a watch event
/// takes to arrive, short enough that a pod deleted before the watch showed
/// it is found gone soon (its run is looked at again by then: a reconcile
/// that starts a step also requeues within the poll).
pub const CREATED_LAG: std::time::Duration = std::time::Duration::from_secs(30);

/// The label the Job controller puts on a Job's pods.
const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// The reflector store of c8s's pods (label `c8s.dev/run`) in every
/// namespace.
#[derive(Clone)]
pub struct Stores {
    pods: Store<Pod>,
    /// Pods created here (namespace, name) and when, until the cache has them.
    created: Arc<Mutex<BTreeMap<(String, String), Instant>>>,
    /// The first list arrived (`false`: the writer is gone), shared by every waiter.
    filled: Shared<BoxFuture<'static, bool>>,
}

impl Stores {
    /// The store `pods`, filled by its reflector.
    pub fn new(pods: Store<Pod>) -> Self {
        let p = pods.clone();
        // One future polls the stores' readiness and `Shared` wakes every
        // waiter: kube-runtime's `Store::wait_until_ready` keeps only the
        // waker of the task that polled it last, so of several reconciles
        // waiting on it at once (many runs when a controller starts) all
        // but one waited forever.
        let filled = async move { p.wait_until_ready().await.is_ok() }.boxed().shared();
        Stores {
            pods,
            filled,
            created: Arc::default(),
        }
    }

    /// Waits until the store holds its initial list; `false` if the writer
    /// is gone (the Controller stopped). Any number of tasks may wait at once.
    pub async fn ready(&self) -> bool {
        self.filled.clone().await
    }
}

/// A [`Cluster`] in one namespace reading pods from [`Stores`].
pub struct CachedCluster {
    live: KubeCluster,
    stores: Stores,
}

impl CachedCluster {
    /// Reads from `stores` in `live`'s namespace; writes through `live`.
    pub fn new(live: KubeCluster, stores: Stores) -> Self {
        CachedCluster { live, stores }
    }

    fn in_namespace(&self, meta: &ObjectMeta) -> bool {
        meta.namespace.as_deref() == Some(self.live.namespace())
    }

    /// Whether pod `name` was created here less than [`CREATED_LAG`] ago;
    /// forgets the pods the cache has since shown and the old ones.
    fn just_created(&self, name: &str) -> bool {
        let Ok(mut created) = self.stores.created.lock() else {
            return false;
        };
        let namespace = self.live.namespace();
        forget_seen(&self.stores.pods, &mut created);
        created.contains_key(&(namespace.to_owned(), name.to_owned()))
    }

    fn cached_pod(&self, object: &ObjectRef) -> Option<Arc<Pod>> {
        match object.kind {
            ObjectKind::Pod => {
                let key =
                    kube::runtime::reflector::ObjectRef::new(&object.name).within(self.live.namespace());
                self.stores.pods.get(&key)
            }
            ObjectKind::Job => self.stores.pods.find(|p| {
                self.in_namespace(&p.metadata)
                    && p.labels().get(JOB_NAME_LABEL).map(String::as_str) == Some(object.name.as_str())
            }),
        }
    }
}

/// `key=value` of a selector holding one equality (what the controller uses).
/// Not kube-core's `Selector`: it builds and matches selectors but parses
/// none from text (no `FromStr`), and [`Cluster::list`] takes the text.
fn equality(selector: &str) -> Option<(&str, &str)> {
    let (key, value) = selector.split_once('=')?;
    let value = value.strip_prefix('=').unwrap_or(value);
    let plain = |s: &str| !s.contains([',', '!', '(', ' ']);
    (plain(key) && plain(value)).then_some((key, value))
}

fn listed(object: ObjectRef, meta: &ObjectMeta, finished: bool) -> ListedObject {
    ListedObject {
        object,
        run: meta.labels.as_ref().and_then(|l| l.get(RUN_LABEL)).cloned(),
        created_at: meta.creation_timestamp.as_ref().map(|t| t.0),
        finished,
        owned_by_job: meta.owner_references.iter().flatten().any(|o| o.kind == "Job"),
    }
}

/// Drops from `created` the pods `cache` has shown since, and those
/// created longer than [`CREATED_LAG`] ago: what stays are the pods of the
/// last moments, however many runs go by.
fn forget_seen(cache: &Store<Pod>, created: &mut BTreeMap<(String, String), Instant>) {
    created.retain(|(ns, pod), at| {
        let key = kube::runtime::reflector::ObjectRef::new(pod).within(ns);
        at.elapsed() < CREATED_LAG && cache.get(&key).is_none()
    });
}

impl Cluster for CachedCluster {
    async fn create(&self, object: &StepObject) -> Result<ObjectRef> {
        let created = self.live.create(object).await?;
        if created.kind == ObjectKind::Pod
            && let Ok(mut pods) = self.stores.created.lock()
        {
            // Pruned here too: a steady controller, whose cache shows every
            // pod, never asks `just_created`, and the map kept every pod ever created.
            forget_seen(&self.stores.pods, &mut pods);
            pods.insert(
                (self.live.namespace().to_owned(), created.name.clone()),
                Instant::now(),
            );
        }
        Ok(created)
    }

    /// The cached state only (one observation): a reconcile takes the first.
    async fn observe(&self, object: &ObjectRef) -> Result<ObservationStream> {
        let observation = match (self.cached_pod(object), object.kind) {
            (Some(pod), _) => PodObservation::from_pod(&pod),
            // Created a moment ago, not in the cache yet: still being created.
            (None, ObjectKind::Pod) if self.just_created(&object.name) => PodObservation {
                pod_name: object.name.clone(),
                phase: PodPhase::Pending,
                ..PodObservation::default()
            },
            (None, ObjectKind::Pod) => {
                let pods = Api::<Pod>::namespaced(self.live.client().clone(), self.live.namespace());
                match pods.get_opt(&object.name).await {
                    Ok(Some(pod)) => PodObservation::from_pod(&pod),
                    Ok(None) => PodObservation::gone(&object.name),
                    Err(e) => {
                        return Err(c8s_kube::Error::Protocol {
                            operation: "get pod",
                            object: object.name.clone(),
                            detail: e.to_string(),
                        });
                    }
                }
            }
            // The Job's pod is not cached: the API server's view, first answer only.
            (None, ObjectKind::Job) => match self.live.observe(object).await?.next().await {
                Some(first) => first?,
                None => PodObservation {
                    phase: PodPhase::Pending,
                    ..PodObservation::default()
                },
            },
        };
        Ok(futures::stream::once(futures::future::ready(Ok(observation))).boxed())
    }

    async fn logs(&self, object: &ObjectRef, container: &str) -> Result<LogStream> {
        self.live.logs(object, container).await
    }

    async fn delete(&self, object: &ObjectRef) -> Result<()> {
        self.live.delete(object).await
    }

    async fn events(&self, object: &ObjectRef) -> Result<Vec<ObjectEvent>> {
        self.live.events(object).await
    }

    /// Pods of the namespace from the store (the controller creates no
    /// Jobs); a selector other than one `key=value` asks the API server.
    async fn list(&self, label_selector: &str) -> Result<Vec<ListedObject>> {
        let Some((key, value)) = equality(label_selector) else {
            return self.live.list(label_selector).await;
        };
        let matches = |meta: &ObjectMeta| {
            self.in_namespace(meta)
                && meta.labels.as_ref().and_then(|l| l.get(key)).map(String::as_str) == Some(value)
        };
        let mut found = Vec::new();
        let mut pods = self.stores.pods.state_filter(|p| matches(&p.metadata));
        pods.sort_by_key(|p| p.name_any());
        for pod in pods {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            let finished = matches!(phase, Some("Succeeded" | "Failed"));
            found.push(listed(
                ObjectRef::new(ObjectKind::Pod, pod.name_any()),
                &pod.metadata,
                finished,
            ));
        }
        Ok(found)
    }

    fn now(&self) -> Timestamp {
        self.live.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_created_here_are_forgotten_once_cached_or_old() {
        let (cache, mut writer) = kube::runtime::reflector::store::<Pod>();
        let pod = |name: &str| {
            let mut pod = Pod::default();
            pod.metadata.name = Some(name.into());
            pod.metadata.namespace = Some("ci".into());
            pod
        };
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(pod("cached")));
        let now = Instant::now();
        let old = now.checked_sub(CREATED_LAG).unwrap_or(now);
        let mut created: BTreeMap<(String, String), Instant> = [
            (("ci".to_owned(), "cached".to_owned()), now),
            (("ci".to_owned(), "old".to_owned()), old),
            (("ci".to_owned(), "new".to_owned()), now),
        ]
        .into();
        forget_seen(&cache, &mut created);
        let left: Vec<&str> = created.keys().map(|(_, pod)| pod.as_str()).collect();
        assert_eq!(left, ["new"]);
    }
}

//! The run's pods and Jobs as the Controller's own watches see them: the
//! reflector stores fed by the streams that also wake the runs
//! (`Controller::owns_stream`). A reconcile reads step state from them, so a
//! running run costs no request per step; creates, deletes, logs and Events
//! go to the API server. A cache may lag: a pod missing from it is looked up
//! once with a GET before it counts as gone.

use std::sync::Arc;

use c8s_kube::{
    Cluster, KubeCluster, ListedObject, LogStream, ObjectEvent, ObjectKind, ObjectRef, ObservationStream,
    PodObservation, PodPhase, RUN_LABEL, Result, StepObject,
};
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};

/// The label the Job controller puts on a Job's pods.
const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// Job conditions after which the Job's outcome cannot change.
const JOB_FINAL_CONDITIONS: [&str; 4] = ["FailureTarget", "SuccessCriteriaMet", "Failed", "Complete"];

/// The reflector stores of c8s's pods and Jobs (label `c8s.dev/run`) in every
/// namespace.
#[derive(Clone)]
pub struct Stores {
    pods: Store<Pod>,
    jobs: Store<Job>,
    /// Both first lists arrived (`false`: a writer is gone), shared by every waiter.
    filled: Shared<BoxFuture<'static, bool>>,
}

impl Stores {
    /// The stores `pods` and `jobs`, filled by their reflectors.
    pub fn new(pods: Store<Pod>, jobs: Store<Job>) -> Self {
        let (p, j) = (pods.clone(), jobs.clone());
        // One future polls the stores' readiness and `Shared` wakes every
        // waiter: kube-runtime's `Store::wait_until_ready` keeps only the
        // waker of the task that polled it last, so of several reconciles
        // waiting on it at once (many runs when a controller starts) all
        // but one waited forever.
        let filled = async move { p.wait_until_ready().await.is_ok() && j.wait_until_ready().await.is_ok() }
            .boxed()
            .shared();
        Stores { pods, jobs, filled }
    }

    /// Waits until both stores hold their initial list; `false` if a writer
    /// is gone (the Controller stopped). Any number of tasks may wait at once.
    pub async fn ready(&self) -> bool {
        self.filled.clone().await
    }
}

/// A [`Cluster`] in one namespace reading pods and Jobs from [`Stores`].
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

impl Cluster for CachedCluster {
    async fn create(&self, object: &StepObject) -> Result<ObjectRef> {
        self.live.create(object).await
    }

    /// The cached state only (one observation): a reconcile takes the first.
    async fn observe(&self, object: &ObjectRef) -> Result<ObservationStream> {
        let observation = match (self.cached_pod(object), object.kind) {
            (Some(pod), _) => PodObservation::from_pod(&pod),
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

    /// Pods and Jobs of the namespace from the stores; a selector other than
    /// one `key=value` asks the API server.
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
        let mut jobs = self.stores.jobs.state_filter(|j| matches(&j.metadata));
        jobs.sort_by_key(|j| j.name_any());
        for job in jobs {
            let finished = job
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| JOB_FINAL_CONDITIONS.contains(&c.type_.as_str()) && c.status == "True");
            found.push(listed(
                ObjectRef::new(ObjectKind::Job, job.name_any()),
                &job.metadata,
                finished,
            ));
        }
        Ok(found)
    }

    fn now(&self) -> Timestamp {
        self.live.now()
    }
}

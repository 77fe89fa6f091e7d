//! The real cluster, through kube-rs.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use futures::{AsyncReadExt, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use crate::cluster::{
    Cluster, ListedObject, LogStream, ObjectEvent, ObjectKind, ObjectRef, ObservationStream, RUN_LABEL,
    RunWatchStream, StepObject,
};
use crate::error::{Error, Result};
use crate::kube_api::{JOB_FINAL_CONDITIONS, JOB_NAME_LABEL, from_kube, job_verdict};
use crate::observe::{PodObservation, PodPhase};

/// Server-side watch timeout; the stream then ends and c8s subscribes again.
const WATCH_TIMEOUT_SECS: u32 = 290;
/// Bytes read from a log stream at once.
const LOG_CHUNK: usize = 16 * 1024;

/// A [`Cluster`] backed by a kube-rs [`Client`], acting in one namespace.
#[derive(Clone)]
pub struct KubeCluster {
    client: Client,
    namespace: String,
    delete_timeout: Duration,
}

impl Debug for KubeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeCluster")
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl KubeCluster {
    /// A cluster reached through `client`, creating objects in `namespace`.
    pub fn new(client: Client, namespace: impl Into<String>) -> Self {
        KubeCluster {
            client,
            namespace: namespace.into(),
            delete_timeout: Duration::from_secs(120),
        }
    }

    /// The same cluster, creating objects in `namespace` instead.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The client this cluster talks through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Connects with the current kube context (`KUBECONFIG`, in-cluster config)
    /// in its default namespace, and checks that the API server answers
    /// within `timeout`. Fails fast with [`Error::ClusterUnreachable`] otherwise.
    pub async fn connect(timeout: Duration) -> Result<Self> {
        let unreachable = |detail: String| Error::ClusterUnreachable { timeout, detail };
        let client = match tokio::time::timeout(timeout, Client::try_default()).await {
            Err(_) => return Err(unreachable("reading the kube config timed out".into())),
            Ok(Err(e)) => return Err(unreachable(format!("no usable kube config: {e}"))),
            Ok(Ok(client)) => client,
        };
        let namespace = client.default_namespace().to_owned();
        let cluster = KubeCluster::new(client, namespace);
        cluster.ensure_reachable(timeout).await?;
        Ok(cluster)
    }

    /// Asks the API server for its version; fails with
    /// [`Error::ClusterUnreachable`] if it does not answer within `timeout`.
    pub async fn ensure_reachable(&self, timeout: Duration) -> Result<()> {
        let unreachable = |detail: String| Error::ClusterUnreachable { timeout, detail };
        match tokio::time::timeout(timeout, self.client.apiserver_version()).await {
            Err(_) => Err(unreachable("the API server did not answer".into())),
            Ok(Err(e)) => Err(unreachable(format!("the API server could not be reached: {e}"))),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// How long [`Cluster::delete`] waits for a deleted object to disappear.
    pub fn with_delete_timeout(mut self, timeout: Duration) -> Self {
        self.delete_timeout = timeout;
        self
    }

    /// The namespace objects are created in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn api<K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>>(&self) -> Api<K> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The list/watch parameters that find the pod behind `object`.
    fn pod_selector(object: &ObjectRef) -> (ListParams, WatchParams) {
        let wp = WatchParams::default().timeout(WATCH_TIMEOUT_SECS);
        match object.kind {
            ObjectKind::Pod => {
                let fields = format!("metadata.name={}", object.name);
                (ListParams::default().fields(&fields), wp.fields(&fields))
            }
            ObjectKind::Job => {
                let labels = format!("{JOB_NAME_LABEL}={}", object.name);
                (ListParams::default().labels(&labels), wp.labels(&labels))
            }
        }
    }
}

fn observation_of(kind: ObjectKind, name: &str, event: WatchEvent<Pod>) -> Option<Result<PodObservation>> {
    match event {
        WatchEvent::Added(pod) | WatchEvent::Modified(pod) => Some(Ok(PodObservation::from_pod(&pod))),
        WatchEvent::Deleted(pod) => {
            let pod_name = pod.metadata.name.unwrap_or_else(|| name.to_owned());
            Some(Ok(PodObservation::gone(&pod_name)))
        }
        WatchEvent::Bookmark(_) => None,
        WatchEvent::Error(status) => Some(Err(Error::WatchEnded {
            object: ObjectRef::new(kind, name).to_string(),
            detail: format!("{} {}: {}", status.code, status.reason, status.message),
        })),
    }
}

async fn create<K>(api: Api<K>, object: &K, name: &str, operation: &'static str) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + serde::Serialize + Debug,
{
    api.create(&PostParams::default(), object)
        .await
        .map_err(|e| from_kube(operation, name, e))?;
    Ok(())
}

async fn delete<K>(api: Api<K>, name: &str, wait: Duration, operation: &'static str) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let deleted = match api.delete(name, &DeleteParams::background()).await {
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
        Err(e) => return Err(from_kube(operation, name, e)),
        Ok(deleted) => deleted,
    };
    // Left: the object still exists (graceful termination); wait until it is gone.
    let Some(uid) = deleted.left().and_then(|o| o.meta().uid.clone()) else {
        return Ok(());
    };
    match tokio::time::timeout(wait, await_condition(api, name, conditions::is_deleted(&uid))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Error::StillThere {
            object: name.to_owned(),
            detail: e.to_string(),
        }),
        Err(_) => Err(Error::StillThere {
            object: name.to_owned(),
            detail: format!("waited {wait:?}"),
        }),
    }
}

fn listed(object: ObjectRef, meta: &kube::api::ObjectMeta, finished: bool) -> ListedObject {
    let owned_by_job = meta.owner_references.iter().flatten().any(|o| o.kind == "Job");
    ListedObject {
        object,
        run: meta.labels.as_ref().and_then(|l| l.get(RUN_LABEL)).cloned(),
        created_at: meta.creation_timestamp.as_ref().map(|t| t.0),
        finished,
        owned_by_job,
    }
}

impl Cluster for KubeCluster {
    async fn create(&self, object: &StepObject) -> Result<ObjectRef> {
        let name = object.name().unwrap_or_default().to_owned();
        match object {
            StepObject::Pod(pod) => create(self.api::<Pod>(), pod.as_ref(), &name, "create pod").await?,
            StepObject::Job(job) => create(self.api::<Job>(), job.as_ref(), &name, "create job").await?,
        }
        Ok(ObjectRef::new(object.kind(), name))
    }

    async fn observe(&self, object: &ObjectRef) -> Result<ObservationStream> {
        let pods = self.api::<Pod>();
        let (lp, wp) = Self::pod_selector(object);
        let list = pods
            .list(&lp)
            .await
            .map_err(|e| from_kube("list pods", &object.name, e))?;
        let version = list
            .metadata
            .resource_version
            .clone()
            .unwrap_or_else(|| "0".into());
        let first = match (list.items.first(), object.kind) {
            (Some(pod), _) => PodObservation::from_pod(pod),
            (None, ObjectKind::Pod) => PodObservation::gone(&object.name),
            // The Job controller has not created the pod yet.
            (None, ObjectKind::Job) => PodObservation {
                phase: PodPhase::Pending,
                ..Default::default()
            },
        };
        let events = pods
            .watch(&wp, &version)
            .await
            .map_err(|e| from_kube("watch pods", &object.name, e))?;
        let (kind, name, jobs) = (object.kind, object.name.clone(), self.api::<Job>());
        let changes = events.filter_map(move |event| {
            let (name, jobs) = (name.clone(), jobs.clone());
            async move {
                match event {
                    // The Job controller deleted its pod: the Job says why.
                    Ok(WatchEvent::Deleted(_)) if kind == ObjectKind::Job => {
                        job_verdict(&jobs, &name).await.transpose()
                    }
                    Ok(event) => observation_of(kind, &name, event),
                    Err(e) => Some(Err(from_kube("watch pods", &name, e))),
                }
            }
        });
        Ok(futures::stream::once(futures::future::ready(Ok(first)))
            .chain(changes)
            .boxed())
    }

    fn watch_run_marks_lists(&self) -> bool {
        true
    }

    async fn watch_run(&self, run_id: &str) -> Result<Option<RunWatchStream>> {
        let stream = crate::kube_watch::run_watch(self.api::<Pod>(), self.api::<Job>(), run_id);
        Ok(Some(stream))
    }

    async fn logs(&self, object: &ObjectRef, container: &str) -> Result<LogStream> {
        let pods = self.api::<Pod>();
        let pod_name = match object.kind {
            ObjectKind::Pod => object.name.clone(),
            ObjectKind::Job => {
                let (lp, _) = Self::pod_selector(object);
                let list = pods
                    .list(&lp)
                    .await
                    .map_err(|e| from_kube("list pods", &object.name, e))?;
                let pod = list.items.first().and_then(|p| p.metadata.name.clone());
                pod.ok_or_else(|| Error::api("read log of job", &object.name, 404, "the job has no pod"))?
            }
        };
        let params = LogParams {
            container: Some(container.to_owned()),
            follow: true,
            ..LogParams::default()
        };
        let reader = pods
            .log_stream(&pod_name, &params)
            .await
            .map_err(|e| from_kube("read log of pod", &pod_name, e))?;
        let state = Some((Box::pin(reader), pod_name));
        let stream = futures::stream::unfold(state, |state| async move {
            let (mut reader, pod_name) = state?;
            let mut buf = vec![0u8; LOG_CHUNK];
            match reader.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(buf), Some((reader, pod_name))))
                }
                Err(e) => {
                    let error = Error::Connection {
                        operation: "read log of pod",
                        object: pod_name,
                        source: e.into(),
                    };
                    Some((Err(error), None))
                }
            }
        });
        Ok(stream.boxed())
    }

    async fn delete(&self, object: &ObjectRef) -> Result<()> {
        match object.kind {
            ObjectKind::Pod => {
                delete(self.api::<Pod>(), &object.name, self.delete_timeout, "delete pod").await
            }
            ObjectKind::Job => {
                delete(self.api::<Job>(), &object.name, self.delete_timeout, "delete job").await
            }
        }
    }

    async fn start_delete(&self, object: &ObjectRef) -> Result<()> {
        let params = DeleteParams::background();
        let deleted = match object.kind {
            ObjectKind::Pod => self.api::<Pod>().delete(&object.name, &params).await.map(|_| ()),
            ObjectKind::Job => self.api::<Job>().delete(&object.name, &params).await.map(|_| ()),
        };
        match deleted {
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(from_kube("delete", &object.to_string(), e)),
            Ok(()) => Ok(()),
        }
    }

    async fn create_record(&self, run_id: &str, entries: &BTreeMap<String, String>) -> Result<bool> {
        crate::kube_record::create(&self.api::<ConfigMap>(), run_id, entries).await
    }

    async fn load_record(&self, run_id: &str) -> Result<Option<BTreeMap<String, String>>> {
        crate::kube_record::load(&self.api::<ConfigMap>(), run_id).await
    }

    async fn save_record(&self, run_id: &str, entries: &BTreeMap<String, String>) -> Result<()> {
        crate::kube_record::save(&self.api::<ConfigMap>(), run_id, entries).await
    }

    async fn list_records(&self) -> Result<Vec<crate::cluster::ListedRecord>> {
        crate::kube_record::list(&self.api::<ConfigMap>()).await
    }

    async fn delete_record(&self, run_id: &str) -> Result<()> {
        crate::kube_record::delete(&self.api::<ConfigMap>(), run_id).await
    }

    async fn events(&self, object: &ObjectRef) -> Result<Vec<ObjectEvent>> {
        let kind = match object.kind {
            ObjectKind::Pod => "Pod",
            ObjectKind::Job => "Job",
        };
        let fields = format!("involvedObject.name={},involvedObject.kind={kind}", object.name);
        let list = self
            .api::<Event>()
            .list(&ListParams::default().fields(&fields))
            .await
            .map_err(|e| from_kube("list events", &object.name, e))?;
        let mut events: Vec<_> = list
            .items
            .into_iter()
            .map(|e| {
                let at = e.last_timestamp.map(|t| t.0).or(e.event_time.map(|t| t.0));
                let event = ObjectEvent {
                    type_: e.type_.unwrap_or_default(),
                    reason: e.reason.unwrap_or_default(),
                    message: e.message.unwrap_or_default(),
                };
                (at, event)
            })
            .collect();
        events.sort_by_key(|(at, _)| *at);
        Ok(events.into_iter().map(|(_, e)| e).collect())
    }

    async fn list(&self, label_selector: &str) -> Result<Vec<ListedObject>> {
        self.list_kinds(label_selector, &[ObjectKind::Pod, ObjectKind::Job])
            .await
    }

    async fn list_kinds(&self, label_selector: &str, kinds: &[ObjectKind]) -> Result<Vec<ListedObject>> {
        let lp = ListParams::default().labels(label_selector);
        let mut found = Vec::new();
        if kinds.contains(&ObjectKind::Pod) {
            let pods = self
                .api::<Pod>()
                .list(&lp)
                .await
                .map_err(|e| from_kube("list pods", label_selector, e))?;
            for pod in &pods.items {
                let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                let finished = matches!(phase, Some("Succeeded" | "Failed"));
                let name = pod.metadata.name.clone().unwrap_or_default();
                found.push(listed(
                    ObjectRef::new(ObjectKind::Pod, name),
                    &pod.metadata,
                    finished,
                ));
            }
        }
        if kinds.contains(&ObjectKind::Job) {
            let jobs = self
                .api::<Job>()
                .list(&lp)
                .await
                .map_err(|e| from_kube("list jobs", label_selector, e))?;
            for job in &jobs.items {
                let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
                let finished = conditions
                    .into_iter()
                    .flatten()
                    .any(|c| JOB_FINAL_CONDITIONS.contains(&c.type_.as_str()) && c.status == "True");
                let name = job.metadata.name.clone().unwrap_or_default();
                found.push(listed(
                    ObjectRef::new(ObjectKind::Job, name),
                    &job.metadata,
                    finished,
                ));
            }
        }
        Ok(found)
    }

    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

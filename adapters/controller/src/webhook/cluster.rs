//! [`KubeTriggers`]: the webhook's view of a cluster. RepositoryConnections
//! and Pipelines of every namespace come from two reflector stores (one
//! watch each, not a LIST per delivery); a Secret is read with one GET, only
//! for a connection the delivery's repository resolved to; runs are listed
//! by label and created through the API server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{ListParams, PostParams};
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};

use super::triggers::{ExistingRun, TriggerError, Triggers};
use crate::crd::{Pipeline, PipelineRun, Provider, RepositoryConnection, SecretKeyRef};

/// How long a delivery waits for the stores' first lists before it is
/// answered 503 (the webhook has just started).
const READY_WAIT: Duration = Duration::from_secs(10);

/// [`super::Triggers`] on a cluster: cached connections and pipelines, one
/// Secret GET per candidate connection, runs listed and created with kube-rs.
/// Cloning shares the stores; the watches stop when the last clone is dropped.
#[derive(Clone)]
pub struct KubeTriggers {
    client: Client,
    connections: Store<RepositoryConnection>,
    pipelines: Store<Pipeline>,
    /// Both stores hold their first list (`false`: a watch task is gone),
    /// shared so that every waiting delivery is woken.
    filled: Shared<BoxFuture<'static, bool>>,
    _watches: Arc<Watches>,
}

/// The watch tasks, aborted when the last [`KubeTriggers`] goes.
struct Watches(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Watches {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl KubeTriggers {
    /// Starts watching RepositoryConnections and Pipelines of every namespace
    /// through `client` (needs `list` and `watch` on both). Must be called
    /// inside a tokio runtime: the watches are spawned on it.
    pub fn start(client: Client) -> Self {
        let (connections, connection_writer) = reflector::store::<RepositoryConnection>();
        let (pipelines, pipeline_writer) = reflector::store::<Pipeline>();
        let connection_events = reflector(
            connection_writer,
            watcher::watcher(
                Api::<RepositoryConnection>::all(client.clone()),
                watcher::Config::default(),
            )
            .modify(|c| c.meta_mut().managed_fields = None),
        )
        .default_backoff();
        let pipeline_events = reflector(
            pipeline_writer,
            watcher::watcher(Api::<Pipeline>::all(client.clone()), watcher::Config::default())
                .modify(|p| p.meta_mut().managed_fields = None),
        )
        .default_backoff();
        let watches = Watches(vec![
            tokio::spawn(drive(connection_events, "repositoryconnections")),
            tokio::spawn(drive(pipeline_events, "pipelines")),
        ]);
        KubeTriggers {
            _watches: Arc::new(watches),
            ..KubeTriggers::with_stores(client, connections, pipelines)
        }
    }

    /// Reads connections and pipelines from stores the caller's reflectors
    /// fill (every namespace), and Secrets and runs through `client`.
    pub fn with_stores(
        client: Client,
        connections: Store<RepositoryConnection>,
        pipelines: Store<Pipeline>,
    ) -> Self {
        let (c, p) = (connections.clone(), pipelines.clone());
        // kube-runtime's `Store::wait_until_ready` wakes only the task that
        // polled it last; one shared future wakes every waiting delivery.
        let filled = async move { c.wait_until_ready().await.is_ok() && p.wait_until_ready().await.is_ok() }
            .boxed()
            .shared();
        KubeTriggers {
            client,
            connections,
            pipelines,
            filled,
            _watches: Arc::new(Watches(Vec::new())),
        }
    }

    async fn ready(&self) -> Result<(), TriggerError> {
        match tokio::time::timeout(READY_WAIT, self.filled.clone()).await {
            Ok(true) => Ok(()),
            _ => Err(TriggerError::NotReady),
        }
    }
}

/// Drives one reflector's watch, logging its errors (it retries with backoff).
async fn drive<K>(events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>, what: &'static str) {
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        if let Err(e) = event {
            tracing::warn!("webhook: watching {what}: {e}");
        }
    }
}

fn cluster_error(operation: &str, e: kube::Error) -> TriggerError {
    TriggerError::Cluster {
        operation: operation.to_owned(),
        detail: e.to_string(),
    }
}

impl Triggers for KubeTriggers {
    async fn connections(&self, provider: Provider) -> Result<Vec<Arc<RepositoryConnection>>, TriggerError> {
        self.ready().await?;
        Ok(self.connections.state_filter(|c| c.spec.provider == provider))
    }

    async fn pipelines(&self) -> Result<Vec<Arc<Pipeline>>, TriggerError> {
        self.ready().await?;
        Ok(self.pipelines.state_filter(|p| p.spec.trigger.is_some()))
    }

    async fn secret(
        &self,
        namespace: &str,
        reference: &SecretKeyRef,
    ) -> Result<Option<Vec<u8>>, TriggerError> {
        let secrets = Api::<Secret>::namespaced(self.client.clone(), namespace);
        let secret = secrets
            .get_opt(&reference.name)
            .await
            .map_err(|e| cluster_error(&format!("get secret {namespace}/{}", reference.name), e))?;
        Ok(secret
            .and_then(|s| s.data)
            .and_then(|mut data| data.remove(&reference.key))
            .map(|value| value.0))
    }

    async fn runs(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ExistingRun>, TriggerError> {
        let selector = labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let api = Api::<PipelineRun>::namespaced(self.client.clone(), namespace);
        let listed = api
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| cluster_error(&format!("list pipelineruns in {namespace}"), e))?;
        Ok(listed
            .items
            .into_iter()
            .map(|run| ExistingRun {
                name: run.metadata.name.unwrap_or_default(),
                created: run.metadata.creation_timestamp.map(|t| t.0),
            })
            .collect())
    }

    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, TriggerError> {
        let api = Api::<ConfigMap>::namespaced(self.client.clone(), namespace);
        match api.get_opt(name).await {
            Ok(map) => Ok(map),
            // Not a namespace this server serves: as if it had none.
            Err(kube::Error::Api(status)) if status.code == 403 => Ok(None),
            Err(e) => Err(cluster_error(&format!("get configmap {namespace}/{name}"), e)),
        }
    }

    async fn replace_config_map(&self, namespace: &str, map: ConfigMap) -> Result<bool, TriggerError> {
        let api = Api::<ConfigMap>::namespaced(self.client.clone(), namespace);
        let name = map.metadata.name.clone().unwrap_or_default();
        match api.replace(&name, &PostParams::default(), &map).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(cluster_error(&format!("update configmap {namespace}/{name}"), e)),
        }
    }

    async fn create_run(&self, namespace: &str, run: PipelineRun) -> Result<bool, TriggerError> {
        let api = Api::<PipelineRun>::namespaced(self.client.clone(), namespace);
        match api.create(&PostParams::default(), &run).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(cluster_error(&format!("create pipelinerun in {namespace}"), e)),
        }
    }
}

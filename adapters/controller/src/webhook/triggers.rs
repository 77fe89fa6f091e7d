//! Where the webhook server reads connections, pipelines and Secrets and
//! creates runs ([`Triggers`]), and what it can fail at: the layer below the
//! server and below [`KubeTriggers`](super::KubeTriggers), its cluster
//! implementation.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;

use crate::crd::{Pipeline, PipelineRun, Provider, RepositoryConnection, SecretKeyRef};

/// What the webhook could not do; the delivery is answered 503.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TriggerError {
    /// The caches of connections and pipelines do not hold their first list yet.
    #[error("the caches of connections and pipelines are not filled yet")]
    NotReady,
    /// A request to the cluster failed.
    #[error("{operation}: {detail}")]
    Cluster {
        /// What was asked (`get secret ci/shop-webhook`).
        operation: String,
        /// The API server's or the client's answer.
        detail: String,
    },
}

/// A run that exists, as [`Triggers::runs`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingRun {
    /// The run's name.
    pub name: String,
    /// When the API server created it (`None`: unknown, counted as recent).
    pub created: Option<Timestamp>,
}

/// Where the webhook server reads connections, pipelines and Secrets and
/// creates runs.
pub trait Triggers: Send + Sync + 'static {
    /// Every connection of `provider`, from a cache.
    fn connections(
        &self,
        provider: Provider,
    ) -> impl Future<Output = Result<Vec<Arc<RepositoryConnection>>, TriggerError>> + Send;
    /// Every Pipeline with a trigger, of every namespace, from a cache.
    fn pipelines(&self) -> impl Future<Output = Result<Vec<Arc<Pipeline>>, TriggerError>> + Send;
    /// The value of `reference`'s key in its Secret in `namespace`; `None`
    /// when the Secret or the key does not exist.
    fn secret(
        &self,
        namespace: &str,
        reference: &SecretKeyRef,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, TriggerError>> + Send;
    /// The runs of `namespace` that carry every label of `labels`.
    fn runs(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Vec<ExistingRun>, TriggerError>> + Send;
    /// Creates `run` in `namespace`: `Ok(true)` if created, `Ok(false)` if a
    /// run of that name exists already (409).
    fn create_run(
        &self,
        namespace: &str,
        run: PipelineRun,
    ) -> impl Future<Output = Result<bool, TriggerError>> + Send;
    /// The ConfigMap `name` of `namespace` (a Concourse pipeline's history,
    /// [`super::concourse`]); `None` when it does not exist or this server
    /// may not read it.
    fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<ConfigMap>, TriggerError>> + Send;
    /// Replaces `map` in `namespace`, its `resourceVersion` the
    /// precondition: `Ok(false)` when it changed since it was read (409).
    fn replace_config_map(
        &self,
        namespace: &str,
        map: ConfigMap,
    ) -> impl Future<Output = Result<bool, TriggerError>> + Send;
    /// The time now (what the replay window counts from).
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

//! `c8s webhook`: an axum server for `POST /hooks/github`, `/hooks/gitlab`
//! and `/hooks/bitbucket`. A delivery is checked against the webhook secret of
//! every `RepositoryConnection` of that provider (constant-time); no match is
//! 401 and creates nothing. A verified push creates one `PipelineRun` per
//! `Pipeline` of that connection whose repository and branch globs match;
//! other events are acknowledged (202) and ignored. The run's name is derived
//! from the delivery id, so a redelivery meets 409 and creates no second run.

mod push;
pub mod verify;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use c8s_pipeline_model::branch_matches;
use sha2::{Digest, Sha256};

pub use push::{Push, read_push, repository_matches};

use crate::crd::{Pipeline, PipelineRun, PipelineRunSpec, Provider};

/// The largest body accepted (GitHub caps payloads at 25 MB; pushes are far
/// smaller). Larger bodies get 413 before any work.
pub const DEFAULT_BODY_LIMIT: usize = 5 * 1024 * 1024;

/// A connection's webhook secret, as read from its Secret.
#[derive(Clone, Debug)]
pub struct ConnectionSecret {
    /// The connection's namespace (where its pipelines and runs live).
    pub namespace: String,
    /// The `RepositoryConnection`'s name.
    pub name: String,
    /// The secret bytes (never logged).
    pub secret: Vec<u8>,
}

/// Where the webhook server reads connections and pipelines and creates runs.
pub trait Triggers: Send + Sync + 'static {
    /// Every connection of `provider`, with its secret.
    fn connections(
        &self,
        provider: Provider,
    ) -> impl Future<Output = Result<Vec<ConnectionSecret>, String>> + Send;
    /// The Pipelines of `namespace`.
    fn pipelines(&self, namespace: &str) -> impl Future<Output = Result<Vec<Pipeline>, String>> + Send;
    /// Creates `run` in `namespace`: `Ok(true)` if created, `Ok(false)` if a
    /// run of that name exists already (409).
    fn create_run(
        &self,
        namespace: &str,
        run: PipelineRun,
    ) -> impl Future<Output = Result<bool, String>> + Send;
}

/// The routes, with a body limit of `body_limit` bytes.
pub fn router<T: Triggers>(triggers: Arc<T>, body_limit: usize) -> Router {
    Router::new()
        .route("/hooks/github", post(|s, h, b| hook(Provider::Github, s, h, b)))
        .route("/hooks/gitlab", post(|s, h, b| hook(Provider::Gitlab, s, h, b)))
        .route(
            "/hooks/bitbucket",
            post(|s, h, b| hook(Provider::Bitbucket, s, h, b)),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(triggers)
}

fn verified(provider: Provider, headers: &HeaderMap, body: &[u8], secret: &[u8]) -> bool {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    match provider {
        Provider::Github => verify::signature_matches(secret, body, header("x-hub-signature-256")),
        Provider::Bitbucket => verify::signature_matches(secret, body, header("x-hub-signature")),
        Provider::Gitlab => verify::token_matches(secret, header("x-gitlab-token")),
    }
}

async fn hook<T: Triggers>(
    provider: Provider,
    State(triggers): State<Arc<T>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let connections = match triggers.connections(provider).await {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot read connections: {e}\n"),
            )
                .into_response();
        }
    };
    let Some(connection) = connections
        .iter()
        .find(|c| verified(provider, &headers, &body, &c.secret))
    else {
        return (
            StatusCode::UNAUTHORIZED,
            "signature does not match any connection\n",
        )
            .into_response();
    };
    let Some(push) = read_push(provider, &headers, &body) else {
        return (StatusCode::ACCEPTED, "ignored: not a push to a branch\n").into_response();
    };
    let pipelines = match triggers.pipelines(&connection.namespace).await {
        Ok(p) => p,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot read pipelines: {e}\n"),
            )
                .into_response();
        }
    };
    let (mut created, mut existed) = (Vec::new(), Vec::new());
    for pipeline in pipelines.iter().filter(|p| triggered(p, &connection.name, &push)) {
        let run = run_for(provider, pipeline, &push);
        let name = run.metadata.name.clone().unwrap_or_default();
        match triggers.create_run(&connection.namespace, run).await {
            Ok(true) => created.push(name),
            Ok(false) => existed.push(name),
            Err(e) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("cannot create run {name}: {e}\n"),
                )
                    .into_response();
            }
        }
    }
    let status = match (created.is_empty(), existed.is_empty()) {
        (false, _) => StatusCode::CREATED,
        (true, false) => StatusCode::OK,
        (true, true) => StatusCode::ACCEPTED,
    };
    (
        status,
        format!(
            "created: {}\nalready created: {}\n",
            created.join(" "),
            existed.join(" ")
        ),
    )
        .into_response()
}

/// Whether `pipeline` runs for `push` through connection `connection`.
pub fn triggered(pipeline: &Pipeline, connection: &str, push: &Push) -> bool {
    let Some(trigger) = &pipeline.spec.trigger else {
        return false;
    };
    if trigger.connection != connection {
        return false;
    }
    let repository = if trigger.repository.is_empty() {
        &pipeline.spec.pipeline.repository
    } else {
        &trigger.repository
    };
    let branches = if trigger.branches.is_empty() {
        &pipeline.spec.pipeline.branches
    } else {
        &trigger.branches
    };
    repository_matches(repository, push)
        && (branches.is_empty() || branches.iter().any(|g| branch_matches(g, &push.branch)))
}

/// The run a push creates for `pipeline`: named from the delivery id (same
/// delivery, same name), referencing the Pipeline by name.
pub fn run_for(provider: Provider, pipeline: &Pipeline, push: &Push) -> PipelineRun {
    let pipeline_name = pipeline.metadata.name.clone().unwrap_or_default();
    let provider_name = format!("{provider:?}").to_ascii_lowercase();
    let digest = Sha256::digest(format!("{provider_name}\n{}\n{pipeline_name}", push.delivery).as_bytes());
    let hash: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    let prefix: String = pipeline_name.chars().take(63 - 1 - hash.len()).collect();
    let mut run = PipelineRun::new(
        &format!("{}-{hash}", prefix.trim_end_matches('-')),
        PipelineRunSpec {
            pipeline_ref: Some(pipeline_name),
            commit: push.commit.clone(),
            branch: push.branch.clone(),
            triggered_by: format!("webhook:{provider_name}:{}", push.delivery),
            ..PipelineRunSpec::default()
        },
    );
    run.metadata.namespace = pipeline.metadata.namespace.clone();
    run
}

/// Serves the routes on `listener` until `shutdown` completes.
pub async fn serve<T: Triggers>(
    listener: tokio::net::TcpListener,
    triggers: Arc<T>,
    body_limit: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(triggers, body_limit))
        .with_graceful_shutdown(shutdown)
        .await
}

/// [`Triggers`] on a cluster: connections and pipelines read with kube-rs,
/// runs created there.
#[derive(Clone)]
pub struct KubeTriggers {
    client: kube::Client,
}

impl KubeTriggers {
    /// Reads and writes through `client`.
    pub fn new(client: kube::Client) -> Self {
        KubeTriggers { client }
    }
}

impl Triggers for KubeTriggers {
    async fn connections(&self, provider: Provider) -> Result<Vec<ConnectionSecret>, String> {
        use crate::crd::RepositoryConnection;
        use k8s_openapi::api::core::v1::Secret;
        let api = kube::Api::<RepositoryConnection>::all(self.client.clone());
        let list = api.list(&Default::default()).await.map_err(|e| e.to_string())?;
        let mut found = Vec::new();
        for connection in list.items.into_iter().filter(|c| c.spec.provider == provider) {
            let namespace = connection.metadata.namespace.clone().unwrap_or_default();
            let secrets = kube::Api::<Secret>::namespaced(self.client.clone(), &namespace);
            let reference = &connection.spec.webhook_secret;
            let Ok(secret) = secrets.get(&reference.name).await else {
                continue;
            };
            if let Some(value) = secret.data.and_then(|d| d.get(&reference.key).cloned()) {
                found.push(ConnectionSecret {
                    namespace,
                    name: connection.metadata.name.clone().unwrap_or_default(),
                    secret: value.0,
                });
            }
        }
        Ok(found)
    }

    async fn pipelines(&self, namespace: &str) -> Result<Vec<Pipeline>, String> {
        let api = kube::Api::<Pipeline>::namespaced(self.client.clone(), namespace);
        api.list(&Default::default())
            .await
            .map(|l| l.items)
            .map_err(|e| e.to_string())
    }

    async fn create_run(&self, namespace: &str, run: PipelineRun) -> Result<bool, String> {
        let api = kube::Api::<PipelineRun>::namespaced(self.client.clone(), namespace);
        match api.create(&Default::default(), &run).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }
}

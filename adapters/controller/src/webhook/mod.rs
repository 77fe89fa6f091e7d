//! `c8s webhook`: an axum server for `POST /hooks/github`, `/hooks/gitlab`
//! and `/hooks/bitbucket`, and Concourse's resource webhook
//! (`/api/v1/teams/…/check/webhook`, [`concourse`]).
//!
//! A delivery is authenticated by the connection of its own repository, and
//! no Secret is read before that connection is known:
//!
//! 1. **Budget.** A client address that has spent its failure budget
//!    ([`Options::failures_per_minute`], a token bucket per address, see
//!    [`FailureBudget`]) gets 429 and a `Retry-After` before any work. Only
//!    unauthenticated deliveries spend budget; successes are never limited.
//! 2. **Resolve.** The (still unverified) payload is parsed just enough to
//!    read its repository's names ([`repository_names`]). The candidate
//!    connections are the `RepositoryConnection`s of that provider that a
//!    `Pipeline` of their namespace triggers on with exactly that repository
//!    ([`repository_named`]: whole path and host; `x/org/app` never matches
//!    `org/app`). A connection names no repository itself: its Pipelines do.
//!    Connections and Pipelines come from [`Triggers`]' cache (on a cluster,
//!    two reflector stores, [`KubeTriggers`]), never a LIST per delivery. No
//!    candidate → 401, and no Secret was read.
//! 3. **Verify.** For each candidate (normally one), the one Secret it names is
//!    read in its namespace and the signature checked in constant time
//!    ([`verify`]). None verifies → 401; a Secret that could not be read (and
//!    no other verified) → 503, spending budget too.
//! 4. **Trigger.** A verified push creates one `PipelineRun` per Pipeline of
//!    that connection whose repository and branch globs match (201); other
//!    events are acknowledged (202) and ignored.
//! 5. **Replay.** A run is labelled with its provider, pipeline and commit
//!    ([`PROVIDER_LABEL`], [`PIPELINE_LABEL`], [`COMMIT_LABEL`]). If a run with
//!    those labels was created within the replay window
//!    ([`Options::replay_window`], default one hour), the delivery creates
//!    nothing and answers 200 "already created", whatever its delivery id.
//!    The run's name is derived from provider, pipeline, commit and the
//!    window the delivery falls in ([`run_for`]), so two redeliveries racing
//!    each other meet 409 on the same name. After the window, a push of the
//!    same commit starts a new run.

mod cluster;
pub mod concourse;
mod limit;
mod push;
mod triggers;
pub mod verify;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use c8s_pipeline_model::branch_matches;
use c8s_pod_builder::names::label_value;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The name of [`Options::client_ip_header`].
pub use axum::http::HeaderName;
pub use c8s_pod_builder::contract::PIPELINE_LABEL;
pub use cluster::KubeTriggers;
pub use limit::FailureBudget;
pub use push::{Push, push_in, read_push, repository_matches, repository_named, repository_names};
pub use triggers::{ExistingRun, TriggerError, Triggers};

use crate::crd::{Pipeline, PipelineRun, PipelineRunSpec, Provider, RepositoryConnection};

/// The largest body accepted (GitHub caps payloads at 25 MB; pushes are far
/// smaller). Larger bodies get 413 before any work.
pub const DEFAULT_BODY_LIMIT: usize = 5 * 1024 * 1024;
/// How long a run started by a push keeps a redelivery of that push (any
/// delivery id) from starting another.
pub const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(3600);
/// Unauthenticated deliveries one client address may send per minute (and
/// at once) before it gets 429.
pub const DEFAULT_FAILURES_PER_MINUTE: u32 = 30;
/// Label on webhook runs: the commit (a label value, hash-shortened when too long).
pub const COMMIT_LABEL: &str = "c8s.dev/commit";
/// Label on webhook runs: the provider (`github`, `gitlab`, `bitbucket`).
pub const PROVIDER_LABEL: &str = "c8s.dev/provider";

/// How the webhook server behaves.
#[derive(Clone, Debug)]
pub struct Options {
    /// Largest body accepted, in bytes (larger: 413).
    pub body_limit: usize,
    /// A run of the same provider, pipeline and commit created less than
    /// this long ago makes a delivery a replay (200, nothing created).
    /// At least one second.
    pub replay_window: Duration,
    /// Unauthenticated deliveries per client address per minute before 429;
    /// 0 disables the limit. Each replica counts on its own.
    pub failures_per_minute: u32,
    /// A header holding the client address (`X-Forwarded-For`), set by a
    /// proxy in front of the webhook: its last entry (the one the proxy
    /// added) is the client. `None`: the TCP peer's address.
    pub client_ip_header: Option<HeaderName>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            body_limit: DEFAULT_BODY_LIMIT,
            replay_window: DEFAULT_REPLAY_WINDOW,
            failures_per_minute: DEFAULT_FAILURES_PER_MINUTE,
            client_ip_header: None,
        }
    }
}

/// The server's state: the triggers, the options and the failure budget.
struct Server<T> {
    triggers: Arc<T>,
    options: Options,
    budget: FailureBudget,
}

/// The routes. A request's client address (whose failure budget it spends)
/// is the last entry of [`Options::client_ip_header`] when that is set and
/// holds an address, else the TCP peer's when the router is served with
/// `ConnectInfo<SocketAddr>` (as [`serve`] does), else unknown (all such
/// requests share one budget).
pub fn router<T: Triggers>(triggers: Arc<T>, options: Options) -> Router {
    let body_limit = options.body_limit;
    let server = Arc::new(Server {
        triggers,
        budget: FailureBudget::per_minute(options.failures_per_minute),
        options,
    });
    Router::new()
        .route(
            "/hooks/github",
            post(|s, e, h, b| hook(Provider::Github, s, e, h, b)),
        )
        .route(
            "/hooks/gitlab",
            post(|s, e, h, b| hook(Provider::Gitlab, s, e, h, b)),
        )
        .route(
            "/hooks/bitbucket",
            post(|s, e, h, b| hook(Provider::Bitbucket, s, e, h, b)),
        )
        .route(
            "/api/v1/teams/{team}/pipelines/{pipeline}/resources/{resource}/check/webhook",
            post(resource_check),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(server)
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

/// The client address: the last entry of the configured header, else the
/// TCP peer.
fn client_address(options: &Options, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
    let forwarded = options.client_ip_header.as_ref().and_then(|name| {
        let last = headers.get_all(name).iter().next_back()?.to_str().ok()?;
        last.rsplit(',').next()?.trim().parse::<IpAddr>().ok()
    });
    forwarded.or_else(|| {
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip())
    })
}

/// The one text of every 401: it does not say whether the repository is known.
const UNAUTHENTICATED: &str = "the delivery is not signed by a connection of its repository\n";

/// How a delivery ended.
enum Outcome {
    /// Not authenticated: 401, spends budget.
    Unauthenticated,
    /// No candidate's Secret could be read: 503, spends budget.
    SecretUnreadable,
    /// Authenticated (or the cluster failed): this answer, spends nothing.
    Answer(StatusCode, String),
}

async fn hook<T: Triggers>(
    provider: Provider,
    State(server): State<Arc<Server<T>>>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client = client_address(&server.options, &headers, &extensions);
    if let Err(wait) = server.budget.check(client) {
        return too_many(wait);
    }
    match deliver(provider, &server, &headers, &body).await {
        Outcome::Unauthenticated => {
            server.budget.charge(client);
            tracing::debug!(?provider, ?client, "webhook: unauthenticated delivery");
            (StatusCode::UNAUTHORIZED, UNAUTHENTICATED).into_response()
        }
        Outcome::SecretUnreadable => {
            server.budget.charge(client);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot read the webhook secret (see the webhook's log)\n",
            )
                .into_response()
        }
        Outcome::Answer(status, text) => (status, text).into_response(),
    }
}

/// Concourse's resource webhook ([`concourse`]): 201 when the check was
/// asked for, 401 (spending the client's failure budget) when the team,
/// pipeline, resource or token is not one a watcher published, 503 when the
/// cluster could not be asked.
async fn resource_check<T: Triggers>(
    State(server): State<Arc<Server<T>>>,
    Path((team, pipeline, resource)): Path<(String, String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    extensions: Extensions,
    headers: HeaderMap,
) -> Response {
    let client = client_address(&server.options, &headers, &extensions);
    if let Err(wait) = server.budget.check(client) {
        return too_many(wait);
    }
    let token = query.get("webhook_token").map_or("", String::as_str);
    match concourse::request_check(server.triggers.as_ref(), &team, &pipeline, &resource, token).await {
        Ok(concourse::CheckRequest::Counted) => (StatusCode::CREATED, "check requested\n").into_response(),
        Ok(concourse::CheckRequest::Unauthenticated) => {
            server.budget.charge(client);
            tracing::debug!(?client, "webhook: resource check with an unknown token");
            (StatusCode::UNAUTHORIZED, "no resource webhook with this token\n").into_response()
        }
        Err(e) => {
            tracing::warn!("webhook: resource check of {team}/{pipeline}/{resource}: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "cannot reach the cluster\n").into_response()
        }
    }
}

/// 429 with a `Retry-After` of `wait` (whole seconds, at least 1).
fn too_many(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        "too many unauthenticated deliveries from this address\n",
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

/// The connections that may have sent a delivery naming `names`: those of
/// which a Pipeline in their namespace triggers on that very repository.
/// Sorted by namespace and name.
pub fn candidates<'a>(
    connections: &'a [Arc<RepositoryConnection>],
    pipelines: &[Arc<Pipeline>],
    names: &[String],
) -> Vec<&'a RepositoryConnection> {
    let mut found: Vec<&RepositoryConnection> = connections
        .iter()
        .map(AsRef::as_ref)
        .filter(|connection| {
            let namespace = connection.metadata.namespace.as_deref();
            let name = connection.metadata.name.as_deref().unwrap_or_default();
            pipelines.iter().any(|pipeline| {
                pipeline.metadata.namespace.as_deref() == namespace
                    && pipeline
                        .spec
                        .trigger
                        .as_ref()
                        .is_some_and(|t| t.connection == name)
                    && repository_named(trigger_repository(pipeline), names)
            })
        })
        .collect();
    found.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    found
}

async fn deliver<T: Triggers>(
    provider: Provider,
    server: &Server<T>,
    headers: &HeaderMap,
    body: &[u8],
) -> Outcome {
    let triggers = &server.triggers;
    let unavailable = |what: &str, e: TriggerError| {
        tracing::warn!("webhook: {what}: {e}");
        Outcome::Answer(StatusCode::SERVICE_UNAVAILABLE, format!("{what}: {e}\n"))
    };
    // Unverified: read only to find whose secret to check it with.
    let payload: Option<Value> = serde_json::from_slice(body).ok();
    let names = payload
        .as_ref()
        .map(|p| repository_names(provider, p))
        .unwrap_or_default();
    if names.is_empty() {
        return Outcome::Unauthenticated;
    }
    let connections = match triggers.connections(provider).await {
        Ok(c) => c,
        Err(e) => return unavailable("cannot read connections", e),
    };
    let pipelines = match triggers.pipelines().await {
        Ok(p) => p,
        Err(e) => return unavailable("cannot read pipelines", e),
    };
    let mut unreadable = false;
    let mut connection = None;
    for candidate in candidates(&connections, &pipelines, &names) {
        let namespace = candidate.metadata.namespace.as_deref().unwrap_or_default();
        let reference = &candidate.spec.webhook_secret;
        match triggers.secret(namespace, reference).await {
            Ok(Some(secret)) if verified(provider, headers, body, &secret) => {
                connection = Some(candidate);
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) => tracing::warn!(
                "webhook: connection {namespace}/{}: secret {} has no key {}",
                candidate.metadata.name.as_deref().unwrap_or_default(),
                reference.name,
                reference.key
            ),
            Err(e) => {
                tracing::warn!(
                    "webhook: connection {namespace}/{}: {e}",
                    candidate.metadata.name.as_deref().unwrap_or_default()
                );
                unreadable = true;
            }
        }
    }
    let Some(connection) = connection else {
        return if unreadable {
            Outcome::SecretUnreadable
        } else {
            Outcome::Unauthenticated
        };
    };
    let Some(push) = payload.and_then(|p| push_in(provider, headers, &p)) else {
        return Outcome::Answer(StatusCode::ACCEPTED, "ignored: not a push to a branch\n".into());
    };
    let namespace = connection.metadata.namespace.clone().unwrap_or_default();
    let connection_name = connection.metadata.name.clone().unwrap_or_default();
    let mut triggered_pipelines: Vec<&Pipeline> = pipelines
        .iter()
        .map(AsRef::as_ref)
        .filter(|p| p.metadata.namespace.as_deref() == Some(namespace.as_str()))
        .filter(|p| triggered(p, &connection_name, &push))
        .collect();
    triggered_pipelines.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let now = triggers.now();
    let window = server.options.replay_window;
    let (mut created, mut existed) = (Vec::new(), Vec::new());
    for pipeline in triggered_pipelines {
        let run = run_for(provider, pipeline, &push, now, window);
        let name = run.metadata.name.clone().unwrap_or_default();
        let labels = run.metadata.labels.clone().unwrap_or_default();
        let earlier = match triggers.runs(&namespace, &labels).await {
            Ok(runs) => runs.into_iter().find(|r| within(r.created, now, window)),
            Err(e) => return unavailable(&format!("cannot list the runs of {name}"), e),
        };
        if let Some(earlier) = earlier {
            existed.push(earlier.name);
            continue;
        }
        match triggers.create_run(&namespace, run).await {
            Ok(true) => {
                tracing::info!(
                    "webhook: {provider:?} delivery {} created run {namespace}/{name}",
                    push.delivery
                );
                created.push(name);
            }
            Ok(false) => existed.push(name),
            Err(e) => return unavailable(&format!("cannot create run {name}"), e),
        }
    }
    let status = match (created.is_empty(), existed.is_empty()) {
        (false, _) => StatusCode::CREATED,
        (true, false) => StatusCode::OK,
        (true, true) => StatusCode::ACCEPTED,
    };
    Outcome::Answer(
        status,
        format!(
            "created: {}\nalready created: {}\n",
            created.join(" "),
            existed.join(" ")
        ),
    )
}

/// Whether a run created at `created` is within `window` of `now` (an
/// unknown time, or one ahead of `now`, counts as within).
fn within(created: Option<Timestamp>, now: Timestamp, window: Duration) -> bool {
    let Some(created) = created else {
        return true;
    };
    now.as_second().saturating_sub(created.as_second()) < window_seconds(window)
}

/// The replay window in whole seconds, at least one.
fn window_seconds(window: Duration) -> i64 {
    i64::try_from(window.as_secs()).unwrap_or(i64::MAX).max(1)
}

/// The repository a Pipeline's trigger names: its own, else the pipeline's.
fn trigger_repository(pipeline: &Pipeline) -> &str {
    match &pipeline.spec.trigger {
        Some(trigger) if !trigger.repository.is_empty() => &trigger.repository,
        _ => &pipeline.spec.pipeline.repository,
    }
}

/// Whether `pipeline` runs for `push` through connection `connection`.
pub fn triggered(pipeline: &Pipeline, connection: &str, push: &Push) -> bool {
    let Some(trigger) = &pipeline.spec.trigger else {
        return false;
    };
    if trigger.connection != connection {
        return false;
    }
    let branches = if trigger.branches.is_empty() {
        &pipeline.spec.pipeline.branches
    } else {
        &trigger.branches
    };
    repository_matches(trigger_repository(pipeline), push)
        && (branches.is_empty() || branches.iter().any(|g| branch_matches(g, &push.branch)))
}

/// The run a push creates for `pipeline` at `now`, referencing the Pipeline
/// by name and labelled with [`PROVIDER_LABEL`], [`PIPELINE_LABEL`] and
/// [`COMMIT_LABEL`]. Its name is `<pipeline>-<10 hex>` of sha256 of the
/// provider, the commit, the pipeline and the `window`-long period `now`
/// falls in (counted from the Unix epoch): every delivery of one commit in
/// one period names the same run, whatever its delivery id.
pub fn run_for(
    provider: Provider,
    pipeline: &Pipeline,
    push: &Push,
    now: Timestamp,
    window: Duration,
) -> PipelineRun {
    let pipeline_name = pipeline.metadata.name.clone().unwrap_or_default();
    let provider_name = provider_name(provider);
    let period = now.as_second().div_euclid(window_seconds(window));
    let digest =
        Sha256::digest(format!("{provider_name}\n{}\n{pipeline_name}\n{period}", push.commit).as_bytes());
    let hash: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    let prefix: String = pipeline_name.chars().take(63 - 1 - hash.len()).collect();
    let mut run = PipelineRun::new(
        &format!("{}-{hash}", prefix.trim_end_matches(['-', '.'])),
        PipelineRunSpec {
            pipeline_ref: Some(pipeline_name.clone()),
            commit: push.commit.clone(),
            branch: push.branch.clone(),
            triggered_by: format!("webhook:{provider_name}:{}", push.delivery),
            ..PipelineRunSpec::default()
        },
    );
    run.metadata.namespace = pipeline.metadata.namespace.clone();
    run.metadata.labels = Some(BTreeMap::from([
        (PROVIDER_LABEL.to_owned(), provider_name.to_owned()),
        (PIPELINE_LABEL.to_owned(), label_value(&pipeline_name)),
        (COMMIT_LABEL.to_owned(), label_value(&push.commit)),
    ]));
    run
}

fn provider_name(provider: Provider) -> &'static str {
    match provider {
        Provider::Github => "github",
        Provider::Gitlab => "gitlab",
        Provider::Bitbucket => "bitbucket",
    }
}

/// Serves the routes on `listener` until `shutdown` completes, with each
/// request's peer address as its client address.
pub async fn serve<T: Triggers>(
    listener: tokio::net::TcpListener,
    triggers: Arc<T>,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(triggers, options).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

//! `c8s webhook` with an in-memory store: providers' push payloads and
//! signatures, 401 on a wrong or missing signature, the connection resolved
//! from the payload before any Secret is read, the failure budget (429),
//! replays with the same or a fresh delivery id, other events, the body
//! limit, and a bounded load test on loopback.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use c8s_controller::crd::{
    Pipeline, PipelineRun, PipelineSpec, Provider, RepositoryConnection, RepositoryConnectionSpec,
    SecretKeyRef, Trigger,
};
use c8s_controller::webhook::verify::sign;
use c8s_controller::webhook::{
    COMMIT_LABEL, ExistingRun, Options, PIPELINE_LABEL, PROVIDER_LABEL, TriggerError, Triggers, router, serve,
};
use c8s_pipeline_model::{MemorySource, parse_pipeline};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tower::ServiceExt;

const SECRET: &[u8] = b"It's a Secret to Everybody";
const OTHER_SECRET: &[u8] = b"a different secret";
const APP_SECRET: &[u8] = b"the org/app secret";
const SUBGROUP_SECRET: &[u8] = b"the x/org/app secret";

/// The cluster as the webhook sees it: connections (each provider has one
/// named `shop-hooks` in `ci`), pipelines, Secrets (every read counted),
/// runs (created with the fake's clock as their creation time).
struct Memory {
    pipelines: Vec<Arc<Pipeline>>,
    /// (namespace, name, secret name) of the connections, for every provider.
    connections: Vec<(&'static str, &'static str, &'static str)>,
    secrets: BTreeMap<(String, String), Vec<u8>>,
    secret_reads: Mutex<Vec<String>>,
    runs: Mutex<BTreeMap<String, PipelineRun>>,
    attempts: Mutex<u64>,
    now: Mutex<Timestamp>,
    /// ConfigMaps by (namespace, name), each replace giving a new resourceVersion.
    config_maps: Mutex<BTreeMap<(String, String), ConfigMap>>,
    /// Replaces to refuse with 409 (another writer got there first), from now.
    conflicts: Mutex<u32>,
}

impl Default for Memory {
    fn default() -> Self {
        let pipelines = vec![
            pipeline(
                "ci",
                "shop",
                "https://github.com/octo-org/shop.git",
                &["main", "release/*"],
            ),
            pipeline("ci", "shop-docs", "octo-org/shop", &["docs/**"]),
            // The same owner/name on another host: only that host's pushes start it.
            pipeline(
                "ci",
                "shop-bitbucket",
                "https://bitbucket.org/octo-org/shop.git",
                &["main"],
            ),
            pipeline("ci", "unrelated", "https://github.com/octo-org/other.git", &[]),
            pipeline("other", "elsewhere", "octo-org/elsewhere", &[]),
            pipeline("apps", "app", "https://gitlab.com/org/app.git", &[]),
        ]
        .into_iter()
        .map(Arc::new)
        .collect();
        let secrets = [
            ("ci", "shop-webhook", SECRET),
            ("other", "other-webhook", OTHER_SECRET),
            ("apps", "app-webhook", APP_SECRET),
            ("subgroup", "subgroup-webhook", SUBGROUP_SECRET),
        ]
        .into_iter()
        .map(|(ns, name, value)| ((ns.to_owned(), name.to_owned()), value.to_vec()))
        .collect();
        Memory {
            pipelines,
            connections: vec![
                ("ci", "shop-hooks", "shop-webhook"),
                ("other", "shop-hooks", "other-webhook"),
                ("apps", "shop-hooks", "app-webhook"),
                ("subgroup", "shop-hooks", "subgroup-webhook"),
            ],
            secrets,
            secret_reads: Mutex::new(Vec::new()),
            runs: Mutex::new(BTreeMap::new()),
            attempts: Mutex::new(0),
            now: Mutex::new("2026-03-01T10:00:00Z".parse().unwrap()),
            config_maps: Mutex::new(BTreeMap::new()),
            conflicts: Mutex::new(0),
        }
    }
}

impl Memory {
    fn with_pipeline(mut self, pipeline: Pipeline) -> Self {
        self.pipelines.push(Arc::new(pipeline));
        self
    }

    fn secret_reads(&self) -> Vec<String> {
        self.secret_reads.lock().unwrap().clone()
    }

    fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap();
        *now = now.checked_add(SignedDuration::try_from(by).unwrap()).unwrap();
    }
}

fn pipeline(namespace: &str, name: &str, repository: &str, branches: &[&str]) -> Pipeline {
    let text = format!(
        "name: {name}\nrepository: {repository}\nsteps:\n  - {{ name: unit, image: \"alpine:3\", commands: [\"true\"] }}\n"
    );
    let definition = parse_pipeline("p.c8s.yaml", &text, &MemorySource::new()).unwrap();
    let mut pipeline = Pipeline::new(
        name,
        PipelineSpec {
            pipeline: definition,
            trigger: Some(Trigger {
                connection: "shop-hooks".into(),
                repository: String::new(),
                branches: branches.iter().map(|b| (*b).to_owned()).collect(),
            }),
        },
    );
    pipeline.metadata.namespace = Some(namespace.into());
    pipeline
}

impl Triggers for Memory {
    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, TriggerError> {
        let maps = self.config_maps.lock().unwrap();
        Ok(maps.get(&(namespace.to_owned(), name.to_owned())).cloned())
    }

    async fn replace_config_map(&self, namespace: &str, mut map: ConfigMap) -> Result<bool, TriggerError> {
        let key = (namespace.to_owned(), map.metadata.name.clone().unwrap());
        let mut maps = self.config_maps.lock().unwrap();
        let stored = maps.get_mut(&key).unwrap();
        let mut conflicts = self.conflicts.lock().unwrap();
        if *conflicts > 0 {
            // Another writer: a new version, and this write refused.
            *conflicts -= 1;
            let version: u64 = stored
                .metadata
                .resource_version
                .as_deref()
                .unwrap()
                .parse()
                .unwrap();
            stored.metadata.resource_version = Some((version + 1).to_string());
            return Ok(false);
        }
        if map.metadata.resource_version != stored.metadata.resource_version {
            return Ok(false);
        }
        let version: u64 = map.metadata.resource_version.as_deref().unwrap().parse().unwrap();
        map.metadata.resource_version = Some((version + 1).to_string());
        *stored = map;
        Ok(true)
    }

    async fn connections(&self, provider: Provider) -> Result<Vec<Arc<RepositoryConnection>>, TriggerError> {
        Ok(self
            .connections
            .iter()
            .map(|(namespace, name, secret)| {
                let mut connection = RepositoryConnection::new(
                    name,
                    RepositoryConnectionSpec {
                        provider,
                        webhook_secret: SecretKeyRef {
                            name: (*secret).into(),
                            key: "secret".into(),
                        },
                    },
                );
                connection.metadata.namespace = Some((*namespace).into());
                Arc::new(connection)
            })
            .collect())
    }

    async fn pipelines(&self) -> Result<Vec<Arc<Pipeline>>, TriggerError> {
        Ok(self.pipelines.clone())
    }

    async fn secret(
        &self,
        namespace: &str,
        reference: &SecretKeyRef,
    ) -> Result<Option<Vec<u8>>, TriggerError> {
        self.secret_reads
            .lock()
            .unwrap()
            .push(format!("{namespace}/{}", reference.name));
        Ok(self
            .secrets
            .get(&(namespace.to_owned(), reference.name.clone()))
            .cloned())
    }

    async fn runs(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ExistingRun>, TriggerError> {
        let runs = self.runs.lock().unwrap();
        Ok(runs
            .values()
            .filter(|r| r.metadata.namespace.as_deref() == Some(namespace))
            .filter(|r| {
                let own = r.metadata.labels.clone().unwrap_or_default();
                labels.iter().all(|(k, v)| own.get(k) == Some(v))
            })
            .map(|r| ExistingRun {
                name: r.metadata.name.clone().unwrap_or_default(),
                created: r.metadata.creation_timestamp.as_ref().map(|t| t.0),
            })
            .collect())
    }

    async fn create_run(&self, namespace: &str, mut run: PipelineRun) -> Result<bool, TriggerError> {
        assert_eq!(run.metadata.namespace.as_deref(), Some(namespace));
        *self.attempts.lock().unwrap() += 1;
        let name = run.metadata.name.clone().unwrap_or_default();
        let mut runs = self.runs.lock().unwrap();
        if runs.contains_key(&name) {
            return Ok(false);
        }
        run.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            *self.now.lock().unwrap(),
        ));
        runs.insert(name, run);
        Ok(true)
    }

    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap()
    }
}

fn app(store: &Arc<Memory>) -> axum::Router {
    router(store.clone(), Options::default())
}

/// A GitHub `push` payload with the fields its documentation lists.
fn github_push(branch: &str, after: &str) -> String {
    serde_json::json!({
        "ref": format!("refs/heads/{branch}"),
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": after,
        "created": false, "deleted": false, "forced": false,
        "repository": {
            "id": 1296269, "name": "shop", "full_name": "octo-org/shop",
            "clone_url": "https://github.com/octo-org/shop.git",
            "html_url": "https://github.com/octo-org/shop",
            "ssh_url": "git@github.com:octo-org/shop.git",
            "default_branch": "main"
        },
        "pusher": {"name": "octocat", "email": "octocat@github.com"},
        "sender": {"login": "octocat", "id": 1},
        "head_commit": {"id": after, "message": "Fix all the bugs", "timestamp": "2026-01-01T00:00:00Z"}
    })
    .to_string()
}

fn github(body: &str, event: &str, delivery: &str, signature: Option<String>) -> Request<Body> {
    let mut request = Request::post("/hooks/github")
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery);
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

async fn send(app: &axum::Router, request: Request<Body>) -> (StatusCode, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

const COMMIT: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";

#[tokio::test]
async fn a_signed_github_push_creates_one_run_for_the_matching_pipeline() {
    let store = Arc::new(Memory::default());
    let app = app(&store);
    let body = github_push("release/1.2", COMMIT);
    let (status, text) = send(
        &app,
        github(
            &body,
            "push",
            "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            Some(sign(SECRET, body.as_bytes())),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let runs = store.runs.lock().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = runs.values().next().unwrap();
    assert_eq!(run.spec.pipeline_ref.as_deref(), Some("shop"));
    assert_eq!(run.spec.branch, "release/1.2");
    assert_eq!(run.spec.commit, COMMIT);
    assert_eq!(
        run.spec.triggered_by,
        "webhook:github:72d3162e-cc78-11e3-81ab-4c9367dc0958"
    );
    assert_eq!(run.metadata.namespace.as_deref(), Some("ci"));
}

#[tokio::test]
async fn a_replayed_delivery_creates_no_second_run() {
    let store = Arc::new(Memory::default());
    let app = app(&store);
    let body = github_push("main", COMMIT);
    let request = || github(&body, "push", "delivery-1", Some(sign(SECRET, body.as_bytes())));
    assert_eq!(send(&app, request()).await.0, StatusCode::CREATED);
    assert_eq!(send(&app, request()).await.0, StatusCode::OK);
    assert_eq!(store.runs.lock().unwrap().len(), 1);
    // The second found the first by its labels: no create was tried.
    assert_eq!(*store.attempts.lock().unwrap(), 1);
}

#[tokio::test]
async fn a_wrong_or_missing_signature_is_401_and_creates_nothing() {
    let store = Arc::new(Memory::default());
    let app = app(&store);
    let body = github_push("main", COMMIT);
    let tampered = github_push("main", "1111111111111111111111111111111111111111");
    for request in [
        github(&body, "push", "d1", None),
        github(&body, "push", "d2", Some(sign(b"wrong secret", body.as_bytes()))),
        github(&tampered, "push", "d3", Some(sign(SECRET, body.as_bytes()))),
        github(&body, "push", "d4", Some("sha256=".to_owned())),
    ] {
        assert_eq!(send(&app, request).await.0, StatusCode::UNAUTHORIZED);
    }
    assert!(store.runs.lock().unwrap().is_empty());
    assert_eq!(*store.attempts.lock().unwrap(), 0);
}

#[tokio::test]
async fn other_events_and_unmatched_branches_are_acknowledged_and_ignored() {
    let store = Arc::new(Memory::default());
    let app = app(&store);
    // A repository hook's ping names its repository.
    let ping =
        r#"{"zen":"Keep it logically awesome.","hook_id":1,"repository":{"full_name":"octo-org/shop"}}"#;
    let (status, _) = send(
        &app,
        github(ping, "ping", "p1", Some(sign(SECRET, ping.as_bytes()))),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let feature = github_push("feature/x", COMMIT);
    let (status, _) = send(
        &app,
        github(&feature, "push", "p2", Some(sign(SECRET, feature.as_bytes()))),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let deleted = github_push("main", "0000000000000000000000000000000000000000");
    let (status, _) = send(
        &app,
        github(&deleted, "push", "p3", Some(sign(SECRET, deleted.as_bytes()))),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(store.runs.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let store = Arc::new(Memory::default());
    let app = router(
        store.clone(),
        Options {
            body_limit: 1024,
            ..Options::default()
        },
    );
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(4096));
    let (status, _) = send(
        &app,
        github(&body, "push", "big", Some(sign(SECRET, body.as_bytes()))),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(store.runs.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_gitlab_push_hook_with_its_token_creates_a_run() {
    let store = Arc::new(Memory::default());
    let app = app(&store);
    // The fields of GitLab's documented "Push events" example.
    let body = serde_json::json!({
        "object_kind": "push", "event_name": "push",
        "before": "95790bf891e76fee5e1747ab589903a6a1f80f22", "after": COMMIT,
        "ref": "refs/heads/docs/guide/intro", "checkout_sha": COMMIT,
        "user_username": "jsmith",
        "project": {"id": 15, "name": "shop", "path_with_namespace": "octo-org/shop",
                    "git_http_url": "https://gitlab.example.com/octo-org/shop.git",
                    "git_ssh_url": "git@gitlab.example.com:octo-org/shop.git",
                    "web_url": "https://gitlab.example.com/octo-org/shop"},
        "commits": [], "total_commits_count": 0
    })
    .to_string();
    let request = |token: &str| {
        Request::post("/hooks/gitlab")
            .header("x-gitlab-event", "Push Hook")
            .header("x-gitlab-event-uuid", "b5d8f0a4-0000-4c7b-9d2e-7b2f00000001")
            .header("x-gitlab-token", token)
            .body(Body::from(body.clone()))
            .unwrap()
    };
    assert_eq!(
        send(&app, request("It's a Secret to Everybod")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, text) = send(&app, request("It's a Secret to Everybody")).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let runs = store.runs.lock().unwrap();
    let run = runs.values().next().unwrap();
    assert_eq!(run.spec.pipeline_ref.as_deref(), Some("shop-docs"));
    assert_eq!(run.spec.branch, "docs/guide/intro");
}

#[tokio::test]
async fn a_bitbucket_repo_push_signed_with_x_hub_signature_creates_a_run() {
    let store = Arc::new(Memory::default());
    let app = app(&store);
    // The shape of Bitbucket Cloud's documented `repo:push` payload.
    let body = serde_json::json!({
        "actor": {"display_name": "Octo Cat"},
        "repository": {"full_name": "octo-org/shop", "name": "shop",
                       "links": {"html": {"href": "https://bitbucket.org/octo-org/shop"}}},
        "push": {"changes": [{
            "old": {"type": "branch", "name": "main", "target": {"hash": "95790bf891e7"}},
            "new": {"type": "branch", "name": "main", "target": {"type": "commit", "hash": COMMIT}},
            "created": false, "closed": false, "forced": false
        }]}
    })
    .to_string();
    let request = Request::post("/hooks/bitbucket")
        .header("x-event-key", "repo:push")
        .header("x-request-uuid", "afb3a0b8-0000-4c1d-8a3a-000000000001")
        .header("x-hub-signature", sign(SECRET, body.as_bytes()))
        .body(Body::from(body.clone()))
        .unwrap();
    let (status, text) = send(&app, request).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let runs = store.runs.lock().unwrap();
    let started: Vec<_> = runs.values().map(|r| r.spec.pipeline_ref.clone()).collect();
    assert_eq!(started, [Some("shop-bitbucket".to_owned())]);
}

/// A GitHub push of `repository` (`owner/name`) to `main`.
fn github_push_of(repository: &str) -> String {
    serde_json::json!({
        "ref": "refs/heads/main", "after": COMMIT,
        "repository": {
            "full_name": repository,
            "clone_url": format!("https://github.com/{repository}.git"),
            "html_url": format!("https://github.com/{repository}")
        }
    })
    .to_string()
}

#[tokio::test]
async fn a_delivery_naming_no_known_repository_is_401_and_reads_no_secret() {
    let store = Arc::new(Memory::default());
    let app = app(&store);
    let unknown = github_push_of("octo-org/unknown");
    // Signed with a real connection's secret: still no connection of that repository.
    for request in [
        github(&unknown, "push", "u1", Some(sign(SECRET, unknown.as_bytes()))),
        github(&unknown, "ping", "u2", Some(sign(SECRET, unknown.as_bytes()))),
        github("not json", "push", "u3", Some(sign(SECRET, b"not json"))),
        github(r#"{"zen":"no repository"}"#, "ping", "u4", None),
    ] {
        let (status, text) = send(&app, request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    }
    assert_eq!(store.secret_reads(), Vec::<String>::new());
    assert!(store.runs.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_known_repository_reads_exactly_the_secret_of_its_connection() {
    let store = Arc::new(Memory::default());
    let app = app(&store);
    let body = github_push("main", COMMIT);
    let (status, _) = send(
        &app,
        github(&body, "push", "k1", Some(sign(b"wrong secret", body.as_bytes()))),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Not `other/other-webhook`, although `other` has a connection of the same name.
    assert_eq!(store.secret_reads(), ["ci/shop-webhook"]);
    let (status, text) = send(
        &app,
        github(&body, "push", "k2", Some(sign(SECRET, body.as_bytes()))),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert_eq!(store.secret_reads(), ["ci/shop-webhook", "ci/shop-webhook"]);
    // A push of `octo-org/elsewhere` resolves to the connection in `other` only.
    let elsewhere = github_push_of("octo-org/elsewhere");
    let (status, text) = send(
        &app,
        github(
            &elsewhere,
            "push",
            "k3",
            Some(sign(OTHER_SECRET, elsewhere.as_bytes())),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert_eq!(store.secret_reads()[2..], ["other/other-webhook"]);
}

/// A GitLab push of project `path` on gitlab.com with token `token`.
fn gitlab_push(path: &str, token: &[u8]) -> Request<Body> {
    let body = serde_json::json!({
        "object_kind": "push", "ref": "refs/heads/main", "after": COMMIT, "checkout_sha": COMMIT,
        "project": {"path_with_namespace": path,
                    "git_http_url": format!("https://gitlab.com/{path}.git"),
                    "web_url": format!("https://gitlab.com/{path}")}
    })
    .to_string();
    Request::post("/hooks/gitlab")
        .header("x-gitlab-event", "Push Hook")
        .header("x-gitlab-event-uuid", format!("uuid-{path}"))
        .header("x-gitlab-token", String::from_utf8_lossy(token).into_owned())
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn a_subgroup_push_never_resolves_to_the_connection_of_the_shorter_path() {
    // `apps` triggers on gitlab.com/org/app; nothing on x/org/app yet.
    let store = Arc::new(Memory::default());
    let (status, _) = send(&app(&store), gitlab_push("x/org/app", APP_SECRET)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(store.secret_reads(), Vec::<String>::new());
    assert!(store.runs.lock().unwrap().is_empty());

    // With a pipeline on x/org/app in `subgroup`: each path reads its own Secret only.
    let store = Arc::new(Memory::default().with_pipeline(pipeline(
        "subgroup",
        "subgroup-app",
        "https://gitlab.com/x/org/app",
        &[],
    )));
    let app = app(&store);
    let (status, _) = send(&app, gitlab_push("x/org/app", APP_SECRET)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(store.secret_reads(), ["subgroup/subgroup-webhook"]);
    let (status, text) = send(&app, gitlab_push("x/org/app", SUBGROUP_SECRET)).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let (status, _) = send(&app, gitlab_push("org/app", SUBGROUP_SECRET)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        store.secret_reads(),
        [
            "subgroup/subgroup-webhook",
            "subgroup/subgroup-webhook",
            "apps/app-webhook"
        ]
    );
    let runs = store.runs.lock().unwrap();
    let started: Vec<_> = runs
        .values()
        .map(|r| (r.metadata.namespace.clone(), r.spec.pipeline_ref.clone()))
        .collect();
    assert_eq!(
        started,
        [(Some("subgroup".to_owned()), Some("subgroup-app".to_owned()))]
    );
}

/// `request` as if it came from `address`.
fn from(address: [u8; 4], mut request: Request<Body>) -> Request<Body> {
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((address, 40000))));
    request
}

#[tokio::test(start_paused = true)]
async fn spent_failure_budget_turns_into_429_per_address_and_successes_spend_none() {
    let store = Arc::new(Memory::default());
    let app = router(
        store.clone(),
        Options {
            failures_per_minute: 3,
            ..Options::default()
        },
    );
    let (attacker, other) = ([192, 0, 2, 1], [198, 51, 100, 7]);
    let body = github_push("main", COMMIT);
    let bad = || github(&body, "push", "b", Some(sign(b"guess", body.as_bytes())));
    let good = |delivery: &str| github(&body, "push", delivery, Some(sign(SECRET, body.as_bytes())));
    // Successes are never limited and spend nothing.
    for i in 0..10 {
        let (status, _) = send(&app, from(attacker, good(&format!("g{i}")))).await;
        assert!(status.is_success(), "{status}");
    }
    for _ in 0..3 {
        assert_eq!(
            send(&app, from(attacker, bad())).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let reads = store.secret_reads().len();
    let response = app.clone().oneshot(from(attacker, bad())).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "20");
    // A spent address gets 429 before any work: no Secret read, not even for a good delivery.
    assert_eq!(
        send(&app, from(attacker, good("g-late"))).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(store.secret_reads().len(), reads);
    // Another address has its own budget.
    assert_eq!(send(&app, from(other, bad())).await.0, StatusCode::UNAUTHORIZED);
    // One failure comes back every 20 s.
    tokio::time::advance(Duration::from_secs(20)).await;
    assert_eq!(
        send(&app, from(attacker, bad())).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, from(attacker, bad())).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::advance(Duration::from_secs(20)).await;
    assert_eq!(
        send(&app, from(attacker, good("g-after"))).await.0,
        StatusCode::OK,
        "a delivery of a commit already run"
    );
}

#[tokio::test(start_paused = true)]
async fn behind_a_proxy_the_configured_headers_last_entry_is_the_client() {
    let store = Arc::new(Memory::default());
    let app = router(
        store.clone(),
        Options {
            failures_per_minute: 1,
            client_ip_header: Some(c8s_controller::webhook::HeaderName::from_static(
                "x-forwarded-for",
            )),
            ..Options::default()
        },
    );
    let body = github_push("main", COMMIT);
    let bad = |forwarded: &str| {
        let mut request = from(
            [10, 0, 0, 1],
            github(&body, "push", "b", Some(sign(b"guess", body.as_bytes()))),
        );
        request
            .headers_mut()
            .insert("x-forwarded-for", forwarded.parse().unwrap());
        request
    };
    // The proxy appends the address it saw; what the client wrote before it is not trusted.
    assert_eq!(
        send(&app, bad("203.0.113.9, 192.0.2.1")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, bad("198.51.100.1, 192.0.2.1")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(send(&app, bad("192.0.2.2")).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_redelivery_with_a_fresh_delivery_id_within_the_window_creates_no_second_run() {
    let store = Arc::new(Memory::default());
    let app = app(&store);
    let body = github_push("main", COMMIT);
    let deliver = |delivery: &str| github(&body, "push", delivery, Some(sign(SECRET, body.as_bytes())));
    let (status, text) = send(&app, deliver("first-delivery")).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let name = store.runs.lock().unwrap().keys().next().unwrap().clone();
    {
        let runs = store.runs.lock().unwrap();
        let labels = runs[&name].metadata.labels.clone().unwrap();
        assert_eq!(labels[PROVIDER_LABEL], "github");
        assert_eq!(labels[PIPELINE_LABEL], "shop");
        assert_eq!(labels[COMMIT_LABEL], COMMIT);
    }
    store.advance(Duration::from_secs(59 * 60));
    let (status, text) = send(&app, deliver("fresh-delivery")).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(text, format!("created: \nalready created: {name}\n"));
    assert_eq!(store.runs.lock().unwrap().len(), 1);
    assert_eq!(*store.attempts.lock().unwrap(), 1);
    // After the window, the same commit runs again.
    store.advance(Duration::from_secs(2 * 60));
    let (status, text) = send(&app, deliver("much-later")).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert_eq!(store.runs.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_redelivery_across_a_period_boundary_still_finds_the_run() {
    // 10:59:59 and 11:00:30 fall in two one-hour periods (the run names
    // differ), but 31 s apart: the labels find the first run.
    let store = Arc::new(Memory::default());
    *store.now.lock().unwrap() = "2026-03-01T10:59:59Z".parse().unwrap();
    let app = app(&store);
    let body = github_push("main", COMMIT);
    let deliver = |delivery: &str| github(&body, "push", delivery, Some(sign(SECRET, body.as_bytes())));
    assert_eq!(send(&app, deliver("d-1059")).await.0, StatusCode::CREATED);
    store.advance(Duration::from_secs(31));
    let (status, text) = send(&app, deliver("d-1100")).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(store.runs.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn racing_redeliveries_meet_on_one_name() {
    // Both look before either creates: the name, not the lookup, stops the second.
    let store = Arc::new(Memory::default());
    let pipeline = &store.pipelines[0];
    let push = |delivery: &str| c8s_controller::webhook::Push {
        delivery: delivery.into(),
        repositories: vec!["octo-org/shop".into()],
        branch: "main".into(),
        commit: COMMIT.into(),
    };
    let now = store.now();
    let window = Duration::from_secs(3600);
    let first = c8s_controller::webhook::run_for(Provider::Github, pipeline, &push("a"), now, window);
    let second = c8s_controller::webhook::run_for(Provider::Github, pipeline, &push("b"), now, window);
    assert_eq!(first.metadata.name, second.metadata.name);
    assert_eq!(first.metadata.labels, second.metadata.labels);
    assert!(store.create_run("ci", first).await.unwrap());
    assert!(!store.create_run("ci", second).await.unwrap());
    let gitlab = c8s_controller::webhook::run_for(Provider::Gitlab, pipeline, &push("a"), now, window);
    assert_ne!(
        gitlab.metadata.name,
        store.runs.lock().unwrap().keys().next().cloned()
    );
}

/// Bounded load on loopback: 2 000 signed deliveries (every fourth one a
/// replay of an earlier delivery) from 32 concurrent connections. Every
/// distinct delivery creates exactly one run; prints requests per second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_on_loopback_loses_and_duplicates_no_delivery() {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let store = Arc::new(Memory::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, store.clone(), Options::default(), async move {
        let _ = stopped.await;
    }));
    let client: Client<_, http_body_util::Full<axum::body::Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    const TOTAL: usize = 2_000;
    const WORKERS: usize = 32;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..WORKERS {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in (worker..TOTAL).step_by(WORKERS) {
                // Every fourth request replays delivery i - 1.
                let delivery = if i % 4 == 3 { i - 1 } else { i };
                let body = github_push("main", &format!("{:040x}", delivery + 1));
                let request = http::Request::post(format!("http://{address}/hooks/github"))
                    .header("x-github-event", "push")
                    .header("x-github-delivery", format!("delivery-{delivery}"))
                    .header("x-hub-signature-256", sign(SECRET, body.as_bytes()))
                    .body(http_body_util::Full::new(axum::body::Bytes::from(body)))
                    .unwrap();
                let response = tokio::time::timeout(Duration::from_secs(10), client.request(request)).await;
                statuses.push(response.ok().and_then(Result::ok).map(|r| r.status().as_u16()));
            }
            statuses
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    let _ = stop.send(());
    let _ = server.await;
    let answered = statuses.iter().filter(|s| matches!(s, Some(200 | 201))).count();
    assert_eq!(
        answered,
        TOTAL,
        "every request answered 200/201: {:?}",
        statuses
            .iter()
            .filter(|s| !matches!(s, Some(200 | 201)))
            .take(5)
            .collect::<Vec<_>>()
    );
    let distinct = (0..TOTAL).filter(|i| i % 4 != 3).count();
    let runs = store.runs.lock().unwrap();
    assert_eq!(runs.len(), distinct, "one run per distinct delivery");
    for i in (0..TOTAL).filter(|i| i % 4 != 3) {
        let wanted = format!("webhook:github:delivery-{i}");
        assert!(
            runs.values().any(|r| r.spec.triggered_by == wanted),
            "{wanted} lost"
        );
    }
    let per_second = TOTAL as f64 / elapsed.as_secs_f64();
    println!(
        "c8s-webhook-load\t{TOTAL} requests\t{WORKERS} connections\t{per_second:.0} requests/s\t{distinct} runs, 0 lost, 0 duplicated"
    );
}

/// A `c8s watch` history of pipeline `ci` in namespace `team`: resource
/// `repo` has a webhook with `token`, `tools` has none.
fn with_history(store: &Memory, token: &str) {
    use c8s_controller::webhook::concourse::{WEBHOOKS_KEY, history_name, token_digest};
    let mut map = ConfigMap::default();
    map.metadata.name = Some(history_name("ci"));
    map.metadata.resource_version = Some("1".to_owned());
    let digests = BTreeMap::from([("repo", token_digest(token))]);
    map.data = Some(BTreeMap::from([
        ("history.json".to_owned(), "{}".to_owned()),
        (WEBHOOKS_KEY.to_owned(), serde_json::to_string(&digests).unwrap()),
    ]));
    store
        .config_maps
        .lock()
        .unwrap()
        .insert(("team".to_owned(), history_name("ci")), map);
}

fn check_request(path: &str) -> Request<Body> {
    Request::post(path).body(Body::empty()).unwrap()
}

fn requests(store: &Memory) -> BTreeMap<String, u64> {
    use c8s_controller::webhook::concourse::{check_requests, history_name};
    let maps = store.config_maps.lock().unwrap();
    check_requests(&maps[&("team".to_owned(), history_name("ci"))])
}

/// Concourse's resource webhook: the URL Concourse serves, with the team as
/// the namespace. The right token counts a check request (201), also when
/// another writer changed the history meanwhile (the write is retried);
/// a wrong or missing token, an unknown resource, pipeline or team are all
/// the same 401 and count nothing; the history itself is left as it was.
#[tokio::test]
async fn a_resource_webhook_with_its_token_asks_for_a_check_and_any_other_is_401() {
    let store = Arc::new(Memory::default());
    with_history(&store, "s3cr3t-t0ken");
    let app = app(&store);
    let url = |team: &str, pipeline: &str, resource: &str, token: &str| {
        format!(
            "/api/v1/teams/{team}/pipelines/{pipeline}/resources/{resource}/check/webhook?webhook_token={token}"
        )
    };
    let (status, _) = send(&app, check_request(&url("team", "ci", "repo", "s3cr3t-t0ken"))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(requests(&store), BTreeMap::from([("repo".to_owned(), 1)]));
    *store.conflicts.lock().unwrap() = 2;
    let (status, _) = send(&app, check_request(&url("team", "ci", "repo", "s3cr3t-t0ken"))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(requests(&store), BTreeMap::from([("repo".to_owned(), 2)]));
    for (team, pipeline, resource, token) in [
        ("team", "ci", "repo", "wrong"),
        ("team", "ci", "repo", ""),
        ("team", "ci", "tools", "s3cr3t-t0ken"),
        ("team", "other", "repo", "s3cr3t-t0ken"),
        ("elsewhere", "ci", "repo", "s3cr3t-t0ken"),
    ] {
        let (status, text) = send(&app, check_request(&url(team, pipeline, resource, token))).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{team}/{pipeline}/{resource}/{token}"
        );
        assert_eq!(text, "no resource webhook with this token\n");
    }
    // Without `?webhook_token=` at all.
    let (status, _) = send(
        &app,
        check_request("/api/v1/teams/team/pipelines/ci/resources/repo/check/webhook"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(requests(&store), BTreeMap::from([("repo".to_owned(), 2)]));
    let maps = store.config_maps.lock().unwrap();
    let map = maps.values().next().unwrap();
    assert_eq!(map.data.as_ref().unwrap()["history.json"], "{}");
}

//! `c8s webhook` with an in-memory store: providers' push payloads and
//! signatures, 401 on a wrong or missing signature, replays, other events,
//! the body limit, and a bounded load test on loopback.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use c8s_controller::crd::{Pipeline, PipelineRun, PipelineSpec, Provider, Trigger};
use c8s_controller::webhook::verify::sign;
use c8s_controller::webhook::{ConnectionSecret, DEFAULT_BODY_LIMIT, Triggers, router, serve};
use c8s_pipeline_model::{MemorySource, parse_pipeline};
use http_body_util::BodyExt;
use tower::ServiceExt;

const SECRET: &[u8] = b"It's a Secret to Everybody";

#[derive(Default)]
struct Memory {
    runs: Mutex<BTreeMap<String, PipelineRun>>,
    attempts: Mutex<u64>,
}

fn pipeline(name: &str, repository: &str, branches: &[&str]) -> Pipeline {
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
    pipeline.metadata.namespace = Some("ci".into());
    pipeline
}

impl Triggers for Memory {
    async fn connections(&self, _provider: Provider) -> Result<Vec<ConnectionSecret>, String> {
        Ok(vec![
            ConnectionSecret {
                namespace: "other".into(),
                name: "elsewhere".into(),
                secret: b"a different secret".to_vec(),
            },
            ConnectionSecret {
                namespace: "ci".into(),
                name: "shop-hooks".into(),
                secret: SECRET.to_vec(),
            },
        ])
    }
    async fn pipelines(&self, namespace: &str) -> Result<Vec<Pipeline>, String> {
        assert_eq!(namespace, "ci");
        Ok(vec![
            pipeline(
                "shop",
                "https://github.com/octo-org/shop.git",
                &["main", "release/*"],
            ),
            pipeline("shop-docs", "octo-org/shop", &["docs/**"]),
            // The same owner/name on another host: only that host's pushes start it.
            pipeline(
                "shop-bitbucket",
                "https://bitbucket.org/octo-org/shop.git",
                &["main"],
            ),
            pipeline("unrelated", "https://github.com/octo-org/other.git", &[]),
        ])
    }
    async fn create_run(&self, _namespace: &str, run: PipelineRun) -> Result<bool, String> {
        *self.attempts.lock().unwrap() += 1;
        let name = run.metadata.name.clone().unwrap_or_default();
        let mut runs = self.runs.lock().unwrap();
        if runs.contains_key(&name) {
            return Ok(false);
        }
        runs.insert(name, run);
        Ok(true)
    }
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
    let app = router(store.clone(), DEFAULT_BODY_LIMIT);
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
    let app = router(store.clone(), DEFAULT_BODY_LIMIT);
    let body = github_push("main", COMMIT);
    let request = || github(&body, "push", "delivery-1", Some(sign(SECRET, body.as_bytes())));
    assert_eq!(send(&app, request()).await.0, StatusCode::CREATED);
    assert_eq!(send(&app, request()).await.0, StatusCode::OK);
    assert_eq!(store.runs.lock().unwrap().len(), 1);
    assert_eq!(*store.attempts.lock().unwrap(), 2);
}

#[tokio::test]
async fn a_wrong_or_missing_signature_is_401_and_creates_nothing() {
    let store = Arc::new(Memory::default());
    let app = router(store.clone(), DEFAULT_BODY_LIMIT);
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
    let app = router(store.clone(), DEFAULT_BODY_LIMIT);
    let ping = r#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
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
    let app = router(store.clone(), 1024);
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
    let app = router(store.clone(), DEFAULT_BODY_LIMIT);
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
    let app = router(store.clone(), DEFAULT_BODY_LIMIT);
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
    let server = tokio::spawn(serve(listener, store.clone(), DEFAULT_BODY_LIMIT, async move {
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

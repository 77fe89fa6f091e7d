//! `c8s controller` and `c8s webhook` against kube's mock service.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use c8s_controller::crd::{Pipeline, PipelineSpec, Trigger};
use c8s_controller::reconcile::Settings;
use http::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Lease, parse_instance_id, run_controller, serve_webhook, shutdown};
use c8s_kube::mock::{Answer, Requests, Seen, client, list, seen, status};

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/c8s/leases";

/// Waits until `pred` holds for the requests seen (at most 20 s).
async fn until(requests: &Requests, pred: impl Fn(&[Seen]) -> bool) {
    for _ in 0..400 {
        if pred(&seen(requests)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {:#?}", seen(requests));
}

fn watches(seen: &[Seen], path: &str) -> bool {
    seen.iter()
        .any(|s| s.uri.starts_with(path) && s.uri.contains("watch=true"))
}

/// The API as a fresh cluster shows it to the controller: no Lease yet, no
/// runs, pods or Jobs; watches stay open.
fn controller_routes() -> impl FnMut(&Seen) -> Answer + Send + 'static {
    let mut lease: Option<Value> = None;
    move |seen: &Seen| match (&seen.method, seen.uri.as_str()) {
        (&Method::GET, uri) if uri.starts_with(&format!("{LEASE}/c8s-controller")) => match &lease {
            Some(lease) => Answer::Json(200, lease.clone()),
            None => Answer::Json(404, status(404, "NotFound")),
        },
        (&Method::POST | &Method::PUT, uri) if uri.starts_with(LEASE) => {
            let mut stored = seen.body.clone();
            stored["metadata"]["resourceVersion"] = json!("2");
            lease = Some(stored.clone());
            Answer::Json(if seen.method == Method::POST { 201 } else { 200 }, stored)
        }
        (_, uri) if uri.contains("watch=true") => Answer::Hold,
        (_, uri) if uri.starts_with("/apis/c8s.dev/v1alpha1/pipelineruns?") => {
            Answer::Json(200, list("c8s.dev/v1alpha1", "PipelineRun", vec![], "10"))
        }
        (_, uri) if uri.starts_with("/api/v1/pods?") => Answer::Json(200, list("v1", "Pod", vec![], "10")),
        (_, uri) if uri.starts_with("/apis/batch/v1/jobs?") => {
            Answer::Json(200, list("batch/v1", "Job", vec![], "10"))
        }
        _ => Answer::Json(404, status(404, "NotFound")),
    }
}

#[tokio::test]
async fn controller_takes_the_lease_then_watches_runs_and_pods_and_stops_on_sigterm() {
    let (client, requests) = client("ci", controller_routes());
    let lease = Lease {
        namespace: "c8s",
        identity: "replica-a",
    };
    // Installed now: the SIGTERM below is caught by the controller, not the test process.
    let stop = shutdown();
    let metrics = std::sync::Arc::default();
    let controller = tokio::spawn(run_controller(
        (client.clone(), client),
        Settings::default(),
        lease,
        false,
        metrics,
        stop,
    ));
    until(&requests, |seen| {
        watches(seen, "/apis/c8s.dev/v1alpha1/pipelineruns?") && watches(seen, "/api/v1/pods?")
    })
    .await;
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let stopped = tokio::time::timeout(Duration::from_secs(20), controller).await;
    stopped
        .expect("the controller stops on SIGTERM")
        .unwrap()
        .unwrap();

    let seen = seen(&requests);
    let first: Vec<(Method, &str)> = seen
        .iter()
        .take(2)
        .map(|s| (s.method.clone(), s.uri.as_str()))
        .collect();
    assert_eq!(
        first,
        vec![
            (
                Method::GET,
                "/apis/coordination.k8s.io/v1/namespaces/c8s/leases/c8s-controller"
            ),
            (
                Method::POST,
                "/apis/coordination.k8s.io/v1/namespaces/c8s/leases?"
            ),
        ],
        "the Lease comes before any watch: {seen:#?}"
    );
    assert_eq!(seen[1].body["spec"]["holderIdentity"], "replica-a");
    // The pod watch selects c8s's objects only; steps are Pods, no Job is watched.
    assert!(
        seen.iter()
            .filter(|s| s.uri.starts_with("/api/v1/pods?"))
            .all(|s| s.uri.contains("labelSelector=c8s.dev%2Frun")),
        "{seen:#?}"
    );
    assert!(
        !seen.iter().any(|s| s.uri.starts_with("/apis/batch/v1/jobs?")),
        "{seen:#?}"
    );
    // On the way out the Lease is handed back.
    let last = seen.last().unwrap();
    assert_eq!(last.method, Method::PUT, "{seen:#?}");
    assert_eq!(last.uri, format!("{LEASE}/c8s-controller?"));
    assert_eq!(last.body["spec"]["holderIdentity"], Value::Null);
}

fn connection() -> Value {
    json!({
        "apiVersion": "c8s.dev/v1alpha1", "kind": "RepositoryConnection",
        "metadata": {"name": "shop-hooks", "namespace": "ci"},
        "spec": {"provider": "github", "webhookSecret": {"name": "shop-webhook", "key": "secret"}}
    })
}

fn webhook_secret() -> Value {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    let mut secret = Secret::default();
    secret.metadata.name = Some("shop-webhook".into());
    secret.data = Some([("secret".to_owned(), ByteString(SECRET.to_vec()))].into());
    let mut value = serde_json::to_value(&secret).unwrap();
    value["apiVersion"] = json!("v1");
    value["kind"] = json!("Secret");
    value
}

fn pipeline() -> Value {
    let text = "name: shop\nrepository: https://github.com/octo-org/shop.git\nsteps:\n  - { name: unit, image: \"alpine:3\", commands: [\"true\"] }\n";
    let definition =
        c8s_pipeline_model::parse_pipeline("p.c8s.yaml", text, &c8s_pipeline_model::MemorySource::new())
            .unwrap();
    let mut pipeline = Pipeline::new(
        "shop",
        PipelineSpec {
            pipeline: definition,
            trigger: Some(Trigger {
                connection: "shop-hooks".into(),
                repository: String::new(),
                branches: vec!["main".into()],
            }),
        },
    );
    pipeline.metadata.namespace = Some("ci".into());
    serde_json::to_value(&pipeline).unwrap()
}

const SECRET: &[u8] = b"It's a Secret to Everybody";
const COMMIT: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";

/// The API as the webhook sees it: one connection and its Secret, one
/// Pipeline, watches that stay open, runs listed and created (kept, with a
/// creation time, so that a redelivery finds them).
fn webhook_routes() -> impl FnMut(&Seen) -> Answer + Send + 'static {
    let mut runs: Vec<Value> = Vec::new();
    move |seen: &Seen| match (&seen.method, seen.uri.as_str()) {
        (_, uri) if uri.contains("watch=true") => Answer::Hold,
        (&Method::GET, uri) if uri.starts_with("/apis/c8s.dev/v1alpha1/repositoryconnections?") => {
            Answer::Json(
                200,
                list(
                    "c8s.dev/v1alpha1",
                    "RepositoryConnection",
                    vec![connection()],
                    "3",
                ),
            )
        }
        (&Method::GET, uri) if uri.starts_with("/apis/c8s.dev/v1alpha1/pipelines?") => {
            Answer::Json(200, list("c8s.dev/v1alpha1", "Pipeline", vec![pipeline()], "3"))
        }
        (&Method::GET, "/api/v1/namespaces/ci/secrets/shop-webhook") => Answer::Json(200, webhook_secret()),
        (&Method::GET, uri) if uri.starts_with("/apis/c8s.dev/v1alpha1/namespaces/ci/pipelineruns?") => {
            Answer::Json(200, list("c8s.dev/v1alpha1", "PipelineRun", runs.clone(), "4"))
        }
        (&Method::POST, "/apis/c8s.dev/v1alpha1/namespaces/ci/pipelineruns?") => {
            let mut run = seen.body.clone();
            run["metadata"]["creationTimestamp"] = json!(k8s_openapi::jiff::Timestamp::now().to_string());
            runs.push(run.clone());
            Answer::Json(201, run)
        }
        _ => Answer::Json(404, status(404, "NotFound")),
    }
}

/// POSTs `body` to `/hooks/github` on `addr` with delivery id `delivery`
/// and returns the response's status line.
async fn post_github(addr: std::net::SocketAddr, body: &str, signature: &str, delivery: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /hooks/github HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\nx-github-event: push\r\nx-github-delivery: {delivery}\r\nx-hub-signature-256: {signature}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response.lines().next().unwrap_or_default().to_owned()
}

fn push_body(repository: &str) -> String {
    json!({
        "ref": "refs/heads/main",
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": COMMIT,
        "repository": {"full_name": repository, "clone_url": format!("https://github.com/{repository}.git"), "html_url": format!("https://github.com/{repository}")},
        "pusher": {"name": "octocat", "email": "octocat@github.com"},
        "sender": {"login": "octocat", "id": 1}
    })
    .to_string()
}

fn secret_reads(requests: &Requests) -> usize {
    seen(requests)
        .iter()
        .filter(|s| s.uri.starts_with("/api/v1/namespaces/ci/secrets/"))
        .count()
}

#[tokio::test]
async fn webhook_watches_resolves_the_repository_then_reads_one_secret_and_ignores_a_redelivery() {
    let (client, requests) = client("ci", webhook_routes());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = c8s_controller::webhook::Options::default();
    let server = tokio::spawn(serve_webhook(client, listener, options, async move {
        let _ = stopped.await;
    }));
    let sign = c8s_controller::webhook::verify::sign;

    // A repository no Pipeline names: 401 and no Secret read.
    let unknown = push_body("octo-org/unknown");
    assert_eq!(
        post_github(addr, &unknown, &sign(SECRET, unknown.as_bytes()), "d0").await,
        "HTTP/1.1 401 Unauthorized"
    );
    assert_eq!(secret_reads(&requests), 0, "{:#?}", seen(&requests));

    let body = push_body("octo-org/shop");
    let wrong = sign(b"not the secret", body.as_bytes());
    assert_eq!(
        post_github(addr, &body, &wrong, "d1").await,
        "HTTP/1.1 401 Unauthorized"
    );
    assert_eq!(secret_reads(&requests), 1);
    assert!(!seen(&requests).iter().any(|s| s.method == Method::POST));

    let signed = sign(SECRET, body.as_bytes());
    let delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    assert_eq!(
        post_github(addr, &body, &signed, delivery).await,
        "HTTP/1.1 201 Created"
    );
    // A redelivery with a fresh delivery id finds the run by its labels.
    assert_eq!(
        post_github(addr, &body, &signed, "a-fresh-delivery-id").await,
        "HTTP/1.1 200 OK"
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();

    let seen = seen(&requests);
    // Connections and pipelines come from watches, never a LIST per delivery.
    for path in [
        "/apis/c8s.dev/v1alpha1/repositoryconnections?",
        "/apis/c8s.dev/v1alpha1/pipelines?",
    ] {
        assert!(watches(&seen, path), "{seen:#?}");
        let lists = seen
            .iter()
            .filter(|s| s.uri.starts_with(path) && !s.uri.contains("watch=true"))
            .count();
        assert_eq!(lists, 1, "{seen:#?}");
    }
    let listed: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.method == Method::GET && s.uri.contains("/namespaces/ci/pipelineruns?"))
        .collect();
    assert_eq!(listed.len(), 2, "{seen:#?}");
    let selector = format!(
        "labelSelector=c8s.dev%2Fcommit%3D{COMMIT}%2Cc8s.dev%2Fpipeline%3Dshop%2Cc8s.dev%2Fprovider%3Dgithub"
    );
    assert!(listed.iter().all(|s| s.uri.contains(&selector)), "{listed:#?}");
    let created: Vec<&Seen> = seen.iter().filter(|s| s.method == Method::POST).collect();
    assert_eq!(created.len(), 1, "{seen:#?}");
    let run = &created[0].body;
    assert_eq!(run["kind"], "PipelineRun");
    assert_eq!(run["metadata"]["namespace"], "ci");
    assert!(
        run["metadata"]["name"].as_str().unwrap().starts_with("shop-"),
        "{run}"
    );
    assert_eq!(run["metadata"]["labels"]["c8s.dev/pipeline"], "shop");
    assert_eq!(run["metadata"]["labels"]["c8s.dev/commit"], COMMIT);
    assert_eq!(run["metadata"]["labels"]["c8s.dev/provider"], "github");
    assert_eq!(run["spec"]["pipelineRef"], "shop");
    assert_eq!(run["spec"]["branch"], "main");
    assert_eq!(run["spec"]["commit"], COMMIT);
    assert!(
        run["spec"]["triggeredBy"].as_str().unwrap().contains(delivery),
        "{run}"
    );
}

#[test]
fn an_instance_id_is_a_label_value() {
    assert_eq!(parse_instance_id("team-a"), Ok("team-a".to_owned()));
    assert!(parse_instance_id("").is_err());
    assert!(parse_instance_id("team a").is_err());
    assert!(parse_instance_id(&"a".repeat(64)).is_err());
}

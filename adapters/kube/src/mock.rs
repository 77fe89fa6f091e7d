//! Test support: a [`kube::Client`] on kube's mock service
//! (`tower_test::mock::pair`), answering each request from a route and
//! recording every request it saw. The one harness of the workspace's tests
//! for the exact requests made against the API server.
//!
//! - [`client`]: a route closure answers each request.
//! - [`ordered`]: scripted answers, one per request, in order.
//! - [`routed`]: scripted answers per route (e.g. `"watch pods"`), each
//!   route's in order.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use c8s_kube::mock::{Answer, ordered, seen, status};
//! use k8s_openapi::api::core::v1::Pod;
//!
//! let (client, requests) = ordered("ci", vec![Answer::Json(404, status(404, "NotFound"))]);
//! let pods = kube::Api::<Pod>::namespaced(client, "ci");
//! assert!(pods.get_opt("web").await.unwrap().is_none());
//! let seen = seen(&requests);
//! assert_eq!(seen.len(), 1);
//! assert_eq!(seen[0].uri, "/api/v1/namespaces/ci/pods/web");
//! # }
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One request the mock saw.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The HTTP method.
    pub method: Method,
    /// Path and query.
    pub uri: String,
    /// The `content-type` header (empty when there is none).
    pub content_type: String,
    /// The JSON body (`Null` when empty or not JSON).
    pub body: Value,
}

/// What the mock answers a request.
#[derive(Clone, Debug)]
pub enum Answer {
    /// This status and JSON body.
    Json(u16, Value),
    /// This status and raw body (a watch's event lines, a log).
    Raw(u16, Vec<u8>),
    /// Nothing, ever: a watch that stays open.
    Hold,
}

/// The requests a mock client made, shared with the task serving it.
#[derive(Clone, Debug)]
pub struct Requests {
    seen: Arc<Mutex<Vec<Seen>>>,
    closed: tokio::sync::watch::Receiver<bool>,
}

/// A client with default namespace `namespace` whose requests `route`
/// answers; every request is recorded (before it is answered) in the
/// returned [`Requests`]. Must be called within a Tokio runtime.
pub fn client(
    namespace: &str,
    mut route: impl FnMut(&Seen) -> Answer + Send + 'static,
) -> (kube::Client, Requests) {
    let (service, mut handle): (_, Handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let (closed_tx, closed) = tokio::sync::watch::channel(false);
    let requests = Requests {
        seen: Arc::default(),
        closed,
    };
    let recorded = requests.seen.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some((request, respond)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let seen = Seen {
                method: parts.method,
                uri: parts.uri.to_string(),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let answer = route(&seen);
            recorded.lock().unwrap_or_else(PoisonError::into_inner).push(seen);
            let (status, bytes) = match answer {
                Answer::Json(status, value) => (status, serde_json::to_vec(&value).unwrap_or_default()),
                Answer::Raw(status, bytes) => (status, bytes),
                Answer::Hold => {
                    held.push(respond);
                    continue;
                }
            };
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if let Ok(response) = Response::builder().status(status).body(Body::from(bytes)) {
                respond.send_response(response);
            }
        }
        drop(held);
        // Nobody may be waiting; that is fine.
        let _ = closed_tx.send(true);
    });
    (kube::Client::new(service, namespace), requests)
}

/// A client with default namespace `namespace` that answers its requests
/// with `answers`, one each, in order. A request once every answer is used
/// is answered 500 with reason `UnexpectedRequest` (and recorded): that
/// every answer was used and no request more was made is
/// `seen(&requests).len() == answers.len()`.
pub fn ordered(namespace: &str, answers: Vec<Answer>) -> (kube::Client, Requests) {
    let mut answers = VecDeque::from(answers);
    client(namespace, move |seen| {
        answers.pop_front().unwrap_or_else(|| unexpected(seen))
    })
}

/// The answers a [`routed`] client has not used yet, by route.
#[derive(Clone, Debug, Default)]
pub struct Unused(Arc<Mutex<BTreeMap<String, VecDeque<Answer>>>>);

impl Unused {
    /// The routes with answers left, each once, sorted.
    pub fn routes(&self) -> Vec<String> {
        let queues = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        queues
            .iter()
            .filter(|(_, queue)| !queue.is_empty())
            .map(|(route, _)| route.clone())
            .collect()
    }
}

/// A client with default namespace `namespace` that answers each request
/// from the queue of its route, `route_of(request)` (e.g.
/// `"watch pods"`), in arrival order. A request whose route has no answer
/// left is held (never answered, as a watch that stays open). The returned
/// [`Unused`] tells which answers were never asked for.
pub fn routed(
    namespace: &str,
    route_of: impl Fn(&Seen) -> String + Send + 'static,
    answers: Vec<(String, Answer)>,
) -> (kube::Client, Requests, Unused) {
    let unused = Unused::default();
    {
        let mut queues = unused.0.lock().unwrap_or_else(PoisonError::into_inner);
        for (route, answer) in answers {
            queues.entry(route).or_default().push_back(answer);
        }
    }
    let queues = unused.clone();
    let (client, requests) = client(namespace, move |seen| {
        let route = route_of(seen);
        let mut queues = queues.0.lock().unwrap_or_else(PoisonError::into_inner);
        queues
            .get_mut(&route)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Answer::Hold)
    });
    (client, requests, unused)
}

/// A copy of the requests seen so far, in arrival order.
pub fn seen(requests: &Requests) -> Vec<Seen> {
    requests
        .seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Every request the client made, once it and every clone of it are
/// dropped (requests still in flight in other tasks included).
pub async fn seen_when_closed(requests: &Requests) -> Vec<Seen> {
    let mut closed = requests.closed.clone();
    // An error means the serving task ended: closed too.
    let _ = closed.wait_for(|closed| *closed).await;
    seen(requests)
}

/// A Kubernetes `Status` failure with `code`, `reason` as its reason and
/// message.
pub fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": reason})
}

/// A list of `items` of `kind` (e.g. `"Pod"`, making a `PodList`) at
/// resourceVersion `version`.
pub fn list(api_version: &str, kind: &str, items: Vec<Value>, version: &str) -> Value {
    json!({"apiVersion": api_version, "kind": format!("{kind}List"), "metadata": {"resourceVersion": version}, "items": items})
}

/// A watch response body: one `{"type", "object"}` line per event.
pub fn watch_events(events: &[(&str, Value)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (type_, object) in events {
        out.extend(serde_json::to_vec(&json!({"type": type_, "object": object})).unwrap_or_default());
        out.push(b'\n');
    }
    out
}

/// The answer to a request no answer was scripted for.
fn unexpected(seen: &Seen) -> Answer {
    let mut body = status(500, "UnexpectedRequest");
    body["message"] = json!(format!("unexpected request: {} {}", seen.method, seen.uri));
    Answer::Json(500, body)
}

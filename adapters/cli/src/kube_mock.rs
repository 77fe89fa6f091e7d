//! Test support: kube's mock service (`tower_test::mock::pair`) answering
//! each request by route, recording every request it saw.

use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One request the mock saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    /// Path and query.
    pub uri: String,
    /// The JSON body (`Null` when empty or not JSON).
    pub body: Value,
}

/// What the mock answers.
pub enum Answer {
    /// This status and JSON body.
    Json(u16, Value),
    /// This status and raw body (a watch's event lines, a log).
    Raw(u16, Vec<u8>),
    /// Nothing, ever: a watch that stays open.
    Hold,
}

/// The requests seen so far, shared with the serving task.
pub type Requests = Arc<Mutex<Vec<Seen>>>;

/// A client in default namespace `ci` whose requests `route` answers.
pub fn client(mut route: impl FnMut(&Seen) -> Answer + Send + 'static) -> (kube::Client, Requests) {
    let (service, mut handle): (_, Handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let requests: Requests = Arc::default();
    let seen_by_task = requests.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some((request, respond)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let seen = Seen {
                method: parts.method,
                uri: parts.uri.to_string(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let answer = route(&seen);
            if let Ok(mut requests) = seen_by_task.lock() {
                requests.push(seen);
            }
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
    });
    (kube::Client::new(service, "ci"), requests)
}

/// A copy of the requests seen so far.
pub fn seen(requests: &Requests) -> Vec<Seen> {
    requests.lock().map(|r| r.clone()).unwrap_or_default()
}

/// A Kubernetes `Status` failure with `code`.
pub fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": reason})
}

/// A list of `items` of `kind` at resourceVersion `version`.
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

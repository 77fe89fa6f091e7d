//! A plain-HTTP proxy on loopback in front of the API server that loses the
//! answer to chosen requests: the request reaches the API server and takes
//! effect, but the client sees its connection close without a response (a
//! create whose answer was lost, as after a network cut or an API server
//! restart). It also keeps the method and path (with query) of every
//! request it forwarded, so a test can count what a client asked for.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use kube::Client;

/// Which requests lose their answer.
#[derive(Clone, Debug)]
pub struct Lose {
    /// HTTP method, e.g. `POST`.
    pub method: &'static str,
    /// The path ends with this, e.g. `/pods`.
    pub path_suffix: &'static str,
    /// How many matching requests lose their answer (the first ones).
    pub times: usize,
}

/// A running proxy; dropped, it stops.
pub struct LossyProxy {
    /// Where it listens.
    pub address: SocketAddr,
    /// A kubeconfig that talks to the API server through it.
    pub kubeconfig: PathBuf,
    lost: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LossyProxy {
    /// How many answers it has lost so far.
    pub fn lost(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }

    /// Every request forwarded so far, as `METHOD path?query`, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a proxy forwarding through `client` (the admin's credentials) and
/// writes a kubeconfig for it to `kubeconfig`.
pub async fn start(client: Client, lose: Lose, kubeconfig: PathBuf) -> LossyProxy {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = listener.local_addr().expect("local address");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: proxy\n  cluster: {{ server: \"http://{address}\" }}\n\
             users:\n- name: proxy\n  user: {{}}\ncontexts:\n- name: proxy\n  context: {{ cluster: proxy, user: proxy, namespace: default }}\n\
             current-context: proxy\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", kubeconfig.display()));
    let lost = Arc::new(AtomicUsize::new(0));
    let counter = lost.clone();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let client = client.clone();
            let lose = lose.clone();
            let counter = counter.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let client = client.clone();
                    let lose = lose.clone();
                    let counter = counter.clone();
                    if let Ok(mut log) = log.lock() {
                        log.push(format!("{} {}", request.method(), request.uri()));
                    }
                    forward(client, request, lose, counter)
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    LossyProxy {
        address,
        kubeconfig,
        lost,
        requests,
        task,
    }
}

/// Why a connection was closed without an answer.
type Dropped = Box<dyn std::error::Error + Send + Sync>;

async fn forward(
    client: Client,
    request: Request<Incoming>,
    lose: Lose,
    lost: Arc<AtomicUsize>,
) -> Result<Response<kube::client::Body>, Dropped> {
    let (mut parts, body) = request.into_parts();
    let bytes = body.collect().await?.to_bytes();
    let matches = parts.method.as_str() == lose.method && parts.uri.path().ends_with(lose.path_suffix);
    parts.headers.remove(http::header::HOST);
    let response = client
        .send(Request::from_parts(
            parts,
            kube::client::Body::from(bytes.to_vec()),
        ))
        .await?;
    if matches
        && response.status().is_success()
        && lost
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < lose.times).then_some(n + 1)
            })
            .is_ok()
    {
        // The API server did it; the client never hears: the connection closes.
        return Err(Dropped::from(String::from("answer lost on purpose")));
    }
    Ok(response)
}

//! The kubelet's HTTPS endpoint, as far as the API server uses it for logs.
//!
//! `kubectl logs` (GET `/api/v1/namespaces/NS/pods/P/log`) is proxied by the
//! API server to `https://<node address>:<kubeletEndpoint.Port>/containerLogs/NS/P/C?...`
//! with the query options (follow, timestamps, tailLines, sinceSeconds,
//! sinceTime, limitBytes, previous, stream). A non-2xx answer is turned into
//! an API error whose message is our body (400 → BadRequest, 404 → NotFound):
//! the kubelet writes `err.Error()` as plain text, and so does this.
//! The API server does not verify the kubelet's serving certificate unless
//! `--kubelet-certificate-authority` is set; its client certificate is not
//! asked for here.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::logstore::{ContainerLog, LogStatus, LogStore};

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Builds the TLS acceptor from PEM files (ring provider, HTTP/1.1 only).
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, String> {
    let cert_pem = std::fs::read(cert).map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    let key_pem = std::fs::read(key).map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("--tls-cert {}: no certificate in it", cert.display()));
    }
    let key =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves connections until the task is dropped.
pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor, store: Arc<LogStore>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                log!("kubelet server: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    log!("kubelet server: TLS handshake with {peer}: {e}");
                    return;
                }
                Err(_) => {
                    log!("kubelet server: TLS handshake with {peer} timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let store = Arc::clone(&store);
                async move { Ok::<_, Infallible>(handle(&store, &req)) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                log!("kubelet server: connection from {peer}: {e}");
            }
        });
    }
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The log options of the query string, as the kubelet reads them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LogOptions {
    /// Keep streaming until the container terminates.
    pub follow: bool,
    /// Prefix each line with its RFC3339Nano time.
    pub timestamps: bool,
    /// Only the last N lines (of the first batch).
    pub tail_lines: Option<usize>,
    /// Only lines written at or after this time.
    pub since: Option<Timestamp>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
    /// The previous container's log (there never is one here).
    pub previous: bool,
    /// Stderr only: nothing (the script's lines are stdout).
    pub stderr_only: bool,
}

fn parse_bool(value: &str) -> bool {
    // Go's strconv.ParseBool truths.
    matches!(value, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

impl LogOptions {
    /// Reads the query string; a malformed value is an error, as in the kubelet.
    pub fn parse(query: &str, now: Timestamp) -> Result<Self, String> {
        let mut options = Self::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "follow" => options.follow = parse_bool(&value),
                "timestamps" => options.timestamps = parse_bool(&value),
                "previous" => options.previous = parse_bool(&value),
                "tailLines" => {
                    let n: i64 = value
                        .parse()
                        .map_err(|_| format!("invalid tailLines {value:?}"))?;
                    options.tail_lines = Some(usize::try_from(n.max(0)).unwrap_or(usize::MAX));
                }
                "limitBytes" => {
                    let n: i64 = value
                        .parse()
                        .map_err(|_| format!("invalid limitBytes {value:?}"))?;
                    options.limit_bytes = Some(u64::try_from(n.max(0)).unwrap_or(u64::MAX));
                }
                "sinceSeconds" => {
                    let n: i64 = value
                        .parse()
                        .map_err(|_| format!("invalid sinceSeconds {value:?}"))?;
                    let since = now
                        .checked_sub(SignedDuration::from_secs(n))
                        .map_err(|_| format!("invalid sinceSeconds {value:?}"))?;
                    options.since = Some(since);
                }
                "sinceTime" => {
                    let since: Timestamp = value
                        .parse()
                        .map_err(|_| format!("invalid sinceTime {value:?}"))?;
                    options.since = Some(since);
                }
                "stream" => options.stderr_only = value == "Stderr",
                _ => {}
            }
        }
        Ok(options)
    }

    /// Formats lines as the kubelet writes them.
    pub fn format(&self, lines: &[(Timestamp, String)]) -> String {
        let mut out = String::new();
        for (at, line) in lines {
            if self.since.is_some_and(|since| *at < since) {
                continue;
            }
            if self.timestamps {
                // RFC3339Nano: fractional seconds without trailing zeros.
                out.push_str(&at.to_string());
                out.push(' ');
            }
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

fn handle(store: &LogStore, req: &Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n".to_owned());
    }
    let path = req.uri().path();
    if path == "/healthz" {
        return text(StatusCode::OK, "ok".to_owned());
    }
    let Some(rest) = path.strip_prefix("/containerLogs/") else {
        return text(StatusCode::NOT_FOUND, "404 page not found\n".to_owned());
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let [namespace, pod, container] = parts.as_slice() else {
        return text(StatusCode::NOT_FOUND, "404 page not found\n".to_owned());
    };
    if namespace.is_empty() || pod.is_empty() || container.is_empty() {
        return text(StatusCode::NOT_FOUND, "404 page not found\n".to_owned());
    }
    let options = match LogOptions::parse(req.uri().query().unwrap_or(""), Timestamp::now()) {
        Ok(options) => options,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    // The kubelet's messages (pkg/kubelet/server/server.go, kubelet_pods.go validateContainerLogStatus).
    let Some(logs) = store.get(namespace, pod) else {
        return text(StatusCode::NOT_FOUND, format!("pod \"{pod}\" does not exist\n"));
    };
    let Some(log) = logs.containers.get(*container).cloned() else {
        return text(
            StatusCode::NOT_FOUND,
            format!("container \"{container}\" not found in pod \"{pod}\"\n"),
        );
    };
    if options.previous {
        return text(
            StatusCode::BAD_REQUEST,
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found"),
        );
    }
    let (status, _) = log.since(usize::MAX);
    if let LogStatus::Waiting(reason) = status {
        let why = match reason.as_str() {
            "ErrImagePull" => "image can't be pulled".to_owned(),
            "ImagePullBackOff" => "trying and failing to pull image".to_owned(),
            _ => reason,
        };
        return text(
            StatusCode::BAD_REQUEST,
            format!("container \"{container}\" in pod \"{pod}\" is waiting to start: {why}"),
        );
    }
    let mut response = Response::new(stream_log(log, options));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    response
}

struct Cursor {
    log: Arc<ContainerLog>,
    changes: tokio::sync::watch::Receiver<u64>,
    options: LogOptions,
    next: usize,
    first: bool,
    remaining: Option<u64>,
}

/// The log as a body: what is there now, then (follow) each new line until
/// the container terminates.
fn stream_log(log: Arc<ContainerLog>, options: LogOptions) -> Body {
    let cursor = Cursor {
        changes: log.subscribe(),
        log,
        remaining: options.limit_bytes,
        options,
        next: 0,
        first: true,
    };
    let stream = futures::stream::unfold(cursor, |mut cursor| async move {
        loop {
            if cursor.remaining == Some(0) || cursor.options.stderr_only {
                return None;
            }
            let (status, mut lines) = cursor.log.since(cursor.next);
            cursor.next += lines.len();
            if cursor.first {
                cursor.first = false;
                if let Some(tail) = cursor.options.tail_lines {
                    lines = lines.split_off(lines.len().saturating_sub(tail));
                }
            }
            let mut chunk = cursor.options.format(&lines).into_bytes();
            if let Some(remaining) = cursor.remaining.as_mut() {
                let keep = usize::try_from(*remaining).unwrap_or(usize::MAX).min(chunk.len());
                chunk.truncate(keep);
                *remaining -= keep as u64;
            }
            if !chunk.is_empty() {
                return Some((Ok::<_, Infallible>(Frame::data(Bytes::from(chunk))), cursor));
            }
            if !cursor.options.follow || status == LogStatus::Terminated {
                return None;
            }
            if cursor.changes.changed().await.is_err() {
                return None;
            }
        }
    });
    StreamBody::new(stream).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kubelet_query() {
        let now: Timestamp = "2025-01-01T00:01:00Z".parse().expect("time");
        let options = LogOptions::parse(
            "follow=true&timestamps=1&tailLines=2&limitBytes=100&sinceSeconds=30&container=x",
            now,
        )
        .expect("parses");
        assert!(options.follow && options.timestamps && !options.previous);
        assert_eq!(options.tail_lines, Some(2));
        assert_eq!(options.limit_bytes, Some(100));
        assert_eq!(options.since, Some("2025-01-01T00:00:30Z".parse().expect("time")));
        assert!(LogOptions::parse("tailLines=x", now).is_err());
        let lines = vec![
            ("2025-01-01T00:00:10Z".parse().expect("time"), "old".to_owned()),
            ("2025-01-01T00:00:40.5Z".parse().expect("time"), "new".to_owned()),
        ];
        assert_eq!(options.format(&lines), "2025-01-01T00:00:40.5Z new\n");
        assert_eq!(LogOptions::default().format(&lines), "old\nnew\n");
    }
}

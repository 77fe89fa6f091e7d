//! Without a reachable cluster c8s fails fast with a clear error, not a hang.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use c8s_kube::{Error, KubeCluster};

fn cluster_at(url: &str) -> KubeCluster {
    let config = kube::Config::new(url.parse().unwrap());
    KubeCluster::new(kube::Client::try_from(config).unwrap(), "default")
}

#[tokio::test]
async fn a_refused_connection_fails_fast() {
    // Bind then drop a listener: nothing listens on that loopback port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cluster = cluster_at(&format!("http://127.0.0.1:{port}"));
    let started = Instant::now();
    let error = cluster
        .ensure_reachable(Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::ClusterUnreachable { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("no Kubernetes cluster reachable within 5s"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_silent_api_server_times_out() {
    // Accepts connections, never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accept = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let cluster = cluster_at(&format!("http://127.0.0.1:{port}"));
    let error = cluster
        .ensure_reachable(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("the API server did not answer"),
        "{error}"
    );
    accept.abort();
}

//! `c8s-node-sim`: simulated Kubernetes nodes for tests against a real
//! control plane (kube-apiserver, etcd, kube-controller-manager,
//! kube-scheduler; no kubelet, no container runtime, no images).
//!
//! It registers N Node objects, keeps them alive (leases, status
//! heartbeats), runs the pods bound to them as a kubelet would, driving their
//! status by a script (see `README.md` and [`script`]), and serves their logs
//! on the kubelet's HTTPS endpoint so that `GET .../pods/P/log` through the
//! API server works.

/// Logs a line to stderr with the time.
macro_rules! log {
    ($($arg:tt)*) => {
        eprintln!("{} c8s-node-sim: {}", k8s_openapi::jiff::Timestamp::now(), format_args!($($arg)*))
    };
}

mod logstore;
mod nodes;
mod pods;
mod script;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Simulated Kubernetes nodes: play the kubelet for the pods bound to them.
#[derive(Debug, Parser)]
#[command(name = "c8s-node-sim", version)]
struct Args {
    /// The kubeconfig to reach the API server with.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Where the kubelet endpoint (HTTPS: /containerLogs, /healthz) listens,
    /// e.g. 127.0.0.1:10250; its port is the nodes' kubeletEndpoint.
    #[arg(long)]
    listen: SocketAddr,
    /// The serving certificate (PEM) of the kubelet endpoint.
    #[arg(long)]
    tls_cert: PathBuf,
    /// The key (PEM) of the serving certificate.
    #[arg(long)]
    tls_key: PathBuf,
    /// How many nodes.
    #[arg(long, default_value_t = 2)]
    nodes: usize,
    /// Node names are this prefix and 0..nodes-1.
    #[arg(long, default_value = "sim-node-")]
    node_prefix: String,
}

async fn client(path: &std::path::Path) -> Result<Client, String> {
    let kubeconfig =
        Kubeconfig::read_from(path).map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?;
    Client::try_from(config).map_err(|e| format!("kube client: {e}"))
}

async fn shutdown_signal() -> Result<&'static str, String> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("SIGTERM handler: {e}"))?;
    tokio::select! {
        _ = term.recv() => Ok("SIGTERM"),
        r = tokio::signal::ctrl_c() => r.map(|()| "SIGINT").map_err(|e| format!("SIGINT handler: {e}")),
    }
}

async fn run(args: Args) -> Result<(), String> {
    let acceptor = server::tls_acceptor(&args.tls_cert, &args.tls_key)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("--listen {}: {e}", args.listen))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("--listen: {e}"))?
        .port();
    let client = client(&args.kubeconfig).await?;
    let nodes = nodes::Nodes::new(client.clone(), &args.node_prefix, args.nodes, port);
    // The API server may still be coming up: try for a while.
    let mut tries = 0;
    loop {
        match nodes.register().await {
            Ok(()) => break,
            Err(e) if tries < 30 => {
                tries += 1;
                log!("registering the nodes: {e}; trying again");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(format!("registering the nodes: {e}")),
        }
    }
    let store = Arc::new(logstore::LogStore::default());
    log!(
        "kubelet endpoint https://{} for nodes {}",
        args.listen,
        nodes.names.join(", ")
    );
    let serving = tokio::spawn(server::serve(listener, acceptor, Arc::clone(&store)));
    let beating = tokio::spawn(nodes.clone().heartbeats());
    let running = tokio::spawn(pods::run(client, nodes.names.clone(), store));
    let signal = shutdown_signal().await;
    serving.abort();
    beating.abort();
    running.abort();
    let signal = signal?;
    log!("{signal}: stopping");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log!("{e}");
            ExitCode::FAILURE
        }
    }
}

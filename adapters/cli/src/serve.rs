//! The long-running in-cluster commands: `c8s controller` and `c8s webhook`.

use std::io::Write;
use std::process::ExitCode;

use c8s_controller::reconcile::Settings;
use clap::Args;
use kube::Client;

use crate::incluster::{block_on, fail};

#[cfg(test)]
mod tests;

/// Logs the long-running commands' `tracing` events (reconcile errors,
/// lease changes, webhook deliveries) to stderr, one line each, at the level
/// `RUST_LOG` sets (default `info`): an operator reads them with
/// `kubectl logs`.
pub fn log_to_stderr() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// `c8s controller` flags.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Runs of one namespace that may run at once; later ones wait (Pending, condition Queued).
    #[arg(long, default_value_t = 10)]
    pub max_running_per_namespace: usize,
    /// Steps at once when a run does not say.
    #[arg(long, default_value_t = 8)]
    pub parallelism: usize,
    /// Namespace of the leader Lease (default: $POD_NAMESPACE, else `default`).
    #[arg(long)]
    pub lease_namespace: Option<String>,
    /// This replica's name in the Lease (default: $HOSTNAME, the pod name).
    #[arg(long)]
    pub identity: Option<String>,
    /// Apply the CRDs (server-side) at start-up; needs RBAC on
    /// customresourcedefinitions, which the chart does not grant.
    #[arg(long)]
    pub install_crds: bool,
}

/// `c8s controller`: runs the controller until SIGTERM or Ctrl-C.
pub fn controller(args: &ControllerArgs) -> ExitCode {
    let settings = Settings {
        max_running_per_namespace: args.max_running_per_namespace.max(1),
        default_parallelism: args.parallelism.max(1),
        ..Settings::default()
    };
    let namespace = args
        .lease_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "default".into());
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "c8s-controller".into());
    block_on(async move {
        let client = match Client::try_default().await {
            Ok(client) => client,
            Err(e) => return fail(&format!("no cluster: {e}")),
        };
        let _ = writeln!(
            std::io::stderr(),
            "c8s controller {identity}: waiting for the lease in {namespace}"
        );
        let stop = shutdown();
        let lease = Lease {
            namespace: &namespace,
            identity: &identity,
        };
        match run_controller(client, settings, lease, args.install_crds, stop).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e.to_string()),
        }
    })
}

/// Where the controller's leader Lease lives and who this replica is.
#[derive(Clone, Copy, Debug)]
pub struct Lease<'a> {
    /// The Lease's namespace.
    pub namespace: &'a str,
    /// This replica's identity in it.
    pub identity: &'a str,
}

/// The core of `c8s controller`: takes the Lease, then runs the Controller
/// until `stop` completes.
pub async fn run_controller(
    client: Client,
    settings: Settings,
    lease: Lease<'_>,
    install_crds: bool,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), c8s_controller::Error> {
    c8s_controller::controller::run(
        client,
        settings,
        lease.namespace,
        lease.identity,
        install_crds,
        stop,
    )
    .await
}

/// Completes on Ctrl-C or SIGTERM (what the kubelet sends). The handlers
/// are installed when this is called, not when first polled, so a signal
/// that arrives before the future is awaited still counts. Needs a runtime.
pub fn shutdown() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let interrupt = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = interrupt => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = interrupt.await;
    }
}

/// `c8s webhook` flags.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: String,
    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long, default_value_t = c8s_controller::webhook::DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,
}

/// `c8s webhook`: serves the Git hosts' push webhooks until SIGTERM or Ctrl-C.
pub fn webhook(args: &WebhookArgs) -> ExitCode {
    block_on(async move {
        let client = match Client::try_default().await {
            Ok(client) => client,
            Err(e) => return fail(&format!("no cluster: {e}")),
        };
        let listener = match tokio::net::TcpListener::bind(&args.listen).await {
            Ok(listener) => listener,
            Err(e) => return fail(&format!("cannot listen on {}: {e}", args.listen)),
        };
        let _ = writeln!(std::io::stderr(), "c8s webhook: listening on {}", args.listen);
        match serve_webhook(client, listener, args.body_limit, shutdown()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e.to_string()),
        }
    })
}

/// The core of `c8s webhook`: serves on `listener`, reading connections and
/// pipelines and creating runs through `client`, until `stop` completes.
pub async fn serve_webhook(
    client: Client,
    listener: tokio::net::TcpListener,
    body_limit: usize,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let triggers = std::sync::Arc::new(c8s_controller::webhook::KubeTriggers::new(client));
    c8s_controller::webhook::serve(listener, triggers, body_limit, stop).await
}

//! The long-running in-cluster commands: `c8s controller` and `c8s webhook`.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use c8s_controller::metrics::Metrics;
use c8s_controller::reconcile::Settings;
use c8s_controller::throttle::ThrottleLayer;
use clap::Args;
use kube::Client;

use crate::incluster::{block_on, fail};

#[cfg(test)]
mod tests;

/// How `c8s controller` and `c8s webhook` write their log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields), for a
    /// log pipeline.
    Json,
}

/// Logs the long-running commands' `tracing` events (reconcile errors,
/// lease changes, webhook deliveries) to stderr, one line each in `format`,
/// at the level `RUST_LOG` sets (default `info`): an operator reads them
/// with `kubectl logs`.
pub fn log_to_stderr(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// `c8s controller` flags.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Log lines as text or JSON.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Runs of one namespace that may run at once; later ones wait (Pending, condition Queued).
    #[arg(long, default_value_t = 10)]
    pub max_running_per_namespace: usize,
    /// Steps at once when a run does not say.
    #[arg(long, default_value_t = 8)]
    pub parallelism: usize,
    /// Namespace of the leader Lease (default: $POD_NAMESPACE, else `--namespace`, else `default`).
    #[arg(long)]
    pub lease_namespace: Option<String>,
    /// This replica's name in the Lease (default: $HOSTNAME, the pod name).
    #[arg(long)]
    pub identity: Option<String>,
    /// Drive only the runs labelled `c8s.dev/controller-instance=ID`, as Argo
    /// Workflows' `--instanceid`: several controllers share a cluster, each
    /// with its own Lease (`c8s-controller-ID`). Default: every run.
    #[arg(long, value_name = "ID", value_parser = parse_instance_id)]
    pub instance_id: Option<String>,
    /// Drive only the runs of this namespace (default: every namespace);
    /// a Role in it is then all the RBAC the controller needs.
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Apply the CRDs (server-side) at start-up; needs RBAC on
    /// customresourcedefinitions, which the chart does not grant.
    #[arg(long)]
    pub install_crds: bool,
    /// Address of the Prometheus endpoint `GET /metrics` (port 0: any free port, logged).
    #[arg(long, default_value = c8s_controller::metrics::DEFAULT_ADDRESS)]
    pub metrics_address: String,
    /// Where the logs of steps that ended are archived.
    #[command(flatten)]
    pub archive: crate::archive::ArchiveArgs,
    /// Also serve the read-only dashboard on this address (every replica;
    /// off by default).
    #[arg(long, value_name = "ADDR")]
    pub dashboard: Option<String>,
    /// Client-side limit on API requests per second (a watch counts when it
    /// starts), as client-go's QPS; 0: no limit.
    #[arg(long, default_value_t = c8s_controller::throttle::DEFAULT_QPS)]
    pub kube_qps: u32,
    /// Requests that may go at once above `--kube-qps`, as client-go's Burst.
    #[arg(long, default_value_t = c8s_controller::throttle::DEFAULT_BURST)]
    pub kube_burst: u32,
    /// Reconciles at once; later ones wait for a slot, which the namespaces
    /// with waiting runs get in turn (0: no bound).
    #[arg(long, default_value_t = c8s_controller::reconcile::DEFAULT_CONCURRENCY)]
    pub concurrency: u16,
    /// Delete a run this long after it finished (`90s`, `30m`, `24h`; its
    /// pods go with it), as `ttlSecondsAfterFinished` does for Jobs;
    /// default: runs are kept until deleted.
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
    pub finished_run_ttl: Option<std::time::Duration>,
    /// How long a scheduled step's `main` may take to start (image pulls,
    /// init containers, native sidecars becoming ready) before the attempt
    /// fails naming each waiting container, as `c8s run --start-timeout`.
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl, default_value = "10m")]
    pub start_timeout: std::time::Duration,
    /// How long a step's pod may stay unschedulable before the attempt
    /// fails (a cause that will not resolve, such as a missing claim,
    /// fails it at once).
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl, default_value = "10m")]
    pub capacity_wait: std::time::Duration,
    /// Keep a `c8s watch` running for every ConcoursePipeline, in a
    /// Deployment of its own that runs this image (the c8s image: the
    /// controller's own); default: ConcoursePipelines are left alone.
    #[arg(long, value_name = "IMAGE")]
    pub concourse_watcher_image: Option<String>,
}

/// An `--instance-id` value: a label value, not empty.
fn parse_instance_id(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    c8s_sidecar_core::names::label_value(text)?;
    Ok(text.to_owned())
}

/// A `--finished-run-ttl` value: a Go-style duration.
fn parse_ttl(text: &str) -> Result<std::time::Duration, String> {
    c8s_pipeline_model::parse_duration(text).map(std::time::Duration::from_secs)
}

/// `c8s dashboard` flags.
#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Where to listen (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub address: String,
    /// The namespace whose runs are shown (default: the kube context's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Show the runs of every namespace.
    #[arg(long, short = 'A', conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// The log archive to read the logs of steps whose pods are gone from.
    #[command(flatten)]
    pub archive: crate::archive::ArchiveArgs,
}

/// Binds `address` and serves `dashboard` there in the background; the
/// address it listens on.
async fn spawn_dashboard(
    address: &str,
    dashboard: c8s_controller::dashboard::Dashboard,
) -> Result<(String, tokio::task::JoinHandle<()>), String> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_or_else(|_| address.to_owned(), |a| a.to_string());
    let served = c8s_controller::dashboard::serve(listener, Arc::new(dashboard), shutdown());
    let task = tokio::spawn(async move {
        if let Err(e) = served.await {
            tracing::warn!("{e}");
        }
    });
    Ok((bound, task))
}

/// `c8s dashboard`: serves the read-only dashboard with the kube context's
/// credentials until Ctrl-C.
pub fn dashboard(args: &DashboardArgs) -> ExitCode {
    let archive = match args.archive.archive() {
        Ok(archive) => archive,
        Err(e) => return fail(&e),
    };
    block_on(async move {
        let client = match Client::try_default().await {
            Ok(client) => client,
            Err(e) => return fail(&format!("no cluster: {e}")),
        };
        let namespace = match (&args.namespace, args.all_namespaces) {
            (_, true) => None,
            (Some(ns), false) => Some(ns.clone()),
            (None, false) => Some(client.default_namespace().to_owned()),
        };
        let shown = namespace.clone().unwrap_or_else(|| "every namespace".into());
        let dashboard = c8s_controller::dashboard::Dashboard::new(client, namespace, archive);
        match spawn_dashboard(&args.address, dashboard).await {
            Ok((address, task)) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "c8s: dashboard on http://{address}/ (runs of {shown}); Ctrl-C to stop"
                );
                let _ = task.await;
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        }
    })
}

/// `c8s controller`: runs the controller until SIGTERM or Ctrl-C.
pub fn controller(args: &ControllerArgs) -> ExitCode {
    let archive = match args.archive.archive() {
        Ok(archive) => archive.map(c8s_controller::archive::LogArchive),
        Err(e) => return fail(&e),
    };
    let settings = Settings {
        max_running_per_namespace: args.max_running_per_namespace.max(1),
        default_parallelism: args.parallelism.max(1),
        archive,
        namespace: args.namespace.clone(),
        concurrency: args.concurrency,
        finished_run_ttl: args.finished_run_ttl,
        start_timeout: args.start_timeout,
        capacity_wait: args.capacity_wait,
        instance: args.instance_id.clone(),
        concourse: args.concourse_watcher_image.clone().map(|image| {
            c8s_controller::concourse::WatcherSettings {
                image,
                default_parallelism: 4,
            }
        }),
        ..Settings::default()
    };
    let namespace = args
        .lease_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .or_else(|| args.namespace.clone())
        .unwrap_or_else(|| "default".into());
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "c8s-controller".into());
    block_on(async move {
        let metrics = Arc::new(Metrics::new());
        let throttle = ThrottleLayer::new(args.kube_qps, args.kube_burst);
        let client = match counted_client(&metrics, &throttle).await {
            Ok(client) => client,
            Err(e) => return fail(&format!("no cluster: {e}")),
        };
        // The Lease's own client, never rate-limited: a renewal stuck behind
        // a burst of throttled requests would lose the Lease.
        let lease_client = match counted_client(&metrics, &ThrottleLayer::new(0, 0)).await {
            Ok(client) => client,
            Err(e) => return fail(&format!("no cluster: {e}")),
        };
        let listener = match tokio::net::TcpListener::bind(&args.metrics_address).await {
            Ok(listener) => listener,
            Err(e) => return fail(&format!("cannot listen on {}: {e}", args.metrics_address)),
        };
        let address = listener
            .local_addr()
            .map_or_else(|_| args.metrics_address.clone(), |a| a.to_string());
        tracing::info!(
            identity = %identity,
            "metrics on http://{address}/metrics; waiting for the lease in {namespace}"
        );
        let stop = shutdown();
        // Served by every replica, the waiting ones too, until the process ends.
        let server = tokio::spawn(c8s_controller::metrics::serve(
            listener,
            metrics.clone(),
            std::future::pending(),
        ));
        let shown = match &args.dashboard {
            Some(address) => {
                let dashboard = c8s_controller::dashboard::Dashboard::new(
                    client.clone(),
                    settings.namespace.clone(),
                    settings.archive.as_ref().map(|a| a.0.clone()),
                );
                match spawn_dashboard(address, dashboard).await {
                    Ok((bound, task)) => {
                        tracing::info!("dashboard on http://{bound}/");
                        Some(task)
                    }
                    Err(e) => return fail(&e),
                }
            }
            None => None,
        };
        let lease = Lease {
            namespace: &namespace,
            identity: &identity,
        };
        let clients = (client, lease_client);
        let result = run_controller(clients, settings, lease, args.install_crds, metrics, stop).await;
        server.abort();
        if let Some(task) = shown {
            task.abort();
        }
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e.to_string()),
        }
    })
}

/// The client of the kube config (in a pod: its ServiceAccount), counting
/// every request in `metrics` (`c8s_kube_api_requests_total`), each one
/// sent when `throttle` lets it.
async fn counted_client(metrics: &Metrics, throttle: &ThrottleLayer) -> Result<Client, kube::Error> {
    let config = kube::Config::infer().await.map_err(kube::Error::InferConfig)?;
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(throttle)
        .with_layer(&metrics.api_layer())
        .build())
}

/// Where the controller's leader Lease lives and who this replica is.
#[derive(Clone, Copy, Debug)]
pub struct Lease<'a> {
    /// The Lease's namespace.
    pub namespace: &'a str,
    /// This replica's identity in it.
    pub identity: &'a str,
}

/// The core of `c8s controller`: takes the Lease with the second client of
/// `clients`, then runs the Controller with the first until `stop`
/// completes, recording into `metrics`.
pub async fn run_controller(
    (client, lease_client): (Client, Client),
    settings: Settings,
    lease: Lease<'_>,
    install_crds: bool,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), c8s_controller::Error> {
    c8s_controller::controller::run_with_lease_client(
        client,
        lease_client,
        settings,
        lease.namespace,
        lease.identity,
        install_crds,
        metrics,
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
    /// Log lines as text or JSON.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: String,
    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long, default_value_t = c8s_controller::webhook::DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,
    /// A redelivery of a push (any delivery id) within this long of the run
    /// it started starts no other (`90s`, `1h`; at least 1s).
    #[arg(long, default_value = "1h", value_parser = crate::render::parse_seconds)]
    pub replay_window: u64,
    /// Unauthenticated deliveries per client address per minute before 429
    /// (0: no limit).
    #[arg(long, default_value_t = c8s_controller::webhook::DEFAULT_FAILURES_PER_MINUTE)]
    pub failures_per_minute: u32,
    /// Take the client address from this header's last entry (set by the
    /// proxy in front of the webhook, e.g. `X-Forwarded-For`) instead of the
    /// TCP peer's.
    #[arg(long, value_parser = parse_header_name)]
    pub client_ip_header: Option<c8s_controller::webhook::HeaderName>,
    /// Where to serve the validating admission webhook (`POST /validate`,
    /// HTTPS) for Pipelines and PipelineRuns; served only when
    /// `--tls-cert-file` and `--tls-key-file` are given, and an empty value
    /// turns it off.
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub admission_address: String,
    /// The admission listener's serving certificate chain (PEM).
    #[arg(long, requires = "tls_key_file")]
    pub tls_cert_file: Option<std::path::PathBuf>,
    /// The private key (PEM) of `--tls-cert-file`.
    #[arg(long, requires = "tls_cert_file")]
    pub tls_key_file: Option<std::path::PathBuf>,
}

/// A header name, for clap.
fn parse_header_name(text: &str) -> Result<c8s_controller::webhook::HeaderName, String> {
    c8s_controller::webhook::HeaderName::from_bytes(text.as_bytes()).map_err(|e| format!("{text:?}: {e}"))
}

impl WebhookArgs {
    /// The server options these flags say.
    pub fn options(&self) -> c8s_controller::webhook::Options {
        c8s_controller::webhook::Options {
            body_limit: self.body_limit,
            replay_window: std::time::Duration::from_secs(self.replay_window.max(1)),
            failures_per_minute: self.failures_per_minute,
            client_ip_header: self.client_ip_header.clone(),
        }
    }
}

/// `c8s webhook`: serves the Git hosts' push webhooks (and, with a TLS
/// certificate, the admission webhook) until SIGTERM or Ctrl-C.
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
        tracing::info!("c8s webhook: listening on {}", args.listen);
        if let Err(e) = start_admission(args, &client).await {
            return fail(&e);
        }
        match serve_webhook(client, listener, args.options(), shutdown()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e.to_string()),
        }
    })
}

/// Starts the admission listener of `c8s webhook` in the background when
/// `--tls-cert-file` and `--tls-key-file` are given and
/// `--admission-address` is not empty; it ends at SIGTERM or Ctrl-C.
async fn start_admission(args: &WebhookArgs, client: &Client) -> Result<(), String> {
    let (Some(cert), Some(key)) = (&args.tls_cert_file, &args.tls_key_file) else {
        return Ok(());
    };
    if args.admission_address.is_empty() {
        return Ok(());
    }
    let acceptor = c8s_controller::validate::tls_acceptor(cert, key).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(&args.admission_address)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.admission_address))?;
    tracing::info!(
        "c8s webhook: admission on https://{}{}",
        args.admission_address,
        c8s_controller::validate::PATH
    );
    let router = c8s_controller::validate::router(Some(client.clone()));
    tokio::spawn(c8s_controller::validate::serve(
        listener,
        acceptor,
        router,
        shutdown(),
    ));
    Ok(())
}

/// The core of `c8s webhook`: serves on `listener`, watching connections and
/// pipelines, reading webhook Secrets and creating runs through `client`,
/// until `stop` completes.
pub async fn serve_webhook(
    client: Client,
    listener: tokio::net::TcpListener,
    options: c8s_controller::webhook::Options,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let triggers = std::sync::Arc::new(c8s_controller::webhook::KubeTriggers::start(client));
    c8s_controller::webhook::serve(listener, triggers, options, stop).await
}

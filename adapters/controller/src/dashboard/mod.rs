//! A read-only web dashboard: the runs, each run's DAG and steps kept
//! current by server-sent events from the run's watch, and each step's log
//! — streamed while it runs, read from its pod once it ended, from the log
//! archive once the pod is gone — masked. Server-rendered HTML ([`html`],
//! [`svg`]) and a few lines of script; no build step.
//!
//! `c8s dashboard` serves it with the viewer's own kube credentials; `c8s
//! controller --dashboard ADDR` with the controller's ServiceAccount. Either
//! way it only reads: PipelineRuns (get, list, watch), Pipelines (list, watch),
//! Pods and their logs
//! (get), the Secrets a step's pod references (get, to mask their values —
//! without that right the log is withheld, never shown unmasked), and the
//! log archive (get).
//!
//! Routes: `/` (pipelines and runs), `/live` (its events), `/runs/{ns}/{name}` (a run),
//! `/runs/{ns}/{name}/live`, `/runs/{ns}/{name}/steps/{step}/log`, and
//! `.../log/live` (a running step's log as events).

pub mod escape;
pub mod html;
pub mod svg;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use c8s_kube::archive::Archive;
use c8s_kube::{Cluster, KubeCluster, MAIN_CONTAINER, ObjectKind, ObjectRef};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt as _, reflector, watcher};
use kube::{Client, ResourceExt};

use crate::archive::{KubeSecrets, masker_for};
use crate::crd::{PipelineRun, StepPhase, StepRunStatus};
use html::StepView;
use svg::Graph;

/// What the dashboard reads with, and where.
pub struct Dashboard {
    client: Client,
    namespace: Option<String>,
    archive: Option<Archive>,
}

impl Dashboard {
    /// Reads with `client`; the runs of `namespace` only, or of every
    /// namespace; archived logs from `archive`.
    pub fn new(client: Client, namespace: Option<String>, archive: Option<Archive>) -> Self {
        Dashboard {
            client,
            namespace,
            archive,
        }
    }

    fn runs(&self) -> Api<PipelineRun> {
        crate::controller::scoped(&self.client, self.namespace.as_deref())
    }

    /// Whether runs of `ns` may be shown.
    fn allows(&self, ns: &str) -> bool {
        self.namespace.as_deref().is_none_or(|only| only == ns)
    }
}

/// The dashboard's routes.
pub fn router(dashboard: Arc<Dashboard>) -> Router {
    Router::new()
        .route("/", get(runs_page))
        .route("/live", get(runs_live))
        .route("/runs/{ns}/{name}", get(run_page))
        .route("/runs/{ns}/{name}/live", get(run_live))
        .route("/runs/{ns}/{name}/steps/{step}/log", get(log_page))
        .route("/runs/{ns}/{name}/steps/{step}/log/live", get(log_live))
        .with_state(dashboard)
}

/// Serves the dashboard on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    dashboard: Arc<Dashboard>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), crate::Error> {
    axum::serve(listener, router(dashboard))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| crate::Error::Metrics(format!("cannot serve the dashboard: {e}")))
}

/// A page that says what went wrong (escaped).
fn problem(status: StatusCode, message: &str) -> Response {
    (
        status,
        Html(html::page(
            "Error",
            &format!("<h1>Error</h1><p>{}</p>", html::escape(message)),
        )),
    )
        .into_response()
}

/// Every run, newest first.
async fn list_runs(dashboard: &Dashboard) -> Result<Vec<PipelineRun>, kube::Error> {
    let runs = dashboard.runs().list(&ListParams::default()).await?.items;
    Ok(newest_first(runs))
}

/// `runs` sorted newest first (then by name: the order is the same on every
/// render).
fn newest_first(mut runs: Vec<PipelineRun>) -> Vec<PipelineRun> {
    runs.sort_by(|a, b| {
        let key = |r: &PipelineRun| (r.metadata.creation_timestamp.clone().map(|t| t.0), r.name_any());
        key(b).cmp(&key(a))
    });
    runs
}

fn pipelines_api(dashboard: &Dashboard) -> Api<crate::crd::Pipeline> {
    crate::controller::scoped(&dashboard.client, dashboard.namespace.as_deref())
}

/// (namespace, name) of each Pipeline, sorted.
fn pipeline_names<'a>(pipelines: impl Iterator<Item = &'a crate::crd::Pipeline>) -> Vec<(String, String)> {
    let mut names: Vec<_> = pipelines
        .map(|p| (p.namespace().unwrap_or_default(), p.name_any()))
        .collect();
    names.sort();
    names
}

/// The Pipeline objects (namespace, name); none when they cannot be listed
/// (the runs' pipelines are shown anyway).
async fn list_pipelines(dashboard: &Dashboard) -> Vec<(String, String)> {
    pipelines_api(dashboard)
        .list(&ListParams::default())
        .await
        .map(|list| pipeline_names(list.items.iter()))
        .unwrap_or_default()
}

async fn runs_page(State(dashboard): State<Arc<Dashboard>>) -> Response {
    match list_runs(&dashboard).await {
        Ok(runs) => {
            let pipelines = list_pipelines(&dashboard).await;
            Html(html::runs_page(&pipelines, &runs, Timestamp::now())).into_response()
        }
        Err(e) => problem(StatusCode::BAD_GATEWAY, &format!("cannot list runs: {e}")),
    }
}

/// A watch of `api` whose objects are kept in `writer`'s store: one item per
/// change it saw; `listed` turns true once the store holds the watch's first
/// complete list.
fn reflected<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: reflector::store::Writer<K>,
    listed: Arc<AtomicBool>,
) -> impl Stream<Item = ()> + Send + 'static
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    watcher(api, config)
        .default_backoff()
        .modify(crate::controller::strip_managed_fields)
        .reflect(writer)
        .map(move |event| {
            if matches!(event, Ok(watcher::Event::InitDone)) {
                listed.store(true, Ordering::Release);
            }
        })
}

/// Server-sent events named `update`, each the HTML `render` gives (`None`:
/// nothing to send yet) after a change the watches of `changes` saw. The
/// changes that arrive while one render runs are rendered once, after it,
/// and `render` reads the watches' own stores: a change costs no request to
/// the API server, and a burst of changes is one update.
fn updates<S, F>(changes: S, render: F) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    S: Stream<Item = ()> + Send + 'static,
    F: Fn() -> Option<String> + Send + Sync + 'static,
{
    let stream = changes.ready_chunks(1024).filter_map(move |_| {
        let html = render();
        async move { html.map(|h| Ok(Event::default().event("update").data(h))) }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn runs_live(State(dashboard): State<Arc<Dashboard>>) -> impl IntoResponse {
    let (runs, runs_writer) = reflector::store();
    let (pipelines, pipelines_writer) = reflector::store();
    let listed = Arc::new(AtomicBool::new(false));
    let runs_changes = reflected(
        dashboard.runs(),
        watcher::Config::default(),
        runs_writer,
        listed.clone(),
    );
    // A viewer who may not list Pipelines still sees the runs: that watch
    // only retries, and the runs' updates never wait for it.
    let pipelines_changes = reflected(
        pipelines_api(&dashboard),
        watcher::Config::default(),
        pipelines_writer,
        Arc::new(AtomicBool::new(false)),
    );
    let changes = futures::stream::select(runs_changes, pipelines_changes);
    updates(changes, move || {
        if !listed.load(Ordering::Acquire) {
            return None;
        }
        let all: Vec<PipelineRun> = runs.state().iter().map(|r| (**r).clone()).collect();
        let names = pipeline_names(pipelines.state().iter().map(|p| &**p));
        Some(html::runs_live(&names, &newest_first(all), Timestamp::now()))
    })
}

/// A run, its steps (with the pipeline's names) and its graph.
struct RunView {
    run: PipelineRun,
    labels: Vec<String>,
    graph: Graph,
}

impl RunView {
    fn steps(&self) -> Vec<StepView<'_>> {
        let steps = self
            .run
            .status
            .as_ref()
            .map(|s| s.steps.as_slice())
            .unwrap_or_default();
        steps
            .iter()
            .zip(&self.labels)
            .map(|(status, label)| StepView {
                status,
                label: label.clone(),
            })
            .collect()
    }
}

/// The run's view: its steps' names and graph come from rendering the
/// pipeline its status keeps, as the controller does.
fn run_view(run: PipelineRun, ns: &str) -> RunView {
    let status = run.status.clone().unwrap_or_default();
    let rendered = status.pipeline_spec.as_ref().and_then(|pipeline| {
        let owner = crate::steps::owner_of(&run)?;
        let ctx = crate::steps::run_context(&run, pipeline, ns);
        crate::steps::run_steps(pipeline, &ctx, owner, false).ok()
    });
    let label_of = |name: &str| -> String {
        let Some(step) = rendered
            .as_ref()
            .and_then(|r| r.steps.iter().find(|s| s.name == name))
        else {
            return name.to_owned();
        };
        let base = step.object.label(c8s_kube::STEP_LABEL).unwrap_or(name).to_owned();
        match step
            .object
            .label(c8s_pipeline_model::sidecar::contract::MATRIX_KEY)
        {
            Some(matrix) if !matrix.is_empty() => format!("{base} [{matrix}]"),
            _ => base,
        }
    };
    let labels: Vec<String> = status.steps.iter().map(|s| label_of(&s.name)).collect();
    let nodes = status
        .steps
        .iter()
        .zip(&labels)
        .map(|(s, label)| (s.name.clone(), label.clone(), format!("{:?}", s.phase)));
    let edges: Vec<(String, String)> = rendered
        .as_ref()
        .map(|r| {
            r.steps
                .iter()
                .flat_map(|s| s.depends_on.iter().map(|d| (d.clone(), s.name.clone())))
                .collect()
        })
        .unwrap_or_default();
    RunView {
        graph: Graph::from_steps(nodes, edges),
        labels,
        run,
    }
}

async fn get_run(dashboard: &Dashboard, ns: &str, name: &str) -> Result<PipelineRun, Response> {
    if !dashboard.allows(ns) {
        return Err(problem(
            StatusCode::NOT_FOUND,
            &format!("no run {ns}/{name} here"),
        ));
    }
    match Api::<PipelineRun>::namespaced(dashboard.client.clone(), ns)
        .get_opt(name)
        .await
    {
        Ok(Some(run)) => Ok(run),
        Ok(None) => Err(problem(StatusCode::NOT_FOUND, &format!("no run {ns}/{name}"))),
        Err(e) => Err(problem(
            StatusCode::BAD_GATEWAY,
            &format!("cannot read run {ns}/{name}: {e}"),
        )),
    }
}

async fn run_page(
    State(dashboard): State<Arc<Dashboard>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    match get_run(&dashboard, &ns, &name).await {
        Ok(run) => {
            let view = run_view(run, &ns);
            Html(html::run_page(
                &view.run,
                &view.steps(),
                &view.graph,
                Timestamp::now(),
            ))
            .into_response()
        }
        Err(response) => response,
    }
}

async fn run_live(
    State(dashboard): State<Arc<Dashboard>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    if let Err(response) = get_run(&dashboard, &ns, &name).await {
        return response;
    }
    let api = Api::<PipelineRun>::namespaced(dashboard.client.clone(), &ns);
    let (run, writer) = reflector::store();
    let listed = Arc::new(AtomicBool::new(false));
    let changes = reflected(
        api,
        watcher::Config::default().fields(&format!("metadata.name={name}")),
        writer,
        listed.clone(),
    );
    updates(changes, move || {
        if !listed.load(Ordering::Acquire) {
            return None;
        }
        let view = run_view((*run.state().into_iter().next()?).clone(), &ns);
        Some(html::run_live(
            &view.run,
            &view.steps(),
            &view.graph,
            Timestamp::now(),
        ))
    })
    .into_response()
}

/// The status of step `step` of run `ns/name`, or the page saying why not.
async fn run_step(
    dashboard: &Dashboard,
    ns: &str,
    name: &str,
    step: &str,
) -> Result<StepRunStatus, Response> {
    let run = get_run(dashboard, ns, name).await?;
    let found = run
        .status
        .and_then(|s| s.steps.into_iter().find(|s| s.name == step));
    found.ok_or_else(|| {
        problem(
            StatusCode::NOT_FOUND,
            &format!("run {ns}/{name} has no step {step}"),
        )
    })
}

/// Step `step`'s pod, if it is still there.
async fn live_pod(dashboard: &Dashboard, ns: &str, step: &StepRunStatus) -> Option<Pod> {
    let pod = step.pod.as_deref()?;
    Api::<Pod>::namespaced(dashboard.client.clone(), ns)
        .get_opt(pod)
        .await
        .ok()
        .flatten()
}

/// The masker of the Secrets `pod` references (read with the dashboard's
/// credentials), or why the log is withheld.
async fn pod_masker(
    dashboard: &Dashboard,
    ns: &str,
    pod: &Pod,
) -> Result<c8s_pipeline_model::SecretMasker, String> {
    let spec = pod.spec.clone().unwrap_or_default();
    let masker = masker_for(&spec, &KubeSecrets::new(dashboard.client.clone(), ns)).await?;
    match masker.short_values() {
        [] => Ok(masker),
        short => Err(format!("the value of {} is too short to mask", short.join(", "))),
    }
}

async fn log_page(
    State(dashboard): State<Arc<Dashboard>>,
    Path((ns, name, step)): Path<(String, String, String)>,
) -> Response {
    let status = match run_step(&dashboard, &ns, &name, &step).await {
        Ok(status) => status,
        Err(response) => return response,
    };
    let status = &status;
    let run_id = format!("{ns}/{name}");
    let pod = live_pod(&dashboard, &ns, status).await;
    if let Some(pod) = pod {
        if status.phase == StepPhase::Running {
            let follow = format!(
                "/runs/{}/{}/steps/{}/log/live",
                html::segment(&ns),
                html::segment(&name),
                html::segment(&step)
            );
            let page = html::log_page(&run_id, &step, "live from its pod", "", Some(&follow));
            return Html(page).into_response();
        }
        let text = match pod_log(&dashboard, &ns, &pod).await {
            Ok(text) => text,
            Err(reason) => format!("(log withheld: {reason})"),
        };
        return Html(html::log_page(&run_id, &step, "from its pod", &text, None)).into_response();
    }
    let (source, text) = archived_log(&dashboard, status).await;
    Html(html::log_page(&run_id, &step, &source, &text, None)).into_response()
}

/// The whole masked `main` log of a pod whose step ended.
async fn pod_log(dashboard: &Dashboard, ns: &str, pod: &Pod) -> Result<String, String> {
    let mut masker = pod_masker(dashboard, ns, pod).await?;
    let cluster = KubeCluster::new(dashboard.client.clone(), ns.to_owned());
    let object = ObjectRef::new(ObjectKind::Pod, pod.name_any());
    let mut stream = cluster
        .logs(&object, MAIN_CONTAINER)
        .await
        .map_err(|e| e.to_string())?;
    let mut masked = Vec::new();
    while let Some(chunk) = stream.next().await {
        masked.extend(masker.feed(&chunk.map_err(|e| e.to_string())?));
    }
    masker.finish_into(&mut masked);
    Ok(String::from_utf8_lossy(&masked).into_owned())
}

/// Where a step's log is once its pod is gone, and its text (or why none).
async fn archived_log(dashboard: &Dashboard, step: &StepRunStatus) -> (String, String) {
    let Some(log) = step.archived_logs.iter().find(|l| l.container == MAIN_CONTAINER) else {
        let why = step
            .log_archive_error
            .clone()
            .unwrap_or_else(|| "its pod is gone and nothing was archived".into());
        return ("no log".into(), why);
    };
    let Some(archive) = &dashboard.archive else {
        return (
            "the log archive".into(),
            format!(
                "(archived at {}; the dashboard has no archive settings to read it)",
                log.url
            ),
        );
    };
    match archive.fetch(&log.key).await {
        // Masked before it was stored.
        Ok(bytes) => (
            "from the log archive".into(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ),
        Err(e) => (
            "the log archive".into(),
            format!("(cannot read the archived log: {e})"),
        ),
    }
}

async fn log_live(
    State(dashboard): State<Arc<Dashboard>>,
    Path((ns, name, step)): Path<(String, String, String)>,
) -> Response {
    let pod = match run_step(&dashboard, &ns, &name, &step).await {
        Ok(status) => live_pod(&dashboard, &ns, &status).await,
        Err(response) => return response,
    };
    let Some(pod) = pod else {
        return problem(StatusCode::NOT_FOUND, &format!("step {step} has no pod"));
    };
    let masker = match pod_masker(&dashboard, &ns, &pod).await {
        Ok(masker) => masker,
        Err(reason) => {
            let event = Event::default()
                .event("log")
                .data(format!("(log withheld: {reason})"));
            let end = Event::default().event("end").data("");
            let events = futures::stream::iter([Ok::<_, Infallible>(event), Ok(end)]);
            return Sse::new(events).into_response();
        }
    };
    let cluster = KubeCluster::new(dashboard.client.clone(), ns.clone());
    let object = ObjectRef::new(ObjectKind::Pod, pod.name_any());
    let stream = match cluster.logs(&object, MAIN_CONTAINER).await {
        Ok(stream) => stream,
        Err(e) => return problem(StatusCode::BAD_GATEWAY, &e.to_string()),
    };
    Sse::new(masked_lines(stream, masker))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// A log stream as `log` events, one per masked line, then `end`.
fn masked_lines(
    stream: c8s_kube::LogStream,
    masker: c8s_pipeline_model::SecretMasker,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let state = (stream, Some(masker), Vec::<u8>::new(), false);
    futures::stream::unfold(state, |(mut stream, mut masker, mut pending, ended)| async move {
        loop {
            if let Some(at) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=at).collect();
                let text = String::from_utf8_lossy(line.get(..at).unwrap_or_default()).replace('\r', "");
                let event = Event::default().event("log").data(text);
                return Some((Ok(event), (stream, masker, pending, ended)));
            }
            let Some(m) = masker.as_mut() else {
                if ended {
                    return None;
                }
                let end = Event::default().event("end").data("");
                return Some((Ok(end), (stream, None, pending, true)));
            };
            match stream.next().await {
                Some(Ok(chunk)) => pending.extend(m.feed(&chunk)),
                _ => {
                    m.finish_into(&mut pending);
                    if !pending.is_empty() && !pending.ends_with(b"\n") {
                        pending.push(b'\n');
                    }
                    masker = None;
                }
            }
        }
    })
}

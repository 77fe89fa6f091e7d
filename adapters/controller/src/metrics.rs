//! Prometheus metrics of `c8s controller`, served at `GET /metrics` in the
//! Prometheus text format (version 0.0.4) by [`serve`]:
//!
//! | Metric | Type | Labels | What |
//! |---|---|---|---|
//! | `c8s_pipelineruns` | gauge | `phase` | PipelineRuns by phase (`Pending`, `Running`, `Succeeded`, `Failed`, `Cancelled`; a run with no status yet is `Pending`) |
//! | `c8s_pipelineruns_queued` | gauge | | Pending runs with condition `Queued=True`: the queue depth |
//! | `c8s_cached_objects` | gauge | `resource` | objects the leader's watch caches hold (`pipelineruns`, `pods`): the runs that have not finished and their pods |
//! | `c8s_step_duration_seconds` | histogram | `outcome` | a step's `startTime` to `completionTime`, observed once when it ends (`Succeeded`, `Failed`, `Cancelled`) |
//! | `c8s_reconcile_duration_seconds` | histogram | | one reconcile, finished or failed |
//! | `c8s_reconcile_wait_seconds` | histogram | | how long a woken reconcile waited for a slot (`--concurrency`, shared across namespaces in turn) |
//! | `c8s_reconcile_errors_total` | counter | `reason` | failed reconciles by [`Error`] variant ([`error_reason`]) |
//! | `c8s_kube_api_requests_total` | counter | `verb`, `code` | requests to the API server ([`ApiRequestsLayer`]) |
//!
//! The run gauges are counted at scrape time from the Controller's own
//! PipelineRun cache and the finished runs it leaves out
//! ([`crate::finished`]), so they are right after a restart as soon as the
//! first list arrived; until then, and on a replica that does not hold the
//! leader Lease, they have no sample (summing over replicas counts each run
//! once). Labels take a few fixed values each: never a run, step or
//! namespace name.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{Method, Request, Response, StatusCode, Uri, header};
use axum::response::IntoResponse;
use axum::routing::get;
use futures::Stream;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::crd::{PipelineRun, PipelineRunStatus, RunPhase, StepPhase, StepRunStatus};
use crate::error::Error;
use crate::finished::Finished;
use k8s_openapi::api::core::v1::Pod;

/// The default address of the `/metrics` endpoint (`c8s controller --metrics-address`).
pub const DEFAULT_ADDRESS: &str = "0.0.0.0:9090";

/// Upper bounds of the step duration buckets, in seconds: 1 s to 2 h.
const STEP_BUCKETS: [f64; 12] = [
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
];
/// Upper bounds of the reconcile duration buckets, in seconds: 5 ms to the
/// reconcile timeout (150 s).
const RECONCILE_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 150.0,
];
/// Every run phase, in the order the gauge lists them.
const PHASES: [RunPhase; 5] = RunPhase::ALL;

/// Label `reason` of `c8s_reconcile_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Label `outcome` of `c8s_step_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Labels `verb` and `code` of `c8s_kube_api_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    verb: &'static str,
    code: Cow<'static, str>,
}

/// Label `resource` of `c8s_cached_objects`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    resource: &'static str,
}

/// Label `phase` of `c8s_pipelineruns`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

type StepHistograms = Family<OutcomeLabels, Histogram, fn() -> Histogram>;

fn step_histogram() -> Histogram {
    Histogram::new(STEP_BUCKETS)
}

/// The controller's metrics: shared by its reconciles (`Arc`), the API
/// client's [`ApiRequestsLayer`] and the `/metrics` endpoint ([`serve`]).
pub struct Metrics {
    registry: Registry,
    runs: Arc<RunCache>,
    reconcile_duration: Histogram,
    reconcile_wait: Histogram,
    reconcile_errors: Family<ReasonLabels, Counter>,
    step_duration: StepHistograms,
    api_requests: Family<ApiLabels, Counter>,
    /// Per run (uid), the steps whose duration was observed while the run is
    /// in flight: a reconcile that read a run from a cache that does not have
    /// its last status write yet sees a step end a second time.
    observed_steps: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric registered, at zero; no run gauges until
    /// [`Metrics::count_runs`] is given the Controller's cache.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let runs = Arc::new(RunCache::default());
        registry.register_collector(Box::new(runs.clone()));
        let reconcile_duration = Histogram::new(RECONCILE_BUCKETS);
        registry.register_with_unit(
            "c8s_reconcile_duration",
            "How long one reconcile of a PipelineRun took, finished or failed",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        let reconcile_wait = Histogram::new(RECONCILE_BUCKETS);
        registry.register_with_unit(
            "c8s_reconcile_wait",
            "How long a woken reconcile of a PipelineRun waited for a free slot",
            Unit::Seconds,
            reconcile_wait.clone(),
        );
        let reconcile_errors = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "c8s_reconcile_errors",
            "Failed reconciles, by the kind of error",
            reconcile_errors.clone(),
        );
        let step_duration: StepHistograms = Family::new_with_constructor(step_histogram);
        registry.register_with_unit(
            "c8s_step_duration",
            "How long a step ran (its startTime to its completionTime, retries included), observed once when it ends",
            Unit::Seconds,
            step_duration.clone(),
        );
        let api_requests = Family::<ApiLabels, Counter>::default();
        registry.register(
            "c8s_kube_api_requests",
            "Requests to the Kubernetes API server, by verb and HTTP status code (code \"error\": no answer)",
            api_requests.clone(),
        );
        Metrics {
            registry,
            runs,
            reconcile_duration,
            reconcile_wait,
            reconcile_errors,
            step_duration,
            api_requests,
            observed_steps: Mutex::new(BTreeMap::new()),
        }
    }

    /// Every metric in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> Result<String, Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .map_err(|e| Error::Metrics(format!("cannot encode them: {e}")))?;
        Ok(text)
    }

    /// Counts the runs of `store` and the finished runs noted in `finished`
    /// (which the store leaves out) in the run gauges, once `events` (the
    /// reflector stream that fills `store`) has delivered its first complete
    /// list: before it, an empty store would read as "no runs". Returns
    /// `events` unchanged, for the Controller.
    ///
    /// Readiness is read from the stream, never by polling
    /// `Store::wait_until_ready`: kube-runtime keeps only the last poller's
    /// waker, and the Controller itself waits on it before reconciling.
    pub fn count_runs<S>(
        &self,
        store: Store<PipelineRun>,
        finished: Arc<Finished>,
        events: S,
    ) -> impl Stream<Item = S::Item> + use<S>
    where
        S: Stream<Item = Result<watcher::Event<PipelineRun>, watcher::Error>>,
    {
        use futures::StreamExt;
        // A second call (a controller run again in the same process) keeps the first store.
        let _ = self.runs.store.set(store);
        let _ = self.runs.finished.set(finished);
        let runs = self.runs.clone();
        events.inspect(move |event| {
            if matches!(event, Ok(watcher::Event::InitDone)) {
                runs.listed.store(true, Ordering::Release);
            }
        })
    }

    /// Counts the pods of `store`, the Controller's pod cache, at scrape
    /// time (`c8s_cached_objects`). A second call keeps the first store.
    pub fn count_cached_pods(&self, store: Store<Pod>) {
        let _ = self.runs.pods.set(store);
    }

    /// Records that a reconcile waited `waited` for its slot.
    pub fn observe_reconcile_wait(&self, waited: Duration) {
        self.reconcile_wait.observe(waited.as_secs_f64());
    }

    /// Records one reconcile that took `took`.
    pub fn observe_reconcile(&self, took: Duration) {
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// Counts one failed reconcile.
    pub fn count_error(&self, error: &Error) {
        self.reconcile_errors
            .get_or_create(&ReasonLabels {
                reason: error_reason(error),
            })
            .inc();
    }

    /// Observes the duration of every step that ended between status
    /// `before` (as recorded) and `after` (as written) of run `run` (its uid):
    /// once per step, however many reconciles see it ended. A step without
    /// `startTime` (it never ran, or started and ended between two
    /// reconciles) has no duration and is not observed; a step with no
    /// `completionTime` ended `now`. Call it after `after` was written.
    pub fn observe_steps(
        &self,
        run: &str,
        before: &PipelineRunStatus,
        after: &PipelineRunStatus,
        now: Timestamp,
    ) {
        let ended_before: BTreeSet<&str> = before
            .steps
            .iter()
            .filter(|s| ended(s.phase))
            .map(|s| s.name.as_str())
            .collect();
        let Ok(mut observed) = self.observed_steps.lock() else {
            return;
        };
        for step in &after.steps {
            if ended_before.contains(step.name.as_str()) {
                continue;
            }
            let (Some(outcome), Some(seconds)) = (outcome(step), step_seconds(step, now)) else {
                continue;
            };
            if !observed
                .entry(run.to_owned())
                .or_default()
                .insert(step.name.clone())
            {
                continue;
            }
            self.step_duration
                .get_or_create(&OutcomeLabels { outcome })
                .observe(seconds);
        }
    }

    /// Forgets which steps of run `run` (its uid) were observed: call it when
    /// the run's recorded status is final or the run is gone.
    pub fn forget_run(&self, run: &str) {
        if let Ok(mut observed) = self.observed_steps.lock() {
            observed.remove(run);
        }
    }

    /// The layer counting every request of a `kube::Client` in
    /// `c8s_kube_api_requests_total`; add it with
    /// `kube::client::ClientBuilder::with_layer`.
    pub fn api_layer(&self) -> ApiRequestsLayer {
        ApiRequestsLayer {
            requests: self.api_requests.clone(),
        }
    }
}

/// The `reason` label of an error: its [`Error`] variant's name (`Pipeline`,
/// `Render`, `Cluster`, `Kube`, `MissingPipeline`, `TimedOut`, `NotLeader`,
/// `Metrics`).
pub fn error_reason(error: &Error) -> &'static str {
    match error {
        Error::Pipeline(_) => "Pipeline",
        Error::Render(_) => "Render",
        Error::Cluster(_) => "Cluster",
        Error::Kube(_) => "Kube",
        Error::MissingPipeline(_) => "MissingPipeline",
        Error::TimedOut(_) => "TimedOut",
        Error::NotLeader(_) => "NotLeader",
        Error::Metrics(_) => "Metrics",
    }
}

fn ended(phase: StepPhase) -> bool {
    matches!(
        phase,
        StepPhase::Succeeded | StepPhase::Failed | StepPhase::Skipped
    )
}

/// The `outcome` of an ended step; `None` for one still going.
fn outcome(step: &StepRunStatus) -> Option<&'static str> {
    match step.phase {
        StepPhase::Succeeded => Some("Succeeded"),
        StepPhase::Failed => Some("Failed"),
        // Skipped after it started: stopped by a cancel or the run's end.
        StepPhase::Skipped => Some("Cancelled"),
        StepPhase::Pending | StepPhase::Running => None,
    }
}

/// Seconds from the step's `startTime` to its `completionTime` (or `now`).
fn step_seconds(step: &StepRunStatus, now: Timestamp) -> Option<f64> {
    let start: Timestamp = step.start_time.as_deref()?.parse().ok()?;
    let end = match step.completion_time.as_deref() {
        Some(end) => end.parse().ok()?,
        None => now,
    };
    Some(end.duration_since(start).as_secs_f64().max(0.0))
}

/// The Controller's PipelineRun cache, counted at scrape time.
#[derive(Default)]
struct RunCache {
    store: OnceLock<Store<PipelineRun>>,
    /// The finished runs, which the cache leaves out.
    finished: OnceLock<Arc<Finished>>,
    /// The Controller's pod cache.
    pods: OnceLock<Store<Pod>>,
    /// The store holds its first complete list.
    listed: AtomicBool,
}

impl std::fmt::Debug for RunCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunCache")
            .field("listed", &self.listed.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

/// Runs per phase and queued runs: those that have not finished from the
/// cache `runs`, the finished ones from `finished` (the cache leaves them
/// out; a run that just ended may count twice for a moment, noted finished
/// before the cache drops its Running version).
fn count(runs: &[Arc<PipelineRun>], finished: Option<&Finished>) -> ([i64; PHASES.len()], i64) {
    let mut by_phase = [0i64; PHASES.len()];
    let mut queued = 0;
    for (i, phase) in PHASES.iter().enumerate() {
        if phase.is_finished() {
            let noted = finished.map_or(0, |f| f.count(*phase));
            by_phase[i] = i64::try_from(noted).unwrap_or(i64::MAX);
        }
    }
    for run in runs {
        let status = run.status.as_ref();
        let phase = status.map(|s| s.phase).unwrap_or_default();
        if phase.is_finished() {
            continue;
        }
        if let Some(i) = PHASES.iter().position(|p| *p == phase) {
            by_phase[i] += 1;
        }
        let waiting = status.is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Queued" && c.status == "True")
        });
        if phase == RunPhase::Pending && waiting {
            queued += 1;
        }
    }
    (by_phase, queued)
}

impl Collector for RunCache {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counted = match self.store.get() {
            Some(store) if self.listed.load(Ordering::Acquire) => {
                Some(count(&store.state(), self.finished.get().map(Arc::as_ref)))
            }
            _ => None,
        };
        let mut phases = encoder.encode_descriptor(
            "c8s_pipelineruns",
            "PipelineRuns by phase, from the leader's cache.",
            None,
            MetricType::Gauge,
        )?;
        if let Some((by_phase, _)) = &counted {
            for (phase, n) in PHASES.iter().zip(by_phase) {
                phases
                    .encode_family(&PhaseLabels {
                        phase: phase.as_str(),
                    })?
                    .encode_gauge(n)?;
            }
        }
        let mut queued = encoder.encode_descriptor(
            "c8s_pipelineruns_queued",
            "Pending PipelineRuns waiting with condition Queued (namespace limit or quota), from the leader's cache.",
            None,
            MetricType::Gauge,
        )?;
        if let Some((_, n)) = &counted {
            queued.encode_gauge(n)?;
        }
        let mut cached = encoder.encode_descriptor(
            "c8s_cached_objects",
            "Objects held in the leader's watch caches, by resource (finished runs and their pods are left out).",
            None,
            MetricType::Gauge,
        )?;
        if let Some(store) = self.store.get() {
            let n = i64::try_from(store.state().len()).unwrap_or(i64::MAX);
            cached
                .encode_family(&ResourceLabels {
                    resource: "pipelineruns",
                })?
                .encode_gauge(&n)?;
        }
        if let Some(pods) = self.pods.get() {
            let n = i64::try_from(pods.state().len()).unwrap_or(i64::MAX);
            cached
                .encode_family(&ResourceLabels { resource: "pods" })?
                .encode_gauge(&n)?;
        }
        Ok(())
    }
}

/// The Kubernetes verb of a request, as RBAC names it: `get`, `list`,
/// `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, or
/// `other`.
pub fn verb_of(method: &Method, uri: &Uri) -> &'static str {
    let watch = uri
        .query()
        .is_some_and(|q| q.split('&').any(|pair| pair == "watch=true" || pair == "watch=1"));
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    // `/api/v1/...` or `/apis/<group>/<version>/...`; the rest names the resource.
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..),
        Some(&"apis") => segments.get(3..),
        _ => None,
    }
    .unwrap_or_default();
    let rest = match rest {
        ["namespaces", _, resource @ ..] if !resource.is_empty() => resource,
        other => other,
    };
    let collection = rest.len() == 1;
    match *method {
        Method::GET if watch => "watch",
        Method::GET if collection => "list",
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if collection => "deletecollection",
        Method::DELETE => "delete",
        _ => "other",
    }
}

/// A tower layer counting each request of a `kube::Client` when its answer
/// (a watch: its first line) arrives, by verb ([`verb_of`]) and status code.
/// Added outermost, it counts what the client was asked, once each, whatever
/// the client's own retries did.
#[derive(Clone, Debug)]
pub struct ApiRequestsLayer {
    requests: Family<ApiLabels, Counter>,
}

impl<S> tower::Layer<S> for ApiRequestsLayer {
    type Service = ApiRequests<S>;

    fn layer(&self, inner: S) -> ApiRequests<S> {
        ApiRequests {
            inner,
            requests: self.requests.clone(),
        }
    }
}

/// The service of [`ApiRequestsLayer`].
#[derive(Clone, Debug)]
pub struct ApiRequests<S> {
    inner: S,
    requests: Family<ApiLabels, Counter>,
}

impl<S, B, R> tower::Service<Request<B>> for ApiRequests<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let verb = verb_of(request.method(), request.uri());
        let requests = self.requests.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            let code = match &answer {
                Ok(response) => Cow::Owned(response.status().as_u16().to_string()),
                Err(_) => Cow::Borrowed("error"),
            };
            requests.get_or_create(&ApiLabels { verb, code }).inc();
            answer
        })
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let router = Router::new().route("/metrics", get(scrape)).with_state(metrics);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Metrics(format!("cannot serve /metrics: {e}")))
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> axum::response::Response {
    match metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{ListParams, PostParams};
    use kube::client::Body;
    use kube::runtime::reflector::{self, reflector};

    use super::*;
    use crate::crd::{Condition, PipelineRunSpec};

    /// The sample lines of `text` (no `#` lines).
    fn samples(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    fn step(name: &str, phase: StepPhase, start: Option<&str>, end: Option<&str>) -> StepRunStatus {
        StepRunStatus {
            name: name.to_owned(),
            phase,
            start_time: start.map(str::to_owned),
            completion_time: end.map(str::to_owned),
            ..StepRunStatus::default()
        }
    }

    fn status(steps: Vec<StepRunStatus>) -> PipelineRunStatus {
        PipelineRunStatus {
            phase: RunPhase::Running,
            steps,
            ..PipelineRunStatus::default()
        }
    }

    fn now() -> Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    fn run(name: &str, phase: Option<RunPhase>, queued: bool) -> PipelineRun {
        let mut run = PipelineRun::new(name, PipelineRunSpec::default());
        run.metadata.namespace = Some("ci".into());
        run.status = phase.map(|phase| PipelineRunStatus {
            phase,
            conditions: queued
                .then(|| {
                    serde_json::from_value::<Condition>(serde_json::json!({
                        "type": "Queued", "status": "True", "reason": "NamespaceLimit",
                        "message": "10 runs are running", "lastTransitionTime": "2026-01-01T00:00:00Z"
                    }))
                    .unwrap()
                })
                .into_iter()
                .collect(),
            ..PipelineRunStatus::default()
        });
        run
    }

    #[test]
    fn every_metric_is_encoded_with_its_unit_suffix_and_labels() {
        let metrics = Metrics::new();
        metrics.observe_reconcile(Duration::from_millis(30));
        metrics.observe_reconcile_wait(Duration::from_secs(3));
        metrics.count_error(&Error::TimedOut("slow".into()));
        metrics.count_error(&Error::TimedOut("slow".into()));
        metrics.count_error(&Error::MissingPipeline("none".into()));
        let before = status(vec![step(
            "unit",
            StepPhase::Running,
            Some("2026-01-01T00:00:00Z"),
            None,
        )]);
        let after = status(vec![step(
            "unit",
            StepPhase::Failed,
            Some("2026-01-01T00:00:00Z"),
            Some("2026-01-01T00:00:42Z"),
        )]);
        metrics.observe_steps("uid-1", &before, &after, now());
        let text = metrics.encode().unwrap();
        for line in [
            "# TYPE c8s_pipelineruns gauge",
            "# TYPE c8s_pipelineruns_queued gauge",
            "# TYPE c8s_reconcile_duration_seconds histogram",
            "c8s_reconcile_duration_seconds_count 1",
            "c8s_reconcile_duration_seconds_bucket{le=\"0.05\"} 1",
            "c8s_reconcile_duration_seconds_bucket{le=\"0.025\"} 0",
            "# TYPE c8s_reconcile_wait_seconds histogram",
            "c8s_reconcile_wait_seconds_bucket{le=\"5\"} 1",
            "c8s_reconcile_wait_seconds_bucket{le=\"2.5\"} 0",
            "# TYPE c8s_reconcile_errors_total counter",
            "c8s_reconcile_errors_total{reason=\"TimedOut\"} 2",
            "c8s_reconcile_errors_total{reason=\"MissingPipeline\"} 1",
            "# TYPE c8s_step_duration_seconds histogram",
            "c8s_step_duration_seconds_count{outcome=\"Failed\"} 1",
            "c8s_step_duration_seconds_sum{outcome=\"Failed\"} 42.0",
            "c8s_step_duration_seconds_bucket{outcome=\"Failed\",le=\"60\"} 1",
            "c8s_step_duration_seconds_bucket{outcome=\"Failed\",le=\"30\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
        }
        // Without the Controller's cache the run gauges have no sample.
        assert!(
            !samples(&text).iter().any(|l| l.starts_with("c8s_pipelineruns")),
            "{text}"
        );
    }

    #[tokio::test]
    async fn the_run_gauges_count_the_cache_and_the_finished_runs_once_the_first_list_arrived() {
        let metrics = Metrics::new();
        let (store, writer) = reflector::store::<PipelineRun>();
        let events = vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(run("a", None, false))),
            Ok(watcher::Event::InitApply(run("b", Some(RunPhase::Pending), true))),
            Ok(watcher::Event::InitApply(run(
                "c",
                Some(RunPhase::Pending),
                false,
            ))),
            Ok(watcher::Event::InitApply(run(
                "d",
                Some(RunPhase::Succeeded),
                false,
            ))),
            Ok(watcher::Event::InitApply(run(
                "e",
                Some(RunPhase::Running),
                false,
            ))),
            Ok(watcher::Event::InitDone),
            Ok(watcher::Event::Apply(run("e", Some(RunPhase::Failed), false))),
        ];
        // Filtered as the controller's run watch is: finished runs left out.
        let finished = Arc::new(Finished::new(false));
        let noted = finished.clone();
        let filtered = futures::stream::iter(events).filter_map(move |event: Result<_, watcher::Error>| {
            futures::future::ready(event.map(|e| noted.run_event(e)).transpose())
        });
        let stream = reflector(writer, filtered);
        let mut stream = Box::pin(metrics.count_runs(store, finished, stream));
        // Mid-list: the store is not filled yet, so nothing is said.
        for _ in 0..5 {
            stream.next().await.unwrap().unwrap();
        }
        let text = metrics.encode().unwrap();
        assert!(
            !samples(&text).iter().any(|l| l.starts_with("c8s_pipelineruns")),
            "{text}"
        );
        let gauges = |text: &str| -> Vec<String> {
            let mut gauges: Vec<String> = samples(text)
                .into_iter()
                .filter(|l| l.starts_with("c8s_pipelineruns") || l.starts_with("c8s_cached_objects"))
                .map(str::to_owned)
                .collect();
            gauges.sort_unstable();
            gauges
        };
        stream.next().await.unwrap().unwrap();
        let text = metrics.encode().unwrap();
        assert_eq!(
            gauges(&text),
            [
                "c8s_cached_objects{resource=\"pipelineruns\"} 4",
                "c8s_pipelineruns_queued 1",
                "c8s_pipelineruns{phase=\"Cancelled\"} 0",
                "c8s_pipelineruns{phase=\"Failed\"} 0",
                "c8s_pipelineruns{phase=\"Pending\"} 3",
                "c8s_pipelineruns{phase=\"Running\"} 1",
                "c8s_pipelineruns{phase=\"Succeeded\"} 1",
            ],
            "{text}"
        );
        // The running run ends: it leaves the cache and is counted Failed.
        stream.next().await.unwrap().unwrap();
        let text = metrics.encode().unwrap();
        assert_eq!(
            gauges(&text),
            [
                "c8s_cached_objects{resource=\"pipelineruns\"} 3",
                "c8s_pipelineruns_queued 1",
                "c8s_pipelineruns{phase=\"Cancelled\"} 0",
                "c8s_pipelineruns{phase=\"Failed\"} 1",
                "c8s_pipelineruns{phase=\"Pending\"} 3",
                "c8s_pipelineruns{phase=\"Running\"} 0",
                "c8s_pipelineruns{phase=\"Succeeded\"} 1",
            ],
            "{text}"
        );
    }

    #[test]
    fn a_step_is_observed_once_when_it_ends_not_on_every_reconcile() {
        let metrics = Metrics::new();
        let start = Some("2026-01-01T00:00:00Z");
        let running = status(vec![
            step("build", StepPhase::Running, start, None),
            step("test", StepPhase::Pending, None, None),
        ]);
        let built = status(vec![
            step("build", StepPhase::Succeeded, start, Some("2026-01-01T00:00:07Z")),
            step("test", StepPhase::Running, Some("2026-01-01T00:00:08Z"), None),
        ]);
        let count = |metrics: &Metrics| {
            let text = metrics.encode().unwrap();
            text.lines()
                .filter_map(|l| l.strip_prefix("c8s_step_duration_seconds_count"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum::<u64>()
        };
        // Running to Running: nothing ended.
        metrics.observe_steps("uid-1", &running, &running, now());
        assert_eq!(count(&metrics), 0);
        metrics.observe_steps("uid-1", &running, &built, now());
        assert_eq!(count(&metrics), 1);
        // A reconcile that read the run from a cache without that status write
        // sees the step end again: not observed twice.
        metrics.observe_steps("uid-1", &running, &built, now());
        assert_eq!(count(&metrics), 1);
        // Later reconciles (and a restarted controller) read it as ended.
        metrics.observe_steps("uid-1", &built, &built, now());
        assert_eq!(count(&metrics), 1);
        // Another run's step of the same name is its own.
        metrics.observe_steps("uid-2", &running, &built, now());
        assert_eq!(count(&metrics), 2);
        // A step skipped before it started has no duration.
        let skipped = status(vec![step("test", StepPhase::Skipped, None, None)]);
        metrics.observe_steps("uid-1", &built, &skipped, now());
        assert_eq!(count(&metrics), 2);
        // A step cancelled while running counts as Cancelled, ended now if no time was written.
        let cancelled = status(vec![step(
            "test",
            StepPhase::Skipped,
            Some("2026-01-01T00:09:00Z"),
            None,
        )]);
        metrics.observe_steps("uid-1", &built, &cancelled, now());
        let text = metrics.encode().unwrap();
        assert!(
            text.lines()
                .any(|l| l == "c8s_step_duration_seconds_sum{outcome=\"Cancelled\"} 60.0"),
            "{text}"
        );
        metrics.forget_run("uid-1");
        assert!(metrics.observed_steps.lock().unwrap().get("uid-1").is_none());
    }

    #[test]
    fn each_error_variant_has_its_reason() {
        let reasons = [
            error_reason(&Error::Pipeline(String::new())),
            error_reason(&Error::MissingPipeline(String::new())),
            error_reason(&Error::TimedOut(String::new())),
            error_reason(&Error::NotLeader(String::new())),
            error_reason(&Error::Metrics(String::new())),
        ];
        assert_eq!(
            reasons,
            ["Pipeline", "MissingPipeline", "TimedOut", "NotLeader", "Metrics"]
        );
    }

    #[test]
    fn requests_are_named_by_their_kubernetes_verb() {
        let cases = [
            (Method::GET, "/api/v1/pods?&labelSelector=c8s.dev%2Frun", "list"),
            (
                Method::GET,
                "/api/v1/pods?&watch=true&timeoutSeconds=290",
                "watch",
            ),
            (Method::GET, "/api/v1/namespaces/ci/pods/p", "get"),
            (
                Method::GET,
                "/api/v1/namespaces/ci/pods/p/log?container=main",
                "get",
            ),
            (Method::GET, "/api/v1/namespaces/ci/pods", "list"),
            (Method::GET, "/api/v1/namespaces", "list"),
            (Method::GET, "/api/v1/namespaces/ci", "get"),
            (
                Method::GET,
                "/apis/c8s.dev/v1alpha1/pipelineruns?watch=1",
                "watch",
            ),
            (
                Method::GET,
                "/apis/c8s.dev/v1alpha1/namespaces/ci/pipelineruns",
                "list",
            ),
            (Method::POST, "/apis/batch/v1/namespaces/ci/jobs?", "create"),
            (
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/c8s/leases/c8s-controller?",
                "update",
            ),
            (
                Method::PATCH,
                "/apis/c8s.dev/v1alpha1/namespaces/ci/pipelineruns/r/status?",
                "patch",
            ),
            (Method::DELETE, "/api/v1/namespaces/ci/pods/p", "delete"),
            (
                Method::DELETE,
                "/api/v1/namespaces/ci/pods?labelSelector=x",
                "deletecollection",
            ),
            (Method::GET, "/version", "get"),
            (Method::OPTIONS, "/api/v1/pods", "other"),
        ];
        for (method, uri, verb) in cases {
            let uri: Uri = uri.parse().unwrap();
            assert_eq!(verb_of(&method, &uri), verb, "{method} {uri}");
        }
    }

    #[tokio::test]
    async fn the_layer_counts_every_request_of_a_client_by_verb_and_code() {
        use tower::Layer;
        let metrics = Metrics::new();
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(metrics.api_layer().layer(service), "ci");
        let server = tokio::spawn(async move {
            let answers = [
                (
                    200,
                    serde_json::json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []}),
                ),
                (
                    404,
                    serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
                ),
                (
                    201,
                    serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ci"}}),
                ),
            ];
            for (code, body) in answers {
                let (_, respond) = handle.next_request().await.unwrap();
                let response = Response::builder()
                    .status(code)
                    .body(Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap();
                respond.send_response(response);
            }
            // The fourth request gets no answer: the connection fails.
            let (_, respond) = handle.next_request().await.unwrap();
            respond.send_error(std::io::Error::other("connection reset"));
        });
        let pods = kube::Api::<Pod>::namespaced(client, "ci");
        pods.list(&ListParams::default()).await.unwrap();
        assert!(pods.get_opt("p").await.unwrap().is_none());
        let mut pod = Pod::default();
        pod.metadata.name = Some("p".into());
        pods.create(&PostParams::default(), &pod).await.unwrap();
        assert!(pods.delete("p", &Default::default()).await.is_err());
        server.await.unwrap();
        let text = metrics.encode().unwrap();
        let mut counted: Vec<&str> = samples(&text)
            .into_iter()
            .filter(|l| l.starts_with("c8s_kube_api_requests_total"))
            .collect();
        counted.sort_unstable();
        assert_eq!(
            counted,
            [
                "c8s_kube_api_requests_total{verb=\"create\",code=\"201\"} 1",
                "c8s_kube_api_requests_total{verb=\"delete\",code=\"error\"} 1",
                "c8s_kube_api_requests_total{verb=\"get\",code=\"404\"} 1",
                "c8s_kube_api_requests_total{verb=\"list\",code=\"200\"} 1",
            ],
            "{text}"
        );
    }

    #[tokio::test]
    async fn the_endpoint_serves_the_text_format() {
        let metrics = Arc::new(Metrics::new());
        metrics.count_error(&Error::NotLeader("b".into()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, metrics, async move {
            let _ = stopped.await;
        }));
        let answer = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            answer
        })
        .await
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
            "{answer}"
        );
        assert!(
            answer.contains("c8s_reconcile_errors_total{reason=\"NotLeader\"} 1"),
            "{answer}"
        );
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }
}

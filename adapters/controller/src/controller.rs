//! The kube-runtime `Controller` on `PipelineRun`: owns the run's Pods
//! (their changes wake the run; steps are Pods, so no Job is watched; a
//! deleted run's pods go with it, deleted by the garbage collector as its
//! dependents), writes status with server-side apply, records Events,
//! requeues for deadlines and backs off on errors. It acts only while
//! this replica holds the leader [`LeaderLease`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use c8s_kube::{Cluster, KubeCluster, RUN_LABEL};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, ResourceQuota};
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use crate::cache::{CachedCluster, Stores};
use crate::crd::{Pipeline, PipelineRun, PipelineRunStatus, RunPhase, crds};
use crate::error::Error;
use crate::fair::FairShare;
use crate::finished::Finished;
use crate::lease::{LeaderLease, RENEW_DEADLINE, RETRY_PERIOD};
pub use crate::ledger::quota_of;
use crate::metrics::Metrics;
use crate::reconcile::{Admission, INSTANCE_LABEL, RunEvent, RunView, Settings, reconcile_run, started_at};
use crate::steps::{owner_of, run_context, run_steps};

pub use crate::settings::{FIELD_MANAGER, FINALIZER};

/// What every reconcile shares.
pub struct Context {
    /// The client.
    pub client: Client,
    /// Limits and defaults.
    pub settings: Settings,
    /// Records Events on runs.
    pub recorder: Recorder,
    /// Consecutive failures per run, for the error backoff.
    failures: Mutex<BTreeMap<String, u32>>,
    /// The Controller's pod cache; `None`: every read asks the API server.
    stores: Option<Stores>,
    /// Where reconciles are counted.
    metrics: Arc<Metrics>,
    /// One gate per namespace, held by a Pending run's reconcile from the
    /// count of running runs until its status is written: the Controller
    /// reconciles runs concurrently, and two Pending runs counting at once
    /// would both see room under the limit.
    admitting: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// What admission counts from the runs cache; `None`: it lists.
    ledger: Option<crate::ledger::Ledger>,
    /// Where the queued runs a run's end makes room for are sent, to be
    /// reconciled at once; `None`: they wait for their poll.
    wake: Option<futures::channel::mpsc::UnboundedSender<ObjectRef<PipelineRun>>>,
    /// The status each run was last written with here, until the runs
    /// cache shows it ([`Context::recorded`]).
    written: Mutex<BTreeMap<String, Written>>,
    /// Statuses held back whose only news is steps' start times
    /// ([`crate::coalesce`]).
    deferred: crate::coalesce::Deferrals,
    /// The reconcile slots ([`Settings::concurrency`]), shared fairly
    /// across namespaces ([`crate::fair`]).
    fair: Arc<FairShare>,
}

/// A status this controller wrote, and the run's `resourceVersion` it was
/// computed from: while the cache still shows that version, the cache lags
/// behind the write.
struct Written {
    read: Option<String>,
    status: PipelineRunStatus,
}

impl Context {
    /// A context reporting Events as `c8s-controller` from `instance`.
    pub fn new(client: Client, settings: Settings, instance: impl Into<String>) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_owned(),
            instance: Some(instance.into()),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            fair: FairShare::new(usize::from(settings.concurrency)),
            settings,
            failures: Mutex::new(BTreeMap::new()),
            stores: None,
            metrics: Arc::default(),
            admitting: Mutex::new(BTreeMap::new()),
            ledger: None,
            wake: None,
            written: Mutex::new(BTreeMap::new()),
            deferred: crate::coalesce::Deferrals::default(),
        }
    }

    /// The status `run` was last recorded with: the one written here when the
    /// cache still shows the version it was computed from (the next reconcile,
    /// woken by the pod this one created, often comes before the cache has the
    /// write; from the cached status it would start the run again: a second
    /// status write, and a `startTime` moved), else the cached one.
    fn recorded(&self, run: &PipelineRun) -> PipelineRunStatus {
        let cached = || run.status.clone().unwrap_or_default();
        let Ok(mut written) = self.written.lock() else {
            return cached();
        };
        let key = run_key(run);
        match written.get(&key) {
            Some(w) if w.read.is_some() && w.read == run.metadata.resource_version => w.status.clone(),
            Some(_) => {
                // The cache moved past the version read: it has the write (or a later change).
                written.remove(&key);
                cached()
            }
            None => cached(),
        }
    }

    /// Notes that `status` was written for `run` as it was read.
    fn wrote(&self, run: &PipelineRun, status: &PipelineRunStatus) {
        if let Ok(mut written) = self.written.lock() {
            written.insert(
                run_key(run),
                Written {
                    read: run.metadata.resource_version.clone(),
                    status: status.clone(),
                },
            );
        }
    }

    /// Forgets what was written for the run of `key` (it is gone).
    fn forget_written(&self, key: &str) {
        if let Ok(mut written) = self.written.lock() {
            written.remove(key);
        }
        self.deferred.forget(key);
    }

    /// The admission gate of `namespace`.
    fn admission_gate(&self, namespace: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.admitting.lock() {
            Ok(mut gates) => gates.entry(namespace.to_owned()).or_default().clone(),
            // A poisoned map (a panic elsewhere) still admits, one run at a time.
            Err(poisoned) => poisoned
                .into_inner()
                .entry(namespace.to_owned())
                .or_default()
                .clone(),
        }
    }

    /// The same context recording into `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The same context counting admitted runs from `runs`, the store of
    /// the Controller's run watch ([`crate::ledger`]).
    #[must_use]
    pub fn with_run_store(mut self, runs: kube::runtime::reflector::Store<PipelineRun>) -> Self {
        self.ledger = Some(crate::ledger::Ledger::new(runs));
        self
    }

    /// The same context reading quota limits from `quotas`, the store of a
    /// ResourceQuota watch (with [`Context::with_run_store`]).
    #[must_use]
    pub fn with_quota_store(mut self, quotas: kube::runtime::reflector::Store<ResourceQuota>) -> Self {
        if let Some(ledger) = &mut self.ledger {
            ledger.watch_quotas(quotas);
        }
        self
    }

    /// The same context sending the queued runs a run's end makes room
    /// for to `wake` (with [`Context::with_run_store`]).
    #[must_use]
    pub fn with_wake(
        mut self,
        wake: futures::channel::mpsc::UnboundedSender<ObjectRef<PipelineRun>>,
    ) -> Self {
        self.wake = Some(wake);
        self
    }

    /// The same context reading pods from `stores`.
    #[must_use]
    pub fn with_stores(mut self, stores: Stores) -> Self {
        self.stores = Some(stores);
        self
    }
}

/// Applies the CRDs with server-side apply (idempotent; run at start-up).
pub async fn apply_crds(client: &Client) -> Result<(), Error> {
    let api: Api<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    > = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for crd in crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(&crd)).await?;
    }
    Ok(())
}

/// Writes `status` onto run `name` with server-side apply on the status
/// subresource: only the fields the controller owns, no read-modify-write.
pub async fn patch_status(
    api: &Api<PipelineRun>,
    name: &str,
    status: &PipelineRunStatus,
) -> Result<(), Error> {
    let patch = serde_json::json!({
        "apiVersion": "c8s.dev/v1alpha1",
        "kind": "PipelineRun",
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Runs the controller until `shutdown` completes: waits to hold the Lease
/// [`Settings::lease_name`] in `lease_namespace`, applies the CRDs when
/// `install_crds` (a chart installs them itself), then reconciles every run
/// of every namespace (of one, with [`Settings::namespace`]), renewing the
/// Lease; if it is lost, stops acting and returns an error (the Deployment
/// restarts the pod, which waits for the Lease again).
pub async fn run(
    client: Client,
    settings: Settings,
    lease_namespace: &str,
    identity: &str,
    install_crds: bool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let metrics = Arc::new(Metrics::new());
    run_with_metrics(
        client,
        settings,
        lease_namespace,
        identity,
        install_crds,
        metrics,
        shutdown,
    )
    .await
}

/// [`run`], recording reconciles, step durations and the runs of its cache
/// in `metrics` (see [`crate::metrics`]).
pub async fn run_with_metrics(
    client: Client,
    settings: Settings,
    lease_namespace: &str,
    identity: &str,
    install_crds: bool,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let lease_client = client.clone();
    run_with_lease_client(
        client,
        lease_client,
        settings,
        lease_namespace,
        identity,
        install_crds,
        metrics,
        shutdown,
    )
    .await
}

/// [`run_with_metrics`], taking and renewing the Lease with `lease_client`:
/// a client of its own, so that its renewals do not wait in line behind the
/// reconciles' requests when `client` is rate-limited
/// ([`crate::throttle`]); a renewal that waits 10 s loses the Lease.
#[allow(clippy::too_many_arguments)]
pub async fn run_with_lease_client(
    client: Client,
    lease_client: Client,
    settings: Settings,
    lease_namespace: &str,
    identity: &str,
    install_crds: bool,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let lease = LeaderLease::new(
        Api::<Lease>::namespaced(lease_client, lease_namespace),
        settings.lease_name(),
        identity,
        15,
    );
    while !lease
        .try_acquire_or_renew(k8s_openapi::jiff::Timestamp::now())
        .await?
    {
        tokio::time::sleep(RETRY_PERIOD).await;
    }
    tracing::info!(identity, "holding the leader lease");
    if install_crds {
        apply_crds(&client).await?;
    }
    // One pod watch wakes the runs and fills the cache reconcile reads;
    // finished runs and their pods are left out of both caches.
    let scope = settings.namespace.clone();
    let finished = Arc::new(Finished::new(settings.finished_run_ttl.is_some()));
    let (pods, pod_events) = pod_watch(&client, scope.as_deref(), &pods_config(&settings), &finished);
    metrics.count_cached_pods(pods.clone());
    // The runs' watch as `Controller::new` makes it, its cache also counted in
    // the metrics and read by admission.
    let (runs, run_writer) = reflector::store::<PipelineRun>();
    let (quotas, quota_watch) = quota_watch(&client, scope.as_deref());
    let (wake, woken) = futures::channel::mpsc::unbounded();
    let context = Arc::new(
        Context::new(client.clone(), settings, identity)
            .with_stores(Stores::new(pods))
            .with_run_store(runs.clone())
            .with_quota_store(quotas)
            .with_wake(wake)
            .with_metrics(metrics.clone()),
    );
    let run_events = run_watch(
        &client,
        scope.as_deref(),
        run_writer,
        &context,
        &metrics,
        &finished,
    );
    let watchers = context.settings.concourse.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // Every triggered reconcile starts at once and waits for its slot in
    // `Context::fair`, where namespaces take turns: the Controller's own
    // bound would serve them in the order they were woken.
    let config = kube::runtime::controller::Config::default().concurrency(0);
    let controller = Controller::for_stream(run_events, runs)
        .with_config(config)
        .owns_stream(pod_events)
        .reconcile_on(woken)
        .graceful_shutdown_on(async move {
            let _ = stopped.await;
        })
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                if is_routine(&e) {
                    tracing::debug!("reconcile: {e}");
                } else {
                    tracing::warn!("reconcile: {e}");
                }
            }
        });
    // A replica that cannot renew stops acting at the renew deadline, before
    // the lease can expire and another replica take over: two leaders never act at once.
    let renew = async {
        let mut renewed = std::time::Instant::now();
        loop {
            tokio::time::sleep(RETRY_PERIOD).await;
            let left = RENEW_DEADLINE.saturating_sub(renewed.elapsed());
            let attempt = tokio::time::timeout(
                left,
                lease.try_acquire_or_renew(k8s_openapi::jiff::Timestamp::now()),
            )
            .await;
            match attempt {
                Ok(Ok(true)) => renewed = std::time::Instant::now(),
                Ok(Ok(false)) => return Err(Error::NotLeader(format!("{identity} lost the lease"))),
                Ok(Err(e)) => tracing::warn!("renewing the lease: {e}"),
                Err(_) => tracing::warn!("renewing the lease: no answer"),
            }
            if renewed.elapsed() >= RENEW_DEADLINE {
                return Err(Error::NotLeader(format!(
                    "{identity} could not renew the lease for {} s: stopped acting before it could expire",
                    RENEW_DEADLINE.as_secs()
                )));
            }
        }
    };
    // Concourse pipelines, when asked for: a watcher each, while this replica leads.
    let concourse = async {
        match watchers {
            Some(watchers) => crate::concourse::run(client.clone(), scope.as_deref(), watchers).await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        () = controller => Ok(()),
        () = concourse => Ok(()),
        () = quota_watch => Ok(()),
        e = renew => e,
        () = shutdown => Ok(()),
    };
    let _ = stop.send(());
    let _ = lease.release().await;
    result
}

/// The watch of c8s's pods (label `c8s.dev/run`) in `scope`, slimmed and
/// without the pods of finished runs ([`Finished::pod_event`], and the
/// sweeps that evict those cached when their run ends): the store a
/// reconcile reads step state from, and the touched pods, which wake their runs.
fn pod_watch(
    client: &Client,
    scope: Option<&str>,
    children: &watcher::Config,
    finished: &Arc<Finished>,
) -> (
    Store<Pod>,
    impl futures::Stream<Item = Result<Pod, watcher::Error>> + Send + use<>,
) {
    let (pods, writer) = reflector::store::<Pod>();
    let noted = finished.clone();
    let watch = watcher::watcher(scoped::<Pod>(client, scope), children.clone())
        .modify(slim_pod)
        .filter_map(move |event| {
            futures::future::ready(match event {
                Ok(event) => noted.pod_event(event).map(Ok),
                Err(e) => Some(Err(e)),
            })
        });
    let evictions = finished.sweeps(pods.clone()).map(Ok);
    let events = reflector(writer, futures::stream::select(watch, evictions))
        .default_backoff()
        .touched_objects();
    (pods, events)
}

/// The pod watch's options: the pods of runs (labelled with one), of this
/// controller's instance only, if it has one.
fn pods_config(settings: &Settings) -> watcher::Config {
    match &settings.instance {
        Some(id) => watcher::Config::default().labels(&format!("{RUN_LABEL},{INSTANCE_LABEL}={id}")),
        None => watcher::Config::default().labels(RUN_LABEL),
    }
}

/// The runs' watch's options: the runs of this controller's instance, if any.
fn runs_config(settings: &Settings) -> watcher::Config {
    match settings.run_label_selector() {
        Some(selector) => watcher::Config::default().labels(&selector),
        None => watcher::Config::default(),
    }
}

/// The runs' watch as `Controller::new` makes it, filling `writer` (the
/// store admission reads and the metrics count) with the runs that have
/// not finished ([`Finished::run_event`]), and telling `context` of each
/// run it sees end or vanish ([`run_seen`], [`run_deleted`]: a run that
/// ends leaves the cache as if deleted).
fn run_watch(
    client: &Client,
    scope: Option<&str>,
    writer: reflector::store::Writer<PipelineRun>,
    context: &Arc<Context>,
    metrics: &Metrics,
    finished: &Arc<Finished>,
) -> impl futures::Stream<Item = Result<PipelineRun, watcher::Error>> + use<> {
    let runs = writer.as_reader();
    let seen = (context.clone(), runs.clone());
    let noted = finished.clone();
    let run_events = reflector(
        writer,
        watcher::watcher(
            scoped::<PipelineRun>(client, scope),
            runs_config(&context.settings),
        )
        .modify(slim_run)
        // Before the store takes the event, so it still holds the run as it was.
        .inspect(move |event| {
            if let Ok(watcher::Event::Apply(run)) = event {
                run_seen(run, &seen.1, &seen.0);
            }
        })
        .filter_map(move |event| {
            futures::future::ready(match event {
                Ok(event) => noted.run_event(event).map(Ok),
                Err(e) => Some(Err(e)),
            })
        }),
    );
    let deletions = context.clone();
    metrics
        .count_runs(runs, finished.clone(), run_events)
        .inspect(move |event| {
            if let Ok(watcher::Event::Delete(run)) = event {
                run_deleted(run, &deletions);
            }
        })
        .applied_objects()
}

/// The store of ResourceQuotas admission reads limits from, and the watch
/// that fills it (retrying with backoff; it never ends on its own).
fn quota_watch(
    client: &Client,
    scope: Option<&str>,
) -> (
    kube::runtime::reflector::Store<ResourceQuota>,
    impl std::future::Future<Output = ()> + use<>,
) {
    let (quotas, writer) = reflector::store::<ResourceQuota>();
    let watch = reflector(
        writer,
        watcher::watcher(scoped::<ResourceQuota>(client, scope), watcher::Config::default())
            .modify(strip_managed_fields),
    )
    .default_backoff()
    .for_each(|_| futures::future::ready(()));
    let forever = async move {
        watch.await;
        std::future::pending::<()>().await;
    };
    (quotas, forever)
}

/// The objects of kind `K` of `namespace`, or of every namespace: what the
/// controller watches, and what the dashboard shows.
pub(crate) fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The longest one reconcile may take: longer than a delete waits for its
/// object to go (120 s), short enough that a request that never answers
/// cannot stall a run. A reconcile is level-triggered and safe to stop at any
/// point, so the cut one is simply retried.
pub const RECONCILE_TIMEOUT: Duration = Duration::from_secs(150);

/// A reconcile slower than this is logged as a warning.
const SLOW_RECONCILE: Duration = Duration::from_secs(10);

/// One reconcile: the finalizer first, then [`reconcile_run`]; at most
/// [`RECONCILE_TIMEOUT`].
pub async fn reconcile(run: Arc<PipelineRun>, ctx: Arc<Context>) -> Result<Action, Error> {
    let waiting = std::time::Instant::now();
    let _slot = ctx
        .fair
        .acquire(run.metadata.namespace.as_deref().unwrap_or_default())
        .await;
    ctx.metrics.observe_reconcile_wait(waiting.elapsed());
    // The run may have changed or gone while this reconcile waited (minutes,
    // behind a flood): it reconciles the run as the cache holds it now.
    let run = match ctx.ledger.as_ref().and_then(|ledger| ledger.latest(&run)) {
        Some(Some(latest)) => latest,
        Some(None) => {
            tracing::debug!(run = %run_key(&run), "deleted while its reconcile waited");
            return Ok(Action::await_change());
        }
        None => run,
    };
    // Boxed: thousands of reconciles may wait for a slot at once, each
    // holding its run and the wait, not the state of a whole reconcile.
    Box::pin(reconcile_now(run, ctx)).await
}

/// [`reconcile`] once it has its slot.
async fn reconcile_now(run: Arc<PipelineRun>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = run.namespace().unwrap_or_default();
    let api = Api::<PipelineRun>::namespaced(ctx.client.clone(), &namespace);
    let name = run.name_any();
    let key = format!("{namespace}/{name}");
    let started = std::time::Instant::now();
    tracing::debug!(run = %key, "reconciling");
    let reference = run.object_ref(&());
    let result = reconcile_in_time(&api, run, &ctx, &key, started).await;
    match &result {
        Ok(_) => {
            if let Ok(mut failures) = ctx.failures.lock() {
                failures.remove(&key);
            }
        }
        // A replica that is not the leader says nothing on the run.
        Err(Error::NotLeader(_)) => {}
        // Said where `kubectl describe` shows it, not only in the log.
        Err(e) => {
            let event = Event {
                type_: EventType::Warning,
                reason: "ReconcileError".into(),
                note: Some(e.to_string()),
                action: "Reconcile".into(),
                secondary: None,
            };
            if let Err(publish) = ctx.recorder.publish(&event, &reference).await {
                tracing::warn!(run = %key, "recording the reconcile error as an Event: {publish}");
            }
        }
    }
    result
}

/// One reconcile of `run`, cut at [`RECONCILE_TIMEOUT`].
async fn reconcile_in_time(
    api: &Api<PipelineRun>,
    run: Arc<PipelineRun>,
    ctx: &Context,
    key: &str,
    started: std::time::Instant,
) -> Result<Action, Error> {
    let reconciled = tokio::time::timeout(RECONCILE_TIMEOUT, async {
        if run.metadata.deletion_timestamp.is_some() {
            release_finalizer(api, &run).await
        } else {
            apply(&run, ctx).await
        }
    })
    .await;
    let took = started.elapsed();
    ctx.metrics.observe_reconcile(took);
    let reconciled = reconciled.map_err(|_| {
        Error::TimedOut(format!(
            "the reconcile of {key} took longer than {} s",
            RECONCILE_TIMEOUT.as_secs()
        ))
    })?;
    if took > SLOW_RECONCILE {
        tracing::warn!(run = %key, "a reconcile took {took:?}");
    } else {
        tracing::debug!(run = %key, "reconciled in {took:?}");
    }
    reconciled
}

/// Whether an error the Controller's stream reports is routine, not a
/// warning: a requeue that fires for a run deleted since (every run deleted
/// by `--finished-run-ttl` leaves one; kube-rs issue 1167 explains why
/// these happen), or a reconcile failure, which [`error_policy`] has
/// already logged as a warning.
fn is_routine(error: &kube::runtime::controller::Error<Error, watcher::Error>) -> bool {
    use kube::runtime::controller::Error as ControllerError;
    matches!(
        error,
        ControllerError::ObjectNotFound(_) | ControllerError::ReconcilerFailed(..)
    )
}

/// Backs off exponentially per run: 5 s, 10 s, 20 s... at most 5 minutes.
pub fn error_policy(run: Arc<PipelineRun>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = format!("{}/{}", run.namespace().unwrap_or_default(), run.name_any());
    let failures = ctx.failures.lock().map_or(0, |mut f| {
        let n = f.entry(key).or_default();
        *n = n.saturating_add(1);
        *n
    });
    tracing::warn!(run = %run.name_any(), failures, "reconcile failed: {error}");
    ctx.metrics.count_error(error);
    Action::requeue(backoff(failures))
}

/// The wait after `failures` consecutive failures.
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(6);
    Duration::from_secs(5u64 << exponent).min(Duration::from_secs(300))
}

async fn apply(run: &PipelineRun, ctx: &Context) -> Result<Action, Error> {
    let namespace = run.namespace().unwrap_or_default();
    let name = run.name_any();
    let on_server = ctx.recorded(run);
    if on_server.phase.is_finished() {
        ctx.metrics.forget_run(&run_key(run));
        return expire(run, &on_server, ctx).await;
    }
    // What this reconcile starts from: a status held back, if any, else the server's.
    let held = ctx.deferred.held(&run_key(run), &on_server);
    let recorded = held.as_ref().unwrap_or(&on_server);
    let admitting = recorded.phase == RunPhase::Pending && !run.spec.cancelled;
    let no_room = admitting && no_room(ctx, &namespace, &name).await;
    if no_room && queued_by_limit(recorded) {
        // Queued already and still no room: nothing changes.
        return Ok(Action::requeue(ctx.settings.poll));
    }
    let mut status = recorded.clone();
    let steps = match run_steps_of(run, ctx, &namespace, &name, &mut status).await {
        Ok(steps) => steps,
        // A run that can never be rendered fails once, saying why, instead of
        // being retried (and logged) forever with no status.
        Err(e @ (Error::Pipeline(_) | Error::Render(_) | Error::MissingPipeline(_))) => {
            return fail_invalid(run, ctx, &namespace, &name, status, &e).await;
        }
        Err(e) => return Err(e),
    };
    // Only a Pending run is admitted; a running one needs neither the run list nor the quota.
    // The gate is held until the status is written, so the next Pending run counts this one.
    // A run with no room is queued without it: the gate guards a start, not a wait.
    let _gate = match admitting && !no_room {
        true => Some(ctx.admission_gate(&namespace).lock_owned().await),
        false => None,
    };
    let admission = if admitting {
        admission(ctx, &namespace, &name).await?
    } else {
        Admission::default()
    };
    let cluster = KubeCluster::new(ctx.client.clone(), namespace.clone());
    let view = RunView {
        name: &name,
        generation: run.metadata.generation,
        started: started_at(&status, cluster.now()),
        spec: &run.spec,
        status: &status,
    };
    let done = match &ctx.stores {
        Some(stores) if stores.ready().await => {
            let cached = CachedCluster::new(cluster.clone(), stores.clone());
            reconcile_run(&cached, &view, &steps, &admission, &ctx.settings).await?
        }
        _ => reconcile_run(&cluster, &view, &steps, &admission, &ctx.settings).await?,
    };
    let mut done = done;
    if let Some(archive) = &ctx.settings.archive {
        let secrets = crate::archive::KubeSecrets::new(ctx.client.clone(), &namespace);
        crate::archive::archive_ended_steps(
            &cluster,
            &secrets,
            &archive.0,
            (&namespace, &name),
            &steps,
            &mut done.status,
        )
        .await;
    }
    let api = Api::<PipelineRun>::namespaced(ctx.client.clone(), &namespace);
    if done.status != on_server
        && done.events.is_empty()
        && let Some(wait) = ctx.deferred.hold(&run_key(run), &on_server, &done.status)
    {
        // Only steps' start times are new: written with the next change, or after `wait`.
        let next = done.requeue_after.map_or(wait, |at| at.min(wait));
        return Ok(Action::requeue(next));
    }
    if done.status != on_server {
        patch_status(&api, &name, &done.status).await?;
        ctx.deferred.forget(&run_key(run));
        ctx.wrote(run, &done.status);
        // Counted by the next admission (the gate is still held) before the
        // runs cache shows it.
        if admitting
            && done.status.phase == RunPhase::Running
            && let Some(ledger) = &ctx.ledger
        {
            ledger.admitted(&namespace, &name);
        }
        let now = k8s_openapi::jiff::Timestamp::now();
        ctx.metrics
            .observe_steps(&run_key(run), &on_server, &done.status, now);
        if on_server.phase == RunPhase::Running && done.status.phase.is_finished() {
            wake_queued(ctx, &namespace, &name);
        }
    }
    publish_events(ctx, run, &namespace, done.events).await;
    Ok(done
        .requeue_after
        .map_or_else(Action::await_change, Action::requeue))
}

/// Records `events` on `run` of `namespace`; a failure is logged, not
/// returned (the status is written already).
async fn publish_events(ctx: &Context, run: &PipelineRun, namespace: &str, events: Vec<RunEvent>) {
    let reference = run.object_ref(&());
    for RunEvent { reason, note, pod } in events {
        let event = Event {
            type_: if reason.contains("Failed") {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason,
            note: Some(note),
            action: "Reconcile".into(),
            secondary: pod.map(|pod| ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod),
                namespace: Some(namespace.to_owned()),
                ..ObjectReference::default()
            }),
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!("recording an event on {}: {e}", run.name_any());
        }
    }
}

/// A finished run under `--finished-run-ttl`: deleted once its time to
/// live has passed since it finished (its pods go by garbage collection,
/// their owner references name it), else looked at again then. One write
/// per run, by the rule of Kubernetes' TTL-after-finished controller
/// (<https://kubernetes.io/docs/concepts/workloads/controllers/ttlafterfinished/>):
/// the clock starts when the run finished, and a controller restarted
/// later deletes what expired meanwhile (every run is reconciled when the
/// watch starts).
async fn expire(run: &PipelineRun, status: &PipelineRunStatus, ctx: &Context) -> Result<Action, Error> {
    let Some(ttl) = ctx.settings.finished_run_ttl else {
        return Ok(Action::await_change());
    };
    let finished = status
        .completion_time
        .as_deref()
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .or_else(|| run.metadata.creation_timestamp.as_ref().map(|t| t.0));
    if let Some(left) = ttl_left(finished, ttl, k8s_openapi::jiff::Timestamp::now()) {
        return Ok(Action::requeue(left));
    }
    let api = Api::<PipelineRun>::namespaced(ctx.client.clone(), &run.namespace().unwrap_or_default());
    let params = kube::api::DeleteParams {
        // This run, not one created again under its name since.
        preconditions: run.metadata.uid.clone().map(|uid| kube::api::Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        propagation_policy: Some(kube::api::PropagationPolicy::Background),
        ..kube::api::DeleteParams::default()
    };
    match api.delete(&run.name_any(), &params).await {
        Ok(_) => {}
        // Gone already, or another run under the name: nothing to delete.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    tracing::debug!(run = %run.name_any(), "deleted: finished longer ago than --finished-run-ttl");
    Ok(Action::await_change())
}

/// How long a run that finished at `finished` has left to live under
/// `ttl` at `now`; `None`: it has expired (or its finish time is unknown).
pub(crate) fn ttl_left(
    finished: Option<k8s_openapi::jiff::Timestamp>,
    ttl: Duration,
    now: k8s_openapi::jiff::Timestamp,
) -> Option<Duration> {
    let ttl = k8s_openapi::jiff::SignedDuration::try_from(ttl).ok()?;
    let expires = finished?.checked_add(ttl).ok()?;
    let left = now.duration_until(expires);
    match left.is_positive() {
        true => Duration::try_from(left).ok(),
        false => None,
    }
}

/// Whether the namespace of run `name` has no room for it by the runs
/// cache. Such a run is queued without waiting at the namespace's admission
/// gate, and one queued already ends its reconcile at once, before it
/// renders its steps. Without this, the Pending runs of a namespace (5,000
/// in 10 namespaces, in the controller benchmark) each waited their turn at
/// the gate only to be told to wait, and hundreds of reconciles ran past
/// their time limit. A count that may be stale low is harmless: the run
/// then goes on to the gate and is counted again there.
async fn no_room(ctx: &Context, namespace: &str, name: &str) -> bool {
    let Some(ledger) = &ctx.ledger else {
        return false;
    };
    ledger
        .running(namespace, name)
        .await
        .is_some_and(|running| running >= ctx.settings.max_running_per_namespace)
}

/// Whether `status` says the run waits for its namespace's limit.
fn queued_by_limit(status: &PipelineRunStatus) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == "Queued" && c.status == "True" && c.reason == "NamespaceLimit")
}

/// Run `name` of `namespace` ended: the oldest queued runs of the
/// namespace that its slot (and any other free one) makes room for are
/// reconciled now ([`crate::ledger`]).
fn wake_queued(ctx: &Context, namespace: &str, name: &str) {
    let (Some(ledger), Some(wake)) = (&ctx.ledger, &ctx.wake) else {
        return;
    };
    ledger.ended(namespace, name);
    let woken = ledger.queued(namespace, ctx.settings.max_running_per_namespace);
    tracing::debug!(run = name, namespace, woken = ?woken.iter().map(|r| &r.name).collect::<Vec<_>>(), "run ended; queued runs woken");
    for run in woken {
        // Closed only when the Controller stopped: nothing left to wake.
        let _ = wake.unbounded_send(run);
    }
}

/// The steps of `run`: the pipeline its status keeps, or, the first time,
/// its pipeline (embedded, or the Pipeline it names) — then kept in
/// `status.pipelineSpec` — rendered for its namespace, owned by the run.
async fn run_steps_of(
    run: &PipelineRun,
    ctx: &Context,
    namespace: &str,
    name: &str,
    status: &mut PipelineRunStatus,
) -> Result<crate::steps::RunSteps, Error> {
    // Resolved once; later reconciles render the kept pipeline in place, copying nothing.
    if status.pipeline_spec.is_none() {
        status.pipeline_spec = Some(resolve_pipeline(run, ctx, namespace, name).await?);
    }
    let pipeline = status
        .pipeline_spec
        .as_ref()
        .ok_or_else(|| Error::MissingPipeline(format!("run {name} has no pipeline")))?;
    let owner = owner_of(run).ok_or_else(|| Error::Pipeline("the run has no uid yet".into()))?;
    let mut steps = run_steps(pipeline, &run_context(run, pipeline, namespace), owner, false)?;
    // The pods of an instance's runs carry its label, so that its pod
    // watch holds them and no other instance's.
    if let Some(instance) = &ctx.settings.instance {
        for step in &mut steps.steps {
            step.object.set_label(INSTANCE_LABEL, instance);
        }
    }
    Ok(steps)
}

/// The pipeline `run` names: embedded, or the Pipeline of its `pipelineRef`.
async fn resolve_pipeline(
    run: &PipelineRun,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<c8s_pipeline_model::Pipeline, Error> {
    Ok(match (&run.spec.pipeline, &run.spec.pipeline_ref) {
        (Some(embedded), _) => embedded.clone(),
        (None, Some(reference)) => {
            let pipelines = Api::<Pipeline>::namespaced(ctx.client.clone(), namespace);
            match pipelines.get_opt(reference).await? {
                Some(found) => found.spec.pipeline,
                None => {
                    return Err(Error::MissingPipeline(format!(
                        "run {name}: Pipeline {reference:?} not found in namespace {namespace}"
                    )));
                }
            }
        }
        (None, None) => {
            return Err(Error::MissingPipeline(format!(
                "run {name} has neither pipelineRef nor pipeline"
            )));
        }
    })
}

/// Ends a run whose spec can never run (a commit that is not a full object
/// name, a pipeline c8s rejects): phase Failed, condition `Succeeded=False` with
/// reason `InvalidSpec` and the error, and a Warning Event — as Tekton fails
/// a PipelineRun whose spec does not validate.
async fn fail_invalid(
    run: &PipelineRun,
    ctx: &Context,
    namespace: &str,
    name: &str,
    mut status: PipelineRunStatus,
    error: &Error,
) -> Result<Action, Error> {
    let now = k8s_openapi::jiff::Timestamp::now();
    let message = error.to_string();
    status.phase = RunPhase::Failed;
    status.observed_generation = run.metadata.generation;
    status.completion_time = Some(now.to_string());
    crate::status::set_condition(
        &mut status,
        crate::reconcile::SUCCEEDED,
        "False",
        "InvalidSpec",
        &message,
        now,
    );
    let api = Api::<PipelineRun>::namespaced(ctx.client.clone(), namespace);
    patch_status(&api, name, &status).await?;
    let event = Event {
        type_: EventType::Warning,
        reason: "RunInvalidSpec".into(),
        note: Some(message),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &run.object_ref(&())).await {
        tracing::warn!("recording an event on {name}: {e}");
    }
    Ok(Action::await_change())
}

/// A run being deleted that still carries [`FINALIZER`] (put there by an
/// earlier controller): the finalizer is removed, conditionally on the
/// version read (a JSON merge patch carrying `resourceVersion` is refused
/// with 409 if the run changed). Its pods need nothing from here: they are
/// the run's dependents, deleted by the garbage collector.
async fn release_finalizer(api: &Api<PipelineRun>, run: &PipelineRun) -> Result<Action, Error> {
    let finalizers = run.finalizers();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let kept: Vec<&String> = finalizers.iter().filter(|f| *f != FINALIZER).collect();
    let patch = serde_json::json!({
        "metadata": {
            "finalizers": kept,
            "resourceVersion": run.metadata.resource_version,
        }
    });
    api.patch(&run.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(Action::await_change())
}

/// What a run's deletion leaves to do here, called for each deletion the
/// run watch reports: forget it, and if it was Running, its slot is free
/// for the oldest queued runs of its namespace.
pub fn run_deleted(run: &PipelineRun, ctx: &Context) {
    ctx.metrics.forget_run(&run_key(run));
    ctx.forget_written(&run_key(run));
    if run.status.as_ref().is_some_and(|s| s.phase == RunPhase::Running) {
        wake_queued(ctx, &run.namespace().unwrap_or_default(), &run.name_any());
    }
}

/// What the run watch's report of `run` changes here, called before the
/// store `runs` takes it: a run the cache held Running and now sees
/// finished frees its slot. A run this controller ended woke the queue
/// already, when it wrote the final status; this second wake covers a run
/// ended elsewhere (by a replica before a failover) and a count made from a
/// cache that lagged when the run ended. Waking a run twice costs nothing:
/// the Controller's scheduler keeps one entry per run.
pub fn run_seen(run: &PipelineRun, runs: &Store<PipelineRun>, ctx: &Context) {
    let finished = run.status.as_ref().is_some_and(|s| s.phase.is_finished());
    let was_running = || {
        runs.get(&ObjectRef::from_obj(run))
            .and_then(|cached| cached.status.as_ref().map(|s| s.phase))
            == Some(RunPhase::Running)
    };
    if finished && was_running() {
        wake_queued(ctx, &run.namespace().unwrap_or_default(), &run.name_any());
    }
}

/// The key of `run` in the metrics' memory: its uid (a run deleted and
/// created again under its name is another run).
fn run_key(run: &PipelineRun) -> String {
    run.metadata
        .uid
        .clone()
        .unwrap_or_else(|| format!("{}/{}", run.namespace().unwrap_or_default(), run.name_any()))
}

/// How many other runs of `namespace` are Running, and its quota.
async fn admission(ctx: &Context, namespace: &str, name: &str) -> Result<Admission, Error> {
    let ledger = ctx.ledger.as_ref();
    let cached = match ledger {
        Some(ledger) => ledger.running(namespace, name).await,
        None => None,
    };
    let running_in_namespace = match cached {
        Some(count) => count,
        None => {
            let mut params = ListParams::default();
            if let Some(selector) = ctx.settings.run_label_selector() {
                params = params.labels(&selector);
            }
            let runs = Api::<PipelineRun>::namespaced(ctx.client.clone(), namespace)
                .list(&params)
                .await?;
            runs.items
                .iter()
                .filter(|r| r.name_any() != name)
                .filter(|r| r.status.as_ref().is_some_and(|s| s.phase == RunPhase::Running))
                .count()
        }
    };
    let quota = match ledger.and_then(|l| l.quota(namespace)) {
        Some(quota) => quota,
        None => {
            let quotas = Api::<ResourceQuota>::namespaced(ctx.client.clone(), namespace)
                .list(&ListParams::default())
                .await?;
            let quota = quota_of(&quotas.items);
            if let Some(ledger) = ledger {
                ledger.keep_quota(namespace, quota.clone());
            }
            quota
        }
    };
    Ok(Admission {
        running_in_namespace,
        quota,
    })
}

/// Drops an object's `metadata.managedFields` before it is cached: the
/// controller never reads them, and on a pod written by several managers
/// (the controller, the scheduler, the kubelet) they are a large part of the
/// object. kube-runtime's docs suggest this for reflectors
/// (<https://kube.rs/controllers/optimization/>, "Pruning Fields").
pub(crate) fn strip_managed_fields<K: kube::Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// What the controller keeps of a pod in its cache: its metadata without
/// annotations and its status. A reconcile reads a step's state from the
/// status and finds the pod by name, labels and owner; the spec (most of a
/// pod: containers, env, volumes) is never read from the cache (the log
/// archive masks with the rendered step's spec).
pub(crate) fn slim_pod(pod: &mut Pod) {
    strip_managed_fields(pod);
    pod.metadata.annotations = None;
    pod.spec = None;
}

/// What the controller keeps of a run in its cache: no annotations (kubectl's
/// `last-applied-configuration` repeats the whole spec), and of a finished
/// run only what admission, the queue, the metrics and the TTL read — its
/// name, creation time, phase, conditions and completion time. A finished
/// run is never reconciled again, except to be deleted under
/// `--finished-run-ttl` (without it [`crate::finished`] leaves finished runs
/// out of the cache altogether), so its pipeline and step statuses would
/// only hold memory.
pub(crate) fn slim_run(run: &mut PipelineRun) {
    strip_managed_fields(run);
    run.metadata.annotations = None;
    if let Some(status) = run.status.as_mut().filter(|s| s.phase.is_finished()) {
        status.pipeline_spec = None;
        status.steps = Vec::new();
        run.spec.pipeline = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::PipelineRunSpec;

    #[test]
    fn a_requeue_of_a_deleted_run_is_routine_and_a_dead_queue_is_not() {
        use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
        use kube::runtime::controller::Error as ControllerError;
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("c8s.dev", "v1alpha1", "PipelineRun"));
        let gone = ObjectRef::<DynamicObject>::new_with("r", resource).within("ns");
        assert!(is_routine(&ControllerError::ObjectNotFound(Box::new(
            gone.clone()
        ))));
        assert!(is_routine(&ControllerError::ReconcilerFailed(
            Error::TimedOut("slow".into()),
            Box::new(gone)
        )));
        let queue = ControllerError::QueueError(watcher::Error::NoResourceVersion);
        assert!(!is_routine(&queue));
    }

    fn run(phase: RunPhase) -> PipelineRun {
        let pipeline: c8s_pipeline_model::Pipeline =
            serde_json::from_value(serde_json::json!({"name": "p", "repository": "https://example.com/p.git", "steps": [{"name": "a", "image": "busybox"}]}))
                .unwrap_or_else(|e| panic!("{e}"));
        let mut run = PipelineRun::new(
            "r",
            PipelineRunSpec {
                pipeline: Some(pipeline.clone()),
                ..PipelineRunSpec::default()
            },
        );
        run.metadata.annotations = Some(
            [(
                "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
                "{}".to_owned(),
            )]
            .into(),
        );
        run.status = Some(PipelineRunStatus {
            phase,
            pipeline_spec: Some(pipeline),
            steps: vec![crate::crd::StepRunStatus::default()],
            ..PipelineRunStatus::default()
        });
        run
    }

    #[test]
    fn a_finished_run_is_cached_without_its_pipeline_and_steps_a_running_one_whole() {
        let mut running = run(RunPhase::Running);
        slim_run(&mut running);
        assert!(running.metadata.annotations.is_none());
        assert!(running.spec.pipeline.is_some());
        let status = running.status.as_ref().unwrap_or_else(|| panic!("status"));
        assert!(status.pipeline_spec.is_some() && status.steps.len() == 1);
        for phase in [RunPhase::Succeeded, RunPhase::Failed, RunPhase::Cancelled] {
            let mut done = run(phase);
            slim_run(&mut done);
            let status = done.status.as_ref().unwrap_or_else(|| panic!("status"));
            assert!(done.spec.pipeline.is_none(), "{phase:?}");
            assert!(
                status.pipeline_spec.is_none() && status.steps.is_empty(),
                "{phase:?}"
            );
            assert_eq!(status.phase, phase);
        }
    }

    #[tokio::test]
    async fn a_reconcile_waiting_for_its_slot_holds_its_run_not_a_whole_reconcile() {
        // Every woken run's reconcile exists while it waits for a slot (5,000
        // at once in the controller benchmark); unboxed, each was 4,272 bytes.
        let (client, _requests) = c8s_kube::mock::client("ci", |_| {
            c8s_kube::mock::Answer::Json(500, serde_json::json!({"message": "no request expected"}))
        });
        let ctx = Arc::new(Context::new(client, Settings::default(), "x"));
        let waiting = reconcile(Arc::new(run(RunPhase::Pending)), ctx);
        let size = std::mem::size_of_val(&waiting);
        assert!(size <= 512, "a waiting reconcile is {size} bytes");
    }

    #[tokio::test]
    async fn a_run_deleted_while_its_reconcile_waited_is_not_reconciled() {
        use kube::runtime::watcher::Event;
        let (client, requests) = c8s_kube::mock::client("ci", |_| {
            c8s_kube::mock::Answer::Json(500, serde_json::json!({"message": "no request expected"}))
        });
        let (store, mut writer) = kube::runtime::reflector::store::<PipelineRun>();
        let ctx = Arc::new(Context::new(client, Settings::default(), "x").with_run_store(store));
        let mut gone = run(RunPhase::Pending);
        gone.metadata.namespace = Some("ci".into());
        gone.metadata.uid = Some("uid-1".into());
        // The cache had its first list, and the run is no longer in it.
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitDone);
        let reconciled = reconcile(Arc::new(gone), ctx).await;
        assert!(reconciled.is_ok(), "{reconciled:?}");
        assert!(
            c8s_kube::mock::seen(&requests).is_empty(),
            "{:?}",
            c8s_kube::mock::seen(&requests)
        );
    }

    #[tokio::test]
    async fn a_namespace_with_no_room_is_seen_from_the_cache_alone() {
        use kube::runtime::watcher::Event;
        let (client, _requests) = c8s_kube::mock::client("ci", |_| {
            c8s_kube::mock::Answer::Json(500, serde_json::json!({"message": "no request expected"}))
        });
        let (store, mut writer) = kube::runtime::reflector::store::<PipelineRun>();
        let ctx = Context::new(client, Settings::default(), "x").with_run_store(store);
        let limit = ctx.settings.max_running_per_namespace;
        let in_ns = |name: String, phase| {
            let mut r = run(phase);
            r.metadata.name = Some(name);
            r.metadata.namespace = Some("ci".into());
            r
        };
        // Before the cache's first list nothing is known: the gate decides.
        assert!(!no_room(&ctx, "ci", "w").await);
        writer.apply_watcher_event(&Event::Init);
        for i in 0..limit {
            writer.apply_watcher_event(&Event::InitApply(in_ns(format!("r{i}"), RunPhase::Running)));
        }
        writer.apply_watcher_event(&Event::InitDone);
        assert!(no_room(&ctx, "ci", "w").await);
        assert!(!no_room(&ctx, "other", "w").await);
        // A slot free: the run goes on to the gate.
        writer.apply_watcher_event(&Event::Apply(in_ns("r0".into(), RunPhase::Succeeded)));
        assert!(!no_room(&ctx, "ci", "w").await);
        let now = k8s_openapi::jiff::Timestamp::UNIX_EPOCH;
        let mut status = PipelineRunStatus::default();
        assert!(!queued_by_limit(&status));
        crate::status::set_condition(&mut status, "Queued", "True", "QuotaExceeded", "waits", now);
        assert!(!queued_by_limit(&status), "the quota is read again");
        crate::status::set_condition(&mut status, "Queued", "True", "NamespaceLimit", "waits", now);
        assert!(queued_by_limit(&status));
    }

    #[test]
    fn a_finished_run_lives_its_ttl_from_when_it_finished() {
        let at = |s: i64| k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + s).ok();
        let ttl = Duration::from_secs(60);
        let now = at(100).unwrap_or_else(|| panic!("time"));
        assert_eq!(ttl_left(at(50), ttl, now), Some(Duration::from_secs(10)));
        assert_eq!(ttl_left(at(40), ttl, now), None, "expired just now");
        assert_eq!(ttl_left(at(0), ttl, now), None);
        assert_eq!(ttl_left(None, ttl, now), None, "no finish time: expired");
        assert_eq!(ttl_left(at(100), Duration::ZERO, now), None, "0: deleted at once");
    }

    #[tokio::test]
    async fn a_run_the_cache_sees_finish_wakes_the_oldest_queued_run() {
        use kube::runtime::watcher::Event;
        let (client, _requests) = c8s_kube::mock::client("ci", |_| {
            c8s_kube::mock::Answer::Json(500, serde_json::json!({"message": "no request expected"}))
        });
        let (store, mut writer) = kube::runtime::reflector::store::<PipelineRun>();
        let (wake, mut woken) = futures::channel::mpsc::unbounded();
        let settings = Settings {
            max_running_per_namespace: 1,
            ..Settings::default()
        };
        let ctx = Context::new(client, settings, "x")
            .with_run_store(store.clone())
            .with_wake(wake);
        let in_ns = |name: &str, phase| {
            let mut r = run(phase);
            r.metadata.name = Some(name.into());
            r.metadata.namespace = Some("ci".into());
            r
        };
        writer.apply_watcher_event(&Event::Init);
        for r in [in_ns("r1", RunPhase::Running), in_ns("q1", RunPhase::Pending)] {
            writer.apply_watcher_event(&Event::InitApply(r));
        }
        writer.apply_watcher_event(&Event::InitDone);
        // A change that is not an end wakes nothing.
        run_seen(&in_ns("r1", RunPhase::Running), &store, &ctx);
        run_seen(&in_ns("q1", RunPhase::Pending), &store, &ctx);
        assert!(woken.try_recv().is_err(), "nothing woken");
        // r1 ended elsewhere: the watch reports it finished, the store still holds it Running.
        run_seen(&in_ns("r1", RunPhase::Succeeded), &store, &ctx);
        let first = woken.try_recv().ok().map(|r| r.name);
        assert_eq!(first.as_deref(), Some("q1"));
        // Seen again once the store has it finished: no second end.
        writer.apply_watcher_event(&Event::Apply(in_ns("r1", RunPhase::Succeeded)));
        run_seen(&in_ns("r1", RunPhase::Succeeded), &store, &ctx);
        assert!(woken.try_recv().is_err(), "woken once");
    }

    #[test]
    fn a_pod_is_cached_without_its_spec() {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "labels": {"c8s.dev/run": "r"}, "annotations": {"a": "b"}},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]},
            "status": {"phase": "Running"}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        slim_pod(&mut pod);
        assert!(pod.spec.is_none() && pod.metadata.annotations.is_none());
        assert_eq!(pod.labels().get("c8s.dev/run").map(String::as_str), Some("r"));
        assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Running"));
    }
}

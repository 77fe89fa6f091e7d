//! The kube-runtime `Controller` on `PipelineRun`: owns the run's Pods
//! (their changes wake the run; steps are Pods, so no Job is watched), keeps a finalizer so a deleted run is
//! cancelled and cleaned first, writes status with server-side apply, records
//! Events, requeues for deadlines and backs off on errors. It acts only while
//! this replica holds the leader [`LeaderLease`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use c8s_kube::{Cluster, KubeCluster, RUN_LABEL};
use c8s_pipeline_model::resources::ResourceList;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, ResourceQuota};
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{self, ObjectRef, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use crate::cache::{CachedCluster, Stores};
use crate::crd::{Pipeline, PipelineRun, PipelineRunStatus, RunPhase, crds};
use crate::error::Error;
use crate::lease::{LeaderLease, RENEW_DEADLINE, RETRY_PERIOD};
use crate::metrics::Metrics;
use crate::reconcile::{Admission, RunEvent, RunView, Settings, reconcile_run, run_selector, started_at};
use crate::steps::{owner_of, run_context, run_steps};

/// The field manager of every server-side apply the controller makes.
pub const FIELD_MANAGER: &str = "c8s-controller";
/// The finalizer the controller keeps on every run until it cleaned up.
pub const FINALIZER: &str = "c8s.dev/cleanup";

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
            settings,
            failures: Mutex::new(BTreeMap::new()),
            stores: None,
            metrics: Arc::default(),
            admitting: Mutex::new(BTreeMap::new()),
            ledger: None,
            wake: None,
        }
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
/// `c8s-controller` in `lease_namespace`, applies the CRDs when
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
        FIELD_MANAGER,
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
    // One pod watch wakes the runs and fills the cache reconcile reads.
    let scope = settings.namespace.clone();
    let (pods, pod_writer) = reflector::store::<Pod>();
    let children = watcher::Config::default().labels(RUN_LABEL);
    let pod_events = reflector(
        pod_writer,
        watcher::watcher(scoped::<Pod>(&client, scope.as_deref()), children).modify(strip_managed_fields),
    )
    .default_backoff()
    .touched_objects();
    // The runs' watch as `Controller::new` makes it, its cache also counted in
    // the metrics and read by admission.
    let (runs, run_writer) = reflector::store::<PipelineRun>();
    let (wake, woken) = futures::channel::mpsc::unbounded();
    let context = Arc::new(
        Context::new(client.clone(), settings, identity)
            .with_stores(Stores::new(pods))
            .with_run_store(runs.clone())
            .with_wake(wake)
            .with_metrics(metrics.clone()),
    );
    let run_events = reflector(
        run_writer,
        watcher::watcher(
            scoped::<PipelineRun>(&client, scope.as_deref()),
            watcher::Config::default(),
        )
        .modify(strip_managed_fields),
    );
    let run_events = metrics.count_runs(runs.clone(), run_events).applied_objects();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = Controller::for_stream(run_events, runs)
        .owns_stream(pod_events)
        .reconcile_on(woken)
        .graceful_shutdown_on(async move {
            let _ = stopped.await;
        })
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::warn!("reconcile: {e}");
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
    let result = tokio::select! {
        () = controller => Ok(()),
        e = renew => e,
        () = shutdown => Ok(()),
    };
    let _ = stop.send(());
    let _ = lease.release().await;
    result
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
    let reconciled = tokio::time::timeout(
        RECONCILE_TIMEOUT,
        finalizer(api, FINALIZER, run, |event| async {
            match event {
                Finalizer::Apply(run) => apply(&run, ctx).await,
                Finalizer::Cleanup(run) => cleanup(&run, ctx).await,
            }
        }),
    )
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
    reconciled.map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Pipeline(other.to_string()),
    })
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
    let recorded = run.status.clone().unwrap_or_default();
    if recorded.phase.is_finished() {
        ctx.metrics.forget_run(&run_key(run));
        return Ok(Action::await_change());
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
    let admitting = status.phase == RunPhase::Pending && !run.spec.cancelled;
    let _gate = match admitting {
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
    if done.status != recorded {
        patch_status(&api, &name, &done.status).await?;
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
            .observe_steps(&run_key(run), &recorded, &done.status, now);
        if recorded.phase == RunPhase::Running && done.status.phase.is_finished() {
            wake_queued(ctx, &namespace, &name);
        }
    }
    let reference = run.object_ref(&());
    for RunEvent { reason, note, pod } in done.events {
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
                namespace: Some(namespace.clone()),
                ..ObjectReference::default()
            }),
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!("recording an event on {name}: {e}");
        }
    }
    Ok(done
        .requeue_after
        .map_or_else(Action::await_change, Action::requeue))
}

/// Run `name` of `namespace` ended: the oldest queued runs of the
/// namespace that its slot (and any other free one) makes room for are
/// reconciled now ([`crate::ledger`]).
fn wake_queued(ctx: &Context, namespace: &str, name: &str) {
    let (Some(ledger), Some(wake)) = (&ctx.ledger, &ctx.wake) else {
        return;
    };
    ledger.ended(namespace, name);
    for run in ledger.queued(namespace, ctx.settings.max_running_per_namespace) {
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
    run_steps(pipeline, &run_context(run, pipeline, namespace), owner, false)
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

/// The run is being deleted: delete its objects (garbage collection would
/// too, but not before the run is gone) and let it go.
async fn cleanup(run: &PipelineRun, ctx: &Context) -> Result<Action, Error> {
    let namespace = run.namespace().unwrap_or_default();
    let cluster = KubeCluster::new(ctx.client.clone(), namespace.clone());
    for object in cluster.list(&run_selector(&run.name_any())).await? {
        cluster.delete(&object.object).await?;
    }
    ctx.metrics.forget_run(&run_key(run));
    // A run deleted while Running frees its slot too.
    if run.status.as_ref().is_some_and(|s| s.phase == RunPhase::Running) {
        wake_queued(ctx, &namespace, &run.name_any());
    }
    Ok(Action::await_change())
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
            let runs = Api::<PipelineRun>::namespaced(ctx.client.clone(), namespace)
                .list(&ListParams::default())
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

/// The tightest `hard` request limit of each resource over `quotas`
/// (`requests.cpu` and `cpu` both limit requests, per the ResourceQuota docs).
pub fn quota_of(quotas: &[ResourceQuota]) -> Option<ResourceList> {
    let mut tightest = ResourceList::new();
    for quota in quotas {
        for (key, value) in quota
            .spec
            .as_ref()
            .and_then(|s| s.hard.as_ref())
            .into_iter()
            .flatten()
        {
            let resource = key.strip_prefix("requests.").unwrap_or(key);
            if resource.contains('.') && !resource.contains('/') || key.starts_with("limits.") {
                continue;
            }
            let Ok(parsed) = value.0.parse::<c8s_pipeline_model::sidecar::Quantity>() else {
                continue;
            };
            let keep = tightest
                .get(resource)
                .is_none_or(|old| parsed.nanos() < old.nanos());
            if keep {
                tightest.insert(resource.to_owned(), parsed);
            }
        }
    }
    (!tightest.is_empty()).then_some(tightest)
}

/// Drops an object's `metadata.managedFields` before it is cached: the
/// controller never reads them, and on a pod written by several managers
/// (the controller, the scheduler, the kubelet) they are a large part of the
/// object. kube-runtime's docs suggest this for reflectors
/// (<https://kube.rs/controllers/optimization/>, "Pruning Fields").
pub(crate) fn strip_managed_fields<K: kube::Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

//! The reconcile on the simulated cluster: runs complete, failures and
//! cancellation end them, the namespace limit and the quota queue them, and a
//! controller that crashes at any point starts no step twice and loses none.

use std::time::Duration;

use c8s_controller::crd::{PipelineRun, PipelineRunStatus, RunPhase, StepPhase};
use c8s_controller::{Admission, Error, RunSteps, Settings, owner_of, reconcile_run, run_context, run_steps};
use c8s_kube::sim::{SimCluster, StepScript};
use c8s_kube::{Cluster, ListedObject, LogStream, ObjectRef, ObservationStream, StepObject};
use c8s_pipeline_model::{MemorySource, parse_pipeline};
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;
use support::view;

mod support;

const PIPELINE: &str = r#"
name: shop
repository: https://example.com/shop.git
steps:
  - { name: lint, image: "alpine:3", commands: ["true"] }
  - { name: unit, image: "alpine:3", commands: ["true"] }
  - { name: build, image: "alpine:3", commands: ["true"], dependsOn: [lint, unit] }
  - { name: e2e, image: "alpine:3", commands: ["true"], dependsOn: [build] }
  - { name: publish, image: "alpine:3", commands: ["true"], dependsOn: [e2e, unit] }
  - { name: nightly, image: "alpine:3", commands: ["true"], conditional: { branches: [nightly] } }
"#;

fn run(cluster: &SimCluster) -> (PipelineRun, RunSteps) {
    support::new_run(PIPELINE, Some(cluster.now()))
}

async fn drive<C: Cluster>(
    cluster: &C,
    run: &PipelineRun,
    steps: &RunSteps,
    admission: &Admission,
) -> PipelineRunStatus {
    support::drive(cluster, &mut run.clone(), steps, admission, None).await
}

#[tokio::test(start_paused = true)]
async fn a_run_completes_with_each_step_started_once_and_dependents_after_dependencies() {
    let cluster = SimCluster::new();
    cluster.default_script(StepScript::new(Duration::from_secs(10)));
    let (run, steps) = run(&cluster);
    let status = drive(&cluster, &run, &steps, &Admission::default()).await;
    assert_eq!(status.phase, RunPhase::Succeeded, "{status:#?}");
    // What `kubectl get pipelineruns` shows in the Pipeline column, for an embedded pipeline too.
    assert_eq!(status.pipeline, "shop");
    let (ran, skipped): (Vec<_>, Vec<_>) = status.steps.iter().partition(|s| s.phase == StepPhase::Succeeded);
    assert_eq!(ran.len(), 5);
    assert!(ran.iter().all(|s| s.exit_code == Some(0)));
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(
        (skipped[0].name.as_str(), skipped[0].reason.as_str()),
        ("nightly", "BranchCondition")
    );
    let creates = cluster.stats().creates;
    assert_eq!(creates.len(), 5, "{creates:?}");
    assert!(creates.values().all(|n| *n == 1), "{creates:?}");
    // lint+unit, build, e2e, publish: four 10 s layers plus reconcile ticks.
    let took = status
        .completion_time
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok());
    let started = status
        .start_time
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok());
    if let (Some(end), Some(start)) = (took, started) {
        let seconds = end.duration_since(start).as_secs();
        assert!((40..=50).contains(&seconds), "took {seconds}s");
    }
}

/// A run name longer than a label value (63) still finds its pods: the
/// selector uses pod-builder's shortened label value.
#[tokio::test(start_paused = true)]
async fn a_run_with_a_long_name_finds_its_pods() {
    let cluster = SimCluster::new();
    cluster.default_script(StepScript::new(Duration::from_secs(10)));
    let (mut run, _) = run(&cluster);
    run.metadata.name = Some(format!("shop-{}", "x".repeat(80)));
    let pipeline = run.spec.pipeline.clone().unwrap_or_else(|| panic!("pipeline"));
    let owner = owner_of(&run).unwrap_or_else(|| panic!("owner"));
    let steps = run_steps(&pipeline, &run_context(&run, &pipeline, "ci"), owner, false)
        .unwrap_or_else(|e| panic!("{e}"));
    let status = drive(&cluster, &run, &steps, &Admission::default()).await;
    assert_eq!(status.phase, RunPhase::Succeeded, "{status:#?}");
    assert!(
        cluster.stats().creates.values().all(|n| *n == 1),
        "{:?}",
        cluster.stats().creates
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_step_fails_the_run_and_skips_its_dependents() {
    let cluster = SimCluster::new();
    cluster.default_script(StepScript::new(Duration::from_secs(5)));
    cluster.script("build", StepScript::new(Duration::from_secs(5)).exit_code(2));
    let (run, steps) = run(&cluster);
    let status = drive(&cluster, &run, &steps, &Admission::default()).await;
    assert_eq!(status.phase, RunPhase::Failed);
    let phase = |prefix: &str| {
        status
            .steps
            .iter()
            .find(|s| s.name.starts_with(&format!("shop-{prefix}-")))
            .map(|s| s.phase)
    };
    assert_eq!(phase("build"), Some(StepPhase::Failed));
    assert_eq!(phase("e2e"), Some(StepPhase::Skipped));
    assert_eq!(phase("publish"), Some(StepPhase::Skipped));
    let build = status.steps.iter().find(|s| s.name.starts_with("shop-build-"));
    assert_eq!(build.and_then(|s| s.exit_code), Some(2));
    assert!(build.is_some_and(|s| s.reason == "Error"), "{build:?}");
    assert!(!cluster.stats().creates.contains_key("e2e"));
}

/// The API server refuses a step's pod for good (403: a quota that needs
/// `requests.cpu` the step does not set): the step fails as `c8s run` fails
/// it (Rejected, with the API server's words), and the run fails, instead of
/// a reconcile retried forever.
#[tokio::test(start_paused = true)]
async fn a_pod_refused_for_good_fails_its_step_and_the_run() {
    let cluster = SimCluster::new();
    cluster.default_script(StepScript::new(Duration::from_secs(5)));
    cluster.script(
        "build",
        StepScript::new(Duration::from_secs(5)).create_errors([403]),
    );
    let (run, steps) = run(&cluster);
    let status = drive(&cluster, &run, &steps, &Admission::default()).await;
    assert_eq!(status.phase, RunPhase::Failed, "{status:#?}");
    let build = status.steps.iter().find(|s| s.name.starts_with("shop-build-"));
    assert!(
        build.is_some_and(|s| s.phase == StepPhase::Failed
            && s.reason == "Rejected"
            && s.message.contains("403")),
        "{build:#?}"
    );
    assert!(!cluster.stats().creates.contains_key("e2e"));
}

#[tokio::test(start_paused = true)]
async fn a_step_past_its_timeout_is_deleted_and_fails_the_run() {
    let cluster = SimCluster::new();
    cluster.default_script(StepScript::new(Duration::from_secs(5)));
    cluster.script("unit", StepScript::new(Duration::from_secs(3600)));
    let text = PIPELINE.replace(
        r#"{ name: unit, image: "alpine:3", commands: ["true"] }"#,
        r#"{ name: unit, image: "alpine:3", commands: ["true"], timeout: 20s }"#,
    );
    let pipeline =
        parse_pipeline("shop.c8s.yaml", &text, &MemorySource::new()).unwrap_or_else(|e| panic!("{e}"));
    let (mut run, _) = run(&cluster);
    run.spec.pipeline = Some(pipeline.clone());
    let owner = owner_of(&run).unwrap_or_else(|| panic!("owner"));
    let steps = run_steps(&pipeline, &run_context(&run, &pipeline, "ci"), owner, false)
        .unwrap_or_else(|e| panic!("{e}"));
    let status = drive(&cluster, &run, &steps, &Admission::default()).await;
    assert_eq!(status.phase, RunPhase::Failed, "{status:#?}");
    let unit = status.steps.iter().find(|s| s.name.starts_with("shop-unit-"));
    assert_eq!(
        unit.map(|s| (s.phase, s.reason.as_str())),
        Some((StepPhase::Failed, "DeadlineExceeded"))
    );
    let ended = status
        .completion_time
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok());
    let started = status
        .start_time
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok());
    let took = ended.zip(started).map(|(e, s)| e.duration_since(s).as_secs());
    assert!(
        took.is_some_and(|t| (20..=25).contains(&t)),
        "ended after {took:?}s, not at the 20 s timeout"
    );
    assert!(
        cluster.live_objects().iter().all(|o| !o.contains("-unit-")),
        "{:?}",
        cluster.live_objects()
    );
}

#[tokio::test(start_paused = true)]
async fn cancelling_deletes_running_steps_and_ends_cancelled() {
    let cluster = SimCluster::new();
    cluster.default_script(StepScript::new(Duration::from_secs(600)));
    let (mut run, steps) = run(&cluster);
    let settings = Settings::default();
    let created = cluster.now();
    let first = reconcile_run(
        &cluster,
        &view(&run, &PipelineRunStatus::default(), created),
        &steps,
        &Admission::default(),
        &settings,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.status.phase, RunPhase::Running);
    assert_eq!(cluster.live_objects().len(), 2, "lint and unit run");
    run.spec.cancelled = true;
    let mut status = first.status;
    for _ in 0..5 {
        status = reconcile_run(
            &cluster,
            &view(&run, &status, created),
            &steps,
            &Admission::default(),
            &settings,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .status;
    }
    assert_eq!(status.phase, RunPhase::Cancelled, "{status:#?}");
    assert!(cluster.live_objects().is_empty(), "{:?}", cluster.live_objects());
}

#[tokio::test(start_paused = true)]
async fn the_namespace_limit_and_the_quota_keep_a_run_pending_with_a_reason() {
    let cluster = SimCluster::new();
    let (run, steps) = run(&cluster);
    let settings = Settings {
        max_running_per_namespace: 2,
        ..Settings::default()
    };
    let created = cluster.now();
    let full = Admission {
        running_in_namespace: 2,
        quota: None,
    };
    let queued = reconcile_run(
        &cluster,
        &view(&run, &PipelineRunStatus::default(), created),
        &steps,
        &full,
        &settings,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(queued.status.phase, RunPhase::Pending);
    let condition = queued.status.conditions.iter().find(|c| c.type_ == "Queued");
    assert_eq!(condition.map(|c| c.reason.as_str()), Some("NamespaceLimit"));
    assert!(cluster.live_objects().is_empty());

    // Seen again while more runs run (the ledger counts one it admitted
    // before the runs cache shows it): nothing changed for this run, so the
    // status is the same and the controller writes nothing.
    let more = Admission {
        running_in_namespace: 3,
        quota: None,
    };
    let again = reconcile_run(
        &cluster,
        &view(&run, &queued.status, created),
        &steps,
        &more,
        &settings,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.status, queued.status);

    let mut quota = c8s_pipeline_model::resources::ResourceList::new();
    quota.insert("cpu".into(), "1m".parse().unwrap_or_else(|e| panic!("{e:?}")));
    let tight = Admission {
        running_in_namespace: 0,
        quota: Some(quota),
    };
    let queued = reconcile_run(
        &cluster,
        &view(&run, &PipelineRunStatus::default(), created),
        &steps,
        &tight,
        &settings,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let condition = queued.status.conditions.iter().find(|c| c.type_ == "Queued");
    assert_eq!(
        condition.map(|c| c.reason.as_str()),
        Some("QuotaExceeded"),
        "{queued:#?}"
    );
    assert!(
        condition.is_some_and(|c| c.message.contains("cpu")),
        "{condition:?}"
    );
    assert!(cluster.live_objects().is_empty());
}

/// A cluster whose writes stop working after `budget` of them: the
/// controller process dies there (before or after the write took effect).
struct Crashing<'a> {
    inner: &'a SimCluster,
    budget: std::sync::Mutex<(u32, bool)>,
}

impl Crashing<'_> {
    fn crash(&self) -> Option<bool> {
        let mut budget = self.budget.lock().unwrap_or_else(|p| p.into_inner());
        if budget.0 == 0 {
            return Some(budget.1);
        }
        budget.0 -= 1;
        None
    }
}

/// The error the dying controller's reconcile ends with: a transient one
/// (503), which the reconcile returns rather than reading as a refusal of
/// the pod (a 403 or 422 fails the step).
fn crashed() -> c8s_kube::Error {
    c8s_kube::Error::api("controller", "crash", 503, "the controller died here")
}

impl Cluster for Crashing<'_> {
    async fn create(&self, object: &StepObject) -> c8s_kube::Result<ObjectRef> {
        match self.crash() {
            None => self.inner.create(object).await,
            Some(after) => {
                if after {
                    let _ = self.inner.create(object).await;
                }
                Err(crashed())
            }
        }
    }
    async fn observe(&self, object: &ObjectRef) -> c8s_kube::Result<ObservationStream> {
        self.inner.observe(object).await
    }
    async fn logs(&self, object: &ObjectRef, container: &str) -> c8s_kube::Result<LogStream> {
        self.inner.logs(object, container).await
    }
    async fn delete(&self, object: &ObjectRef) -> c8s_kube::Result<()> {
        match self.crash() {
            None => self.inner.delete(object).await,
            Some(after) => {
                if after {
                    let _ = self.inner.delete(object).await;
                }
                Err(crashed())
            }
        }
    }
    async fn list(&self, label_selector: &str) -> c8s_kube::Result<Vec<ListedObject>> {
        self.inner.list(label_selector).await
    }
    fn now(&self) -> Timestamp {
        self.inner.now()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The controller dies after a random number of writes (before or after
    /// the write lands), again and again; each new process starts from the
    /// cluster alone. The run still succeeds with every step created exactly
    /// once, evictions included.
    #[test]
    fn restarted_at_random_points_no_step_is_lost_or_started_twice(
        crashes in proptest::collection::vec((0u32..6, any::<bool>()), 1..8),
        evict_build in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build();
        let runtime = runtime.unwrap_or_else(|e| panic!("{e}"));
        let (status, creates, max_live) = runtime.block_on(async {
            let sim = SimCluster::new();
            sim.default_script(StepScript::new(Duration::from_secs(10)));
            if evict_build {
                sim.script("build", StepScript::new(Duration::from_secs(10)).evictions(1, Duration::from_secs(3)));
            }
            let (run, steps) = run(&sim);
            let created = sim.now();
            let settings = Settings::default();
            let mut status = PipelineRunStatus::default();
            let mut crashes = crashes.into_iter();
            for _ in 0..2_000 {
                let (budget, after) = crashes.next().unwrap_or((u32::MAX, false));
                let process = Crashing { inner: &sim, budget: std::sync::Mutex::new((budget, after)) };
                let result: Result<_, Error> =
                    reconcile_run(&process, &view(&run, &status, created), &steps, &Admission::default(), &settings).await;
                if let Ok(done) = result {
                    status = done.status;
                }
                if status.phase.is_finished() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let stats = sim.stats();
            (status, stats.creates, stats.max_live_per_step)
        });
        prop_assert_eq!(status.phase, RunPhase::Succeeded, "{:#?}", status);
        for step in ["lint", "unit", "e2e", "publish"] {
            prop_assert_eq!(creates.get(step).copied(), Some(1), "{} {:?}", step, creates);
        }
        let build = creates.get("build").copied();
        prop_assert_eq!(build, Some(if evict_build { 2 } else { 1 }), "{:?}", creates);
        prop_assert!(max_live.values().all(|n| *n == 1), "a retry overlapped its old pod: {:?}", max_live);
    }
}

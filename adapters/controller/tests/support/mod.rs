//! What the simulated-cluster reconcile tests share: a `PipelineRun` of an
//! embedded pipeline, and the controller's loop driven a virtual second at a
//! time.

use std::time::Duration;

use c8s_controller::crd::{PipelineRun, PipelineRunSpec, PipelineRunStatus};
use c8s_controller::{
    Admission, RunSteps, RunView, Settings, owner_of, reconcile_run, run_context, run_steps,
};
use c8s_kube::Cluster;
use c8s_pipeline_model::{MemorySource, parse_pipeline};
use k8s_openapi::jiff::Timestamp;

/// Run `shop-b7` (namespace `ci`, build 7 of branch `main`) of the pipeline
/// `text`, created at `created` when given, and the steps it renders to.
pub fn new_run(text: &str, created: Option<Timestamp>) -> (PipelineRun, RunSteps) {
    let pipeline =
        parse_pipeline("shop.c8s.yaml", text, &MemorySource::new()).unwrap_or_else(|e| panic!("{e}"));
    let mut run = PipelineRun::new(
        "shop-b7",
        PipelineRunSpec {
            pipeline: Some(pipeline.clone()),
            branch: "main".into(),
            build: 7,
            ..PipelineRunSpec::default()
        },
    );
    run.metadata.namespace = Some("ci".into());
    run.metadata.uid = Some("0f0e-uid".into());
    run.metadata.creation_timestamp = created.map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
    let owner = owner_of(&run).unwrap_or_else(|| panic!("owner"));
    let ctx = run_context(&run, &pipeline, "ci");
    let steps = run_steps(&pipeline, &ctx, owner, false).unwrap_or_else(|e| panic!("{e}"));
    (run, steps)
}

/// What the controller passes to `reconcile_run` for `run` with `status`.
pub fn view<'a>(run: &'a PipelineRun, status: &'a PipelineRunStatus, created: Timestamp) -> RunView<'a> {
    RunView {
        name: run.metadata.name.as_deref().unwrap_or_default(),
        generation: Some(1),
        started: created,
        spec: &run.spec,
        status,
    }
}

/// Reconciles once a virtual second until the run ends (or 10 000 seconds
/// pass), writing the status back each time as the controller does;
/// `cancel_at` (seconds) sets `spec.cancelled` as `kubectl patch` would.
pub async fn drive<C: Cluster>(
    cluster: &C,
    run: &mut PipelineRun,
    steps: &RunSteps,
    admission: &Admission,
    cancel_at: Option<u32>,
) -> PipelineRunStatus {
    let settings = Settings::default();
    let created = cluster.now();
    let mut status = PipelineRunStatus::default();
    for second in 0..10_000 {
        if Some(second) == cancel_at {
            run.spec.cancelled = true;
        }
        if let Ok(done) =
            reconcile_run(cluster, &view(run, &status, created), steps, admission, &settings).await
        {
            status = done.status;
        }
        if status.phase.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    status
}

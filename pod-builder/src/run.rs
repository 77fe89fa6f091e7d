//! A whole pipeline run: the context its plans share and every pod at once.
//!
//! ```
//! use c8s_pod_builder::model::{MemorySource, parse_pipeline};
//! use c8s_pod_builder::{RunContext, render_all};
//!
//! let text = "
//! name: orders
//! repository: https://example.com/orders.git
//! timeout: 30m
//! steps:
//!   - { name: unit, image: 'golang:1.23', commands: ['go test ./...'] }
//! finally:
//!   - { name: notify, image: 'alpine:3.20', commands: ['echo $C8S_RUN_STATUS'] }
//! ";
//! let pipeline = parse_pipeline(".c8s.yaml", text, &MemorySource::new()).unwrap();
//! let run = pipeline.expand(Some("main")).unwrap();
//! let ctx = RunContext::for_run(&run, "run-1", 42).with_commit("0123456789abcdef0123456789abcdef01234567");
//! let pods = render_all(&run, &ctx)?;
//! let spec = pods[0].spec.as_ref().unwrap();
//! assert_eq!(spec.active_deadline_seconds, Some(1800)); // the pipeline's timeout
//! assert_eq!(spec.init_containers.as_ref().unwrap()[0].name, "git-clone");
//! assert!(run.resources().peak.requests.contains_key("cpu"));
//! // The finally steps' pods come last; the runner fills in their outcome env.
//! assert_eq!(pods.len(), 2);
//! assert_eq!(pods[1].metadata.labels.as_ref().unwrap()["c8s.dev/step"], "notify");
//! # Ok::<(), c8s_pod_builder::Error>(())
//! ```

use c8s_pipeline_model::RunPlan;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;

use crate::{Error, RunContext, render_job, render_pod};

impl RunContext {
    /// A context for run `run_id`, build `build` of `run`: the pipeline's
    /// repository, and the run's branch when it was expanded for one. The
    /// commit (empty: the branch head) and cluster facts are set as usual.
    pub fn for_run(run: &RunPlan, run_id: impl Into<String>, build: u64) -> Self {
        Self::new(run_id, build)
            .with_repository(run.repository.clone())
            .with_branch(run.branch.clone().unwrap_or_default())
    }
}

/// Every plan of `run` as a Pod, in the run's order, then its `finally`
/// steps (whose outcome env a runner fills in when it creates them); the
/// first invalid plan is the error.
pub fn render_all(run: &RunPlan, ctx: &RunContext) -> Result<Vec<Pod>, Error> {
    run.plans
        .iter()
        .chain(&run.finally)
        .map(|plan| render_pod(plan, ctx))
        .collect()
}

/// Every plan of `run` as a Job, in the run's order, then its `finally`
/// steps; the first invalid plan is the error.
pub fn render_all_jobs(run: &RunPlan, ctx: &RunContext) -> Result<Vec<Job>, Error> {
    run.plans
        .iter()
        .chain(&run.finally)
        .map(|plan| render_job(plan, ctx))
        .collect()
}

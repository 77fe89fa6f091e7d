//! Task plans, pipelines and DAGs: everything between a user's YAML and a pod.
//!
//! Two front-ends lower into one intermediate form, [`TaskPlan`], which
//! pod-builder renders: `.c8s.yaml` pipelines ([`parse_pipeline`], then
//! [`Pipeline::expand`] for a branch: matrix combinations, [`Dag`] layers,
//! skipped steps, one plan per step per combination) and Concourse task configs
//! ([`parse_task_config`], [`task_plan`], [`visit_task`]).
//!
//! ```
//! use c8s_pipeline_model::{parse_pipeline, MemorySource};
//!
//! let text = r#"
//! name: orders
//! repository: https://example.com/orders.git
//! matrix:
//!   dimensions: { go: ["1.22", "1.23"] }
//! steps:
//!   - name: unit
//!     image: golang:${{ matrix.go }}
//!     commands: ["go test ./..."]
//!   - name: publish
//!     image: alpine:3
//!     dependsOn: [unit]
//!     conditional: { branches: [main] }
//! "#;
//! let pipeline = parse_pipeline(".c8s.yaml", text, &MemorySource::new()).unwrap();
//! let run = pipeline.expand(Some("feature/x")).unwrap();
//! assert_eq!(run.layers, [vec!["unit"], vec!["publish"]]);
//! assert!(run.skipped.contains_key("publish"));
//! let images: Vec<&str> = run.plans.iter().map(|p| p.image.as_str()).collect();
//! assert_eq!(images, ["golang:1.22", "golang:1.23"]);
//! ```
//!
//! The crate is pure: no I/O, no clock, no randomness. Files (sidecar files)
//! are read through a [`SourceReader`] the caller provides.

mod check;
pub mod concourse;
pub mod dag;
mod duration;
pub mod error;
mod expand;
pub mod finally;
pub mod layout;
mod links;
pub mod masker;
pub mod matrix;
mod ordered;
mod parse;
pub mod pipeline;
pub mod plan;
mod plan_build;
pub mod pod;
pub mod resources;
pub mod results;
pub mod retries;
pub mod schedule;
pub mod scheduler;
#[cfg(feature = "schema")]
pub mod schema;
mod sidecar_files;
mod subject;
mod substitute;
pub use concourse::task;

pub use c8s_sidecar_core as sidecar;
pub use c8s_sidecar_core::contract;
pub use c8s_sidecar_core::{MemorySource, SourceReader};
pub use concourse::{
    ContainerLimits, ImageResource, ImageSource, TaskCache, TaskConfig, TaskInput, TaskOutput, TaskRun,
    TaskStep, Vars, parse_task_config, parse_task_config_with, task_plan, visit_task, visit_task_with,
};
pub use dag::{Dag, DagError};
pub use duration::{branch_matches, parse_duration};
pub use error::{Error, Errors, Problem};
pub use expand::{RunPlan, step_plan};
pub use layout::{ContainerRole, LaidOutContainer, pod_layout};
pub use masker::{MaskerError, SecretMasker};
pub use matrix::{Combination, DEFAULT_MAX_COMBINATIONS, Matrix};
pub use ordered::OrderedMap;
pub use parse::{parse_pipeline, parse_pipeline_with};
pub use pipeline::{Conditional, Pipeline, PipelineOptions, SecretEnv, Step, StepInput};
pub use plan::{PlanIdentity, PlanInput, TaskPlan};
pub use pod::{Affinity, EphemeralStorage, PodOverrides, Toleration};
pub use resources::{
    EffectiveResources, QuotaError, ResourceList, RunResources, check_quota, effective_resources,
    plan_effective_resources, run_resources,
};
pub use results::ResultEnv;
pub use retries::{MAX_RETRIES, Retries, RetryCause, RetryOn};
pub use schedule::{CriticalPath, Progress, SkipReason};
pub use substitute::substitute_sidecar;
// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

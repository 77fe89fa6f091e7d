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
//!
//! ## Features
//!
//! [`TaskPlan`], its pod overrides ([`pod`]), [`layout`] and [`resources`] are
//! always compiled: they are what rendering a pod needs. The rest is on by
//! default and can be left out with `default-features = false`:
//!
//! - `pipeline`: `.c8s.yaml` pipelines ([`parse_pipeline`], [`Pipeline`],
//!   [`Dag`], [`Matrix`], [`RunPlan`], [`scheduler`]); adds petgraph, sha2 and
//!   sidecar-core's `yaml` feature (the YAML parser).
//! - `concourse`: Concourse task configs and pipelines ([`concourse`]); needs
//!   `pipeline`, adds granit-parser.
//! - `masker`: [`SecretMasker`]; adds aho-corasick and base64.
//! - `schema` (off by default): JSON Schema for the pipeline types; adds schemars.

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "pipeline")]
mod check;
#[cfg(feature = "concourse")]
#[cfg_attr(docsrs, doc(cfg(feature = "concourse")))]
pub mod concourse;
#[cfg(feature = "pipeline")]
#[cfg_attr(docsrs, doc(cfg(feature = "pipeline")))]
pub mod dag;
#[cfg(feature = "pipeline")]
mod duration;
pub mod error;
#[cfg(feature = "pipeline")]
mod expand;
pub mod finally;
pub mod layout;
#[cfg(feature = "pipeline")]
mod links;
pub mod local_vars;
#[cfg(feature = "masker")]
#[cfg_attr(docsrs, doc(cfg(feature = "masker")))]
pub mod masker;
#[cfg(feature = "pipeline")]
#[cfg_attr(docsrs, doc(cfg(feature = "pipeline")))]
pub mod matrix;
#[cfg(feature = "pipeline")]
mod ordered;
#[cfg(feature = "pipeline")]
mod parse;
#[cfg(feature = "pipeline")]
#[cfg_attr(docsrs, doc(cfg(feature = "pipeline")))]
pub mod pipeline;
pub mod plan;
mod plan_artifacts;
mod plan_build;
pub mod pod;
pub mod resources;
pub mod results;
pub mod retries;
#[cfg(feature = "pipeline")]
#[cfg_attr(docsrs, doc(cfg(feature = "pipeline")))]
pub mod schedule;
#[cfg(feature = "pipeline")]
#[cfg_attr(docsrs, doc(cfg(feature = "pipeline")))]
pub mod scheduler;
#[cfg(feature = "schema")]
pub mod schema;
#[cfg(feature = "pipeline")]
mod sidecar_files;
#[cfg(feature = "pipeline")]
mod subject;
#[cfg(feature = "pipeline")]
mod substitute;
#[cfg(feature = "concourse")]
pub use concourse::task;

pub use c8s_sidecar_core as sidecar;
pub use c8s_sidecar_core::contract;
#[cfg(feature = "pipeline")]
pub use c8s_sidecar_core::{MemorySource, SourceReader};
#[cfg(feature = "concourse")]
pub use concourse::{
    ContainerLimits, ImageResource, ImageSource, TaskCache, TaskConfig, TaskInput, TaskOutput, TaskRun,
    TaskStep, Vars, parse_task_config, parse_task_config_with, task_plan, visit_task, visit_task_with,
};
#[cfg(feature = "pipeline")]
pub use dag::{Dag, DagError};
#[cfg(feature = "pipeline")]
pub use duration::{branch_matches, parse_duration};
pub use error::{Error, Errors, Problem};
#[cfg(feature = "pipeline")]
pub use expand::{RunPlan, step_plan};
pub use layout::{ContainerRole, LaidOutContainer, pod_layout};
#[cfg(feature = "masker")]
pub use masker::{MaskerError, SecretMasker};
#[cfg(feature = "pipeline")]
pub use matrix::{Combination, DEFAULT_MAX_COMBINATIONS, Matrix};
#[cfg(feature = "pipeline")]
pub use ordered::OrderedMap;
#[cfg(feature = "pipeline")]
pub use parse::{parse_pipeline, parse_pipeline_with, yaml11_key_warnings};
#[cfg(feature = "pipeline")]
pub use pipeline::{Conditional, Pipeline, PipelineOptions, SecretEnv, Step, StepInput};
pub use plan::{PlanIdentity, PlanInput, TaskPlan};
pub use pod::{Affinity, EphemeralStorage, PodOverrides, Toleration};
pub use resources::{
    EffectiveResources, QuotaError, ResourceList, RunResources, check_quota, effective_resources,
    plan_effective_resources, run_resources,
};
pub use results::ResultEnv;
pub use retries::{MAX_RETRIES, Retries, RetryCause, RetryOn};
#[cfg(feature = "pipeline")]
pub use schedule::{CriticalPath, SkipReason};
#[cfg(feature = "pipeline")]
pub use substitute::substitute_sidecar;
// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

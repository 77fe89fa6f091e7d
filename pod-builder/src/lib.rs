//! `TaskPlan` + `RunContext` → Kubernetes `Pod` and `Job`, deterministically.
//!
//! ```
//! use c8s_pod_builder::{render_pod, to_canonical_yaml, RunContext, check_restricted};
//! use c8s_pod_builder::model::{PlanIdentity, TaskPlan};
//! use c8s_pod_builder::model::sidecar::{Port, SidecarConfig};
//!
//! let mut plan = TaskPlan::new(PlanIdentity::new("orders", "integration"), "golang:1.23");
//! plan.command = vec!["sh".into(), "-ec".into(), "go test ./...".into()];
//! let mut redis = SidecarConfig::new("redis", "redis:7-alpine");
//! redis.ports.push(Port::tcp(6379));
//! plan.sidecars.push(redis);
//!
//! let ctx = RunContext::new("run-1", 12).with_commit("0123456789abcdef0123456789abcdef01234567");
//! let pod = render_pod(&plan, &ctx)?;
//! let spec = pod.spec.as_ref().unwrap();
//! // Native sidecar: a restartable init container gated by a startup probe.
//! let redis = &spec.init_containers.as_ref().unwrap()[1];
//! assert_eq!(redis.restart_policy.as_deref(), Some("Always"));
//! assert!(redis.startup_probe.is_some());
//! assert!(check_restricted(spec).is_empty());
//! assert!(to_canonical_yaml(&pod)?.contains("name: orders-integration-b12-"));
//! # Ok::<(), c8s_pod_builder::Error>(())
//! ```
//!
//! What a pod holds (in [`pod_layout`](c8s_pipeline_model::pod_layout) order):
//! `git-clone` (shallow fetch of the commit into the `workspace` emptyDir at
//! `/workspace`), one `c8s-input-N` per input (untar from the artifact PVC),
//! sidecars (native: restartable init containers with a `startupProbe`;
//! legacy: plain containers after `main` with a `readinessProbe`), `main`, and
//! `artifact-helper` when the step has outputs (it waits for the exit-code file
//! `main`'s wrapper writes, then tars the outputs to the artifact PVC).
//!
//! ## Installation
//!
//! k8s-openapi needs exactly one Kubernetes version feature, chosen by the
//! application (this library never picks one); add both lines:
//!
//! ```toml
//! [dependencies]
//! c8s-pod-builder = "0.1"
//! k8s-openapi = { version = "0.29", features = ["latest"] }
//! ```
//!
//! The k8s-openapi in use is re-exported as [`k8s_openapi`]. Building plans in
//! code: [`prelude`]; reading rendered pods in tests: [`inspect`].
//!
//! A program that only renders plans it builds in code (as above) needs none
//! of the default features; with `default-features = false` it compiles
//! little beyond k8s-openapi, serde, thiserror, serde-saphyr's writer and hmac-sha256:
//!
//! ```toml
//! [dependencies]
//! c8s-pod-builder = { version = "0.1", default-features = false }
//! k8s-openapi = { version = "0.29", features = ["latest"] }
//! ```
//!
//! The default features add reading sidecar files (`yaml`: serde-saphyr's
//! deserializer, granit-parser), `.c8s.yaml` pipelines and [`render_all`] over
//! a whole run (`pipeline`: petgraph), Concourse task configs and pipelines
//! (`concourse`) and the log masker (`masker`: aho-corasick, base64); each
//! forwards to the feature of the same name in `c8s-pipeline-model` (`yaml`:
//! in `c8s-sidecar-core`). `pod-spec-patch` applies `podSpecPatch` (plan and
//! [`RunContext`]); it takes the PodSpec through JSON and back, about half of
//! this crate's compile time. Without it a patch is an error
//! ([`Error::InvalidOverride`]): set the field on the rendered Pod instead.
//!
//! Every object is checked against the API server's client-checkable rules
//! ([`validate`]) before it is returned. This crate does no I/O.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod concourse;
pub mod containers;
pub mod context;
pub mod env;
pub mod error;
pub mod git;
mod identity;
pub mod inspect;
mod main_container;
pub mod names;
mod overrides;
mod parts;
pub mod render;
#[cfg(feature = "pipeline")]
#[cfg_attr(docsrs, doc(cfg(feature = "pipeline")))]
pub mod run;
pub mod scripts;
pub mod security;
pub mod serialize;
mod service_names;
pub mod services;
mod spec_patch;
pub mod validate;

pub use c8s_pipeline_model as model;
pub use c8s_sidecar_core::contract;
pub use context::{RunContext, SecurityProfile, SidecarMode};
pub use error::{Error, Violation};
/// The k8s-openapi this crate renders into (`Pod`, `Job`, `OwnerReference`, `Toleration`), so
/// callers name the same types without a second, possibly different, version.
pub use k8s_openapi;
pub use render::{object_name, render_job, render_pod};
#[cfg(feature = "pipeline")]
pub use run::{render_all, render_all_jobs};
pub use security::{check_baseline, check_restricted, pod_security_level};
pub use serialize::{
    Object, YamlStream, to_canonical_json, to_canonical_json_list, to_canonical_yaml,
    to_canonical_yaml_stream,
};
pub use validate::{validate_job, validate_pod};

// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(all(doctest, feature = "pipeline"))]
#[doc = include_str!("../../README.md")]
struct WorkspaceReadmeDoctests;

/// What a program that builds plans in code and renders them needs, in one `use`.
///
/// ```
/// use c8s_pod_builder::prelude::*;
///
/// let plan = TaskPlan::for_step("shop", "unit", "golang:1.23")
///     .with_sidecar(SidecarConfig::new("redis", "redis:7-alpine").with_port(6379));
/// let pod = render_pod(&plan, &RunContext::new("run-1", 1))?;
/// assert!(to_canonical_yaml(&pod)?.contains("image: redis:7-alpine"));
/// # Ok::<(), Error>(())
/// ```
pub mod prelude {
    pub use crate::inspect::{container, env_value};
    #[cfg(feature = "pipeline")]
    pub use crate::render_all;
    pub use crate::{
        Error, RunContext, SecurityProfile, SidecarMode, render_job, render_pod, to_canonical_json,
        to_canonical_yaml,
    };
    pub use c8s_pipeline_model::{PlanIdentity, PlanInput, TaskPlan};
    pub use c8s_sidecar_core::{
        EnvVar, Port, PortRef, Problem, Protocol, Quantity, Readiness, ReadinessProbe, Resources,
        SidecarConfig,
    };
}

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
//! Every object is checked against the API server's client-checkable rules
//! ([`validate`]) before it is returned. This crate does no I/O.

pub mod concourse;
pub mod containers;
pub mod context;
pub mod error;
pub mod names;
mod overrides;
pub mod render;
pub mod scripts;
pub mod security;
pub mod serialize;
mod services;
pub mod validate;

pub use c8s_pipeline_model as model;
pub use context::{RunContext, SecurityProfile, SidecarMode};
pub use error::{Error, Violation};
pub use render::{object_name, render_job, render_pod};
pub use security::{check_baseline, check_restricted, pod_security_level};
pub use serialize::{
    Object, YamlStream, to_canonical_json, to_canonical_json_list, to_canonical_yaml,
    to_canonical_yaml_stream,
};
pub use validate::{validate_job, validate_pod};

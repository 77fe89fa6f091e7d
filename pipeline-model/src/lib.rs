//! Task plans, pipelines and DAGs: everything between a user's YAML and a pod.
//!
//! Being built (issue 3). Today it holds [`TaskPlan`], the one intermediate form
//! pod-builder consumes. It is pure: no I/O, no clock, no randomness.

pub mod layout;
pub mod plan;

pub use c8s_sidecar_core as sidecar;
pub use layout::{ContainerRole, LaidOutContainer, pod_layout};
pub use plan::{PlanIdentity, PlanInput, TaskPlan};

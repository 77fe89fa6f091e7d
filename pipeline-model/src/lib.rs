//! Task plans, pipelines and DAGs: everything between a user's YAML and a pod.
//!
//! Not built yet (issue 3): this crate will hold `TaskPlan`, the Concourse task and
//! `.c8s.yaml` pipeline front-ends, the DAG, matrix expansion, resource arithmetic
//! and the streaming secret masker. It is pure: no I/O, no clock, no randomness.

pub use c8s_sidecar_core as sidecar;

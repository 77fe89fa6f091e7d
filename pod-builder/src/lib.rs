//! `TaskPlan` + `RunContext` → Kubernetes `Pod` and `Job`, deterministically.
//!
//! Not built yet (issue 4): this crate will render pods with native sidecars,
//! readiness gating, the restricted security profile and always-valid names,
//! and validate every object client-side before returning it.

pub use c8s_pipeline_model as model;

//! Helm charts from c8s sidecars and pipelines.
//!
//! Not built yet (issue 5): a sidecar-injection chart and a pipeline chart whose
//! `helm template` output equals `c8s render`.

pub use c8s_pod_builder as pod_builder;

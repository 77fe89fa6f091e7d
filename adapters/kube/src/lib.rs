//! Runs c8s pipelines on a Kubernetes cluster with kube-rs.
//!
//! Not built yet (issue 6): submit pods and jobs, watch them, stream masked logs,
//! run whole pipelines with retries and timeouts, and reap finished pods.

pub use c8s_pod_builder as pod_builder;

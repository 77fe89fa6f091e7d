//! The controller's error type.

/// What can stop a reconcile.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The run's pipeline cannot be expanded or its steps do not form a DAG.
    #[error("the pipeline cannot run: {0}")]
    Pipeline(String),
    /// pod-builder refused a step (an invalid object is never created).
    #[error(transparent)]
    Render(#[from] c8s_pod_builder::Error),
    /// A request to the cluster failed.
    #[error(transparent)]
    Cluster(#[from] c8s_kube::Error),
    /// A request made with kube-rs directly failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// The run names a Pipeline that does not exist, or names none.
    #[error("{0}")]
    MissingPipeline(String),
    /// A reconcile did not finish in time (it is retried with backoff).
    #[error("{0}")]
    TimedOut(String),
    /// Another replica holds the leader lease.
    #[error("not the leader: {0}")]
    NotLeader(String),
    /// The metrics could not be encoded or served.
    #[error("metrics: {0}")]
    Metrics(String),
}

//! The crate's one error type and the transient/permanent classification.

use std::time::Duration;

/// Everything that can go wrong between c8s and a cluster.
///
/// [`Error::is_transient`] says whether retrying the same request may succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The API server answered with a `Status` error (for example 409 AlreadyExists,
    /// 422 Invalid, 429 TooManyRequests, 500 InternalError).
    #[error("{operation} {object}: API server answered {code} {reason}: {message}")]
    Api {
        /// What c8s was doing, e.g. `create pod`.
        operation: &'static str,
        /// The object's name (or the label selector for a list).
        object: String,
        /// The HTTP status code from the `Status` body.
        code: u16,
        /// The machine-readable reason, e.g. `AlreadyExists`, `Invalid`.
        reason: String,
        /// The human-readable message.
        message: String,
    },
    /// The connection to the API server failed (reset, refused, TLS, timeout).
    #[error("{operation} {object}: connection to the API server failed: {source}")]
    Connection {
        /// What c8s was doing.
        operation: &'static str,
        /// The object's name.
        object: String,
        /// The underlying client error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A watch ended: the server closed it, or its resource version expired (410 Gone).
    #[error("watch of {object} ended: {detail}")]
    WatchEnded {
        /// The watched object.
        object: String,
        /// Why, as the server or the stream said it.
        detail: String,
    },
    /// A deleted object did not disappear in time (finalizers, a slow kubelet).
    #[error("{object} was deleted but is still there: {detail}")]
    StillThere {
        /// The object's name.
        object: String,
        /// How long c8s waited, or why waiting failed.
        detail: String,
    },
    /// An answer from the API server could not be understood.
    #[error("{operation} {object}: unexpected answer from the API server: {detail}")]
    Protocol {
        /// What c8s was doing.
        operation: &'static str,
        /// The object's name.
        object: String,
        /// What was wrong with the answer.
        detail: String,
    },
    /// The object handed to c8s cannot be submitted (no name, for example).
    #[error("step {step:?}: invalid object: {detail}")]
    InvalidObject {
        /// The step the object belongs to.
        step: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The pipeline's steps do not form a valid DAG.
    #[error("invalid pipeline: {0}")]
    InvalidPipeline(String),
    /// No cluster answered: no kubeconfig, or the API server is unreachable.
    #[error("no Kubernetes cluster reachable within {timeout:?}: {detail}")]
    ClusterUnreachable {
        /// How long c8s waited.
        timeout: Duration,
        /// What went wrong, for a person.
        detail: String,
    },
    /// The simulated cluster was asked about an object it does not know.
    #[error("simulated cluster: {0}")]
    Simulation(String),
    /// A run with this id already exists in the cluster (its pods or Jobs,
    /// or its record: an earlier runner was killed): resume it, or pick
    /// another run id.
    #[error(
        "run {run_id:?} already exists in the cluster (a runner of it was stopped before it ended): \
         resume it (c8s run --resume), use another run id, or discard it \
         (kubectl delete configmap,pods,jobs -l c8s.dev/run={run_id})"
    )]
    RunExists {
        /// The run's id.
        run_id: String,
    },
    /// The step cannot run at all ([`crate::RunOptions::unrunnable`]).
    #[error("step {step:?} cannot run: {reason}")]
    Unrunnable {
        /// The step.
        step: String,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// The HTTP status code of an API error.
    pub fn code(&self) -> Option<u16> {
        match self {
            Error::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether retrying the same request may succeed: HTTP 429/500/502/503/504,
    /// connection failures and ended watches are transient; 403, 409, 422 and
    /// invalid input are permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Api { code, .. } => is_transient_status(*code),
            Error::Connection { .. } | Error::WatchEnded { .. } | Error::StillThere { .. } => true,
            Error::Protocol { .. }
            | Error::InvalidObject { .. }
            | Error::InvalidPipeline(_)
            | Error::ClusterUnreachable { .. }
            | Error::Simulation(_)
            | Error::RunExists { .. }
            | Error::Unrunnable { .. } => false,
        }
    }

    /// Whether this is the API server's 404 NotFound.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Api { code: 404, .. })
    }

    /// Builds an [`Error::Api`] from an HTTP status code and a message, as the
    /// simulated cluster and tests do.
    pub fn api(operation: &'static str, object: &str, code: u16, message: &str) -> Self {
        Error::Api {
            operation,
            object: object.to_owned(),
            code,
            reason: reason_for(code).to_owned(),
            message: message.to_owned(),
        }
    }
}

/// The transient HTTP status codes (K8S API conventions: retry with backoff).
pub fn is_transient_status(code: u16) -> bool {
    matches!(code, 429 | 500 | 502 | 503 | 504 | 410)
}

fn reason_for(code: u16) -> &'static str {
    match code {
        403 => "Forbidden",
        404 => "NotFound",
        409 => "AlreadyExists",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Runs c8s pipelines on a Kubernetes cluster with kube-rs.
//!
//! ```no_run
//! # async fn example(pod: k8s_openapi::api::core::v1::Pod) -> Result<(), c8s_kube::Error> {
//! use std::time::Duration;
//! use c8s_kube::{KubeCluster, RunOptions, Step, StepObject, run_pipeline};
//!
//! let cluster = KubeCluster::connect(Duration::from_secs(5)).await?;
//! let steps = vec![Step::new("unit", StepObject::Pod(Box::new(pod)))];
//! let options = RunOptions::new("orders-b42").parallelism(4).timeout(Duration::from_secs(3600));
//! let status = run_pipeline(&cluster, steps, options, std::future::pending()).await?;
//! println!("{}", status.to_json());
//! # Ok(())
//! # }
//! ```
//!
//! The scheduling, retry and timeout logic is generic over [`Cluster`]:
//! [`KubeCluster`] implements it with kube-rs, `sim::SimCluster` (feature `test-util`, for tests) in memory
//! with virtual time and injected faults.
//!
//! - [`run_pipeline`] applies `c8s_pipeline_model::scheduler::decide` (the one
//!   scheduler): each [`Step`] starts as soon as its own dependencies
//!   succeeded, longest remaining path first within
//!   [`RunOptions::parallelism`]; it fails fast or continues, and returns a
//!   [`RunStatus`] (JSON via serde). Cancellation is any future:
//!   when it completes, the run's pods are deleted and the run is `Cancelled`.
//! - Transient faults (HTTP 429/5xx, broken watches, image pull back-off and
//!   evictions up to a limit) are retried per [`RetryPolicy`] with bounded
//!   exponential backoff and deterministic jitter; a retried step gets a new
//!   pod (`-r1`, `-r2`...) only once the old one is gone.
//! - [`assess`] reads a pod's status: `main`'s exit code decides, native
//!   sidecar exit codes (137/143) never count, an unschedulable pod is
//!   "waiting for capacity", and a legacy pod whose sidecars outlive `main` is
//!   deleted.
//! - Logs only leave through a [`LogMasker`] into a [`LogSink`];
//!   `c8s_pipeline_model::SecretMasker` implements [`LogMasker`].
//! - A run opens one watch ([`Cluster::watch_run`]) that every attempt
//!   follows; a pod that cannot be scheduled or does not start is bounded
//!   ([`RunOptions::capacity_wait`], [`RunOptions::start_timeout`]), and a
//!   cause that will not resolve is read from its Events ([`Cluster::events`]).
//! - A run keeps what it must not forget in the cluster (its run record,
//!   [`Cluster::save_record`]): a runner started again with the same run id
//!   and [`RunOptions::resume`] rebuilds every step from it and from the
//!   run's objects, so no step is lost and none runs twice. Finished pods are
//!   deleted without waiting until they are gone ([`Cluster::start_delete`]).
//! - [`reap`] deletes what finished or crashed runs left behind.
//! - [`KubeCluster::connect`] fails fast with [`Error::ClusterUnreachable`]
//!   when no cluster answers.

pub mod archive;
mod cluster;
mod error;
mod hash;
mod kube_api;
mod kube_cluster;
mod kube_record;
mod kube_watch;
mod log_archive;
mod logs;
#[cfg(feature = "test-util")]
#[doc(hidden)]
pub mod mock;
mod observe;
mod options;
mod outcome;
mod pipeline;
mod rate;
mod reap;
mod record;
mod resume;
mod retry;
mod rules;
mod run_watch;
mod schedule;
#[cfg(feature = "test-util")]
#[doc(hidden)]
pub mod sim;
mod step;
mod watch;
pub use watch::{EVENTS_AFTER, unresolvable, waited_too_long};

pub use cluster::{
    Cluster, ListedObject, ListedRecord, LogStream, MANAGED_BY_LABEL, MANAGED_BY_VALUE, MANAGED_SELECTOR,
    ObjectEvent, ObjectKind, ObjectRef, ObservationStream, RUN_LABEL, RunWatchStream, STEP_LABEL, StepObject,
    end_of_list, is_end_of_list,
};
pub use error::{Error, Result, is_transient_status};
pub use kube_cluster::KubeCluster;
pub use log_archive::ArchiveOptions;
pub use logs::{ChunkMasker, LogMasker, LogOptions, LogSink, MaskerFactory, NoSecrets, stream_masked_logs};
pub use observe::{
    Assessment, ContainerObservation, FinishedPod, MAIN_CONTAINER, PodCondition, PodObservation, PodPhase,
    SIDECAR_RESTART_LIMIT, assess,
};
pub use options::{FailureMode, ProgressFn, RunOptions, Step};
pub use outcome::{
    ArchivedLogRef, RunState, RunStatus, StepOutcome, StepState, StepStatus, TerminationReason,
};
pub use pipeline::run_pipeline;
pub use rate::RateLimiter;
pub use reap::{ReapOptions, ReapReport, RunLiveness, reap};
pub use retry::{AttemptFailure, RetriesSpent, RetryPolicy};
pub use rules::{PolicySettings, object_names, plan_steps, plan_steps_with, policy};
pub use step::attempt_name;
/// The k8s-openapi and kube versions this crate is built with.
pub use {k8s_openapi, kube};

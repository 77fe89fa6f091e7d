//! c8s in the cluster: the `Pipeline`, `PipelineRun` and
//! `RepositoryConnection` resources ([`crd`]), the controller that drives
//! runs on the same scheduler as `c8s run`, and webhook triggers.

pub mod crd;
pub mod error;
pub mod reconcile;
pub mod steps;

pub use error::Error;
pub use lease::LeaderLease;
pub use reconcile::{Admission, Reconciled, RunView, Settings, reconcile_run};
pub use steps::{RunStep, RunSteps, owner_of, run_context, run_steps};
pub mod controller;
pub mod lease;
pub mod webhook;

//! c8s in the cluster: the `Pipeline`, `PipelineRun` and
//! `RepositoryConnection` resources ([`crd`]), the controller that drives
//! runs on the same scheduler as `c8s run` ([`reconcile`], [`controller`]),
//! leader election ([`LeaderLease`]), Prometheus metrics ([`metrics`]),
//! webhook triggers ([`webhook`]) and the validating admission webhook
//! ([`validate`]).
//!
//! ```
//! use c8s_controller::crd::{PipelineRun, PipelineRunSpec, crds, structural_violations};
//!
//! let run = PipelineRun::new("shop-b7", PipelineRunSpec {
//!     pipeline_ref: Some("shop".into()),
//!     branch: "main".into(),
//!     build: 7,
//!     ..PipelineRunSpec::default()
//! });
//! assert_eq!(serde_json::to_value(&run).unwrap()["apiVersion"], "c8s.dev/v1alpha1");
//! assert!(crds().iter().all(|crd| structural_violations(crd).is_empty()));
//! ```

mod admission;
pub mod archive;
pub mod cache;
mod coalesce;
pub mod concourse;
pub mod controller;
pub mod crd;
pub mod dashboard;
mod drive;
pub mod error;
mod fair;
pub mod finished;
pub mod lease;
pub mod ledger;
pub mod metrics;
mod observe;
mod pending;
pub mod reconcile;
mod settings;
mod status;
pub mod steps;
pub mod throttle;
pub mod validate;
pub mod webhook;

pub use drive::drive_run;
pub use error::Error;
pub use lease::LeaderLease;
pub use reconcile::{Admission, Reconciled, RunView, SUCCEEDED, Settings, reconcile_run};
pub use steps::{RunStep, RunSteps, owner_of, run_context, run_steps};

//! The one error type of the Helm adapter.

use std::path::PathBuf;

use c8s_pod_builder::model::sidecar::Errors;

/// Why a chart could not be built or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The chart name is not usable: it names the chart and prefixes every
    /// named template, so it must be a DNS-1123 label.
    #[error("chart name {name:?} {reason}")]
    InvalidChartName {
        /// The name as given.
        name: String,
        /// Why it is not usable.
        reason: String,
    },
    /// A sidecar chart needs at least one sidecar.
    #[error("a sidecar chart needs at least one sidecar")]
    NoSidecars,
    /// A pipeline chart needs at least one plan (every step was skipped?).
    #[error("a pipeline chart needs at least one task plan (are all steps skipped on this branch?)")]
    NoPlans,
    /// The sidecars break the rules of a sidecar file (names, images, ports, ...).
    #[error("invalid sidecars: {0}")]
    InvalidSidecars(#[source] Errors),
    /// pod-builder could not render a plan (or a sidecar).
    #[error("cannot render {what}: {source}")]
    Render {
        /// What was being rendered (`step "unit"`, `sidecar "postgres"`).
        what: String,
        /// pod-builder's error.
        #[source]
        source: c8s_pod_builder::Error,
    },
    /// Serialising values to YAML failed.
    #[error("cannot serialise values: {0}")]
    Serialize(#[source] c8s_pod_builder::Error),
    /// Writing a chart file failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

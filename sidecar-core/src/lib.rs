//! Sidecar service definitions for CI tasks: the types of a sidecar file, strict
//! YAML parsing, and validation against every rule Kubernetes (and a shared
//! network namespace) would enforce later — reported all at once, each at its
//! file, line, column and field.
//!
//! ```
//! use c8s_sidecar_core::{parse_sidecars, Problem};
//!
//! let text = "\
//! - name: postgres
//!   image: postgres:16
//!   ports: [{ containerPort: 5432 }]
//! - name: pg-replica
//!   image: postgres:16
//!   ports: [{ containerPort: 5432 }]
//! ";
//! let errors = parse_sidecars("ci/pg.yml", text).unwrap_err();
//! assert_eq!(
//!     errors.to_string(),
//!     "ci/pg.yml:6:11: sidecar \"pg-replica\": ports[0]: port 5432/TCP is already used by sidecar \"postgres\""
//! );
//! assert!(matches!(errors.as_slice()[0].problem(), Some(Problem::PortConflict { port: 5432, .. })));
//! ```
//!
//! This crate does no I/O: files are read through a [`SourceReader`] the caller provides.
//!
//! Features: `yaml` (default) reads sidecar files ([`parse_sidecars`],
//! [`load_sidecar_files`]; adds serde-saphyr's deserializer and
//! granit-parser); without it the types and rules serve sidecars built in
//! code. `schema` (default) adds [`sidecar_file_schema`] (schemars).

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod aliases;
pub mod build;
pub mod contract;
pub mod error;
pub mod finding;
#[cfg(feature = "yaml")]
#[cfg_attr(docsrs, doc(cfg(feature = "yaml")))]
pub mod load;
pub mod names;
pub mod path;
pub mod paths;
pub mod quantity;
pub mod rules;
#[cfg(feature = "schema")]
pub mod schema;
pub mod snippet;
pub mod types;
pub mod validate;
#[cfg(feature = "yaml")]
#[cfg_attr(docsrs, doc(cfg(feature = "yaml")))]
pub mod yaml;

pub use build::ResourcesError;
pub use error::{Error, ErrorList, Errors, Position, Problem};
#[cfg(feature = "yaml")]
pub use load::{MemorySource, SourceReader, load_sidecar_files, parse_sidecars, parse_sidecars_bytes};
pub use path::{FieldPath, Segment};
pub use quantity::{Quantity, QuantityError, QuantityFormat};
#[cfg(feature = "schema")]
pub use schema::sidecar_file_schema;
pub use types::{
    EnvVar, ExecCheck, HttpGetCheck, Port, PortRef, ProbeHandler, Protocol, Readiness, ReadinessProbe,
    Resources, SecretKeyRef, SidecarConfig, TcpSocketCheck,
};
pub use validate::validate_sidecars;

// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

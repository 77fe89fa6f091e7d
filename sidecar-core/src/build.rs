//! Building sidecars in code: chained `with_*` setters, [`Resources`] from
//! strings with a typed error, and `From` impls for [`Readiness`].
//!
//! ```
//! use c8s_sidecar_core::{ReadinessProbe, Resources, SidecarConfig, validate_sidecars};
//!
//! let postgres = SidecarConfig::new("postgres", "postgres:16")
//!     .with_env("POSTGRES_PASSWORD", "test")
//!     .with_port(5432)
//!     .with_resources(Resources::parse([("cpu", "100m"), ("memory", "256Mi")], [("memory", "512Mi")])?)
//!     .with_readiness(ReadinessProbe::exec(["pg_isready", "-h", "127.0.0.1"]))
//!     .with_run_as_user(999)
//!     .with_scratch(["/var/lib/postgresql/data"]);
//! assert!(validate_sidecars(&[postgres]).is_ok());
//! # Ok::<(), c8s_sidecar_core::build::ResourcesError>(())
//! ```

use std::collections::BTreeMap;

use crate::quantity::{Quantity, QuantityError};
use crate::types::{EnvVar, Port, Readiness, ReadinessProbe, Resources, SidecarConfig};

/// A quantity in [`Resources::parse`] that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{section}.{resource}: {source}")]
pub struct ResourcesError {
    /// `requests` or `limits`.
    pub section: &'static str,
    /// The resource name (`cpu`, `memory`, ...).
    pub resource: String,
    /// Why the value is not a quantity.
    #[source]
    pub source: QuantityError,
}

fn parse_list<'a>(
    section: &'static str,
    list: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<BTreeMap<String, Quantity>, ResourcesError> {
    list.into_iter()
        .map(|(resource, text)| match Quantity::parse(text) {
            Ok(q) => Ok((resource.to_owned(), q)),
            Err(source) => Err(ResourcesError {
                section,
                resource: resource.to_owned(),
                source,
            }),
        })
        .collect()
}

impl Resources {
    /// Requests and limits from `(resource, quantity)` pairs such as
    /// `("memory", "256Mi")`; the first unparsable quantity is the error.
    pub fn parse<'a>(
        requests: impl IntoIterator<Item = (&'a str, &'a str)>,
        limits: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ResourcesError> {
        Ok(Self {
            requests: parse_list("requests", requests)?,
            limits: parse_list("limits", limits)?,
        })
    }

    /// Adds a request.
    pub fn with_request(mut self, resource: impl Into<String>, quantity: Quantity) -> Self {
        self.requests.insert(resource.into(), quantity);
        self
    }

    /// Adds a limit.
    pub fn with_limit(mut self, resource: impl Into<String>, quantity: Quantity) -> Self {
        self.limits.insert(resource.into(), quantity);
        self
    }
}

impl From<ReadinessProbe> for Readiness {
    fn from(probe: ReadinessProbe) -> Self {
        Readiness::Probe(probe)
    }
}

pub(crate) fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Vec<String> {
    items.into_iter().map(Into::into).collect()
}

impl SidecarConfig {
    /// Sets the ENTRYPOINT override.
    pub fn with_command<S: Into<String>>(mut self, command: impl IntoIterator<Item = S>) -> Self {
        self.command = strings(command);
        self
    }

    /// Sets the arguments.
    pub fn with_args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args = strings(args);
        self
    }

    /// Sets the working directory.
    pub fn with_working_dir(mut self, dir: impl Into<String>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }

    /// Adds an env var with a literal value.
    pub fn with_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push(EnvVar::value(name, value));
        self
    }

    /// Adds an env var read from key `key` of Secret `secret` (never inlined).
    pub fn with_secret_env(
        mut self,
        name: impl Into<String>,
        secret: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        self.env.push(EnvVar::secret(name, secret, key));
        self
    }

    /// Adds a TCP port.
    pub fn with_port(mut self, container_port: i32) -> Self {
        self.ports.push(Port::tcp(container_port));
        self
    }

    /// Sets requests and limits.
    pub fn with_resources(mut self, resources: Resources) -> Self {
        self.resources = resources;
        self
    }

    /// Sets the readiness check: a [`ReadinessProbe`], or [`Readiness::Disabled`].
    pub fn with_readiness(mut self, readiness: impl Into<Readiness>) -> Self {
        self.readiness = readiness.into();
        self
    }

    /// Sets the UID the image expects.
    pub fn with_run_as_user(mut self, uid: i64) -> Self {
        self.run_as_user = Some(uid);
        self
    }

    /// Lets the sidecar run as root (its pod then only meets Pod Security baseline).
    pub fn with_run_as_root(mut self) -> Self {
        self.run_as_root = true;
        self
    }

    /// Adds writable emptyDir mounts at these absolute paths.
    pub fn with_scratch<S: Into<String>>(mut self, paths: impl IntoIterator<Item = S>) -> Self {
        self.scratch.extend(strings(paths));
        self
    }
}

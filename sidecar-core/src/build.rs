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
use crate::types::{Port, Readiness, ReadinessProbe, Resources, SidecarConfig};

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

/// Defines the `with_*` setters every container c8s runs shares on `$ty`,
/// a struct with the container fields `command`, `args`, `working_dir`,
/// `env`, `resources`, `run_as_user` and `run_as_root` (as
/// [`SidecarConfig`] and pipeline-model's `TaskPlan` have). `$whose` names
/// the container in the setters' docs (`"the sidecar's"`).
///
/// Written once here so that a sidecar and a task plan are built the same way.
#[macro_export]
macro_rules! container_setters {
    ($ty:ty, $whose:literal) => {
        impl $ty {
            #[doc = concat!("Sets ", $whose, " ENTRYPOINT override (e.g. `[\"sh\", \"-ec\", \"make test\"]`).")]
            pub fn with_command<S: Into<String>>(mut self, command: impl IntoIterator<Item = S>) -> Self {
                self.command = command.into_iter().map(Into::into).collect();
                self
            }

            #[doc = concat!("Sets ", $whose, " arguments.")]
            pub fn with_args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
                self.args = args.into_iter().map(Into::into).collect();
                self
            }

            #[doc = concat!("Sets ", $whose, " working directory.")]
            pub fn with_working_dir(mut self, dir: impl Into<String>) -> Self {
                self.working_dir = Some(dir.into());
                self
            }

            #[doc = concat!("Adds an env var with a literal value to ", $whose, " env.")]
            pub fn with_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
                self.env.push($crate::EnvVar::value(name, value));
                self
            }

            /// Adds an env var read from key `key` of Secret `secret` (never inlined).
            pub fn with_secret_env(
                mut self,
                name: impl Into<String>,
                secret: impl Into<String>,
                key: impl Into<String>,
            ) -> Self {
                self.env.push($crate::EnvVar::secret(name, secret, key));
                self
            }

            #[doc = concat!("Sets ", $whose, " requests and limits.")]
            pub fn with_resources(mut self, resources: $crate::Resources) -> Self {
                self.resources = resources;
                self
            }

            #[doc = concat!("Sets the UID ", $whose, " image runs as.")]
            pub fn with_run_as_user(mut self, uid: i64) -> Self {
                self.run_as_user = Some(uid);
                self
            }

            #[doc = concat!("Lets ", $whose, " container run as root (its pod then only meets Pod Security baseline).")]
            pub fn with_run_as_root(mut self) -> Self {
                self.run_as_root = true;
                self
            }
        }
    };
}

container_setters!(SidecarConfig, "the sidecar's");

impl SidecarConfig {
    /// Adds a TCP port.
    pub fn with_port(mut self, container_port: i32) -> Self {
        self.ports.push(Port::tcp(container_port));
        self
    }

    /// Sets the readiness check: a [`ReadinessProbe`], or [`Readiness::Disabled`].
    pub fn with_readiness(mut self, readiness: impl Into<Readiness>) -> Self {
        self.readiness = readiness.into();
        self
    }

    /// Adds writable emptyDir mounts at these absolute paths.
    pub fn with_scratch<S: Into<String>>(mut self, paths: impl IntoIterator<Item = S>) -> Self {
        self.scratch.extend(paths.into_iter().map(Into::into));
        self
    }
}

//! The sidecar file format (README, "A sidecar file") as Rust types.
//!
//! Every type can be built in code (`SidecarConfig::new(name, image)` plus public
//! fields) as well as parsed; all derive serde with the camelCase names users write.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer};
use serde::ser::{Serialize, Serializer};
use serde_derive::{Deserialize, Serialize};

use crate::quantity::Quantity;

/// One sidecar service container: a database, cache or mock server that runs
/// beside a task's main container in the same pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct SidecarConfig {
    /// Container name: a DNS-1123 label, unique within the pod; `main`
    /// reaches the service under this name (it resolves to 127.0.0.1).
    pub name: String,
    /// More host names `main` reaches the service under (`db` for
    /// `postgres`); unique in the pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Image reference, e.g. `postgres:16` or `ghcr.io/org/mock@sha256:…`.
    pub image: String,
    /// Overrides the image's ENTRYPOINT.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Overrides the image's CMD.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Working directory inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Environment variables, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Ports the service listens on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Resource requests and limits.
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    /// How to tell that the service is up. Absent: a TCP check on the first
    /// TCP port, if any; `none`: no check.
    #[serde(default, skip_serializing_if = "Readiness::is_default")]
    pub readiness: Readiness,
    /// Restart the service (not `main`) once this check has failed for
    /// `timeoutSeconds` in all (default 30; `periodSeconds` default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<ReadinessProbe>,
    /// The UID the image expects to run as (e.g. 999 for `postgres`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    /// Opt out of the non-root security profile (docker-in-docker and the like).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub run_as_root: bool,
    /// Absolute paths the image must be able to write; each gets an emptyDir.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scratch: Vec<String>,
}

impl SidecarConfig {
    /// A sidecar with a name and an image and nothing else.
    pub fn new(name: impl Into<String>, image: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            aliases: Vec::new(),
            image: image.into(),
            command: Vec::new(),
            args: Vec::new(),
            working_dir: None,
            env: Vec::new(),
            ports: Vec::new(),
            resources: Resources::default(),
            readiness: Readiness::Default,
            liveness: None,
            run_as_user: None,
            run_as_root: false,
            scratch: Vec::new(),
        }
    }

    /// The readiness check that applies, after defaults: an explicit check,
    /// or a TCP connect on the first TCP port, or none. UDP and SCTP ports get
    /// no default check: a kubelet `tcpSocket` probe can never succeed on them.
    pub fn effective_readiness(&self) -> Option<ReadinessProbe> {
        match &self.readiness {
            Readiness::Probe(probe) => Some(probe.clone()),
            Readiness::Disabled => None,
            Readiness::Default => self
                .ports
                .iter()
                .find(|port| port.protocol == Protocol::Tcp)
                .map(|port| ReadinessProbe::tcp(PortRef::Number(port.container_port))),
        }
    }
}

/// An environment variable: a literal value or a reference to a Secret key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct EnvVar {
    /// Variable name (`[-._a-zA-Z][-._a-zA-Z0-9]*`).
    pub name: String,
    /// A literal value. Mutually exclusive with `secretKeyRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The value comes from a key of a Secret; it is never inlined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
}

impl EnvVar {
    /// A variable with a literal value.
    pub fn value(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: Some(value.into()),
            secret_key_ref: None,
        }
    }

    /// A variable whose value comes from `key` of Secret `secret`.
    pub fn secret(name: impl Into<String>, secret: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: None,
            secret_key_ref: Some(SecretKeyRef {
                name: secret.into(),
                key: key.into(),
            }),
        }
    }
}

/// A reference to one key of a Kubernetes Secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SecretKeyRef {
    /// The Secret's name (a DNS-1123 subdomain).
    pub name: String,
    /// The key within the Secret (`[-._a-zA-Z0-9]+`).
    pub key: String,
}

/// A port a sidecar listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct Port {
    /// The port number, 1..=65535.
    pub container_port: i32,
    /// TCP (default), UDP or SCTP.
    #[serde(default, skip_serializing_if = "Protocol::is_tcp")]
    pub protocol: Protocol,
    /// Optional IANA service name (≤ 15 chars), usable by probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Port {
    /// A TCP port with no name.
    pub fn tcp(container_port: i32) -> Self {
        Self {
            container_port,
            protocol: Protocol::Tcp,
            name: None,
        }
    }
}

/// A port's protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Protocol {
    /// TCP, the default.
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
    /// SCTP.
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    fn is_tcp(&self) -> bool {
        *self == Protocol::Tcp
    }

    /// The name Kubernetes uses: `TCP`, `UDP`, `SCTP`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Resource requests and limits, keyed by resource name (`cpu`, `memory`,
/// `ephemeral-storage`, extended resources).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// What the scheduler reserves.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, Quantity>,
    /// The most the container may use.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, Quantity>,
}

impl Resources {
    /// Whether neither requests nor limits are set.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.limits.is_empty()
    }
}

/// Whether and how a sidecar's readiness is checked before `main` starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Readiness {
    /// Not written: TCP on the first TCP port, if the sidecar has one.
    #[default]
    Default,
    /// `readiness: none` — start `main` without waiting for this sidecar.
    Disabled,
    /// An explicit check.
    Probe(ReadinessProbe),
}

impl Readiness {
    /// Whether this is the unwritten default.
    pub fn is_default(&self) -> bool {
        *self == Readiness::Default
    }
}

impl Serialize for Readiness {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Readiness::Default => serializer.serialize_none(),
            Readiness::Disabled => serializer.serialize_str("none"),
            Readiness::Probe(probe) => probe.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Readiness {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Readiness;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`none` or a check (tcpSocket, httpGet or exec)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Readiness, E> {
                match v {
                    "none" => Ok(Readiness::Disabled),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_unit<E: de::Error>(self) -> Result<Readiness, E> {
                Ok(Readiness::Default)
            }
            fn visit_none<E: de::Error>(self) -> Result<Readiness, E> {
                Ok(Readiness::Default)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Readiness, A::Error> {
                ReadinessProbe::deserialize(de::value::MapAccessDeserializer::new(map)).map(Readiness::Probe)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Readiness {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Readiness".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let probe = generator.subschema_for::<ReadinessProbe>();
        schemars::json_schema!({
            "description": "`none`, or a readiness check. When absent, a TCP check on the first TCP port.",
            "oneOf": [ { "const": "none" }, probe ]
        })
    }
}

/// A readiness check: exactly one of `tcpSocket`, `httpGet`, `exec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ReadinessProbe {
    /// Ready when a TCP connection succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketCheck>,
    /// Ready when an HTTP GET answers 200..399.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetCheck>,
    /// Ready when a command exits 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecCheck>,
    /// Seconds between checks (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<i32>,
    /// Seconds to wait in all for the service to become ready (default 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
}

impl ReadinessProbe {
    /// A TCP connect check on `port`.
    pub fn tcp(port: PortRef) -> Self {
        Self {
            tcp_socket: Some(TcpSocketCheck { port }),
            ..Self::default()
        }
    }

    /// An HTTP GET check of `path` on `port`.
    pub fn http(path: impl Into<String>, port: PortRef) -> Self {
        Self {
            http_get: Some(HttpGetCheck {
                path: path.into(),
                port,
            }),
            ..Self::default()
        }
    }

    /// A command check.
    pub fn exec<S: Into<String>>(command: impl IntoIterator<Item = S>) -> Self {
        Self {
            exec: Some(ExecCheck {
                command: command.into_iter().map(Into::into).collect(),
            }),
            ..Self::default()
        }
    }

    /// Sets the seconds between checks.
    pub fn with_period_seconds(mut self, seconds: i32) -> Self {
        self.period_seconds = Some(seconds);
        self
    }

    /// Sets how long to wait in all for readiness.
    pub fn with_timeout_seconds(mut self, seconds: i32) -> Self {
        self.timeout_seconds = Some(seconds);
        self
    }

    /// The check's handler, if exactly one is set.
    pub fn handler(&self) -> Option<ProbeHandler<'_>> {
        match (&self.tcp_socket, &self.http_get, &self.exec) {
            (Some(tcp), None, None) => Some(ProbeHandler::TcpSocket(tcp)),
            (None, Some(http), None) => Some(ProbeHandler::HttpGet(http)),
            (None, None, Some(exec)) => Some(ProbeHandler::Exec(exec)),
            _ => None,
        }
    }

    /// How many handlers are set (valid checks have exactly one).
    pub fn handler_count(&self) -> usize {
        usize::from(self.tcp_socket.is_some())
            + usize::from(self.http_get.is_some())
            + usize::from(self.exec.is_some())
    }
}

/// The one handler of a valid [`ReadinessProbe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeHandler<'a> {
    /// A TCP connect.
    TcpSocket(&'a TcpSocketCheck),
    /// An HTTP GET.
    HttpGet(&'a HttpGetCheck),
    /// A command.
    Exec(&'a ExecCheck),
}

/// A TCP connect check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TcpSocketCheck {
    /// Port number or the name of a declared port.
    pub port: PortRef,
}

/// An HTTP GET check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HttpGetCheck {
    /// Request path, starting with `/`.
    pub path: String,
    /// Port number or the name of a declared port.
    pub port: PortRef,
}

/// A command check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ExecCheck {
    /// The command and its arguments (not run in a shell).
    pub command: Vec<String>,
}

/// A port given by number or by the name of a declared port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortRef {
    /// A port number.
    Number(i32),
    /// The name of a port declared in `ports`.
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(name) => f.write_str(name),
        }
    }
}

impl Serialize for PortRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            PortRef::Number(n) => serializer.serialize_i32(*n),
            PortRef::Name(name) => serializer.serialize_str(name),
        }
    }
}

impl<'de> Deserialize<'de> for PortRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = PortRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number or a port name")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortRef, E> {
                i32::try_from(v)
                    .map(PortRef::Number)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &"a port number 1..65535"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortRef, E> {
                i32::try_from(v)
                    .map(PortRef::Number)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &"a port number 1..65535"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortRef, E> {
                Ok(PortRef::Name(v.to_owned()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for PortRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PortRef".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A port number (1..65535) or the name of a declared port",
            "anyOf": [
                { "type": "integer", "minimum": 1, "maximum": 65535 },
                { "type": "string", "maxLength": 15 }
            ]
        })
    }
}

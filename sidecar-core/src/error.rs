//! Errors: every one names the file, line, column and field it is about.

use std::fmt;

use serde_derive::{Deserialize, Serialize};

use crate::path::FieldPath;
use crate::quantity::QuantityError;

/// A place in a source file. Line and column are 1-based; 0 means unknown
/// (for configs built in code rather than parsed).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    /// The file name as the user gave it (`ci/pg.yml`), or `<input>`.
    pub file: String,
    /// 1-based line, 0 if unknown.
    pub line: u32,
    /// 1-based column, 0 if unknown.
    pub column: u32,
}

impl Position {
    /// A position in `file` at `line`:`column`.
    pub fn new(file: impl Into<String>, line: u32, column: u32) -> Self {
        Self {
            file: file.into(),
            line,
            column,
        }
    }

    /// A whole file, no particular line.
    pub fn file(file: impl Into<String>) -> Self {
        Self::new(file, 0, 0)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = if self.file.is_empty() {
            "<input>"
        } else {
            &self.file
        };
        if self.line == 0 {
            write!(f, "{file}")
        } else {
            write!(f, "{file}:{}:{}", self.line, self.column)
        }
    }
}

/// Something wrong with a sidecar file, or with sidecars built in code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read through the [`SourceReader`](crate::SourceReader).
    #[error("{file}: cannot read: {reason}")]
    Read {
        /// The file name as requested.
        file: String,
        /// Why, as the reader said.
        reason: String,
    },
    /// The bytes are not a well-formed document of the expected shape: invalid
    /// UTF-8 or YAML, an unknown field, a duplicate key, a wrong type, a budget exceeded.
    #[error("{at}: {message}")]
    Syntax {
        /// Where the parser stopped.
        at: Position,
        /// What the parser expected.
        message: String,
    },
    /// The document is well-formed but breaks a rule.
    #[error("{at}: {}{}{problem}", subject_prefix(subject), field_prefix(field))]
    Invalid {
        /// Where the offending value is written.
        at: Position,
        /// The full path to the value from the document root.
        path: FieldPath,
        /// What the value belongs to, e.g. `sidecar "postgres"`.
        subject: Option<String>,
        /// The path relative to the subject (`ports[0].containerPort`).
        field: FieldPath,
        /// The rule that was broken (boxed to keep `Result`s small).
        problem: Box<Problem>,
    },
}

/// `value` in double quotes, as `{:?}` prints it, shortened to about 80
/// characters so a hostile megabyte-long value cannot flood a message.
pub fn quoted(value: &str) -> String {
    const KEEP: usize = 64;
    if value.len() <= 80 {
        return format!("{value:?}");
    }
    let cut = (0..=KEEP).rev().find(|&i| value.is_char_boundary(i)).unwrap_or(0);
    format!("{:?}… ({} bytes)", &value[..cut], value.len())
}

fn subject_prefix(subject: &Option<String>) -> String {
    subject.as_ref().map(|s| format!("{s}: ")).unwrap_or_default()
}

fn field_prefix(field: &FieldPath) -> String {
    if field.is_root() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

impl Error {
    /// Where this error points.
    pub fn position(&self) -> Position {
        match self {
            Error::Read { file, .. } => Position::file(file.clone()),
            Error::Syntax { at, .. } | Error::Invalid { at, .. } => at.clone(),
        }
    }

    /// The full path of the offending value, for validation errors.
    pub fn path(&self) -> Option<&FieldPath> {
        match self {
            Error::Invalid { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The broken rule, for validation errors.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::Invalid { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

/// A validation rule that a value breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// A required string is empty.
    #[error("must not be empty")]
    Empty,
    /// Not a DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, ≤ 63).
    #[error("{} is not a valid name: {reason}", quoted(value))]
    InvalidName {
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The name is reserved for containers c8s creates.
    #[error(
        "{} is reserved (main, artifact-helper, git-clone and c8s-* are used by c8s)",
        quoted(name)
    )]
    ReservedName {
        /// The name.
        name: String,
    },
    /// A name used twice.
    #[error("{kind} {} is already defined at {first}", quoted(name))]
    Duplicate {
        /// What kind of thing: `sidecar`, `env var`, `port name`, ...
        kind: &'static str,
        /// The repeated name.
        name: String,
        /// Where it was first defined.
        first: Position,
    },
    /// Not a valid image reference.
    #[error("{} is not a valid image reference: {reason}", quoted(value))]
    InvalidImage {
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A port number outside 1..=65535.
    #[error("port {port} is out of range 1..65535")]
    PortOutOfRange {
        /// The number.
        port: i64,
    },
    /// Two containers in one pod declare the same port and protocol.
    #[error("port {port}/{protocol} is already used by {owner}")]
    PortConflict {
        /// The port number.
        port: i32,
        /// The protocol.
        protocol: crate::Protocol,
        /// Who declared it first, e.g. `sidecar "pg-replica"` (at file:line:col).
        owner: String,
    },
    /// A port name breaks the IANA service name rules.
    #[error("{} is not a valid port name: {reason}", quoted(value))]
    InvalidPortName {
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An environment variable name Kubernetes rejects.
    #[error("{} is not a valid environment variable name: {reason}", quoted(value))]
    InvalidEnvName {
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Both `value` and `secretKeyRef` set.
    #[error("set either value or secretKeyRef, not both")]
    ValueAndSecret,
    /// A Secret name that is not a DNS-1123 subdomain.
    #[error("{} is not a valid Secret name: {reason}", quoted(value))]
    InvalidSecretName {
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A Secret key outside `[-._a-zA-Z0-9]+`, ≤ 253.
    #[error("{} is not a valid Secret key: {reason}", quoted(value))]
    InvalidSecretKey {
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A resource quantity that does not parse.
    #[error("{0}")]
    InvalidQuantity(QuantityError),
    /// A negative resource quantity.
    #[error("{resource} {value} must not be negative")]
    NegativeQuantity {
        /// The resource name.
        resource: String,
        /// The value as written.
        value: String,
    },
    /// A resource name Kubernetes does not accept.
    #[error("{} is not a valid resource name", quoted(value))]
    InvalidResourceName {
        /// The value as written.
        value: String,
    },
    /// A request above its limit.
    #[error("{resource} request {request} exceeds its limit {limit}")]
    RequestExceedsLimit {
        /// The resource name.
        resource: String,
        /// The request as written.
        request: String,
        /// The limit as written.
        limit: String,
    },
    /// A readiness check with zero or several handlers.
    #[error("a readiness check needs exactly one of tcpSocket, httpGet or exec (found {found})")]
    ProbeHandlers {
        /// How many were set.
        found: usize,
    },
    /// A readiness check port naming no declared port.
    #[error("port {} is not declared in ports", quoted(name))]
    UnknownPortName {
        /// The name used.
        name: String,
    },
    /// An HTTP check path that does not start with `/`.
    #[error("{} must be an absolute path starting with /", quoted(value))]
    InvalidHttpPath {
        /// The value as written.
        value: String,
    },
    /// A duration or count that must be positive.
    #[error("must be at least 1 (got {value})")]
    NotPositive {
        /// The value.
        value: i64,
    },
    /// A number above the largest value the Kubernetes API server accepts.
    #[error("must be at most {max} (got {value})")]
    TooLarge {
        /// The value.
        value: i64,
        /// The largest accepted value.
        max: i64,
    },
    /// An empty command list.
    #[error("command must have at least one element")]
    EmptyCommand,
    /// A path that must be absolute and clean.
    #[error("{} must be an absolute path without `..`", quoted(value))]
    InvalidPath {
        /// The value as written.
        value: String,
    },
    /// `runAsUser: 0` without `runAsRoot: true`.
    #[error(
        "runAsUser {uid} is not allowed: use a non-root UID, or set runAsRoot: true to opt out of the restricted profile"
    )]
    RootUser {
        /// The UID.
        uid: i64,
    },
    /// `dependsOn` (or an input) names a step the pipeline does not define.
    #[error("step {} is not defined", quoted(name))]
    UnknownStep {
        /// The name used.
        name: String,
    },
    /// A step lists itself in `dependsOn`.
    #[error("a step cannot depend on itself")]
    SelfDependency,
    /// Steps that depend on each other in a circle.
    #[error("dependency cycle: {}", path.join(" -> "))]
    Cycle {
        /// The cycle, first step repeated at the end: `[a, b, c, a]`.
        path: Vec<String>,
    },
    /// An input from a step this step does not (transitively) depend on.
    #[error("step {step:?} is not a dependency of this step; add it to dependsOn")]
    InputNotFromDependency {
        /// The producing step named by the input.
        step: String,
    },
    /// An input naming an output its step does not declare.
    #[error("step {step:?} declares no output {output:?}")]
    UnknownOutput {
        /// The producing step.
        step: String,
        /// The output asked for.
        output: String,
    },
    /// `${{ matrix.X }}`, or an exclude/include key, naming no dimension.
    #[error("matrix dimension {} is not defined ({known})", quoted(name))]
    UnknownDimension {
        /// The name used.
        name: String,
        /// The dimensions there are, e.g. `dimensions: go, db` or `the pipeline has no matrix`.
        known: String,
    },
    /// An include entry that leaves out a dimension.
    #[error("no value for matrix dimension {}", quoted(name))]
    MissingDimension {
        /// The dimension left out.
        name: String,
    },
    /// A `${{ ... }}` expression that is not a matrix reference.
    #[error("{expression:?} is not a valid expression: {reason}")]
    InvalidExpression {
        /// The expression as written.
        expression: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The matrix expands to more combinations than allowed.
    #[error("the matrix expands to {combinations} combinations; the limit is {limit}")]
    MatrixTooLarge {
        /// How many combinations there would be.
        combinations: u128,
        /// The configured limit.
        limit: usize,
    },
    /// A duration that does not parse (`90s`, `30m`, `1h30m` do).
    #[error("{} is not a valid duration: {reason}", quoted(value))]
    InvalidDuration {
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A path that must be relative to the workspace and stay inside it.
    #[error(
        "{} must be a relative path inside the workspace (no leading /, no `..`)",
        quoted(value)
    )]
    InvalidRelativePath {
        /// The value as written.
        value: String,
    },
    /// A value c8s does not support in this place.
    #[error("{} is not supported: expected {expected}", quoted(value))]
    Unsupported {
        /// The value as written.
        value: String,
        /// What is supported.
        expected: String,
    },
}

/// Every problem found in an input, in document order. Displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Errors(Vec<Error>);

impl Errors {
    /// Wraps a list of errors.
    pub fn new(errors: Vec<Error>) -> Self {
        Self(errors)
    }

    /// The errors, in order.
    pub fn as_slice(&self) -> &[Error] {
        &self.0
    }

    /// The errors, owned.
    pub fn into_vec(self) -> Vec<Error> {
        self.0
    }

    /// How many errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the errors.
    pub fn iter(&self) -> std::slice::Iter<'_, Error> {
        self.0.iter()
    }
}

impl From<Error> for Errors {
    fn from(error: Error) -> Self {
        Self(vec![error])
    }
}

impl IntoIterator for Errors {
    type Item = Error;
    type IntoIter = std::vec::IntoIter<Error>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

//! Errors: every one names the file, line, column and field it is about.

use std::fmt;

use serde_derive::{Deserialize, Serialize};

use crate::path::FieldPath;
use crate::paths::PathError;
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
    #[error("{at}: {}{problem}", about(subject.as_deref(), field))]
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

/// A finding placed in its file: what an `Invalid` error is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<P = Problem> {
    /// Which document (index into the [`Locator`](crate::validate::Locator)'s documents).
    pub doc: usize,
    /// Where the offending value is written.
    pub at: Position,
    /// The full path to the value from the document root.
    pub path: FieldPath,
    /// What the value belongs to, e.g. `sidecar "postgres"`.
    pub subject: Option<String>,
    /// The path relative to the subject.
    pub field: FieldPath,
    /// The rule that was broken.
    pub problem: P,
}

impl<P> Located<P> {
    /// `problem` at `path` of document `doc`, written at `at`, about
    /// `subject` (if any) whose own path is `subject_path`: the field is
    /// `path` relative to it (the whole path when it is not below it).
    pub fn new(
        doc: usize,
        at: Position,
        path: FieldPath,
        subject: Option<String>,
        subject_path: &FieldPath,
        problem: P,
    ) -> Self {
        let field = path.strip_prefix(subject_path).unwrap_or_else(|| path.clone());
        Self {
            doc,
            at,
            path,
            subject,
            field,
            problem,
        }
    }

    /// This place with `problem` instead, and the problem it had.
    pub fn replace_problem<Q>(self, problem: Q) -> (Located<Q>, P) {
        let located = Located {
            doc: self.doc,
            at: self.at,
            path: self.path,
            subject: self.subject,
            field: self.field,
            problem,
        };
        (located, self.problem)
    }
}

/// Implements `From<Located<$problem>>` for an error enum `$error` whose
/// `Invalid` variant is a located problem (fields `at`, `path`, `subject`,
/// `field`, and `problem` boxed), as sidecar-core's [`Error`] and
/// pipeline-model's are: each crate keeps its own error type, and both
/// build it from a [`Located`] the same way.
#[macro_export]
macro_rules! invalid_from_located {
    ($error:ident, $problem:ty) => {
        impl From<$crate::error::Located<$problem>> for $error {
            fn from(located: $crate::error::Located<$problem>) -> Self {
                $error::Invalid {
                    at: located.at,
                    path: located.path,
                    subject: located.subject,
                    field: located.field,
                    problem: Box::new(located.problem),
                }
            }
        }
    };
}

invalid_from_located!(Error, Problem);

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

fn absolute_path_message(value: &str, reason: PathError) -> String {
    match reason {
        PathError::NotAbsolute | PathError::ParentDir | PathError::Empty => {
            format!("{} must be an absolute path without `..`", quoted(value))
        }
        _ => format!("{} must be an absolute path: {reason}", quoted(value)),
    }
}

/// What an `Invalid` error is about, before its problem: `sidecar "pg": ports[0]: `
/// (the subject and the field relative to it, each left out when there is none).
pub fn about(subject: Option<&str>, field: &FieldPath) -> String {
    let subject = subject.map(|s| format!("{s}: ")).unwrap_or_default();
    if field.is_root() {
        subject
    } else {
        format!("{subject}{field}: ")
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
    /// A path that must be absolute and clean ([`paths::absolute`](crate::paths::absolute)).
    #[error("{}", absolute_path_message(value, *reason))]
    InvalidPath {
        /// The value as written.
        value: String,
        /// Which rule it breaks.
        reason: PathError,
    },
    /// `runAsUser: 0` without `runAsRoot: true`.
    #[error(
        "runAsUser {uid} is not allowed: use a non-root UID, or set runAsRoot: true to opt out of the restricted profile"
    )]
    RootUser {
        /// The UID.
        uid: i64,
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
pub type Errors = ErrorList<Error>;

/// A list of errors in document order, displayed one per line: this crate's
/// [`Errors`], and the error lists of crates built on it (pipeline-model's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorList<E>(Vec<E>);

impl<E> ErrorList<E> {
    /// Wraps a list of errors.
    pub fn new(errors: Vec<E>) -> Self {
        Self(errors)
    }

    /// The errors, in order.
    pub fn as_slice(&self) -> &[E] {
        &self.0
    }

    /// The errors, owned.
    pub fn into_vec(self) -> Vec<E> {
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
    pub fn iter(&self) -> std::slice::Iter<'_, E> {
        self.0.iter()
    }

    /// The same errors as another crate's error type, each converted (a
    /// sidecar file's errors inside a pipeline's).
    pub fn convert<F: From<E>>(self) -> ErrorList<F> {
        ErrorList(self.0.into_iter().map(F::from).collect())
    }
}

impl<E> From<E> for ErrorList<E> {
    fn from(error: E) -> Self {
        Self(vec![error])
    }
}

impl<E> IntoIterator for ErrorList<E> {
    type Item = E;
    type IntoIter = std::vec::IntoIter<E>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<E: fmt::Display> fmt::Display for ErrorList<E> {
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

impl<E: fmt::Debug + fmt::Display> std::error::Error for ErrorList<E> {}

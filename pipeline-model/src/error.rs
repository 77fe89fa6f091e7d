//! The errors of pipeline-model: pipelines, matrices, DAGs, task plans and
//! Concourse files. Every one is located (file, line, column, field path).
//! A sidecar-core rule broken in the crate's own document (an inline
//! sidecar, a step's env) is [`Error::Invalid`] with [`Problem::Rule`]; an
//! error in a sidecar file, or in a Concourse task config's `sidecars` (read
//! with the sidecar file schema), is sidecar-core's, wrapped as
//! [`Error::Sidecar`] with the cause as its `source()`.

use c8s_sidecar_core::error::{about, quoted};
use c8s_sidecar_core::paths::PathError;
use c8s_sidecar_core::snippet::Positioned;
use c8s_sidecar_core::validate::{Finding, Located, Locator, Rule};
use c8s_sidecar_core::{FieldPath, Position};

/// Something wrong with a pipeline, a task plan or a Concourse file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read through the [`SourceReader`](crate::SourceReader).
    #[error("{file}: cannot read: {reason}")]
    Read {
        /// The file name as requested.
        file: String,
        /// Why, as the reader said.
        reason: String,
    },
    /// The bytes are not a well-formed document of the expected shape.
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
        /// What the value belongs to, e.g. `step "unit"`.
        subject: Option<String>,
        /// The path relative to the subject (`dependsOn[0]`).
        field: FieldPath,
        /// The rule that was broken (boxed to keep `Result`s small).
        problem: Box<Problem>,
    },
    /// An error in a sidecar file (or a Concourse task config's `sidecars`), as sidecar-core reports it.
    #[error("{0}")]
    Sidecar(#[from] c8s_sidecar_core::Error),
}

impl Error {
    /// Where this error points.
    pub fn position(&self) -> Position {
        match self {
            Error::Read { file, .. } => Position::file(file.clone()),
            Error::Syntax { at, .. } | Error::Invalid { at, .. } => at.clone(),
            Error::Sidecar(e) => e.position(),
        }
    }

    /// The full path of the offending value, for validation errors.
    pub fn path(&self) -> Option<&FieldPath> {
        match self {
            Error::Invalid { path, .. } => Some(path),
            Error::Sidecar(e) => e.path(),
            _ => None,
        }
    }

    /// The broken rule, for validation errors of this crate.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::Invalid { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The broken sidecar rule: a [`Problem::Rule`], or the problem of a
    /// wrapped sidecar error.
    pub fn rule(&self) -> Option<&c8s_sidecar_core::Problem> {
        match self {
            Error::Invalid { problem, .. } => match problem.as_ref() {
                Problem::Rule(rule) => Some(rule),
                _ => None,
            },
            Error::Sidecar(e) => e.problem(),
            _ => None,
        }
    }

    /// A reading or parsing error of a document that is not a sidecar file
    /// (a pipeline, a task config), from sidecar-core's YAML reader: read and
    /// syntax errors become this crate's; rule violations stay wrapped.
    pub fn document(error: c8s_sidecar_core::Error) -> Self {
        match error {
            c8s_sidecar_core::Error::Read { file, reason } => Error::Read { file, reason },
            c8s_sidecar_core::Error::Syntax { at, message } => Error::Syntax { at, message },
            other => Error::Sidecar(other),
        }
    }

    /// `problem` about `subject` at `path` in a document whose positions
    /// `locator` knows (document 0).
    #[cfg(feature = "pipeline")]
    pub(crate) fn at(
        locator: &Locator<'_>,
        path: FieldPath,
        subject: Option<(String, &FieldPath)>,
        problem: Problem,
    ) -> Self {
        let at = locator.position(0, &path);
        let root = FieldPath::root();
        let (subject, base) = match subject {
            Some((label, base)) => (Some(label), base),
            None => (None, &root),
        };
        Located::new(0, at, path, subject, base, problem).into()
    }
}

impl Positioned for Error {
    fn position(&self) -> Position {
        Error::position(self)
    }
}

/// A rule a pipeline, a step or a plan breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
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
    /// A path that must be relative to the workspace and stay inside it
    /// ([`paths::workspace_relative`](c8s_sidecar_core::paths::workspace_relative)).
    #[error("{}", relative_path_message(value, *reason))]
    InvalidRelativePath {
        /// The value as written.
        value: String,
        /// Which rule it breaks.
        reason: PathError,
    },
    /// A value c8s does not support in this place.
    #[error("{} is not supported: expected {expected}", quoted(value))]
    Unsupported {
        /// The value as written.
        value: String,
        /// What is supported.
        expected: String,
    },
    /// A rule shared with sidecars (names, images, env, resources, ports, ...).
    #[error("{0}")]
    Rule(#[from] c8s_sidecar_core::Problem),
}

fn relative_path_message(value: &str, reason: PathError) -> String {
    match reason {
        PathError::ControlCharacter => format!(
            "{} must be a relative path inside the workspace: {reason}",
            quoted(value)
        ),
        _ => format!(
            "{} must be a relative path inside the workspace (no leading /, no `..`)",
            quoted(value)
        ),
    }
}

impl Rule for Problem {
    fn first_mut(&mut self) -> Option<&mut Position> {
        match self {
            Problem::Rule(rule) => rule.first_mut(),
            _ => None,
        }
    }
}

/// Places `findings` with `locator` and makes them errors, in document
/// order. A sidecar rule broken in a file other than `main` (a sidecar file)
/// is a sidecar error, wrapped.
pub(crate) fn locate(locator: &Locator<'_>, findings: Vec<Finding<Problem>>, main: usize) -> Vec<Error> {
    let error = |located: Located<Problem>| {
        let doc = located.doc;
        match located.replace_problem(()) {
            (place, Problem::Rule(rule)) if doc != main => {
                Error::Sidecar(place.replace_problem(rule).0.into())
            }
            (place, problem) => place.replace_problem(problem).0.into(),
        }
    };
    locator.locate_as(findings).into_iter().map(error).collect()
}

c8s_sidecar_core::invalid_from_located!(Error, Problem);

/// Every problem found in an input, in document order, displayed one per
/// line; `render_with_source` adds each offending line with a caret.
///
/// ```
/// use c8s_pipeline_model::{parse_pipeline, MemorySource};
/// let text = "name: demo\nrepository: https://example.com/demo.git\nsteps:\n  - name: a\n    image: alpine:3\n    dependsOn: [b]\n";
/// let errors = parse_pipeline(".c8s.yaml", text, &MemorySource::new()).unwrap_err();
/// assert_eq!(
///     errors.render_with_source(".c8s.yaml", text),
///     "error: .c8s.yaml:6:17: step \"a\": dependsOn[0]: step \"b\" is not defined\n  |\n6 |     dependsOn: [b]\n  |                 ^\n"
/// );
/// ```
pub type Errors = c8s_sidecar_core::ErrorList<Error>;

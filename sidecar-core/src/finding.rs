//! Findings: a broken rule at a field path, before it is located in a file,
//! and the [`Sink`] rules report them into. The sidecar rules
//! ([`crate::validate`], [`crate::rules`], [`crate::aliases`]) and other
//! crates' rules (pipeline-model's) all write findings through these pieces.

use crate::error::{Position, Problem};
use crate::path::FieldPath;
use crate::types::SidecarConfig;

/// The largest int32: the API server's bound for UIDs, probe fields and deadlines.
pub const MAX_INT32: i64 = i32::MAX as i64;

/// A problem type findings can carry: sidecar-core's [`Problem`], or a
/// crate's own problem type that wraps it (pipeline-model's), so that rules
/// written here report into either crate's errors.
pub trait Rule: From<Problem> {
    /// Where a duplicate's first definition is, to fill in when locating.
    fn first_mut(&mut self) -> Option<&mut Position>;
}

impl Rule for Problem {
    fn first_mut(&mut self) -> Option<&mut Position> {
        match self {
            Problem::Duplicate { first, .. } => Some(first),
            _ => None,
        }
    }
}

/// One broken rule, before it is located in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding<P = Problem> {
    /// Which document (index into the [`Locator`](crate::validate::Locator)'s documents).
    pub doc: usize,
    /// Full path of the offending value.
    pub path: FieldPath,
    /// What the value belongs to (`sidecar "postgres"`), if anything.
    pub subject: Option<String>,
    /// Path of the subject, so the message can show the field relative to it.
    pub subject_path: FieldPath,
    /// The rule.
    pub problem: P,
    /// For duplicates: the first definition, to fill in `Problem::Duplicate::first`.
    pub first: Option<(usize, FieldPath)>,
}

/// A sidecar and where it is written: document index and path.
#[derive(Debug, Clone, Copy)]
pub struct Placed<'s> {
    /// The sidecar.
    pub sidecar: &'s SidecarConfig,
    /// Its document.
    pub doc: usize,
    /// Its path in that document.
    pub path: &'s FieldPath,
}

/// Collects findings about one subject (a sidecar, a step, a whole file)
/// written at one path of a document.
pub struct Sink<'f, P = Problem> {
    findings: &'f mut Vec<Finding<P>>,
    doc: usize,
    subject: Option<String>,
    subject_path: FieldPath,
}

impl<'f, P: Rule> Sink<'f, P> {
    /// A sink for findings about `subject` at `placed`.
    pub fn new(findings: &'f mut Vec<Finding<P>>, placed: Placed<'_>, subject: String) -> Self {
        Self::at(findings, placed.doc, placed.path.clone(), Some(subject))
    }

    /// A sink for findings about `subject` (or the document itself, with
    /// `None`) written at `path` of document `doc`.
    pub fn at(
        findings: &'f mut Vec<Finding<P>>,
        doc: usize,
        path: FieldPath,
        subject: Option<String>,
    ) -> Self {
        Self {
            findings,
            doc,
            subject,
            subject_path: path,
        }
    }

    /// Where the subject is written.
    pub fn path(&self) -> &FieldPath {
        &self.subject_path
    }

    /// The document the subject is written in.
    pub fn doc(&self) -> usize {
        self.doc
    }

    /// The findings collected so far, for rules that push their own.
    pub fn findings(&mut self) -> &mut Vec<Finding<P>> {
        self.findings
    }

    /// Records `problem` at `path`.
    pub fn problem(&mut self, path: FieldPath, problem: impl Into<P>) {
        self.push(path, problem.into(), None);
    }

    /// Records that `name` (a `kind`) at `at` repeats the one at `first`.
    pub fn duplicate(&mut self, at: FieldPath, kind: &'static str, name: &str, first: FieldPath) {
        let problem = Problem::Duplicate {
            kind,
            name: name.to_owned(),
            first: Position::default(),
        };
        self.push(at, problem.into(), Some(first));
    }

    fn push(&mut self, path: FieldPath, problem: P, first: Option<FieldPath>) {
        self.findings.push(Finding {
            doc: self.doc,
            path,
            subject: self.subject.clone(),
            subject_path: self.subject_path.clone(),
            problem,
            first: first.map(|p| (self.doc, p)),
        });
    }
}

//! Errors found while reading a Concourse file, each with file, line and column.

use c8s_sidecar_core::{FieldPath, Position};

use crate::error::{Error, Errors};

/// A line and column, 1-based.
pub type At = (u32, u32);

/// Errors found while reading one file: every one located.
#[derive(Debug)]
pub struct Report<'f> {
    file: &'f str,
    errors: Vec<Error>,
}

impl<'f> Report<'f> {
    /// An empty report for `file`.
    pub fn new(file: &'f str) -> Self {
        Self {
            file,
            errors: Vec::new(),
        }
    }

    /// Records `message` about the value at `path`, written at `at`.
    pub fn error(&mut self, at: At, path: &FieldPath, message: impl std::fmt::Display) {
        let at = Position::new(self.file, at.0, at.1);
        let message = if path.is_root() {
            message.to_string()
        } else {
            format!("{path}: {message}")
        };
        self.errors.push(Error::Syntax { at, message });
    }

    /// Adds errors located elsewhere (e.g. sidecar validation).
    pub fn extend(&mut self, errors: Errors) {
        self.errors.extend(errors);
    }

    /// The file the report is about.
    pub fn file(&self) -> &'f str {
        self.file
    }

    /// Whether nothing was reported.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    /// The errors so far, if any, in document order, each once.
    pub fn finish(mut self) -> Result<(), Errors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            self.errors.sort_by_key(|e| {
                let at = e.position();
                (at.file != self.file, at.file, at.line, at.column)
            });
            // The same error once (the copies of an `across` step share their text).
            let mut seen = std::collections::BTreeSet::new();
            self.errors.retain(|e| seen.insert(e.to_string()));
            Err(Errors::new(self.errors))
        }
    }

    /// `Ok(value)` when nothing was reported.
    pub fn into_result<T>(self, value: T) -> Result<T, Errors> {
        self.finish().map(|()| value)
    }
}

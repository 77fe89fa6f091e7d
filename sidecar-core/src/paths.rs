//! Path rules, written once: every crate that checks a path (a sidecar's
//! `scratch`, a step's `caches`/`outputs`/inputs, a Concourse task's dirs, a
//! plan built in code) calls these, so the parser and `render_pod` agree.
//!
//! ```
//! use c8s_sidecar_core::paths::{self, PathError};
//!
//! assert_eq!(paths::workspace_relative("target/"), Ok(()));
//! assert_eq!(paths::workspace_relative("/root/.cache"), Err(PathError::Absolute));
//! assert_eq!(paths::absolute("/var/../etc"), Err(PathError::ParentDir));
//! ```

/// Why a path is unusable. The messages complete "`<path>` ...".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// Empty, or only slashes.
    #[error("must not be empty")]
    Empty,
    /// Absolute where a workspace-relative path is needed.
    #[error("must be relative to the workspace")]
    Absolute,
    /// Relative where an absolute path is needed.
    #[error("must be absolute")]
    NotAbsolute,
    /// A `..` component, which could leave the directory it is meant for.
    #[error("must not contain '..'")]
    ParentDir,
    /// A control character (a newline would break the shell scripts and the
    /// messages that show the path).
    #[error("must not contain control characters")]
    ControlCharacter,
}

/// No `..` component and no control character: what every path needs.
pub fn clean(path: &str) -> Result<(), PathError> {
    if path.split('/').any(|part| part == "..") {
        return Err(PathError::ParentDir);
    }
    if path.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }
    Ok(())
}

/// An absolute, clean path inside a container (`/var/lib/postgresql/data`).
pub fn absolute(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    clean(path)
}

/// A clean path relative to the workspace that stays inside it (`target/`,
/// `dist`); a trailing `/` is allowed, a path of slashes alone is empty.
pub fn workspace_relative(path: &str) -> Result<(), PathError> {
    if path.trim_end_matches('/').is_empty() {
        return Err(PathError::Empty);
    }
    if path.starts_with('/') {
        return Err(PathError::Absolute);
    }
    clean(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Verdict = Result<(), PathError>;

    #[test]
    fn verdicts() {
        let cases: &[(&str, Verdict, Verdict)] = &[
            ("target", Err(PathError::NotAbsolute), Ok(())),
            ("target/", Err(PathError::NotAbsolute), Ok(())),
            ("a/b/c", Err(PathError::NotAbsolute), Ok(())),
            ("/data", Ok(()), Err(PathError::Absolute)),
            ("", Err(PathError::Empty), Err(PathError::Empty)),
            ("/", Ok(()), Err(PathError::Empty)),
            ("//", Ok(()), Err(PathError::Empty)),
            ("../up", Err(PathError::NotAbsolute), Err(PathError::ParentDir)),
            ("a/../b", Err(PathError::NotAbsolute), Err(PathError::ParentDir)),
            ("/var/../etc", Err(PathError::ParentDir), Err(PathError::Absolute)),
            ("a..b", Err(PathError::NotAbsolute), Ok(())),
            (
                "a\nb",
                Err(PathError::NotAbsolute),
                Err(PathError::ControlCharacter),
            ),
            (
                "/a\tb",
                Err(PathError::ControlCharacter),
                Err(PathError::Absolute),
            ),
        ];
        for (path, absolute_verdict, relative_verdict) in cases {
            assert_eq!(absolute(path), *absolute_verdict, "absolute({path:?})");
            assert_eq!(
                workspace_relative(path),
                *relative_verdict,
                "workspace_relative({path:?})"
            );
        }
    }
}

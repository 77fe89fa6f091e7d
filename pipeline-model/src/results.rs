//! Step results: small values a step publishes (a digest, a version, a URL)
//! that later steps read as env, `NAME: "${{ steps.build.results.digest }}"`.
//!
//! They travel through the artifact store, not the pod's termination message
//! (4 KiB in all, `TerminationMessagePath` in the core/v1 Container API):
//! the producing step writes each to `$C8S_RESULTS/<name>`, its artifact
//! helper saves that directory as one more output ([`RESULTS_DIR`]); each
//! dependent unpacks it as one more input (under [`RESULTS_OF_DIR`]) and
//! `main`'s wrapper exports the values before the command runs.

use serde_derive::{Deserialize, Serialize};

/// Where a step writes its results, relative to the workspace (`$C8S_RESULTS`).
pub const RESULTS_DIR: &str = ".c8s/results";
/// Where a dependent finds step `S`'s results: `<this>/S/<name>`, relative to the workspace.
pub const RESULTS_OF_DIR: &str = ".c8s/results-of";
/// The largest result, in bytes: well above the 4 KiB a termination message
/// holds, and below the kernel's 128 KiB limit on one environment string
/// (`MAX_ARG_STRLEN`), so every result fits in an env var.
pub const MAX_RESULT_BYTES: u32 = 64 * 1024;

/// An env var of `main` whose value is result `result` of step `step`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ResultEnv {
    /// The environment variable.
    pub name: String,
    /// The producing step (a transitive dependency).
    pub step: String,
    /// One of its declared results.
    pub result: String,
}

impl ResultEnv {
    /// `name` set to result `result` of step `step`.
    pub fn new(name: impl Into<String>, step: impl Into<String>, result: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            step: step.into(),
            result: result.into(),
        }
    }
}

/// Whether `name` may name a result: a letter, then letters, digits, `_` or
/// `-`, at most 63 characters (it is a file name and a word of a list).
pub fn check_result_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    if !bytes.next().is_some_and(|b| b.is_ascii_alphabetic()) {
        return Err("a result name starts with a letter".to_owned());
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err("a result name has only letters, digits, `_` and `-`".to_owned());
    }
    if name.len() > 63 {
        return Err("a result name has at most 63 characters".to_owned());
    }
    Ok(())
}

/// The step and result a whole value `${{ steps.S.results.R }}` names;
/// `None` when `text` is not a step-result reference, `Err` when it is one
/// but malformed.
///
/// ```
/// use c8s_pipeline_model::results::result_reference;
/// assert_eq!(result_reference("${{ steps.build.results.digest }}"), Some(Ok(("build".into(), "digest".into()))));
/// assert_eq!(result_reference("${{ matrix.go }}"), None);
/// assert!(result_reference("${{ steps.build.digest }}").is_some_and(|r| r.is_err()));
/// ```
pub fn result_reference(text: &str) -> Option<Result<(String, String), String>> {
    let inner = text.trim().strip_prefix("${{")?.strip_suffix("}}")?.trim();
    let rest = inner.strip_prefix("steps.")?;
    let parsed = match rest.split('.').collect::<Vec<_>>()[..] {
        [step, "results", result] if !step.is_empty() => match check_result_name(result) {
            Ok(()) => Ok((step.to_owned(), result.to_owned())),
            Err(reason) => Err(reason),
        },
        _ => Err("a step result is written ${{ steps.STEP.results.NAME }}".to_owned()),
    };
    Some(parsed)
}

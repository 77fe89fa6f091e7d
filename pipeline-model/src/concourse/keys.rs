//! The keys that make a mapping a step of a build plan and its hooks
//! (`StepPrecedence` in `atc/steps.go`), and the keys under which a runner
//! gives the lowering the local vars it read when the job ran.

/// The hook keys of jobs and steps.
pub const HOOKS: [&str; 5] = ["on_success", "on_failure", "on_error", "on_abort", "ensure"];

/// The step keys: a step is the mapping with exactly one of them.
pub const KINDS: [&str; 9] = [
    "get",
    "put",
    "task",
    "in_parallel",
    "aggregate",
    "do",
    "try",
    "set_pipeline",
    "load_var",
];

/// What precedes a `load_var`'s `file` (or a get's saved version) in the key
/// a runner gives its value under (`FetchFile::VAR_PREFIX`).
pub const VAR_PREFIX: &str = "c8s-load-var:";

/// What an unreadable `load_var` file stands for (`FetchFile::UNREADABLE_VAR`).
pub const UNREADABLE_VAR: &str = "c8s-load-var-not-read";

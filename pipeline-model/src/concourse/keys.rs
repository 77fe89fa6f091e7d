//! The keys that make a mapping a step of a build plan and its hooks
//! (`StepPrecedence` in `atc/steps.go`).

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

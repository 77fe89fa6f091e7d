//! What a `finally` step and a retried step see of the run, by name: the env
//! variables and the label the runner fills in when it creates the pod.
//!
//! A rendered pod cannot know how the run will go, so `c8s render` writes
//! [`UNKNOWN`] for every outcome and `1` for the attempt; the runner (`c8s
//! run`, `c8s_kube::run_pipeline`) replaces those values in `main`'s env
//! when it creates each pod. Steps skipped by a branch condition are known
//! at plan time and rendered as `Skipped`.

/// The run's outcome when the `finally` steps start: `Succeeded` (every
/// other step succeeded), `Failed` or `Cancelled`.
pub const RUN_STATUS_ENV: &str = "C8S_RUN_STATUS";

/// The attempt number of the pod, from 1 (retries of either kind count).
pub const ATTEMPT_ENV: &str = "C8S_ATTEMPT";

/// The pod label carrying the attempt number, from 1.
pub const ATTEMPT_LABEL: &str = "c8s.dev/attempt";

/// The value a rendered pod carries until the runner knows the outcome.
pub const UNKNOWN: &str = "Unknown";

/// The env variable carrying step `step`'s outcome to a `finally` step:
/// `C8S_STEP_<NAME>_STATUS`, the name upper-cased with `-` as `_`; the value
/// is `Succeeded`, `Failed`, `Cancelled` or `Skipped`.
///
/// ```
/// assert_eq!(c8s_pipeline_model::finally::step_status_env("unit-tests"), "C8S_STEP_UNIT_TESTS_STATUS");
/// ```
pub fn step_status_env(step: &str) -> String {
    let name: String = step
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("C8S_STEP_{name}_STATUS")
}

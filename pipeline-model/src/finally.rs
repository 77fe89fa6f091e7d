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

/// A step's outcome as a `finally` step sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded.
    Succeeded,
    /// It failed (its retries spent).
    Failed,
    /// The run was cancelled, or it was stopped, before it ended.
    Cancelled,
    /// It never ran: a dependency failed, or it is not in the run (its
    /// branch condition left it out).
    Skipped,
    /// It has not ended yet (another `finally` step still running).
    Unknown,
}

impl Outcome {
    /// The value of its env variable.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Succeeded => "Succeeded",
            Outcome::Failed => "Failed",
            Outcome::Cancelled => "Cancelled",
            Outcome::Skipped => "Skipped",
            Outcome::Unknown => UNKNOWN,
        }
    }
}

/// The env a `finally` step starts with, the one rule of `c8s run` and the
/// controller: [`RUN_STATUS_ENV`] says `Cancelled` for a cancelled run,
/// `Succeeded` when every non-`finally` step of the run succeeded (a step a
/// branch condition left out is not in the run and does not count), else
/// `Failed`; then each `(variable, step)` of `watched` with `outcome(step)`.
///
/// ```
/// use c8s_pipeline_model::finally::{Outcome, outcome_env};
/// let watched = vec![("C8S_STEP_UNIT_STATUS".to_owned(), "unit".to_owned())];
/// let env = outcome_env(false, [Outcome::Succeeded], &watched, |_| Outcome::Succeeded);
/// assert_eq!(env[0], ("C8S_RUN_STATUS".to_owned(), "Succeeded".to_owned()));
/// assert_eq!(env[1].1, "Succeeded");
/// ```
pub fn outcome_env(
    cancelled: bool,
    run_steps: impl IntoIterator<Item = Outcome>,
    watched: &[(String, String)],
    outcome: impl Fn(&str) -> Outcome,
) -> Vec<(String, String)> {
    let run = if cancelled {
        "Cancelled"
    } else if run_steps.into_iter().all(|o| o == Outcome::Succeeded) {
        "Succeeded"
    } else {
        "Failed"
    };
    std::iter::once((RUN_STATUS_ENV.to_owned(), run.to_owned()))
        .chain(
            watched
                .iter()
                .map(|(var, step)| (var.clone(), outcome(step).word().to_owned())),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(cancelled: bool, steps: &[Outcome]) -> String {
        let watched = vec![
            ("A".to_owned(), "a".to_owned()),
            ("GONE".to_owned(), String::new()),
        ];
        let outcome = |s: &str| if s == "a" { steps[0] } else { Outcome::Skipped };
        outcome_env(cancelled, steps.iter().copied(), &watched, outcome)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn the_run_succeeded_only_when_every_step_in_it_did() {
        assert_eq!(
            env(false, &[Outcome::Succeeded]),
            "C8S_RUN_STATUS=Succeeded A=Succeeded GONE=Skipped"
        );
        assert_eq!(
            env(false, &[Outcome::Succeeded, Outcome::Skipped]),
            "C8S_RUN_STATUS=Failed A=Succeeded GONE=Skipped"
        );
        assert_eq!(
            env(false, &[Outcome::Failed]),
            "C8S_RUN_STATUS=Failed A=Failed GONE=Skipped"
        );
        assert_eq!(
            env(true, &[Outcome::Succeeded]),
            "C8S_RUN_STATUS=Cancelled A=Succeeded GONE=Skipped"
        );
    }
}

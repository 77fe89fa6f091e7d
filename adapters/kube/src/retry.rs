//! Retry policy: bounded exponential backoff with deterministic jitter.

use std::future::Future;
use std::time::Duration;

use backon::Retryable;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hash::fnv1a;

/// How transient faults are retried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries of one API call (create, delete, list) after a transient error.
    pub api_retries: u32,
    /// New pods for a step after image pull back-off (the pull limit).
    pub image_pull_retries: u32,
    /// New pods for a step after an eviction or a vanished pod.
    pub disruption_retries: u32,
    /// Consecutive re-subscriptions to a broken watch before giving up.
    pub watch_retries: u32,
    /// The first backoff.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
    /// Seeds the jitter, so two runs spread their retries differently but each
    /// run is reproducible.
    pub seed: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            api_retries: 5,
            image_pull_retries: 2,
            disruption_retries: 3,
            watch_retries: 10,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            seed: 0,
        }
    }
}

/// The retries a step has spent, by budget.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetriesSpent {
    /// The runner's own retries after an image pull back-off.
    pub image_pulls: u32,
    /// The runner's own retries after an eviction or a lost pod.
    pub disruptions: u32,
    /// The step's own `retries`.
    pub user: u32,
}

/// Why an attempt failed, as [`RetryPolicy::retry_after`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptFailure {
    /// Its image could not be pulled (the kubelet backs off).
    ImagePull,
    /// Its pod was evicted, preempted, or lost with its node.
    Disruption,
    /// It ran and ended without succeeding, for this reason.
    Ended(crate::TerminationReason),
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (0-based) of something keyed by
    /// `key`: `min(max, base * 2^attempt)`, scaled by a jitter factor in
    /// [0.5, 1.0) derived from `seed`, `key` and `attempt` (no randomness).
    pub fn backoff(&self, key: &str, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX));
        let capped = exp.min(self.max_delay);
        let hash = fnv1a(self.seed, &[key.as_bytes(), &attempt.to_le_bytes()]);
        let per_mille = 500 + (hash % 500) as u32;
        capped * per_mille / 1000
    }

    /// The one retry rule of `c8s run` and the controller: whether attempt
    /// `attempt` (from 0) of step `step`, failed with `failure`, gets another
    /// attempt, and after how long ([`RetryPolicy::backoff`]). A fault of
    /// the infrastructure spends this policy's own budget for its kind
    /// first ([`RetryPolicy::image_pull_retries`],
    /// [`RetryPolicy::disruption_retries`]), then the step's `retries` if
    /// they cover `infrastructure`; an attempt that ended spends the step's
    /// `retries` if they cover its cause; a timeout or a cancel is never
    /// retried. What is spent is counted in `spent`.
    ///
    /// ```
    /// use c8s_kube::{AttemptFailure, RetriesSpent, RetryPolicy, TerminationReason};
    /// let policy = RetryPolicy::default();
    /// let mut spent = RetriesSpent::default();
    /// // No retries of its own: an exit failure is final.
    /// assert!(policy.retry_after("unit", None, &mut spent, 0, AttemptFailure::Ended(TerminationReason::Error)).is_none());
    /// // An eviction spends the runner's own budget.
    /// assert!(policy.retry_after("unit", None, &mut spent, 0, AttemptFailure::Disruption).is_some());
    /// assert_eq!(spent.disruptions, 1);
    /// ```
    pub fn retry_after(
        &self,
        step: &str,
        retries: Option<&c8s_pipeline_model::Retries>,
        spent: &mut RetriesSpent,
        attempt: u32,
        failure: AttemptFailure,
    ) -> Option<Duration> {
        use c8s_pipeline_model::RetryCause;
        let user_allows = |cause, spent: &RetriesSpent| retries.is_some_and(|r| r.allows(cause, spent.user));
        let retried = match failure {
            AttemptFailure::ImagePull | AttemptFailure::Disruption => {
                let (count, limit) = match failure {
                    AttemptFailure::ImagePull => (&mut spent.image_pulls, self.image_pull_retries),
                    _ => (&mut spent.disruptions, self.disruption_retries),
                };
                if *count < limit {
                    *count += 1;
                    true
                } else if user_allows(RetryCause::Infrastructure, spent) {
                    spent.user += 1;
                    true
                } else {
                    false
                }
            }
            AttemptFailure::Ended(reason) => match reason.retry_cause() {
                Some(cause) if user_allows(cause, spent) => {
                    spent.user += 1;
                    true
                }
                _ => false,
            },
        };
        retried.then(|| self.backoff(step, attempt))
    }

    /// Runs `op` until it succeeds, fails permanently, or `api_retries` are
    /// used, sleeping [`RetryPolicy::backoff`] before each retry (the
    /// `backon` crate runs the loop; the delays stay this policy's own).
    /// kube-client's own retry layer is not used instead: it sits in
    /// [`crate::KubeCluster`]'s HTTP client only (not every [`crate::Cluster`]),
    /// retries only 429/503/504, and jitters at random.
    pub async fn call<T, F, Fut>(&self, key: &str, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let delays = (0..self.api_retries).map(|attempt| self.backoff(key, attempt));
        let mut attempt = 0u32;
        op.retry(delays)
            .sleep(tokio::time::sleep)
            .when(Error::is_transient)
            .notify(|e, _| {
                tracing::debug!(key, attempt, error = %e, "transient API error, retrying");
                attempt += 1;
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_deterministic_and_jittered() {
        let policy = RetryPolicy::default();
        for attempt in 0..40 {
            let d = policy.backoff("unit", attempt);
            assert_eq!(d, policy.backoff("unit", attempt));
            assert!(d <= policy.max_delay && d >= policy.base_delay / 2, "{d:?}");
        }
        assert_ne!(policy.backoff("unit", 3), policy.backoff("lint", 3));
        assert!(policy.backoff("unit", 0) < policy.backoff("unit", 4));
    }
}

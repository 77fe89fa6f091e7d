//! A client-side rate limit on the runner's API requests: a token bucket
//! (`qps` per second, bursts of `burst`), as client-go's default limiter, so a
//! wide pipeline cannot flood the API server.
//!
//! Kept by hand rather than on the `governor` crate: governor brings four
//! crates of its own even without its default features, its clocks are not
//! tokio's (the simulated cluster's tests run on tokio's paused time, so an
//! adapter clock would be needed), its `until_ready` sleeps on
//! `futures-timer` (real time), and its `check` does not reserve a slot the
//! way this bucket's tokens go negative, so concurrent waiters would wake
//! together instead of in turn: more code to adapt than these lines.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Result;
use crate::retry::RetryPolicy;

/// A token bucket on tokio's clock: `qps` requests per second on average,
/// bursts of `burst`. Tokens and when they were last counted; tokens go
/// negative to reserve, so concurrent waiters are served in turn.
#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<(f64, Instant)>,
    qps: f64,
    burst: f64,
}

impl RateLimiter {
    /// `qps` requests per second on average, `burst` at once; `qps == 0`: no limit.
    pub fn new(qps: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        RateLimiter {
            state: Mutex::new((burst, Instant::now())),
            qps: f64::from(qps),
            burst,
        }
    }

    /// Takes the next request's turn now and says how long to wait for it
    /// (zero: go at once), for a caller that sleeps on its own, such as a
    /// tower layer's `poll_ready`.
    pub fn reserve(&self) -> Duration {
        if self.qps <= 0.0 {
            return Duration::ZERO;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let (tokens, last) = *state;
        let refilled = (tokens + now.duration_since(last).as_secs_f64() * self.qps).min(self.burst);
        *state = (refilled - 1.0, now);
        if refilled >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - refilled) / self.qps)
        }
    }

    /// Waits for the next request's turn.
    pub async fn acquire(&self) {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Runs the API call `op` under `retry`'s API retries
    /// ([`RetryPolicy::call`], keyed by `key`), each try waiting for its turn
    /// here first.
    pub async fn call<T, F, Fut>(&self, retry: &RetryPolicy, key: &str, op: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let op = &op;
        retry
            .call(key, move || async move {
                self.acquire().await;
                op().await
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::RateLimiter;
    use std::time::Duration;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_then_requests_are_spaced() {
        let limiter = RateLimiter::new(10, 5);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        for _ in 0..10 {
            limiter.acquire().await;
        }
        // Ten more at 10 per second take a second (within rounding).
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(990) && took <= Duration::from_millis(1010),
            "{took:?}"
        );
        let unlimited = RateLimiter::new(0, 0);
        for _ in 0..1000 {
            unlimited.acquire().await;
        }
        assert_eq!(start.elapsed(), took);
    }
}

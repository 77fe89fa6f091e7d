//! The failure budget: how many unauthenticated deliveries (401, or a 503
//! because a webhook Secret could not be read) one client address may send
//! before the webhook answers 429 without doing any work. A token bucket per
//! address, kept as its "theoretical arrival time" (GCRA): a budget of `n`
//! per minute allows a burst of `n` failures, then one more every `60/n`
//! seconds. Successes neither spend nor need budget. Time is tokio's
//! [`Instant`], so a test with paused time is deterministic.
//!
//! Why not the `governor` crate: its keyed limiter spends a cell whenever a
//! check passes, where this budget is checked by every delivery and spent
//! only by failures; it counts on its own clock (`quanta`), not tokio's, so
//! the paused-time tests would need a clock adapter; and it bounds no key
//! count (no shared overflow bucket). It would also bring about fifteen
//! crates (`dashmap`, `quanta`, `raw-cpuid`, `rand`, `nonzero_ext`...) to
//! replace some sixty lines.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Most client addresses tracked at once. When that many have spent budget
/// recently, a new address shares one bucket with every other overflowing
/// address (key `None`), so memory stays bounded under a spray of addresses.
const MAX_CLIENTS: usize = 10_000;

/// Unauthenticated deliveries allowed per client address: `per_minute` at
/// once, then one every `60 s / per_minute`.
#[derive(Debug)]
pub struct FailureBudget {
    /// Failures allowed in a burst; 0 means no limit.
    burst: u32,
    /// The time one failure costs.
    interval: Duration,
    /// Per address (`None`: unknown, or overflow), when its bucket is full again.
    full_at: Mutex<HashMap<Option<IpAddr>, Instant>>,
}

impl FailureBudget {
    /// `per_minute` failures per client address per minute; 0 disables the limit.
    pub fn per_minute(per_minute: u32) -> Self {
        let interval = Duration::from_secs(60)
            .checked_div(per_minute)
            .unwrap_or(Duration::ZERO);
        FailureBudget {
            burst: per_minute,
            interval,
            full_at: Mutex::new(HashMap::new()),
        }
    }

    /// The allowed debt: a bucket holding one token still admits a request.
    fn tolerance(&self) -> Duration {
        self.interval.saturating_mul(self.burst.saturating_sub(1))
    }

    /// `Ok` if `client` may be served; `Err(wait)` when its budget is spent
    /// and the next failure is allowed after `wait`.
    pub fn check(&self, client: Option<IpAddr>) -> Result<(), Duration> {
        if self.burst == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let map = self
            .full_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // An address not tracked while the map is full shares the overflow bucket.
        let key = if map.contains_key(&client) || map.len() < MAX_CLIENTS {
            client
        } else {
            None
        };
        let Some(full_at) = map.get(&key) else {
            return Ok(());
        };
        let debt = full_at.saturating_duration_since(now);
        if debt > self.tolerance() {
            Err(debt.saturating_sub(self.tolerance()))
        } else {
            Ok(())
        }
    }

    /// Spends one failure of `client`'s budget.
    pub fn charge(&self, client: Option<IpAddr>) {
        if self.burst == 0 {
            return;
        }
        let now = Instant::now();
        let mut map = self
            .full_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut key = client;
        if !map.contains_key(&key) && map.len() >= MAX_CLIENTS {
            // Full buckets hold nothing: forget them first.
            map.retain(|_, full_at| *full_at > now);
            if map.len() >= MAX_CLIENTS {
                key = None;
            }
        }
        let full_at = map.entry(key).or_insert(now);
        *full_at = (*full_at).max(now) + self.interval;
    }

    /// How many client addresses have budget spent (for tests and logs).
    pub fn tracked(&self) -> usize {
        self.full_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_one_failure_per_interval_per_address() {
        let budget = FailureBudget::per_minute(3);
        for _ in 0..3 {
            assert_eq!(budget.check(ip(1)), Ok(()));
            budget.charge(ip(1));
        }
        assert_eq!(budget.check(ip(1)), Err(Duration::from_secs(20)));
        // Another address has its own budget.
        assert_eq!(budget.check(ip(2)), Ok(()));
        tokio::time::advance(Duration::from_secs(19)).await;
        assert_eq!(budget.check(ip(1)), Err(Duration::from_secs(1)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(budget.check(ip(1)), Ok(()));
        budget.charge(ip(1));
        assert!(budget.check(ip(1)).is_err());
        // A minute later the bucket is full again.
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            assert_eq!(budget.check(ip(1)), Ok(()));
            budget.charge(ip(1));
        }
        assert!(budget.check(ip(1)).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn zero_means_no_limit() {
        let budget = FailureBudget::per_minute(0);
        for _ in 0..1000 {
            budget.charge(ip(1));
        }
        assert_eq!(budget.check(ip(1)), Ok(()));
        assert_eq!(budget.tracked(), 0);
    }
}

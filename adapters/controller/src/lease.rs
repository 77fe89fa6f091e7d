//! Leader election with a `coordination.k8s.io/v1` Lease, so that of several
//! controller replicas exactly one acts. The protocol is client-go's
//! (`k8s.io/client-go/tools/leaderelection/leaderelection.go`):
//!
//! - the holder renews `spec.renewTime` every [`RETRY_PERIOD`]; if it has not
//!   renewed for [`RENEW_DEADLINE`] (shorter than the lease's duration) it
//!   stops acting, so it has stopped before any other replica may take over;
//! - another replica takes over only after `leaseDurationSeconds` *of its own
//!   clock* without seeing the record change (client-go's `observedTime`):
//!   another host's `renewTime` is never compared with the local clock, so
//!   clock skew between nodes cannot make two leaders;
//! - every write is a `replace` carrying the `resourceVersion` it read, so of
//!   two replicas racing for the same Lease the API server accepts one and
//!   answers the other 409 Conflict;
//! - the holder renews without reading: it replaces the Lease it last wrote,
//!   with that write's `resourceVersion` (client-go's "fast path for the
//!   leader to update optimistically", `tryAcquireOrRenew`); only when that
//!   fails (409: someone else wrote it) does it read the Lease again. A
//!   steady holder costs one write per renewal and no read.
//!
//! Written here rather than taken from kube-leader-election or
//! kube-lease-manager: neither had a release for kube 5 when this was written.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;

/// One replica's side of a Lease.
#[derive(Clone)]
pub struct LeaderLease {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration_seconds: i32,
    /// The record last seen (holder, renewTime, resourceVersion) and when, by this replica's clock.
    observed: Arc<Mutex<Option<(String, Instant)>>>,
    /// The Lease as this replica last wrote it, holding it: the next renewal
    /// replaces it without a read.
    held: Arc<Mutex<Option<Lease>>>,
}

/// How often the holder renews and a waiting replica looks (client-go's `RetryPeriod`, 2 s).
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);
/// How long the holder keeps acting without a successful renewal (client-go's
/// `RenewDeadline`, 10 s of a 15 s lease): it must stop before the lease expires.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);

impl LeaderLease {
    /// The Lease `name` in `api`'s namespace, held as `identity` (the pod
    /// name) for `duration_seconds` after each renewal.
    pub fn new(
        api: Api<Lease>,
        name: impl Into<String>,
        identity: impl Into<String>,
        duration_seconds: i32,
    ) -> Self {
        LeaderLease {
            api,
            name: name.into(),
            identity: identity.into(),
            duration_seconds: duration_seconds.max(1),
            observed: Arc::new(Mutex::new(None)),
            held: Arc::new(Mutex::new(None)),
        }
    }

    /// Takes or renews the Lease at `now`; true when this replica holds it
    /// afterwards. A lost race (409) is `Ok(false)`, never an error.
    pub async fn try_acquire_or_renew(&self, now: Timestamp) -> Result<bool, kube::Error> {
        if let Some(mut lease) = self.take_held() {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.renew_time = Some(MicroTime(now));
            spec.lease_duration_seconds = Some(self.duration_seconds);
            match self.api.replace(&self.name, &PostParams::default(), &lease).await {
                Ok(written) => {
                    self.keep_held(written);
                    return Ok(true);
                }
                // Someone else wrote it (or the write failed): read it, as a non-holder would.
                Err(e) => tracing::debug!(lease = %self.name, "renewing without a read failed: {e}"),
            }
        }
        let current = match self.api.get_opt(&self.name).await? {
            Some(lease) => lease,
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(now, now, 0)),
                };
                let created = self.api.create(&PostParams::default(), &lease).await;
                return self.held_if_written(created);
            }
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.as_deref().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        let next = if holder == self.identity {
            let acquired = spec.acquire_time.map_or(now, |t| t.0);
            self.spec(acquired, now, transitions)
        } else {
            let duration = spec
                .lease_duration_seconds
                .unwrap_or(self.duration_seconds)
                .max(1);
            let record = format!(
                "{holder}|{:?}|{}",
                spec.renew_time.as_ref().map(|t| t.0),
                current.metadata.resource_version.as_deref().unwrap_or_default()
            );
            let expired = self.unchanged_for(record) >= Duration::from_secs(duration.unsigned_abs().into());
            if !holder.is_empty() && !expired {
                return Ok(false);
            }
            self.spec(now, now, transitions + 1)
        };
        let mut lease = current;
        lease.spec = Some(next);
        // `lease.metadata.resourceVersion` is the one read: a concurrent writer makes this a 409.
        let replaced = self.api.replace(&self.name, &PostParams::default(), &lease).await;
        self.held_if_written(replaced)
    }

    /// Whether `written` holds the Lease now (409 is `false`); keeps the
    /// written Lease for the next renewal.
    fn held_if_written(&self, written: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
        match written {
            Ok(lease) => {
                self.keep_held(lease);
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn keep_held(&self, lease: Lease) {
        if let Ok(mut held) = self.held.lock() {
            *held = Some(lease);
        }
    }

    fn take_held(&self) -> Option<Lease> {
        self.held.lock().ok()?.take()
    }

    /// How long, by this replica's clock, the record has been `record`.
    fn unchanged_for(&self, record: String) -> Duration {
        let Ok(mut observed) = self.observed.lock() else {
            return Duration::ZERO;
        };
        match observed.as_ref() {
            Some((seen, at)) if *seen == record => at.elapsed(),
            _ => {
                *observed = Some((record, Instant::now()));
                Duration::ZERO
            }
        }
    }

    /// Gives the Lease up (on shutdown) so another replica need not wait for
    /// it to expire.
    pub async fn release(&self) -> Result<(), kube::Error> {
        drop(self.take_held());
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        conflict_is_false(self.api.replace(&self.name, &PostParams::default(), &lease).await).map(|_| ())
    }

    fn spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration_seconds),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }
}

fn conflict_is_false(result: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

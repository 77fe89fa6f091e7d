//! What admission counts without asking the API server: the runs of a
//! namespace that are Running, from the Controller's own cache of runs,
//! plus the runs this controller admitted whose Running status the cache
//! has not seen yet; and each namespace's ResourceQuota limits, from the
//! controller's watch of ResourceQuotas (listed at most once per
//! [`QUOTA_TTL`] while that watch has not had its first list).
//!
//! The cache may lag, never lead: a run admitted a moment ago may still be
//! Pending in it (so it is counted from the ledger until the cache shows it
//! past Pending), and a run that just ended may still be Running (or even
//! Pending) in it (a run this controller ended is noted too, and not counted
//! until the cache shows it finished; one ended elsewhere is counted a little longer than
//! needed: a queued run waits one more poll, never runs over the limit).
//! The per-namespace admission gate (held from this count until the
//! admitted run's status is written) keeps two reconciles from counting at
//! once. Until the cache holds its first full list, admission lists the
//! runs as before.
//!
//! A run's end here also wakes the oldest queued runs of its namespace
//! ([`Ledger::queued`]), as many as there is room for: a queued run starts
//! when a slot frees, not at its next poll. Without it, queued runs polled
//! together were admitted in waves one 30 s poll apart, 10 per namespace
//! (the limit) per wave: the controller benchmark's 5,000 queued one-step
//! runs took 13.5 minutes, and 5.8 with the wake.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use c8s_pipeline_model::resources::ResourceList;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use k8s_openapi::api::core::v1::ResourceQuota;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::crd::{PipelineRun, RunPhase};

/// How long a namespace's quota limits are reused before they are listed
/// again. The pre-check is advisory (the API server enforces quotas when
/// each pod is created), so a quota changed within this long is seen late,
/// never bypassed.
pub const QUOTA_TTL: Duration = Duration::from_secs(10);

/// The runs cache, the runs admitted here, and the quota limits read.
pub struct Ledger {
    runs: Store<PipelineRun>,
    filled: Shared<BoxFuture<'static, bool>>,
    admitted: Mutex<BTreeMap<String, BTreeSet<String>>>,
    ended: Mutex<BTreeMap<String, BTreeSet<String>>>,
    quotas: Mutex<BTreeMap<String, (Instant, Option<ResourceList>)>>,
    /// The ResourceQuotas as a watch keeps them, and whether its first list arrived.
    quota_store: Option<(Store<ResourceQuota>, Shared<BoxFuture<'static, bool>>)>,
}

/// Adds run `name` to the runs of `namespace` in `runs`.
fn note(runs: &Mutex<BTreeMap<String, BTreeSet<String>>>, namespace: &str, name: &str) {
    if let Ok(mut runs) = runs.lock() {
        runs.entry(namespace.to_owned())
            .or_default()
            .insert(name.to_owned());
    }
}

fn phase(run: &PipelineRun) -> RunPhase {
    run.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

impl Ledger {
    /// A ledger over `runs`, the store the Controller's run watch fills.
    pub fn new(runs: Store<PipelineRun>) -> Self {
        let store = runs.clone();
        let filled = async move { store.wait_until_ready().await.is_ok() }
            .boxed()
            .shared();
        Ledger {
            runs,
            filled,
            admitted: Mutex::new(BTreeMap::new()),
            ended: Mutex::new(BTreeMap::new()),
            quotas: Mutex::new(BTreeMap::new()),
            quota_store: None,
        }
    }

    /// Reads quota limits from `quotas`, the store a ResourceQuota watch
    /// fills, once it holds its first list: admission then asks the API
    /// server nothing.
    pub fn watch_quotas(&mut self, quotas: Store<ResourceQuota>) {
        let store = quotas.clone();
        let filled = async move { store.wait_until_ready().await.is_ok() }
            .boxed()
            .shared();
        self.quota_store = Some((quotas, filled));
    }

    /// The runs of `namespace` other than `name` that are Running, or `None`
    /// while the cache has not had its first list.
    pub async fn running(&self, namespace: &str, name: &str) -> Option<usize> {
        if !self.listed() {
            return None;
        }
        let mut counted = self.running_names(namespace)?;
        counted.remove(name);
        Some(counted.len())
    }

    /// The runs of `namespace` counted as Running: the cache's, less those
    /// ended here, plus those admitted here.
    fn running_names(&self, namespace: &str) -> Option<BTreeSet<String>> {
        let mut counted: BTreeSet<String> = self
            .runs
            .state()
            .iter()
            .filter(|r| r.namespace().as_deref() == Some(namespace))
            .filter(|r| phase(r) == RunPhase::Running)
            .map(|r| r.name_any())
            .collect();
        let cached_phase = |run: &str| {
            let key = ObjectRef::<PipelineRun>::new(run).within(namespace);
            self.runs.get(&key).map(|r| phase(&r))
        };
        {
            let mut admitted = self.admitted.lock().ok()?;
            let here = admitted.entry(namespace.to_owned()).or_default();
            // Kept until the cache shows the run past Pending (or gone).
            here.retain(|run| cached_phase(run) == Some(RunPhase::Pending));
            counted.extend(here.iter().cloned());
        }
        let mut ended = self.ended.lock().ok()?;
        let here = ended.entry(namespace.to_owned()).or_default();
        // Kept until the cache shows the run finished (or gone). A cache that
        // lags by the whole run still shows it Pending: then it is one
        // admitted here, and it must not count either (found on a loaded
        // machine: the queued run woken by its end found no room, and waited
        // for its next poll).
        here.retain(|run| matches!(cached_phase(run), Some(RunPhase::Pending | RunPhase::Running)));
        for run in here.iter() {
            counted.remove(run);
        }
        Some(counted)
    }

    /// Notes that run `name` of `namespace` ended here (its final status
    /// written), so it no longer counts though the cache may still show it
    /// Running.
    pub fn ended(&self, namespace: &str, name: &str) {
        note(&self.ended, namespace, name);
    }

    /// The queued runs of `namespace` that `limit` leaves room for, oldest
    /// first (creation time, then name): Pending, not cancelled, not being
    /// deleted and not admitted here already. Empty while the cache has not
    /// had its first list.
    pub fn queued(&self, namespace: &str, limit: usize) -> Vec<ObjectRef<PipelineRun>> {
        if !self.listed() {
            return Vec::new();
        }
        let Some(running) = self.running_names(namespace) else {
            return Vec::new();
        };
        let room = limit.saturating_sub(running.len());
        if room == 0 {
            return Vec::new();
        }
        let mut waiting: Vec<_> = self
            .runs
            .state()
            .into_iter()
            .filter(|r| r.namespace().as_deref() == Some(namespace))
            .filter(|r| phase(r) == RunPhase::Pending && !r.spec.cancelled)
            .filter(|r| r.metadata.deletion_timestamp.is_none())
            .filter(|r| !running.contains(&r.name_any()))
            .collect();
        waiting.sort_by(|a, b| {
            let created = |r: &PipelineRun| r.metadata.creation_timestamp.clone().map(|t| t.0);
            created(a)
                .cmp(&created(b))
                .then_with(|| a.name_any().cmp(&b.name_any()))
        });
        waiting
            .iter()
            .take(room)
            .map(|r| ObjectRef::from_obj(r.as_ref()))
            .collect()
    }

    /// Run `run` as the cache holds it now: `Some(None)` when the cache has
    /// had its first list and no longer holds it (deleted), `None` when the
    /// cache cannot say yet.
    pub fn latest(&self, run: &PipelineRun) -> Option<Option<Arc<PipelineRun>>> {
        self.listed().then(|| self.runs.get(&ObjectRef::from_obj(run)))
    }

    /// Whether the runs cache has had its first list, without waiting.
    fn listed(&self) -> bool {
        self.filled.clone().now_or_never() == Some(true)
    }

    /// Notes that run `name` of `namespace` was admitted (its Running
    /// status written), so it counts before the cache shows it.
    pub fn admitted(&self, namespace: &str, name: &str) {
        note(&self.admitted, namespace, name);
    }

    /// The quota limits of `namespace`: from the watch's store once it is
    /// filled, else as read less than [`QUOTA_TTL`] ago.
    pub fn quota(&self, namespace: &str) -> Option<Option<ResourceList>> {
        if let Some((store, filled)) = &self.quota_store
            && filled.clone().now_or_never() == Some(true)
        {
            let here: Vec<ResourceQuota> = store
                .state()
                .iter()
                .filter(|q| q.namespace().as_deref() == Some(namespace))
                .map(|q| ResourceQuota::clone(q))
                .collect();
            return Some(quota_of(&here));
        }
        let quotas = self.quotas.lock().ok()?;
        let (at, quota) = quotas.get(namespace)?;
        (at.elapsed() < QUOTA_TTL).then(|| quota.clone())
    }

    /// Keeps `quota` as `namespace`'s limits, read now.
    pub fn keep_quota(&self, namespace: &str, quota: Option<ResourceList>) {
        if let Ok(mut quotas) = self.quotas.lock() {
            quotas.insert(namespace.to_owned(), (Instant::now(), quota));
        }
    }
}

/// The tightest `hard` request limit of each resource over `quotas`
/// (`requests.cpu` and `cpu` both limit requests, per the ResourceQuota docs).
pub fn quota_of(quotas: &[ResourceQuota]) -> Option<ResourceList> {
    let mut tightest = ResourceList::new();
    for quota in quotas {
        for (key, value) in quota
            .spec
            .as_ref()
            .and_then(|s| s.hard.as_ref())
            .into_iter()
            .flatten()
        {
            let resource = key.strip_prefix("requests.").unwrap_or(key);
            if resource.contains('.') && !resource.contains('/') || key.starts_with("limits.") {
                continue;
            }
            let Ok(parsed) = value.0.parse::<c8s_pipeline_model::sidecar::Quantity>() else {
                continue;
            };
            let keep = tightest
                .get(resource)
                .is_none_or(|old| parsed.nanos() < old.nanos());
            if keep {
                tightest.insert(resource.to_owned(), parsed);
            }
        }
    }
    (!tightest.is_empty()).then_some(tightest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{PipelineRunSpec, PipelineRunStatus};
    use kube::runtime::watcher::Event;

    fn run(ns: &str, name: &str, phase: RunPhase) -> PipelineRun {
        let mut run = PipelineRun::new(name, PipelineRunSpec::default());
        run.metadata.namespace = Some(ns.into());
        run.status = Some(PipelineRunStatus {
            phase,
            ..PipelineRunStatus::default()
        });
        run
    }

    #[tokio::test]
    async fn running_runs_come_from_the_cache_and_admitted_ones_until_the_cache_shows_them() {
        let (store, mut writer) = kube::runtime::reflector::store::<PipelineRun>();
        let ledger = Ledger::new(store);
        assert_eq!(ledger.running("a", "x").await, None, "not filled yet");
        writer.apply_watcher_event(&Event::Init);
        for r in [
            run("a", "r1", RunPhase::Running),
            run("a", "r2", RunPhase::Pending),
            run("a", "r3", RunPhase::Succeeded),
            run("b", "r4", RunPhase::Running),
        ] {
            writer.apply_watcher_event(&Event::InitApply(r));
        }
        writer.apply_watcher_event(&Event::InitDone);
        assert_eq!(ledger.running("a", "x").await, Some(1));
        assert_eq!(ledger.running("a", "r1").await, Some(0), "itself is not counted");
        // r2 admitted here: counted while the cache still says Pending...
        ledger.admitted("a", "r2");
        assert_eq!(ledger.running("a", "x").await, Some(2));
        // ... once, when the cache shows it Running ...
        writer.apply_watcher_event(&Event::Apply(run("a", "r2", RunPhase::Running)));
        assert_eq!(ledger.running("a", "x").await, Some(2));
        // ... and not after it ended.
        writer.apply_watcher_event(&Event::Apply(run("a", "r2", RunPhase::Failed)));
        assert_eq!(ledger.running("a", "x").await, Some(1));
        assert_eq!(ledger.running("b", "x").await, Some(1));
    }

    #[tokio::test]
    async fn a_run_ended_here_frees_its_slot_for_the_oldest_queued_runs() {
        let (store, mut writer) = kube::runtime::reflector::store::<PipelineRun>();
        let ledger = Ledger::new(store);
        let created = |mut r: PipelineRun, second: i64| {
            let at = k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + second).expect("time");
            r.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at));
            r
        };
        let mut cancelled = created(run("a", "q0-cancelled", RunPhase::Pending), 0);
        cancelled.spec.cancelled = true;
        assert!(ledger.queued("a", 2).is_empty(), "not filled yet");
        writer.apply_watcher_event(&Event::Init);
        for r in [
            created(run("a", "r1", RunPhase::Running), 0),
            created(run("a", "r2", RunPhase::Running), 1),
            cancelled,
            created(run("a", "q3", RunPhase::Pending), 3),
            created(run("a", "q1", RunPhase::Pending), 1),
            created(run("a", "q2", RunPhase::Pending), 2),
            created(run("b", "q0", RunPhase::Pending), 0),
        ] {
            writer.apply_watcher_event(&Event::InitApply(r));
        }
        writer.apply_watcher_event(&Event::InitDone);
        let names = |refs: Vec<ObjectRef<PipelineRun>>| refs.into_iter().map(|r| r.name).collect::<Vec<_>>();
        assert!(ledger.queued("a", 2).is_empty(), "the limit is reached");
        // r1 ended here; the cache still shows it Running.
        ledger.ended("a", "r1");
        assert_eq!(ledger.running("a", "x").await, Some(1));
        assert_eq!(names(ledger.queued("a", 2)), ["q1"], "one slot: the oldest");
        assert_eq!(names(ledger.queued("a", 4)), ["q1", "q2", "q3"]);
        // q1 admitted here: it takes the slot.
        ledger.admitted("a", "q1");
        assert!(ledger.queued("a", 2).is_empty());
        // Once the cache shows r1 ended, it is counted from the cache alone.
        writer.apply_watcher_event(&Event::Apply(created(run("a", "r1", RunPhase::Succeeded), 0)));
        assert_eq!(ledger.running("a", "x").await, Some(2));
        assert_eq!(names(ledger.queued("b", 1)), ["q0"]);
    }

    #[tokio::test]
    async fn a_run_admitted_and_ended_before_the_cache_saw_it_start_frees_its_slot() {
        let (store, mut writer) = kube::runtime::reflector::store::<PipelineRun>();
        let ledger = Ledger::new(store);
        writer.apply_watcher_event(&Event::Init);
        for r in [
            run("a", "r1", RunPhase::Pending),
            run("a", "q1", RunPhase::Pending),
        ] {
            writer.apply_watcher_event(&Event::InitApply(r));
        }
        writer.apply_watcher_event(&Event::InitDone);
        ledger.admitted("a", "r1");
        assert!(ledger.queued("a", 1).is_empty(), "r1 holds the slot");
        // r1 ran and ended here while the cache still shows it Pending.
        ledger.ended("a", "r1");
        assert_eq!(ledger.running("a", "q1").await, Some(0));
        let woken: Vec<String> = ledger.queued("a", 1).into_iter().map(|r| r.name).collect();
        assert_eq!(woken, ["q1"]);
        // The cache catches up, Running then finished: never counted again.
        writer.apply_watcher_event(&Event::Apply(run("a", "r1", RunPhase::Running)));
        assert_eq!(ledger.running("a", "q1").await, Some(0));
        writer.apply_watcher_event(&Event::Apply(run("a", "r1", RunPhase::Succeeded)));
        assert_eq!(ledger.running("a", "q1").await, Some(0));
    }

    #[test]
    fn quota_limits_are_reused_for_a_while() {
        let (store, _writer) = kube::runtime::reflector::store::<PipelineRun>();
        let ledger = Ledger::new(store);
        assert_eq!(ledger.quota("a"), None);
        ledger.keep_quota("a", None);
        assert_eq!(ledger.quota("a"), Some(None));
        assert_eq!(ledger.quota("b"), None);
    }
}

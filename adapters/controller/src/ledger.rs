//! What admission counts without asking the API server: the runs of a
//! namespace that are Running, from the Controller's own cache of runs,
//! plus the runs this controller admitted whose Running status the cache
//! has not seen yet; and each namespace's ResourceQuota limits, read at
//! most once per [`QUOTA_TTL`].
//!
//! The cache may lag, never lead: a run admitted a moment ago may still be
//! Pending in it (so it is counted from the ledger until the cache shows it
//! past Pending), and a run that just ended may still be Running in it (so
//! it is counted a little longer than needed: a queued run waits one more
//! poll, never runs over the limit). The per-namespace admission gate
//! (held from this count until the admitted run's status is written) keeps
//! two reconciles from counting at once. Until the cache holds its first
//! full list, admission lists the runs as before.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use c8s_pipeline_model::resources::ResourceList;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
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
    quotas: Mutex<BTreeMap<String, (Instant, Option<ResourceList>)>>,
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
            quotas: Mutex::new(BTreeMap::new()),
        }
    }

    /// The runs of `namespace` other than `name` that are Running, or `None`
    /// while the cache has not had its first list.
    pub async fn running(&self, namespace: &str, name: &str) -> Option<usize> {
        if self.filled.clone().now_or_never() != Some(true) {
            return None;
        }
        let mut counted: BTreeSet<String> = self
            .runs
            .state()
            .iter()
            .filter(|r| r.namespace().as_deref() == Some(namespace))
            .filter(|r| phase(r) == RunPhase::Running)
            .map(|r| r.name_any())
            .collect();
        let Ok(mut admitted) = self.admitted.lock() else {
            return None;
        };
        let here = admitted.entry(namespace.to_owned()).or_default();
        // Kept until the cache shows the run past Pending (or gone).
        here.retain(|run| {
            let key = ObjectRef::<PipelineRun>::new(run).within(namespace);
            self.runs
                .get(&key)
                .is_some_and(|r| phase(&r) == RunPhase::Pending)
        });
        counted.extend(here.iter().cloned());
        counted.remove(name);
        Some(counted.len())
    }

    /// Notes that run `name` of `namespace` was admitted (its Running
    /// status written), so it counts before the cache shows it.
    pub fn admitted(&self, namespace: &str, name: &str) {
        if let Ok(mut admitted) = self.admitted.lock() {
            admitted
                .entry(namespace.to_owned())
                .or_default()
                .insert(name.to_owned());
        }
    }

    /// The quota limits of `namespace` read less than [`QUOTA_TTL`] ago.
    pub fn quota(&self, namespace: &str) -> Option<Option<ResourceList>> {
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

//! The run record: what a run must not forget once its objects are deleted —
//! the steps that ended for good and how, and the attempts that ended in a
//! retryable fault — kept in the cluster ([`Cluster::save_record`]: a
//! ConfigMap on a real cluster), so that a runner started again with the same
//! run id resumes instead of running a step twice.
//!
//! Writes are grouped: a step's entry is staged, and whoever holds the write
//! turn saves every staged entry in one request (steps that end together cost
//! one write). The first write creates the record; a run that never writes
//! has none.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::hash::fnv1a;
use crate::outcome::{StepStatus, TerminationReason};
use crate::rate::RateLimiter;
use crate::retry::RetryPolicy;

/// The entry holding when the run started (RFC 3339), which its deadline counts from.
pub(crate) const STARTED_KEY: &str = "started";

/// What the record keeps of one step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StepRecord {
    /// The step's name (keys are shortened; this is the truth).
    pub step: String,
    /// Objects created for it so far.
    pub attempts: u32,
    /// Why each attempt that ended in a retryable fault ended, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retryable: Vec<TerminationReason>,
    /// Why each attempt that failed where the step's own `retries` may
    /// retry ended, in order (a resumed run continues their count).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_failures: Vec<TerminationReason>,
    /// The status after the last of those failures (the step's final one
    /// when its retries are spent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<StepStatus>,
    /// The step's final status, once it ended for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<StepStatus>,
}

/// The record key of `step`: a valid ConfigMap data key (`[-._a-zA-Z0-9]+`,
/// at most 253 characters); a name that had to change gets a hash of itself.
pub(crate) fn step_key(step: &str) -> String {
    let clean: String = step
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    if clean == step {
        return format!("step.{clean}");
    }
    format!("step.{clean}.{:08x}", fnv1a(0, &[step.as_bytes()]) & 0xffff_ffff)
}

/// The record's entries read back: each step's record by step name, and when
/// the run started.
pub(crate) fn parse(entries: &BTreeMap<String, String>) -> (BTreeMap<String, StepRecord>, Option<String>) {
    let steps = entries
        .iter()
        .filter(|(k, _)| k.starts_with("step."))
        .filter_map(|(k, v)| match serde_json::from_str::<StepRecord>(v) {
            Ok(record) => Some((record.step.clone(), record)),
            Err(e) => {
                tracing::warn!(key = %k, error = %e, "ignoring a run record entry that cannot be read");
                None
            }
        })
        .collect();
    (steps, entries.get(STARTED_KEY).cloned())
}

#[derive(Default)]
struct Staged {
    entries: BTreeMap<String, String>,
    /// Bumped at every staged change.
    seq: u64,
    /// Every change up to this one is saved.
    saved: u64,
}

/// The run's step records, and the grouped writes that save them. The
/// record is created lazily, by the first write: a run that never needs it
/// (one step, or steps that all end with the run) costs no request for it.
#[derive(Default)]
pub(crate) struct Recorder {
    steps: Mutex<BTreeMap<String, StepRecord>>,
    staged: Mutex<Staged>,
    turn: tokio::sync::Mutex<()>,
    /// The run ended: the record is deleted next, final ends need no write.
    closing: AtomicBool,
    /// The record exists (read back, or created by this runner).
    created: AtomicBool,
    /// When the run started, as its first write records it.
    started: String,
    /// The first write found another run's record: this run id is taken.
    refused: tokio::sync::watch::Sender<bool>,
    /// A write that creates the record is staged and not done: creates of
    /// new objects wait for it (a refused run creates nothing more).
    creating: tokio::sync::watch::Sender<bool>,
}

impl Recorder {
    /// A recorder for a run that started at `started`, from the step records
    /// read back (`created`: the record exists).
    pub fn with(steps: BTreeMap<String, StepRecord>, started: String, created: bool) -> Self {
        Recorder {
            steps: Mutex::new(steps),
            created: AtomicBool::new(created),
            started,
            ..Recorder::default()
        }
    }

    /// Whether the record exists (and must be deleted when the run ends).
    pub fn created(&self) -> bool {
        self.created.load(Ordering::SeqCst)
    }

    /// The record was created (by this runner).
    pub fn set_created(&self) {
        self.created.store(true, Ordering::SeqCst);
    }

    /// When the run started (RFC 3339), the record's [`STARTED_KEY`].
    pub fn started(&self) -> &str {
        &self.started
    }

    /// The first write found a record this run did not create.
    pub fn refuse(&self) {
        self.refused.send_replace(true);
    }

    /// Whether [`Recorder::refuse`] was called.
    pub fn is_refused(&self) -> bool {
        *self.refused.borrow()
    }

    /// Waits until no write that creates the record is pending.
    pub async fn first_write(&self) {
        let mut creating = self.creating.subscribe();
        let _ = creating.wait_for(|&c| !c).await;
    }

    /// The write staged last went (or was skipped, or failed).
    pub fn write_done(&self) {
        self.creating.send_replace(false);
    }

    /// Completes once [`Recorder::refuse`] was called.
    pub async fn refused(&self) {
        let mut refused = self.refused.subscribe();
        let _ = refused.wait_for(|&r| r).await;
    }

    /// The recorded state of `step`, if any.
    pub fn step(&self, step: &str) -> Option<StepRecord> {
        let steps = self.steps.lock().unwrap_or_else(|p| p.into_inner());
        steps.get(step).cloned()
    }

    /// The run ended: its record is deleted before the pods left registered.
    pub fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    /// Whether [`Recorder::close`] was called.
    pub fn closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Changes `step`'s record and stages it; the number to wait for.
    pub fn stage(&self, step: &str, change: impl FnOnce(&mut StepRecord)) -> Result<u64> {
        if !self.created() {
            self.creating.send_replace(true);
        }
        let mut steps = self.steps.lock().unwrap_or_else(|p| p.into_inner());
        let record = steps.entry(step.to_owned()).or_insert_with(|| StepRecord {
            step: step.to_owned(),
            ..StepRecord::default()
        });
        change(record);
        let value = serde_json::to_string(record).map_err(|e| Error::Protocol {
            operation: "write run record",
            object: step.to_owned(),
            detail: e.to_string(),
        })?;
        let mut staged = self.staged.lock().unwrap_or_else(|p| p.into_inner());
        staged.entries.insert(step_key(step), value);
        staged.seq += 1;
        Ok(staged.seq)
    }

    /// Waits for the write turn. `None` when change `mine` is already saved;
    /// else every staged entry, to save now and report with [`Recorder::saved`].
    pub async fn turn(&self, mine: u64) -> Option<Turn<'_>> {
        let guard = self.turn.lock().await;
        let mut staged = self.staged.lock().unwrap_or_else(|p| p.into_inner());
        if staged.saved >= mine {
            return None;
        }
        Some(Turn {
            _guard: guard,
            entries: std::mem::take(&mut staged.entries),
            upto: staged.seq,
        })
    }

    /// Reports how the turn's write went; a failed batch is staged again
    /// (unless a later change replaced an entry) for the next turn.
    pub fn saved(&self, turn: Turn<'_>, ok: bool) {
        let mut staged = self.staged.lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            staged.saved = staged.saved.max(turn.upto);
        } else {
            for (key, value) in turn.entries {
                staged.entries.entry(key).or_insert(value);
            }
        }
    }
}

/// One grouped write: the entries to save, while holding the write turn.
pub(crate) struct Turn<'a> {
    _guard: tokio::sync::MutexGuard<'a, ()>,
    /// The entries to save.
    pub entries: BTreeMap<String, String>,
    upto: u64,
}

/// What the run record's writes go through: the cluster, under the run's
/// API retries and client-side rate limit.
pub(crate) struct RecordApi<'a, C> {
    pub cluster: &'a C,
    pub run_id: &'a str,
    pub retry: &'a RetryPolicy,
    pub limiter: &'a RateLimiter,
}

impl<C: Cluster> RecordApi<'_, C> {
    /// Merges `entries` into the run record.
    async fn save(&self, entries: &BTreeMap<String, String>) -> Result<()> {
        let run_id = self.run_id;
        (self.limiter)
            .call(self.retry, run_id, || self.cluster.save_record(run_id, entries))
            .await
    }

    /// Creates the run record with `entries`; `false` when it exists already.
    async fn create(&self, entries: &BTreeMap<String, String>) -> Result<bool> {
        let run_id = self.run_id;
        (self.limiter)
            .call(self.retry, run_id, || self.cluster.create_record(run_id, entries))
            .await
    }

    /// The run record's entries, if it exists.
    async fn load(&self) -> Result<Option<BTreeMap<String, String>>> {
        let run_id = self.run_id;
        (self.limiter)
            .call(self.retry, run_id, || self.cluster.load_record(run_id))
            .await
    }
}

/// The run record's writes, as the attempts of a run make them.
impl Recorder {
    /// Changes `step`'s entry in the run record and saves it through `api`,
    /// grouped with whatever other steps staged meanwhile.
    pub async fn record<C: Cluster>(
        &self,
        api: &RecordApi<'_, C>,
        step: &str,
        change: impl FnOnce(&mut StepRecord),
    ) -> Result<()> {
        self.record_unless(api, step, false, change).await.map(|_| ())
    }

    /// [`Recorder::record`] that, when `skip_if_closing` and the run ended
    /// meanwhile, writes nothing and returns `false` (the record is deleted
    /// next, before the pods left registered).
    pub async fn record_unless<C: Cluster>(
        &self,
        api: &RecordApi<'_, C>,
        step: &str,
        skip_if_closing: bool,
        change: impl FnOnce(&mut StepRecord),
    ) -> Result<bool> {
        let mine = self.stage(step, change)?;
        // Steps that end at the same moment share one write.
        tokio::task::yield_now().await;
        if skip_if_closing && self.closing() {
            self.write_done();
            return Ok(false);
        }
        let Some(turn) = self.turn(mine).await else {
            self.write_done();
            return Ok(true);
        };
        let saved = if self.created() {
            api.save(&turn.entries).await
        } else {
            self.create_record(api, &turn.entries).await
        };
        self.saved(turn, saved.is_ok());
        self.write_done();
        saved.map(|()| true)
    }

    /// The run's first write creates its record, with when the run started.
    /// A record that exists already is another run's (this run id is taken:
    /// the run is refused), unless it is the one an earlier try of this create
    /// made although its answer was lost (it holds this run's start).
    async fn create_record<C: Cluster>(
        &self,
        api: &RecordApi<'_, C>,
        entries: &BTreeMap<String, String>,
    ) -> Result<()> {
        let started = self.started().to_owned();
        let mut first = entries.clone();
        first.insert(STARTED_KEY.to_owned(), started.clone());
        if api.create(&first).await? {
            self.set_created();
            return Ok(());
        }
        let found = api.load().await?;
        // Gone meanwhile (reaped): ours to set up again, with the run's start.
        let ours = found.is_none_or(|f| f.get(STARTED_KEY) == Some(&started));
        if ours {
            self.set_created();
            return api.save(&first).await;
        }
        self.refuse();
        Err(Error::RunExists {
            run_id: api.run_id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::step_key;

    #[test]
    fn step_keys_are_valid_and_distinct() {
        assert_eq!(step_key("unit-test_1.a"), "step.unit-test_1.a");
        let (a, b) = (step_key("build image"), step_key("build/image"));
        assert_ne!(a, b);
        assert!(a.starts_with("step.build_image."), "{a}");
        assert!(step_key(&"x".repeat(400)).len() <= 253);
    }
}

//! An in-memory cluster with virtual time and injected faults, for tests.
//!
//! Time is tokio's clock: run tests with a paused clock
//! (`#[tokio::test(start_paused = true)]`) on the current-thread runtime and
//! a whole pipeline of hour-long steps runs in milliseconds, deterministically.

mod run_watch;
mod script;
mod stats;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::core::{Expression, Selector, SelectorExt};
use tokio::sync::watch;
use tokio::time::Instant;

pub use script::StepScript;
use script::{Fate, writes_log};
pub use stats::SimStats;

use crate::cluster::{
    Cluster, ListedObject, LogStream, ObjectEvent, ObjectKind, ObjectRef, ObservationStream, RunWatchStream,
    STEP_LABEL, StepObject,
};
use crate::error::{Error, Result};
use crate::observe::{PodObservation, PodPhase};

struct SimPod {
    step: String,
    kind: ObjectKind,
    labels: BTreeMap<String, String>,
    created: Instant,
    fate: Fate,
    /// Deleted: it lingers until its termination ends.
    deleting: bool,
    /// The containers its spec names (empty: no spec was sent).
    containers: Vec<String>,
}

#[derive(Default)]
struct State {
    scripts: BTreeMap<String, StepScript>,
    default_script: Option<StepScript>,
    pods: BTreeMap<String, SimPod>,
    /// Run records by run id.
    records: BTreeMap<String, BTreeMap<String, String>>,
    /// When each run record was created.
    record_created: BTreeMap<String, Instant>,
    stats: SimStats,
    /// Every object created, in order, as it was sent.
    created: Vec<StepObject>,
}

impl State {
    fn script(&self, step: &str) -> StepScript {
        self.scripts
            .get(step)
            .or(self.default_script.as_ref())
            .cloned()
            .unwrap_or_else(|| StepScript::new(Duration::from_secs(1)))
    }
}

/// The simulated cluster. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct SimCluster {
    state: Arc<Mutex<State>>,
    /// Bumped on every create and delete, so waiting streams notice.
    deletions: Arc<watch::Sender<u64>>,
    origin: Instant,
    epoch: Timestamp,
}

impl Default for SimCluster {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for SimCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCluster")
            .field("live", &self.live_objects())
            .finish()
    }
}

impl SimCluster {
    /// An empty cluster whose clock starts at 2026-01-01T00:00:00Z now.
    pub fn new() -> Self {
        SimCluster {
            state: Arc::default(),
            deletions: Arc::new(watch::channel(0).0),
            origin: Instant::now(),
            epoch: Timestamp::from_second(1_767_225_600).unwrap_or(Timestamp::UNIX_EPOCH),
        }
    }

    /// Scripts the step called `step` (matched by the `c8s.dev/step` label).
    pub fn script(&self, step: &str, script: StepScript) {
        self.lock().scripts.insert(step.to_owned(), script);
    }

    /// Scripts every step without its own script.
    pub fn default_script(&self, script: StepScript) {
        self.lock().default_script = Some(script);
    }

    /// What happened so far.
    pub fn stats(&self) -> SimStats {
        self.lock().stats.clone()
    }

    /// Every object created so far, in order, as the runner sent it.
    pub fn created_objects(&self) -> Vec<StepObject> {
        self.lock().created.clone()
    }

    /// The names of the objects that exist now.
    pub fn live_objects(&self) -> Vec<String> {
        self.lock().pods.keys().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The observation of pod `name` now, and the instant it next changes.
    fn snapshot(&self, name: &str) -> (PodObservation, Option<Instant>) {
        let state = self.lock();
        let Some(pod) = state.pods.get(name) else {
            return (PodObservation::gone(name), None);
        };
        let script = state.script(&pod.step);
        let (observation, next) = script.observe(name, pod.fate, pod.created.elapsed());
        (observation, next.map(|d| pod.created + d))
    }
}

fn step_of(object: &StepObject, name: &str) -> String {
    object.label(STEP_LABEL).unwrap_or(name).to_owned()
}

fn labels_of(object: &StepObject) -> BTreeMap<String, String> {
    let meta = match object {
        StepObject::Pod(pod) => &pod.metadata,
        StepObject::Job(job) => &job.metadata,
    };
    meta.labels.clone().unwrap_or_default()
}

/// Sleeps until `until` (forever if `None`) or until the next deletion.
async fn wait_for_change(deletions: &mut watch::Receiver<u64>, until: Option<Instant>) {
    let sleep = async {
        match until {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = sleep => {}
        _ = deletions.changed() => {}
    }
}

impl Cluster for SimCluster {
    async fn create(&self, object: &StepObject) -> Result<ObjectRef> {
        let name = object.name().unwrap_or_default().to_owned();
        let step = step_of(object, &name);
        let mut state = self.lock();
        state.stats.requests += 1;
        let mut script = state.script(&step);
        if let Some(code) = script.create_errors.pop_front() {
            state.scripts.insert(step.clone(), script);
            state.stats.api_errors += 1;
            return Err(Error::api("create pod", &name, code, "injected fault"));
        }
        if state.pods.contains_key(&name) {
            return Err(Error::api(
                "create pod",
                &name,
                409,
                &format!("pods \"{name}\" already exists"),
            ));
        }
        let number = state.stats.creates.get(&step).copied().unwrap_or(0);
        let fate = script.fate(number);
        let stats = &mut state.stats;
        *stats.creates.entry(step.clone()).or_default() += 1;
        match fate {
            Fate::PullFails => stats.image_pull_failures += 1,
            Fate::Evicted => stats.evictions += 1,
            Fate::Runs | Fate::FailsRun => {}
        }
        if script.unschedulable_for > Duration::ZERO {
            stats.unschedulable_pods += 1;
        }
        let lost_response = script.lost_create_responses > 0;
        if lost_response {
            script.lost_create_responses -= 1;
            state.scripts.insert(step.clone(), script);
            state.stats.api_errors += 1;
        }
        let pod = SimPod {
            step: step.clone(),
            kind: object.kind(),
            labels: labels_of(object),
            created: Instant::now(),
            fate,
            deleting: false,
            containers: object.container_names(),
        };
        state.pods.insert(name.clone(), pod);
        state.created.push(object.clone());
        let live = u32::try_from(state.pods.values().filter(|p| p.step == step).count()).unwrap_or(u32::MAX);
        let max = state.stats.max_live_per_step.entry(step).or_default();
        *max = (*max).max(live);
        let total = u32::try_from(state.pods.len()).unwrap_or(u32::MAX);
        state.stats.max_live_total = state.stats.max_live_total.max(total);
        let running = state
            .pods
            .iter()
            .filter(|(name, pod)| {
                let script = state.script(&pod.step);
                let (seen, _) = script.observe(name, pod.fate, pod.created.elapsed());
                !matches!(seen.phase, PodPhase::Succeeded | PodPhase::Failed)
            })
            .count();
        let running = u32::try_from(running).unwrap_or(u32::MAX);
        state.stats.max_running_total = state.stats.max_running_total.max(running);
        drop(state);
        self.deletions.send_modify(|generation| *generation += 1);
        if lost_response {
            return Err(Error::api(
                "create pod",
                &name,
                504,
                "injected: created, response lost",
            ));
        }
        Ok(ObjectRef::new(object.kind(), name))
    }

    async fn observe(&self, object: &ObjectRef) -> Result<ObservationStream> {
        let breaks = {
            let mut state = self.lock();
            state.stats.requests += 1;
            state.stats.watches += 1;
            let step = state
                .pods
                .get(&object.name)
                .map(|p| p.step.clone())
                .unwrap_or_default();
            let mut script = state.script(&step);
            let breaks = if script.watch_disconnects > 0 {
                script.watch_disconnects -= 1;
                Some(Error::WatchEnded {
                    object: object.name.clone(),
                    detail: "injected disconnect".into(),
                })
            } else if script.watch_expirations > 0 {
                script.watch_expirations -= 1;
                Some(Error::api(
                    "watch pods",
                    &object.name,
                    410,
                    "too old resource version",
                ))
            } else {
                None
            };
            if breaks.is_some() {
                state.scripts.insert(step, script);
                state.stats.watch_disconnects += 1;
            }
            breaks
        };
        let sim = self.clone();
        let name = object.name.clone();
        let deletions = self.deletions.subscribe();
        let start = (sim, name, deletions, None::<PodObservation>, breaks, false);
        let stream = futures::stream::unfold(
            start,
            |(sim, name, mut deletions, last, breaks, done)| async move {
                if done {
                    return None;
                }
                if last.is_some()
                    && let Some(error) = breaks
                {
                    return Some((Err(error), (sim, name, deletions, last, None, true)));
                }
                loop {
                    let (observation, next) = sim.snapshot(&name);
                    if last.as_ref() != Some(&observation) {
                        let gone = observation.phase == PodPhase::Gone;
                        let item = Ok(observation.clone());
                        let state = (sim, name, deletions, Some(observation), breaks, gone);
                        return Some((item, state));
                    }
                    wait_for_change(&mut deletions, next).await;
                }
            },
        );
        Ok(stream.boxed())
    }

    async fn logs(&self, object: &ObjectRef, container: &str) -> Result<LogStream> {
        let (created, script, breaks) = {
            let mut state = self.lock();
            state.stats.requests += 1;
            let pod = state.pods.get(&object.name).ok_or_else(|| {
                Error::api(
                    "read log of pod",
                    &object.name,
                    404,
                    &format!("pods \"{}\" not found", object.name),
                )
            })?;
            if !pod.containers.is_empty() && !pod.containers.iter().any(|c| c == container) {
                // What the API server answers for a container the pod does not have.
                let message = format!("container {container} is not valid for pod {}", object.name);
                return Err(Error::api("read log of pod", &object.name, 400, &message));
            }
            let step = pod.step.clone();
            let created = pod.created;
            let mut script = state.script(&step);
            let breaks = writes_log(container) && script.log_breaks > 0;
            if breaks {
                script.log_breaks -= 1;
                state.scripts.insert(step.clone(), script.clone());
            }
            (created, script, breaks)
        };
        let main = writes_log(container);
        let chunks: VecDeque<Vec<u8>> = if main {
            script.log.clone().into()
        } else {
            script
                .container_logs
                .get(container)
                .cloned()
                .unwrap_or_default()
                .into()
        };
        let count = u32::try_from(chunks.len()).unwrap_or(u32::MAX).max(1);
        // Other containers' logs are all there once the pod exists.
        let (start, spacing) = if main {
            (created + script.run_start(), script.duration / count)
        } else {
            (created, Duration::ZERO)
        };
        let sim = self.clone();
        let name = object.name.clone();
        let deletions = self.deletions.subscribe();
        let script_open = script.log_stays_open;
        let stream = futures::stream::unfold(
            (chunks, 0u32, deletions),
            move |(mut chunks, i, mut deletions)| {
                let broken = breaks && i == 1;
                let sim = sim.clone();
                let name = name.clone();
                async move {
                    if broken {
                        // The connection drops after the first chunk.
                        let error = Error::api("read log of pod", &name, 500, "injected: log stream broke");
                        return Some((Err(error), (VecDeque::new(), u32::MAX, deletions)));
                    }
                    if i == u32::MAX {
                        return None;
                    }
                    let Some(chunk) = chunks.pop_front() else {
                        if script_open {
                            // `follow` on a container that keeps running: no end.
                            std::future::pending::<()>().await;
                        }
                        return None;
                    };
                    let at = start + spacing * i;
                    while Instant::now() < at {
                        if !sim.lock().pods.contains_key(&name) {
                            return None;
                        }
                        wait_for_change(&mut deletions, Some(at)).await;
                    }
                    sim.lock()
                        .pods
                        .contains_key(&name)
                        .then_some((Ok(chunk), (chunks, i + 1, deletions)))
                }
            },
        );
        Ok(stream.boxed())
    }

    async fn delete(&self, object: &ObjectRef) -> Result<()> {
        let mut changes = self.deletions.subscribe();
        self.start_delete(object).await?;
        // Waits until the object is gone (its termination ended).
        while self.lock().pods.contains_key(&object.name) {
            if changes.changed().await.is_err() {
                break;
            }
        }
        Ok(())
    }

    async fn start_delete(&self, object: &ObjectRef) -> Result<()> {
        let (delay, created, lost_response) = {
            let mut state = self.lock();
            state.stats.requests += 1;
            let Some(pod) = state.pods.get(&object.name) else {
                return Ok(());
            };
            let (step, created, deleting) = (pod.step.clone(), pod.created, pod.deleting);
            let mut script = state.script(&step);
            if let Some(code) = script.delete_errors.pop_front() {
                state.scripts.insert(step, script);
                state.stats.api_errors += 1;
                return Err(Error::api("delete pod", &object.name, code, "injected fault"));
            }
            if deleting {
                // Already terminating: the API server accepts the delete again.
                return Ok(());
            }
            if let Some(pod) = state.pods.get_mut(&object.name) {
                pod.deleting = true;
            }
            state.stats.deletes += 1;
            let lost = script.lost_delete_responses > 0;
            if lost {
                script.lost_delete_responses -= 1;
                state.stats.api_errors += 1;
            }
            let delay = script.delete_delay;
            state.scripts.insert(step, script);
            (delay, created, lost)
        };
        // A slow delete: the object lingers until its termination ends.
        if delay.is_zero() {
            self.remove(&object.name, created);
        } else {
            let sim = self.clone();
            let name = object.name.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                sim.remove(&name, created);
            });
        }
        if lost_response {
            return Err(Error::api(
                "delete pod",
                &object.name,
                504,
                "injected: deleted, response lost",
            ));
        }
        Ok(())
    }

    async fn load_record(&self, run_id: &str) -> Result<Option<BTreeMap<String, String>>> {
        let mut state = self.lock();
        state.stats.requests += 1;
        Ok(state.records.get(run_id).cloned())
    }

    async fn create_record(&self, run_id: &str, entries: &BTreeMap<String, String>) -> Result<bool> {
        let mut state = self.lock();
        state.stats.requests += 1;
        if state.records.contains_key(run_id) {
            return Ok(false);
        }
        state.records.insert(run_id.to_owned(), entries.clone());
        state.record_created.insert(run_id.to_owned(), Instant::now());
        Ok(true)
    }

    async fn list_records(&self) -> Result<Vec<crate::cluster::ListedRecord>> {
        let mut state = self.lock();
        state.stats.requests += 1;
        let records = state.records.keys().map(|run| {
            let created = state.record_created.get(run).map(|&at| self.at(at));
            crate::cluster::ListedRecord::new(run.clone(), created)
        });
        Ok(records.collect())
    }

    async fn save_record(&self, run_id: &str, entries: &BTreeMap<String, String>) -> Result<()> {
        let mut state = self.lock();
        state.stats.requests += 1;
        state.stats.record_writes += 1;
        let now = Instant::now();
        state.record_created.entry(run_id.to_owned()).or_insert(now);
        let record = state.records.entry(run_id.to_owned()).or_default();
        record.extend(entries.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(())
    }

    async fn delete_record(&self, run_id: &str) -> Result<()> {
        let mut state = self.lock();
        state.stats.requests += 1;
        state.records.remove(run_id);
        state.record_created.remove(run_id);
        Ok(())
    }

    fn watch_run_marks_lists(&self) -> bool {
        true
    }

    async fn watch_run(&self, run_id: &str) -> Result<Option<RunWatchStream>> {
        let mut state = self.lock();
        state.stats.requests += 1;
        state.stats.watches += 1;
        drop(state);
        Ok(Some(self.run_watch(run_id)))
    }

    async fn events(&self, object: &ObjectRef) -> Result<Vec<ObjectEvent>> {
        let mut state = self.lock();
        state.stats.requests += 1;
        state.stats.event_reads += 1;
        let Some(step) = state.pods.get(&object.name).map(|p| p.step.clone()) else {
            return Ok(Vec::new());
        };
        Ok(state.script(&step).events)
    }

    async fn list(&self, label_selector: &str) -> Result<Vec<ListedObject>> {
        let wanted = equality_selector(label_selector);
        let names: Vec<String> = {
            let mut state = self.lock();
            state.stats.requests += 1;
            state
                .pods
                .iter()
                .filter(|(_, p)| wanted.matches(&p.labels))
                .map(|(n, _)| n.clone())
                .collect()
        };
        let mut listed = Vec::new();
        for name in names {
            let (observation, _) = self.snapshot(&name);
            let state = self.lock();
            let Some(pod) = state.pods.get(&name) else {
                continue;
            };
            listed.push(ListedObject {
                object: ObjectRef::new(pod.kind, &name),
                run: pod.labels.get(crate::cluster::RUN_LABEL).cloned(),
                created_at: Some(self.at(pod.created)),
                finished: matches!(observation.phase, PodPhase::Succeeded | PodPhase::Failed),
                owned_by_job: false,
            });
        }
        Ok(listed)
    }

    fn now(&self) -> Timestamp {
        self.at(Instant::now())
    }
}

/// The `key=value` terms of a label selector, as kube's [`Selector`] (which
/// matches labels but parses no selector string: a term without `=` is
/// ignored, as the runner only sends equality terms).
fn equality_selector(label_selector: &str) -> Selector {
    label_selector
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(key, value)| Expression::Equal(key.to_owned(), value.to_owned()))
        .collect()
}

impl SimCluster {
    /// Removes pod `name` once its termination ended, if it is still the
    /// incarnation created at `created`.
    fn remove(&self, name: &str, created: Instant) {
        {
            let mut state = self.lock();
            if state
                .pods
                .get(name)
                .is_some_and(|p| p.created == created && p.deleting)
            {
                state.pods.remove(name);
            }
        }
        self.deletions.send_modify(|generation| *generation += 1);
    }

    /// The run records kept now, by run id (what a resumed run reads back).
    pub fn records(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.lock().records.clone()
    }

    fn at(&self, instant: Instant) -> Timestamp {
        let elapsed =
            SignedDuration::try_from(instant.saturating_duration_since(self.origin)).unwrap_or_default();
        self.epoch.checked_add(elapsed).unwrap_or(self.epoch)
    }
}

//! Finished runs leave the controller's caches. A finished run is never
//! reconciled again, and nothing the controller does reads its pods: yet
//! without a TTL every finished run and its pods stay in the API server, and
//! a reflector holds every object its watch shows, so the controller's
//! memory grew with the history kept (the controller benchmark: 123.7 MiB
//! at 1,000 active runs, 169.2 MiB once 12,620 more had finished).
//!
//! So the watches are filtered before their reflectors take an event
//! ([`Finished::run_event`], [`Finished::pod_event`]): a finished run is
//! passed on as deleted (an update) or not at all (a list), and noted here
//! by name and phase only; a pod of a run noted finished likewise. A run
//! that ends has the pods already cached evicted by a sweep
//! ([`Finished::sweeps`]): synthetic deletes merged into the pod watch,
//! the only way into a store the reflector owns. A sweep also follows each
//! list of either watch, since a list may bring back a pod evicted while it
//! ran. What stays per finished run is its namespace, name and phase (the
//! `c8s_pipelineruns` gauge still counts it), forgotten when the run is
//! deleted; a new list rebuilds it, so a run deleted while the watch was
//! down is forgotten too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use c8s_kube::RUN_LABEL;
use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use kube::runtime::watcher::Event;

use crate::crd::{PipelineRun, RunPhase};
use crate::settings::FINALIZER;

/// A run's namespace and name.
type RunKey = (String, String);

/// The finished runs of the watch, by namespace and name.
#[derive(Default)]
struct Noted {
    runs: BTreeMap<RunKey, RunPhase>,
    /// While a list of the runs is under way: the finished runs it showed.
    listing: Option<BTreeMap<RunKey, RunPhase>>,
}

impl Noted {
    /// Notes run `key` finished in `phase`, or forgets it (`None`), in the
    /// runs noted and in the list under way.
    fn set(&mut self, key: RunKey, phase: Option<RunPhase>) {
        for runs in std::iter::once(&mut self.runs).chain(self.listing.as_mut()) {
            match phase {
                Some(phase) => runs.insert(key.clone(), phase),
                None => runs.remove(&key),
            };
        }
    }

    /// Whether `pod` belongs to a run noted finished.
    fn holds_run_of(&self, pod: &Pod) -> bool {
        pod_run(pod).is_some_and(|run| self.runs.contains_key(&run))
    }
}

/// The finished runs the watches leave out, and the sweeps asked for.
pub struct Finished {
    /// Finished runs stay in the runs cache: `--finished-run-ttl` deletes
    /// each when its time has come, from a reconcile the cache must serve
    /// (and the TTL bounds what the cache holds). Their pods still go.
    keep_runs: bool,
    noted: Mutex<Noted>,
    sweep: mpsc::UnboundedSender<()>,
    sweeps: Mutex<Option<mpsc::UnboundedReceiver<()>>>,
}

impl Default for Finished {
    fn default() -> Self {
        Finished::new(false)
    }
}

impl std::fmt::Debug for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finished").finish_non_exhaustive()
    }
}

/// The phase of a finished run, `None` for one that has not finished.
fn finished_phase(run: &PipelineRun) -> Option<RunPhase> {
    run.status
        .as_ref()
        .map(|s| s.phase)
        .filter(|phase| phase.is_finished())
}

/// Whether `run` still carries the [`FINALIZER`] of an earlier controller:
/// when it is deleted a reconcile must remove it, so it stays cached.
fn holds_finalizer(run: &PipelineRun) -> bool {
    run.finalizers().iter().any(|f| f == FINALIZER)
}

fn run_key(run: &PipelineRun) -> RunKey {
    (run.namespace().unwrap_or_default(), run.name_any())
}

/// The run a pod belongs to: its namespace and the `c8s.dev/run` label.
fn pod_run(pod: &Pod) -> Option<RunKey> {
    let run = pod.labels().get(RUN_LABEL)?;
    Some((pod.namespace().unwrap_or_default(), run.clone()))
}

impl Finished {
    /// Nothing noted yet; finished runs stay in the runs cache if
    /// `keep_runs` (their pods never do).
    pub fn new(keep_runs: bool) -> Self {
        let (sweep, sweeps) = mpsc::unbounded();
        Finished {
            keep_runs,
            noted: Mutex::new(Noted::default()),
            sweep,
            sweeps: Mutex::new(Some(sweeps)),
        }
    }

    fn ask_sweep(&self) {
        // The receiver gone: the pod watch stopped, so nothing is cached.
        let _ = self.sweep.unbounded_send(());
    }

    /// The runs' watch event as its reflector should take it: a finished
    /// run noted here and passed on as deleted (`Apply`) or left out
    /// (`InitApply`), unless runs are kept or it carries an earlier
    /// controller's [`FINALIZER`]; any other event passed on as it is, a
    /// run that is not finished (any more) or deleted no longer noted.
    pub fn run_event(&self, event: Event<PipelineRun>) -> Option<Event<PipelineRun>> {
        let Ok(mut noted) = self.noted.lock() else {
            return Some(event);
        };
        match event {
            Event::Init => {
                noted.listing = Some(BTreeMap::new());
                Some(Event::Init)
            }
            Event::InitApply(run) => match finished_phase(&run) {
                Some(phase) => {
                    let listing = noted.listing.get_or_insert_with(BTreeMap::new);
                    listing.insert(run_key(&run), phase);
                    (self.keep_runs || holds_finalizer(&run)).then_some(Event::InitApply(run))
                }
                None => Some(Event::InitApply(run)),
            },
            Event::InitDone => {
                if let Some(listed) = noted.listing.take() {
                    noted.runs = listed;
                }
                drop(noted);
                self.ask_sweep();
                Some(Event::InitDone)
            }
            Event::Apply(run) => {
                let phase = finished_phase(&run);
                noted.set(run_key(&run), phase);
                drop(noted);
                if phase.is_none() {
                    return Some(Event::Apply(run));
                }
                self.ask_sweep();
                if self.keep_runs || holds_finalizer(&run) {
                    Some(Event::Apply(run))
                } else {
                    Some(Event::Delete(run))
                }
            }
            Event::Delete(run) => {
                noted.set(run_key(&run), None);
                Some(Event::Delete(run))
            }
        }
    }

    /// The pod watch's event as its reflector should take it: a pod of a
    /// run noted finished passed on as deleted (`Apply`) or left out
    /// (`InitApply`). The end of a list asks for a sweep.
    pub fn pod_event(&self, event: Event<Pod>) -> Option<Event<Pod>> {
        match event {
            Event::InitApply(pod) if self.holds_run_of(&pod) => None,
            Event::Apply(pod) if self.holds_run_of(&pod) => Some(Event::Delete(pod)),
            Event::InitDone => {
                self.ask_sweep();
                Some(Event::InitDone)
            }
            other => Some(other),
        }
    }

    /// Whether `pod` belongs to a run noted finished.
    fn holds_run_of(&self, pod: &Pod) -> bool {
        self.noted.lock().is_ok_and(|noted| noted.holds_run_of(pod))
    }

    /// The pods `pods` holds of runs noted finished, as delete events (the
    /// notes locked once for the whole store).
    pub fn evictions(&self, pods: &Store<Pod>) -> Vec<Event<Pod>> {
        let Ok(noted) = self.noted.lock() else {
            return Vec::new();
        };
        pods.state()
            .into_iter()
            .filter(|pod| noted.holds_run_of(pod))
            .map(|pod| Event::Delete(Pod::clone(&pod)))
            .collect()
    }

    /// The sweeps asked for, each the evictions of `pods` at the time it is
    /// taken (sweeps asked for together make one). Taken once: the second
    /// call gets an empty stream.
    pub fn sweeps(self: &Arc<Self>, pods: Store<Pod>) -> impl Stream<Item = Event<Pod>> + Send + use<> {
        let asked = self.sweeps.lock().ok().and_then(|mut s| s.take());
        let finished = self.clone();
        futures::stream::iter(asked)
            .flatten()
            .ready_chunks(1024)
            .flat_map(move |_| futures::stream::iter(finished.evictions(&pods)))
    }

    /// How many finished runs are noted, by phase.
    pub fn count(&self, phase: RunPhase) -> usize {
        self.noted
            .lock()
            .map(|noted| noted.runs.values().filter(|p| **p == phase).count())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures::StreamExt;
    use kube::runtime::reflector::{self, ObjectRef, reflector};
    use kube::runtime::watcher;

    use super::*;
    use crate::crd::{PipelineRunSpec, PipelineRunStatus};

    fn run(name: &str, phase: RunPhase) -> PipelineRun {
        let mut run = PipelineRun::new(name, PipelineRunSpec::default());
        run.metadata.namespace = Some("ci".into());
        run.status = Some(PipelineRunStatus {
            phase,
            ..PipelineRunStatus::default()
        });
        run
    }

    fn pod(name: &str, run: &str) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.namespace = Some("ci".into());
        pod.metadata.labels = Some([(RUN_LABEL.to_owned(), run.to_owned())].into());
        pod
    }

    /// How many finished runs `finished` notes in each of `phases`.
    fn counts<const N: usize>(finished: &Finished, phases: [RunPhase; N]) -> [usize; N] {
        phases.map(|phase| finished.count(phase))
    }

    fn names<K: kube::Resource<DynamicType = ()> + Clone>(store: &Store<K>) -> Vec<String> {
        let mut names: Vec<String> = store.state().iter().map(|o| o.name_any()).collect();
        names.sort_unstable();
        names
    }

    /// Feeds `events` through `filter` into `writer`, as the watches do.
    fn apply<K, F>(writer: &mut reflector::store::Writer<K>, filter: F, events: Vec<Event<K>>)
    where
        K: kube::Resource<DynamicType = ()> + Clone,
        F: Fn(Event<K>) -> Option<Event<K>>,
    {
        for event in events.into_iter().filter_map(filter) {
            writer.apply_watcher_event(&event);
        }
    }

    #[test]
    fn a_finished_run_leaves_the_runs_cache_and_is_still_counted() {
        let finished = Finished::new(false);
        let (runs, mut writer) = reflector::store::<PipelineRun>();
        let filter = |e| finished.run_event(e);
        apply(
            &mut writer,
            filter,
            vec![
                Event::Init,
                Event::InitApply(run("old", RunPhase::Succeeded)),
                Event::InitApply(run("going", RunPhase::Running)),
                Event::InitApply(run("waiting", RunPhase::Pending)),
                Event::InitDone,
            ],
        );
        assert_eq!(names(&runs), ["going", "waiting"]);
        assert_eq!(finished.count(RunPhase::Succeeded), 1);
        apply(
            &mut writer,
            filter,
            vec![Event::Apply(run("going", RunPhase::Failed))],
        );
        assert_eq!(names(&runs), ["waiting"]);
        assert_eq!(finished.count(RunPhase::Failed), 1);
        // A run deleted is forgotten; one made again under its name is a new run.
        apply(
            &mut writer,
            filter,
            vec![
                Event::Delete(run("old", RunPhase::Succeeded)),
                Event::Apply(run("going", RunPhase::Pending)),
            ],
        );
        assert_eq!(names(&runs), ["going", "waiting"]);
        assert_eq!(counts(&finished, [RunPhase::Succeeded, RunPhase::Failed]), [0, 0]);
    }

    #[test]
    fn under_a_ttl_a_finished_run_stays_cached_for_its_delete_and_is_counted_once() {
        let finished = Finished::new(true);
        let (runs, mut writer) = reflector::store::<PipelineRun>();
        let filter = |e| finished.run_event(e);
        apply(
            &mut writer,
            filter,
            vec![
                Event::Init,
                Event::InitApply(run("old", RunPhase::Succeeded)),
                Event::InitDone,
                Event::Apply(run("new", RunPhase::Failed)),
            ],
        );
        assert_eq!(names(&runs), ["new", "old"]);
        assert_eq!(counts(&finished, [RunPhase::Succeeded, RunPhase::Failed]), [1, 1]);
        let (pods, mut pod_writer) = reflector::store::<Pod>();
        apply(
            &mut pod_writer,
            |e| finished.pod_event(e),
            vec![Event::Apply(pod("old-a", "old"))],
        );
        assert!(names(&pods).is_empty());
    }

    #[test]
    fn a_finished_run_with_an_earlier_controllers_finalizer_stays_cached_to_have_it_removed() {
        let finished = Finished::new(false);
        let (runs, mut writer) = reflector::store::<PipelineRun>();
        let held = |name| {
            let mut run = run(name, RunPhase::Succeeded);
            run.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
            run
        };
        apply(
            &mut writer,
            |e| finished.run_event(e),
            vec![
                Event::Init,
                Event::InitApply(held("listed")),
                Event::InitDone,
                Event::Apply(held("ended")),
            ],
        );
        assert_eq!(names(&runs), ["ended", "listed"]);
        assert_eq!(finished.count(RunPhase::Succeeded), 2);
    }

    #[test]
    fn a_new_list_forgets_the_finished_runs_deleted_while_the_watch_was_down() {
        let finished = Finished::new(false);
        let (_, mut writer) = reflector::store::<PipelineRun>();
        let filter = |e| finished.run_event(e);
        apply(
            &mut writer,
            filter,
            vec![
                Event::Init,
                Event::InitApply(run("a", RunPhase::Succeeded)),
                Event::InitApply(run("b", RunPhase::Cancelled)),
                Event::InitDone,
            ],
        );
        assert_eq!(finished.count(RunPhase::Cancelled), 1);
        // Until the list is done the earlier one counts; then the list's.
        apply(
            &mut writer,
            filter,
            vec![Event::Init, Event::InitApply(run("a", RunPhase::Succeeded))],
        );
        assert_eq!(finished.count(RunPhase::Cancelled), 1);
        apply(&mut writer, filter, vec![Event::InitDone]);
        assert_eq!(
            counts(&finished, [RunPhase::Succeeded, RunPhase::Cancelled]),
            [1, 0]
        );
    }

    #[test]
    fn the_pods_of_a_finished_run_are_left_out_of_the_pod_cache() {
        let finished = Finished::new(false);
        let (_, mut runs) = reflector::store::<PipelineRun>();
        apply(
            &mut runs,
            |e| finished.run_event(e),
            vec![Event::Apply(run("done", RunPhase::Succeeded))],
        );
        let (pods, mut writer) = reflector::store::<Pod>();
        let filter = |e| finished.pod_event(e);
        apply(
            &mut writer,
            filter,
            vec![
                Event::Init,
                Event::InitApply(pod("done-a", "done")),
                Event::InitApply(pod("live-a", "live")),
                Event::InitDone,
                Event::Apply(pod("done-b", "done")),
                Event::Apply(pod("live-b", "live")),
            ],
        );
        assert_eq!(names(&pods), ["live-a", "live-b"]);
    }

    #[tokio::test]
    async fn a_run_that_ends_has_its_cached_pods_swept_out() {
        let finished = Arc::new(Finished::new(false));
        let (pods, pod_writer) = reflector::store::<Pod>();
        let (pod_tx, pod_rx) = futures::channel::mpsc::unbounded();
        let noted = finished.clone();
        let watch = pod_rx.filter_map(move |e| futures::future::ready(noted.pod_event(e)));
        let merged =
            futures::stream::select(watch, finished.sweeps(pods.clone())).map(Ok::<_, watcher::Error>);
        let mut events = Box::pin(reflector(pod_writer, merged));
        for event in [
            Event::Init,
            Event::InitApply(pod("a-1", "a")),
            Event::InitApply(pod("a-2", "a")),
            Event::InitApply(pod("b-1", "b")),
            Event::InitDone,
        ] {
            pod_tx.unbounded_send(event).unwrap();
        }
        // The list, and the sweep its end asked for (nothing to evict yet).
        for _ in 0..5 {
            events.next().await.unwrap().unwrap();
        }
        assert_eq!(names(&pods), ["a-1", "a-2", "b-1"]);
        assert_eq!(
            finished
                .run_event(Event::Apply(run("a", RunPhase::Succeeded)))
                .map(|e| matches!(e, Event::Delete(_))),
            Some(true)
        );
        for _ in 0..2 {
            let evicted = events.next().await.unwrap().unwrap();
            assert!(matches!(evicted, Event::Delete(_)), "{evicted:?}");
        }
        assert_eq!(names(&pods), ["b-1"]);
        assert!(pods.get(&ObjectRef::new("a-1").within("ci")).is_none());
    }
}

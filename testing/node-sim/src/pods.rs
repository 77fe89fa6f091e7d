//! The pods bound to the simulated nodes, run as the kubelet would run them.
//!
//! The rules followed, each from the Kubernetes documentation:
//! - Pod lifecycle (<https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/>):
//!   phase Pending until every init container is done and every container
//!   has started, Running while any runs, then Succeeded when every regular
//!   container exited 0, else Failed (restartPolicy Never; OnFailure and
//!   Always are treated as Never here: nothing is restarted). The pod
//!   conditions PodReadyToStartContainers, Initialized, ContainersReady and
//!   Ready with the kubelet's reasons and messages; container states waiting,
//!   running, terminated (reason Completed for exit 0, Error otherwise).
//! - Init containers (<https://kubernetes.io/docs/concepts/workloads/pods/init-containers/>):
//!   one at a time, in order, each to completion before the next; a failed
//!   one (restartPolicy Never) fails the pod and the app containers never
//!   start (they stay waiting, reason PodInitializing).
//! - Native sidecars (<https://kubernetes.io/docs/concepts/workloads/pods/sidecar-containers/>,
//!   KEP-753): an init container with `restartPolicy: Always` starts and keeps
//!   running; the next init container starts once it is `started` (its
//!   startupProbe passed, or at once without one); it counts towards
//!   ContainersReady/Ready; when every regular container has terminated, the
//!   sidecars are stopped in reverse order (SIGTERM; reported here as exit 0,
//!   Completed) and only then is the phase terminal. A sidecar whose
//!   startupProbe keeps failing (script `ready: false`) is killed once the
//!   probe's budget is spent and restarted after the kubelet's back-off (10 s,
//!   doubling, at most 5 minutes), waiting as CrashLoopBackOff in between,
//!   with its `restartCount` and `lastState` (the one restart the simulator
//!   does; other containers are never restarted).
//! - activeDeadlineSeconds (<https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#lifecycle>):
//!   counted from status.startTime; when it passes the kubelet kills the
//!   containers and fails the pod with reason DeadlineExceeded.
//! - Termination (<https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination>):
//!   on a deletionTimestamp the containers are killed (here at once, exit 137),
//!   the final status is posted and the pod is deleted with grace period 0
//!   and a UID precondition, which is what the kubelet does once it is done.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::logstore::{ContainerLog, LogStatus, LogStore, PodLogs};
use crate::nodes::NODE_IP;
use crate::script::{self, Behaviour, Script, Waiting, default_reason};

/// How long the sidecars take to stop after the last regular container
/// (SIGTERM to exit): long enough to be seen, short for tests.
const SIDECAR_STOP: Duration = Duration::from_millis(100);
/// The exit code of a killed container (SIGKILL).
const KILLED: i32 = 137;
/// The kubelet's message for activeDeadlineSeconds (pkg/kubelet/active_deadline.go).
pub const DEADLINE_MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

/// What the watch loop tells a pod's worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// The pod has a deletionTimestamp.
    Deleting,
    /// The pod is gone from the API server.
    Gone,
}

struct Handle {
    tx: mpsc::UnboundedSender<Signal>,
    node: usize,
    deleting: bool,
}

/// Watches the pods bound to `nodes` and runs each one until it is gone.
pub async fn run(client: Client, nodes: Vec<String>, store: Arc<LogStore>) {
    let streams = nodes.iter().enumerate().map(|(i, node)| {
        let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        watcher::watcher(Api::<Pod>::all(client.clone()), config)
            .default_backoff()
            .map(move |event| (i, event))
            .boxed()
    });
    let mut events = futures::stream::select_all(streams);
    // Pod IPs count on from a point that moves with the clock, so that a
    // restarted simulator does not hand out the IPs of the pods it left.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() % 60_000);
    let ips = Arc::new(AtomicU32::new(u32::try_from(seed).unwrap_or(0)));
    let mut pods: HashMap<String, Handle> = HashMap::new();
    let mut relisting: HashMap<usize, HashSet<String>> = HashMap::new();
    while let Some((node, event)) = events.next().await {
        match event {
            Err(e) => log!(
                "pod watch for {}: {e}",
                nodes.get(node).map_or("?", String::as_str)
            ),
            Ok(Event::Init) => {
                relisting.insert(node, HashSet::new());
            }
            Ok(Event::InitApply(pod)) => {
                if let Some(uid) = pod.uid() {
                    relisting.entry(node).or_default().insert(uid);
                }
                apply(&client, &store, &ips, &mut pods, node, pod);
            }
            Ok(Event::Apply(pod)) => apply(&client, &store, &ips, &mut pods, node, pod),
            Ok(Event::Delete(pod)) => {
                if let Some(handle) = pod.uid().and_then(|uid| pods.remove(&uid)) {
                    let _ = handle.tx.send(Signal::Gone);
                }
            }
            Ok(Event::InitDone) => {
                // Pods of this node that the new list lacks were deleted while
                // the watch was down.
                let seen = relisting.remove(&node).unwrap_or_default();
                let gone: Vec<String> = pods
                    .iter()
                    .filter(|(uid, h)| h.node == node && !seen.contains(*uid))
                    .map(|(uid, _)| uid.clone())
                    .collect();
                for uid in gone {
                    if let Some(handle) = pods.remove(&uid) {
                        let _ = handle.tx.send(Signal::Gone);
                    }
                }
            }
        }
    }
}

fn apply(
    client: &Client,
    store: &Arc<LogStore>,
    ips: &AtomicU32,
    pods: &mut HashMap<String, Handle>,
    node: usize,
    pod: Pod,
) {
    let Some(uid) = pod.uid() else { return };
    let deleting = pod.metadata.deletion_timestamp.is_some();
    if let Some(handle) = pods.get_mut(&uid) {
        if deleting && !handle.deleting {
            handle.deleting = true;
            let _ = handle.tx.send(Signal::Deleting);
        }
        return;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    if deleting {
        let _ = tx.send(Signal::Deleting);
    }
    pods.insert(uid, Handle { tx, node, deleting });
    let n = ips.fetch_add(1, Ordering::Relaxed);
    let pod_ip = format!("10.244.{}.{}", (n / 254) % 256, n % 254 + 1);
    tokio::spawn(worker(client.clone(), Arc::clone(store), pod, pod_ip, rx));
}

/// Reads the pod namespace's script; a broken one is an error for the pod.
async fn load_script(client: &Client, namespace: &str) -> Result<Script, String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let mut last_error = String::new();
    for attempt in 0..3 {
        match api.get_opt(script::CONFIG_MAP).await {
            Ok(None) => return Ok(Script::default()),
            Ok(Some(cm)) => {
                let text = cm
                    .data
                    .as_ref()
                    .and_then(|d| d.get(script::CONFIG_KEY))
                    .map_or("", String::as_str);
                return Script::parse(text).map_err(|e| {
                    format!(
                        "c8s-node-sim: ConfigMap {namespace}/{} key {}: {e}",
                        script::CONFIG_MAP,
                        script::CONFIG_KEY
                    )
                });
            }
            Err(e) => {
                last_error = e.to_string();
                tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
            }
        }
    }
    log!(
        "reading ConfigMap {namespace}/{}: {last_error}; no script",
        script::CONFIG_MAP
    );
    Ok(Script::default())
}

async fn worker(
    client: Client,
    store: Arc<LogStore>,
    pod: Pod,
    pod_ip: String,
    mut rx: mpsc::UnboundedReceiver<Signal>,
) {
    let namespace = pod.namespace().unwrap_or_else(|| "default".to_owned());
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let terminal = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    let mut sim = if terminal {
        PodSim::new(&store, &pod, pod_ip, Ok(Script::default()), true)
    } else {
        let script = load_script(&client, &namespace).await;
        PodSim::new(&store, &pod, pod_ip, script, false)
    };
    log!(
        "pod {}/{}: {}",
        sim.namespace,
        sim.name,
        if terminal { "already ended" } else { "starting" }
    );
    let mut deleted = false;
    loop {
        sim.advance(Instant::now(), Timestamp::now());
        if !sim.publish(&api).await {
            break;
        }
        let wake = sim.next_wake();
        let signal = tokio::select! {
            signal = rx.recv() => signal.unwrap_or(Signal::Gone),
            () = tokio::time::sleep_until(wake.unwrap_or_else(far_future)), if wake.is_some() => continue,
        };
        match signal {
            Signal::Gone => break,
            Signal::Deleting if !deleted => {
                deleted = true;
                sim.kill_for_deletion(Timestamp::now());
                if !sim.publish(&api).await {
                    break;
                }
                sim.delete(&api).await;
            }
            Signal::Deleting => {}
        }
    }
    log!("pod {}/{}: gone", sim.namespace, sim.name);
    store.remove(&sim.namespace, &sim.name, &sim.uid);
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// What kind of container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A regular init container: runs to completion.
    Init,
    /// A native sidecar: an init container with restartPolicy Always.
    Sidecar,
    /// An app container.
    Regular,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Not started yet: PodInitializing or ContainerCreating.
    Pending(&'static str),
    /// The script says it never starts.
    Stuck(Waiting),
    Running {
        since: Timestamp,
    },
    /// Killed for a failed startup probe, waiting out the kubelet's restart
    /// back-off (CrashLoopBackOff) before it runs again.
    BackOff {
        until: Instant,
        seconds: u64,
    },
    Terminated {
        exit_code: i32,
        reason: String,
        message: Option<String>,
        started: Timestamp,
        finished: Timestamp,
    },
}

struct Ctr {
    name: String,
    image: String,
    kind: Kind,
    behaviour: Behaviour,
    startup_probe: bool,
    readiness_probe: bool,
    /// A sidecar's startupProbe budget (initialDelaySeconds + periodSeconds x
    /// failureThreshold): past it, a failing probe gets it killed and restarted.
    startup_budget: Option<Duration>,
    /// How often it was restarted.
    restarts: i32,
    /// Its last termination, as `lastState.terminated`.
    last_terminated: Option<Value>,
    state: State,
    exit_at: Option<Instant>,
    lines: VecDeque<(Instant, String)>,
    log: Arc<ContainerLog>,
}

impl Ctr {
    fn new(
        spec: &Container,
        kind: Kind,
        behaviour: Behaviour,
        pending: &'static str,
        logs: &PodLogs,
    ) -> Self {
        let log = logs
            .containers
            .get(&spec.name)
            .cloned()
            .unwrap_or_else(|| Arc::new(ContainerLog::waiting("PodInitializing")));
        Self {
            name: spec.name.clone(),
            image: spec.image.clone().unwrap_or_default(),
            kind,
            behaviour,
            startup_probe: spec.startup_probe.is_some(),
            readiness_probe: spec.readiness_probe.is_some(),
            startup_budget: spec.startup_probe.as_ref().map(|p| {
                // The probe's defaults: period 10 s, threshold 3, no delay.
                let seconds = |v: Option<i32>, default: i32| u64::try_from(v.unwrap_or(default)).unwrap_or(0);
                Duration::from_secs(
                    seconds(p.initial_delay_seconds, 0)
                        + seconds(p.period_seconds, 10) * seconds(p.failure_threshold, 3),
                )
            }),
            restarts: 0,
            last_terminated: None,
            state: State::Pending(pending),
            exit_at: None,
            lines: VecDeque::new(),
            log,
        }
    }

    fn is_running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    fn is_terminated(&self) -> bool {
        matches!(self.state, State::Terminated { .. })
    }

    fn not_started(&self) -> bool {
        matches!(self.state, State::Pending(_) | State::Stuck(_))
    }

    /// `started`: running and its startupProbe (if any) passed.
    fn started(&self) -> bool {
        self.is_running() && (!self.startup_probe || self.behaviour.ready)
    }

    /// `ready`: started and its readinessProbe (if any) passes; an init
    /// container that exited 0 is ready too (prober_manager.UpdatePodStatus).
    fn ready(&self) -> bool {
        match &self.state {
            State::Running { .. } => self.started() && (!self.readiness_probe || self.behaviour.ready),
            State::Terminated { exit_code: 0, .. } => self.kind == Kind::Init,
            _ => false,
        }
    }

    /// Starts it, or leaves it waiting if the script says so.
    fn start(&mut self, now_i: Instant, now: Timestamp) {
        if let Some(waiting) = &self.behaviour.waiting {
            self.state = State::Stuck(waiting.clone());
            self.log.set_status(LogStatus::Waiting(waiting.reason.clone()));
            return;
        }
        self.state = State::Running { since: now };
        self.log.set_status(LogStatus::Running);
        // Lines spread over the run, the first at start; a sidecar writes all at start.
        let run = if self.kind == Kind::Sidecar {
            Duration::ZERO
        } else {
            self.behaviour.run
        };
        let count = u32::try_from(self.behaviour.logs.len())
            .unwrap_or(u32::MAX)
            .max(1);
        self.lines = self
            .behaviour
            .logs
            .iter()
            .zip(0u32..)
            .map(|(line, i)| {
                let at = run
                    .checked_mul(i)
                    .map(|d| d / count)
                    .and_then(|d| now_i.checked_add(d));
                (at.unwrap_or_else(far_future), line.clone())
            })
            .collect();
        self.exit_at =
            (self.kind != Kind::Sidecar).then(|| now_i.checked_add(run).unwrap_or_else(far_future));
        if self.kind == Kind::Sidecar && !self.behaviour.ready {
            // Its startupProbe keeps failing: the kubelet kills it once the
            // probe's budget is spent ("will be restarted").
            self.exit_at = self.startup_budget.and_then(|b| now_i.checked_add(b));
        }
        self.tick(now_i, now);
    }

    /// The kubelet kills a sidecar whose startupProbe failed
    /// failureThreshold times and restarts it after a back-off that doubles
    /// from 10 s up to 5 minutes (CrashLoopBackOff; "Container restart
    /// policy", <https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#restart-policy>).
    fn restart_after_failed_startup(&mut self, now_i: Instant, now: Timestamp) {
        let State::Running { since } = self.state else {
            return;
        };
        self.lines.clear();
        self.exit_at = None;
        self.restarts = self.restarts.saturating_add(1);
        self.last_terminated = Some(json!({
            "exitCode": KILLED,
            "reason": "Error",
            "startedAt": time(since),
            "finishedAt": time(now),
        }));
        let exponent = u32::try_from(self.restarts - 1).unwrap_or(0).min(5);
        let seconds = (10u64 << exponent).min(300);
        self.state = State::BackOff {
            until: now_i + Duration::from_secs(seconds),
            seconds,
        };
        self.log
            .set_status(LogStatus::Waiting("CrashLoopBackOff".to_owned()));
    }

    /// Writes the lines that are due and ends the run if it is time.
    fn tick(&mut self, now_i: Instant, now: Timestamp) {
        if let State::BackOff { until, .. } = self.state
            && until <= now_i
        {
            self.start(now_i, now);
            return;
        }
        if self.kind == Kind::Sidecar && self.exit_at.is_some_and(|at| at <= now_i) {
            self.restart_after_failed_startup(now_i, now);
            return;
        }
        while self.lines.front().is_some_and(|(at, _)| *at <= now_i) {
            if let Some((_, line)) = self.lines.pop_front() {
                self.log.write(now, &line);
            }
        }
        if self.exit_at.is_some_and(|at| at <= now_i) {
            let b = &self.behaviour;
            let (exit_code, reason, message) = (b.exit_code, b.reason.clone(), b.message.clone());
            self.terminate(now, exit_code, reason, message, true);
        }
    }

    /// Ends a running container (`flush`: it wrote all its lines first).
    fn terminate(
        &mut self,
        now: Timestamp,
        exit_code: i32,
        reason: String,
        message: Option<String>,
        flush: bool,
    ) {
        let State::Running { since } = self.state else {
            return;
        };
        if flush {
            for (_, line) in self.lines.drain(..) {
                self.log.write(now, &line);
            }
        }
        self.lines.clear();
        self.exit_at = None;
        self.state = State::Terminated {
            exit_code,
            reason,
            message,
            started: since,
            finished: now,
        };
        self.log.set_status(LogStatus::Terminated);
    }

    fn kill(&mut self, now: Timestamp) {
        self.terminate(now, KILLED, default_reason(KILLED).to_owned(), None, false);
    }

    fn next_wake(&self) -> Option<Instant> {
        if let State::BackOff { until, .. } = self.state {
            return Some(until);
        }
        let line = self.lines.front().map(|(at, _)| *at);
        match (line, self.exit_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The container status as the kubelet posts it.
    fn status(&self, uid: &str) -> Value {
        let container_id = format!("sim://{uid}-{}", self.name);
        let state = match &self.state {
            State::Pending(reason) => json!({ "waiting": { "reason": reason } }),
            State::Stuck(w) => match &w.message {
                Some(message) => json!({ "waiting": { "reason": w.reason, "message": message } }),
                None => json!({ "waiting": { "reason": w.reason } }),
            },
            State::Running { since } => json!({ "running": { "startedAt": time(*since) } }),
            State::BackOff { seconds, .. } => json!({ "waiting": {
                "reason": "CrashLoopBackOff",
                "message": format!("back-off {seconds}s restarting failed container={}", self.name),
            } }),
            State::Terminated {
                exit_code,
                reason,
                message,
                started,
                finished,
            } => {
                let mut t = json!({
                    "exitCode": exit_code,
                    "reason": reason,
                    "startedAt": time(*started),
                    "finishedAt": time(*finished),
                    "containerID": container_id,
                });
                if let Some(message) = message {
                    t["message"] = json!(message);
                }
                json!({ "terminated": t })
            }
        };
        let ran = !self.not_started();
        let mut status = json!({
            "name": self.name,
            "image": self.image,
            "imageID": if ran { format!("sim://{}", self.image) } else { String::new() },
            "ready": self.ready(),
            "started": self.started(),
            "restartCount": self.restarts,
            "state": state,
            "lastState": self.last_terminated.as_ref().map_or_else(|| json!({}), |t| json!({ "terminated": t })),
        });
        if ran {
            status["containerID"] = json!(container_id);
        }
        status
    }
}

fn time(at: Timestamp) -> Value {
    serde_json::to_value(Time(at)).unwrap_or(Value::Null)
}

/// Go's `fmt.Sprint` of a `[]string`: `[a b]`.
fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

struct Terminal {
    phase: &'static str,
    reason: Option<&'static str>,
    message: Option<&'static str>,
}

struct PodSim {
    namespace: String,
    name: String,
    uid: String,
    generation: Option<i64>,
    pod_ip: String,
    start_time: Timestamp,
    deadline: Option<Instant>,
    inits: Vec<Ctr>,
    regular: Vec<Ctr>,
    initialized: bool,
    init_failed: bool,
    stop_sidecars_at: Option<Instant>,
    terminal: Option<Terminal>,
    /// An ended pod found at start: nothing is posted for it.
    adopted: bool,
    /// Each condition's status and when it last changed.
    transitions: BTreeMap<&'static str, (bool, Timestamp)>,
    published: Option<Value>,
    retry_at: Option<Instant>,
}

impl PodSim {
    fn new(
        store: &LogStore,
        pod: &Pod,
        pod_ip: String,
        script: Result<Script, String>,
        adopted: bool,
    ) -> Self {
        let namespace = pod.namespace().unwrap_or_else(|| "default".to_owned());
        let name = pod.name_any();
        let uid = pod.uid().unwrap_or_default();
        let labels = pod.labels().clone();
        let spec = pod.spec.clone().unwrap_or_default();
        let status = pod.status.clone().unwrap_or_default();
        let behaviour = |container: &str| match &script {
            Ok(script) => script.behaviour(&name, &labels, container),
            // The kubelet's reason for a container whose config cannot be made.
            Err(e) => Behaviour {
                waiting: Some(Waiting {
                    reason: "CreateContainerConfigError".to_owned(),
                    message: Some(e.clone()),
                }),
                ..Behaviour::default()
            },
        };
        let init_specs = spec.init_containers.clone().unwrap_or_default();
        let regular_pending = if init_specs.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        let names = init_specs
            .iter()
            .map(|c| (c.name.as_str(), "PodInitializing"))
            .chain(spec.containers.iter().map(|c| (c.name.as_str(), regular_pending)));
        let logs = store.register(&namespace, &name, &uid, names);
        let inits: Vec<Ctr> = init_specs
            .iter()
            .map(|c| {
                let kind = if c.restart_policy.as_deref() == Some("Always") {
                    Kind::Sidecar
                } else {
                    Kind::Init
                };
                Ctr::new(c, kind, behaviour(&c.name), "PodInitializing", &logs)
            })
            .collect();
        let regular: Vec<Ctr> = spec
            .containers
            .iter()
            .map(|c| Ctr::new(c, Kind::Regular, behaviour(&c.name), regular_pending, &logs))
            .collect();
        let now = Timestamp::now();
        let start_time = status.start_time.map_or(now, |t| t.0);
        // Past the end of time (a huge activeDeadlineSeconds) means no deadline.
        let deadline = spec.active_deadline_seconds.and_then(|seconds| {
            let end = start_time.checked_add(SignedDuration::from_secs(seconds)).ok()?;
            let left = Duration::try_from(now.duration_until(end)).unwrap_or(Duration::ZERO);
            Instant::now().checked_add(left)
        });
        // A pod seen again (the simulator restarted) keeps its IP: the API
        // server refuses a second IP of the same family.
        let pod_ip = match (&status.pod_ip, spec.host_network) {
            (Some(ip), _) if !ip.is_empty() => ip.clone(),
            (_, Some(true)) => NODE_IP.to_owned(),
            _ => pod_ip,
        };
        let mut sim = Self {
            namespace,
            name,
            uid,
            generation: pod.metadata.generation,
            pod_ip,
            start_time,
            deadline,
            inits,
            regular,
            initialized: false,
            init_failed: false,
            stop_sidecars_at: None,
            terminal: None,
            adopted,
            transitions: BTreeMap::new(),
            published: None,
            retry_at: None,
        };
        if adopted {
            for c in sim.inits.iter().chain(&sim.regular) {
                c.log.set_status(LogStatus::Terminated);
            }
            sim.terminal = Some(Terminal {
                phase: "Succeeded",
                reason: None,
                message: None,
            });
        }
        sim
    }

    fn containers_mut(&mut self) -> impl Iterator<Item = &mut Ctr> {
        self.inits.iter_mut().chain(self.regular.iter_mut())
    }

    /// Moves the pod on to `now`.
    fn advance(&mut self, now_i: Instant, now: Timestamp) {
        if self.terminal.is_some() {
            return;
        }
        if self.deadline.is_some_and(|d| d <= now_i) {
            for c in self.containers_mut() {
                c.kill(now);
            }
            log!(
                "pod {}/{}: activeDeadlineSeconds passed",
                self.namespace,
                self.name
            );
            self.terminal = Some(Terminal {
                phase: "Failed",
                reason: Some("DeadlineExceeded"),
                message: Some(DEADLINE_MESSAGE),
            });
            return;
        }
        for c in self.containers_mut() {
            c.tick(now_i, now);
        }
        if !self.initialized && !self.init_failed {
            self.advance_inits(now_i, now);
        }
        if self.initialized && self.stop_sidecars_at.is_none() {
            for c in &mut self.regular {
                if matches!(c.state, State::Pending(_)) {
                    c.start(now_i, now);
                }
            }
            if self.regular.iter().all(Ctr::is_terminated) {
                self.stop_sidecars_at = Some(now_i + self.sidecar_stop());
            }
        }
        if self.stop_sidecars_at.is_some_and(|at| at <= now_i) {
            // Sidecars stop in the reverse of their order (KEP-753), on SIGTERM.
            for c in self.inits.iter_mut().rev().filter(|c| c.kind == Kind::Sidecar) {
                c.terminate(now, 0, "Completed".to_owned(), None, true);
            }
            let failed = self.init_failed
                || self
                    .regular
                    .iter()
                    .any(|c| !matches!(c.state, State::Terminated { exit_code: 0, .. }));
            self.terminal = Some(Terminal {
                phase: if failed { "Failed" } else { "Succeeded" },
                reason: None,
                message: None,
            });
            log!(
                "pod {}/{}: {}",
                self.namespace,
                self.name,
                if failed { "Failed" } else { "Succeeded" }
            );
        }
    }

    fn sidecar_stop(&self) -> Duration {
        if self
            .inits
            .iter()
            .any(|c| c.kind == Kind::Sidecar && c.is_running())
        {
            SIDECAR_STOP
        } else {
            Duration::ZERO
        }
    }

    /// Init containers one at a time; a sidecar lets the next start once it has started.
    fn advance_inits(&mut self, now_i: Instant, now: Timestamp) {
        let mut done = true;
        for c in &mut self.inits {
            if matches!(c.state, State::Pending(_)) {
                c.start(now_i, now);
            }
            let through = match (&c.state, c.kind) {
                (State::Terminated { exit_code: 0, .. }, Kind::Init) => true,
                (State::Terminated { .. }, Kind::Init) => {
                    log!(
                        "pod {}/{}: init container {} failed",
                        self.namespace,
                        self.name,
                        c.name
                    );
                    self.init_failed = true;
                    false
                }
                (_, Kind::Sidecar) => c.started(),
                _ => false,
            };
            if !through {
                done = false;
                break;
            }
        }
        if self.init_failed {
            self.stop_sidecars_at = Some(now_i + self.sidecar_stop());
        } else if done {
            self.initialized = true;
        }
    }

    /// The kubelet kills what runs; the phase turns terminal (Failed unless
    /// every app container had already succeeded).
    fn kill_for_deletion(&mut self, now: Timestamp) {
        if self.terminal.is_some() {
            return;
        }
        for c in self.containers_mut() {
            c.kill(now);
        }
        let succeeded = self
            .regular
            .iter()
            .all(|c| matches!(c.state, State::Terminated { exit_code: 0, .. }));
        self.terminal = Some(Terminal {
            phase: if succeeded && !self.init_failed {
                "Succeeded"
            } else {
                "Failed"
            },
            reason: None,
            message: None,
        });
    }

    /// Deletes the pod for good: grace period 0 and a UID precondition.
    async fn delete(&self, api: &Api<Pod>) {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        for attempt in 0u32..5 {
            match api.delete(&self.name, &params).await {
                Ok(_) => {
                    log!("pod {}/{}: deleted", self.namespace, self.name);
                    return;
                }
                // Gone already, or another pod of the same name now.
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => return,
                Err(e) => {
                    log!("pod {}/{}: delete: {e}", self.namespace, self.name);
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt + 1))).await;
                }
            }
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        let mut wakes: Vec<Instant> = self.retry_at.into_iter().collect();
        if self.terminal.is_none() {
            wakes.extend(self.deadline);
            wakes.extend(self.stop_sidecars_at);
            wakes.extend(self.inits.iter().chain(&self.regular).filter_map(Ctr::next_wake));
        }
        wakes.into_iter().min()
    }

    fn phase(&self) -> &'static str {
        if let Some(t) = &self.terminal {
            return t.phase;
        }
        if !self.initialized {
            return "Pending";
        }
        // kubelet_pods.go getPhase: a container not started yet keeps the pod Pending.
        if self.regular.iter().any(Ctr::not_started) {
            return "Pending";
        }
        "Running"
    }

    fn condition(
        &mut self,
        kind: &'static str,
        ok: bool,
        reason: Option<&str>,
        message: Option<String>,
        now: Timestamp,
    ) -> Value {
        let since = match self.transitions.get(kind) {
            Some((was, since)) if *was == ok => *since,
            _ => {
                self.transitions.insert(kind, (ok, now));
                now
            }
        };
        let mut c = json!({
            "type": kind,
            "status": if ok { "True" } else { "False" },
            "lastProbeTime": null,
            "lastTransitionTime": time(since),
        });
        if let Some(generation) = self.generation {
            c["observedGeneration"] = json!(generation);
        }
        // Null, not absent: a strategic merge patch keeps the fields it does not name.
        c["reason"] = json!(reason);
        c["message"] = json!(message);
        c
    }

    /// The pod status as the kubelet posts it (status_manager, kubelet_pods.go).
    fn status(&mut self, now: Timestamp) -> Value {
        let phase = self.phase();
        let terminal = self.terminal.is_some();
        // PodReadyToStartContainers: the sandbox is up; it goes when the pod has ended.
        let sandbox = self.condition("PodReadyToStartContainers", !terminal, None, None, now);
        let incomplete: Vec<&str> = self
            .inits
            .iter()
            .filter(|c| match c.kind {
                Kind::Sidecar => !c.started(),
                _ => !matches!(c.state, State::Terminated { exit_code: 0, .. }),
            })
            .map(|c| c.name.as_str())
            .collect();
        let initialized = self.initialized;
        let init_message =
            (!initialized).then(|| format!("containers with incomplete status: {}", go_list(&incomplete)));
        let init = self.condition(
            "Initialized",
            initialized,
            (!initialized).then_some("ContainersNotInitialized"),
            init_message,
            now,
        );
        let unready: Vec<&str> = self
            .inits
            .iter()
            .filter(|c| c.kind == Kind::Sidecar)
            .chain(&self.regular)
            .filter(|c| !c.ready())
            .map(|c| c.name.as_str())
            .collect();
        let (ready, reason, message) = match phase {
            "Succeeded" => (false, Some("PodCompleted"), None),
            "Failed" => (false, Some("PodFailed"), None),
            _ if unready.is_empty() => (true, None, None),
            _ => (
                false,
                Some("ContainersNotReady"),
                Some(format!("containers with unready status: {}", go_list(&unready))),
            ),
        };
        let containers_ready = self.condition("ContainersReady", ready, reason, message.clone(), now);
        let pod_ready = self.condition("Ready", ready, reason, message, now);
        let mut status = json!({
            "phase": phase,
            "conditions": [sandbox, init, containers_ready, pod_ready],
            "hostIP": NODE_IP,
            "hostIPs": [{ "ip": NODE_IP }],
            "podIP": self.pod_ip,
            "podIPs": [{ "ip": self.pod_ip }],
            "startTime": time(self.start_time),
            "containerStatuses": self.regular.iter().map(|c| c.status(&self.uid)).collect::<Vec<_>>(),
        });
        if !self.inits.is_empty() {
            status["initContainerStatuses"] =
                self.inits.iter().map(|c| c.status(&self.uid)).collect::<Value>();
        }
        if let Some(generation) = self.generation {
            status["observedGeneration"] = json!(generation);
        }
        if let Some(t) = &self.terminal {
            if let Some(reason) = t.reason {
                status["reason"] = json!(reason);
            }
            if let Some(message) = t.message {
                status["message"] = json!(message);
            }
        }
        status
    }

    /// Posts the status if it changed; false when the pod is gone.
    async fn publish(&mut self, api: &Api<Pod>) -> bool {
        if self.adopted {
            return true;
        }
        let status = self.status(Timestamp::now());
        if self.published.as_ref() == Some(&status) {
            return true;
        }
        let patch = json!({ "status": status });
        match api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            Ok(_) => {
                self.published = Some(status);
                self.retry_at = None;
                true
            }
            Err(kube::Error::Api(e)) if e.code == 404 => false,
            // Refused (invalid, forbidden): trying the same again would not help.
            Err(kube::Error::Api(e)) if (400..500).contains(&e.code) && e.code != 409 && e.code != 429 => {
                log!(
                    "pod {}/{}: status refused: {}",
                    self.namespace,
                    self.name,
                    e.message
                );
                self.published = Some(status);
                self.retry_at = None;
                true
            }
            Err(e) => {
                log!("pod {}/{}: posting status: {e}", self.namespace, self.name);
                self.retry_at = Some(Instant::now() + Duration::from_secs(1));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": "p1", "namespace": "ns", "uid": "u1", "labels": { "c8s.dev/step": "build" } },
            "spec": spec,
        }))
        .expect("a pod")
    }

    fn sim(spec: Value, script: &str) -> (PodSim, Arc<LogStore>) {
        let store = Arc::new(LogStore::default());
        let script = Script::parse(script).expect("script");
        let sim = PodSim::new(&store, &pod(spec), "10.244.0.1".to_owned(), Ok(script), false);
        (sim, store)
    }

    fn at(t0: Instant, millis: u64) -> Instant {
        t0 + Duration::from_millis(millis)
    }

    fn condition(status: &Value, kind: &str) -> (String, String) {
        let c = status["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
            .cloned()
            .unwrap_or_default();
        (
            c["status"].as_str().unwrap_or_default().to_owned(),
            c["reason"].as_str().unwrap_or_default().to_owned(),
        )
    }

    fn state<'a>(status: &'a Value, list: &str, i: usize) -> &'a Value {
        &status[list][i]["state"]
    }

    const SIDECAR_POD: &str = r#"{
        "initContainers": [
            { "name": "proxy", "image": "envoy", "restartPolicy": "Always",
              "startupProbe": { "exec": { "command": ["true"] } } },
            { "name": "setup", "image": "busybox" }
        ],
        "containers": [ { "name": "main", "image": "alpine" } ]
    }"#;

    #[test]
    fn sidecar_init_main_then_sidecar_stops() {
        let spec: Value = serde_json::from_str(SIDECAR_POD).expect("json");
        let script = "containers:\n  - container: setup\n    runSeconds: 0.5\n  - container: main\n    runSeconds: 1\n    logs: [one, two]\n  - container: proxy\n    logs: [up]\n";
        let (mut sim, store) = sim(spec, script);
        let t0 = Instant::now();
        let now = Timestamp::now();
        sim.advance(t0, now);
        let s = sim.status(now);
        assert_eq!(s["phase"], "Pending");
        assert!(state(&s, "initContainerStatuses", 0)["running"].is_object());
        assert_eq!(s["initContainerStatuses"][0]["started"], true);
        assert_eq!(s["initContainerStatuses"][0]["ready"], true);
        assert!(state(&s, "initContainerStatuses", 1)["running"].is_object());
        assert_eq!(
            state(&s, "containerStatuses", 0)["waiting"]["reason"],
            "PodInitializing"
        );
        assert_eq!(
            condition(&s, "Initialized"),
            ("False".into(), "ContainersNotInitialized".into())
        );
        assert_eq!(condition(&s, "PodReadyToStartContainers").0, "True");

        sim.advance(at(t0, 500), now);
        let s = sim.status(now);
        assert_eq!(s["phase"], "Running");
        assert_eq!(
            state(&s, "initContainerStatuses", 1)["terminated"]["reason"],
            "Completed"
        );
        assert_eq!(s["initContainerStatuses"][1]["ready"], true);
        assert_eq!(condition(&s, "Initialized").0, "True");
        assert_eq!(condition(&s, "ContainersReady").0, "True");
        assert_eq!(condition(&s, "Ready").0, "True");
        assert_eq!(s["containerStatuses"][0]["containerID"], "sim://u1-main");

        // main ends; the sidecar is still up for a moment.
        sim.advance(at(t0, 1500), now);
        let s = sim.status(now);
        assert_eq!(s["phase"], "Running");
        assert_eq!(state(&s, "containerStatuses", 0)["terminated"]["exitCode"], 0);
        assert!(state(&s, "initContainerStatuses", 0)["running"].is_object());
        assert_eq!(sim.next_wake(), Some(at(t0, 1500) + SIDECAR_STOP));

        sim.advance(at(t0, 1500) + SIDECAR_STOP, now);
        let s = sim.status(now);
        assert_eq!(s["phase"], "Succeeded");
        assert_eq!(state(&s, "initContainerStatuses", 0)["terminated"]["exitCode"], 0);
        assert_eq!(condition(&s, "Ready"), ("False".into(), "PodCompleted".into()));
        assert_eq!(condition(&s, "PodReadyToStartContainers").0, "False");
        assert_eq!(sim.next_wake(), None);

        let logs = store.get("ns", "p1").expect("registered");
        let lines = |c: &str| -> Vec<String> {
            logs.containers[c]
                .since(0)
                .1
                .into_iter()
                .map(|(_, l)| l)
                .collect()
        };
        assert_eq!(lines("main"), ["one", "two"]);
        assert_eq!(lines("proxy"), ["up"]);
        assert_eq!(logs.containers["main"].since(0).0, LogStatus::Terminated);
    }

    #[test]
    fn sidecar_whose_startup_probe_fails_blocks_the_next_init() {
        let spec: Value = serde_json::from_str(SIDECAR_POD).expect("json");
        let (mut sim, _) = sim(spec, "containers:\n  - container: proxy\n    ready: false\n");
        let t0 = Instant::now();
        let now = Timestamp::now();
        for ms in [0, 1000] {
            sim.advance(at(t0, ms), now);
        }
        let s = sim.status(now);
        assert_eq!(s["phase"], "Pending");
        assert_eq!(s["initContainerStatuses"][0]["started"], false);
        assert_eq!(
            state(&s, "initContainerStatuses", 1)["waiting"]["reason"],
            "PodInitializing"
        );
        // The probe's default budget (10 s x 3) spent: killed, restarted after
        // 10 s, then 20 s; the next init never starts.
        assert_eq!(sim.next_wake(), Some(at(t0, 30_000)));
        let mut t = at(t0, 30_000);
        for (restarts, back_off) in [(1, 10), (2, 20), (3, 40)] {
            sim.advance(t, now);
            let s = sim.status(now);
            let proxy = &s["initContainerStatuses"][0];
            assert_eq!(proxy["restartCount"], restarts, "{proxy:#}");
            assert_eq!(
                proxy["state"]["waiting"]["reason"], "CrashLoopBackOff",
                "{proxy:#}"
            );
            assert_eq!(
                proxy["state"]["waiting"]["message"],
                format!("back-off {back_off}s restarting failed container=proxy")
            );
            assert_eq!(proxy["lastState"]["terminated"]["exitCode"], KILLED);
            assert_eq!(s["phase"], "Pending");
            assert_eq!(
                state(&s, "initContainerStatuses", 1)["waiting"]["reason"],
                "PodInitializing"
            );
            t += Duration::from_secs(back_off);
            assert_eq!(sim.next_wake(), Some(t));
            sim.advance(t, now);
            let s = sim.status(now);
            assert!(
                s["initContainerStatuses"][0]["state"]["running"].is_object(),
                "{s:#}"
            );
            assert_eq!(s["initContainerStatuses"][0]["started"], false);
            t += Duration::from_secs(30);
            assert_eq!(sim.next_wake(), Some(t));
        }
    }

    #[test]
    fn failed_init_container_fails_the_pod() {
        let spec = json!({
            "initContainers": [ { "name": "setup", "image": "busybox" } ],
            "containers": [ { "name": "main", "image": "alpine" } ],
        });
        let (mut sim, _) = sim(
            spec,
            "containers:\n  - container: setup\n    exitCode: 1\n    runSeconds: 0\n",
        );
        let t0 = Instant::now();
        let now = Timestamp::now();
        sim.advance(t0, now);
        let s = sim.status(now);
        assert_eq!(s["phase"], "Failed");
        assert_eq!(
            state(&s, "initContainerStatuses", 0)["terminated"]["reason"],
            "Error"
        );
        assert_eq!(s["initContainerStatuses"][0]["ready"], false);
        assert_eq!(
            state(&s, "containerStatuses", 0)["waiting"]["reason"],
            "PodInitializing"
        );
        assert_eq!(condition(&s, "Initialized").0, "False");
        assert_eq!(condition(&s, "Ready"), ("False".into(), "PodFailed".into()));
    }

    #[test]
    fn deadline_kills_and_fails() {
        let spec = json!({
            "activeDeadlineSeconds": 2,
            "containers": [ { "name": "main", "image": "alpine" } ],
        });
        let (mut sim, _) = sim(spec, "containers:\n  - runSeconds: 3600\n    logs: [a, b]\n");
        let t0 = Instant::now();
        let now = Timestamp::now();
        sim.advance(t0, now);
        assert_eq!(sim.status(now)["phase"], "Running");
        sim.advance(at(t0, 2100), now);
        let s = sim.status(now);
        assert_eq!(s["phase"], "Failed");
        assert_eq!(s["reason"], "DeadlineExceeded");
        assert_eq!(s["message"], DEADLINE_MESSAGE);
        assert_eq!(state(&s, "containerStatuses", 0)["terminated"]["exitCode"], 137);
        assert_eq!(state(&s, "containerStatuses", 0)["terminated"]["reason"], "Error");
    }

    #[test]
    fn exit_code_reason_and_message_and_a_waiting_container() {
        let spec = json!({
            "containers": [ { "name": "main", "image": "alpine" }, { "name": "pull", "image": "nope" } ],
        });
        let script = "containers:\n  - container: main\n    exitCode: 3\n    message: bad\n  - container: pull\n    waiting: {reason: ImagePullBackOff}\n";
        let (mut sim, store) = sim(spec, script);
        let t0 = Instant::now();
        let now = Timestamp::now();
        sim.advance(t0, now);
        sim.advance(at(t0, 300), now);
        let s = sim.status(now);
        // A container not started keeps the pod Pending (getPhase).
        assert_eq!(s["phase"], "Pending");
        let main = state(&s, "containerStatuses", 0);
        assert_eq!(
            (
                main["terminated"]["exitCode"].clone(),
                main["terminated"]["reason"].clone()
            ),
            (json!(3), json!("Error"))
        );
        assert_eq!(main["terminated"]["message"], "bad");
        assert_eq!(
            state(&s, "containerStatuses", 1)["waiting"]["reason"],
            "ImagePullBackOff"
        );
        assert_eq!(s["containerStatuses"][1]["containerID"], Value::Null);
        let logs = store.get("ns", "p1").expect("registered");
        assert_eq!(
            logs.containers["pull"].since(0).0,
            LogStatus::Waiting("ImagePullBackOff".into())
        );
        sim.kill_for_deletion(now);
        assert_eq!(sim.status(now)["phase"], "Failed");
    }

    #[test]
    fn huge_numbers_do_not_panic() {
        let spec = json!({
            "activeDeadlineSeconds": i64::MAX,
            "containers": [ { "name": "main", "image": "alpine" } ],
        });
        let (mut sim, _) = sim(spec, "containers:\n  - runSeconds: 1e300\n    logs: [a, b, c]\n");
        assert!(sim.deadline.is_none());
        let now = Timestamp::now();
        sim.advance(Instant::now(), now);
        assert_eq!(sim.status(now)["phase"], "Running");
        assert!(sim.next_wake().is_some());
    }

    #[test]
    fn deletion_kills_running_containers() {
        let spec = json!({ "containers": [ { "name": "main", "image": "alpine" } ] });
        let (mut sim, _) = sim(spec, "containers:\n  - runSeconds: 60\n");
        let now = Timestamp::now();
        sim.advance(Instant::now(), now);
        sim.kill_for_deletion(now);
        let s = sim.status(now);
        assert_eq!(s["phase"], "Failed");
        assert_eq!(state(&s, "containerStatuses", 0)["terminated"]["exitCode"], 137);
    }

    #[test]
    fn a_broken_script_is_a_config_error() {
        let store = LogStore::default();
        let spec = json!({ "containers": [ { "name": "main", "image": "alpine" } ] });
        let mut sim = PodSim::new(
            &store,
            &pod(spec),
            "10.244.0.1".to_owned(),
            Err("bad yaml".to_owned()),
            false,
        );
        let now = Timestamp::now();
        sim.advance(Instant::now(), now);
        let s = sim.status(now);
        assert_eq!(s["phase"], "Pending");
        assert_eq!(
            state(&s, "containerStatuses", 0)["waiting"]["reason"],
            "CreateContainerConfigError"
        );
        assert_eq!(
            state(&s, "containerStatuses", 0)["waiting"]["message"],
            "bad yaml"
        );
    }
}

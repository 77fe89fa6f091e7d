//! The pod's life as the kubelet drives it with `restartPolicy: Never`/
//! `OnFailure` (pkg/kubelet/kuberuntime `computePodActions`, KEP-753 for
//! sidecars): init containers one by one, each native sidecar held until its
//! startupProbe passes, regular containers together, then sidecars stopped in
//! reverse order; activeDeadlineSeconds over it all.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};

use super::container::{Running, prepare};
pub use super::outcome::{ContainerRun, Phase, PodRun};
use super::{Action, Kubelet, volumes};

const TICK: Duration = Duration::from_millis(50);

enum Stop {
    /// The pod went past activeDeadlineSeconds.
    Deadline,
    /// The test's limit.
    Limit,
}

struct Pod_<'a> {
    kubelet: &'a Kubelet,
    pod: &'a Pod,
    dir: PathBuf,
    volumes: BTreeMap<String, PathBuf>,
    managed: Vec<volumes::Mount>,
    started: Instant,
    deadline: Option<Instant>,
    grace: Duration,
    restart_on_failure: bool,
    sidecars: Vec<Running>,
    results: BTreeMap<String, ContainerRun>,
}

/// Runs the pod; see [`super::Kubelet::run`].
pub fn run(kubelet: &Kubelet, pod: &Pod) -> PodRun {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = pod.metadata.name.clone().unwrap_or_else(|| "pod".into());
    let pods = super::scratch_root().join("kubelet");
    remove_dead_pods(&pods);
    let dir = pods.join(format!("{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("logs")).expect("pod dir");
    let spec = pod.spec.clone().unwrap_or_default();
    let started = Instant::now();
    let mut state = Pod_ {
        kubelet,
        pod,
        dir: dir.clone(),
        volumes: BTreeMap::new(),
        managed: Vec::new(),
        started,
        deadline: spec
            .active_deadline_seconds
            .map(|s| started + Duration::from_secs(s.max(0) as u64)),
        grace: Duration::from_secs(spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64),
        restart_on_failure: spec.restart_policy.as_deref() == Some("OnFailure"),
        sidecars: Vec::new(),
        results: BTreeMap::new(),
    };
    let prepared = volumes::prepare(pod, &dir, &kubelet.claims, &kubelet.secrets)
        .and_then(|v| Ok((v, super::managed::prepare(pod, &dir)?)));
    let (phase, reason) = match prepared {
        Err(e) => (Phase::Pending, Some(e)),
        Ok((v, managed)) => {
            state.volumes = v;
            state.managed = managed;
            state.drive(&spec.init_containers.unwrap_or_default(), &spec.containers)
        }
    };
    let mut containers = state.results;
    for (name, c) in containers.iter_mut() {
        let log = std::fs::read_to_string(dir.join("logs").join(format!("{name}.log"))).unwrap_or_default();
        c.log = log.replace(&format!("{}\n", super::container::UNSHARE_SIGNAL_BUG), "");
    }
    PodRun {
        phase,
        reason,
        containers,
        elapsed: started.elapsed(),
        dir,
        volumes: state.volumes,
    }
}

/// Removes the pod directories of test processes that have ended (a
/// Postgres data directory alone is ~40 MB).
fn remove_dead_pods(pods: &std::path::Path) {
    for entry in std::fs::read_dir(pods).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let pid = name.split('-').next().unwrap_or("");
        if !pid.is_empty() && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Pod_<'_> {
    fn drive(&mut self, init: &[Container], regular: &[Container]) -> (Phase, Option<String>) {
        for container in init {
            let sidecar = container.restart_policy.as_deref() == Some("Always");
            let outcome = if sidecar {
                self.start_sidecar(container)
            } else {
                self.run_to_end(std::slice::from_ref(container))
            };
            match outcome {
                Ok(true) => {}
                Ok(false) => return self.finish(Phase::Failed, None),
                Err(Stop::Deadline) => return self.finish(Phase::Failed, Some("DeadlineExceeded".into())),
                Err(Stop::Limit) => {
                    return self.finish(Phase::Running, Some("still running at the test's limit".into()));
                }
            }
        }
        match self.run_to_end(regular) {
            Ok(true) => self.finish(Phase::Succeeded, None),
            Ok(false) => self.finish(Phase::Failed, None),
            Err(Stop::Deadline) => self.finish(Phase::Failed, Some("DeadlineExceeded".into())),
            Err(Stop::Limit) => self.finish(Phase::Running, Some("still running at the test's limit".into())),
        }
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    fn start(&mut self, container: &Container) -> Result<Running, String> {
        let launch = prepare(self.kubelet, self.pod, container, &self.volumes, &self.managed)?;
        Running::start(&container.name, container, launch, &self.log(&container.name))
    }

    fn config_error(&mut self, name: &str, error: String) {
        let entry = self.results.entry(name.into()).or_default();
        entry.reason = "CreateContainerConfigError".into();
        let _ = std::fs::write(self.log(name), format!("kubelet: {error}\n"));
    }

    fn check_stop(&self) -> Result<(), Stop> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Stop::Deadline);
        }
        if self.started.elapsed() >= self.kubelet.limit {
            return Err(Stop::Limit);
        }
        Ok(())
    }

    fn backoff(&self, restarts: u32) -> Duration {
        (self.kubelet.backoff * 2u32.saturating_pow(restarts.saturating_sub(1))).min(Duration::from_secs(300))
    }

    /// Fires hooks whose text has appeared in the container's log.
    fn hooks(&self, running: &mut Running) {
        for (i, hook) in self.kubelet.hooks.iter().enumerate() {
            if hook.container != running.name || running.fired.contains(&i) {
                continue;
            }
            let log = std::fs::read_to_string(self.log(&running.name)).unwrap_or_default();
            if log.contains(&hook.when) && running.init_pid().is_some() {
                running.fired.push(i);
                match hook.action {
                    Action::OomKill => {
                        running.oom_killed = true;
                        running.signal("KILL");
                    }
                    Action::TermPid1 => running.signal("TERM"),
                }
            }
        }
    }

    fn readiness(&mut self, running: &mut Running) {
        if running.probe_readiness() {
            self.results
                .entry(running.name.clone())
                .or_default()
                .became_unready += 1;
        }
    }

    fn record(&mut self, running: &Running, code: i32) {
        let entry = self.results.entry(running.name.clone()).or_default();
        entry.exit_code = Some(code);
        entry.reason = match (running.oom_killed, code) {
            (true, _) => "OOMKilled",
            (false, 0) => "Completed",
            _ => "Error",
        }
        .into();
    }

    /// Keeps the sidecars alive: restarts those that exited or failed their
    /// startup probe, after the back-off.
    fn tend_sidecars(&mut self, pending: &mut Vec<(usize, Instant)>) {
        let mut sidecars = std::mem::take(&mut self.sidecars);
        for (i, sidecar) in sidecars.iter_mut().enumerate() {
            if pending.iter().any(|(p, _)| *p == i) {
                continue;
            }
            self.hooks(sidecar);
            self.readiness(sidecar);
            let code = match sidecar.exited() {
                Some(code) => Some(code),
                None if !sidecar.probe_startup() => {
                    sidecar.signal("KILL");
                    let _ = sidecar.child.wait();
                    Some(137)
                }
                None if !sidecar.probe_liveness() => Some(sidecar.kill_with_grace(self.grace)),
                None => None,
            };
            if let Some(code) = code {
                self.record(sidecar, code);
                let restarts = self.results.get(&sidecar.name).map_or(0, |r| r.restarts) + 1;
                pending.push((i, Instant::now() + self.backoff(restarts)));
            }
        }
        let due: Vec<usize> = pending
            .iter()
            .filter(|(_, at)| Instant::now() >= *at)
            .map(|(i, _)| *i)
            .collect();
        for i in due {
            pending.retain(|(p, _)| *p != i);
            let spec = sidecars[i].spec.clone();
            if let Ok(new) = self.start(&spec) {
                if let Some(r) = self.results.get_mut(&spec.name) {
                    r.restarts += 1;
                }
                sidecars[i] = new;
            }
        }
        self.sidecars = sidecars;
    }

    /// Starts a native sidecar and waits for its startup probe.
    fn start_sidecar(&mut self, container: &Container) -> Result<bool, Stop> {
        let running = match self.start(container) {
            Ok(r) => r,
            Err(e) => {
                self.config_error(&container.name, e);
                return Ok(false);
            }
        };
        self.results.entry(container.name.clone()).or_default().reason = "Running".into();
        self.sidecars.push(running);
        let index = self.sidecars.len() - 1;
        let mut pending = Vec::new();
        loop {
            self.tend_sidecars(&mut pending);
            if self.sidecars[index].ready && !pending.iter().any(|(p, _)| *p == index) {
                return Ok(true);
            }
            self.check_stop()?;
            std::thread::sleep(TICK);
        }
    }

    /// Runs containers together until all have ended; Ok(all succeeded).
    fn run_to_end(&mut self, containers: &[Container]) -> Result<bool, Stop> {
        let mut running = Vec::new();
        for container in containers {
            match self.start(container) {
                Ok(r) => running.push(r),
                Err(e) => {
                    self.config_error(&container.name, e);
                    for r in running.iter_mut() {
                        r.signal("KILL");
                    }
                    return Ok(false);
                }
            }
        }
        let mut pending_sidecars = Vec::new();
        let mut ok = true;
        let mut waiting: Vec<(Container, Instant)> = Vec::new();
        loop {
            self.tend_sidecars(&mut pending_sidecars);
            let mut still = Vec::new();
            for mut r in running.drain(..) {
                self.hooks(&mut r);
                self.readiness(&mut r);
                let code = match r.exited() {
                    Some(code) => Some(code),
                    None if !r.probe_startup() => {
                        r.signal("KILL");
                        let _ = r.child.wait();
                        Some(137)
                    }
                    None if !r.probe_liveness() => Some(r.kill_with_grace(self.grace)),
                    None => None,
                };
                match code {
                    None => still.push(r),
                    Some(code) => {
                        self.record(&r, code);
                        if code != 0 && self.restart_on_failure {
                            let restarts = self.results.get(&r.name).map_or(0, |x| x.restarts) + 1;
                            waiting.push((r.spec.clone(), Instant::now() + self.backoff(restarts)));
                        } else if code != 0 {
                            ok = false;
                        }
                    }
                }
            }
            running = still;
            let deleted = self.kubelet.delete_after.as_ref().and_then(|name| {
                let code = self.results.get(name).and_then(|r| r.exit_code)?;
                (!running.iter().any(|r| &r.name == name)).then_some(code)
            });
            if let Some(code) = deleted {
                // The runner deletes the pod: every container gets the grace period.
                self.terminate(&mut running);
                return Ok(code == 0);
            }
            for (spec, _) in waiting.iter().filter(|(_, at)| Instant::now() >= *at) {
                if let Ok(r) = self.start(spec) {
                    self.results.entry(spec.name.clone()).or_default().restarts += 1;
                    running.push(r);
                }
            }
            waiting.retain(|(_, at)| Instant::now() < *at);
            if running.is_empty() && waiting.is_empty() {
                return Ok(ok);
            }
            if let Err(stop) = self.check_stop() {
                if matches!(stop, Stop::Limit) {
                    for r in running.iter_mut() {
                        r.signal("KILL");
                        let _ = r.child.wait();
                        self.results.entry(r.name.clone()).or_default().reason = "Running".into();
                    }
                } else {
                    self.terminate(&mut running);
                }
                return Err(stop);
            }
            std::thread::sleep(TICK);
        }
    }

    /// SIGTERM, then SIGKILL after the grace period (kubelet `killContainer`).
    fn terminate(&mut self, containers: &mut [Running]) {
        let until = Instant::now() + self.grace;
        for c in containers.iter_mut() {
            c.signal("TERM");
        }
        for c in containers.iter_mut() {
            let code = loop {
                if let Some(code) = c.exited() {
                    break code;
                }
                if Instant::now() >= until {
                    c.signal("KILL");
                    let _ = c.child.wait();
                    break c.exited().unwrap_or(137);
                }
                std::thread::sleep(TICK);
            };
            self.record(c, code);
        }
    }

    /// Stops the sidecars in reverse order (KEP-753) and settles the phase.
    fn finish(&mut self, phase: Phase, reason: Option<String>) -> (Phase, Option<String>) {
        let mut sidecars = std::mem::take(&mut self.sidecars);
        if matches!(phase, Phase::Running) {
            for s in sidecars.iter_mut() {
                s.signal("KILL");
                let _ = s.child.wait();
            }
        } else {
            for s in sidecars.iter_mut().rev() {
                self.terminate(std::slice::from_mut(s));
            }
        }
        (phase, reason)
    }
}

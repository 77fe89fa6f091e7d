//! From a container spec to what runs: the effective security context, env,
//! argv and working directory, and the running state the pod loop tracks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, Probe};

use super::env::{EnvSources, expand_all};
use super::images::HOST_PATH;
use super::process::{self, Identity, Launch};
use super::{Kubelet, volumes};

/// What util-linux 2.38's `unshare --fork` prints when its child dies by a signal.
pub const UNSHARE_SIGNAL_BUG: &str = "unshare: sigprocmask unblock failed: Invalid argument";

/// Builds the launch of `container`, or the reason the kubelet would not
/// start it (`CreateContainerConfigError`).
pub fn prepare(
    kubelet: &Kubelet,
    pod: &Pod,
    container: &Container,
    pod_volumes: &BTreeMap<String, PathBuf>,
    managed: &[volumes::Mount],
) -> Result<Launch, String> {
    let spec = pod.spec.as_ref().ok_or("pod without spec")?;
    let pod_sc = spec.security_context.clone().unwrap_or_default();
    let sc = container.security_context.clone().unwrap_or_default();
    let image = kubelet.images.get(container.image.as_deref().unwrap_or(""));
    // The image's USER is not imitated: every image runs as root by default.
    let uid = sc.run_as_user.or(pod_sc.run_as_user).unwrap_or(0);
    let gid = sc.run_as_group.or(pod_sc.run_as_group).unwrap_or(0);
    let non_root = sc.run_as_non_root.or(pod_sc.run_as_non_root).unwrap_or(false);
    if non_root && uid == 0 {
        return Err("container has runAsNonRoot and image will run as root".into());
    }
    let mut groups: Vec<i64> = pod_sc.fs_group.into_iter().collect();
    groups.extend(pod_sc.supplemental_groups.iter().flatten());
    let drop_all = sc
        .capabilities
        .as_ref()
        .and_then(|c| c.drop.as_ref())
        .is_some_and(|d| d.iter().any(|c| c == "ALL"));
    let identity = Identity {
        uid,
        gid,
        groups,
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        drop_all_caps: drop_all,
    };

    let sources = EnvSources {
        pod,
        secrets: &kubelet.secrets,
    };
    let declared = sources.environment(container)?;
    let mut env: Vec<(String, String)> = Vec::new();
    let image_path: Vec<String> = image.path.iter().map(|p| p.display().to_string()).collect();
    let path = image_path
        .into_iter()
        .chain([HOST_PATH.to_string()])
        .collect::<Vec<_>>()
        .join(":");
    env.push(("PATH".into(), path));
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    env.push(("HOSTNAME".into(), pod_name.chars().take(63).collect()));
    for (name, value) in declared.iter() {
        env.retain(|(n, _)| n != name);
        env.push((name.clone(), value.clone()));
    }
    if !env.iter().any(|(n, _)| n == "HOME") {
        // runc: HOME from the image's passwd entry for the UID, else "/".
        env.push(("HOME".into(), if uid == 0 { "/root".into() } else { "/".into() }));
    }

    let command = container.command.clone().unwrap_or_default();
    let args = container.args.clone();
    let argv = if !command.is_empty() {
        let mut argv = expand_all(&command, &declared);
        argv.extend(expand_all(&args.unwrap_or_default(), &declared));
        argv
    } else {
        let mut argv = image.entrypoint.clone();
        match args {
            Some(args) => argv.extend(expand_all(&args, &declared)),
            None => argv.extend(image.cmd.clone()),
        }
        argv
    };
    if argv.is_empty() {
        return Err(format!(
            "container {}: no command and the image has no entrypoint",
            container.name
        ));
    }
    let workdir = container
        .working_dir
        .clone()
        .or(image.workdir)
        .unwrap_or_else(|| "/".into());
    let mut mounts = image.files.clone();
    mounts.extend(volumes::mounts(container, pod_volumes)?);
    for m in managed {
        if !mounts.iter().any(|own| own.destination == m.destination) {
            mounts.push(m.clone());
        }
    }
    Ok(Launch {
        argv,
        env,
        workdir,
        mounts,
        identity,
    })
}

/// A container the pod loop tracks.
pub struct Running {
    pub name: String,
    pub spec: Container,
    pub launch: Launch,
    pub child: Child,
    pub init: Option<u32>,
    pub started: Instant,
    /// The startup probe has passed (or there is none).
    pub ready: bool,
    pub failures: u32,
    pub next_probe: Instant,
    /// Liveness failures in a row, and when the next liveness probe is due.
    pub live_failures: u32,
    pub next_liveness: Instant,
    /// The container's Ready condition (readinessProbe), its misses in a
    /// row, and when the next readiness probe is due.
    pub serving: bool,
    pub unready_failures: u32,
    pub next_readiness: Instant,
    pub oom_killed: bool,
    pub fired: Vec<usize>,
    /// The last signal sent to PID 1 (`kill -s` name).
    pub last_signal: Option<&'static str>,
    pub log: PathBuf,
}

impl Running {
    pub fn start(
        name: &str,
        spec: &Container,
        launch: Launch,
        log: &std::path::Path,
    ) -> Result<Running, String> {
        let child = launch.spawn(log)?;
        let startup = spec.startup_probe.as_ref().map(super::probes::Timing::of);
        let now = Instant::now();
        let liveness = spec.liveness_probe.as_ref().map(super::probes::Timing::of);
        let readiness = spec.readiness_probe.as_ref().map(super::probes::Timing::of);
        Ok(Running {
            name: name.into(),
            spec: spec.clone(),
            launch,
            child,
            init: None,
            started: now,
            ready: startup.is_none(),
            failures: 0,
            next_probe: now + startup.map_or(Duration::ZERO, |t| t.initial_delay),
            live_failures: 0,
            next_liveness: now + liveness.map_or(Duration::ZERO, |t| t.initial_delay),
            serving: false,
            unready_failures: 0,
            next_readiness: now + readiness.map_or(Duration::ZERO, |t| t.initial_delay),
            oom_killed: false,
            fired: Vec::new(),
            last_signal: None,
            log: log.to_path_buf(),
        })
    }

    /// PID 1 of the container, once it exists.
    pub fn init_pid(&mut self) -> Option<u32> {
        if self.init.is_none() {
            self.init = process::init_pid(self.child.id());
        }
        self.init
    }

    /// The exit code once the container has ended (128 + signal when killed).
    pub fn exited(&mut self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        let status = self.child.try_wait().ok()??;
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        // util-linux 2.38's unshare reports a child killed by a signal as
        // exit 1 with this message instead of dying by the same signal.
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        if code == 1 && log.trim_end().ends_with(UNSHARE_SIGNAL_BUG) {
            return Some(match self.last_signal {
                Some("KILL") => 137,
                Some("TERM") => 143,
                _ => 1,
            });
        }
        Some(code)
    }

    /// Runs the startup probe when due; returns false once it has failed
    /// failureThreshold times in a row (the kubelet then kills the container).
    pub fn probe_startup(&mut self) -> bool {
        let Some(probe) = self.spec.startup_probe.clone() else {
            return true;
        };
        if self.ready || Instant::now() < self.next_probe {
            return true;
        }
        let timing = super::probes::Timing::of(&probe);
        self.next_probe = Instant::now() + timing.period;
        if self.run_probe(&probe, timing.timeout) {
            self.ready = true;
            return true;
        }
        self.failures += 1;
        self.failures < timing.failure_threshold
    }

    /// Runs the liveness probe when due, only once the startup probe has
    /// passed (pkg/kubelet/prober `worker.doProbe`); returns false once it
    /// has failed failureThreshold times in a row (the kubelet then kills the
    /// container and restarts it by the restart policy).
    pub fn probe_liveness(&mut self) -> bool {
        let Some(probe) = self.spec.liveness_probe.clone() else {
            return true;
        };
        if !self.ready || Instant::now() < self.next_liveness {
            return true;
        }
        let timing = super::probes::Timing::of(&probe);
        self.next_liveness = Instant::now() + timing.period;
        if self.run_probe(&probe, timing.timeout) {
            self.live_failures = 0;
            return true;
        }
        self.live_failures += 1;
        self.live_failures < timing.failure_threshold
    }

    /// Runs the readiness probe when due, once the startup probe has passed:
    /// Ready after a success, NotReady after failureThreshold misses in a
    /// row; nothing is restarted. Returns true when it just left Ready.
    pub fn probe_readiness(&mut self) -> bool {
        let Some(probe) = self.spec.readiness_probe.clone() else {
            return false;
        };
        if !self.ready || Instant::now() < self.next_readiness {
            return false;
        }
        let timing = super::probes::Timing::of(&probe);
        self.next_readiness = Instant::now() + timing.period;
        if self.run_probe(&probe, timing.timeout) {
            self.unready_failures = 0;
            self.serving = true;
            return false;
        }
        self.unready_failures += 1;
        let left = self.serving && self.unready_failures >= timing.failure_threshold;
        if left {
            self.serving = false;
        }
        left
    }

    /// Kills the container as the kubelet does after a failed liveness probe:
    /// SIGTERM, SIGKILL after the grace period (the probe's
    /// terminationGracePeriodSeconds over the pod's); returns the exit code.
    pub fn kill_with_grace(&mut self, pod_grace: Duration) -> i32 {
        let grace = self
            .spec
            .liveness_probe
            .as_ref()
            .and_then(|p| p.termination_grace_period_seconds)
            .map_or(pod_grace, |s| Duration::from_secs(s.max(0) as u64));
        let until = Instant::now() + grace;
        self.signal("TERM");
        loop {
            if let Some(code) = self.exited() {
                return code;
            }
            if Instant::now() >= until {
                self.signal("KILL");
                let _ = self.child.wait();
                return self.exited().unwrap_or(137);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn run_probe(&mut self, probe: &Probe, timeout: Duration) -> bool {
        if let Some(result) = super::probes::network_probe(&self.spec, probe, timeout) {
            return result;
        }
        let Some(command) = probe.exec.as_ref().and_then(|e| e.command.clone()) else {
            return false;
        };
        match self.init_pid() {
            Some(pid) => self.launch.exec_in(pid, &command, timeout),
            None => false,
        }
    }

    /// Sends `name` to PID 1 (SIGKILL ends the whole PID namespace).
    pub fn signal(&mut self, name: &'static str) {
        self.last_signal = Some(name);
        match self.init_pid() {
            Some(pid) => process::signal(pid, name),
            None if name == "KILL" => {
                let _ = self.child.kill();
            }
            None => {}
        }
    }
}

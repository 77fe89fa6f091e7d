//! A kubelet-faithful runtime check for the tests: runs a rendered Pod's
//! containers on this machine the way a kubelet with runc would, host tools
//! standing in for images. Test support, shared by `#[path]`; needs root,
//! `unshare`, `setpriv`, `nsenter` and `busybox` (scripts/install-tools.sh).
//!
//! What it does as the kubelet does:
//! - each container in its own mount and PID namespace, volumes bind-mounted
//!   at their mount paths, a private /tmp, the command as PID 1;
//! - UID, GID, fsGroup and supplemental groups, no-new-privs and dropped
//!   capabilities (`setpriv`); `runAsNonRoot` refuses UID 0; HOME is `/` when
//!   the env sets none (`/root` for UID 0), as runc does for a UID the
//!   image's passwd does not name;
//! - emptyDir/PVC ownership and modes with fsGroup ([`volumes`]);
//! - env in order with `$(VAR)`/`$$` expansion of env values, command and
//!   args ([`env`]); secretKeyRef values from the test;
//! - init containers in order, native sidecars in the background with the
//!   next container held until their startupProbe passes (probes really run:
//!   [`probes`]), failing startup probes and exits restart a sidecar with the
//!   kubelet's back-off, regular containers together, then sidecars SIGTERMed
//!   in reverse order and SIGKILLed after terminationGracePeriodSeconds;
//!   activeDeadlineSeconds; hooks that OOM-kill a whole container or SIGTERM
//!   its PID 1;
//! - livenessProbes once the startup probe has passed: after failureThreshold
//!   misses the container is killed (SIGTERM, then SIGKILL after the grace
//!   period) and restarted by its restart policy; readinessProbes move the
//!   container's Ready condition and restart nothing;
//! - the kubelet's own files ([`managed`]): the pod's /etc/hosts with its
//!   hostAliases, and the service account token unless
//!   automountServiceAccountToken is false.
//!
//! What it does not imitate: images (their files, users, passwd entries and
//! environment: [`images`] only maps an image to an entrypoint, working
//! directory and PATH over the host's root filesystem), networking beyond the
//! shared loopback (no pod IP, no DNS, no Services), cgroups (limits are not
//! enforced; an OOM kill is a hook), ephemeral-storage limits (no eviction),
//! readiness gating of Services, image pulls, and the API server (nothing is
//! admitted or validated here; the service account token is a fake).

#![allow(dead_code)] // each test binary uses a part

pub mod container;

/// Where the check keeps pods' volumes, test repositories and tool links.
/// Not under `/tmp` (nor the build's target dir, which may be under `/tmp`):
/// every container gets a private `/tmp`, which would hide them.
pub fn scratch_root() -> std::path::PathBuf {
    use std::hash::{Hash, Hasher};
    let mut hash = std::collections::hash_map::DefaultHasher::new();
    env!("CARGO_TARGET_TMPDIR").hash(&mut hash);
    let dir = std::path::PathBuf::from(format!("/var/tmp/c8s-runtime-check-{:016x}", hash.finish()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}
pub mod env;
pub mod fixtures;
pub mod images;
pub mod lifecycle;
pub mod managed;
pub mod outcome;
pub mod probes;
pub mod process;
pub mod volumes;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use images::{Image, Images};
#[allow(unused_imports)]
pub use outcome::{ContainerRun, Phase, PodRun};

/// What a hook does to a running container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// SIGKILL every process of the container (PID 1 dies, the kernel kills
    /// the rest of its PID namespace), reported as `OOMKilled`.
    OomKill,
    /// SIGTERM the container's PID 1 only.
    TermPid1,
}

/// Fires `action` on `container` once its log contains `when`.
#[derive(Debug, Clone)]
pub struct Hook {
    pub container: String,
    pub when: String,
    pub action: Action,
}

/// The runtime check's settings for one pod.
#[derive(Debug, Clone)]
pub struct Kubelet {
    /// Images as host tools.
    pub images: Images,
    /// secretKeyRef / secret volume values by (secret name, key).
    pub secrets: BTreeMap<(String, String), String>,
    /// Host directories standing in for PVCs by claim name (a fresh empty
    /// directory otherwise).
    pub claims: BTreeMap<String, PathBuf>,
    /// Hooks, checked while containers run.
    pub hooks: Vec<Hook>,
    /// The first restart back-off (the kubelet's is 10 s, doubling to 5 min).
    pub backoff: Duration,
    /// The test's own limit: after it everything is killed and the pod is
    /// reported as still `Running`.
    pub limit: Duration,
    /// The runner deletes the pod once this container has ended (as the
    /// kube adapter does with legacy pods when `main` ends).
    pub delete_after: Option<String>,
}

impl Default for Kubelet {
    fn default() -> Self {
        Kubelet {
            images: Images::default(),
            secrets: BTreeMap::new(),
            claims: BTreeMap::new(),
            hooks: Vec::new(),
            backoff: Duration::from_secs(10),
            limit: Duration::from_secs(30),
            delete_after: None,
        }
    }
}

impl Kubelet {
    /// Gives a secretKeyRef value.
    pub fn secret(mut self, name: &str, key: &str, value: &str) -> Self {
        self.secrets.insert((name.into(), key.into()), value.into());
        self
    }

    /// Backs a PVC with a host directory.
    pub fn claim(mut self, name: &str, dir: PathBuf) -> Self {
        self.claims.insert(name.into(), dir);
        self
    }

    /// Adds a hook.
    pub fn hook(mut self, container: &str, when: &str, action: Action) -> Self {
        self.hooks.push(Hook {
            container: container.into(),
            when: when.into(),
            action,
        });
        self
    }

    /// Sets the test's limit.
    pub fn limit(mut self, limit: Duration) -> Self {
        self.limit = limit;
        self
    }

    /// Deletes the pod once `container` has ended.
    pub fn delete_after(mut self, container: &str) -> Self {
        self.delete_after = Some(container.into());
        self
    }

    /// Adds or replaces an image.
    pub fn image(mut self, repository: &str, image: Image) -> Self {
        self.images = self.images.with(repository, image);
        self
    }

    /// Runs the pod to its end (or the limit). Pod runs are serialised across
    /// test processes by a lock file: pods share the host's ports.
    pub fn run(&self, pod: &k8s_openapi::api::core::v1::Pod) -> PodRun {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let root = status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
        assert!(
            root,
            "the runtime check needs root (namespaces, setpriv, chown), as CI has: run the tests as root"
        );
        let lock_path = std::env::temp_dir().join("c8s-runtime-check.lock");
        let lock = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path);
        let lock = lock.unwrap_or_else(|e| panic!("{}: {e}", lock_path.display()));
        lock.lock().expect("runtime-check lock");
        lifecycle::run(self, pod)
    }
}

/// The pod inside a Job (its template, named as the Job controller would).
pub fn job_pod(job: &k8s_openapi::api::batch::v1::Job) -> k8s_openapi::api::core::v1::Pod {
    let template = job.spec.as_ref().expect("job spec").template.clone();
    let mut metadata = template.metadata.unwrap_or_default();
    metadata.name = job.metadata.name.as_ref().map(|n| format!("{n}-runtime"));
    metadata.namespace = job.metadata.namespace.clone();
    k8s_openapi::api::core::v1::Pod {
        metadata,
        spec: template.spec,
        status: None,
    }
}

//! What a pod run reports: the phase, why, and each container's end and log.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The pod phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

/// How one container ended.
#[derive(Debug, Clone, Default)]
pub struct ContainerRun {
    /// The last exit code (None: never ran or still running at the limit).
    pub exit_code: Option<i32>,
    /// Completed, Error, OOMKilled, CreateContainerConfigError, Running.
    pub reason: String,
    pub restarts: u32,
    /// Times its readinessProbe took it out of Ready.
    pub became_unready: u32,
    /// stdout and stderr of every run.
    pub log: String,
}

/// The outcome of a pod run.
#[derive(Debug, Clone)]
pub struct PodRun {
    pub phase: Phase,
    /// DeadlineExceeded, or why the pod could not run.
    pub reason: Option<String>,
    pub containers: BTreeMap<String, ContainerRun>,
    pub elapsed: Duration,
    /// The pod's host directory (volumes under `volumes/`, logs under `logs/`).
    pub dir: PathBuf,
    /// Host directories of the pod's volumes by name.
    pub volumes: BTreeMap<String, PathBuf>,
}

impl PodRun {
    /// One container's outcome (panics with the whole run when absent).
    pub fn container(&self, name: &str) -> &ContainerRun {
        self.containers
            .get(name)
            .unwrap_or_else(|| panic!("no container {name} in {self:#?}"))
    }

    /// Every log, for assertion messages.
    pub fn logs(&self) -> String {
        let mut out = format!(
            "phase {:?} reason {:?} after {:?}\n",
            self.phase, self.reason, self.elapsed
        );
        for (name, c) in &self.containers {
            out += &format!(
                "--- {name}: exit {:?} {} restarts {}\n{}\n",
                c.exit_code, c.reason, c.restarts, c.log
            );
        }
        out
    }
}

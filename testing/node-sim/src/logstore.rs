//! What the simulated containers wrote, shared between the pod workers (which
//! write) and the kubelet server (which serves `/containerLogs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;

/// Where a container is, as far as its log is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogStatus {
    /// Not started: the waiting reason.
    Waiting(String),
    /// Running: more lines may come.
    Running,
    /// Terminated: the log is complete.
    Terminated,
}

/// One container's log.
#[derive(Debug)]
pub struct ContainerLog {
    inner: Mutex<LogInner>,
    changed: watch::Sender<u64>,
}

/// The lines and status of a container, as one snapshot.
#[derive(Debug, Clone)]
pub struct LogInner {
    /// Where the container is.
    pub status: LogStatus,
    /// Every line written, with when.
    pub lines: Vec<(Timestamp, String)>,
}

impl ContainerLog {
    /// A container that has not started, waiting with `reason`.
    pub fn waiting(reason: &str) -> Self {
        Self {
            inner: Mutex::new(LogInner {
                status: LogStatus::Waiting(reason.to_owned()),
                lines: Vec::new(),
            }),
            changed: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogInner> {
        // A poisoned lock only means a writer panicked mid-update; the data is
        // still a list of lines and a status.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A snapshot of the status and the lines from `from` on.
    pub fn since(&self, from: usize) -> (LogStatus, Vec<(Timestamp, String)>) {
        let inner = self.lock();
        let lines = inner.lines.get(from..).map(<[_]>::to_vec).unwrap_or_default();
        (inner.status.clone(), lines)
    }

    /// A receiver told of every later change (status or line).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Sets the status.
    pub fn set_status(&self, status: LogStatus) {
        let mut inner = self.lock();
        if inner.status != status {
            inner.status = status;
            drop(inner);
            self.notify();
        }
    }

    /// Appends a line.
    pub fn write(&self, at: Timestamp, line: &str) {
        self.lock().lines.push((at, line.to_owned()));
        self.notify();
    }
}

/// The logs of one pod's containers.
#[derive(Debug)]
pub struct PodLogs {
    /// The pod's UID (a pod of the same name may replace it).
    pub uid: String,
    /// By container name (init containers included).
    pub containers: BTreeMap<String, Arc<ContainerLog>>,
}

/// Every simulated pod's logs, by namespace and name.
#[derive(Debug, Default)]
pub struct LogStore {
    pods: Mutex<HashMap<(String, String), Arc<PodLogs>>>,
}

impl LogStore {
    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), Arc<PodLogs>>> {
        self.pods
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a pod's containers, each waiting with `reason`; returns them by name.
    pub fn register<'a>(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        containers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Arc<PodLogs> {
        let logs = Arc::new(PodLogs {
            uid: uid.to_owned(),
            containers: containers
                .into_iter()
                .map(|(container, reason)| (container.to_owned(), Arc::new(ContainerLog::waiting(reason))))
                .collect(),
        });
        self.lock()
            .insert((namespace.to_owned(), name.to_owned()), Arc::clone(&logs));
        logs
    }

    /// Forgets a pod, if the entry is still this UID's.
    pub fn remove(&self, namespace: &str, name: &str, uid: &str) {
        let mut pods = self.lock();
        let key = (namespace.to_owned(), name.to_owned());
        if pods.get(&key).is_some_and(|p| p.uid == uid) {
            pods.remove(&key);
        }
    }

    /// A pod's logs.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<PodLogs>> {
        self.lock().get(&(namespace.to_owned(), name.to_owned())).cloned()
    }
}

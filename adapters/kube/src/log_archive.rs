//! A run's logs in the archive: each attempt's masked container logs, as
//! they were streamed, uploaded when the attempt ends (after the logs of a
//! failed step's other containers were read), and the object's key and URL
//! recorded on the step ([`StepStatus::archived_logs`]).
//!
//! - Only masked bytes are kept: the archive receives exactly what the
//!   run's [`LogSink`] receives, from the same maskers.
//! - Logs that cannot be masked (the run's Secrets could not be read, or a
//!   value is too short to mask) are never uploaded: the step's
//!   [`StepStatus::log_archive_error`] says why.
//! - A failed upload (a missing bucket, refused credentials, a server down
//!   after the archive's retries) is recorded on the step the same way; the
//!   step's and the run's result do not change.
//! - An attempt's logs are held in memory until uploaded.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::archive::{Archive, LogKey};
use crate::logs::LogSink;
use crate::outcome::ArchivedLogRef;

/// Where a run archives its logs ([`crate::RunOptions::archive`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ArchiveOptions {
    /// The bucket and its settings.
    pub archive: Archive,
    /// The run's namespace: a part of every key.
    pub namespace: String,
    /// Why the logs cannot be masked, when they cannot: nothing is uploaded,
    /// and every step says so.
    pub withheld: Option<String>,
}

impl ArchiveOptions {
    /// Archives into `archive`, under `namespace`.
    pub fn new(archive: Archive, namespace: impl Into<String>) -> Self {
        ArchiveOptions {
            archive,
            namespace: namespace.into(),
            withheld: None,
        }
    }

    /// Uploads nothing: the logs cannot be masked, for `reason`.
    pub fn withheld(mut self, reason: impl Into<String>) -> Self {
        self.withheld = Some(reason.into());
        self
    }
}

/// A sink that passes masked bytes on and keeps a copy of each container's
/// for the archive.
pub(crate) struct Keeping {
    inner: Arc<dyn LogSink>,
    kept: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl Keeping {
    /// Passes every write on to `inner`.
    pub(crate) fn new(inner: Arc<dyn LogSink>) -> Self {
        Keeping {
            inner,
            kept: Mutex::new(BTreeMap::new()),
        }
    }

    /// The bytes kept so far, by container, in container-name order.
    pub(crate) fn take(&self) -> BTreeMap<String, Vec<u8>> {
        self.kept
            .lock()
            .map(|mut k| std::mem::take(&mut *k))
            .unwrap_or_default()
    }
}

impl LogSink for Keeping {
    fn write(&self, step: &str, attempt: u32, container: &str, masked: &[u8]) {
        self.inner.write(step, attempt, container, masked);
        if let Ok(mut kept) = self.kept.lock() {
            kept.entry(container.to_owned())
                .or_default()
                .extend_from_slice(masked);
        }
    }
}

/// What archiving one attempt's logs gave: the logs stored, and what went
/// wrong (empty when nothing did).
#[derive(Debug, Default)]
pub(crate) struct Archived {
    pub logs: Vec<ArchivedLogRef>,
    pub errors: Vec<String>,
}

/// Uploads `kept` (masked, by container) as the logs of `step`'s attempt
/// `attempt` in run `run`; `main` is always stored (empty if it wrote
/// nothing), other containers only when they wrote something.
pub(crate) async fn archive_attempt(
    options: &ArchiveOptions,
    run: &str,
    step: &str,
    attempt: u32,
    mut kept: BTreeMap<String, Vec<u8>>,
) -> Archived {
    let mut out = Archived::default();
    if let Some(reason) = &options.withheld {
        out.errors.push(format!("logs not archived: {reason}"));
        return out;
    }
    kept.entry(crate::observe::MAIN_CONTAINER.to_owned()).or_default();
    for (container, bytes) in kept {
        if bytes.is_empty() && container != crate::observe::MAIN_CONTAINER {
            continue;
        }
        let key = LogKey::new(&options.namespace, run, step, attempt, &container);
        match options.archive.upload(&key, bytes).await {
            Ok(stored) => out.logs.push(ArchivedLogRef {
                attempt,
                container,
                key: stored.key,
                url: stored.url,
                bytes: stored.size,
            }),
            Err(e) => {
                tracing::warn!(step, attempt, container, error = %e, "log not archived");
                out.errors.push(format!("log of {container} not archived: {e}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every write: step, attempt, container, bytes.
    type Writes = Vec<(String, u32, String, Vec<u8>)>;

    #[derive(Default)]
    struct Seen(Mutex<Writes>);

    impl LogSink for Seen {
        fn write(&self, step: &str, attempt: u32, container: &str, masked: &[u8]) {
            if let Ok(mut seen) = self.0.lock() {
                seen.push((step.into(), attempt, container.into(), masked.to_vec()));
            }
        }
    }

    #[test]
    fn keeping_passes_every_write_on_and_keeps_each_containers_bytes() {
        let seen = Arc::new(Seen::default());
        let keeping = Keeping::new(seen.clone());
        keeping.write("unit", 0, "main", b"one ");
        keeping.write("unit", 0, "postgres", b"ready\n");
        keeping.write("unit", 0, "main", b"two\n");
        assert_eq!(seen.0.lock().map(|s| s.len()).unwrap_or(0), 3);
        let kept = keeping.take();
        assert_eq!(kept.get("main").map(Vec::as_slice), Some(&b"one two\n"[..]));
        assert_eq!(kept.get("postgres").map(Vec::as_slice), Some(&b"ready\n"[..]));
        assert!(keeping.take().is_empty(), "taken once");
    }

    #[tokio::test]
    async fn withheld_logs_upload_nothing_and_say_why() {
        use crate::archive::{ArchiveSettings, Credentials};
        // An endpoint nothing listens on: any upload would fail, not pass.
        let mut settings = ArchiveSettings::new("logs", Credentials::new("id", "secret"));
        settings.endpoint = Some("http://127.0.0.1:9".into());
        let archive = Archive::new(settings).unwrap_or_else(|e| panic!("{e}"));
        let options = ArchiveOptions::new(archive, "ns").withheld("cannot read Secret \"db\"");
        let kept = BTreeMap::from([("main".to_owned(), b"hello".to_vec())]);
        let archived = archive_attempt(&options, "run", "unit", 0, kept).await;
        assert!(archived.logs.is_empty());
        assert_eq!(
            archived.errors,
            vec!["logs not archived: cannot read Secret \"db\"".to_owned()]
        );
    }
}

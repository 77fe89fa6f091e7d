//! Masked log streaming: raw chunks go into a [`LogMasker`], only its output
//! reaches a [`LogSink`].

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::cluster::{Cluster, ObjectRef};
use crate::error::Result;
use crate::observe::MAIN_CONTAINER;

/// Removes secrets from a byte stream that arrives in chunks.
///
/// A secret may be split across two chunks, so a masker may hold bytes back
/// until the next chunk or [`LogMasker::finish`].
pub trait LogMasker: Send {
    /// Feeds a raw chunk; returns the bytes that are safe to write now.
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8>;
    /// Ends the stream; returns the held-back bytes, masked. The masker is not fed again.
    fn finish(&mut self) -> Vec<u8>;
}

/// A masker for a run without secrets: passes bytes through unchanged.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSecrets;

impl LogMasker for NoSecrets {
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        chunk.to_vec()
    }
    fn finish(&mut self) -> Vec<u8> {
        Vec::new()
    }
}

/// A masker built from a closure that masks each chunk on its own (no state
/// across chunks: use a real streaming masker when secrets can be split).
pub struct ChunkMasker<F>(pub F);

impl<F: FnMut(&[u8]) -> Vec<u8> + Send> LogMasker for ChunkMasker<F> {
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        (self.0)(chunk)
    }
    fn finish(&mut self) -> Vec<u8> {
        Vec::new()
    }
}

impl LogMasker for c8s_pipeline_model::SecretMasker {
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        c8s_pipeline_model::SecretMasker::feed(self, chunk)
    }
    fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.finish_into(&mut out);
        out
    }
}

/// Where masked log bytes go (a terminal, a file, a buffer).
pub trait LogSink: Send + Sync {
    /// Receives masked bytes of `container` in `step`'s attempt `attempt` (0-based).
    fn write(&self, step: &str, attempt: u32, container: &str, masked: &[u8]);
}

/// Makes a fresh masker for a step's container.
pub type MaskerFactory = Arc<dyn Fn(&str) -> Box<dyn LogMasker> + Send + Sync>;

/// Which logs to stream, how to mask them, and where the masked bytes go.
#[derive(Clone)]
#[non_exhaustive]
pub struct LogOptions {
    /// The containers whose logs are streamed: `main` by default, plus sidecars on request.
    pub containers: Vec<String>,
    /// A new masker per step and container, fed every raw chunk.
    pub masker: MaskerFactory,
    /// Receives masked bytes only.
    pub sink: Arc<dyn LogSink>,
    /// How long to wait for log streams to end after `main` finished.
    pub grace: Duration,
}

impl LogOptions {
    /// Streams `main`'s log, masked by `masker`, into `sink`.
    pub fn new(masker: MaskerFactory, sink: Arc<dyn LogSink>) -> Self {
        LogOptions {
            containers: vec![MAIN_CONTAINER.to_owned()],
            masker,
            sink,
            grace: Duration::from_secs(10),
        }
    }

    /// Also streams `container` (a sidecar).
    pub fn with_container(mut self, container: impl Into<String>) -> Self {
        self.containers.push(container.into());
        self
    }
}

impl std::fmt::Debug for LogOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogOptions")
            .field("containers", &self.containers)
            .field("grace", &self.grace)
            .finish()
    }
}

/// Streams the log of `container` in `object` through `masker` into `sink`.
/// Returns how many masked bytes were written. Raw chunks are dropped right
/// after masking. A stream that breaks (a transient error) is opened again,
/// up to 5 times, skipping the bytes already seen; an error that ends the
/// stream still flushes the masker.
pub async fn stream_masked_logs<C: Cluster>(
    cluster: &C,
    object: &ObjectRef,
    container: &str,
    masker: &mut dyn LogMasker,
    sink: &dyn LogSink,
    step: &str,
    attempt: u32,
) -> Result<u64> {
    let target = LogTarget {
        step,
        attempt,
        container,
    };
    stream_masked_logs_until(cluster, object, target, masker, sink, std::future::pending()).await
}

/// How often one container's log stream is opened again after it broke.
const LOG_RESUMES: u32 = 5;

/// Whose log a stream is: step, attempt and container.
#[derive(Clone, Copy)]
pub(crate) struct LogTarget<'a> {
    pub step: &'a str,
    pub attempt: u32,
    pub container: &'a str,
}

/// [`stream_masked_logs`] that also ends when `stop` completes; the masker's
/// held-back tail is flushed however the stream ends.
pub(crate) async fn stream_masked_logs_until<C: Cluster>(
    cluster: &C,
    object: &ObjectRef,
    target: LogTarget<'_>,
    masker: &mut dyn LogMasker,
    sink: &dyn LogSink,
    stop: impl std::future::Future<Output = ()>,
) -> Result<u64> {
    let LogTarget {
        step,
        attempt,
        container,
    } = target;
    let mut written = 0u64;
    let mut write = |bytes: Vec<u8>| {
        if !bytes.is_empty() {
            written += bytes.len() as u64;
            sink.write(step, attempt, container, &bytes);
        }
    };
    let mut stop = std::pin::pin!(stop);
    let mut failure = None;
    // Raw bytes already fed: a stream opened again skips them.
    let mut seen = 0u64;
    let mut resumes = 0u32;
    'open: loop {
        let opened = tokio::select! {
            biased;
            () = &mut stop => None,
            opened = cluster.logs(object, container) => Some(opened),
        };
        let mut stream = match opened {
            None => break,
            Some(Err(e)) => {
                failure = Some(e);
                break;
            }
            Some(Ok(stream)) => stream,
        };
        let mut skip = seen;
        loop {
            let chunk = tokio::select! {
                biased;
                chunk = stream.next() => chunk,
                () = &mut stop => None,
            };
            match chunk {
                Some(Ok(raw)) => {
                    // A resumed stream starts again at the log's beginning.
                    let cut = usize::try_from(skip).unwrap_or(usize::MAX).min(raw.len());
                    skip -= cut as u64;
                    let fresh = raw.get(cut..).unwrap_or_default();
                    seen += fresh.len() as u64;
                    write(masker.feed(fresh));
                }
                Some(Err(e)) if e.is_transient() && resumes < LOG_RESUMES => {
                    tracing::debug!(%object, container, error = %e, "log stream broke, resuming it");
                    resumes += 1;
                    continue 'open;
                }
                Some(Err(e)) => {
                    failure = Some(e);
                    break 'open;
                }
                None => break 'open,
            }
        }
    }
    write(masker.finish());
    match failure {
        Some(e) => Err(e),
        None => Ok(written),
    }
}

/// On a step's failure, streams the log of each of `containers` (those of
/// the pod's spec not streamed already: init containers, native sidecars,
/// the helper), one after the other, each through its own masker and
/// labelled with its name; all of them together get `logs.grace`, and a
/// stream cut by it still flushes its masker's tail. A container that never
/// started has no log: the API server's refusal is only traced.
pub(crate) async fn failure_logs<C: Cluster>(
    cluster: &C,
    object: &ObjectRef,
    target: LogTarget<'_>,
    containers: &[String],
    logs: &LogOptions,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let all = async {
        for container in containers {
            let mut masker = (logs.masker)(container);
            let mut stop = stop_rx.clone();
            let stopped = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            let target = LogTarget { container, ..target };
            let sink = logs.sink.as_ref();
            let streamed = stream_masked_logs_until(cluster, object, target, masker.as_mut(), sink, stopped);
            if let Err(e) = streamed.await {
                tracing::debug!(%object, container, error = %e, "no log of a failed step's container");
            }
        }
    };
    let mut all = std::pin::pin!(all);
    if tokio::time::timeout(logs.grace, &mut all).await.is_err() {
        let _ = stop_tx.send(true);
        all.await;
    }
}

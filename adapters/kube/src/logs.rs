//! Masked log streaming: raw chunks go into a [`LogMasker`], only its output
//! reaches a [`LogSink`].

use futures::StreamExt;

use crate::cluster::{Cluster, ObjectRef};
use crate::error::Result;

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

/// Streams the log of `container` in `object` through `masker` into `sink`.
/// Returns how many masked bytes were written. Raw chunks are dropped right
/// after masking; an error ends the stream but still flushes the masker.
pub async fn stream_masked_logs<C: Cluster>(
    cluster: &C,
    object: &ObjectRef,
    container: &str,
    masker: &mut dyn LogMasker,
    sink: &dyn LogSink,
    step: &str,
    attempt: u32,
) -> Result<u64> {
    let mut written = 0u64;
    let mut write = |bytes: Vec<u8>| {
        if !bytes.is_empty() {
            written += bytes.len() as u64;
            sink.write(step, attempt, container, &bytes);
        }
    };
    let mut stream = cluster.logs(object, container).await?;
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(raw) => write(masker.feed(&raw)),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    write(masker.finish());
    match failure {
        Some(e) => Err(e),
        None => Ok(written),
    }
}

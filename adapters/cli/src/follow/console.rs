//! Where the commands that follow runs print.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use c8s_kube::LogSink;

/// A log: step, attempt, container.
type LogKey = (String, u32, String);

/// Where the in-cluster commands print: stdout and stderr in the binary,
/// buffers in tests. Shared by the log streams of concurrent steps: log
/// lines are printed whole, each with its step's prefix, so lines of
/// different steps never mix.
#[derive(Clone)]
pub struct Console {
    out: Arc<Mutex<dyn Write + Send>>,
    err: Arc<Mutex<dyn Write + Send>>,
    partial: Arc<Mutex<BTreeMap<LogKey, Vec<u8>>>>,
}

impl Console {
    /// The process's stdout and stderr.
    pub fn std() -> Self {
        Console {
            out: Arc::new(Mutex::new(std::io::stdout())),
            err: Arc::new(Mutex::new(std::io::stderr())),
            partial: Arc::default(),
        }
    }

    /// A console writing into `out` and `err`.
    #[cfg(test)]
    pub fn new(out: Arc<Mutex<dyn Write + Send>>, err: Arc<Mutex<dyn Write + Send>>) -> Self {
        Console {
            out,
            err,
            partial: Arc::default(),
        }
    }

    pub(crate) fn out(&self, text: &str) {
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(text.as_bytes());
        }
    }

    pub(crate) fn note(&self, line: &str) {
        if let Ok(mut err) = self.err.lock() {
            let _ = writeln!(err, "{line}");
        }
    }

    /// Prints what is left of a log that did not end with a newline.
    pub(crate) fn finish(&self, step: &str, attempt: u32, container: &str) {
        let key = (step.to_owned(), attempt, container.to_owned());
        let rest = self.partial.lock().ok().and_then(|mut p| p.remove(&key));
        if let (Some(mut rest), Ok(mut out)) = (rest, self.out.lock()) {
            rest.push(b'\n');
            let _ = write!(out, "[{step}#{attempt} {container}] ");
            let _ = out.write_all(&rest);
        }
    }
}

impl LogSink for Console {
    fn write(&self, step: &str, attempt: u32, container: &str, masked: &[u8]) {
        let key = (step.to_owned(), attempt, container.to_owned());
        let Ok(mut partial) = self.partial.lock() else {
            return;
        };
        let pending = partial.entry(key.clone()).or_default();
        pending.extend_from_slice(masked);
        let whole = pending.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let lines: Vec<u8> = pending.drain(..whole).collect();
        if pending.is_empty() {
            partial.remove(&key);
        }
        drop(partial);
        if let Ok(mut out) = self.out.lock() {
            for line in lines.split_inclusive(|b| *b == b'\n') {
                let _ = write!(out, "[{step}#{attempt} {container}] ");
                let _ = out.write_all(line);
            }
        }
    }
}

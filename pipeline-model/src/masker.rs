//! A streaming secret masker for step logs.
//!
//! Feed log bytes in chunks of any size; every occurrence of a registered
//! secret value, and of its base64 forms, comes out as `***` — also when a
//! value is split across chunks or spans lines. The masker works on bytes,
//! searches with one Aho-Corasick automaton (leftmost-longest), and holds back
//! at most `longest pattern − 1` bytes between calls.
//!
//! ```
//! use c8s_pipeline_model::masker::SecretMasker;
//! let mut masker = SecretMasker::new(["hunter2"]).expect("a small matcher builds");
//! let mut out = masker.feed(b"password: hun");
//! out.extend(masker.feed(b"ter2\n"));
//! out.extend(masker.finish());
//! assert_eq!(out, b"password: ***\n");
//! ```
//!
//! What is masked, for each value of at least [`MIN_SECRET_LEN`] bytes once
//! surrounding whitespace is trimmed:
//! - the value itself, byte for byte; trimmed of surrounding whitespace and
//!   newlines; with CRLF line ends as LF and LF as CRLF; and, for a
//!   multi-line value (a key, a certificate), each trimmed line on its own;
//! - each of these as it appears escaped in a JSON string, percent-encoded in
//!   a URL (also with `+` for a space) and escaped in XML;
//! - its standalone base64 encodings, standard and URL-safe, padded and not;
//! - for values of at least [`MIN_EMBEDDED_BASE64_LEN`] bytes, the part of its
//!   encoding that does not depend on its neighbours when the value sits at
//!   any of the three byte alignments inside a larger base64-encoded blob
//!   (the one or two characters at each edge that mix in neighbouring bytes
//!   stay visible). Line-wrapped base64 (MIME, PEM) is not recognised.
//!
//! Overlapping occurrences are masked as their union: one `***` for the whole
//! overlapping run. Occurrences that merely touch each get their own `***`.
//! The output is exactly the same however the input is chunked.
//!
//! Building is linear in the values' total length: a form longer than 128
//! bytes is registered as overlapping 128-byte pieces that cover it (so any
//! occurrence is masked whole, and a piece alone is masked too), which also
//! bounds the hold-back to 127 bytes. Values over 4 KiB (certificates,
//! kubeconfigs) get their raw, per-line and standalone base64 forms only: the
//! escapes and embedded-base64 cores would multiply the automaton's size. The
//! automaton is refused beyond [`MAX_PATTERN_BYTES`] rather than built unbounded.
//!
//! One limit: the output never contains a registered value that was in the
//! input, but a value that itself contains `***` could be re-formed by the
//! replacement text next to the surrounding bytes.

mod forms;

use std::collections::BTreeSet;
use std::fmt;

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};

/// What replaces a secret in the output.
pub const MASK: &[u8] = b"***";

/// Values shorter than this many bytes, not counting surrounding whitespace
/// (` ab\n` counts 2), are not masked: masking every `a` or `42` in a log
/// would destroy it and reveal, by the gaps, what the value is.
/// [`SecretMasker::ignored_values`] counts them so a caller can warn.
pub const MIN_SECRET_LEN: usize = 3;

/// Values of at least this many bytes also have their base64 encodings masked
/// when embedded at any alignment in a larger base64 blob; the stable part of
/// such an encoding is then at least 7 characters (42 bits), long enough not
/// to hit ordinary log text.
pub const MIN_EMBEDDED_BASE64_LEN: usize = 6;

/// Up to this many pattern bytes the automaton is a DFA (fastest; its table
/// takes at most about 512 bytes per pattern byte, so 32 MiB here); above it,
/// aho-corasick picks a smaller automaton. 100 secrets of 40 bytes need ~25 KiB.
const DFA_PATTERN_BYTES: usize = 64 * 1024;

/// The most pattern bytes (all forms of all values) a masker is built for,
/// about 1.5 MiB of secret values: building beyond this is refused, and the
/// caller withholds logs, rather than spending unbounded time and memory.
pub const MAX_PATTERN_BYTES: usize = 16 * 1024 * 1024;

/// Why a masker could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MaskerError {
    /// The secret values are too many or too long for one automaton.
    #[error("cannot build the secret masker: the secret values are too many or too long ({detail})")]
    TooLarge {
        /// What was too large, without any value.
        detail: String,
    },
}

/// A streaming masker of secret values. See the [module docs](self).
///
/// Its `Debug` output shows only counts, never a value.
#[derive(Clone)]
pub struct SecretMasker {
    automaton: Option<AhoCorasick>,
    /// Length of the longest pattern; the hold-back is one less.
    longest: usize,
    values: usize,
    ignored: usize,
    /// Names of the values too short to mask (for warnings).
    short: Vec<String>,
    patterns: usize,
    /// Held-back bytes, followed by the chunk being processed.
    buf: Vec<u8>,
    /// `buf[..masked_until]` is already covered by an emitted `***`.
    masked_until: usize,
}

impl SecretMasker {
    /// A masker for `values` and their base64 forms. Empty values and values
    /// shorter than [`MIN_SECRET_LEN`] are ignored (and counted); duplicates
    /// are registered once.
    pub fn new<I>(values: I) -> Result<Self, MaskerError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        Self::named(values.into_iter().map(|v| (String::new(), v)))
    }

    /// Like [`new`](Self::new), with a name for each value (such as
    /// `secret/key`) so that values too short to mask can be reported by
    /// name ([`short_values`](Self::short_values)) — never by value.
    ///
    /// ```
    /// use c8s_pipeline_model::SecretMasker;
    /// let masker = SecretMasker::named([("db/password", "hunter2"), ("db/user", "ab")]).unwrap();
    /// assert_eq!(masker.short_values(), ["db/user"]);
    /// ```
    pub fn named<I, N, V>(values: I) -> Result<Self, MaskerError>
    where
        I: IntoIterator<Item = (N, V)>,
        N: Into<String>,
        V: AsRef<[u8]>,
    {
        let mut unique = BTreeSet::new();
        let mut ignored = 0;
        let mut short = BTreeSet::new();
        for (name, value) in values {
            let value = value.as_ref();
            if value.trim_ascii().len() < MIN_SECRET_LEN {
                if !value.is_empty() {
                    ignored += 1;
                    short.insert(name.into());
                }
            } else {
                unique.insert(value.to_vec());
            }
        }
        short.remove("");
        let mut patterns = BTreeSet::new();
        let mut total = 0usize;
        for value in &unique {
            forms::add_forms(value, &mut patterns);
            total = patterns.iter().map(Vec::len).sum();
            if total > MAX_PATTERN_BYTES {
                return Err(MaskerError::TooLarge {
                    detail: format!("{total} pattern bytes, more than {MAX_PATTERN_BYTES}"),
                });
            }
        }
        let longest = patterns.iter().map(Vec::len).max().unwrap_or(0);
        let automaton = if patterns.is_empty() {
            None
        } else {
            let kind = (total <= DFA_PATTERN_BYTES).then_some(AhoCorasickKind::DFA);
            let built = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .kind(kind)
                .build(&patterns)
                .map_err(|e| MaskerError::TooLarge {
                    detail: e.to_string(),
                })?;
            Some(built)
        };
        Ok(Self {
            automaton,
            longest,
            values: unique.len(),
            ignored,
            short: short.into_iter().collect(),
            patterns: patterns.len(),
            buf: Vec::new(),
            masked_until: 0,
        })
    }

    /// The names of the values too short to mask (see [`named`](Self::named)),
    /// sorted; a caller warns about them. Unnamed values are only counted.
    pub fn short_values(&self) -> &[String] {
        &self.short
    }

    /// How many distinct values are masked.
    pub fn value_count(&self) -> usize {
        self.values
    }

    /// How many non-empty values were too short to mask (see [`MIN_SECRET_LEN`]).
    pub fn ignored_values(&self) -> usize {
        self.ignored
    }

    /// The most bytes held back between calls: the longest pattern's length − 1,
    /// never more than 127.
    pub fn max_held_back(&self) -> usize {
        self.longest.saturating_sub(1)
    }

    /// Masks `chunk`, returning what can be emitted now; a possible start of a
    /// secret at the end is held back until the next call or [`finish`](Self::finish).
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len() + self.buf.len());
        self.feed_into(chunk, &mut out);
        out
    }

    /// Like [`feed`](Self::feed), appending to `out` (reuse it to avoid allocations).
    pub fn feed_into(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.automaton.is_none() {
            out.extend_from_slice(chunk);
            return;
        }
        self.buf.extend_from_slice(chunk);
        let decided = self.buf.len().saturating_sub(self.max_held_back());
        self.emit_decided(decided, out);
    }

    /// Emits everything still held back, masked.
    pub fn finish(mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buf.len());
        self.finish_into(&mut out);
        out
    }

    /// Like [`finish`](Self::finish), appending to `out`; the masker is then
    /// empty and can start a new stream.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) {
        let end = self.buf.len();
        self.emit_decided(end, out);
    }

    /// Masks and emits `buf[..decided]`, where every match starting before
    /// `decided` lies wholly inside `buf`, and keeps the rest for later.
    fn emit_decided(&mut self, decided: usize, out: &mut Vec<u8>) {
        let Some(automaton) = &self.automaton else {
            out.append(&mut self.buf);
            return;
        };
        let buf = &self.buf;
        // buf[..mask_end] is emitted or masked; a match starting before it
        // overlaps the last `***` and only extends it.
        let mut mask_end = self.masked_until;
        let mut pos = 0;
        while pos < decided {
            let Some(found) = automaton.find(Input::new(buf).span(pos..buf.len())) else {
                break;
            };
            if found.start() >= decided {
                break;
            }
            if found.start() < mask_end {
                mask_end = mask_end.max(found.end());
            } else {
                out.extend_from_slice(&buf[mask_end..found.start()]);
                out.extend_from_slice(MASK);
                mask_end = found.end();
            }
            // Restart just after the start, not the end: a secret overlapping
            // this one must be found too, so the union gets masked.
            pos = found.start() + 1;
        }
        if mask_end < decided {
            out.extend_from_slice(&buf[mask_end..decided]);
        }
        self.masked_until = mask_end.saturating_sub(decided);
        self.buf.drain(..decided);
    }
}

impl fmt::Debug for SecretMasker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretMasker")
            .field("values", &self.values)
            .field("ignored_values", &self.ignored)
            .field("patterns", &self.patterns)
            .field("longest_pattern", &self.longest)
            .field("held_back", &self.buf.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    use forms::base64_forms as masked_forms;

    fn mask_chunks(values: &[&str], chunks: &[&[u8]]) -> Vec<u8> {
        let Ok(mut masker) = SecretMasker::new(values) else {
            panic!("masker builds");
        };
        let mut out = Vec::new();
        for chunk in chunks {
            masker.feed_into(chunk, &mut out);
            assert!(masker.buf.len() <= masker.max_held_back());
        }
        out.extend(masker.finish());
        out
    }

    #[test]
    fn masks_a_value_split_across_chunks() {
        assert_eq!(mask_chunks(&["s3cret"], &[b"a s3", b"cr", b"et b"]), b"a *** b");
    }

    #[test]
    fn base64_forms_and_embedded_cores() {
        let value = "correct horse";
        let standalone = STANDARD.encode(value);
        let text = format!("token={standalone}\n");
        assert_eq!(mask_chunks(&[value], &[text.as_bytes()]), b"token=***\n");
        // Inside a larger blob, at each alignment.
        for prefix in ["", "x", "xy"] {
            let blob = STANDARD.encode(format!("{prefix}{value}!!!"));
            let masked = mask_chunks(&[value], &[blob.as_bytes()]);
            assert!(masked.windows(3).any(|w| w == MASK), "{prefix:?}: {blob}");
        }
    }

    #[test]
    fn a_core_is_inside_any_blob_holding_the_value() {
        let value = b"\x00\xffsecret\n\x7f!";
        for prefix_len in 0..7 {
            for suffix in [&b""[..], b"x", b"yz", b"\xff\xfe\xfd"] {
                let mut blob: Vec<u8> = (0..prefix_len).map(|i| i * 37).collect();
                blob.extend_from_slice(value);
                blob.extend_from_slice(suffix);
                for engine in [STANDARD, URL_SAFE] {
                    let encoded = engine.encode(&blob).into_bytes();
                    let core_len = (8 * value.len()) / 6 - 2;
                    let found = masked_forms(value)
                        .iter()
                        .any(|f| f.len() >= core_len && encoded.windows(f.len()).any(|w| w == f.as_slice()));
                    assert!(found, "prefix {prefix_len}, suffix {suffix:?}");
                }
            }
        }
    }

    #[test]
    fn cores_cover_the_value_bits() {
        let forms = masked_forms(b"abcdef");
        // "abcdef" at offset 0 -> YWJjZGVm (8 chars, all stable).
        assert!(forms.contains(&b"YWJjZGVm".to_vec()));
        assert!(forms.iter().all(|f| f.len() >= 6));
    }

    #[test]
    fn short_and_empty_values_are_ignored_and_debug_hides_values() {
        let Ok(masker) = SecretMasker::new(["", "ab", "topsecret"]) else {
            panic!("masker builds");
        };
        assert_eq!(masker.ignored_values(), 1);
        assert_eq!(masker.value_count(), 1);
        let debug = format!("{masker:?}");
        assert!(!debug.contains("topsecret"), "{debug}");
        assert!(debug.contains("values: 1"), "{debug}");
    }

    #[test]
    fn the_minimum_length_counts_without_surrounding_whitespace() {
        let Ok(masker) = SecretMasker::new([" ab\n", "\tabc "]) else {
            panic!("masker builds");
        };
        assert_eq!((masker.ignored_values(), masker.value_count()), (1, 1));
        assert_eq!(
            mask_chunks(&[" ab\n", "\tabc "], &[b"x ab\ny \tabc z"]),
            b"x ab\ny ***z"
        );
    }

    #[test]
    fn no_values_passes_everything_through() {
        assert_eq!(mask_chunks(&[], &[b"plain ", b"log"]), b"plain log");
    }
}

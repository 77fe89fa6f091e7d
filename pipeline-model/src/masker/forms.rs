//! The byte strings masked for one secret value: the value, how tools
//! commonly reshape it (trimmed, CRLF/LF, line by line, JSON/URL/XML
//! escaped), its base64 forms, all cut into pieces of bounded length.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use super::{MIN_EMBEDDED_BASE64_LEN, MIN_SECRET_LEN};

/// Longest pattern the automaton holds. A longer form is registered as
/// overlapping pieces of exactly this length that cover it: any occurrence
/// of the form contains them all, so all of it is masked, while building
/// stays linear in the value's length (one long repetitive pattern made the
/// automaton's construction quadratic) and the hold-back stays small.
pub(super) const PIECE: usize = 128;

/// Values longer than this (certificates, kubeconfigs, keystores) get the
/// forms that such files actually show up in — raw, line by line, standalone
/// base64 — but not escapes or embedded-base64 cores, which would multiply
/// the automaton's size (about 30 bytes of memory per pattern byte).
pub(super) const LONG_VALUE: usize = 4096;

/// Adds every pattern for `value` to `patterns`: every variant raw; the
/// value and its trimmed form also escaped and base64-encoded; each line
/// raw and escaped.
pub(super) fn add_forms(value: &[u8], patterns: &mut BTreeSet<Vec<u8>>) {
    let (whole, lines) = text_variants(value);
    for variant in &whole {
        add(variant, patterns);
    }
    let mut main: BTreeSet<&[u8]> = BTreeSet::new();
    for v in [value, value.trim_ascii()] {
        if v.len() >= MIN_SECRET_LEN {
            main.insert(v);
        }
    }
    let long = value.len() > LONG_VALUE;
    for variant in main {
        if long {
            for form in standalone_base64(variant) {
                add(&form, patterns);
            }
            continue;
        }
        for form in escapes(variant).iter().chain(&base64_forms(variant)) {
            add(form, patterns);
        }
    }
    for line in lines.difference(&whole) {
        add(line, patterns);
        if !long {
            for form in escapes(line) {
                add(&form, patterns);
            }
        }
    }
}

/// Registers `form` (cut into pieces when long); too-short forms are dropped.
fn add(form: &[u8], patterns: &mut BTreeSet<Vec<u8>>) {
    if form.len() < MIN_SECRET_LEN {
        return;
    }
    if form.len() <= PIECE {
        patterns.insert(form.to_vec());
        return;
    }
    let mut start = 0;
    while start + PIECE < form.len() {
        patterns.insert(form[start..start + PIECE].to_vec());
        start += PIECE;
    }
    patterns.insert(form[form.len() - PIECE..].to_vec());
}

/// The value, trimmed, with CRLF as LF and LF as CRLF; and each of its
/// lines, trimmed (a multi-line value is often printed one line at a time).
fn text_variants(value: &[u8]) -> (BTreeSet<Vec<u8>>, BTreeSet<Vec<u8>>) {
    let lf = replace(value, b"\r\n", b"\n");
    let crlf = replace(&lf, b"\n", b"\r\n");
    let mut whole: BTreeSet<Vec<u8>> = [value, value.trim_ascii(), &lf, lf.trim_ascii(), &crlf]
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    let mut lines: BTreeSet<Vec<u8>> = BTreeSet::new();
    if lf.contains(&b'\n') {
        lines.extend(lf.split(|&b| b == b'\n').map(|l| l.trim_ascii().to_vec()));
    }
    whole.retain(|v| v.len() >= MIN_SECRET_LEN);
    lines.retain(|v| v.len() >= MIN_SECRET_LEN);
    (whole, lines)
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while !rest.is_empty() {
        if rest.starts_with(from) {
            out.extend_from_slice(to);
            rest = &rest[from.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// The value as it appears inside a JSON string, a URL (percent-encoded,
/// `+` for space in forms) and XML text or attributes; only forms that differ.
fn escapes(value: &[u8]) -> Vec<Vec<u8>> {
    let mut json = Vec::with_capacity(value.len());
    let mut url = Vec::with_capacity(value.len());
    let mut xml = Vec::with_capacity(value.len());
    for &b in value {
        match b {
            b'"' => json.extend_from_slice(b"\\\""),
            b'\\' => json.extend_from_slice(b"\\\\"),
            b'\n' => json.extend_from_slice(b"\\n"),
            b'\r' => json.extend_from_slice(b"\\r"),
            b'\t' => json.extend_from_slice(b"\\t"),
            0x08 => json.extend_from_slice(b"\\b"),
            0x0c => json.extend_from_slice(b"\\f"),
            0..0x20 => json.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => json.push(b),
        }
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            url.push(b);
        } else {
            url.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
        match b {
            b'&' => xml.extend_from_slice(b"&amp;"),
            b'<' => xml.extend_from_slice(b"&lt;"),
            b'>' => xml.extend_from_slice(b"&gt;"),
            b'"' => xml.extend_from_slice(b"&quot;"),
            b'\'' => xml.extend_from_slice(b"&apos;"),
            _ => xml.push(b),
        }
    }
    let form_url = replace(&url, b"%20", b"+");
    let mut out: Vec<Vec<u8>> = vec![json, url, form_url, xml];
    out.sort();
    out.dedup();
    out.retain(|f| f.as_slice() != value);
    out
}

/// The standard and URL-safe base64 encodings, padded (unpadded ones are
/// their prefixes, so the same pieces cover them but for the last).
fn standalone_base64(value: &[u8]) -> [Vec<u8>; 4] {
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD].map(|e| e.encode(value).into_bytes())
}

/// Standalone base64 encodings (standard and URL-safe, padded or not) and,
/// for values long enough, the stable core of the encoding at each of the
/// three byte alignments inside a larger blob.
pub(super) fn base64_forms(value: &[u8]) -> Vec<Vec<u8>> {
    let mut forms = Vec::new();
    for (padded, unpadded) in [(STANDARD, STANDARD_NO_PAD), (URL_SAFE, URL_SAFE_NO_PAD)] {
        forms.push(padded.encode(value).into_bytes());
        forms.push(unpadded.encode(value).into_bytes());
        if value.len() < MIN_EMBEDDED_BASE64_LEN {
            continue;
        }
        for offset in 0..3 {
            // Encode behind `offset` filler bytes; keep the characters whose
            // six bits all come from the value.
            let mut shifted = vec![0u8; offset];
            shifted.extend_from_slice(value);
            let encoded = unpadded.encode(&shifted).into_bytes();
            let first = (8 * offset).div_ceil(6);
            let last = (8 * shifted.len()) / 6;
            if let Some(core) = encoded.get(first..last) {
                forms.push(core.to_vec());
            }
        }
    }
    forms
}

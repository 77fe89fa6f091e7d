//! Deterministic object names and label values that are always valid.
//!
//! Names look like `<pipeline>-<step>[-<matrix id>]-b<build>-<8 hex>`: the
//! readable part is sanitised and cut to fit 63 characters, and the 8 hex
//! digits are a SHA-256 of the *full* identity, so two long names that share a
//! prefix still differ.

use hmac_sha256::Hash;

/// The parts that make an object's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameParts<'a> {
    /// Pipeline name.
    pub pipeline: &'a str,
    /// Step name.
    pub step: &'a str,
    /// Matrix combination id, if any.
    pub matrix_id: Option<&'a str>,
    /// Build number.
    pub build: u64,
    /// Run id.
    pub run_id: &'a str,
}

/// Maximum length of a DNS-1123 label and of a label value.
const MAX: usize = 63;

/// The first 8 hex digits of SHA-256 over length-prefixed `parts` (so that
/// `("ab", "c")` and `("a", "bc")` differ).
pub fn short_hash(parts: &[&str]) -> String {
    let mut hasher = Hash::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// Lowercase `[a-z0-9]` runs joined by single `-`, no leading or trailing `-`.
pub fn sanitize_label(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// Cuts `text` to at most `max` bytes and trims trailing `-`.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim_end_matches(['-', '.', '_'])
}

/// The pod/Job name for `parts`: a DNS-1123 label of at most 63 characters.
///
/// ```
/// use c8s_pod_builder::names::{object_name, NameParts};
/// let name = object_name(&NameParts {
///     pipeline: "orders-service", step: "unit", matrix_id: Some("a1b2c3"),
///     build: 17, run_id: "run-1",
/// });
/// assert!(name.starts_with("orders-service-unit-a1b2c3-b17-"));
/// assert_eq!(name.len(), "orders-service-unit-a1b2c3-b17-".len() + 8);
/// ```
pub fn object_name(parts: &NameParts<'_>) -> String {
    let build = parts.build.to_string();
    let hash = short_hash(&[
        parts.pipeline,
        parts.step,
        parts.matrix_id.unwrap_or(""),
        &build,
        parts.run_id,
    ]);
    let suffix = format!("b{build}-{hash}");
    let readable: Vec<String> = [Some(parts.pipeline), Some(parts.step), parts.matrix_id]
        .into_iter()
        .flatten()
        .map(sanitize_label)
        .filter(|s| !s.is_empty())
        .collect();
    let readable = readable.join("-");
    // 63 = readable + '-' + suffix; the suffix is at most 1 + 20 + 1 + 8 = 30.
    let prefix = cut(&readable, MAX - suffix.len() - 1);
    if prefix.is_empty() {
        suffix
    } else {
        format!("{prefix}-{suffix}")
    }
}

/// A valid label value for `text`: `text` itself when it already is one,
/// otherwise a sanitised prefix plus `-` and 8 hex digits of `text`'s hash.
///
/// ```
/// use c8s_pod_builder::names::label_value;
/// assert_eq!(label_value("release_1.2"), "release_1.2");
/// let long = label_value(&"x".repeat(100));
/// assert!(long.len() <= 63);
/// assert_ne!(long, label_value(&"x".repeat(101)));
/// ```
pub fn label_value(text: &str) -> String {
    if c8s_sidecar_core::names::label_value(text).is_ok() {
        return text.to_owned();
    }
    let mut clean = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
            clean.push(c);
        } else if !clean.ends_with('-') {
            clean.push('-');
        }
    }
    let clean = clean.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let hash = short_hash(&[text]);
    let prefix = cut(clean, MAX - hash.len() - 1);
    if prefix.is_empty() {
        hash
    } else {
        format!("{prefix}-{hash}")
    }
}

/// A path segment safe for artifact and cache keys: a label value, never
/// empty and never `.`/`..`.
pub fn path_segment(text: &str) -> String {
    let value = label_value(text);
    if value.is_empty() { "_".to_owned() } else { value }
}

/// A volume name for scratch directory `index` of sidecar `sidecar`.
pub fn scratch_volume_name(sidecar: &str, index: usize) -> String {
    let name = format!("scratch-{sidecar}-{index}");
    if name.len() <= MAX {
        name
    } else {
        format!("scratch-{}-{index}", short_hash(&[sidecar]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_names_stay_valid() {
        for (pipeline, step) in [
            ("Orders Service!!", "Ünit tests"),
            ("", ""),
            ("---", "..."),
            (&"p".repeat(200) as &str, &"s".repeat(200) as &str),
        ] {
            let name = object_name(&NameParts {
                pipeline,
                step,
                matrix_id: None,
                build: u64::MAX,
                run_id: "r",
            });
            assert!(c8s_sidecar_core::names::dns1123_label(&name).is_ok(), "{name}");
        }
    }

    #[test]
    fn label_values() {
        for text in ["", "ok", "-bad-", "a b/c", &"é".repeat(80), "feature/x"] {
            let value = label_value(text);
            assert!(
                c8s_sidecar_core::names::label_value(&value).is_ok(),
                "{text:?} -> {value:?}"
            );
        }
        assert_eq!(
            label_value("feature/x"),
            format!("feature-x-{}", short_hash(&["feature/x"]))
        );
    }
}

//! Writing `values.yaml`: data through pod-builder's canonical YAML writer,
//! with comments between the entries.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::Error;

/// `key: value` as canonical YAML, every line indented by `indent` spaces
/// (empty lines stay empty, so block scalars keep their content).
pub(crate) fn entry<T: Serialize>(key: &str, value: &T, indent: usize) -> Result<String, Error> {
    let map = BTreeMap::from([(key, value)]);
    let text = c8s_pod_builder::to_canonical_yaml(&map).map_err(Error::Serialize)?;
    Ok(indented(&text, indent))
}

/// `text` with every non-empty line indented by `indent` spaces.
pub(crate) fn indented(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for line in text.lines() {
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// `text` as `#` comment lines indented by `indent` spaces.
pub(crate) fn comment(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    for line in text.lines() {
        if line.is_empty() {
            out.push_str(&pad);
            out.push_str("#\n");
        } else {
            out.push_str(&format!("{pad}# {line}\n"));
        }
    }
    out
}

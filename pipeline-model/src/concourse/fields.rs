//! Reading typed fields out of a [`Node`] tree strictly: unknown keys, wrong
//! types and missing required fields are reported where they are written.

use c8s_sidecar_core::FieldPath;

use super::node::{Entry, Node, Report, Value};

/// A mapping being read at `path`.
pub struct Fields<'n> {
    /// The mapping node (null reads as an empty mapping).
    pub node: &'n Node,
    /// Where it is in the document.
    pub path: FieldPath,
}

const NO_ENTRIES: &[Entry] = &[];

impl<'n> Fields<'n> {
    /// Reads `node` as a mapping with only `allowed` keys; reports otherwise.
    pub fn new(node: &'n Node, path: FieldPath, allowed: &[&str], report: &mut Report<'_>) -> Option<Self> {
        match &node.value {
            Value::Map(entries) => {
                for entry in entries {
                    if !allowed.contains(&entry.key.as_str()) {
                        report.error(
                            entry.at,
                            &path.key(&entry.key),
                            format!(
                                "unknown field `{}`; expected one of: {}",
                                entry.key,
                                allowed.join(", ")
                            ),
                        );
                    }
                }
                Some(Self { node, path })
            }
            Value::Null => Some(Self { node, path }),
            _ => {
                report.error(
                    node.at,
                    &path,
                    format!("expected a mapping, found {}", node.kind()),
                );
                None
            }
        }
    }

    /// The entries, in written order.
    pub fn entries(&self) -> &'n [Entry] {
        self.node.entries().unwrap_or(NO_ENTRIES)
    }

    /// The value under `key`, unless absent or null.
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.node.get(key).filter(|n| !n.is_null())
    }

    /// Where `key` is written (the mapping's position when absent).
    pub fn key_at(&self, key: &str) -> (u32, u32) {
        self.entries()
            .iter()
            .find(|e| e.key == key)
            .map_or(self.node.at, |e| e.at)
    }

    /// Whether `key` is written (even as null).
    pub fn has(&self, key: &str) -> bool {
        self.node.get(key).is_some()
    }

    /// The path of `key`.
    pub fn at(&self, key: &str) -> FieldPath {
        self.path.key(key)
    }

    /// An optional string field.
    pub fn string(&self, key: &str, report: &mut Report<'_>) -> Option<String> {
        self.get(key).and_then(|n| scalar(n, &self.at(key), report))
    }

    /// A required string field.
    pub fn required(&self, key: &str, report: &mut Report<'_>) -> Option<String> {
        let value = self.string(key, report);
        if !self.has(key) || self.node.get(key).is_some_and(Node::is_null) {
            report.error(self.node.at, &self.at(key), format!("`{key}` is required"));
        }
        value
    }

    /// An optional boolean field (`true`/`false`).
    pub fn flag(&self, key: &str, report: &mut Report<'_>) -> bool {
        self.get(key).is_some_and(|n| flag(n, &self.at(key), report))
    }

    /// An optional non-negative integer field.
    pub fn number(&self, key: &str, report: &mut Report<'_>) -> Option<u64> {
        let node = self.get(key)?;
        let text = scalar(node, &self.at(key), report)?;
        match text.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                report.error(
                    node.at,
                    &self.at(key),
                    format!("expected a whole number, found {text:?}"),
                );
                None
            }
        }
    }

    /// An optional list field (null or absent: empty).
    pub fn list(&self, key: &str, report: &mut Report<'_>) -> &'n [Node] {
        match self.get(key) {
            None => &[],
            Some(node) => list(node, &self.at(key), report),
        }
    }

    /// An optional list of strings.
    pub fn strings(&self, key: &str, report: &mut Report<'_>) -> Vec<String> {
        let path = self.at(key);
        self.list(key, report)
            .iter()
            .enumerate()
            .filter_map(|(i, n)| scalar(n, &path.index(i), report))
            .collect()
    }

    /// An optional mapping of names to strings; a null value is `""` (as Concourse reads `FOO:`).
    pub fn string_map(&self, key: &str, report: &mut Report<'_>) -> Vec<(String, String)> {
        let Some(node) = self.get(key) else {
            return Vec::new();
        };
        let path = self.at(key);
        let Some(fields) = Fields::new(node, path.clone(), &[], &mut Report::new("")) else {
            report.error(
                node.at,
                &path,
                format!("expected a mapping, found {}", node.kind()),
            );
            return Vec::new();
        };
        fields
            .entries()
            .iter()
            .filter_map(|e| {
                let value = if e.node.is_null() {
                    Some(String::new())
                } else {
                    text_of(&e.node, &path.key(&e.key), report)
                };
                value.map(|v| (e.key.clone(), v))
            })
            .collect()
    }
}

/// A scalar's text; a mapping or list is reported.
pub fn scalar(node: &Node, path: &FieldPath, report: &mut Report<'_>) -> Option<String> {
    match &node.value {
        Value::Scalar { text, .. } => Some(text.clone()),
        Value::Null => Some(String::new()),
        _ => {
            report.error(node.at, path, format!("expected a string, found {}", node.kind()));
            None
        }
    }
}

/// A param's text as Concourse puts it in the environment: scalars as
/// written, lists and mappings as JSON.
pub fn text_of(node: &Node, _path: &FieldPath, _report: &mut Report<'_>) -> Option<String> {
    match &node.value {
        Value::Scalar { text, .. } => Some(text.clone()),
        Value::Null => Some(String::new()),
        _ => Some(node.to_json()),
    }
}

/// `true` or `false`.
pub fn flag(node: &Node, path: &FieldPath, report: &mut Report<'_>) -> bool {
    match node.scalar() {
        Some("true") => true,
        Some("false") => false,
        _ => {
            report.error(node.at, path, "expected true or false");
            false
        }
    }
}

/// A list (null: empty).
pub fn list<'n>(node: &'n Node, path: &FieldPath, report: &mut Report<'_>) -> &'n [Node] {
    match &node.value {
        Value::Seq(items) => items,
        Value::Null => &[],
        _ => {
            report.error(node.at, path, format!("expected a list, found {}", node.kind()));
            &[]
        }
    }
}

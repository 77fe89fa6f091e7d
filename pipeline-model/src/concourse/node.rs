//! A YAML document as a tree that keeps what Concourse files need and serde
//! loses: every value's line and column, scalars' exact text (`tag: 1.10`
//! stays `1.10`), plain versus quoted scalars (`FOO:` is null, `FOO: ""` is
//! empty), and merge keys (`<<: *defaults`). Budgets (size, depth, aliases,
//! duplicate keys) are enforced first by the strict reader of sidecar-core.

use std::collections::BTreeMap;

use c8s_sidecar_core::{FieldPath, Position};

use crate::error::{Error, Errors};

pub use super::report::{At, Report};
use granit_parser::{Event, Parser, ScalarStyle};

/// One YAML value with where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where it starts.
    pub at: At,
}

/// A YAML value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `~`, `null`, or nothing at all.
    Null,
    /// A scalar's text; `plain` when written without quotes or block style.
    Scalar {
        /// The text after escape processing.
        text: String,
        /// Unquoted (so `true`, `12` are not strings to YAML).
        plain: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping in written order; each entry with its key's position.
    Map(Vec<Entry>),
}

/// A mapping entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key's text.
    pub key: String,
    /// Where the key is written.
    pub at: At,
    /// The value.
    pub node: Node,
}

impl Node {
    /// A plain string node (for values c8s builds, e.g. from `-v`).
    pub fn text(text: impl Into<String>) -> Self {
        Node {
            value: Value::Scalar {
                text: text.into(),
                plain: false,
            },
            at: (0, 0),
        }
    }

    /// The entries when this is a mapping.
    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value under `key` when this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries()?.iter().find(|e| e.key == key).map(|e| &e.node)
    }

    /// Whether this is null.
    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// The scalar text, if a scalar.
    pub fn scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// A short name of the kind of value, for messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The value as JSON (scalars typed as YAML 1.2 core schema types them).
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        match &self.value {
            Value::Null => out.push_str("null"),
            Value::Scalar { text, plain } => {
                let typed = *plain && (matches!(text.as_str(), "true" | "false") || is_json_number(text));
                if typed {
                    out.push_str(text);
                } else {
                    json_string(text, out);
                }
            }
            Value::Seq(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
            Value::Map(entries) => {
                // Sorted keys: the same bytes for the same mapping.
                let sorted: BTreeMap<&str, &Node> =
                    entries.iter().map(|e| (e.key.as_str(), &e.node)).collect();
                out.push('{');
                for (i, (key, node)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_string(key, out);
                    out.push(':');
                    node.write_json(out);
                }
                out.push('}');
            }
        }
    }
}

/// Whether `text` is written the way JSON writes a number (so it can stay unquoted).
fn is_json_number(text: &str) -> bool {
    let leading_zero = text.len() > 1 && text.starts_with('0') && !text.starts_with("0.");
    text.parse::<f64>().is_ok_and(f64::is_finite)
        && !text.starts_with(['+', '.'])
        && !text.ends_with('.')
        && !leading_zero
}

/// Appends `text` as a JSON string literal.
pub fn json_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Parses one YAML document of `file`. Templates for other tools are
/// rejected here: ytt (`#@` lines) and the pre-Concourse-3 `{{param}}` style.
pub fn parse(file: &str, text: &str) -> Result<Node, Errors> {
    c8s_sidecar_core::yaml::from_str::<serde::de::IgnoredAny>(file, text).map_err(Error::document)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut report = Report::new(file);
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let column = line.len() - trimmed.len() + 1;
        let at = (
            u32::try_from(i + 1).unwrap_or(u32::MAX),
            u32::try_from(column).unwrap_or(0),
        );
        if trimmed.starts_with("#@") {
            report.error(
                at,
                &FieldPath::root(),
                "this is a ytt template (`#@` annotations): render it with `ytt` first, then give c8s the result",
            );
            break;
        }
        if let Some(pos) = trimmed.find(": {{")
            && trimmed[pos..].contains("}}")
        {
            report.error(
                at,
                &FieldPath::root(),
                "`{{param}}` is the template syntax Concourse removed in v3 (values were filled in by `fly -l`): write `((param))` and give values with -v/--vars-file",
            );
            break;
        }
    }
    report.finish()?;
    Builder::default().build(text).map_err(|message| {
        Errors::from(Error::Syntax {
            at: Position::file(file),
            message,
        })
    })
}

#[derive(Default)]
struct Builder {
    anchors: BTreeMap<usize, Node>,
}

enum Open {
    Seq(Node, Vec<Node>, usize),
    Map(Node, Vec<Entry>, Option<(String, At)>, usize),
}

impl Builder {
    fn build(mut self, text: &str) -> Result<Node, String> {
        let mut stack: Vec<Open> = Vec::new();
        let mut root = None;
        for item in Parser::new_from_str(text) {
            let (event, span) = item.map_err(|e| e.to_string())?;
            let at = (to_u32(span.start.line()), to_u32(span.start.col() + 1));
            let done = match event {
                Event::Scalar(value, style, anchor, _) => {
                    let plain = style == ScalarStyle::Plain;
                    let node = if plain && matches!(value.as_ref(), "" | "~" | "null" | "Null" | "NULL") {
                        Node {
                            value: Value::Null,
                            at,
                        }
                    } else {
                        Node {
                            value: Value::Scalar {
                                text: value.into_owned(),
                                plain,
                            },
                            at,
                        }
                    };
                    if anchor > 0 {
                        self.anchors.insert(anchor, node.clone());
                    }
                    Some(node)
                }
                Event::Alias(id) => {
                    let mut node = self.anchors.get(&id).cloned().ok_or("an alias names no anchor")?;
                    node.at = at;
                    Some(node)
                }
                Event::SequenceStart(_, anchor, _) => {
                    stack.push(Open::Seq(
                        Node {
                            value: Value::Null,
                            at,
                        },
                        Vec::new(),
                        anchor,
                    ));
                    None
                }
                Event::MappingStart(_, anchor, _) => {
                    stack.push(Open::Map(
                        Node {
                            value: Value::Null,
                            at,
                        },
                        Vec::new(),
                        None,
                        anchor,
                    ));
                    None
                }
                Event::SequenceEnd => match stack.pop() {
                    Some(Open::Seq(mut node, items, anchor)) => {
                        node.value = Value::Seq(items);
                        self.remember(anchor, &node);
                        Some(node)
                    }
                    _ => return Err("unbalanced sequence".to_owned()),
                },
                Event::MappingEnd => match stack.pop() {
                    Some(Open::Map(mut node, entries, _, anchor)) => {
                        node.value = Value::Map(entries);
                        self.remember(anchor, &node);
                        Some(node)
                    }
                    _ => return Err("unbalanced mapping".to_owned()),
                },
                Event::DocumentEnd => break,
                _ => None,
            };
            let Some(node) = done else { continue };
            match stack.last_mut() {
                None => root = Some(node),
                Some(Open::Seq(_, items, _)) => items.push(node),
                Some(Open::Map(_, entries, key, _)) => match key.take() {
                    None => {
                        let text = match &node.value {
                            Value::Scalar { text, .. } => text.clone(),
                            Value::Null => String::new(),
                            _ => return Err(format!("line {}: a mapping key must be a scalar", node.at.0)),
                        };
                        *key = Some((text, node.at));
                    }
                    Some((name, _)) if name == "<<" => merge(entries, node)?,
                    Some((name, key_at)) => {
                        // Written keys win over merged ones (the strict reader rejected written duplicates).
                        entries.retain(|e| e.key != name);
                        entries.push(Entry {
                            key: name,
                            at: key_at,
                            node,
                        });
                    }
                },
            }
        }
        Ok(root.unwrap_or(Node {
            value: Value::Null,
            at: (1, 1),
        }))
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
    }
}

/// `<<: *base` or `<<: [*a, *b]`: keys not written in the mapping itself come from the merged ones.
fn merge(entries: &mut Vec<Entry>, node: Node) -> Result<(), String> {
    let sources = match node.value {
        Value::Map(_) => vec![node],
        Value::Seq(items) => items,
        _ => return Err(format!("line {}: `<<` must merge a mapping", node.at.0)),
    };
    for source in sources {
        let Value::Map(merged) = source.value else {
            return Err(format!("line {}: `<<` must merge a mapping", source.at.0));
        };
        for entry in merged {
            if !entries.iter().any(|e| e.key == entry.key) {
                entries.push(entry);
            }
        }
    }
    Ok(())
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

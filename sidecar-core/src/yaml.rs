//! The one place YAML is read. Strict: unknown fields, duplicate keys and
//! wrong types are errors; alias bombs, deep nesting and huge inputs are stopped
//! by budgets, never by running out of memory. Everything else in c8s goes through
//! this module, so the YAML library can be swapped here alone.
//!
//! Scalars read into string fields keep their exact text: `tag: 1.20` is the
//! string `"1.20"`, `name: 0x1F` is `"0x1F"` (and then fails name validation).

use std::collections::BTreeMap;

use granit_parser::{Event, Parser};
use serde::de::DeserializeOwned;

use crate::error::{Error, Position};
use crate::path::FieldPath;

/// The largest input accepted, in bytes.
pub const MAX_INPUT_BYTES: usize = 32 * 1024 * 1024;
/// The deepest nesting accepted; c8s formats need fewer than 20 levels.
pub const MAX_DEPTH: usize = 64;

fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.flow_nesting_limit = MAX_DEPTH;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_documents = 1;
    budget.max_events = 8_000_000;
    budget.max_nodes = 8_000_000;
    budget.max_total_scalar_bytes = MAX_INPUT_BYTES;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.with_snippet = false;
    options.reject_unsupported_tags = true;
    options
}

/// Parses `text` (from `file`) strictly into `T`.
pub fn from_str<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, Error> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(Error::Syntax {
            at: Position::file(file),
            message: format!(
                "input is {} bytes; the limit is {MAX_INPUT_BYTES} bytes",
                text.len()
            ),
        });
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    serde_saphyr::from_str_with_options(text, options()).map_err(|e| syntax_error(file, &e))
}

/// Parses raw bytes (from `file`) strictly into `T`; the bytes must be UTF-8.
pub fn from_slice<T: DeserializeOwned>(file: &str, bytes: &[u8]) -> Result<T, Error> {
    from_str(file, as_utf8(file, bytes)?)
}

/// Checks that `bytes` are UTF-8, pointing at the first bad byte otherwise.
pub fn as_utf8<'a>(file: &str, bytes: &'a [u8]) -> Result<&'a str, Error> {
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&valid[line_start..]).chars().count() + 1;
        Error::Syntax {
            at: Position::new(file, to_u32(line), to_u32(column)),
            message: "the file is not valid UTF-8".to_owned(),
        }
    })
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn syntax_error(file: &str, error: &serde_saphyr::Error) -> Error {
    let error = error.without_snippet();
    let (line, column) = error
        .location()
        .map_or((0, 0), |l| (to_u32_64(l.line()), to_u32_64(l.column())));
    let text = error.to_string();
    let message = match strip_location_suffix(&text) {
        "invalid i32" | "invalid i64" | "invalid u32" | "invalid u64" => "expected a whole number".to_owned(),
        other => other
            .trim_end_matches(", set DuplicateKeyPolicy in Options if acceptable")
            .to_owned(),
    };
    Error::Syntax {
        at: Position::new(file, line, column),
        message,
    }
}

fn to_u32_64(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// serde-saphyr appends ` at line L, column C`; we print the location first instead.
fn strip_location_suffix(text: &str) -> &str {
    let first_line = text.lines().next().unwrap_or(text);
    match first_line.rfind(" at line ") {
        Some(i) if first_line[i..].contains(", column ") => &first_line[..i],
        _ => first_line,
    }
}

/// Where each value of a document is written: maps field paths to positions.
///
/// Built only when there is an error to locate, so valid input pays nothing.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    file: String,
    positions: BTreeMap<FieldPath, (u32, u32)>,
}

enum Frame {
    Map {
        path: FieldPath,
        key: Option<(String, (u32, u32))>,
    },
    Seq {
        path: FieldPath,
        next: usize,
    },
    /// Inside a complex (non-scalar) mapping key: ignored.
    Skip {
        depth: usize,
    },
}

impl SourceMap {
    /// Records the position of every value in the first document of `text`.
    /// Mapping entries point at their key, sequence items at the item.
    pub fn build(file: &str, text: &str) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut positions = BTreeMap::new();
        let mut stack: Vec<Frame> = Vec::new();
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            let here = (to_u32(span.start.line()), to_u32(span.start.col() + 1));
            let opens = match &event {
                Event::MappingStart(..) => Some(true),
                Event::SequenceStart(..) => Some(false),
                Event::Scalar(..) | Event::Alias(..) => None,
                Event::MappingEnd | Event::SequenceEnd => {
                    match stack.last_mut() {
                        Some(Frame::Skip { depth }) if *depth > 0 => *depth -= 1,
                        _ => {
                            stack.pop();
                        }
                    }
                    continue;
                }
                Event::DocumentEnd => break,
                _ => continue,
            };
            if let Some(Frame::Skip { depth }) = stack.last_mut() {
                if opens.is_some() {
                    *depth += 1;
                }
                continue;
            }
            // A scalar (or complex) key of a mapping: remember it, the value comes next.
            if let Some(Frame::Map { key, .. }) = stack.last_mut()
                && key.is_none()
            {
                let text = match &event {
                    Event::Scalar(value, ..) => value.to_string(),
                    _ => String::from("?"),
                };
                *key = Some((text, here));
                if opens.is_some() {
                    stack.push(Frame::Skip { depth: 0 });
                }
                continue;
            }
            let (path, at) = match stack.last_mut() {
                None => (FieldPath::root(), here),
                Some(Frame::Map { path, key }) => match key.take() {
                    Some((name, at)) => (path.key(&name), at),
                    None => continue,
                },
                Some(Frame::Seq { path, next }) => {
                    let p = path.index(*next);
                    *next += 1;
                    (p, here)
                }
                Some(Frame::Skip { .. }) => continue,
            };
            positions.entry(path.clone()).or_insert(at);
            match opens {
                Some(true) => stack.push(Frame::Map { path, key: None }),
                Some(false) => stack.push(Frame::Seq { path, next: 0 }),
                None => {}
            }
        }
        Self {
            file: file.to_owned(),
            positions,
        }
    }

    /// Every value written in the document, by path, with its position (of
    /// its key, for a mapping entry), in path order.
    pub fn entries(&self) -> impl Iterator<Item = (&FieldPath, Position)> + '_ {
        self.positions
            .iter()
            .map(|(path, &(line, column))| (path, Position::new(self.file.clone(), line, column)))
    }

    /// The position of `path`, or of its nearest ancestor that is written
    /// (a missing field points at the mapping that lacks it).
    pub fn position(&self, path: &FieldPath) -> Position {
        let mut current = Some(path.clone());
        while let Some(p) = current {
            if let Some(&(line, column)) = self.positions.get(&p) {
                return Position::new(self.file.clone(), line, column);
            }
            current = p.parent();
        }
        Position::file(self.file.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_map_points_at_keys_and_items() {
        let text = "- name: a\n  ports:\n    - containerPort: 5\n- name: b\n";
        let map = SourceMap::build("f.yml", text);
        let p = FieldPath::root()
            .index(0)
            .key("ports")
            .index(0)
            .key("containerPort");
        assert_eq!(map.position(&p).to_string(), "f.yml:3:7");
        assert_eq!(map.position(&FieldPath::root().index(1)).to_string(), "f.yml:4:3");
        let missing = FieldPath::root().index(1).key("image");
        assert_eq!(map.position(&missing).to_string(), "f.yml:4:3");
    }

    #[test]
    fn syntax_errors_carry_file_line_and_column() {
        let err = from_str::<Vec<String>>("x.yml", "- a\n- [b\n").err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.starts_with("x.yml:"), "{text}");
        assert!(!text.contains(" at line "), "{text}");
    }

    #[test]
    fn alias_bombs_stop_at_the_budget() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = from_str::<serde::de::IgnoredAny>("bomb.yml", &bomb).err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.starts_with("bomb.yml:"), "{text}");
    }

    #[test]
    fn deep_nesting_stops_at_the_budget() {
        let deep = format!("{}x{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(from_str::<serde::de::IgnoredAny>("deep.yml", &deep).is_err());
        let deep_block: String = (0..200).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
        assert!(from_str::<serde::de::IgnoredAny>("deep.yml", &deep_block).is_err());
    }

    #[test]
    fn one_document_only() {
        assert!(from_str::<Vec<String>>("two.yml", "- a\n---\n- b\n").is_err());
    }

    #[test]
    fn invalid_utf8_points_at_the_byte() {
        let err = from_slice::<Vec<String>>("x.yml", b"- a\n- b\xff\n").err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some("x.yml:2:4: the file is not valid UTF-8")
        );
    }
}

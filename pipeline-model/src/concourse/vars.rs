//! Concourse `((vars))`: values given as fly takes them (`-v name=value`,
//! `--vars-file`), interpolated into a document before it is read. A var that
//! stands alone in a value is replaced by the whole value (which may be a
//! mapping); inside a longer string its text is spliced in. Every missing name
//! is reported, located; nothing is left as a literal `((x))`.

use std::collections::BTreeMap;

use c8s_sidecar_core::FieldPath;

use crate::error::Errors;

use super::node::{self, Node, Report, Value};

/// Values for `((vars))`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    values: BTreeMap<String, Node>,
}

impl Vars {
    /// No values.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to the text `value` (as `-v name=value`).
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.values.insert(name.into(), Node::text(value));
    }

    /// Sets `name` to the value `value` (a list or mapping as well).
    pub fn set_node(&mut self, name: impl Into<String>, value: Node) {
        self.values.insert(name.into(), value);
    }

    /// Adds every top-level entry of a vars file (later files win, as in fly).
    pub fn add_file(&mut self, file: &str, text: &str) -> Result<(), Errors> {
        let doc = node::parse(file, text)?;
        let mut report = Report::new(file);
        match &doc.value {
            Value::Map(entries) => {
                for entry in entries {
                    self.values.insert(entry.key.clone(), entry.node.clone());
                }
            }
            Value::Null => {}
            _ => report.error(
                doc.at,
                &FieldPath::root(),
                "a vars file must be a mapping of names to values",
            ),
        }
        report.finish()
    }

    /// Whether no value is set.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Looks `name` up: the whole name first, then `a.b.c` as field `b.c` of `a`;
    /// a `source:` prefix (a var source) is tried with and without.
    pub fn lookup(&self, name: &str) -> Option<&Node> {
        if let Some(found) = self.values.get(name) {
            return Some(found);
        }
        let bare = name.split_once(':').map_or(name, |(_, rest)| rest);
        if let Some(found) = self.values.get(bare) {
            return Some(found);
        }
        let mut parts = split_fields(bare).into_iter();
        let mut current = self.values.get(&parts.next()?)?;
        for field in parts {
            current = current.get(&field)?;
        }
        Some(current)
    }
}

/// `a."b.c".d` → `["a", "b.c", "d"]`.
fn split_fields(name: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in name.chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    parts
}

/// One `((…))` in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarRef {
    /// Byte range of the whole `((…))`.
    pub range: std::ops::Range<usize>,
    /// The name, trimmed.
    pub name: String,
}

/// spruce operators (`(( grab meta.x ))`): a spruce template, not Concourse vars.
const SPRUCE_OPERATORS: [&str; 20] = [
    "grab",
    "concat",
    "param",
    "inject",
    "static_ips",
    "join",
    "keys",
    "prune",
    "vault",
    "cartesian-product",
    "calc",
    "base64",
    "ips",
    "sort",
    "empty",
    "awsparam",
    "file",
    "load",
    "stringify",
    "defer",
];

/// Why the text inside `((…))` is not a Concourse var, if it is not.
pub fn template_reason(inner: &str) -> Option<&'static str> {
    let name = inner.trim();
    let first = name.split_whitespace().next().unwrap_or("");
    if SPRUCE_OPERATORS.contains(&first) && name != first || name.contains("||") {
        return Some(
            "this is a spruce operator, not a Concourse var: merge the file with `spruce merge` first, then give c8s the result",
        );
    }
    if name.is_empty() {
        return Some("an empty var name");
    }
    let unquoted: String = name.split('"').step_by(2).collect();
    if unquoted.chars().any(char::is_whitespace) {
        return Some(
            "not a Concourse var name (letters, digits, `-`, `_`, `.`, `/`, a `source:` prefix, quoted segments)",
        );
    }
    None
}

/// Every `((…))` in `text`.
pub fn var_refs(text: &str) -> Vec<VarRef> {
    let mut refs = Vec::new();
    let mut from = 0;
    while let Some(start) = text[from..].find("((").map(|i| i + from) {
        let Some(end) = text[start + 2..].find("))").map(|i| i + start + 2) else {
            break;
        };
        refs.push(VarRef {
            range: start..end + 2,
            name: text[start + 2..end].trim().to_owned(),
        });
        from = end + 2;
    }
    refs
}

/// Interpolates `vars` into `doc` in place, except under paths `keep` says to
/// leave as written (e.g. credentials c8s passes by Secret reference).
/// Missing names and spruce operators are reported, located.
pub fn interpolate(doc: &mut Node, vars: &Vars, keep: &dyn Fn(&FieldPath) -> bool, report: &mut Report<'_>) {
    let rules = Rules {
        keep,
        lenient: &|_| false,
    };
    walk(doc, &FieldPath::root(), vars, &rules, report);
}

/// Like [`interpolate`], but a var with no value under a path `lenient`
/// accepts is left as written (a pipeline's credentials, resolved at run
/// time from a Secret).
pub fn interpolate_lenient(
    doc: &mut Node,
    vars: &Vars,
    keep: &dyn Fn(&FieldPath) -> bool,
    lenient: &dyn Fn(&FieldPath) -> bool,
    report: &mut Report<'_>,
) {
    walk(doc, &FieldPath::root(), vars, &Rules { keep, lenient }, report);
}

/// Like [`interpolate_lenient`] for a part of a document written at `base`
/// (paths given to `keep` and `lenient`, and in errors, are the document's).
pub fn interpolate_lenient_at(
    doc: &mut Node,
    base: &FieldPath,
    vars: &Vars,
    keep: &dyn Fn(&FieldPath) -> bool,
    lenient: &dyn Fn(&FieldPath) -> bool,
    report: &mut Report<'_>,
) {
    walk(doc, base, vars, &Rules { keep, lenient }, report);
}

struct Rules<'r> {
    keep: &'r dyn Fn(&FieldPath) -> bool,
    lenient: &'r dyn Fn(&FieldPath) -> bool,
}

fn walk(node: &mut Node, path: &FieldPath, vars: &Vars, rules: &Rules<'_>, report: &mut Report<'_>) {
    if (rules.keep)(path) {
        return;
    }
    match &mut node.value {
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &path.index(i), vars, rules, report);
            }
        }
        Value::Map(entries) => {
            for entry in entries.iter_mut() {
                let at = path.key(&entry.key);
                walk(&mut entry.node, &at, vars, rules, report);
            }
        }
        Value::Null => {}
        Value::Scalar { text, .. } => {
            let refs = var_refs(text);
            if refs.is_empty() {
                return;
            }
            let whole = refs.len() == 1 && refs[0].range == (0..text.len());
            let mut out = String::new();
            let mut last = 0;
            let mut replaced = None;
            for r in &refs {
                out.push_str(&text[last..r.range.start]);
                last = r.range.end;
                if let Some(reason) = template_reason(&text[r.range.start + 2..r.range.end - 2]) {
                    report.error(node.at, path, format!("`{}`: {reason}", &text[r.range.clone()]));
                    continue;
                }
                match vars.lookup(&r.name) {
                    Some(value) if whole => replaced = Some(value.clone()),
                    Some(value) => match value.scalar() {
                        Some(s) => out.push_str(s),
                        None if value.is_null() => {}
                        None => out.push_str(&value.to_json()),
                    },
                    // A load_var value in a param: read in the pod (`local_vars`), checked when lowered.
                    None if r.name.starts_with(".:") && local_var_may_stay(path, rules) => {
                        out.push_str(&text[r.range.clone()]);
                    }
                    None if r.name.starts_with(".:") => {
                        // Kept as written, so later checks do not report a second, derived error.
                        out.push_str(&text[r.range.clone()]);
                        report.error(
                            node.at,
                            path,
                            format!("(({})) is a local var known only at run time (set by load_var, or an across var not in scope here); c8s reads a load_var value in a task's params only, in its pod when it runs, so here it has no value", r.name),
                        );
                    }
                    None if (rules.lenient)(path) => out.push_str(&text[r.range.clone()]),
                    None => {
                        // Kept as written, so later checks do not report a second, derived error.
                        out.push_str(&text[r.range.clone()]);
                        report.error(
                            node.at,
                            path,
                            format!(
                                "var (({})) has no value: give it with -v {}=VALUE or --vars-file",
                                r.name, r.name
                            ),
                        );
                    }
                }
            }
            out.push_str(&text[last..]);
            let at = node.at;
            match replaced {
                Some(mut value) => {
                    value.at = at;
                    *node = value;
                }
                None => *text = out,
            }
        }
    }
}

/// Reports spruce operators anywhere under `node` (a part not otherwise read).
pub fn find_templates(node: &Node, path: &FieldPath, report: &mut Report<'_>) {
    match &node.value {
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                find_templates(item, &path.index(i), report);
            }
        }
        Value::Map(entries) => {
            for entry in entries {
                find_templates(&entry.node, &path.key(&entry.key), report);
            }
        }
        Value::Null => {}
        Value::Scalar { text, .. } => {
            for r in var_refs(text) {
                if let Some(reason) = template_reason(&text[r.range.start + 2..r.range.end - 2]) {
                    report.error(node.at, path, format!("`{}`: {reason}", &text[r.range.clone()]));
                }
            }
        }
    }
}

/// Whether a local var may stay as written at `path`, for the lowering to
/// resolve: inside a step's `params` (or `get_params`) where vars may stay
/// open, or in a task step's `vars` (a task file's vars: the placeholder
/// reaches the file's params) of a document whose params may hold them.
fn local_var_may_stay(path: &FieldPath, rules: &Rules<'_>) -> bool {
    let under = |key: &str| {
        path.segments()
            .iter()
            .any(|s| matches!(s, c8s_sidecar_core::Segment::Key(k) if k == key))
    };
    if under("params") || under("get_params") {
        return (rules.lenient)(path);
    }
    // An across step's values from a load_var: read when the job runs.
    if under("across")
        && matches!(path.segments().last(), Some(c8s_sidecar_core::Segment::Key(k)) if k == "values")
    {
        return true;
    }
    under("vars") && (rules.lenient)(&FieldPath::root().key("params"))
}

/// Paths of a pipeline where a var may stay unresolved: resource sources and params.
/// (A task config's `image_resource.source` is not one: an image reference must be known.)
pub fn lenient_path(path: &FieldPath) -> bool {
    use c8s_sidecar_core::Segment;
    let segments = path.segments();
    let resource_source = matches!(segments.first(), Some(Segment::Key(k)) if k == "resources" || k == "resource_types")
        && segments
            .iter()
            .any(|s| matches!(s, Segment::Key(k) if k == "source"));
    resource_source
        || segments
            .iter()
            .any(|s| matches!(s, Segment::Key(k) if k == "params" || k == "get_params"))
}

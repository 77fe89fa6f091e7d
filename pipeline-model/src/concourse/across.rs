//! The `across` step modifier (<https://concourse-ci.org/across-step.html>,
//! `atc/exec/across_step.go`) with values known before the run: literal
//! lists, or lists given as `((vars))` with `-v`/`--vars-file`. The step is
//! copied once per combination of the vars' values — the cartesian product
//! with the first var varying slowest (`cartesianProduct` in
//! `across_step.go`) — and `((.:var))` in each copy is replaced by the
//! combination's value, as Concourse interpolates its substep template. How
//! the copies run (`max_in_flight`, `fail_fast`) is in [`super::runtime`].
//!
//! Values a `load_var` sets (`values: ((.:list))`) are known only when the
//! job runs: a runner reads the var's file, and the step is expanded when
//! the job is read again with it (`steps::local_across_values`); until then
//! it is deferred to run time.

use c8s_sidecar_core::{FieldPath, Segment};

use super::fields::Fields;
use super::keys::{HOOKS, KINDS};
use super::node::{Node, Report, Value};
use super::vars::{Vars, var_refs};
use crate::matrix::Combination;
use crate::ordered::OrderedMap;

/// At most this many copies of one across step (a typo in a vars file
/// should not render thousands of pods).
pub const MAX_COPIES: usize = 256;

/// One var of an `across` step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcrossVar {
    /// `var`: the local var's name (`((.:name))`).
    pub name: String,
    /// `values`, in order.
    pub values: Vec<Node>,
    /// `max_in_flight`: how many copies for this var's values run at once
    /// (`None`: `all`); Concourse's default is 1.
    pub max_in_flight: Option<usize>,
}

/// The paths of every step written with `across` in `doc` (at `base`).
pub fn across_steps(doc: &Node, base: &FieldPath) -> Vec<FieldPath> {
    let mut out = Vec::new();
    collect(doc, base, "across", &mut out);
    out
}

/// The paths of every `set_pipeline` step in `doc` (at `base`): c8s does not
/// run them (no pipeline server), so their vars, local ones included, are
/// never needed.
pub fn set_pipeline_steps(doc: &Node, base: &FieldPath) -> Vec<FieldPath> {
    let mut out = Vec::new();
    collect(doc, base, "set_pipeline", &mut out);
    out
}

/// Whether `path` is below one of `steps`.
pub fn under_any(path: &FieldPath, steps: &[FieldPath]) -> bool {
    let segments = path.segments();
    steps.iter().any(|step| {
        let prefix = step.segments();
        segments.len() > prefix.len() && segments[..prefix.len()] == *prefix
    })
}

/// Collects the steps (maps with a step key) that have key `key`.
fn collect(node: &Node, path: &FieldPath, key: &str, out: &mut Vec<FieldPath>) {
    match &node.value {
        Value::Map(entries) => {
            let is_step = entries.iter().any(|e| KINDS.contains(&e.key.as_str()));
            if is_step && entries.iter().any(|e| e.key == key) {
                out.push(path.clone());
            }
            for entry in entries {
                collect(&entry.node, &path.key(&entry.key), key, out);
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                collect(item, &path.index(i), key, out);
            }
        }
        Value::Null | Value::Scalar { .. } => {}
    }
}

/// Whether `path` is in the part of one of the across steps `steps` that
/// is copied per combination (everything but its hooks and its `across`
/// list): its vars are interpolated per copy, after `((.:var))`.
pub fn in_template(path: &FieldPath, steps: &[FieldPath]) -> bool {
    let segments = path.segments();
    steps.iter().any(|step| {
        let prefix = step.segments();
        segments.len() > prefix.len()
            && segments[..prefix.len()] == *prefix
            && matches!(&segments[prefix.len()], Segment::Key(k) if k != "across" && !HOOKS.contains(&k.as_str()))
    })
}

/// Reads the `across` list at `path`.
pub fn read_vars(node: &Node, path: &FieldPath, report: &mut Report<'_>) -> Option<Vec<AcrossVar>> {
    let Value::Seq(items) = &node.value else {
        report.error(
            node.at,
            path,
            format!(
                "`across` is a list of vars (`var`, `values`, `max_in_flight`), found {}",
                node.kind()
            ),
        );
        return None;
    };
    if items.is_empty() {
        report.error(node.at, path, "`across` needs at least one var");
        return None;
    }
    let mut vars: Vec<AcrossVar> = Vec::new();
    let mut clean = true;
    for (i, item) in items.iter().enumerate() {
        let at = path.index(i);
        let Some(f) = Fields::new(item, at.clone(), &["var", "values", "max_in_flight"], report) else {
            clean = false;
            continue;
        };
        let Some(name) = f.required("var", report) else {
            clean = false;
            continue;
        };
        if vars.iter().any(|v| v.name == name) {
            report.error(
                item.at,
                &at.key("var"),
                format!("var `{name}` is listed twice in `across`"),
            );
            clean = false;
        }
        let values = match f.get("values") {
            Some(Node {
                value: Value::Seq(values),
                ..
            }) => values.clone(),
            // A `((var))` left here was already reported by interpolation
            // (no value, or a local var known only at run time).
            Some(n) if n.scalar().is_some_and(|s| !var_refs(s).is_empty()) => {
                clean = false;
                continue;
            }
            Some(n) => {
                report.error(
                    n.at,
                    &at.key("values"),
                    format!(
                        "`values` is a list, found {} (a list from a var comes from --vars-file)",
                        n.kind()
                    ),
                );
                clean = false;
                continue;
            }
            None => {
                report.error(item.at, &at.key("values"), "`values` is required");
                clean = false;
                continue;
            }
        };
        let max_in_flight = match f.get("max_in_flight") {
            None => Some(1),
            Some(n) if n.scalar() == Some("all") => None,
            Some(n) => match n
                .scalar()
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|m| *m > 0)
            {
                Some(m) => Some(m),
                None => {
                    report.error(
                        n.at,
                        &at.key("max_in_flight"),
                        format!(
                            "`max_in_flight` is `all` or a whole number of at least 1, found {}",
                            n.scalar()
                                .map_or_else(|| n.kind().to_owned(), |s| format!("{s:?}"))
                        ),
                    );
                    clean = false;
                    continue;
                }
            },
        };
        vars.push(AcrossVar {
            name,
            values,
            max_in_flight,
        });
    }
    if !clean {
        return None;
    }
    let copies = vars.iter().try_fold(1usize, |n, v| n.checked_mul(v.values.len()));
    match copies {
        Some(n) if n <= MAX_COPIES => Some(vars),
        _ => {
            report.error(
                node.at,
                path,
                format!(
                    "`across` makes more than {MAX_COPIES} copies of the step; c8s renders a pod for each"
                ),
            );
            None
        }
    }
}

/// The text a value has in a name or a `((.:var))` inside a longer string.
fn text_of(value: &Node) -> String {
    match value.scalar() {
        Some(s) => s.to_owned(),
        None if value.is_null() => String::new(),
        None => value.to_json(),
    }
}

/// The name suffix of the copy for `values` (one per var, in order): the
/// values, cut short, then the id [`Combination`] gives these values (the
/// naming of matrix combinations), so every copy's name is unique,
/// deterministic, and reads back to its values.
pub fn copy_suffix(vars: &[AcrossVar], values: &[&Node]) -> String {
    let mut map = OrderedMap::new();
    let mut readable = Vec::new();
    for (var, value) in vars.iter().zip(values) {
        let text = text_of(value);
        let short: String = sanitize(&text).chars().take(16).collect();
        let short = short.trim_end_matches('-').to_owned();
        if !short.is_empty() {
            readable.push(short);
        }
        map.insert(var.name.clone(), text);
    }
    readable.push(Combination::new(map).id);
    readable.join("-")
}

/// Lowercase `[a-z0-9]` runs joined by single `-`.
fn sanitize(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// Replaces `((.:var))` of the across vars `locals` in `node`, as Concourse
/// interpolates the substep template: a ref that is the whole value becomes
/// the value itself (a list, a mapping); inside a longer string, its text
/// (JSON for a list or mapping). `((.:var.field))` reads a field. Other
/// refs are left as written.
pub fn substitute(node: &mut Node, locals: &Vars, names: &[&str]) {
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| substitute(n, locals, names)),
        Value::Map(entries) => entries
            .iter_mut()
            .for_each(|e| substitute(&mut e.node, locals, names)),
        Value::Null => {}
        Value::Scalar { text, .. } => {
            let refs = var_refs(text);
            let local = |name: &str| {
                name.strip_prefix(".:")
                    .map(|bare| bare.split('.').next().unwrap_or(bare).trim_matches('"'))
                    .is_some_and(|var| names.contains(&var))
            };
            if !refs.iter().any(|r| local(&r.name)) {
                return;
            }
            if let [only] = refs.as_slice()
                && only.range == (0..text.len())
                && let Some(value) = locals.lookup(&only.name)
            {
                let mut value = value.clone();
                value.at = node.at;
                *node = value;
                return;
            }
            let mut out = String::new();
            let mut last = 0;
            for r in &refs {
                out.push_str(&text[last..r.range.start]);
                last = r.range.end;
                match locals.lookup(&r.name).filter(|_| local(&r.name)) {
                    Some(value) => out.push_str(&text_of(value)),
                    None => out.push_str(&text[r.range.clone()]),
                }
            }
            out.push_str(&text[last..]);
            *text = out;
        }
    }
}

/// Every combination of the vars' values, the first var varying slowest
/// (`cartesianProduct` in `atc/exec/across_step.go`).
pub fn combinations(vars: &[AcrossVar]) -> Vec<Vec<&Node>> {
    let mut out: Vec<Vec<&Node>> = vec![Vec::new()];
    for var in vars {
        out = out
            .iter()
            .flat_map(|prefix| {
                var.values.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push(v);
                    next
                })
            })
            .collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars_of(yaml: &str) -> Vec<AcrossVar> {
        let node = super::super::node::parse("p.yml", yaml).expect("yaml");
        let mut report = Report::new("p.yml");
        let vars = read_vars(&node, &FieldPath::root().key("across"), &mut report);
        assert!(report.is_clean(), "{:?}", report.finish());
        vars.expect("vars")
    }

    #[test]
    fn combinations_vary_the_first_var_slowest() {
        let vars = vars_of(
            "- {var: os, values: [linux, darwin]}\n- {var: go, values: ['1.21', '1.22'], max_in_flight: all}\n",
        );
        assert_eq!(vars[0].max_in_flight, Some(1));
        assert_eq!(vars[1].max_in_flight, None);
        let texts: Vec<String> = combinations(&vars)
            .iter()
            .map(|c| c.iter().map(|v| text_of(v)).collect::<Vec<_>>().join("/"))
            .collect();
        assert_eq!(texts, ["linux/1.21", "linux/1.22", "darwin/1.21", "darwin/1.22"]);
    }

    #[test]
    fn copy_names_are_unique_and_deterministic() {
        let vars = vars_of("- {var: v, values: ['1.2', '1-2', 'A B']}\n");
        let names: Vec<String> = combinations(&vars)
            .iter()
            .map(|c| copy_suffix(&vars, c))
            .collect();
        assert!(names[0].starts_with("1-2-") && names[1].starts_with("1-2-"));
        assert_ne!(names[0], names[1]);
        assert!(names[2].starts_with("a-b-"));
        let again: Vec<String> = combinations(&vars)
            .iter()
            .map(|c| copy_suffix(&vars, c))
            .collect();
        assert_eq!(names, again);
        for name in &names {
            assert!(c8s_sidecar_core::names::dns1123_label(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn local_vars_are_replaced_whole_or_spliced_and_others_kept() {
        let mut node = super::super::node::parse(
            "p.yml",
            "a: ((.:v))\nb: go-((.:v))-((.:other))\nc: ((.:m.k))\nd: ((plain))\n",
        )
        .expect("yaml");
        let mut locals = Vars::new();
        locals.set_node("v", Node::text("1.22"));
        let m = super::super::node::parse("m.yml", "k: deep\n").expect("yaml");
        locals.set_node("m", m);
        substitute(&mut node, &locals, &["v", "m"]);
        assert_eq!(node.get("a").and_then(Node::scalar), Some("1.22"));
        assert_eq!(node.get("b").and_then(Node::scalar), Some("go-1.22-((.:other))"));
        assert_eq!(node.get("c").and_then(Node::scalar), Some("deep"));
        assert_eq!(node.get("d").and_then(Node::scalar), Some("((plain))"));
    }

    #[test]
    fn bad_across_lists_are_located_errors() {
        for (yaml, want) in [
            ("- {var: v, values: [a], max_in_flight: 0}\n", "max_in_flight"),
            ("- {var: v, values: a}\n", "`values` is a list"),
            ("- {values: [a]}\n", "var"),
            (
                "- {var: v, values: [a]}\n- {var: v, values: [b]}\n",
                "listed twice",
            ),
            ("{}\n", "list of vars"),
        ] {
            let node = super::super::node::parse("p.yml", yaml).expect("yaml");
            let mut report = Report::new("p.yml");
            assert_eq!(
                read_vars(&node, &FieldPath::root().key("across"), &mut report),
                None
            );
            let errors = report.finish().err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                errors.contains(want) && errors.starts_with("p.yml:"),
                "{yaml}: {errors}"
            );
        }
    }

    #[test]
    fn the_template_is_the_step_without_its_hooks_and_across() {
        let steps = vec![FieldPath::root().key("plan").index(0)];
        let at = |k: &str| FieldPath::root().key("plan").index(0).key(k).key("x");
        assert!(in_template(&at("config"), &steps));
        assert!(!in_template(&at("on_failure"), &steps));
        assert!(!in_template(&at("across"), &steps));
        assert!(!in_template(
            &FieldPath::root().key("plan").index(1).key("config"),
            &steps
        ));
    }
}

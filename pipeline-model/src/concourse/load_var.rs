//! A job's `load_var` steps, as the lowering meets them in plan order: each
//! names the artifact file its var is read from, and a task param using
//! `((.:NAME))` after it gets that file and var on its plan
//! ([`crate::local_vars`]: the pod reads the value when the step runs).
//!
//! As in Concourse (`atc/exec/load_var_step.go`), `file` is
//! `ARTIFACT/PATH` and the artifact is one an earlier step of the build
//! produced. A var is visible to the steps lowered after its `load_var`,
//! the order in which this lowering also makes artifacts visible.

use std::collections::{BTreeMap, BTreeSet};

use c8s_sidecar_core::FieldPath;

use super::node::{Node, Report};
use super::steps::{LoadVar, LoadVarFormat};
use crate::local_vars::{self, LoadFormat, LocalVar};

use super::keys::UNREADABLE_VAR;

/// The `load_var`s of a job lowered so far.
#[derive(Default)]
pub(super) struct Locals {
    vars: BTreeMap<String, Loaded>,
    /// Vars whose `load_var` reads an artifact a deferred step may make:
    /// known when the job runs, like the steps that read them.
    deferred: BTreeSet<String>,
    /// The vars that hold a get's version.
    versions: BTreeSet<String>,
}

struct Loaded {
    /// The var, or why c8s cannot read it.
    var: Result<LocalVar, String>,
    /// A `json` or `yaml` value read before the pod is rendered (a runner
    /// read the file from the artifact when the job ran).
    known: Option<Node>,
    /// Where its `load_var` step is.
    at: (u32, u32),
    used: bool,
    /// Its file could not be read when the job ran: every use stands for
    /// [`UNREADABLE_VAR`].
    unreadable: bool,
    /// Its known value is kept out of step logs: a `load_var` without
    /// `reveal: true` ([`Locals::redacted`]).
    redact: bool,
}

impl Locals {
    /// Takes in `load_var` step `load` (at `at`); `artifacts` maps each
    /// artifact of the build so far to its producing step and output.
    /// A `file` that names no artifact produced before is an error, as it
    /// is when Concourse runs the step.
    pub fn load(
        &mut self,
        load: &LoadVar,
        at: (u32, u32),
        path: &FieldPath,
        artifacts: &BTreeMap<String, (String, String)>,
        report: &mut Report<'_>,
    ) {
        self.deferred.remove(&load.name);
        self.versions.remove(&load.name);
        match self.read(load, artifacts) {
            Ok(var) => {
                self.vars.insert(
                    load.name.clone(),
                    Loaded {
                        var,
                        known: None,
                        at,
                        used: false,
                        unreadable: false,
                        redact: false,
                    },
                );
            }
            Err(reason) => {
                report.error(load.file_at, &path.key("file"), reason);
                // Reported once here; its uses add no second, derived error.
                let var = Err(String::new());
                let loaded = Loaded {
                    var,
                    known: None,
                    at,
                    used: true,
                    unreadable: false,
                    redact: false,
                };
                self.vars.insert(load.name.clone(), loaded);
            }
        }
    }

    /// Takes in a `load_var` whose file holds `bytes` (a runner read it):
    /// its value (`trim` and `raw` as text), or an error at its `file` when
    /// the text is not what its format says.
    pub fn known(
        &mut self,
        load: &LoadVar,
        at: (u32, u32),
        path: &FieldPath,
        bytes: &[u8],
        report: &mut Report<'_>,
    ) {
        self.deferred.remove(&load.name);
        self.versions.remove(&load.name);
        if bytes == UNREADABLE_VAR.as_bytes() {
            let loaded = Loaded {
                var: Err(String::new()),
                known: None,
                at,
                used: true,
                unreadable: true,
                redact: false,
            };
            self.vars.insert(load.name.clone(), loaded);
            return;
        }
        let parsed = std::str::from_utf8(bytes)
            .map_err(|e| e.to_string())
            .and_then(|text| match load.format {
                // Text a resource's params read: its value as a string.
                LoadVarFormat::Trim => Ok(Node::text(text.trim())),
                LoadVarFormat::Raw => Ok(Node::text(text)),
                _ => super::node::parse(&load.file, text).map_err(|e| e.to_string()),
            });
        let (known, used) = match parsed {
            Ok(node) => (Some(node), false),
            Err(reason) => {
                report.error(
                    load.file_at,
                    &path.key("file"),
                    format!("{:?} is not {:?}: {reason}", load.file, load.format),
                );
                (None, true)
            }
        };
        let var = Err(String::new());
        let loaded = Loaded {
            var,
            known,
            at,
            used,
            unreadable: false,
            redact: !load.reveal,
        };
        self.vars.insert(load.name.clone(), loaded);
    }

    /// Takes in the version get step `name` (at `at`) fetches, as JSON:
    /// Concourse adds it to the build's local vars under the step's name
    /// (`((.:repo.ref))`), so the steps after the get read its fields. A
    /// version that is not a JSON object is an error at the get.
    pub fn fetched(
        &mut self,
        name: &str,
        at: (u32, u32),
        path: &FieldPath,
        json: &[u8],
        report: &mut Report<'_>,
    ) {
        self.deferred.remove(name);
        self.versions.insert(name.to_owned());
        let unreadable = json == UNREADABLE_VAR.as_bytes();
        let known = if unreadable {
            None
        } else {
            let parsed: Option<Node> = std::str::from_utf8(json)
                .ok()
                .and_then(|text| super::node::parse(name, text).ok())
                .filter(|node| node.entries().is_some());
            if parsed.is_none() {
                let shown: String = String::from_utf8_lossy(json).chars().take(80).collect();
                report.error(
                    at,
                    path,
                    format!("the version get `{name}` fetched is not a JSON object ({shown:?}), so ((.:{name}.FIELD)) has no value"),
                );
            }
            parsed
        };
        // A get's version is never reported as a var nothing reads.
        let loaded = Loaded {
            var: Err(String::new()),
            used: true,
            known,
            at,
            unreadable,
            redact: false,
        };
        self.vars.insert(name.to_owned(), loaded);
    }

    /// The text `((.:name))` stands for when its `load_var`'s value is known
    /// (`name` may read a field: `meta.version`), marked used; `None` when
    /// the var's value is read in the pod (or there is no such var).
    pub fn known_text(&mut self, name: &str) -> Option<Result<String, String>> {
        let mut parts = name.split('.');
        let base = parts.next()?;
        let loaded = self.vars.get_mut(base)?;
        if loaded.unreadable {
            return Some(Ok(UNREADABLE_VAR.to_owned()));
        }
        let value = loaded.known.as_ref()?;
        loaded.used = true;
        let mut node = value;
        for field in parts {
            match node.get(field) {
                Some(inner) => node = inner,
                None if self.versions.contains(base) => {
                    return Some(Err(format!(
                        "((.:{name})): the version get `{base}` fetched has no field `{field}`"
                    )));
                }
                None => {
                    return Some(Err(format!(
                        "((.:{name})): the value of load_var `{base}` has no field `{field}`"
                    )));
                }
            }
        }
        Some(Ok(match node.scalar() {
            Some(text) => text.to_owned(),
            None if node.is_null() => String::new(),
            None => node.to_json(),
        }))
    }

    /// Writes into `text` each `((.:name))` (or `((.:name.field))`) whose
    /// value is known ([`Locals::known_text`]); why each that names a
    /// missing field has none (left as written).
    pub fn write_known(&mut self, text: &mut String) -> Vec<String> {
        let mut errors = Vec::new();
        for r in super::vars::var_refs(text).into_iter().rev() {
            let Some(name) = r.name.strip_prefix(".:") else {
                continue;
            };
            match self.known_text(name) {
                Some(Ok(value)) => text.replace_range(r.range.clone(), &value),
                Some(Err(reason)) => errors.push(reason),
                None => {}
            }
        }
        errors
    }

    /// Marks var `name` read (by what is not a param: an across step's values).
    pub fn mark_used(&mut self, name: &str) {
        if let Some(loaded) = self.vars.get_mut(name) {
            loaded.used = true;
        }
    }

    /// Takes in get `name`'s version, known once the get ran.
    pub fn defer_version(&mut self, name: &str) {
        self.defer(name);
        self.versions.insert(name.to_owned());
    }

    /// Whether var `name` holds a get's version.
    pub fn is_version(&self, name: &str) -> bool {
        self.versions.contains(name)
    }

    /// Takes in a `load_var` of `name` that is deferred to run time.
    pub fn defer(&mut self, name: &str) {
        self.vars.remove(name);
        self.versions.remove(name);
        self.deferred.insert(name.to_owned());
    }

    /// The first deferred var `text` reads as `((.:NAME))` or a field of it.
    pub fn deferred_in(&self, text: &str) -> Option<String> {
        text.match_indices("((.:").find_map(|(at, open)| {
            let rest = &text[at + open.len()..];
            let name = rest.split("))").next()?.trim();
            let base = name.split('.').next().unwrap_or(name);
            self.deferred.contains(base).then(|| name.to_owned())
        })
    }

    /// The var `load` sets, or why c8s cannot read it (an error at its
    /// use); `Err` when the step itself is wrong (an error at its `file`).
    fn read(
        &self,
        load: &LoadVar,
        artifacts: &BTreeMap<String, (String, String)>,
    ) -> Result<Result<LocalVar, String>, String> {
        let Some((artifact, file)) = load.file.split_once('/') else {
            return Err(format!(
                "{:?} does not say which artifact holds it: write ARTIFACT/PATH",
                load.file
            ));
        };
        let Some((step, output)) = artifacts.get(artifact) else {
            return Err(format!(
                "artifact `{artifact}` is not produced by a step before this load_var (a get, a put, or a task output)"
            ));
        };
        let file = file.trim_start_matches("./");
        local_vars::check_local_var_file(file).map_err(|reason| format!("{:?}: {reason}", load.file))?;
        Ok(match load.format {
            LoadVarFormat::Trim | LoadVarFormat::Raw => {
                local_vars::check_local_var_name(&load.name).map(|()| {
                    let format = if load.format == LoadVarFormat::Raw {
                        LoadFormat::Raw
                    } else {
                        LoadFormat::Trim
                    };
                    LocalVar::new(&load.name, step, output, file, format)
                })
            }
            LoadVarFormat::Json | LoadVarFormat::Yaml => Err(format!(
                "load_var `{}` reads {:?} as {}, a structure; c8s reads a load_var value as text in the pod (format trim or raw)",
                load.name,
                load.file,
                if load.format == LoadVarFormat::Json {
                    "json"
                } else {
                    "yaml"
                }
            )),
        })
    }

    /// The var `((.:name))` reads (`name` without `.:`), marked used; an
    /// error saying why when there is none c8s can read (empty when its
    /// `load_var` step was reported already).
    pub fn resolve(&mut self, name: &str) -> Result<LocalVar, String> {
        let base = name.split('.').next().unwrap_or(name);
        if self.vars.get(base).is_some_and(|loaded| loaded.known.is_some()) {
            // A known value: written into the text already, or its error
            // reported by `known_text`.
            return Err(String::new());
        }
        if let Some(loaded) = self.vars.get_mut(name) {
            loaded.used = true;
            return loaded.var.clone();
        }
        match name.split_once('.') {
            Some((base, field)) if self.vars.contains_key(base) => Err(format!(
                "((.:{name})) reads field `{field}` of load_var `{base}`; c8s reads a load_var value as text in the pod (format trim or raw), without fields"
            )),
            _ => Err(format!(
                "((.:{name})) names no load_var before this step (a local var is set by a load_var earlier in the build, or by an across step around it)"
            )),
        }
    }

    /// The values to keep out of step logs, each with the var (and field)
    /// it is: the strings of each known `load_var` value without `reveal:
    /// true`, a mapping's reached field by field, as Concourse's var
    /// tracker collects what it redacts (`vars/tracker.go`: strings only,
    /// through mappings; numbers, booleans and lists are not tracked). A
    /// get's version (a build in Concourse shows it with its gets) is not
    /// masked, nor a value read in the pod, which c8s never sees.
    pub fn redacted(&self) -> Vec<(String, String)> {
        fn strings(path: String, node: &Node, out: &mut Vec<(String, String)>) {
            match &node.value {
                super::node::Value::Map(entries) => {
                    for entry in entries {
                        strings(format!("{path}.{}", entry.key), &entry.node, out);
                    }
                }
                super::node::Value::Scalar { text, .. } if node.to_json().starts_with('"') => {
                    out.push((path, text.clone()));
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        for (name, loaded) in &self.vars {
            if let (true, Some(value)) = (loaded.redact, &loaded.known) {
                strings(format!("load_var {name}"), value, &mut out);
            }
        }
        out
    }

    /// A note for each `load_var` no task param reads.
    pub fn unused(&self) -> Vec<String> {
        self.vars
            .iter()
            .filter(|(_, loaded)| !loaded.used)
            .map(|(name, loaded)| {
                format!(
                    "{}:{}: load_var `{name}` not read: no task param after it uses ((.:{name})) (Concourse would still read the file and fail the build without it)",
                    loaded.at.0, loaded.at.1
                )
            })
            .collect()
    }
}

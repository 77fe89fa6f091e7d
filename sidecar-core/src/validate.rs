//! Validation rules for sidecars: the file format's own, and the API server's
//! (`pkg/apis/core/validation/validation.go`) that a container would hit later.
//!
//! Rules produce [`Finding`]s: a problem at a field path. A [`Locator`] turns
//! them into located [`Error`]s, building source maps only when something is
//! wrong. Other crates (pipeline-model) reuse these pieces for inline sidecars.

use std::cell::OnceCell;
use std::collections::BTreeMap;

use crate::error::{Error, Errors, Position, Problem};
use crate::names;
use crate::path::FieldPath;
use crate::types::{PortRef, Protocol, ReadinessProbe, SidecarConfig};
#[cfg(feature = "yaml")]
use crate::yaml::SourceMap;

/// Without the `yaml` feature no text is parsed: findings point at their file.
#[cfg(not(feature = "yaml"))]
#[derive(Debug)]
struct SourceMap(String);

#[cfg(not(feature = "yaml"))]
impl SourceMap {
    fn build(file: &str, _text: &str) -> Self {
        Self(file.to_owned())
    }

    fn position(&self, _path: &FieldPath) -> Position {
        Position::file(self.0.clone())
    }
}

pub use crate::contract::{RESERVED_NAMES, RESERVED_PREFIX};
pub use crate::error::Located;
pub use crate::finding::{Finding, MAX_INT32, Placed, Rule, Sink};

/// The documents findings refer to, with source maps built on first use.
#[derive(Debug, Default)]
pub struct Locator<'a> {
    docs: Vec<(&'a str, &'a str, OnceCell<SourceMap>)>,
}

impl<'a> Locator<'a> {
    /// An empty locator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a document (file name and text) and returns its index.
    pub fn add(&mut self, file: &'a str, text: &'a str) -> usize {
        self.docs.push((file, text, OnceCell::new()));
        self.docs.len() - 1
    }

    /// Where `path` is written in document `doc`.
    pub fn position(&self, doc: usize, path: &FieldPath) -> Position {
        match self.docs.get(doc) {
            Some((file, text, map)) => map.get_or_init(|| SourceMap::build(file, text)).position(path),
            None => Position::default(),
        }
    }

    /// Turns findings into errors sorted in document order.
    pub fn locate(&self, findings: Vec<Finding>) -> Errors {
        Errors::new(self.locate_as(findings).into_iter().map(Error::from).collect())
    }

    /// Places findings of any problem type, sorted in document order (each
    /// crate builds its own error from a [`Located`]).
    pub fn locate_as<P: Rule>(&self, findings: Vec<Finding<P>>) -> Vec<Located<P>> {
        let mut located: Vec<(usize, Located<P>)> = findings
            .into_iter()
            .map(|f| {
                let at = self.position(f.doc, &f.path);
                let mut problem = f.problem;
                if let (Some(first), Some((doc, path))) = (problem.first_mut(), &f.first) {
                    *first = self.position(*doc, path);
                }
                let located = Located::new(f.doc, at, f.path, f.subject, &f.subject_path, problem);
                (f.doc, located)
            })
            .collect();
        located.sort_by(|(da, a), (db, b)| (da, a.at.line, a.at.column).cmp(&(db, b.at.line, b.at.column)));
        located.into_iter().map(|(_, l)| l).collect()
    }
}

/// Checks the rules of one sidecar on its own.
pub fn check_sidecar<P: Rule>(placed: Placed<'_>, findings: &mut Vec<Finding<P>>) {
    let Placed { sidecar: s, path, .. } = placed;
    let mut sink = Sink::new(
        findings,
        placed,
        format!("sidecar {}", crate::error::quoted(&s.name)),
    );

    if s.name.is_empty() {
        sink.problem(path.key("name"), Problem::Empty);
    } else if let Err(reason) = names::dns1123_label(&s.name) {
        sink.problem(
            path.key("name"),
            Problem::InvalidName {
                value: s.name.clone(),
                reason,
            },
        );
    } else if crate::contract::is_reserved_container_name(&s.name) {
        sink.problem(path.key("name"), Problem::ReservedName { name: s.name.clone() });
    }

    crate::aliases::check_aliases(&mut sink, s, path);

    if s.image.is_empty() {
        sink.problem(path.key("image"), Problem::Empty);
    } else if let Err(reason) = names::image_reference(&s.image) {
        sink.problem(
            path.key("image"),
            Problem::InvalidImage {
                value: s.image.clone(),
                reason,
            },
        );
    }

    if s.working_dir.as_deref() == Some("") {
        sink.problem(path.key("workingDir"), Problem::Empty);
    }

    crate::rules::env_list(&s.env, &path.key("env"), &mut sink);

    let mut port_names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut port_numbers: BTreeMap<(i32, Protocol), usize> = BTreeMap::new();
    for (i, port) in s.ports.iter().enumerate() {
        let at = path.key("ports").index(i);
        if !(1..=65535).contains(&port.container_port) {
            sink.problem(
                at.key("containerPort"),
                Problem::PortOutOfRange {
                    port: i64::from(port.container_port),
                },
            );
        }
        if let Some(name) = &port.name {
            if let Err(reason) = names::port_name(name) {
                sink.problem(
                    at.key("name"),
                    Problem::InvalidPortName {
                        value: name.clone(),
                        reason,
                    },
                );
            }
            if let Some(&first) = port_names.get(name.as_str()) {
                sink.duplicate(
                    at.key("name"),
                    "port name",
                    name,
                    path.key("ports").index(first).key("name"),
                );
            } else {
                port_names.insert(name, i);
            }
        }
        let key = (port.container_port, port.protocol);
        if let Some(&first) = port_numbers.get(&key) {
            let label = format!("{}/{}", port.container_port, port.protocol);
            sink.duplicate(
                at.key("containerPort"),
                "port",
                &label,
                path.key("ports").index(first).key("containerPort"),
            );
        } else {
            port_numbers.insert(key, i);
        }
    }

    crate::rules::resources(&s.resources, &path.key("resources"), &mut sink);

    if let crate::Readiness::Probe(probe) = &s.readiness {
        check_probe(s, probe, &path.key("readiness"), &mut sink);
    }
    if let Some(probe) = &s.liveness {
        check_probe(s, probe, &path.key("liveness"), &mut sink);
    }

    crate::rules::run_as_user(s.run_as_user, s.run_as_root, &path.key("runAsUser"), &mut sink);

    let mut scratch: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, dir) in s.scratch.iter().enumerate() {
        let at = path.key("scratch").index(i);
        if let Err(reason) = crate::paths::absolute(dir) {
            sink.problem(
                at,
                Problem::InvalidPath {
                    value: dir.clone(),
                    reason,
                },
            );
        } else if let Some(&first) = scratch.get(dir.as_str()) {
            sink.duplicate(at, "scratch path", dir, path.key("scratch").index(first));
        } else {
            scratch.insert(dir, i);
        }
    }
}

fn check_port<P: Rule>(s: &SidecarConfig, sink: &mut Sink<'_, P>, port: &PortRef, here: FieldPath) {
    match port {
        PortRef::Number(n) if !(1..=65535).contains(n) => {
            sink.problem(here, Problem::PortOutOfRange { port: i64::from(*n) })
        }
        PortRef::Name(name) if !s.ports.iter().any(|p| p.name.as_deref() == Some(name)) => {
            sink.problem(here, Problem::UnknownPortName { name: name.clone() })
        }
        _ => {}
    }
}

fn check_probe<P: Rule>(s: &SidecarConfig, probe: &ReadinessProbe, at: &FieldPath, sink: &mut Sink<'_, P>) {
    let count = probe.handler_count();
    if count != 1 {
        sink.problem(at.clone(), Problem::ProbeHandlers { found: count });
    }
    if let Some(tcp) = &probe.tcp_socket {
        check_port(s, sink, &tcp.port, at.key("tcpSocket").key("port"));
    }
    if let Some(http) = &probe.http_get {
        check_port(s, sink, &http.port, at.key("httpGet").key("port"));
        if !http.path.starts_with('/') {
            sink.problem(
                at.key("httpGet").key("path"),
                Problem::InvalidHttpPath {
                    value: http.path.clone(),
                },
            );
        }
    }
    if let Some(exec) = &probe.exec
        && exec.command.is_empty()
    {
        sink.problem(at.key("exec").key("command"), Problem::EmptyCommand);
    }
    for (key, value) in [
        ("periodSeconds", probe.period_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
    ] {
        if let Some(v) = value
            && v < 1
        {
            sink.problem(at.key(key), Problem::NotPositive { value: i64::from(v) });
        }
    }
}

/// Checks rules between the sidecars of one pod: unique names, and no two
/// containers on the same port and protocol (they share a network namespace).
pub fn check_pod_sidecars<P: Rule>(sidecars: &[Placed<'_>], findings: &mut Vec<Finding<P>>) {
    let mut by_name: BTreeMap<&str, Placed<'_>> = BTreeMap::new();
    let mut by_port: BTreeMap<(i32, Protocol), Placed<'_>> = BTreeMap::new();
    for placed in sidecars {
        let s = placed.sidecar;
        let subject = Some(format!("sidecar {}", crate::error::quoted(&s.name)));
        if !s.name.is_empty() {
            if let Some(first) = by_name.get(s.name.as_str()) {
                findings.push(Finding {
                    doc: placed.doc,
                    path: placed.path.key("name"),
                    subject: subject.clone(),
                    subject_path: placed.path.clone(),
                    problem: Problem::Duplicate {
                        kind: "sidecar",
                        name: s.name.clone(),
                        first: Position::default(),
                    }
                    .into(),
                    first: Some((first.doc, first.path.key("name"))),
                });
            } else {
                by_name.insert(&s.name, *placed);
            }
        }
        let mut seen_here = std::collections::BTreeSet::new();
        for (i, port) in s.ports.iter().enumerate() {
            let key = (port.container_port, port.protocol);
            if !seen_here.insert(key) {
                continue; // reported by check_sidecar
            }
            match by_port.get(&key) {
                Some(owner) => findings.push(Finding {
                    doc: placed.doc,
                    path: placed.path.key("ports").index(i),
                    subject: subject.clone(),
                    subject_path: placed.path.clone(),
                    problem: Problem::PortConflict {
                        port: port.container_port,
                        protocol: port.protocol,
                        owner: format!("sidecar {}", crate::error::quoted(&owner.sidecar.name)),
                    }
                    .into(),
                    first: None,
                }),
                None => {
                    by_port.insert(key, *placed);
                }
            }
        }
    }
    crate::aliases::check_pod_aliases(sidecars, findings);
}

/// Validates sidecars built in code (no source file): every rule, every problem.
pub fn validate_sidecars(sidecars: &[SidecarConfig]) -> Result<(), Errors> {
    let mut locator = Locator::new();
    let doc = locator.add("<input>", "");
    let findings = check_list(sidecars, doc, &FieldPath::root());
    if findings.is_empty() {
        Ok(())
    } else {
        Err(locator.locate(findings))
    }
}

/// All findings for one list of sidecars at `base` in document `doc`.
pub fn check_list<P: Rule>(sidecars: &[SidecarConfig], doc: usize, base: &FieldPath) -> Vec<Finding<P>> {
    let paths: Vec<FieldPath> = (0..sidecars.len()).map(|i| base.index(i)).collect();
    let placed: Vec<Placed<'_>> = sidecars
        .iter()
        .zip(&paths)
        .map(|(sidecar, path)| Placed { sidecar, doc, path })
        .collect();
    let mut findings = Vec::new();
    for p in &placed {
        check_sidecar(*p, &mut findings);
    }
    check_pod_sidecars(&placed, &mut findings);
    findings
}

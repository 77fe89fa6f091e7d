//! Service names: every sidecar is reachable as its `name` and its `aliases`
//! (`postgres:5432` as in GitLab services and compose), because pod-builder
//! maps them all to 127.0.0.1 in the pod's `hostAliases` (the containers of a
//! pod share one network namespace). A name that two sidecars claim is an error.

use std::collections::BTreeMap;

use crate::error::{Position, Problem};
use crate::finding::{Finding, Placed, Rule, Sink};
use crate::names;
use crate::path::FieldPath;
use crate::types::SidecarConfig;

/// The names that resolve to a sidecar: its name, then its aliases.
pub fn service_names(sidecar: &SidecarConfig) -> impl Iterator<Item = &str> {
    std::iter::once(sidecar.name.as_str()).chain(sidecar.aliases.iter().map(String::as_str))
}

/// The rules of one sidecar's aliases: hostnames (DNS-1123 subdomains), not
/// `localhost`, not repeated.
pub(crate) fn check_aliases<P: Rule>(sink: &mut Sink<'_, P>, s: &SidecarConfig, path: &FieldPath) {
    let mut seen: BTreeMap<&str, FieldPath> = BTreeMap::new();
    seen.insert(&s.name, path.key("name"));
    for (i, alias) in s.aliases.iter().enumerate() {
        let here = path.key("aliases").index(i);
        if let Err(reason) = names::dns1123_subdomain(alias) {
            let problem = Problem::InvalidName {
                value: alias.clone(),
                reason,
            };
            sink.problem(here.clone(), problem);
        } else if alias == "localhost" {
            let problem = Problem::Unsupported {
                value: alias.clone(),
                expected: "a name other than localhost (every pod has it)".to_owned(),
            };
            sink.problem(here.clone(), problem);
        }
        match seen.get(alias.as_str()) {
            Some(first) => sink.duplicate(here, "service name", alias, first.clone()),
            None => {
                seen.insert(alias, here);
            }
        }
    }
}

/// Aliases of one sidecar that another sidecar of the pod already answers to
/// (as its name or an alias). Two sidecars with one name are reported as
/// duplicate sidecars, not here.
pub(crate) fn check_pod_aliases<P: Rule>(sidecars: &[Placed<'_>], findings: &mut Vec<Finding<P>>) {
    // Each name's owner: which sidecar, and where the name is written.
    let mut owners: BTreeMap<&str, (usize, usize, FieldPath)> = BTreeMap::new();
    for (k, placed) in sidecars.iter().enumerate() {
        owners
            .entry(placed.sidecar.name.as_str())
            .or_insert_with(|| (k, placed.doc, placed.path.key("name")));
    }
    for (k, placed) in sidecars.iter().enumerate() {
        let s = placed.sidecar;
        for (i, alias) in s.aliases.iter().enumerate() {
            let here = placed.path.key("aliases").index(i);
            match owners.get(alias.as_str()) {
                // Repeats within one sidecar are reported by check_aliases.
                Some((owner, _, _)) if *owner == k => {}
                Some((_, doc, first)) => findings.push(Finding {
                    doc: placed.doc,
                    path: here,
                    subject: Some(format!("sidecar {}", crate::error::quoted(&s.name))),
                    subject_path: placed.path.clone(),
                    problem: Problem::Duplicate {
                        kind: "service name",
                        name: alias.clone(),
                        first: Position::default(),
                    }
                    .into(),
                    first: Some((*doc, first.clone())),
                }),
                None => {
                    owners.insert(alias, (k, placed.doc, here));
                }
            }
        }
    }
}

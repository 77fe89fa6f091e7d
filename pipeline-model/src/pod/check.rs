//! The rules of pod overrides, as the API server applies them
//! (`pkg/apis/core/validation/validation.go`: tolerations, affinity, names),
//! pushed as located findings so that a typo is reported at its line.

use crate::error::Problem;
use c8s_sidecar_core::Problem as Rule;
use std::collections::BTreeMap;

use crate::subject::Subject as Sink;
use c8s_sidecar_core::{FieldPath, names};

use super::PodOverrides;
use super::affinity::{Affinity, LabelSelector, NodeSelectorTerm, PodAffinity, PodAffinityTerm, Requirement};

fn unsupported(value: &str, expected: &str) -> Problem {
    Problem::Unsupported {
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

fn invalid_name(value: &str, reason: String) -> Problem {
    Rule::InvalidName {
        value: value.to_owned(),
        reason,
    }
    .into()
}

/// Every finding about `pod`, written at `at` (a pipeline or a step).
pub(crate) fn pod_overrides(s: &mut Sink<'_>, pod: &PodOverrides, at: &FieldPath) {
    labels(s, &pod.node_selector, &at.key("nodeSelector"), false);
    labels(s, &pod.labels, &at.key("labels"), true);
    annotations(s, &pod.annotations, &at.key("annotations"));
    for (i, t) in pod.tolerations.iter().enumerate() {
        let here = at.key("tolerations").index(i);
        if !matches!(t.operator.as_str(), "" | "Equal" | "Exists") {
            s.problem(here.key("operator"), unsupported(&t.operator, "Equal or Exists"));
        }
        if t.operator == "Exists" && !t.value.is_empty() {
            s.problem(
                here.key("value"),
                unsupported(&t.value, "no value with operator Exists"),
            );
        }
        if t.key.is_empty() && t.operator != "Exists" {
            s.problem(
                here.key("operator"),
                unsupported(&t.operator, "Exists when key is empty"),
            );
        }
        if !t.key.is_empty()
            && let Err(reason) = names::label_key(&t.key)
        {
            s.problem(here.key("key"), invalid_name(&t.key, reason));
        }
        if !matches!(
            t.effect.as_str(),
            "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute"
        ) {
            s.problem(
                here.key("effect"),
                unsupported(&t.effect, "NoSchedule, PreferNoSchedule or NoExecute"),
            );
        }
        if let Some(seconds) = t.toleration_seconds
            && t.effect != "NoExecute"
        {
            s.problem(
                here.key("tolerationSeconds"),
                unsupported(
                    &seconds.to_string(),
                    "tolerationSeconds only with effect NoExecute",
                ),
            );
        }
    }
    if let Some(affinity) = &pod.affinity {
        check_affinity(s, affinity, &at.key("affinity"));
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, secret) in pod.image_pull_secrets.iter().enumerate() {
        let here = at.key("imagePullSecrets").index(i);
        if let Err(reason) = names::dns1123_subdomain(secret) {
            s.problem(here.clone(), invalid_name(secret, reason));
        }
        match seen.get(secret.as_str()) {
            Some(&first) => s.duplicate(
                here,
                "image pull secret",
                secret,
                at.key("imagePullSecrets").index(first),
            ),
            None => {
                seen.insert(secret, i);
            }
        }
    }
    let singles = [
        ("serviceAccountName", &pod.service_account_name),
        ("runtimeClassName", &pod.runtime_class_name),
        ("priorityClassName", &pod.priority_class_name),
    ];
    for (field, value) in singles {
        if let Some(value) = value
            && let Err(reason) = names::dns1123_subdomain(value)
        {
            s.problem(at.key(field), invalid_name(value, reason));
        }
    }
    if let Some(storage) = &pod.ephemeral_storage {
        let here = at.key("ephemeralStorage");
        for (field, q) in [("request", &storage.request), ("limit", &storage.limit)] {
            if let Some(q) = q.as_ref().filter(|q| q.is_negative()) {
                let problem = Rule::NegativeQuantity {
                    resource: "ephemeral-storage".to_owned(),
                    value: q.as_str().to_owned(),
                };
                s.problem(here.key(field), problem);
            }
        }
        if let (Some(request), Some(limit)) = (&storage.request, &storage.limit)
            && request > limit
        {
            let problem = Rule::RequestExceedsLimit {
                resource: "ephemeral-storage".to_owned(),
                request: request.as_str().to_owned(),
                limit: limit.as_str().to_owned(),
            };
            s.problem(here.key("request"), problem);
        }
    }
    if let Some(patch) = &pod.pod_spec_patch
        && !patch.is_object()
    {
        s.problem(
            at.key("podSpecPatch"),
            unsupported(&patch.to_string(), "a mapping of PodSpec fields"),
        );
    }
}

fn labels(s: &mut Sink<'_>, map: &BTreeMap<String, String>, at: &FieldPath, own: bool) {
    for (key, value) in map {
        let here = at.key(key);
        if let Err(reason) = names::label_key(key) {
            s.problem(here.clone(), invalid_name(key, reason));
        } else if own && c8s_sidecar_core::contract::is_reserved_key(key) {
            s.problem(
                here.clone(),
                unsupported(
                    key,
                    "a key outside c8s.dev/ and app.kubernetes.io/ (c8s sets those)",
                ),
            );
        }
        if let Err(reason) = names::label_value(value) {
            s.problem(here, invalid_name(value, reason));
        }
    }
}

fn annotations(s: &mut Sink<'_>, map: &BTreeMap<String, String>, at: &FieldPath) {
    for key in map.keys() {
        if let Err(reason) = names::label_key(key) {
            s.problem(at.key(key), invalid_name(key, reason));
        } else if c8s_sidecar_core::contract::is_reserved_key(key) {
            s.problem(
                at.key(key),
                unsupported(
                    key,
                    "a key outside c8s.dev/ and app.kubernetes.io/ (c8s sets those)",
                ),
            );
        }
    }
}

fn check_affinity(s: &mut Sink<'_>, affinity: &Affinity, at: &FieldPath) {
    if let Some(node) = &affinity.node_affinity {
        let here = at.key("nodeAffinity");
        if let Some(required) = &node.required_during_scheduling_ignored_during_execution {
            let terms = here
                .key("requiredDuringSchedulingIgnoredDuringExecution")
                .key("nodeSelectorTerms");
            if required.node_selector_terms.is_empty() {
                s.problem(terms.clone(), Rule::Empty);
            }
            for (i, term) in required.node_selector_terms.iter().enumerate() {
                node_term(s, term, &terms.index(i));
            }
        }
        let preferred = here.key("preferredDuringSchedulingIgnoredDuringExecution");
        for (i, p) in node
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .enumerate()
        {
            weight(s, p.weight, &preferred.index(i).key("weight"));
            node_term(s, &p.preference, &preferred.index(i).key("preference"));
        }
    }
    for (field, pod) in [
        ("podAffinity", &affinity.pod_affinity),
        ("podAntiAffinity", &affinity.pod_anti_affinity),
    ] {
        if let Some(pod) = pod {
            pod_affinity(s, pod, &at.key(field));
        }
    }
}

fn pod_affinity(s: &mut Sink<'_>, pod: &PodAffinity, at: &FieldPath) {
    let required = at.key("requiredDuringSchedulingIgnoredDuringExecution");
    for (i, term) in pod
        .required_during_scheduling_ignored_during_execution
        .iter()
        .enumerate()
    {
        pod_term(s, term, &required.index(i));
    }
    let preferred = at.key("preferredDuringSchedulingIgnoredDuringExecution");
    for (i, w) in pod
        .preferred_during_scheduling_ignored_during_execution
        .iter()
        .enumerate()
    {
        weight(s, w.weight, &preferred.index(i).key("weight"));
        pod_term(
            s,
            &w.pod_affinity_term,
            &preferred.index(i).key("podAffinityTerm"),
        );
    }
}

fn pod_term(s: &mut Sink<'_>, term: &PodAffinityTerm, at: &FieldPath) {
    if term.topology_key.is_empty() {
        s.problem(at.key("topologyKey"), Rule::Empty);
    } else if let Err(reason) = names::label_key(&term.topology_key) {
        s.problem(at.key("topologyKey"), invalid_name(&term.topology_key, reason));
    }
    for (field, selector) in [
        ("labelSelector", &term.label_selector),
        ("namespaceSelector", &term.namespace_selector),
    ] {
        if let Some(selector) = selector {
            label_selector(s, selector, &at.key(field));
        }
    }
}

fn label_selector(s: &mut Sink<'_>, selector: &LabelSelector, at: &FieldPath) {
    labels(s, &selector.match_labels, &at.key("matchLabels"), false);
    for (i, r) in selector.match_expressions.iter().enumerate() {
        requirement(s, r, &at.key("matchExpressions").index(i), false);
    }
}

fn node_term(s: &mut Sink<'_>, term: &NodeSelectorTerm, at: &FieldPath) {
    for (i, r) in term.match_expressions.iter().enumerate() {
        requirement(s, r, &at.key("matchExpressions").index(i), true);
    }
    for (i, r) in term.match_fields.iter().enumerate() {
        requirement(s, r, &at.key("matchFields").index(i), true);
    }
}

fn requirement(s: &mut Sink<'_>, r: &Requirement, at: &FieldPath, node: bool) {
    if let Err(reason) = names::label_key(&r.key) {
        s.problem(at.key("key"), invalid_name(&r.key, reason));
    }
    let values = match r.operator.as_str() {
        "In" | "NotIn" => !r.values.is_empty(),
        "Exists" | "DoesNotExist" => r.values.is_empty(),
        "Gt" | "Lt" if node => r.values.len() == 1 && r.values[0].parse::<i64>().is_ok(),
        _ => {
            let expected = if node {
                "In, NotIn, Exists, DoesNotExist, Gt or Lt"
            } else {
                "In, NotIn, Exists or DoesNotExist"
            };
            s.problem(at.key("operator"), unsupported(&r.operator, expected));
            return;
        }
    };
    if !values {
        let expected = match r.operator.as_str() {
            "In" | "NotIn" => "at least one value",
            "Exists" | "DoesNotExist" => "no values",
            _ => "exactly one integer value",
        };
        s.problem(
            at.key("values"),
            unsupported(&format!("{:?}", r.values), expected),
        );
    }
}

fn weight(s: &mut Sink<'_>, weight: i32, at: &FieldPath) {
    if !(1..=100).contains(&weight) {
        s.problem(
            at.clone(),
            unsupported(&weight.to_string(), "a weight from 1 to 100"),
        );
    }
}

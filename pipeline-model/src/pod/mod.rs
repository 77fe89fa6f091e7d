//! Pod overrides: where and how a step's pod is scheduled (`nodeSelector`,
//! `tolerations`, `affinity`, `runtimeClassName`, `priorityClassName`), which
//! identity it runs with (`serviceAccountName`, `imagePullSecrets`), extra
//! labels and annotations, ephemeral storage of `main`, and `podSpecPatch`, the
//! escape hatch for everything else. Written at pipeline level (every step)
//! and step level (that step; see [`PodOverrides::overlay`]).

pub mod affinity;
#[cfg(feature = "pipeline")]
pub(crate) mod check;
pub mod patch;

use std::collections::BTreeMap;

use c8s_sidecar_core::Quantity;
use serde_derive::{Deserialize, Serialize};

pub use affinity::Affinity;

/// The pod-level settings a pipeline or a step may set.
///
/// `T` and `A` are the toleration and affinity types: this crate's strict
/// ones for what files say; a renderer with its own Kubernetes types (the
/// run-wide overrides of `c8s-pod-builder`'s `RunContext`) names those.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "PodOverrides"))]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PodOverrides<T = Toleration, A = Affinity> {
    /// Node labels the pod must run on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pod tolerates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<T>,
    /// Node and pod (anti-)affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<A>,
    /// Secrets (type `kubernetes.io/dockerconfigjson`) to pull images with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<String>,
    /// The pod's service account; its API token is then mounted (without
    /// one, c8s turns token automounting off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// RuntimeClass (gVisor, Kata, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
    /// PriorityClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Extra labels on the pod (keys under `c8s.dev/` and
    /// `app.kubernetes.io/` are c8s's own).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations on the pod (same reserved prefixes).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Ephemeral storage of `main`, unless its `resources` name
    /// `ephemeral-storage` themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<EphemeralStorage>,
    /// A patch applied to the rendered pod's `spec`: JSON merge patch
    /// (RFC 7386) where lists of named items (containers, initContainers,
    /// volumes, env, volumeMounts) merge by `name`, as strategic merge does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_spec_patch: Option<serde_json::Value>,
}

/// A toleration, field for field the Kubernetes one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct Toleration {
    /// The taint key; empty with `Exists` tolerates every taint.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// `Equal` (default) or `Exists`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub operator: String,
    /// The taint value (`Equal` only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`; empty: all.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub effect: String,
    /// How long a `NoExecute` taint is tolerated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

impl Toleration {
    /// Tolerates taint `key` whatever its value, for `effect`.
    pub fn exists(key: impl Into<String>, effect: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            operator: "Exists".to_owned(),
            effect: effect.into(),
            ..Self::default()
        }
    }

    /// Tolerates taint `key=value` for `effect`.
    pub fn equal(key: impl Into<String>, value: impl Into<String>, effect: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            operator: "Equal".to_owned(),
            value: value.into(),
            effect: effect.into(),
            toleration_seconds: None,
        }
    }
}

/// `ephemeralStorage: { request, limit }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct EphemeralStorage {
    /// What the scheduler reserves on the node's disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Quantity>,
    /// Above this the kubelet evicts the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Quantity>,
}

impl PodOverrides {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// `self` (the outer level: pipeline, or a plan's overrides under a run
    /// context's) with `inner` on top: maps merge key by key and lists append
    /// (both with `inner` winning on a clash), single values and the
    /// ephemeral storage come from `inner` when it sets them, and patches
    /// apply outer first (a JSON merge patch of both).
    pub fn overlay(&self, inner: &PodOverrides) -> PodOverrides {
        let mut out = self.clone();
        out.node_selector.extend(inner.node_selector.clone());
        for t in &inner.tolerations {
            if !out.tolerations.contains(t) {
                out.tolerations.push(t.clone());
            }
        }
        for s in &inner.image_pull_secrets {
            if !out.image_pull_secrets.contains(s) {
                out.image_pull_secrets.push(s.clone());
            }
        }
        out.labels.extend(inner.labels.clone());
        out.annotations.extend(inner.annotations.clone());
        let pick = |outer: &Option<String>, inner: &Option<String>| inner.clone().or_else(|| outer.clone());
        out.service_account_name = pick(&self.service_account_name, &inner.service_account_name);
        out.runtime_class_name = pick(&self.runtime_class_name, &inner.runtime_class_name);
        out.priority_class_name = pick(&self.priority_class_name, &inner.priority_class_name);
        if inner.affinity.is_some() {
            out.affinity = inner.affinity.clone();
        }
        if inner.ephemeral_storage.is_some() {
            out.ephemeral_storage = inner.ephemeral_storage.clone();
        }
        out.pod_spec_patch = match (&self.pod_spec_patch, &inner.pod_spec_patch) {
            (Some(outer), Some(inner)) => Some(merge_patches(outer, inner)),
            (outer, inner) => inner.clone().or_else(|| outer.clone()),
        };
        out
    }
}

/// Two merge patches as one: `second` applied after `first`. Unlike applying,
/// `null`s of `second` are kept so that they still delete in the target, and
/// named lists merge item by item as [`patch::apply`] merges them.
fn merge_patches(first: &serde_json::Value, second: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match (first, second) {
        (Value::Object(a), Value::Object(b)) => {
            let mut out = a.clone();
            for (key, value) in b {
                let merged = match out.get(key) {
                    Some(old) => merge_patches(old, value),
                    None => value.clone(),
                };
                out.insert(key.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(a), Value::Array(b)) if patch::is_named_list(a) && patch::is_named_list(b) => {
            let mut out = a.clone();
            for item in b {
                match out.iter_mut().find(|o| patch::name_of(o) == patch::name_of(item)) {
                    Some(old) => *old = merge_patches(old, item),
                    None => out.push(item.clone()),
                }
            }
            Value::Array(out)
        }
        (_, second) => second.clone(),
    }
}

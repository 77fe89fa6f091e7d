//! What a pod asks the scheduler for, and what a whole run needs.
//!
//! A pod's effective request is not the sum of its containers: plain init
//! containers run one at a time before everything else, and native sidecars
//! (KEP-753) keep running beside what starts after them. Per resource, as the
//! scheduler computes it (`component-helpers/resource/helpers.go`):
//!
//! ```text
//! InitUse(i) = sum(sidecars before i) + init(i)   (for a sidecar i: the running sum including i)
//! effective  = max( max_i InitUse(i), sum(sidecars) + sum(regular containers) )
//! ```
//!
//! Requests and limits are computed separately, with the same formula. All
//! arithmetic is exact ([`Quantity`] counts nano-units in an `i128`), results
//! are keyed by resource name and written canonically (`1500m`, `512Mi`).
//!
//! ```
//! use c8s_pipeline_model::resources::{effective_resources, ResourceList};
//! use c8s_pipeline_model::{ContainerRole, LaidOutContainer};
//! use c8s_pipeline_model::sidecar::{Quantity, Resources};
//!
//! fn container(role: ContainerRole, cpu: &str) -> LaidOutContainer {
//!     let requests = ResourceList::from([("cpu".to_owned(), cpu.parse::<Quantity>().unwrap())]);
//!     let resources = Resources { requests, limits: ResourceList::new() };
//!     LaidOutContainer { name: format!("c-{cpu}"), role, resources }
//! }
//! use ContainerRole::*;
//! // A sidecar before a plain init container keeps running while it does.
//! let pod = [container(Sidecar, "500m"), container(Init, "1"), container(Regular, "600m")];
//! assert_eq!(effective_resources(&pod).requests["cpu"].to_string(), "1500m");
//! let pod = [container(Init, "1"), container(Sidecar, "500m"), container(Regular, "600m")];
//! assert_eq!(effective_resources(&pod).requests["cpu"].to_string(), "1100m");
//! ```

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use c8s_sidecar_core::Quantity;
use serde_derive::Serialize;

use crate::layout::{ContainerRole, LaidOutContainer, pod_layout};
use crate::plan::TaskPlan;

/// Quantities by resource name (`cpu`, `memory`, `ephemeral-storage`, ...).
pub type ResourceList = BTreeMap<String, Quantity>;

/// A pod's effective requests and limits, or a sum or peak of several pods'.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct EffectiveResources {
    /// What the scheduler reserves, by resource name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: ResourceList,
    /// The most the pod may use, by resource name. A container without a limit
    /// for a resource adds nothing here (as in Kubernetes' `PodLimits`), so a
    /// pod with such a container is in truth unbounded for that resource.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: ResourceList,
}

impl EffectiveResources {
    /// Resources with these requests and limits.
    pub fn new(requests: ResourceList, limits: ResourceList) -> Self {
        Self { requests, limits }
    }

    /// Adds `other` to `self`, resource by resource (requests and limits).
    pub fn add(&mut self, other: &EffectiveResources) {
        add_resource_list(&mut self.requests, &other.requests);
        add_resource_list(&mut self.limits, &other.limits);
    }

    /// Raises each of `self`'s quantities to `other`'s where that is larger.
    pub fn max_with(&mut self, other: &EffectiveResources) {
        max_resource_list(&mut self.requests, &other.requests);
        max_resource_list(&mut self.limits, &other.limits);
    }
}

/// The effective requests and limits of a pod whose containers, in start
/// order, are `layout` (see [`pod_layout`]).
///
/// A container that sets a limit but no request for a resource requests its
/// limit, as the API server defaults it. Sums saturate at the largest
/// representable quantity (about 1.7·10²⁹ units) rather than wrap.
pub fn effective_resources(layout: &[LaidOutContainer]) -> EffectiveResources {
    EffectiveResources {
        requests: effective_list(layout, requests_of),
        limits: effective_list(layout, |c| c.resources.limits.clone()),
    }
}

/// The effective requests and limits of the pod c8s renders for `plan`,
/// including the containers c8s adds (`git-clone`, inputs, `artifact-helper`).
pub fn plan_effective_resources(plan: &TaskPlan) -> EffectiveResources {
    effective_resources(&pod_layout(plan))
}

/// A container's requests, with every limit that has no request standing in
/// for it.
fn requests_of(container: &LaidOutContainer) -> ResourceList {
    let mut requests = container.resources.requests.clone();
    for (name, limit) in &container.resources.limits {
        requests.entry(name.clone()).or_insert_with(|| limit.clone());
    }
    requests
}

/// The KEP-753 formula over one kind of list (requests or limits).
fn effective_list(
    layout: &[LaidOutContainer],
    list_of: impl Fn(&LaidOutContainer) -> ResourceList,
) -> ResourceList {
    let mut running = ResourceList::new(); // sidecars started so far
    let mut init_peak = ResourceList::new(); // max_i InitUse(i)
    let mut regular = ResourceList::new();
    for container in layout {
        let list = list_of(container);
        match container.role {
            ContainerRole::Init => {
                let mut use_now = running.clone();
                add_resource_list(&mut use_now, &list);
                max_resource_list(&mut init_peak, &use_now);
            }
            ContainerRole::Sidecar => {
                add_resource_list(&mut running, &list);
                max_resource_list(&mut init_peak, &running);
            }
            ContainerRole::Regular => add_resource_list(&mut regular, &list),
        }
    }
    add_resource_list(&mut running, &regular);
    max_resource_list(&mut running, &init_peak);
    canonical_list(running)
}

/// Adds each quantity of `other` to the same resource in `into` (a missing
/// resource counts as zero). Sums saturate instead of overflowing.
pub fn add_resource_list(into: &mut ResourceList, other: &ResourceList) {
    for (name, quantity) in other {
        match into.get_mut(name) {
            Some(existing) => *existing = saturating_add(existing, quantity),
            None => {
                into.insert(name.clone(), canonical(quantity));
            }
        }
    }
}

/// Raises each resource in `into` to its quantity in `other` where that is
/// larger (a missing resource counts as zero).
pub fn max_resource_list(into: &mut ResourceList, other: &ResourceList) {
    for (name, quantity) in other {
        match into.get_mut(name) {
            Some(existing) => {
                if quantity.nanos() > existing.nanos() {
                    *existing = canonical(quantity);
                }
            }
            None => {
                into.insert(name.clone(), canonical(quantity));
            }
        }
    }
}

fn saturating_add(a: &Quantity, b: &Quantity) -> Quantity {
    a.checked_add(b).unwrap_or_else(|| {
        let nanos = if b.is_negative() { i128::MIN } else { i128::MAX };
        Quantity::from_nanos(nanos, a.format())
    })
}

fn canonical(quantity: &Quantity) -> Quantity {
    Quantity::from_nanos(quantity.nanos(), quantity.format())
}

fn canonical_list(list: ResourceList) -> ResourceList {
    list.into_iter().map(|(name, q)| (name, canonical(&q))).collect()
}

/// What a pipeline run needs as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RunResources {
    /// The sum over every step of the run: what it reserves in all.
    pub total: EffectiveResources,
    /// The most the run holds at once if each layer's steps run together and
    /// layers run one after another: per resource, the largest layer sum. The
    /// peaks of two resources may come from different layers.
    pub peak: EffectiveResources,
}

/// The total and peak of a run whose steps, with their effective resources,
/// are grouped in `layers` (steps of one layer run at the same time).
///
/// Takes any nesting of iterables, e.g. `&[Vec<EffectiveResources>]` or
/// `Vec<Vec<&EffectiveResources>>`, so it does not depend on how the layers
/// were computed.
///
/// ```
/// use c8s_pipeline_model::resources::{EffectiveResources, ResourceList, run_resources};
/// let cpu = |text: &str| {
///     let requests = ResourceList::from([("cpu".to_owned(), text.parse().unwrap())]);
///     EffectiveResources::new(requests, ResourceList::new())
/// };
/// let layers = vec![vec![cpu("1")], vec![cpu("2"), cpu("500m")], vec![cpu("1")]];
/// let run = run_resources(&layers);
/// assert_eq!(run.total.requests["cpu"].to_string(), "4500m");
/// assert_eq!(run.peak.requests["cpu"].to_string(), "2500m");
/// ```
pub fn run_resources<'a, L>(layers: impl IntoIterator<Item = L>) -> RunResources
where
    L: IntoIterator<Item = &'a EffectiveResources>,
{
    let mut run = RunResources::default();
    for layer in layers {
        let mut layer_sum = EffectiveResources::default();
        for step in layer {
            layer_sum.add(step);
        }
        run.total.add(&layer_sum);
        run.peak.max_with(&layer_sum);
    }
    run
}

/// One resource over its quota.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuotaExcess {
    /// The resource name (`cpu`, `memory`, ...).
    pub resource: String,
    /// How much was asked for.
    pub requested: Quantity,
    /// How much the quota allows.
    pub allowed: Quantity,
}

impl fmt::Display for QuotaExcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "would exceed {} quota: {} requested, {} allowed",
            self.resource,
            self.requested.canonical(),
            self.allowed.canonical()
        )
    }
}

/// Why a request does not fit a quota.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuotaError {
    /// One or more resources are over their quota; every one is listed, in
    /// resource-name order. Reads like
    /// `would exceed cpu quota: 120 requested, 100 allowed`, several joined by `; `.
    #[error("{}", join_excesses(.0))]
    Exceeded(Vec<QuotaExcess>),
}

fn join_excesses(excesses: &[QuotaExcess]) -> String {
    excesses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Checks `requested` against `quota`. Resources the quota does not name are
/// not limited; resources the request does not name count as zero.
///
/// ```
/// use c8s_pipeline_model::resources::{check_quota, ResourceList};
/// let list = |cpu: &str| ResourceList::from([("cpu".to_owned(), cpu.parse().unwrap())]);
/// let err = check_quota(&list("120"), &list("100")).unwrap_err();
/// assert_eq!(err.to_string(), "would exceed cpu quota: 120 requested, 100 allowed");
/// assert!(check_quota(&list("100"), &list("100")).is_ok());
/// ```
pub fn check_quota(requested: &ResourceList, quota: &ResourceList) -> Result<(), QuotaError> {
    let excesses: Vec<QuotaExcess> = quota
        .iter()
        .filter_map(|(name, allowed)| {
            let asked = requested.get(name)?;
            (asked.nanos().cmp(&allowed.nanos()) == Ordering::Greater).then(|| QuotaExcess {
                resource: name.clone(),
                requested: canonical(asked),
                allowed: canonical(allowed),
            })
        })
        .collect();
    if excesses.is_empty() {
        Ok(())
    } else {
        Err(QuotaError::Exceeded(excesses))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ContainerRole::{Init, Regular, Sidecar};
    use c8s_sidecar_core::Resources;

    fn list(pairs: &[(&str, &str)]) -> ResourceList {
        pairs
            .iter()
            .map(|(name, text)| {
                (
                    (*name).to_owned(),
                    Quantity::parse(text).unwrap_or_else(|_| Quantity::zero()),
                )
            })
            .collect()
    }

    fn container(
        role: ContainerRole,
        requests: &[(&str, &str)],
        limits: &[(&str, &str)],
    ) -> LaidOutContainer {
        let resources = Resources {
            requests: list(requests),
            limits: list(limits),
        };
        LaidOutContainer {
            name: "c".to_owned(),
            role,
            resources,
        }
    }

    fn texts(list: &ResourceList) -> Vec<(String, String)> {
        list.iter().map(|(n, q)| (n.clone(), q.to_string())).collect()
    }

    #[test]
    fn k8s_md_example_in_both_orders() {
        let sidecar = container(Sidecar, &[("cpu", "500m")], &[]);
        let init = container(Init, &[("cpu", "1000m")], &[]);
        let main = container(Regular, &[("cpu", "600m")], &[]);
        let first = effective_resources(&[sidecar.clone(), init.clone(), main.clone()]);
        assert_eq!(first.requests["cpu"].to_string(), "1500m");
        let second = effective_resources(&[init, sidecar, main]);
        assert_eq!(second.requests["cpu"].to_string(), "1100m");
    }

    #[test]
    fn results_are_canonical_and_keep_units() {
        let pod = [
            container(Init, &[("memory", "1024Mi")], &[]),
            container(Regular, &[("cpu", "1000m"), ("memory", "256Mi")], &[]),
        ];
        let effective = effective_resources(&pod);
        assert_eq!(
            texts(&effective.requests),
            [("cpu".into(), "1".into()), ("memory".into(), "1Gi".into())]
        );
    }

    #[test]
    fn a_limit_without_request_is_requested() {
        let pod = [container(
            Regular,
            &[("cpu", "100m")],
            &[("cpu", "1"), ("memory", "512Mi")],
        )];
        let effective = effective_resources(&pod);
        assert_eq!(
            texts(&effective.requests),
            [("cpu".into(), "100m".into()), ("memory".into(), "512Mi".into())]
        );
        assert_eq!(
            texts(&effective.limits),
            [("cpu".into(), "1".into()), ("memory".into(), "512Mi".into())]
        );
    }

    #[test]
    fn overflow_saturates() {
        let huge = "170141183460469231731687303715e0"; // about i128::MAX / 1e9 units
        let pod = [
            container(Regular, &[("cpu", huge)], &[]),
            container(Regular, &[("cpu", huge)], &[]),
        ];
        assert_eq!(effective_resources(&pod).requests["cpu"].nanos(), i128::MAX);
    }

    #[test]
    fn quota_lists_every_excess_in_name_order() {
        let requested = list(&[("cpu", "120"), ("memory", "3Gi"), ("pods", "1")]);
        let quota = list(&[("cpu", "100"), ("memory", "2048Mi"), ("gpu", "1")]);
        let err = check_quota(&requested, &quota).map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err("would exceed cpu quota: 120 requested, 100 allowed; would exceed memory quota: 3Gi requested, 2Gi allowed".to_owned())
        );
    }
}

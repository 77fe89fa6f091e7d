//! The containers of a step's pod, in start order, with their roles and
//! resources. pod-builder renders exactly this layout, and resource arithmetic
//! (the KEP-753 effective request) is computed on it, so the two always agree.
//!
//! Order (<https://kubernetes.io/docs/concepts/workloads/pods/sidecar-containers/>,
//! KEP-753): plain init containers first (`git-clone`, then one
//! `c8s-input-N` per input, then one per step whose results are read, then
//! one per Concourse local var read), then
//! sidecars (native: restartable init containers), then `main`, then
//! `artifact-helper` when there are outputs or results.
//! Plain init containers go before sidecars so they do not add to the
//! sidecars' running sum.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use c8s_sidecar_core::{Quantity, Resources};

use crate::plan::TaskPlan;

/// What a container is for, which decides where it goes in the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContainerRole {
    /// A plain init container: runs to completion before anything after it.
    Init,
    /// A sidecar: starts before `main` and runs beside it.
    Sidecar,
    /// A regular container (`main`, `artifact-helper`).
    Regular,
}

/// One container of the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaidOutContainer {
    /// The container name.
    pub name: String,
    /// Its role.
    pub role: ContainerRole,
    /// Its requests and limits.
    pub resources: Resources,
}

pub use c8s_sidecar_core::contract::{ARTIFACT_HELPER, GIT_CLONE, MAIN, input_container_name};

/// Requests and limits of the containers c8s adds (clone, inputs, artifacts):
/// 50m/64Mi requested, 500m/256Mi at most. Built once per process.
pub fn helper_resources() -> &'static Resources {
    static HELPER: LazyLock<Resources> = LazyLock::new(|| {
        let q = |s: &str| Quantity::parse(s).unwrap_or_else(|_| Quantity::zero());
        Resources {
            requests: BTreeMap::from([("cpu".to_owned(), q("50m")), ("memory".to_owned(), q("64Mi"))]),
            limits: BTreeMap::from([("cpu".to_owned(), q("500m")), ("memory".to_owned(), q("256Mi"))]),
        }
    });
    &HELPER
}

/// The containers of `plan`'s pod in start order.
pub fn pod_layout(plan: &TaskPlan) -> Vec<LaidOutContainer> {
    let helper = |name: String, role| LaidOutContainer {
        name,
        role,
        resources: helper_resources().clone(),
    };
    let mut layout = Vec::new();
    if !plan.skip_checkout {
        layout.push(helper(GIT_CLONE.to_owned(), ContainerRole::Init));
    }
    for index in 0..plan.artifact_inputs().len() {
        layout.push(helper(input_container_name(index), ContainerRole::Init));
    }
    for sidecar in &plan.sidecars {
        layout.push(LaidOutContainer {
            name: sidecar.name.clone(),
            role: ContainerRole::Sidecar,
            resources: sidecar.resources.clone(),
        });
    }
    layout.push(LaidOutContainer {
        name: MAIN.to_owned(),
        role: ContainerRole::Regular,
        resources: plan.resources.clone(),
    });
    if !plan.outputs.is_empty() || !plan.results.is_empty() {
        layout.push(helper(ARTIFACT_HELPER.to_owned(), ContainerRole::Regular));
    }
    layout
}

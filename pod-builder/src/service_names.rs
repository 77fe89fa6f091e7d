//! Service names: each sidecar's name and aliases resolve to 127.0.0.1 in
//! the pod (`hostAliases`, written by the kubelet into every container's
//! `/etc/hosts`), so `postgres:5432` works as in GitLab services and compose.

use c8s_pipeline_model::TaskPlan;
use c8s_sidecar_core::aliases::service_names;
use k8s_openapi::api::core::v1 as core;

/// The loopback address every container of a pod shares.
const LOOPBACK: &str = "127.0.0.1";

/// One `hostAliases` entry for every sidecar name and alias, in declaration
/// order; `None` without sidecars.
pub(crate) fn host_aliases(plan: &TaskPlan) -> Option<Vec<core::HostAlias>> {
    let mut hostnames: Vec<String> = Vec::new();
    for name in plan.sidecars.iter().flat_map(service_names) {
        if !hostnames.iter().any(|h| h == name) {
            hostnames.push(name.to_owned());
        }
    }
    (!hostnames.is_empty()).then(|| {
        vec![core::HostAlias {
            ip: LOOPBACK.to_owned(),
            hostnames: Some(hostnames),
        }]
    })
}

//! The Secret values `c8s` masks in logs (`c8s run`, and a run followed in
//! the cluster): which Secret keys the plans reference, and their values as
//! the cluster holds them.

use c8s_pipeline_model::TaskPlan;
use c8s_pipeline_model::sidecar::SecretKeyRef;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

/// Every Secret key the plans (and their sidecars) reference.
pub fn referenced_secrets(plans: &[TaskPlan]) -> Vec<SecretKeyRef> {
    let mut refs: Vec<SecretKeyRef> = plans
        .iter()
        .flat_map(|p| p.env.iter().chain(p.sidecars.iter().flat_map(|s| s.env.iter())))
        .filter_map(|env| env.secret_key_ref.clone())
        .collect();
    refs.sort();
    refs.dedup();
    refs
}

/// The values to mask of `refs` in `namespace`, each named `Secret <name>,
/// key <key>`; an error when any of the Secrets cannot be read (a key it
/// does not hold has no value to mask).
pub async fn read_secret_values(
    client: &Client,
    namespace: &str,
    refs: &[SecretKeyRef],
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut values = Vec::new();
    for r in refs {
        let secret = api
            .get(&r.name)
            .await
            .map_err(|e| format!("cannot read Secret {:?} to mask its values: {e}", r.name))?;
        if let Some(value) = secret.data.as_ref().and_then(|d| d.get(&r.key)) {
            values.push((format!("Secret {}, key {}", r.name, r.key), value.0.clone()));
        }
    }
    Ok(values)
}

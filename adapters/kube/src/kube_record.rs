//! The run record on a real cluster: a ConfigMap `c8s-run-<run id>` labelled
//! with the run, one data entry per step. Entries are set with a JSON merge
//! patch (no resourceVersion, so concurrent writers never conflict; RFC 7386).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};

use crate::cluster::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, RUN_LABEL};
use crate::error::Result;
use crate::hash::fnv1a;
use crate::kube_api::from_kube;

/// The record's ConfigMap name: a DNS subdomain made from the run id (a label
/// value); an id that had to change gets a hash of itself.
pub(crate) fn record_name(run_id: &str) -> String {
    let clean: String = run_id
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '.' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    let clean = clean.trim_matches(|c| c == '-' || c == '.');
    if clean == run_id {
        format!("c8s-run-{clean}")
    } else {
        format!(
            "c8s-run-{clean}-{:08x}",
            fnv1a(0, &[run_id.as_bytes()]) & 0xffff_ffff
        )
    }
}

fn config_map(run_id: &str, entries: &BTreeMap<String, String>) -> ConfigMap {
    let labels = [
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (RUN_LABEL.to_owned(), run_id.to_owned()),
    ];
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(record_name(run_id)),
            labels: Some(labels.into()),
            ..ObjectMeta::default()
        },
        data: Some(entries.clone()),
        ..ConfigMap::default()
    }
}

pub(crate) async fn create(
    api: &Api<ConfigMap>,
    run_id: &str,
    entries: &BTreeMap<String, String>,
) -> Result<bool> {
    let name = record_name(run_id);
    match api
        .create(&PostParams::default(), &config_map(run_id, entries))
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(from_kube("create configmap", &name, e)),
    }
}

pub(crate) async fn load(api: &Api<ConfigMap>, run_id: &str) -> Result<Option<BTreeMap<String, String>>> {
    let name = record_name(run_id);
    match api.get_opt(&name).await {
        Ok(found) => Ok(found.map(|c| c.data.unwrap_or_default())),
        Err(e) => Err(from_kube("get configmap", &name, e)),
    }
}

pub(crate) async fn save(
    api: &Api<ConfigMap>,
    run_id: &str,
    entries: &BTreeMap<String, String>,
) -> Result<()> {
    let name = record_name(run_id);
    let patch = serde_json::json!({ "data": entries });
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        // Gone (deleted by hand): set it up again with these entries.
        Err(kube::Error::Api(status)) if status.code == 404 => create(api, run_id, entries).await.map(|_| ()),
        Err(e) => Err(from_kube("patch configmap", &name, e)),
    }
}

pub(crate) async fn delete(api: &Api<ConfigMap>, run_id: &str) -> Result<()> {
    let name = record_name(run_id);
    match api.delete(&name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(from_kube("delete configmap", &name, e)),
    }
}

/// Every run record: the ConfigMaps c8s manages whose name is the record
/// name of their `c8s.dev/run` label.
pub(crate) async fn list(api: &Api<ConfigMap>) -> Result<Vec<crate::cluster::ListedRecord>> {
    let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{RUN_LABEL}");
    let params = kube::api::ListParams::default().labels(&selector);
    let listed = api
        .list_metadata(&params)
        .await
        .map_err(|e| from_kube("list configmaps", &selector, e))?;
    let records = listed.items.into_iter().filter_map(|meta| {
        let meta = meta.metadata;
        let run = meta.labels?.remove(RUN_LABEL)?;
        (meta.name.as_deref() == Some(record_name(&run).as_str()))
            .then(|| crate::cluster::ListedRecord::new(run, meta.creation_timestamp.map(|t| t.0)))
    });
    Ok(records.collect())
}

#[cfg(test)]
mod tests {
    use super::record_name;

    #[test]
    fn record_names_are_dns_subdomains() {
        assert_eq!(record_name("orders-b42"), "c8s-run-orders-b42");
        let odd = record_name("Orders_B42");
        assert!(odd.starts_with("c8s-run-orders-b42-"), "{odd}");
        assert_ne!(odd, record_name("orders_b42"));
    }
}

//! Pod overrides on a rendered pod: the plan's (pipeline, then step) under
//! the run context's, then `podSpecPatch`. The result is validated by the
//! caller exactly like any other pod.

use c8s_pipeline_model::TaskPlan;
use k8s_openapi::api::core::v1 as core;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::RunContext;
use crate::error::Error;
use crate::spec_patch::patched;

/// The Kubernetes type with the same JSON shape as a model type.
fn convert<T: DeserializeOwned>(field: &str, value: &impl Serialize) -> Result<T, Error> {
    let invalid = |e: serde_json::Error| Error::InvalidOverride {
        field: field.to_owned(),
        reason: e.to_string(),
    };
    serde_json::from_value(serde_json::to_value(value).map_err(invalid)?).map_err(invalid)
}

fn push_new<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Applies the plan's and the context's overrides to `spec` (their labels
/// and annotations are the pod identity's).
pub(crate) fn apply(plan: &TaskPlan, ctx: &RunContext, spec: &mut core::PodSpec) -> Result<(), Error> {
    let pod = &plan.pod;
    let mut node_selector = pod.node_selector.clone();
    node_selector.extend(ctx.pod.node_selector.clone());
    spec.node_selector = (!node_selector.is_empty()).then_some(node_selector);

    let mut tolerations: Vec<core::Toleration> = Vec::new();
    for (i, t) in pod.tolerations.iter().enumerate() {
        push_new(&mut tolerations, convert(&format!("tolerations[{i}]"), t)?);
    }
    for t in &ctx.pod.tolerations {
        push_new(&mut tolerations, t.clone());
    }
    spec.tolerations = (!tolerations.is_empty()).then_some(tolerations);

    spec.affinity = match (&ctx.pod.affinity, &pod.affinity) {
        (Some(affinity), _) => Some(affinity.clone()),
        (None, Some(affinity)) => Some(convert("affinity", affinity)?),
        (None, None) => None,
    };

    // The task's registry credentials (Concourse), then the overrides'.
    let mut pull_secrets: Vec<String> = plan.image_pull_secrets.clone();
    for s in pod.image_pull_secrets.iter().chain(&ctx.pod.image_pull_secrets) {
        push_new(&mut pull_secrets, s.clone());
    }
    spec.image_pull_secrets = (!pull_secrets.is_empty()).then(|| {
        pull_secrets
            .into_iter()
            .map(|name| core::LocalObjectReference { name })
            .collect()
    });

    let account = ctx
        .pod
        .service_account_name
        .clone()
        .or_else(|| pod.service_account_name.clone());
    // No account: no token either; a named account is there to reach the API.
    spec.automount_service_account_token = account.is_none().then_some(false);
    spec.service_account_name = account;
    spec.runtime_class_name = ctx
        .pod
        .runtime_class_name
        .clone()
        .or_else(|| pod.runtime_class_name.clone());
    spec.priority_class_name = ctx
        .pod
        .priority_class_name
        .clone()
        .or_else(|| pod.priority_class_name.clone());

    for patch in [&pod.pod_spec_patch, &ctx.pod.pod_spec_patch]
        .into_iter()
        .flatten()
    {
        *spec = patched(spec, patch)?;
    }
    Ok(())
}

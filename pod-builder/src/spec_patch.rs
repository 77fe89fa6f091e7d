//! `podSpecPatch`: a JSON merge patch (RFC 7386) over the rendered PodSpec,
//! for the fields c8s does not model. The PodSpec goes to JSON and back, so
//! this is where the crate compiles k8s-openapi's deserializers for every
//! PodSpec field; behind the default feature `pod-spec-patch`, which a
//! program that builds plans in code can leave out (it sets those fields on
//! the rendered Pod instead).

use k8s_openapi::api::core::v1 as core;

use crate::error::Error;

#[cfg(feature = "pod-spec-patch")]
use c8s_pipeline_model::pod::patch;

#[cfg(feature = "pod-spec-patch")]
/// `spec` with `patch` applied; a field the PodSpec does not have (a typo,
/// a field of a newer Kubernetes) is an error, never silently dropped.
pub(crate) fn patched(spec: &core::PodSpec, patch: &serde_json::Value) -> Result<core::PodSpec, Error> {
    let invalid = |path: String, reason: String| Error::InvalidOverride {
        field: format!("podSpecPatch: {path}"),
        reason,
    };
    if !patch.is_object() {
        return Err(invalid(
            String::new(),
            "must be a mapping of PodSpec fields".to_owned(),
        ));
    }
    let mut value = serde_json::to_value(spec).map_err(|e| invalid(String::new(), e.to_string()))?;
    patch::apply(&mut value, patch);
    let result: core::PodSpec =
        serde_json::from_value(value.clone()).map_err(|e| invalid("spec".to_owned(), e.to_string()))?;
    let back = serde_json::to_value(&result).map_err(|e| invalid(String::new(), e.to_string()))?;
    if let Some(path) = first_lost(&value, &back, "spec") {
        return Err(invalid(path, "unknown field".to_owned()));
    }
    Ok(result)
}

#[cfg(feature = "pod-spec-patch")]
/// The first field path present in `wanted` but missing from `got`.
fn first_lost(wanted: &serde_json::Value, got: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    match (wanted, got) {
        (Value::Object(w), Value::Object(g)) => w.iter().find_map(|(k, v)| match g.get(k) {
            Some(gv) => first_lost(v, gv, &format!("{path}.{k}")),
            None if v.is_null() => None,
            None => Some(format!("{path}.{k}")),
        }),
        (Value::Array(w), Value::Array(g)) => w
            .iter()
            .zip(g)
            .enumerate()
            .find_map(|(i, (wv, gv))| first_lost(wv, gv, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// Without the feature a patch is refused, never dropped: the pod would not
/// be the one asked for.
#[cfg(not(feature = "pod-spec-patch"))]
pub(crate) fn patched(_spec: &core::PodSpec, _patch: &serde_json::Value) -> Result<core::PodSpec, Error> {
    Err(Error::InvalidOverride {
        field: "podSpecPatch".to_owned(),
        reason: "c8s-pod-builder was built without its `pod-spec-patch` feature; \
                 set the field on the rendered Pod instead"
            .to_owned(),
    })
}

#[cfg(test)]
#[cfg(not(feature = "pod-spec-patch"))]
mod tests {
    use crate::prelude::*;

    #[test]
    fn without_the_feature_a_patch_is_refused_not_dropped() {
        let plan = TaskPlan::for_step("shop", "unit", "golang:1.23");
        let ctx = RunContext::new("run-1", 1).with_pod_spec_patch(serde_json::json!({ "hostname": "x" }));
        let error = render_pod(&plan, &ctx).expect_err("a patch it cannot apply");
        assert!(
            matches!(&error, Error::InvalidOverride { field, .. } if field == "podSpecPatch"),
            "{error:?}"
        );
        assert!(render_pod(&plan, &RunContext::new("run-1", 1)).is_ok());
    }
}

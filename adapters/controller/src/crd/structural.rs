//! Makes the schemas schemars derives *structural*, as the API server requires
//! of a CRD (<https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema>):
//! every node has a `type` unless it says `x-kubernetes-int-or-string` or
//! `x-kubernetes-preserve-unknown-fields`, and `anyOf`/`oneOf` never carry
//! types. Our model has three values that are not one JSON type: a quantity
//! (`500m` or `2`), a port (number or name), readiness (`none` or a probe).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

/// `crd` with every version's schema rewritten to be structural: a node that
/// is a number or a string becomes `x-kubernetes-int-or-string` (the
/// convention of Kubernetes' own `Quantity`), any other union keeps its
/// description and `x-kubernetes-preserve-unknown-fields` (c8s validates
/// it), and `additionalProperties: false` is dropped (the API server prunes
/// unknown fields instead).
pub fn make_structural(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            rewrite(schema);
        }
    }
    crd
}

fn rewrite(node: &mut JSONSchemaProps) {
    let union = node
        .any_of
        .take()
        .into_iter()
        .chain(node.one_of.take())
        .flatten()
        .collect::<Vec<_>>();
    if !union.is_empty() {
        let types: Vec<&str> = union.iter().filter_map(|b| b.type_.as_deref()).collect();
        let scalar = types.len() == union.len()
            && types
                .iter()
                .all(|t| matches!(*t, "integer" | "number" | "string"));
        let nullable = union.iter().any(|b| b.nullable == Some(true)) || node.nullable == Some(true);
        if union.len() == 1 {
            let mut only = union.into_iter().next().unwrap_or_default();
            only.description = node.description.take().or(only.description);
            *node = only;
        } else if scalar {
            node.type_ = None;
            node.x_kubernetes_int_or_string = Some(true);
        } else {
            node.type_ = None;
            node.x_kubernetes_preserve_unknown_fields = Some(true);
        }
        if nullable {
            node.nullable = Some(true);
        }
    }
    if matches!(
        node.additional_properties,
        Some(JSONSchemaPropsOrBool::Bool(false))
    ) {
        node.additional_properties = None;
    }
    // A union kube's derive already collapsed leaves a node without a type.
    let escaped = node.x_kubernetes_int_or_string == Some(true)
        || node.x_kubernetes_preserve_unknown_fields == Some(true);
    if node.type_.is_none() && !escaped {
        node.x_kubernetes_preserve_unknown_fields = Some(true);
    }
    for child in node.properties.iter_mut().flat_map(|p| p.values_mut()) {
        rewrite(child);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(child)) = node.additional_properties.as_mut() {
        rewrite(child);
    }
    match node.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(child)) => rewrite(child),
        Some(JSONSchemaPropsOrArray::Schemas(children)) => children.iter_mut().for_each(rewrite),
        None => {}
    }
}

/// Every place where `crd`'s schemas are not structural, as JSON-pointer-ish
/// paths with the rule broken; empty when structural.
pub fn structural_violations(crd: &CustomResourceDefinition) -> Vec<String> {
    let mut found = Vec::new();
    for version in &crd.spec.versions {
        match version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
        {
            Some(schema) => check(
                schema,
                &format!("{}/{}", crd.spec.names.kind, version.name),
                &mut found,
            ),
            None => found.push(format!("{}: no schema", version.name)),
        }
    }
    found
}

fn check(node: &JSONSchemaProps, path: &str, found: &mut Vec<String>) {
    let escaped = node.x_kubernetes_int_or_string == Some(true)
        || node.x_kubernetes_preserve_unknown_fields == Some(true);
    if node.type_.as_deref().is_none_or(str::is_empty) && !escaped {
        found.push(format!("{path}: no type"));
    }
    if node.type_.as_deref() == Some("object")
        && node.properties.is_none()
        && node.additional_properties.is_none()
        && !escaped
    {
        found.push(format!(
            "{path}: object without properties or additionalProperties"
        ));
    }
    for (name, union) in [
        ("anyOf", &node.any_of),
        ("oneOf", &node.one_of),
        ("allOf", &node.all_of),
    ] {
        for branch in union.iter().flatten() {
            if branch.type_.is_some() && node.x_kubernetes_int_or_string != Some(true) {
                found.push(format!("{path}: {name} branch with a type"));
            }
        }
    }
    if node.ref_path.is_some() {
        found.push(format!("{path}: $ref"));
    }
    if matches!(
        node.additional_properties,
        Some(JSONSchemaPropsOrBool::Bool(false))
    ) {
        found.push(format!("{path}: additionalProperties: false"));
    }
    for (name, child) in node.properties.iter().flatten() {
        check(child, &format!("{path}.{name}"), found);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(child)) = &node.additional_properties {
        check(child, &format!("{path}.*"), found);
    }
    match &node.items {
        Some(JSONSchemaPropsOrArray::Schema(child)) => check(child, &format!("{path}[]"), found),
        Some(JSONSchemaPropsOrArray::Schemas(children)) => {
            for child in children {
                check(child, &format!("{path}[]"), found);
            }
        }
        None if node.type_.as_deref() == Some("array") => found.push(format!("{path}: array without items")),
        None => {}
    }
}

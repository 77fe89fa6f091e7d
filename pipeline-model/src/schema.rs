//! JSON Schemas of the file formats, for editors (`c8s schema pipeline|task|sidecars`,
//! named with the YAML language server's `# yaml-language-server: $schema=`).
//!
//! Each schema is derived from the model types (schemars), then adjusted where
//! the reader accepts more than the types' serde form says, so that no file
//! c8s reads is flagged by an editor:
//! - YAML scalars: a string field takes any scalar (`tag: 1.20` stays `"1.20"`,
//!   `value: 1` is `"1"`), a whole-number field also takes the number quoted.
//! - `.c8s.yaml`: unknown fields are errors (the reader is strict), and the
//!   fields c8s fills in (`loadedSidecars`) are not part of the file.
//! - Concourse task configs are read as Concourse reads them (`atc/task.go`):
//!   a field left empty (`FOO:`) is null, numbers and flags may be quoted, a
//!   `((var))` may stand for any scalar, and `params` values may be lists or
//!   mappings (passed on as JSON).

use serde_json::{Map, Value, json};

use crate::pipeline::Pipeline;
use crate::task::TaskConfig;

/// The JSON Schema (draft 2020-12) of a `.c8s.yaml` pipeline.
pub fn pipeline_file_schema() -> Value {
    let mut schema = schemars::schema_for!(Pipeline).to_value();
    if let Some(defs) = schema.get_mut("$defs").and_then(Value::as_object_mut)
        && let Some(step) = defs.get_mut("Step").and_then(Value::as_object_mut)
    {
        if let Some(props) = step.get_mut("properties").and_then(Value::as_object_mut) {
            props.remove("loadedSidecars");
        }
        step.insert("additionalProperties".to_owned(), Value::Bool(false));
    }
    if let Some(root) = schema.as_object_mut() {
        root.insert("additionalProperties".to_owned(), Value::Bool(false));
    }
    yaml_scalars(&mut schema);
    titled(
        schema,
        "c8s pipeline",
        "A .c8s.yaml pipeline: steps (container images and commands) arranged as a DAG, optionally once per matrix combination.",
    )
}

/// The JSON Schema (draft 2020-12) of a sidecar file: a list of sidecars.
pub fn sidecar_file_schema() -> Value {
    let mut schema = c8s_sidecar_core::sidecar_file_schema();
    yaml_scalars(&mut schema);
    schema
}

/// The JSON Schema (draft 2020-12) of a Concourse task config with c8s's
/// inline `sidecars`.
pub fn task_file_schema() -> Value {
    let mut schema = schemars::schema_for!(TaskConfig).to_value();
    let sidecar_defs = sidecar_definitions();
    if let Some(defs) = schema.get_mut("$defs").and_then(Value::as_object_mut) {
        for (name, def) in defs.iter_mut() {
            if sidecar_defs.contains(name) {
                yaml_scalars(def);
            } else {
                concourse_scalars(def);
            }
        }
    }
    if let Some(properties) = schema.get_mut("properties") {
        concourse_scalars(properties);
    }
    titled(
        schema,
        "c8s task config",
        "A Concourse task config (platform, image_resource, inputs, outputs, params, run), plus c8s's inline sidecars.",
    )
}

fn titled(mut schema: Value, title: &str, description: &str) -> Value {
    if let Some(root) = schema.as_object_mut() {
        root.insert("title".to_owned(), title.into());
        root.insert("description".to_owned(), description.into());
    }
    schema
}

/// The `$defs` the sidecar file schema has (read by serde, not Concourse's rules).
fn sidecar_definitions() -> Vec<String> {
    let sidecars = c8s_sidecar_core::sidecar_file_schema();
    sidecars
        .get("$defs")
        .and_then(Value::as_object)
        .map(|defs| defs.keys().cloned().collect())
        .unwrap_or_default()
}

/// A whole number as YAML may quote it.
const QUOTED_INTEGER: &str = r"^[+-]?[0-9]+$";
/// A Concourse `((var))`, interpolated before the config is read.
const VAR: &str = r"^\(\(.+\)\)$";

/// Visits every subschema (an object with a `type`) below `schema`.
fn walk(schema: &mut Value, visit: &mut dyn FnMut(&mut Map<String, Value>)) {
    match schema {
        Value::Object(map) => {
            for value in map.values_mut() {
                walk(value, visit);
            }
            if map.contains_key("type") {
                visit(map);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| walk(v, visit)),
        _ => {}
    }
}

/// The `type` of a subschema as a list of names.
fn types(map: &Map<String, Value>) -> Vec<String> {
    match map.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// A free-form string field accepts every scalar (its text is kept); an
/// integer field accepts the number quoted.
fn yaml_scalars(schema: &mut Value) {
    walk(schema, &mut |map| {
        let types = types(map);
        let constrained = ["enum", "const", "pattern", "format"]
            .iter()
            .any(|k| map.contains_key(*k));
        if types.iter().any(|t| t == "string") && !constrained {
            let mut widened = types.clone();
            widened.extend(["number".to_owned(), "boolean".to_owned()]);
            widened.dedup();
            map.insert("type".to_owned(), json!(widened));
        } else if types.iter().any(|t| t == "integer") {
            either(map, json!({ "type": "string", "pattern": QUOTED_INTEGER }));
        }
    });
}

/// `map` or `alternative`: the subschema becomes an `anyOf` of both.
fn either(map: &mut Map<String, Value>, alternative: Value) {
    let description = map.remove("description");
    let original = Value::Object(std::mem::take(map));
    map.insert("anyOf".to_owned(), json!([original, alternative]));
    if let Some(description) = description {
        map.insert("description".to_owned(), description);
    }
}

/// Concourse's reader: any scalar or null where a string goes, quoted
/// numbers and flags, `((var))` for any scalar, null for an empty list or mapping.
fn concourse_scalars(schema: &mut Value) {
    walk(schema, &mut |map| {
        let types = types(map);
        if types.iter().any(|t| t == "string") && !map.contains_key("enum") && !map.contains_key("const") {
            map.insert("type".to_owned(), json!(["string", "number", "boolean", "null"]));
        } else if types.iter().any(|t| t == "integer") {
            either(
                map,
                json!({ "type": ["string", "null"], "anyOf": [{ "pattern": QUOTED_INTEGER }, { "pattern": VAR }] }),
            );
        } else if types.iter().any(|t| t == "boolean") {
            either(
                map,
                json!({ "anyOf": [{ "enum": ["true", "false", null] }, { "type": "string", "pattern": VAR }] }),
            );
        } else if types.iter().any(|t| t == "array" || t == "object") && !types.iter().any(|t| t == "null") {
            let mut widened = types.clone();
            widened.push("null".to_owned());
            map.insert("type".to_owned(), json!(widened));
        }
    });
}

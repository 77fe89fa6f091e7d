//! Applying `podSpecPatch`: a JSON merge patch (RFC 7386: objects merge,
//! `null` deletes, anything else replaces) with one strategic-merge rule,
//! as `kubectl patch --type strategic` has it for pods: lists whose items all
//! carry a `name` (containers, initContainers, volumes, env, volumeMounts,
//! imagePullSecrets) merge item by item by `name`, new names are appended, and
//! `{name: x, $patch: delete}` removes item `x`.

use serde_json::{Map, Value};

/// The strategic-merge directive key.
const DIRECTIVE: &str = "$patch";

/// The `name` of a list item, if it is an object with a string `name`.
pub fn name_of(item: &Value) -> Option<&str> {
    item.get("name").and_then(Value::as_str)
}

/// Whether every item of a non-empty list has a `name`.
pub fn is_named_list(items: &[Value]) -> bool {
    !items.is_empty() && items.iter().all(|i| name_of(i).is_some())
}

/// Applies `patch` to `target` in place.
///
/// ```
/// use serde_json::json;
/// let mut spec = json!({"containers": [{"name": "main", "image": "a"}, {"name": "db", "image": "b"}]});
/// let patch = json!({"containers": [{"name": "main", "image": "c"}, {"name": "db", "$patch": "delete"}],
///                    "hostNetwork": null, "dnsPolicy": "Default"});
/// c8s_pipeline_model::pod::patch::apply(&mut spec, &patch);
/// assert_eq!(spec, json!({"containers": [{"name": "main", "image": "c"}], "dnsPolicy": "Default"}));
/// ```
pub fn apply(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(existing) = target {
                for (key, value) in fields {
                    if value.is_null() {
                        existing.remove(key);
                    } else {
                        apply(existing.entry(key.clone()).or_insert(Value::Null), value);
                    }
                }
            }
        }
        Value::Array(items)
            if is_named_list(items) && target.as_array().is_some_and(|t| is_named_list(t)) =>
        {
            if let Value::Array(existing) = target {
                for item in items {
                    let delete = item.get(DIRECTIVE).and_then(Value::as_str) == Some("delete");
                    let at = existing.iter().position(|e| name_of(e) == name_of(item));
                    match (at, delete) {
                        (Some(i), true) => {
                            existing.remove(i);
                        }
                        (Some(i), false) => apply(&mut existing[i], item),
                        (None, true) => {}
                        (None, false) => existing.push(without_nulls(item)),
                    }
                }
            }
        }
        other => *target = without_nulls(other),
    }
}

/// A new value from a patch: `null` members mean nothing there.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(k, v)| !v.is_null() && k.as_str() != DIRECTIVE)
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

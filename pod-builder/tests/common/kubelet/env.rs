//! A container's environment as the kubelet builds it: `env` in list order,
//! each value expanded against the variables defined before it, then command
//! and args expanded against the whole list (kubelet `makeEnvironmentVariables`
//! and `ExpandContainerCommandAndArgs`, pkg/kubelet/kubelet_pods.go).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};

/// The kubelet's `$(VAR)` expansion (third_party/forked/golang/expansion):
/// `$$` becomes `$`, `$(NAME)` the value of NAME when defined and stays as
/// written when not, every other `$` is kept.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::new();
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match rest.as_bytes()[0] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest.find(')') {
                    Some(close) => {
                        let name = &rest[1..close];
                        match lookup(name) {
                            Some(value) => out.push_str(&value),
                            None => out.push_str(&format!("$({name})")),
                        }
                        close + 1
                    }
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                _ => {
                    // The operator and the next character are copied as they are.
                    let next = rest.chars().next().map_or(1, char::len_utf8);
                    out.push('$');
                    out.push_str(&rest[..next]);
                    next
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.push_str(&input[checkpoint.min(input.len())..]);
    out
}

/// Where `valueFrom` values come from: secrets given by the test, the pod's
/// own fields for `fieldRef`.
pub struct EnvSources<'a> {
    pub pod: &'a Pod,
    pub secrets: &'a BTreeMap<(String, String), String>,
}

/// Why a container cannot start (the kubelet's `CreateContainerConfigError`).
pub type ConfigError = String;

impl EnvSources<'_> {
    fn value_from(&self, var: &EnvVar) -> Result<Option<String>, ConfigError> {
        let Some(from) = &var.value_from else {
            return Ok(None);
        };
        if let Some(key) = &from.secret_key_ref {
            let found = self.secrets.get(&(key.name.clone(), key.key.clone())).cloned();
            return match found {
                Some(value) => Ok(Some(value)),
                None if key.optional == Some(true) => Ok(None),
                None => Err(format!("secret {:?} key {:?} not found", key.name, key.key)),
            };
        }
        if let Some(field) = &from.field_ref {
            let meta = &self.pod.metadata;
            let value = match field.field_path.as_str() {
                "metadata.name" => meta.name.clone(),
                "metadata.namespace" => meta.namespace.clone().or(Some("default".into())),
                "metadata.uid" => Some("00000000-0000-0000-0000-000000000000".into()),
                "spec.nodeName" => Some("runtime-check".into()),
                "status.podIP" | "status.hostIP" => Some("127.0.0.1".into()),
                path => {
                    let (map, key) = if let Some(k) = path.strip_prefix("metadata.labels['") {
                        (&meta.labels, k)
                    } else if let Some(k) = path.strip_prefix("metadata.annotations['") {
                        (&meta.annotations, k)
                    } else {
                        return Err(format!("fieldRef {path} is not imitated"));
                    };
                    let key = key.trim_end_matches("']");
                    map.as_ref().and_then(|m| m.get(key)).cloned()
                }
            };
            return Ok(value);
        }
        Err(format!(
            "env {}: only secretKeyRef and fieldRef are imitated",
            var.name
        ))
    }

    /// The container's env list after expansion, in order (a later duplicate
    /// replaces an earlier one, as in the kubelet).
    pub fn environment(&self, container: &Container) -> Result<Vec<(String, String)>, ConfigError> {
        let mut list: Vec<(String, String)> = Vec::new();
        for var in container.env.iter().flatten() {
            let value = if var.value_from.is_some() {
                match self.value_from(var)? {
                    Some(v) => v,
                    None => continue,
                }
            } else {
                let defined = list.clone();
                let lookup = move |name: &str| {
                    defined
                        .iter()
                        .rev()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                };
                expand(var.value.as_deref().unwrap_or(""), &lookup)
            };
            list.retain(|(n, _)| n != &var.name);
            list.push((var.name.clone(), value));
        }
        Ok(list)
    }
}

/// Command and args expanded against the final environment.
pub fn expand_all(words: &[String], env: &[(String, String)]) -> Vec<String> {
    let lookup = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    words.iter().map(|w| expand(w, &lookup)).collect()
}

#[test]
fn expansion_follows_the_kubelet() {
    let lookup = |name: &str| (name == "A").then(|| "x".to_string());
    assert_eq!(expand("pid $$", &lookup), "pid $");
    assert_eq!(expand("$(A)-$(B)", &lookup), "x-$(B)");
    assert_eq!(expand("$$(A)", &lookup), "$(A)");
    assert_eq!(expand("$HOME $(A", &lookup), "$HOME $(A");
    assert_eq!(expand("end$", &lookup), "end$");
}

//! Rules shared by every container c8s validates — a sidecar, a pipeline step,
//! a plan built in code — written once so that each gives the same answer.

use std::collections::BTreeMap;

use crate::error::Problem;
use crate::finding::{MAX_INT32, Rule, Sink};
use crate::names;
use crate::path::FieldPath;
use crate::types::{EnvVar, Resources};

/// Env names (the strict pre-1.34 rule), one source per var, Secret
/// references, and no name twice; `at` is the path of the `env` list.
pub fn env_list<P: Rule>(env: &[EnvVar], at: &FieldPath, sink: &mut Sink<'_, P>) {
    let mut env_names: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, var) in env.iter().enumerate() {
        let here = at.index(i);
        if let Err(reason) = names::env_var_name(&var.name) {
            let value = var.name.clone();
            sink.problem(here.key("name"), Problem::InvalidEnvName { value, reason });
        }
        if var.value.is_some() && var.secret_key_ref.is_some() {
            sink.problem(here.clone(), Problem::ValueAndSecret);
        }
        if let Some(secret) = &var.secret_key_ref {
            let there = here.key("secretKeyRef");
            if let Err(reason) = names::dns1123_subdomain(&secret.name) {
                let value = secret.name.clone();
                sink.problem(there.key("name"), Problem::InvalidSecretName { value, reason });
            }
            if let Err(reason) = names::config_key(&secret.key) {
                let value = secret.key.clone();
                sink.problem(there.key("key"), Problem::InvalidSecretKey { value, reason });
            }
        }
        if let Some(&first) = env_names.get(var.name.as_str()) {
            sink.duplicate(
                here.key("name"),
                "env var",
                &var.name,
                at.index(first).key("name"),
            );
        } else {
            env_names.insert(&var.name, i);
        }
    }
}

/// Resource names, no negative quantity, no request above its limit; `at` is
/// the path of the `resources` map.
pub fn resources<P: Rule>(resources: &Resources, at: &FieldPath, sink: &mut Sink<'_, P>) {
    for (section, list) in [("requests", &resources.requests), ("limits", &resources.limits)] {
        for (name, quantity) in list {
            let here = at.key(section).key(name);
            if !names::resource_name(name) {
                sink.problem(here.clone(), Problem::InvalidResourceName { value: name.clone() });
            }
            if quantity.is_negative() {
                let (resource, value) = (name.clone(), quantity.to_string());
                sink.problem(here, Problem::NegativeQuantity { resource, value });
            }
        }
    }
    for (name, request) in &resources.requests {
        if let Some(limit) = resources.limits.get(name)
            && request.nanos() > limit.nanos()
        {
            sink.problem(
                at.key("requests").key(name),
                Problem::RequestExceedsLimit {
                    resource: name.clone(),
                    request: request.to_string(),
                    limit: limit.to_string(),
                },
            );
        }
    }
}

/// `runAsUser`: UID 0 only with `runAsRoot` (Pod Security restricted forbids
/// it otherwise), never negative; `at` is the path of `runAsUser`.
pub fn run_as_user<P: Rule>(uid: Option<i64>, run_as_root: bool, at: &FieldPath, sink: &mut Sink<'_, P>) {
    match uid {
        Some(0) if !run_as_root => sink.problem(at.clone(), Problem::RootUser { uid: 0 }),
        Some(uid) if uid < 0 => sink.problem(at.clone(), Problem::NotPositive { value: uid }),
        // The API server takes UIDs in 0..=2^31-1 (`ValidateSecurityContext`).
        Some(uid) if uid > MAX_INT32 => sink.problem(
            at.clone(),
            Problem::TooLarge {
                value: uid,
                max: MAX_INT32,
            },
        ),
        _ => {}
    }
}

//! What Concourse steps add to a pod: `imagePullSecrets` for registry
//! credentials, `privileged` for `privileged: true`, and optional inputs
//! that may be absent.

use c8s_pipeline_model::TaskPlan;
use k8s_openapi::api::core::v1 as core;

/// `c8s-input-N` for an optional input: a missing artifact leaves the
/// directory empty instead of failing the pod (Concourse `optional: true`).
pub const EXTRACT_OPTIONAL_INPUT: &str = r#"if [ ! -f "/artifacts/$1" ]; then echo "c8s: optional input $1 absent"; exit 0; fi
mkdir -p "/workspace/$2"
tar -xf "/artifacts/$1" -C "/workspace/$2"
echo "c8s: unpacked $1 into $2"
"#;

/// Applies the plan's Concourse settings to a rendered pod spec.
pub fn apply(plan: &TaskPlan, spec: &mut core::PodSpec) {
    if !plan.image_pull_secrets.is_empty() {
        spec.image_pull_secrets = Some(
            plan.image_pull_secrets
                .iter()
                .map(|name| core::LocalObjectReference { name: name.clone() })
                .collect(),
        );
    }
    if plan.privileged {
        for container in &mut spec.containers {
            if container.name == c8s_pipeline_model::layout::MAIN {
                // Privileged needs root and escalation (the Pod Security "privileged" level).
                container.security_context = Some(core::SecurityContext {
                    privileged: Some(true),
                    allow_privilege_escalation: Some(true),
                    run_as_user: Some(0),
                    run_as_non_root: Some(false),
                    ..Default::default()
                });
            }
        }
    }
    let optional = plan.inputs.iter().enumerate().filter(|(_, input)| input.optional);
    for (index, _) in optional {
        let name = c8s_pipeline_model::layout::input_container_name(index);
        let containers = spec.init_containers.iter_mut().flatten();
        for container in containers.filter(|c| c.name == name) {
            if let Some(command) = container.command.as_mut()
                && command.len() > 2
            {
                command[2] = EXTRACT_OPTIONAL_INPUT.to_owned();
            }
        }
    }
}

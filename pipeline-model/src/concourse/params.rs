//! Task params that still hold `((vars))` in a pipeline: credentials a
//! credential manager would fill in at run time. They become Secret
//! references, so no value is ever written into a pod.

use c8s_sidecar_core::EnvVar;

use super::load_var::Locals;
use super::report::Report;
use super::resource::SecretNeed;
use super::steps::Step;
use crate::plan::TaskPlan;

/// Params still holding `((vars))` become Secret references: a whole
/// value by `secretKeyRef`, a var inside text by `$(C8S_VAR_n)`. A local
/// var `((.:NAME))` set by a `load_var` before the step stays in the value
/// and goes on the plan, for the pod to read when the step runs.
pub fn secret_params(
    pipeline: &str,
    plan: &mut TaskPlan,
    step: &Step,
    needs: &mut Vec<SecretNeed>,
    locals: &mut Locals,
    report: &mut Report<'_>,
) {
    let secret = format!("c8s-{}-vars", super::image::secret_suffix(pipeline));
    let mut extra: Vec<EnvVar> = Vec::new();
    for env in &mut plan.env {
        let Some(mut value) = env.value.clone() else {
            continue;
        };
        // A structured load_var's value known before the run: its text.
        for reason in locals.write_known(&mut value) {
            report.error(step.at, &step.path.key("params").key(&env.name), reason);
        }
        env.value = Some(value.clone());
        let (local, refs): (Vec<_>, Vec<_>) = super::vars::var_refs(&value)
            .into_iter()
            .partition(|r| r.name.starts_with(".:"));
        for r in &local {
            let name = r.name.trim_start_matches(".:");
            let found = locals
                .resolve(name)
                .and_then(|var| crate::local_vars::check_shell_name(&env.name).map(|()| var));
            match found {
                Ok(var) if !plan.local_vars.contains(&var) => plan.local_vars.push(var),
                Ok(_) => {}
                Err(reason) if reason.is_empty() => {}
                Err(reason) => report.error(step.at, &step.path.key("params").key(&env.name), reason),
            }
        }
        if refs.is_empty() {
            continue;
        }
        let key = |name: &str| name.replace([':', '/'], "-");
        for r in &refs {
            needs.push(SecretNeed {
                name: secret.clone(),
                key: key(&r.name),
                value: format!("value of (({}))", r.name),
            });
        }
        if local.is_empty() && refs.len() == 1 && refs[0].range == (0..value.len()) {
            *env = EnvVar::secret(env.name.clone(), secret.clone(), key(&refs[0].name));
            continue;
        }
        let mut text = value.replace("$(", "$$(");
        for r in &refs {
            let var = format!("C8S_VAR_{}", extra.len());
            text = text.replacen(&value[r.range.clone()], &format!("$({var})"), 1);
            extra.push(EnvVar::secret(var, secret.clone(), key(&r.name)));
        }
        env.value = Some(text);
    }
    // Referenced variables must come first for Kubernetes to expand them.
    extra.append(&mut plan.env);
    plan.env = extra;
}

//! The `main` container: the user's command, wrapped when c8s must know how it
//! ended, wait for legacy sidecars, or pass on signals.

use std::borrow::Cow;

use c8s_pipeline_model::TaskPlan;
use c8s_sidecar_core::contract::MAIN;
use c8s_sidecar_core::{PortRef, Resources};
use k8s_openapi::api::core::v1 as core;

use crate::context::RunContext;
use crate::env::{container_env, literal_list};
use crate::parts::{DEFAULT_READY_TIMEOUT_SECONDS, RunAs, home_mount, resources, security_context};
use crate::scripts;

const EPHEMERAL_STORAGE: &str = "ephemeral-storage";

/// `main`'s requests and limits: the plan's, with the pod overrides'
/// ephemeral storage (the context's over the plan's) unless they name it already.
fn main_resources<'a>(plan: &'a TaskPlan, ctx: &'a RunContext) -> Cow<'a, Resources> {
    let own = &plan.resources;
    let Some(storage) = ctx
        .pod
        .ephemeral_storage
        .as_ref()
        .or(plan.pod.ephemeral_storage.as_ref())
    else {
        return Cow::Borrowed(own);
    };
    if own.requests.contains_key(EPHEMERAL_STORAGE) || own.limits.contains_key(EPHEMERAL_STORAGE) {
        return Cow::Borrowed(own);
    }
    let mut out = own.clone();
    if let Some(q) = &storage.request {
        out.requests.insert(EPHEMERAL_STORAGE.to_owned(), q.clone());
    }
    if let Some(q) = &storage.limit {
        out.limits.insert(EPHEMERAL_STORAGE.to_owned(), q.clone());
    }
    Cow::Owned(out)
}

/// Whether `main` runs under [`scripts::MAIN_WRAPPER`]: with outputs (the exit
/// code and heartbeat for `artifact-helper`), with sidecars to wait for
/// (legacy), or when its command is a shell, which as PID 1 ignores SIGTERM
/// (the kernel drops default-action signals to a namespace's init). Any other
/// command runs as PID 1 itself and gets the kubelet's signals directly.
pub fn wraps_main(plan: &TaskPlan, waits: &str) -> bool {
    let shell = plan.command.first().is_some_and(|program| {
        let name = program.rsplit('/').next().unwrap_or(program);
        matches!(name, "sh" | "bash" | "ash" | "dash" | "zsh")
    });
    let results = !plan.results.is_empty() || !plan.result_env.is_empty() || !plan.local_vars.is_empty();
    !plan.command.is_empty() && (!plan.outputs.is_empty() || results || !waits.is_empty() || shell)
}

/// `port:seconds` pairs `main` waits for in legacy mode: each sidecar's
/// readiness port (for exec checks, its first TCP port) and its timeout.
pub fn legacy_waits(plan: &TaskPlan) -> String {
    let mut waits = Vec::new();
    for sidecar in &plan.sidecars {
        let Some(check) = sidecar.effective_readiness() else {
            continue;
        };
        let port_ref = check
            .tcp_socket
            .as_ref()
            .map(|t| &t.port)
            .or(check.http_get.as_ref().map(|h| &h.port));
        let port = match port_ref {
            Some(PortRef::Number(n)) => Some(*n),
            Some(PortRef::Name(name)) => sidecar
                .ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name))
                .map(|p| p.container_port),
            None => sidecar
                .ports
                .iter()
                .find(|p| p.protocol == c8s_sidecar_core::Protocol::Tcp)
                .map(|p| p.container_port),
        };
        if let Some(port) = port {
            let total = check.timeout_seconds.unwrap_or(DEFAULT_READY_TIMEOUT_SECONDS);
            waits.push(format!("{port}:{total}"));
        }
    }
    waits.join(" ")
}

/// The `main` container, wrapped when [`wraps_main`] says so. Every string the
/// user wrote reaches the process literally.
pub fn main(
    plan: &TaskPlan,
    ctx: &RunContext,
    mounts: Vec<core::VolumeMount>,
    checkout: &str,
    waits: &str,
) -> core::Container {
    let (command, args) = if wraps_main(plan, waits) {
        let outputs = plan.saved_outputs();
        let mut wrapped = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            scripts::MAIN_WRAPPER.to_owned(),
            "c8s-main".to_owned(),
            outputs.len().to_string(),
        ];
        wrapped.extend(outputs.iter().map(|o| o.trim_end_matches('/').to_owned()));
        if !plan.local_vars.is_empty() {
            wrapped.extend(["sh", "-c", scripts::LOAD_VARS, "c8s-load-vars"].map(str::to_owned));
        }
        if !plan.results.is_empty() || !plan.result_env.is_empty() {
            wrapped.extend(["sh", "-c", scripts::STEP_RESULTS, "c8s-results"].map(str::to_owned));
        }
        wrapped.extend(plan.command.iter().chain(&plan.args).cloned());
        (wrapped, Vec::new())
    } else {
        (plan.command.clone(), plan.args.clone())
    };
    let working_dir = match plan.working_dir.as_deref().map(|d| d.trim_end_matches('/')) {
        None | Some("") | Some(".") => scripts::WORKSPACE.to_owned(),
        Some(dir) if dir.starts_with('/') => dir.to_owned(),
        Some(dir) => format!("{}/{dir}", scripts::WORKSPACE),
    };
    let mut extra = vec![
        ("C8S_COMMIT", ctx.commit.as_str()),
        ("C8S_BRANCH", ctx.branch.as_str()),
    ];
    if !waits.is_empty() {
        extra.push(("C8S_WAIT_PORTS", waits));
    }
    let results_dir = format!(
        "{}/{}",
        scripts::WORKSPACE,
        c8s_pipeline_model::results::RESULTS_DIR
    );
    let result_names = plan.results.join(" ");
    if !plan.results.is_empty() {
        extra.push(("C8S_RESULTS", results_dir.as_str()));
        extra.push(("C8S_RESULT_NAMES", result_names.as_str()));
    }
    // `NAME=step/result` words: names, steps and results never hold a space or `=`.
    let result_env: Vec<String> = plan
        .result_env
        .iter()
        .map(|e| format!("{}={}/{}", e.name, e.step, e.result))
        .collect();
    let result_env = result_env.join(" ");
    if !result_env.is_empty() {
        extra.push(("C8S_RESULT_ENV", result_env.as_str()));
    }
    // `NAME=FORMAT:FILE` words: names are checked, files hold no whitespace.
    let local_vars: Vec<String> = plan
        .local_vars
        .iter()
        .map(|var| format!("{}={}:{}", var.name, var.format.word(), var.file))
        .collect();
    let local_vars = local_vars.join(" ");
    let local_var_env = plan.local_var_env().join(" ");
    if !local_vars.is_empty() {
        extra.push(("C8S_LOCAL_VARS", local_vars.as_str()));
        extra.push(("C8S_LOCAL_VAR_ENV", local_var_env.as_str()));
    }
    let mut mounts = mounts;
    mounts.push(home_mount(MAIN));
    core::Container {
        name: MAIN.to_owned(),
        image: Some(plan.image.clone()),
        command: (!command.is_empty()).then(|| literal_list(&command)),
        args: (!args.is_empty()).then(|| literal_list(&args)),
        working_dir: Some(working_dir),
        env: container_env(&plan.env, checkout, &extra),
        resources: resources(&main_resources(plan, ctx)),
        security_context: Some(security_context(
            ctx.security_profile,
            RunAs {
                user: plan.run_as_user,
                root: plan.run_as_root,
            },
        )),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

//! One function per container c8s puts in a pod, plus the pieces they share
//! (env, resources, probes, security contexts, volume mounts), and
//! what puts a pod's containers together in [`pod_layout`] order, each built by
//! the function of its role (a type, never a container name).

use c8s_pipeline_model::layout::helper_resources;
use c8s_pipeline_model::{ContainerRole, LaidOutContainer, TaskPlan, pod_layout};
use c8s_sidecar_core::contract::{ARTIFACT_HELPER, GIT_CLONE, MAIN};
use c8s_sidecar_core::{EnvVar, PortRef, ReadinessProbe, SidecarConfig};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::context::{RunContext, SecurityProfile, SidecarMode};
use crate::env::{container_env, literal_list, literal_text};
use crate::identity::{InputPaths, PodIdentity};
use crate::parts::mount;
use crate::scripts;
use crate::services;

pub use crate::main_container::{legacy_waits, main, wraps_main};
pub use crate::parts::{
    ARTIFACTS_VOLUME, CACHE_VOLUME, DEFAULT_PERIOD_SECONDS, DEFAULT_READY_TIMEOUT_SECONDS,
    GIT_CREDENTIALS_VOLUME, HOME_VOLUME, RunAs, WORKSPACE_VOLUME, checkout_dir, home_mount, main_mounts,
    pod_security_context, resources, security_context,
};

/// Default seconds between liveness checks.
const DEFAULT_LIVENESS_PERIOD_SECONDS: i32 = 10;
/// Default seconds of failing liveness checks before a restart.
const DEFAULT_LIVENESS_TIMEOUT_SECONDS: i32 = 30;

/// Kubernetes env vars: literals as `value` (escaped, see
/// [`literal_text`]), secrets as `valueFrom.secretKeyRef`.
pub fn env(vars: &[EnvVar]) -> Option<Vec<core::EnvVar>> {
    container_env_only(vars)
}

fn container_env_only(vars: &[EnvVar]) -> Option<Vec<core::EnvVar>> {
    let out: Vec<core::EnvVar> = vars
        .iter()
        .map(|var| core::EnvVar {
            name: var.name.clone(),
            value: var.value.as_deref().map(literal_text),
            value_from: var.secret_key_ref.as_ref().map(|secret| core::EnvVarSource {
                secret_key_ref: Some(core::SecretKeySelector {
                    name: secret.name.clone(),
                    key: secret.key.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .collect();
    (!out.is_empty()).then_some(out)
}

/// A readiness check as a Kubernetes probe: checks every `period` seconds and
/// gives up after `timeout` seconds in all (`failureThreshold = ceil(timeout/period)`).
pub fn probe(check: &ReadinessProbe) -> core::Probe {
    probe_with(check, DEFAULT_PERIOD_SECONDS, DEFAULT_READY_TIMEOUT_SECONDS)
}

/// A sidecar's liveness check as a probe: every 10 s by default, restarting
/// the service after 30 s of failures in all.
pub fn liveness_probe(check: &ReadinessProbe) -> core::Probe {
    probe_with(
        check,
        DEFAULT_LIVENESS_PERIOD_SECONDS,
        DEFAULT_LIVENESS_TIMEOUT_SECONDS,
    )
}

/// A native sidecar's readiness after its startup gate: the same check on
/// the same period, failing after 3 misses (the Kubernetes default), so the
/// pod's Ready condition follows the service.
fn readiness_after_startup(check: &ReadinessProbe) -> core::Probe {
    let mut out = probe(check);
    out.failure_threshold = Some(3);
    out
}

fn probe_with(check: &ReadinessProbe, default_period: i32, default_total: i32) -> core::Probe {
    let period = check.period_seconds.unwrap_or(default_period).max(1);
    let total = check.timeout_seconds.unwrap_or(default_total).max(1);
    // In i64: `total + period - 1` overflows i32 for totals near 2^31 - 1.
    let threshold = (i64::from(total) + i64::from(period) - 1) / i64::from(period);
    let failure_threshold = i32::try_from(threshold).unwrap_or(i32::MAX);
    let port = |port: &PortRef| match port {
        PortRef::Number(n) => IntOrString::Int(*n),
        PortRef::Name(name) => IntOrString::String(name.clone()),
    };
    let mut out = core::Probe {
        period_seconds: Some(period),
        timeout_seconds: Some(period.min(5)),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    };
    // Each handler as given; validation rejects zero or several.
    out.tcp_socket = check.tcp_socket.as_ref().map(|tcp| core::TCPSocketAction {
        port: port(&tcp.port),
        ..Default::default()
    });
    out.http_get = check.http_get.as_ref().map(|http| core::HTTPGetAction {
        path: Some(http.path.clone()),
        port: port(&http.port),
        ..Default::default()
    });
    // The kubelet expands `$(VAR)` in exec probe commands too.
    out.exec = check.exec.as_ref().map(|exec| core::ExecAction {
        command: Some(literal_list(&exec.command)),
    });
    out
}

fn helper(name: &str, image: &str, script: &str, profile: SecurityProfile) -> core::Container {
    thread_local! {
        // The same for every helper container; converted once per thread.
        static HELPER_RESOURCES: Option<core::ResourceRequirements> = resources(helper_resources());
    }
    core::Container {
        name: name.to_owned(),
        image: Some(image.to_owned()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        command: Some(vec!["sh".to_owned(), "-ec".to_owned(), literal_text(script)]),
        resources: HELPER_RESOURCES.with(Clone::clone),
        security_context: Some(security_context(
            profile,
            RunAs {
                user: None,
                root: false,
            },
        )),
        ..Default::default()
    }
}

/// The `git-clone` init container; it clones into `checkout` (absolute), with
/// the credentials Secret mounted when the context names one.
pub fn git_clone(ctx: &RunContext, checkout: &str) -> core::Container {
    let mut container = helper(
        GIT_CLONE,
        &ctx.git_image,
        scripts::GIT_CLONE,
        ctx.security_profile,
    );
    container.env = container_env(
        &[],
        checkout,
        &[
            ("C8S_REPOSITORY", &ctx.repository),
            ("C8S_COMMIT", &ctx.commit),
            ("C8S_BRANCH", &ctx.branch),
            ("C8S_CHECKOUT", checkout),
        ],
    );
    let mut mounts = vec![
        mount(WORKSPACE_VOLUME, scripts::WORKSPACE),
        home_mount(&container.name),
    ];
    if ctx.git_secret.is_some() {
        mounts.push(core::VolumeMount {
            read_only: Some(true),
            ..mount(GIT_CREDENTIALS_VOLUME, scripts::GIT_CREDENTIALS)
        });
    }
    container.volume_mounts = Some(mounts);
    container
}

/// Input-extraction init container `name`: unpack the input's artifact (or
/// its one member) into its path.
pub(crate) fn extract_input(
    name: &str,
    ctx: &RunContext,
    input: &InputPaths,
    checkout: &str,
) -> core::Container {
    let mut container = helper(
        name,
        &ctx.helper_image,
        scripts::EXTRACT_INPUT,
        ctx.security_profile,
    );
    if let Some(command) = container.command.as_mut() {
        command.extend([name, &input.artifact, &input.path].map(literal_text));
        command.extend(input.member.as_deref().map(literal_text));
    }
    container.env = container_env(&[], checkout, &[]);
    container.volume_mounts = Some(vec![
        mount(WORKSPACE_VOLUME, scripts::WORKSPACE),
        home_mount(name),
        core::VolumeMount {
            read_only: Some(true),
            ..mount(ARTIFACTS_VOLUME, scripts::ARTIFACTS)
        },
    ]);
    container
}

/// The `artifact-helper` container: saves `outputs` into artifact directory `dir`.
pub fn artifact_helper(ctx: &RunContext, dir: &str, outputs: &[String], checkout: &str) -> core::Container {
    let mut container = helper(
        ARTIFACT_HELPER,
        &ctx.helper_image,
        scripts::SAVE_OUTPUTS,
        ctx.security_profile,
    );
    if let Some(command) = container.command.as_mut() {
        command.push(ARTIFACT_HELPER.to_owned());
        command.push(literal_text(dir));
        command.extend(outputs.iter().map(|o| literal_text(o.trim_end_matches('/'))));
    }
    container.env = container_env(&[], checkout, &[]);
    container.volume_mounts = Some(vec![
        mount(WORKSPACE_VOLUME, scripts::WORKSPACE),
        home_mount(&container.name),
        mount(ARTIFACTS_VOLUME, scripts::ARTIFACTS),
    ]);
    container
}

/// A sidecar container, with its scratch emptyDirs mounted (volume names given
/// by the caller) and its readiness as a startup (native) or readiness (legacy)
/// probe. A startup probe that gives up makes the kubelet restart the sidecar;
/// `main` never starts and the pod's `activeDeadlineSeconds` ends the step.
pub fn sidecar(
    config: &SidecarConfig,
    ctx: &RunContext,
    mode: SidecarMode,
    mut mounts: Vec<core::VolumeMount>,
    scratch_volumes: &[String],
) -> core::Container {
    for (path, volume) in config.scratch.iter().zip(scratch_volumes) {
        mounts.push(mount(volume, path));
    }
    let check = config.effective_readiness();
    let probe = check.as_ref().map(probe);
    let ports: Vec<core::ContainerPort> = config
        .ports
        .iter()
        .map(|p| core::ContainerPort {
            container_port: p.container_port,
            protocol: Some(p.protocol.as_str().to_owned()),
            name: p.name.clone(),
            ..Default::default()
        })
        .collect();
    let native = mode == SidecarMode::Native;
    core::Container {
        name: config.name.clone(),
        image: Some(config.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        command: (!config.command.is_empty()).then(|| literal_list(&config.command)),
        args: (!config.args.is_empty()).then(|| literal_list(&config.args)),
        working_dir: config.working_dir.clone(),
        env: env(&config.env),
        ports: (!ports.is_empty()).then_some(ports),
        resources: resources(&config.resources),
        restart_policy: native.then(|| "Always".to_owned()),
        startup_probe: if native { probe.clone() } else { None },
        readiness_probe: if native {
            check.as_ref().map(readiness_after_startup)
        } else {
            probe
        },
        liveness_probe: config.liveness.as_ref().map(liveness_probe),
        security_context: Some(security_context(
            ctx.security_profile,
            RunAs {
                user: config.run_as_user,
                root: config.run_as_root,
            },
        )),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

/// [`sidecar`] as c8s puts it in a pod: with its own `HOME` and git's
/// permission to use the checkout.
pub fn pod_sidecar(
    config: &SidecarConfig,
    ctx: &RunContext,
    mode: SidecarMode,
    mounts: Vec<core::VolumeMount>,
    scratch_volumes: &[String],
    checkout: &str,
) -> core::Container {
    let mut container = sidecar(config, ctx, mode, mounts, scratch_volumes);
    container.env = container_env(&config.env, checkout, &[]);
    if let Some(mounts) = container.volume_mounts.as_mut() {
        mounts.push(home_mount(&config.name));
    }
    container
}

/// What a container of the pod is for: one kind of container each, so that
/// building the pod never looks at container names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// `git-clone`.
    GitClone,
    /// `c8s-input-N`: unpacks one artifact input.
    Input,
    /// A sidecar of the plan.
    Sidecar,
    /// `main`.
    Main,
    /// `artifact-helper`.
    ArtifactHelper,
}

impl Role {
    /// The role of a container of [`pod_layout`].
    fn of(laid_out: &LaidOutContainer) -> Self {
        match laid_out.role {
            ContainerRole::Init if laid_out.name == GIT_CLONE => Role::GitClone,
            ContainerRole::Init => Role::Input,
            ContainerRole::Sidecar => Role::Sidecar,
            ContainerRole::Regular if laid_out.name == MAIN => Role::Main,
            ContainerRole::Regular => Role::ArtifactHelper,
        }
    }
}

/// A pod's containers, where they go, and the volumes only they need.
#[derive(Debug, Default)]
pub(crate) struct PodContainers {
    /// Init containers (native sidecars among them), in order.
    pub(crate) init: Vec<core::Container>,
    /// Regular containers: `main`, `artifact-helper`, then legacy sidecars.
    pub(crate) regular: Vec<core::Container>,
    /// The sidecars' scratch emptyDirs.
    pub(crate) volumes: Vec<core::Volume>,
}

/// Every container of `plan`'s pod in [`pod_layout`] order, with the names
/// and paths of `identity`. Legacy sidecars are plain containers after `main`
/// (and `artifact-helper`).
pub(crate) fn for_pod(
    plan: &TaskPlan,
    ctx: &RunContext,
    identity: &PodIdentity,
    mode: SidecarMode,
) -> PodContainers {
    let shared_mounts = main_mounts(plan, &identity.cache_prefix);
    let checkout = identity.checkout.as_str();
    let mut out = PodContainers::default();
    let mut legacy_sidecars = Vec::new();
    let mut inputs = identity.inputs.iter();
    let mut sidecars = plan.sidecars.iter().zip(&identity.scratch_volumes);
    for laid_out in pod_layout(plan) {
        match Role::of(&laid_out) {
            Role::GitClone => out.init.push(git_clone(ctx, checkout)),
            Role::Input => {
                if let Some(input) = inputs.next() {
                    let name = laid_out.name.as_str();
                    out.init.push(extract_input(name, ctx, input, checkout));
                }
            }
            Role::Sidecar => {
                if let Some((config, scratch)) = sidecars.next() {
                    out.volumes.extend(scratch.iter().map(|volume| core::Volume {
                        name: volume.clone(),
                        empty_dir: Some(Default::default()),
                        ..Default::default()
                    }));
                    let config = services::with_defaults(config);
                    let container = pod_sidecar(&config, ctx, mode, shared_mounts.clone(), scratch, checkout);
                    match mode {
                        SidecarMode::Native => out.init.push(container),
                        SidecarMode::Legacy => legacy_sidecars.push(container),
                    }
                }
            }
            Role::Main => {
                let waits = match mode {
                    SidecarMode::Legacy => legacy_waits(plan),
                    SidecarMode::Native => String::new(),
                };
                out.regular
                    .push(main(plan, ctx, shared_mounts.clone(), checkout, &waits));
            }
            Role::ArtifactHelper => {
                let outputs = plan.saved_outputs();
                out.regular
                    .push(artifact_helper(ctx, &identity.outputs_dir, &outputs, checkout));
            }
        }
    }
    out.regular.extend(legacy_sidecars);
    out
}

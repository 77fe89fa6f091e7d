//! The pieces every container c8s creates is made of: volume names and
//! mounts, security contexts, requests and limits, and the checkout path.
//! The lowest layer of the container modules; [`containers`](crate::containers)
//! re-exports what is public.

use std::collections::BTreeMap;

use c8s_pipeline_model::TaskPlan;
use c8s_sidecar_core::Resources;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::context::{RunContext, SecurityProfile};
use crate::scripts;

/// Name of the workspace emptyDir volume.
pub const WORKSPACE_VOLUME: &str = "workspace";
/// Name of the artifact PVC volume.
pub const ARTIFACTS_VOLUME: &str = "artifacts";
/// Name of the cache PVC volume.
pub const CACHE_VOLUME: &str = "cache";
/// Name of the emptyDir holding every container's `HOME` (one subPath each).
pub const HOME_VOLUME: &str = "c8s-home";
/// Name of the git credentials Secret volume (`git-clone` only).
pub const GIT_CREDENTIALS_VOLUME: &str = "git-credentials";

/// Default seconds between readiness checks.
pub const DEFAULT_PERIOD_SECONDS: i32 = 2;
/// Default seconds to wait in all for a sidecar to become ready.
pub const DEFAULT_READY_TIMEOUT_SECONDS: i32 = 120;

/// Who a security context is for.
#[derive(Debug, Clone, Copy)]
pub struct RunAs {
    /// An explicit UID.
    pub user: Option<i64>,
    /// The container opted out of non-root.
    pub root: bool,
}

/// The container security context for `profile`.
pub fn security_context(profile: SecurityProfile, run_as: RunAs) -> core::SecurityContext {
    let mut sc = core::SecurityContext {
        allow_privilege_escalation: Some(false),
        ..Default::default()
    };
    if run_as.root {
        // Root opt-out: runtime default capabilities (baseline allows them), UID 0.
        sc.run_as_user = Some(0);
        sc.run_as_non_root = Some(false);
        return sc;
    }
    sc.run_as_user = run_as.user;
    if profile == SecurityProfile::Restricted {
        sc.run_as_non_root = Some(true);
        sc.capabilities = Some(core::Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Default::default()
        });
    }
    sc
}

/// The pod security context for `ctx`.
pub fn pod_security_context(ctx: &RunContext) -> core::PodSecurityContext {
    let restricted = ctx.security_profile == SecurityProfile::Restricted;
    core::PodSecurityContext {
        fs_group: Some(ctx.fs_group),
        // Re-chown a volume only when its root is not the fsGroup's yet: the
        // cache PVC is not walked again on every start.
        fs_group_change_policy: Some("OnRootMismatch".to_owned()),
        run_as_non_root: restricted.then_some(true),
        run_as_user: restricted.then_some(ctx.default_run_as_user),
        seccomp_profile: Some(core::SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn quantities(map: &BTreeMap<String, c8s_sidecar_core::Quantity>) -> Option<BTreeMap<String, Quantity>> {
    (!map.is_empty()).then(|| {
        map.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.as_str().to_owned())))
            .collect()
    })
}

/// Requests and limits as Kubernetes writes them.
pub fn resources(resources: &Resources) -> Option<core::ResourceRequirements> {
    (!resources.is_empty()).then(|| core::ResourceRequirements {
        requests: quantities(&resources.requests),
        limits: quantities(&resources.limits),
        ..Default::default()
    })
}

/// Volume `name` mounted at `path`.
pub(crate) fn mount(name: &str, path: &str) -> core::VolumeMount {
    core::VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        ..Default::default()
    }
}

/// The mounts `main` gets (and every sidecar shares): workspace and caches.
pub fn main_mounts(plan: &TaskPlan, cache_prefix: &str) -> Vec<core::VolumeMount> {
    let mut mounts = vec![mount(WORKSPACE_VOLUME, scripts::WORKSPACE)];
    for cache in &plan.caches {
        let cache = cache.trim_end_matches('/');
        mounts.push(core::VolumeMount {
            sub_path: Some(format!("{cache_prefix}/{cache}")),
            ..mount(CACHE_VOLUME, &format!("{}/{cache}", scripts::WORKSPACE))
        });
    }
    mounts
}

/// `container`'s own `HOME`: the `c8s-home` emptyDir at subPath `<name>`, which
/// the kubelet creates with the volume root's mode, so any UID of the pod can
/// write it (`pkg/kubelet/kubelet_pods.go`, makeMounts).
pub fn home_mount(container: &str) -> core::VolumeMount {
    core::VolumeMount {
        sub_path: Some(container.to_owned()),
        ..mount(HOME_VOLUME, scripts::HOME)
    }
}

/// The checkout's absolute path: the workspace, or `checkout` inside it.
pub fn checkout_dir(checkout: Option<&str>) -> String {
    match checkout {
        Some(dir) => format!("{}/{}", scripts::WORKSPACE, dir.trim_end_matches('/')),
        None => scripts::WORKSPACE.to_owned(),
    }
}

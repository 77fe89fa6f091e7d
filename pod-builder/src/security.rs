//! Pod Security Standards, checked on a rendered `PodSpec` — our own
//! implementation of the rules of <https://kubernetes.io/docs/concepts/security/pod-security-standards/>
//! as `k8s.io/pod-security-admission/policy/check_*.go` enforces them,
//! so that `c8s validate` can say which profile a pod meets.

use k8s_openapi::api::core::v1 as core;

use crate::context::SecurityProfile;

/// Volume sources the restricted profile allows.
const RESTRICTED_VOLUMES: [&str; 9] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// Capabilities the baseline profile lets a container add.
const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The parts of a container the profiles look at.
struct View<'a> {
    path: String,
    security: Option<&'a core::SecurityContext>,
    ports: Option<&'a Vec<core::ContainerPort>>,
}

fn containers(spec: &core::PodSpec) -> Vec<View<'_>> {
    let mut out = Vec::new();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        out.push(View {
            path: format!("initContainers[{i}] ({})", c.name),
            security: c.security_context.as_ref(),
            ports: c.ports.as_ref(),
        });
    }
    for (i, c) in spec.containers.iter().enumerate() {
        out.push(View {
            path: format!("containers[{i}] ({})", c.name),
            security: c.security_context.as_ref(),
            ports: c.ports.as_ref(),
        });
    }
    for (i, c) in spec.ephemeral_containers.iter().flatten().enumerate() {
        out.push(View {
            path: format!("ephemeralContainers[{i}] ({})", c.name),
            security: c.security_context.as_ref(),
            ports: c.ports.as_ref(),
        });
    }
    out
}

fn volume_kinds(volume: &core::Volume) -> Vec<String> {
    match serde_json::to_value(volume) {
        Ok(serde_json::Value::Object(map)) => map.keys().filter(|k| *k != "name").cloned().collect(),
        _ => Vec::new(),
    }
}

/// Everything in `spec` that breaks the **baseline** profile, one sentence each.
pub fn check_baseline(spec: &core::PodSpec) -> Vec<String> {
    let mut problems = Vec::new();
    for (flag, name) in [
        (spec.host_network, "hostNetwork"),
        (spec.host_pid, "hostPID"),
        (spec.host_ipc, "hostIPC"),
    ] {
        if flag == Some(true) {
            problems.push(format!("{name} must not be true"));
        }
    }
    for volume in spec.volumes.iter().flatten() {
        if volume.host_path.is_some() {
            problems.push(format!(
                "volume {}: hostPath volumes are not allowed",
                volume.name
            ));
        }
    }
    let pod_seccomp = spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.seccomp_profile.as_ref());
    if pod_seccomp.is_some_and(|p| p.type_ == "Unconfined") {
        problems.push("securityContext.seccompProfile must not be Unconfined".to_owned());
    }
    for view in containers(spec) {
        let sc = view.security;
        if sc.and_then(|sc| sc.privileged) == Some(true) {
            problems.push(format!("{}: privileged must not be true", view.path));
        }
        if sc
            .and_then(|sc| sc.seccomp_profile.as_ref())
            .is_some_and(|p| p.type_ == "Unconfined")
        {
            problems.push(format!("{}: seccompProfile must not be Unconfined", view.path));
        }
        let added = sc
            .and_then(|sc| sc.capabilities.as_ref())
            .and_then(|c| c.add.as_ref());
        for cap in added.into_iter().flatten() {
            if !BASELINE_CAPABILITIES.contains(&cap.as_str()) {
                problems.push(format!("{}: capability {cap} must not be added", view.path));
            }
        }
        for port in view.ports.into_iter().flatten() {
            if port.host_port.is_some_and(|p| p != 0) {
                problems.push(format!("{}: hostPort must not be set", view.path));
            }
        }
    }
    problems
}

/// Everything in `spec` that breaks the **restricted** profile (which
/// includes baseline), one sentence each. Empty means the pod is restricted.
pub fn check_restricted(spec: &core::PodSpec) -> Vec<String> {
    let mut problems = check_baseline(spec);
    for volume in spec.volumes.iter().flatten() {
        for kind in volume_kinds(volume) {
            if !RESTRICTED_VOLUMES.contains(&kind.as_str()) {
                problems.push(format!("volume {}: {kind} volumes are not allowed", volume.name));
            }
        }
    }
    let pod = spec.security_context.as_ref();
    let pod_non_root = pod.and_then(|sc| sc.run_as_non_root);
    if pod_non_root == Some(false) {
        problems.push("securityContext.runAsNonRoot must not be false".to_owned());
    }
    if pod.and_then(|sc| sc.run_as_user) == Some(0) {
        problems.push("securityContext.runAsUser must not be 0".to_owned());
    }
    let seccomp_ok =
        |p: Option<&core::SeccompProfile>| p.map(|p| p.type_ == "RuntimeDefault" || p.type_ == "Localhost");
    let pod_seccomp = seccomp_ok(pod.and_then(|sc| sc.seccomp_profile.as_ref()));
    for view in containers(spec) {
        let sc = view.security;
        let path = &view.path;
        if sc.and_then(|sc| sc.allow_privilege_escalation) != Some(false) {
            problems.push(format!("{path}: allowPrivilegeEscalation must be false"));
        }
        match sc.and_then(|sc| sc.run_as_non_root) {
            Some(false) => problems.push(format!("{path}: runAsNonRoot must not be false")),
            None if pod_non_root != Some(true) => {
                problems.push(format!("{path}: runAsNonRoot must be true (here or on the pod)"));
            }
            _ => {}
        }
        if sc.and_then(|sc| sc.run_as_user) == Some(0) {
            problems.push(format!("{path}: runAsUser must not be 0"));
        }
        match seccomp_ok(sc.and_then(|sc| sc.seccomp_profile.as_ref())) {
            Some(true) => {}
            Some(false) => problems.push(format!(
                "{path}: seccompProfile must be RuntimeDefault or Localhost"
            )),
            None if pod_seccomp != Some(true) => problems.push(format!(
                "{path}: seccompProfile must be RuntimeDefault or Localhost (here or on the pod)"
            )),
            None => {}
        }
        let caps = sc.and_then(|sc| sc.capabilities.as_ref());
        if !caps
            .and_then(|c| c.drop.as_ref())
            .is_some_and(|d| d.iter().any(|c| c == "ALL"))
        {
            problems.push(format!("{path}: capabilities.drop must include ALL"));
        }
        for cap in caps.and_then(|c| c.add.as_ref()).into_iter().flatten() {
            if cap != "NET_BIND_SERVICE" {
                problems.push(format!(
                    "{path}: capabilities.add may only hold NET_BIND_SERVICE, not {cap}"
                ));
            }
        }
    }
    problems
}

/// The strictest Pod Security profile `spec` meets, or `None` if it does not
/// even meet baseline (privileged).
pub fn pod_security_level(spec: &core::PodSpec) -> Option<SecurityProfile> {
    if check_restricted(spec).is_empty() {
        Some(SecurityProfile::Restricted)
    } else if check_baseline(spec).is_empty() {
        Some(SecurityProfile::Baseline)
    } else {
        None
    }
}

//! Client-side validation of rendered objects: the rules of the API server
//! (`pkg/apis/core/validation`, `pkg/apis/batch/validation`) that can be checked
//! without a cluster (each check names the rule it mirrors). Every violation is reported, each at its
//! field path; an object with any violation is an error, never a value.

use std::collections::{BTreeMap, BTreeSet};

use c8s_sidecar_core::Quantity;
use c8s_sidecar_core::names;
use k8s_openapi::api::batch::v1 as batch;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::{Error, Violation};

/// Largest `activeDeadlineSeconds` the API server accepts (2^31 - 1).
const MAX_DEADLINE: i64 = i32::MAX as i64;
/// Largest total size of an object's annotations.
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

type Out = Vec<Violation>;

fn push(out: &mut Out, path: impl Into<String>, message: impl Into<String>) {
    out.push(Violation::new(path, message));
}

/// Records `result`'s error at the path `path` builds (only built on error:
/// validation runs on every object, so valid fields must cost no allocation).
fn check(out: &mut Out, result: Result<(), String>, path: impl FnOnce() -> String) {
    if let Err(reason) = result {
        push(out, path(), reason);
    }
}

/// Validates a Pod; `Err(Error::Invalid)` lists every violation.
pub fn validate_pod(pod: &core::Pod) -> Result<(), Error> {
    let mut out = Out::new();
    check_metadata(&mut out, "metadata", &pod.metadata, true);
    match &pod.spec {
        Some(spec) => check_pod_spec(&mut out, "spec", spec),
        None => push(&mut out, "spec", "is required"),
    }
    finish("Pod", &pod.metadata, out)
}

/// Validates a Job and its pod template; `Err(Error::Invalid)` lists every violation.
pub fn validate_job(job: &batch::Job) -> Result<(), Error> {
    let mut out = Out::new();
    check_metadata(&mut out, "metadata", &job.metadata, true);
    match &job.spec {
        Some(spec) => check_job_spec(&mut out, spec),
        None => push(&mut out, "spec", "is required"),
    }
    finish("Job", &job.metadata, out)
}

fn finish(kind: &'static str, meta: &ObjectMeta, violations: Out) -> Result<(), Error> {
    if violations.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid {
        kind,
        name: meta.name.clone().unwrap_or_default(),
        violations,
    })
}

fn check_job_spec(out: &mut Out, spec: &batch::JobSpec) {
    if spec.backoff_limit.is_some_and(|b| b < 0) {
        push(out, "spec.backoffLimit", "must be >= 0");
    }
    if spec.ttl_seconds_after_finished.is_some_and(|t| t < 0) {
        push(out, "spec.ttlSecondsAfterFinished", "must be >= 0");
    }
    check_deadline(out, "spec.activeDeadlineSeconds", spec.active_deadline_seconds);
    if let Some(meta) = &spec.template.metadata {
        check_metadata(out, "spec.template.metadata", meta, false);
    }
    let Some(pod) = &spec.template.spec else {
        push(out, "spec.template.spec", "is required");
        return;
    };
    check_pod_spec(out, "spec.template.spec", pod);
    let restart = pod.restart_policy.as_deref();
    if !matches!(restart, Some("Never" | "OnFailure")) {
        push(
            out,
            "spec.template.spec.restartPolicy",
            "must be Never or OnFailure in a Job",
        );
    }
    if let Some(policy) = &spec.pod_failure_policy {
        if restart != Some("Never") {
            push(
                out,
                "spec.podFailurePolicy",
                "needs the template's restartPolicy to be Never",
            );
        }
        for (i, rule) in policy.rules.iter().enumerate() {
            if !matches!(rule.action.as_str(), "FailJob" | "FailIndex" | "Ignore" | "Count") {
                push(
                    out,
                    format!("spec.podFailurePolicy.rules[{i}].action"),
                    "must be FailJob, FailIndex, Ignore or Count",
                );
            }
            if rule.on_exit_codes.is_some() == rule.on_pod_conditions.is_some() {
                push(
                    out,
                    format!("spec.podFailurePolicy.rules[{i}]"),
                    "needs exactly one of onExitCodes and onPodConditions",
                );
            }
        }
    }
}

fn check_metadata(out: &mut Out, path: &str, meta: &ObjectMeta, named: bool) {
    if named {
        match &meta.name {
            // Pod names are subdomains, but the hostname is cut at 63: keep labels.
            Some(name) => check(out, names::dns1123_label(name), || format!("{path}.name")),
            None => push(out, format!("{path}.name"), "is required"),
        }
    }
    if let Some(ns) = &meta.namespace {
        check(out, names::dns1123_label(ns), || format!("{path}.namespace"));
    }
    for (key, value) in meta.labels.iter().flatten() {
        check(out, names::label_key(key), || format!("{path}.labels[{key:?}]"));
        check(out, names::label_value(value), || {
            format!("{path}.labels[{key:?}]")
        });
    }
    let mut total = 0;
    for (key, value) in meta.annotations.iter().flatten() {
        check(out, names::label_key(key), || {
            format!("{path}.annotations[{key:?}]")
        });
        total += key.len() + value.len();
    }
    if total > MAX_ANNOTATIONS_BYTES {
        push(
            out,
            format!("{path}.annotations"),
            format!("must total at most 256 KiB (is {total} bytes)"),
        );
    }
}

fn check_deadline(out: &mut Out, path: &str, deadline: Option<i64>) {
    if let Some(d) = deadline
        && !(1..=MAX_DEADLINE).contains(&d)
    {
        push(
            out,
            path,
            format!("must be between 1 and {MAX_DEADLINE} (is {d})"),
        );
    }
}

fn check_pod_spec(out: &mut Out, path: &str, spec: &core::PodSpec) {
    if spec.containers.is_empty() {
        push(
            out,
            format!("{path}.containers"),
            "at least one container is required",
        );
    }
    check_deadline(
        out,
        &format!("{path}.activeDeadlineSeconds"),
        spec.active_deadline_seconds,
    );
    if let Some(policy) = spec.restart_policy.as_deref()
        && !matches!(policy, "Always" | "OnFailure" | "Never")
    {
        push(
            out,
            format!("{path}.restartPolicy"),
            "must be Always, OnFailure or Never",
        );
    }
    for (field, value) in [
        ("serviceAccountName", &spec.service_account_name),
        ("priorityClassName", &spec.priority_class_name),
    ] {
        if let Some(value) = value {
            check(out, names::dns1123_subdomain(value), || format!("{path}.{field}"));
        }
    }
    for (key, value) in spec.node_selector.iter().flatten() {
        check(out, names::label_key(key), || {
            format!("{path}.nodeSelector[{key:?}]")
        });
        check(out, names::label_value(value), || {
            format!("{path}.nodeSelector[{key:?}]")
        });
    }
    let volumes = check_volumes(out, path, spec);
    let mut seen_names = BTreeSet::new();
    let mut seen_ports: BTreeMap<(i32, String), String> = BTreeMap::new();
    let groups = [
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
            true,
        ),
        ("containers", spec.containers.as_slice(), false),
    ];
    for (group, list, init) in groups {
        for (i, c) in list.iter().enumerate() {
            let here = format!("{path}.{group}[{i}]");
            check(out, names::dns1123_label(&c.name), || format!("{here}.name"));
            if !seen_names.insert(c.name.as_str()) {
                push(
                    out,
                    format!("{here}.name"),
                    format!("container name {:?} is used twice", c.name),
                );
            }
            check_container(out, &here, c, init, &volumes);
            for (j, port) in c.ports.iter().flatten().enumerate() {
                let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".to_owned());
                let key = (port.container_port, protocol.clone());
                match seen_ports.get(&key) {
                    Some(other) if other != &c.name => push(
                        out,
                        format!("{here}.ports[{j}]"),
                        format!(
                            "port {}/{protocol} is already used by container {other:?} (one network namespace)",
                            port.container_port
                        ),
                    ),
                    _ => {
                        seen_ports.insert(key, c.name.clone());
                    }
                }
            }
        }
    }
}

fn check_volumes<'a>(out: &mut Out, path: &str, spec: &'a core::PodSpec) -> BTreeSet<&'a str> {
    let mut volumes = BTreeSet::new();
    for (i, volume) in spec.volumes.iter().flatten().enumerate() {
        let here = format!("{path}.volumes[{i}]");
        check(out, names::dns1123_label(&volume.name), || format!("{here}.name"));
        if !volumes.insert(volume.name.as_str()) {
            push(
                out,
                format!("{here}.name"),
                format!("volume name {:?} is used twice", volume.name),
            );
        }
        if let Some(pvc) = &volume.persistent_volume_claim {
            check(out, names::dns1123_subdomain(&pvc.claim_name), || {
                format!("{here}.persistentVolumeClaim.claimName")
            });
        }
    }
    volumes
}

fn check_container(out: &mut Out, here: &str, c: &core::Container, init: bool, volumes: &BTreeSet<&str>) {
    match c.image.as_deref() {
        Some(image) => check(out, names::image_reference(image), || format!("{here}.image")),
        None => push(out, format!("{here}.image"), "is required"),
    }
    let restartable = match (c.restart_policy.as_deref(), init) {
        (None, _) => false,
        (Some("Always"), true) => true,
        (Some(other), true) => {
            push(
                out,
                format!("{here}.restartPolicy"),
                format!("must be Always on an init container (is {other:?})"),
            );
            false
        }
        (Some(_), false) => {
            push(
                out,
                format!("{here}.restartPolicy"),
                "is only allowed on init containers",
            );
            false
        }
    };
    if init && !restartable {
        for (field, probe) in [
            ("livenessProbe", &c.liveness_probe),
            ("readinessProbe", &c.readiness_probe),
            ("startupProbe", &c.startup_probe),
        ] {
            if probe.is_some() {
                push(
                    out,
                    format!("{here}.{field}"),
                    "is not allowed on a plain init container",
                );
            }
        }
        if c.lifecycle.is_some() {
            push(
                out,
                format!("{here}.lifecycle"),
                "is not allowed on a plain init container",
            );
        }
    }
    for (field, probe, single_success) in [
        ("livenessProbe", &c.liveness_probe, true),
        ("readinessProbe", &c.readiness_probe, false),
        ("startupProbe", &c.startup_probe, true),
    ] {
        if let Some(probe) = probe {
            check_probe(out, &format!("{here}.{field}"), probe, single_success);
        }
    }
    check_ports(out, here, c);
    check_env(out, here, c);
    check_mounts(out, here, c, volumes);
    if let Some(resources) = &c.resources {
        check_resources(out, &format!("{here}.resources"), resources);
    }
}

fn check_probe(out: &mut Out, path: &str, probe: &core::Probe, single_success: bool) {
    let handlers = usize::from(probe.exec.is_some())
        + usize::from(probe.http_get.is_some())
        + usize::from(probe.tcp_socket.is_some())
        + usize::from(probe.grpc.is_some());
    if handlers != 1 {
        push(
            out,
            path,
            format!("must have exactly one handler (has {handlers})"),
        );
    }
    if let Some(http) = &probe.http_get
        && http.path.as_deref().is_none_or(str::is_empty)
    {
        push(out, format!("{path}.httpGet.path"), "is required");
    }
    if single_success && probe.success_threshold.is_some_and(|s| s != 1) {
        push(out, format!("{path}.successThreshold"), "must be 1");
    }
    for (field, value) in [
        ("periodSeconds", probe.period_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("failureThreshold", probe.failure_threshold),
        ("successThreshold", probe.success_threshold),
    ] {
        if value.is_some_and(|v| v < 1) {
            push(out, format!("{path}.{field}"), "must be at least 1");
        }
    }
}

fn check_ports(out: &mut Out, here: &str, c: &core::Container) {
    let mut names_seen = BTreeSet::new();
    for (j, port) in c.ports.iter().flatten().enumerate() {
        let path = || format!("{here}.ports[{j}]");
        if !(1..=65535).contains(&port.container_port) {
            push(
                out,
                format!("{}.containerPort", path()),
                format!("must be 1..65535 (is {})", port.container_port),
            );
        }
        if let Some(protocol) = &port.protocol
            && !matches!(protocol.as_str(), "TCP" | "UDP" | "SCTP")
        {
            push(out, format!("{}.protocol", path()), "must be TCP, UDP or SCTP");
        }
        if let Some(name) = &port.name {
            check(out, names::port_name(name), || format!("{}.name", path()));
            if !names_seen.insert(name.as_str()) {
                push(
                    out,
                    format!("{}.name", path()),
                    format!("port name {name:?} is used twice in this container"),
                );
            }
        }
    }
}

fn check_env(out: &mut Out, here: &str, c: &core::Container) {
    for (j, var) in c.env.iter().flatten().enumerate() {
        let path = || format!("{here}.env[{j}]");
        check(out, names::env_var_name(&var.name), || format!("{}.name", path()));
        if var.value.as_deref().is_some_and(|v| !v.is_empty()) && var.value_from.is_some() {
            push(out, path(), "may not have both value and valueFrom");
        }
        if let Some(secret) = var.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()) {
            let path = || format!("{}.valueFrom.secretKeyRef", path());
            check(out, names::dns1123_subdomain(&secret.name), || {
                format!("{}.name", path())
            });
            check(out, names::config_key(&secret.key), || format!("{}.key", path()));
        }
    }
}

fn check_mounts(out: &mut Out, here: &str, c: &core::Container, volumes: &BTreeSet<&str>) {
    let mut paths = BTreeSet::new();
    for (j, mount) in c.volume_mounts.iter().flatten().enumerate() {
        let path = || format!("{here}.volumeMounts[{j}]");
        if !volumes.contains(mount.name.as_str()) {
            push(
                out,
                format!("{}.name", path()),
                format!("no volume named {:?}", mount.name),
            );
        }
        if mount.mount_path.is_empty() {
            push(out, format!("{}.mountPath", path()), "must not be empty");
        } else if !paths.insert(mount.mount_path.as_str()) {
            push(
                out,
                format!("{}.mountPath", path()),
                format!("{:?} is mounted twice", mount.mount_path),
            );
        }
        if let Some(sub) = &mount.sub_path
            && (sub.starts_with('/') || sub.split('/').any(|p| p == ".."))
        {
            push(
                out,
                format!("{}.subPath", path()),
                "must be relative and must not contain '..'",
            );
        }
    }
}

fn check_resources(out: &mut Out, path: &str, resources: &core::ResourceRequirements) {
    let parse = |out: &mut Out, field: &str, name: &str, q: &str| -> Option<Quantity> {
        let here = || format!("{path}.{field}[{name:?}]");
        if !names::resource_name(name) {
            push(out, here(), "is not a resource name");
        }
        match Quantity::parse(q) {
            Ok(q) if q.is_negative() => {
                push(out, here(), "must not be negative");
                None
            }
            Ok(q) => Some(q),
            Err(e) => {
                push(out, here(), e.to_string());
                None
            }
        }
    };
    let limits: BTreeMap<&str, Option<Quantity>> = resources
        .limits
        .iter()
        .flatten()
        .map(|(name, q)| (name.as_str(), parse(out, "limits", name, &q.0)))
        .collect();
    for (name, q) in resources.requests.iter().flatten() {
        let request = parse(out, "requests", name, &q.0);
        if let (Some(request), Some(Some(limit))) = (request, limits.get(name.as_str()))
            && request > *limit
        {
            push(
                out,
                format!("{path}.requests[{name:?}]"),
                format!("request {} exceeds limit {}", request.as_str(), limit.as_str()),
            );
        }
    }
}

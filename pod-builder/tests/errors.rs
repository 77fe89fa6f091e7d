//! What never leaves the renderer: each API-server rule, broken once, is an
//! error naming the field; and the Job and sidecar-mode rules.

use c8s_pod_builder::model::sidecar::{
    EnvVar, Port, PortRef, Problem, Quantity, ReadinessProbe, SidecarConfig,
};
use c8s_pod_builder::model::{PlanIdentity, TaskPlan};
use c8s_pod_builder::{
    Error, RunContext, SidecarMode, check_restricted, render_job, render_pod, validate_pod,
};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

fn plan() -> TaskPlan {
    let mut plan = TaskPlan::new(PlanIdentity::new("shop", "unit"), "golang:1.23");
    plan.command = vec!["sh".into(), "-ec".into(), "go test ./...".into()];
    plan
}

fn ctx() -> RunContext {
    RunContext::new("run-1", 1)
}

/// The violations of an `Invalid` error as `path: message` lines.
fn violations(result: Result<core::Pod, Error>) -> Vec<String> {
    match result {
        Err(Error::Invalid { violations, .. }) => violations.iter().map(ToString::to_string).collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// The typed problems of an `InvalidPlan` error, each with its field path.
fn problems(result: Result<core::Pod, Error>) -> Vec<(String, Problem)> {
    match result {
        Err(Error::InvalidPlan(errors)) => errors
            .iter()
            .map(|e| match (e.path(), e.rule()) {
                (Some(path), Some(problem)) => (path.to_string(), problem.clone()),
                _ => panic!("expected a broken rule, got {e:?}"),
            })
            .collect(),
        other => panic!("expected InvalidPlan, got {other:?}"),
    }
}

fn sidecar(name: &str, port: i32) -> SidecarConfig {
    let mut s = SidecarConfig::new(name, "redis:7");
    s.ports.push(Port::tcp(port));
    s
}

#[test]
fn native_sidecars_need_1_29() {
    let mut plan = plan();
    plan.sidecars.push(sidecar("redis", 6379));
    let forced = ctx()
        .with_kubernetes_minor(28)
        .with_sidecar_mode(SidecarMode::Native);
    let err = render_pod(&plan, &forced).expect_err("must be rejected");
    assert!(
        matches!(err, Error::NativeSidecarsUnsupported { kubernetes_minor: 28 }),
        "{err}"
    );
    // Unforced, 1.28 selects legacy: the sidecar is a plain container after main.
    let pod = render_pod(&plan, &ctx().with_kubernetes_minor(28)).expect("present in this test");
    let spec = pod.spec.expect("present in this test");
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["main", "redis"]);
    assert!(spec.containers[1].readiness_probe.is_some());
    assert!(spec.containers[1].restart_policy.is_none());
}

#[test]
fn env_names_and_secret_refs_are_checked() {
    let mut plan = plan();
    plan.env.push(EnvVar::value("1BAD", "x"));
    plan.env.push(EnvVar::secret("TOKEN", "Bad_Secret", "a/b"));
    let found = problems(render_pod(&plan, &ctx()));
    let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "env[0].name",
            "env[1].secretKeyRef.name",
            "env[1].secretKeyRef.key"
        ]
    );
    assert!(matches!(found[0].1, Problem::InvalidEnvName { .. }));
    assert!(matches!(found[1].1, Problem::InvalidSecretName { .. }));
    assert!(matches!(found[2].1, Problem::InvalidSecretKey { .. }));
}

#[test]
fn container_names_are_unique_across_init_and_regular() {
    let mut plan = plan();
    plan.sidecars.push(sidecar("main", 6379));
    // A plan built in code gets the same typed problem as a parsed sidecar file.
    let found = problems(render_pod(&plan, &ctx()));
    assert_eq!(
        found,
        [(
            "sidecars[0].name".to_owned(),
            Problem::ReservedName { name: "main".into() }
        )]
    );
    // The object check stays as the last line of defence.
    plan.sidecars[0].name = "cache".into();
    let mut pod = render_pod(&plan, &ctx()).expect("valid");
    pod.spec
        .as_mut()
        .expect("present")
        .init_containers
        .as_mut()
        .expect("present")[1]
        .name = "main".into();
    let found = violations(validate_pod(&pod).map(|()| pod));
    assert_eq!(
        found,
        ["spec.containers[0].name: container name \"main\" is used twice"]
    );
}

#[test]
fn the_same_port_twice_in_one_pod_is_rejected() {
    let mut plan = plan();
    plan.sidecars.push(sidecar("a", 8080));
    plan.sidecars.push(sidecar("b", 8080));
    let found = problems(render_pod(&plan, &ctx()));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "sidecars[1].ports[0]");
    assert!(matches!(found[0].1, Problem::PortConflict { port: 8080, .. }));
    // The object check stays as the last line of defence.
    plan.sidecars[1].ports[0] = Port::tcp(8081);
    let mut pod = render_pod(&plan, &ctx()).expect("valid");
    pod.spec
        .as_mut()
        .expect("present")
        .init_containers
        .as_mut()
        .expect("present")[2]
        .ports
        .as_mut()
        .expect("present")[0]
        .container_port = 8080;
    let found = violations(validate_pod(&pod).map(|()| pod));
    assert_eq!(
        found,
        [
            "spec.initContainers[2].ports[0]: port 8080/TCP is already used by container \"a\" (one network namespace)"
        ]
    );
}

#[test]
fn probes_need_exactly_one_handler_and_quantities_must_fit() {
    let mut plan = plan();
    let mut s = sidecar("web", 80);
    let mut probe = ReadinessProbe::http("", PortRef::Number(80));
    probe.tcp_socket = ReadinessProbe::tcp(PortRef::Number(80)).tcp_socket;
    s.readiness = c8s_pod_builder::model::sidecar::Readiness::Probe(probe);
    s.resources
        .requests
        .insert("cpu".into(), Quantity::parse("2").expect("present in this test"));
    s.resources
        .limits
        .insert("cpu".into(), Quantity::parse("1").expect("present in this test"));
    plan.sidecars.push(s);
    let found = problems(render_pod(&plan, &ctx()));
    let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "sidecars[0].resources.requests.cpu",
            "sidecars[0].readiness",
            "sidecars[0].readiness.httpGet.path",
        ],
        "{found:?}"
    );
    assert!(matches!(found[0].1, Problem::RequestExceedsLimit { .. }));
    assert!(matches!(found[1].1, Problem::ProbeHandlers { found: 2 }));
}

#[test]
fn deadlines_fit_an_int32() {
    let mut plan = plan();
    plan.timeout_seconds = Some(1 << 31);
    let found = violations(render_pod(&plan, &ctx()));
    assert_eq!(
        found,
        ["spec.activeDeadlineSeconds: must be between 1 and 2147483647 (is 2147483648)"]
    );
    plan.timeout_seconds = Some(0);
    assert_eq!(
        problems(render_pod(&plan, &ctx())),
        [("timeoutSeconds".to_owned(), Problem::NotPositive { value: 0 })]
    );
}

#[test]
fn scratch_on_a_shared_path_is_a_duplicate_mount() {
    let mut plan = plan();
    let mut s = sidecar("db", 5432);
    s.scratch.push("/workspace".into());
    plan.sidecars.push(s);
    let found = violations(render_pod(&plan, &ctx()));
    assert_eq!(
        found,
        ["spec.initContainers[1].volumeMounts[1].mountPath: \"/workspace\" is mounted twice"]
    );
}

#[test]
fn paths_commands_and_labels_are_checked_before_rendering() {
    let mut bad = plan();
    bad.outputs.push("../etc".into());
    assert!(matches!(render_pod(&bad, &ctx()), Err(Error::InvalidPath { .. })));

    let mut bad = plan();
    bad.caches.push("/abs".into());
    let err = render_pod(&bad, &ctx()).expect_err("must be rejected");
    assert_eq!(
        err.to_string(),
        "step \"unit\": caches[0] \"/abs\" must be relative to the workspace"
    );

    let mut bad = plan();
    bad.command.clear();
    bad.outputs.push("dist".into());
    assert!(matches!(
        render_pod(&bad, &ctx()),
        Err(Error::OutputsNeedCommand { .. })
    ));

    let err = render_pod(&plan(), &ctx().with_label("c8s.dev/run", "x")).expect_err("must be rejected");
    assert!(matches!(err, Error::ReservedLabel { .. }), "{err}");

    let found = violations(render_pod(&plan(), &ctx().with_label("team", "bad value!")));
    assert_eq!(found.len(), 1, "{found:?}");
}

#[test]
fn jobs_fail_fast_ignore_disruptions_and_have_owners() {
    let mut plan = plan();
    plan.timeout_seconds = Some(600);
    let owner = OwnerReference {
        api_version: "c8s.dev/v1".into(),
        kind: "PipelineRun".into(),
        name: "run-1".into(),
        uid: "0b0e6a9c-0000-4000-8000-000000000001".into(),
        controller: Some(true),
        ..Default::default()
    };
    let job = render_job(
        &plan,
        &ctx().with_owner_reference(owner.clone()).with_job_ttl_seconds(60),
    )
    .expect("present in this test");
    assert_eq!(job.metadata.owner_references, Some(vec![owner]));
    let spec = job.spec.expect("present in this test");
    assert_eq!(spec.backoff_limit, Some(0));
    assert_eq!(spec.active_deadline_seconds, Some(600));
    assert_eq!(spec.ttl_seconds_after_finished, Some(60));
    let rule = &spec.pod_failure_policy.expect("present in this test").rules[0];
    assert_eq!(rule.action, "Ignore");
    assert_eq!(
        rule.on_pod_conditions.as_ref().expect("present in this test")[0].type_,
        "DisruptionTarget"
    );
    let template = spec.template;
    assert_eq!(
        template
            .spec
            .expect("present in this test")
            .restart_policy
            .as_deref(),
        Some("Never")
    );
    let labels = template
        .metadata
        .expect("present in this test")
        .labels
        .expect("present in this test");
    assert!(!labels.contains_key("batch.kubernetes.io/job-name"));
    assert_eq!(labels["c8s.dev/step"], "unit");
}

#[test]
fn check_restricted_finds_each_rule() {
    let spec = core::PodSpec {
        host_network: Some(true),
        containers: vec![core::Container {
            name: "x".into(),
            security_context: Some(core::SecurityContext {
                privileged: Some(true),
                run_as_user: Some(0),
                capabilities: Some(core::Capabilities {
                    add: Some(vec!["SYS_ADMIN".into()]),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }],
        volumes: Some(vec![core::Volume {
            name: "host".into(),
            host_path: Some(core::HostPathVolumeSource {
                path: "/".into(),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let problems = check_restricted(&spec);
    for expected in [
        "hostNetwork must not be true",
        "volume host: hostPath volumes are not allowed",
        "containers[0] (x): privileged must not be true",
        "containers[0] (x): capability SYS_ADMIN must not be added",
        "volume host: hostPath volumes are not allowed",
        "containers[0] (x): allowPrivilegeEscalation must be false",
        "containers[0] (x): runAsNonRoot must be true (here or on the pod)",
        "containers[0] (x): runAsUser must not be 0",
        "containers[0] (x): seccompProfile must be RuntimeDefault or Localhost (here or on the pod)",
        "containers[0] (x): capabilities.drop must include ALL",
        "containers[0] (x): capabilities.add may only hold NET_BIND_SERVICE, not SYS_ADMIN",
    ] {
        assert!(
            problems.iter().any(|p| p == expected),
            "missing {expected:?} in {problems:#?}"
        );
    }
    assert_eq!(c8s_pod_builder::pod_security_level(&spec), None);
}

#[test]
fn profiles_say_what_a_pod_meets() {
    use c8s_pod_builder::{SecurityProfile, pod_security_level};
    let level = |plan: &TaskPlan, ctx: &RunContext| {
        let pod = render_pod(plan, ctx).expect("renders");
        pod_security_level(pod.spec.as_ref().expect("spec"))
    };
    let mut plan = plan();
    plan.sidecars.push(sidecar("redis", 6379));
    assert_eq!(level(&plan, &ctx()), Some(SecurityProfile::Restricted));
    // Baseline profile: images keep their own user and capabilities.
    let baseline = ctx().with_security_profile(SecurityProfile::Baseline);
    assert_eq!(level(&plan, &baseline), Some(SecurityProfile::Baseline));
    // A sidecar that opts out of non-root lowers the pod to baseline, never silently.
    plan.sidecars[0].run_as_root = true;
    let pod = render_pod(&plan, &ctx()).expect("renders");
    let spec = pod.spec.expect("spec");
    assert_eq!(pod_security_level(&spec), Some(SecurityProfile::Baseline));
    let problems = check_restricted(&spec);
    assert!(
        !problems.is_empty() && problems.iter().all(|p| p.contains("(redis)")),
        "{problems:?}"
    );
}

#[test]
fn long_run_ids_become_hashed_label_values_but_full_annotations() {
    let run = format!("nightly/{}", "x".repeat(100));
    let pod = render_pod(&plan(), &RunContext::new(run.clone(), 3)).expect("renders");
    let labels = pod.metadata.labels.expect("labels");
    let value = &labels["c8s.dev/run"];
    assert!(value.len() <= 63 && value.starts_with("nightly-x"), "{value}");
    assert_eq!(
        pod.metadata.annotations.expect("annotations")["c8s.dev/run-id"],
        run
    );
}

//! Pods that really run (issue 11): each fix of a pod that rendered valid but
//! failed or hung at runtime, asserted on the rendered spec.

use c8s_pod_builder::model::sidecar::{Port, ReadinessProbe, SidecarConfig, validate::validate_sidecars};
use c8s_pod_builder::model::{PlanIdentity, TaskPlan};
use c8s_pod_builder::{Error, RunContext, SidecarMode, render_job, render_pod};
use k8s_openapi::api::core::v1 as core;

fn plan() -> TaskPlan {
    let mut plan = TaskPlan::new(PlanIdentity::new("shop", "unit"), "golang:1.23");
    plan.command = vec!["sh".into(), "-ec".into(), "go test ./...".into()];
    plan
}

fn ctx() -> RunContext {
    RunContext::new("run-1", 1)
}

fn spec(pod: &core::Pod) -> &core::PodSpec {
    pod.spec.as_ref().expect("spec")
}

fn init<'a>(pod: &'a core::Pod, name: &str) -> &'a core::Container {
    spec(pod)
        .init_containers
        .iter()
        .flatten()
        .find(|c| c.name == name)
        .expect("init container")
}

#[test]
fn huge_readiness_timeouts_render_without_overflow() {
    let mut plan = plan();
    let mut db = SidecarConfig::new("db", "redis:7");
    db.ports.push(Port::tcp(6379));
    db.readiness = c8s_pod_builder::model::sidecar::Readiness::Probe(
        ReadinessProbe::tcp(c8s_pod_builder::model::sidecar::PortRef::Number(6379))
            .with_timeout_seconds(i32::MAX)
            .with_period_seconds(1),
    );
    plan.sidecars.push(db);
    let pod = render_pod(&plan, &ctx()).expect("renders");
    let probe = init(&pod, "db").startup_probe.as_ref().expect("probe");
    assert_eq!(probe.failure_threshold, Some(i32::MAX));
    assert_eq!(probe.period_seconds, Some(1));
}

#[test]
fn udp_and_sctp_ports_get_no_default_readiness() {
    let mut plan = plan();
    let mut dns = SidecarConfig::new("dns", "coredns/coredns:1.11.1");
    let mut udp = Port::tcp(53);
    udp.protocol = c8s_pod_builder::model::sidecar::Protocol::Udp;
    dns.ports.push(udp);
    plan.sidecars.push(dns.clone());
    let pod = render_pod(&plan, &ctx()).expect("renders");
    assert!(init(&pod, "dns").startup_probe.is_none());
    // A TCP port next to it gets the check, on that port.
    dns.ports.push(Port::tcp(8053));
    assert_eq!(
        dns.effective_readiness(),
        Some(ReadinessProbe::tcp(
            c8s_pod_builder::model::sidecar::PortRef::Number(8053)
        ))
    );
}

#[test]
fn uids_beyond_int32_are_refused() {
    let mut db = SidecarConfig::new("db", "redis:7");
    db.run_as_user = Some(1 << 31);
    let errors = validate_sidecars(&[db]).expect_err("refused").to_string();
    assert!(errors.contains("must be at most 2147483647"), "{errors}");
}

fn all_containers(pod: &core::Pod) -> Vec<&core::Container> {
    let spec = spec(pod);
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .collect()
}

fn env_value<'a>(container: &'a core::Container, name: &str) -> Option<&'a str> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

fn main_of(pod: &core::Pod) -> &core::Container {
    spec(pod)
        .containers
        .iter()
        .find(|c| c.name == "main")
        .expect("main")
}

/// A plan with a checkout, an input, an output, a sidecar: every container kind.
fn full_plan() -> TaskPlan {
    let mut plan = plan();
    plan.checkout = Some("source".into());
    plan.outputs = vec!["out/bin".into()];
    plan.inputs = vec![c8s_pod_builder::model::PlanInput::new("build", "dist")];
    let mut db = SidecarConfig::new("db", "example.com/db:1");
    db.ports.push(Port::tcp(5000));
    db.run_as_user = Some(4242);
    plan.sidecars.push(db);
    plan
}

fn full_ctx() -> RunContext {
    ctx()
        .with_repository("https://github.com/example/orders.git")
        .with_commit("0123456789abcdef0123456789abcdef01234567")
        .with_branch("feature/$$(x)")
}

#[test]
fn every_container_may_use_git_on_the_checkout_and_has_a_writable_home() {
    let pod = render_pod(&full_plan(), &full_ctx()).expect("renders");
    let containers = all_containers(&pod);
    assert_eq!(containers.len(), 5);
    for c in containers {
        assert_eq!(
            env_value(c, "GIT_CONFIG_KEY_0"),
            Some("safe.directory"),
            "{}",
            c.name
        );
        assert_eq!(
            env_value(c, "GIT_CONFIG_VALUE_0"),
            Some("/workspace/source"),
            "{}",
            c.name
        );
        assert_eq!(env_value(c, "HOME"), Some("/c8s/home"), "{}", c.name);
        assert_eq!(
            env_value(c, "XDG_CACHE_HOME"),
            Some("/c8s/home/.cache"),
            "{}",
            c.name
        );
        let home = c
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == "/c8s/home")
            .expect("home mount");
        assert_eq!(
            (home.name.as_str(), home.sub_path.as_deref()),
            ("c8s-home", Some(c.name.as_str()))
        );
    }
    // The user's HOME wins, and is not set twice.
    let mut plan = full_plan();
    plan.env
        .push(c8s_pod_builder::model::sidecar::EnvVar::value("HOME", "/home/me"));
    let pod = render_pod(&plan, &full_ctx()).expect("renders");
    let homes: Vec<_> = main_of(&pod)
        .env
        .iter()
        .flatten()
        .filter(|e| e.name == "HOME")
        .collect();
    assert_eq!(homes.len(), 1);
    assert_eq!(homes[0].value.as_deref(), Some("/home/me"));
}

#[test]
fn main_gets_commit_and_branch_and_every_dollar_reaches_the_process_literally() {
    let mut plan = full_plan();
    plan.args = vec!["echo \"pid $$\" $(date)".into()];
    plan.command = vec!["sh".into(), "-ec".into()];
    plan.env
        .push(c8s_pod_builder::model::sidecar::EnvVar::value("PRICE", "$(5)"));
    let pod = render_pod(&plan, &full_ctx()).expect("renders");
    let main = main_of(&pod);
    assert_eq!(
        env_value(main, "C8S_COMMIT"),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    // `feature/$$(x)` is a valid branch; the kubelet would make it `feature/$(x)`.
    assert_eq!(env_value(main, "C8S_BRANCH"), Some("feature/$$$$(x)"));
    assert_eq!(env_value(main, "PRICE"), Some("$$(5)"));
    let command = main.command.as_ref().expect("command");
    assert_eq!(
        command.last().map(String::as_str),
        Some("echo \"pid $$$\" $$(date)")
    );
}

#[test]
fn outputs_are_created_first_and_the_wrapper_forwards_signals() {
    let pod = render_pod(&full_plan(), &full_ctx()).expect("renders");
    let command = main_of(&pod).command.clone().expect("command");
    assert_eq!(&command[..2], ["sh", "-c"]);
    assert!(command[2].contains("kill -TERM 0"));
    assert_eq!(
        &command[3..],
        ["c8s-main", "1", "out/bin", "sh", "-ec", "go test ./..."]
    );
    // A binary (not a shell) without outputs runs as PID 1 itself.
    let mut plan = plan();
    plan.command = vec!["/usr/local/bin/server".into(), "--port=$PORT".into()];
    let pod = render_pod(&plan, &ctx()).expect("renders");
    assert_eq!(
        main_of(&pod).command.as_deref(),
        Some(&["/usr/local/bin/server".to_owned(), "--port=$PORT".to_owned()][..])
    );
}

#[test]
fn artifact_helper_watches_the_heartbeat_and_leaves_no_tmp_files() {
    let pod = render_pod(&full_plan(), &full_ctx()).expect("renders");
    let helper = spec(&pod)
        .containers
        .iter()
        .find(|c| c.name == "artifact-helper")
        .expect("helper");
    let script = &helper.command.as_ref().expect("command")[2];
    assert!(script.contains("/workspace/.c8s/main-heartbeat"));
    assert!(script.contains("exit 1"));
    assert!(script.contains("trap 'if [ -n \"$tmp\" ]; then rm -f \"$tmp\"; fi' EXIT"));
    let wrapper = &main_of(&pod).command.as_ref().expect("command")[2];
    assert!(wrapper.contains("/workspace/.c8s/main-heartbeat"));
}

#[test]
fn every_pod_has_a_deadline_a_sized_workspace_and_a_cheap_fs_group_policy() {
    let pod = render_pod(&plan(), &ctx()).expect("renders");
    let spec = spec(&pod);
    assert_eq!(spec.active_deadline_seconds, Some(3600));
    let pod = render_pod(&plan(), &ctx().with_default_deadline_seconds(600)).expect("renders");
    assert_eq!(
        pod.spec.as_ref().and_then(|s| s.active_deadline_seconds),
        Some(600)
    );
    let mut timed = plan();
    timed.timeout_seconds = Some(120);
    let pod = render_pod(&timed, &ctx()).expect("renders");
    assert_eq!(
        pod.spec.as_ref().and_then(|s| s.active_deadline_seconds),
        Some(120)
    );
    let workspace = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "workspace")
        .expect("workspace");
    assert_eq!(
        workspace
            .empty_dir
            .as_ref()
            .and_then(|e| e.size_limit.as_ref())
            .map(|q| q.0.as_str()),
        Some("10Gi")
    );
    assert_eq!(
        spec.security_context
            .as_ref()
            .and_then(|s| s.fs_group_change_policy.as_deref()),
        Some("OnRootMismatch")
    );
    assert!(matches!(
        render_pod(&plan(), &ctx().with_default_deadline_seconds(0)),
        Err(Error::InvalidSetting { .. })
    ));
    assert!(matches!(
        render_pod(&plan(), &ctx().with_workspace_size_limit("lots")),
        Err(Error::InvalidSetting { .. })
    ));
}

#[test]
fn commits_branches_and_repositories_are_checked_before_git_sees_them() {
    for commit in ["abc1234", "--upload-pack=touch /tmp/pwned"] {
        let result = render_pod(&plan(), &ctx().with_commit(commit));
        assert!(matches!(result, Err(Error::InvalidCommit { .. })), "{result:?}");
    }
    let result = render_pod(&plan(), &ctx().with_branch("--upload-pack=x"));
    assert!(matches!(result, Err(Error::InvalidBranch { .. })), "{result:?}");
    let result = render_pod(
        &plan(),
        &ctx().with_repository("https://ci:tok3n@github.com/org/private.git"),
    );
    let message = result.expect_err("refused").to_string();
    assert!(
        message.contains("https://github.com/org/private.git"),
        "{message}"
    );
    assert!(!message.contains("tok3n"), "{message}");
    // Refs reach git after `--`.
    let pod = render_pod(&full_plan(), &full_ctx()).expect("renders");
    let clone = init(&pod, "git-clone");
    assert!(clone.command.as_ref().expect("command")[2].contains("git fetch -q --depth 1 -- origin"));
}

#[test]
fn git_credentials_are_mounted_into_git_clone_only() {
    let ctx = full_ctx().with_git_secret("orders-git");
    let pod = render_pod(&full_plan(), &ctx).expect("renders");
    let volume = spec(&pod)
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "git-credentials")
        .expect("volume");
    let secret = volume.secret.as_ref().expect("secret volume");
    assert_eq!(secret.secret_name.as_deref(), Some("orders-git"));
    for c in all_containers(&pod) {
        let mounted = c
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == "git-credentials");
        assert_eq!(mounted, c.name == "git-clone", "{}", c.name);
    }
    assert!(c8s_pod_builder::check_restricted(spec(&pod)).is_empty());
    // The helper reads the credential from the file at run time; no env carries it.
    let clone = init(&pod, "git-clone");
    assert!(clone.command.as_ref().expect("command")[2].contains("cat /c8s/git-credentials/password"));
    assert!(!clone.env.iter().flatten().any(|e| e.value_from.is_some()));
    assert!(matches!(
        render_pod(&full_plan(), &full_ctx().with_git_secret("Bad_Name")),
        Err(Error::InvalidSetting { .. })
    ));
}

#[test]
fn files_c8s_creates_are_group_writable() {
    for script in [
        c8s_pod_builder::scripts::GIT_CLONE,
        c8s_pod_builder::scripts::EXTRACT_INPUT,
    ] {
        assert!(script.starts_with("umask 002\n"));
    }
    assert!(c8s_pod_builder::scripts::GIT_CLONE.contains("git init -q --shared=group"));
    assert!(c8s_pod_builder::scripts::EXTRACT_INPUT.contains("chmod -R g+w"));
}

#[test]
fn legacy_mode_waits_in_main_and_refuses_jobs_that_cannot_finish() {
    let legacy = full_ctx().with_sidecar_mode(SidecarMode::Legacy);
    let pod = render_pod(&full_plan(), &legacy).expect("renders");
    assert_eq!(env_value(main_of(&pod), "C8S_WAIT_PORTS"), Some("5000:120"));
    let job = render_job(&full_plan(), &legacy);
    assert!(matches!(job, Err(Error::LegacyJobWithSidecars { .. })), "{job:?}");
    // Without sidecars a legacy Job is fine.
    let mut alone = full_plan();
    alone.sidecars.clear();
    assert!(render_job(&alone, &legacy).is_ok());
    // main's wrapper does the waiting, so it needs main's command.
    let mut no_command = full_plan();
    no_command.outputs.clear();
    no_command.command.clear();
    let result = render_pod(&no_command, &legacy);
    assert!(
        matches!(result, Err(Error::LegacyNeedsCommand { .. })),
        "{result:?}"
    );
}

#[test]
fn well_known_service_images_start_under_the_restricted_profile() {
    let mut plan = plan();
    plan.sidecars.push(SidecarConfig::new("postgres", "postgres:16"));
    plan.sidecars.push(SidecarConfig::new("cache", "redis:7-alpine"));
    let mut pinned = SidecarConfig::new("mongo", "docker.io/library/mongo:7");
    pinned.run_as_user = Some(1234);
    plan.sidecars.push(pinned);
    let pod = render_pod(&plan, &ctx()).expect("renders");
    let uid = |c: &core::Container| c.security_context.as_ref().and_then(|s| s.run_as_user);
    let postgres = init(&pod, "postgres");
    assert_eq!(uid(postgres), Some(999));
    assert_eq!(
        env_value(postgres, "PGDATA"),
        Some("/var/lib/postgresql/data/pgdata")
    );
    let paths: Vec<&str> = postgres
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert!(paths.contains(&"/var/lib/postgresql/data") && paths.contains(&"/var/run/postgresql"));
    let redis = init(&pod, "cache");
    assert_eq!(uid(redis), Some(999));
    assert!(
        redis
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == "/data")
    );
    // An explicit runAsUser wins over the table.
    let mongo = init(&pod, "mongo");
    assert_eq!(uid(mongo), Some(1234));
    assert!(
        !mongo
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == "/data/db")
    );
    assert!(c8s_pod_builder::check_restricted(spec(&pod)).is_empty());
}

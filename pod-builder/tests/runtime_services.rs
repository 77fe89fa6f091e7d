//! Runtime cases for sidecars (issue 11 section 2): default readiness only on
//! TCP, a sidecar that never becomes ready, legacy mode, service images under
//! the restricted profile, the largest readiness timeout. Run under kubelet
//! rules (`common/kubelet`).

#[path = "common/kubelet/mod.rs"]
mod kubelet;

use c8s_pod_builder::model::sidecar::parse_sidecars;
use c8s_pod_builder::{Error, SidecarMode, render_job, render_pod};
use kubelet::fixtures::{example_kubelet, origin, origin_context as ctx, service, shell_step as step};
use kubelet::{Kubelet, Phase};

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn a_udp_only_sidecar_gets_no_tcp_check_and_main_runs() {
    let origin = origin();
    let mut plan = step("echo main ran");
    plan.sidecars = parse_sidecars(
        "s.yml",
        "- name: statsd\n  image: example/statsd:1\n  ports: [{ containerPort: 8125, protocol: UDP }]\n",
    )
    .expect("sidecar");
    let kubelet = Kubelet::default().image("example/statsd", service("nc -u -l -p 8125 >/dev/null &"));
    let run = kubelet.run(&render_pod(&plan, &ctx(&origin)).expect("render"));
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
    assert_eq!(run.container("statsd").restarts, 0, "{}", run.logs());
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn a_sidecar_that_never_becomes_ready_ends_the_step_at_its_deadline() {
    let origin = origin();
    let mut plan = step("echo main ran");
    plan.timeout_seconds = Some(14);
    plan.sidecars = parse_sidecars(
        "s.yml",
        "- name: db\n  image: example/db:1\n  ports: [{ containerPort: 15432 }]\n  readiness: { tcpSocket: { port: 15432 }, periodSeconds: 1, timeoutSeconds: 3 }\n",
    )
    .expect("sidecar");
    // Stands in for a database that never listens.
    let kubelet = Kubelet::default().image("example/db", service("echo starting"));
    let run = kubelet.run(&render_pod(&plan, &ctx(&origin)).expect("render"));
    assert_eq!(run.phase, Phase::Failed, "{}", run.logs());
    assert_eq!(run.reason.as_deref(), Some("DeadlineExceeded"), "{}", run.logs());
    assert!(
        !run.containers.contains_key("main"),
        "main never starts:\n{}",
        run.logs()
    );
    // The startup probe gave up after ~3 s (timeoutSeconds), so the kubelet restarted it.
    assert!(run.container("db").restarts >= 1, "{}", run.logs());
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn legacy_main_waits_for_its_services_and_a_legacy_job_with_sidecars_is_refused() {
    let origin = origin();
    let mut plan = step("redis-cli -h 127.0.0.1 ping | grep -qx PONG");
    plan.sidecars = parse_sidecars(
        "s.yml",
        "- name: cache\n  image: example/slow-redis:1\n  ports: [{ containerPort: 6379 }]\n",
    )
    .expect("sidecar");
    // Stands in for a Redis that takes 3 s to listen.
    let kubelet = Kubelet::default()
        .image(
            "example/slow-redis",
            service("sleep 3; redis-server --port 6379 --save '' &"),
        )
        .delete_after("main");
    let ctx = ctx(&origin).with_sidecar_mode(SidecarMode::Legacy);
    let run = kubelet.run(&render_pod(&plan, &ctx).expect("render"));
    assert_eq!(run.container("main").reason, "Completed", "{}", run.logs());
    let err = render_job(&plan, &ctx).expect_err("a legacy Job with sidecars never completes");
    assert!(matches!(err, Error::LegacyJobWithSidecars { .. }), "{err}");
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn postgres_and_redis_start_under_the_restricted_profile_with_nothing_said() {
    let origin = origin();
    let mut plan = step(
        "PGPASSWORD=test psql -h 127.0.0.1 -U postgres -tAc 'select 1' | grep -qx 1\nredis-cli -h 127.0.0.1 save",
    );
    plan.sidecars = parse_sidecars(
        "s.yml",
        "- name: postgres\n  image: postgres:16\n  env: [{ name: POSTGRES_PASSWORD, value: test }]\n  ports: [{ containerPort: 5432 }]\n- name: redis\n  image: redis:7\n  ports: [{ containerPort: 6379 }]\n",
    )
    .expect("sidecars");
    let run = example_kubelet().run(&render_pod(&plan, &ctx(&origin)).expect("render"));
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn the_largest_readiness_timeout_renders_and_runs() {
    let origin = origin();
    let mut plan = step("true");
    plan.sidecars = parse_sidecars(
        "s.yml",
        "- name: web\n  image: example/web:1\n  ports: [{ containerPort: 18080 }]\n  readiness: { tcpSocket: { port: 18080 }, periodSeconds: 1, timeoutSeconds: 2147483647 }\n",
    )
    .expect("sidecar");
    let pod = render_pod(&plan, &ctx(&origin)).expect("renders, no panic");
    let kubelet = Kubelet::default().image("example/web", service("httpd -f -p 127.0.0.1:18080 -h /tmp &"));
    let run = kubelet.run(&pod);
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
}

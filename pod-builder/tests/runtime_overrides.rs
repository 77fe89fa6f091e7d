//! Runtime cases for what issue 16 changes in what runs: sidecar names and
//! `aliases` through the kubelet's /etc/hosts, a sidecar `liveness` check
//! that restarts a hung service while `main` runs on (its `readinessProbe`
//! taking it out of Ready first), the service account token that
//! `serviceAccountName` brings, and the nightly example's `finally` step with
//! its outcome env filled in as the runner does. Run under kubelet rules
//! (`common/kubelet`).

#[path = "common/kubelet/mod.rs"]
mod kubelet;

use std::time::Duration;

use c8s_pod_builder::model::sidecar::parse_sidecars;
use c8s_pod_builder::model::{MemorySource, parse_pipeline};
use c8s_pod_builder::render_pod;
use kubelet::fixtures::{origin, origin_context as ctx, service, shell_step as step};
use kubelet::managed::{FAKE_TOKEN, SERVICE_ACCOUNT_DIR};
use kubelet::{Kubelet, Phase};

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn main_reaches_a_sidecar_by_its_name_and_its_alias() {
    let origin = origin();
    let mut plan = step(
        "busybox wget -qO- http://cache:16379/ping\nbusybox wget -qO- http://kv:16379/ping\ncat /etc/hosts",
    );
    plan.sidecars = parse_sidecars(
        "s.yml",
        "- name: cache\n  image: example/kv:1\n  ports: [{ containerPort: 16379 }]\n  aliases: [kv]\n",
    )
    .expect("sidecar");
    let kubelet = Kubelet::default().image(
        "example/kv",
        service("mkdir -p /tmp/www; echo pong-from-cache > /tmp/www/ping\nhttpd -f -p 127.0.0.1:16379 -h /tmp/www &"),
    );
    let run = kubelet.run(&render_pod(&plan, &ctx(&origin)).expect("render"));
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
    let log = &run.container("main").log;
    assert_eq!(log.matches("pong-from-cache").count(), 2, "{}", run.logs());
    assert!(log.contains("127.0.0.1\tcache\tkv\n"), "{}", run.logs());
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn a_hung_sidecar_is_restarted_by_its_liveness_check_while_main_runs_on() {
    use std::os::unix::fs::PermissionsExt;
    let origin = origin();
    // Counts the service's starts on the host (each start has a fresh /tmp).
    let marks = kubelet::scratch_root().join(format!("liveness-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&marks);
    std::fs::create_dir_all(&marks).expect("marks dir");
    std::fs::set_permissions(&marks, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let mark = marks.join("starts");
    let mut plan = step(
        "busybox wget -qO- http://svc:16380/gen\n\
         until busybox wget -qO- http://svc:16380/gen 2>/dev/null | grep 'generation 2'; do sleep 0.5; done\n\
         echo service back",
    );
    plan.timeout_seconds = Some(60);
    plan.sidecars = parse_sidecars(
        "s.yml",
        "- name: svc\n  image: example/flaky:1\n  ports: [{ containerPort: 16380 }]\n  readiness: { tcpSocket: { port: 16380 }, periodSeconds: 1 }\n  liveness: { tcpSocket: { port: 16380 }, periodSeconds: 1, timeoutSeconds: 5 }\n",
    )
    .expect("sidecar");
    // The first start answers for 4 s, then hangs: alive, no longer listening.
    let script = format!(
        "echo start >> {mark}; n=$(wc -l < {mark})\nmkdir -p /tmp/www; echo \"generation $n\" > /tmp/www/gen\n\
         httpd -f -p 127.0.0.1:16380 -h /tmp/www &\n\
         if [ \"$n\" = 1 ]; then sleep 4; kill $!; echo stopped answering; fi",
        mark = mark.display()
    );
    let mut kubelet = Kubelet::default()
        .image("example/flaky", service(&script))
        .limit(Duration::from_secs(60));
    kubelet.backoff = Duration::from_secs(1);
    let run = kubelet.run(&render_pod(&plan, &ctx(&origin)).expect("render"));
    let _ = std::fs::remove_dir_all(&marks);
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
    let main = run.container("main");
    assert_eq!(main.restarts, 0, "{}", run.logs());
    assert!(main.log.contains("generation 1"), "{}", run.logs());
    assert!(main.log.contains("generation 2\nservice back"), "{}", run.logs());
    let svc = run.container("svc");
    assert_eq!(svc.restarts, 1, "{}", run.logs());
    // Its readiness (3 misses) went before its liveness (5 misses) restarted it.
    assert_eq!(svc.became_unready, 1, "{}", run.logs());
    assert!(svc.log.contains("stopped answering"), "{}", run.logs());
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn a_named_service_account_brings_its_token_and_none_brings_none() {
    let origin = origin();
    let token = format!("{SERVICE_ACCOUNT_DIR}/token");
    let mut plan = step(&format!(
        "if [ -e {token} ]; then echo \"uid $(id -u) token $(cat {token})\"; else echo no token; fi"
    ));
    let run = Kubelet::default().run(&render_pod(&plan, &ctx(&origin)).expect("render"));
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
    assert!(run.container("main").log.contains("no token"), "{}", run.logs());

    plan.pod.service_account_name = Some("ci-runner".into());
    let run = Kubelet::default().run(&render_pod(&plan, &ctx(&origin)).expect("render"));
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
    let log = &run.container("main").log;
    assert!(log.contains(&format!("token {FAKE_TOKEN}")), "{}", run.logs());
    // Read as main's own UID, not as root.
    assert!(log.contains("uid ") && !log.contains("uid 0 "), "{}", run.logs());
}

const NIGHTLY: &str = include_str!("../../examples/pipelines/nightly.c8s.yaml");

/// What the runner does to a finally step's pod when it creates it: replace
/// the value of `main`'s env variable (as `StepObject::set_main_env`).
fn set_main_env(pod: &mut k8s_openapi::api::core::v1::Pod, name: &str, value: &str) {
    let spec = pod.spec.as_mut().expect("spec");
    let main = spec
        .containers
        .iter_mut()
        .find(|c| c.name == "main")
        .expect("main");
    let var = main
        .env
        .iter_mut()
        .flatten()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("the rendered finally pod declares {name}"));
    var.value = Some(value.into());
    var.value_from = None;
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn the_nightly_notify_step_names_the_outcomes_the_runner_fills_in() {
    let origin = origin();
    let pipeline = parse_pipeline("nightly.c8s.yaml", NIGHTLY, &MemorySource::new()).expect("parses");
    let run = pipeline.expand(Some("main")).expect("expands");
    let notify = run
        .finally
        .iter()
        .find(|p| p.identity.step == "notify")
        .expect("notify plan");
    assert!(notify.finally, "notify is a finally step");
    let mut pod = render_pod(notify, &ctx(&origin).with_pipeline("nightly")).expect("render");
    set_main_env(&mut pod, "C8S_RUN_STATUS", "Failed");
    set_main_env(&mut pod, "C8S_STEP_INTEGRATION_STATUS", "Failed");
    set_main_env(&mut pod, "C8S_STEP_PUBLISH_STATUS", "Skipped");
    let ran = Kubelet::default().run(&pod);
    assert_eq!(ran.phase, Phase::Succeeded, "{}", ran.logs());
    assert!(
        ran.container("main")
            .log
            .contains("release: Failed (integration: Failed, publish: Skipped)"),
        "{}",
        ran.logs()
    );
}

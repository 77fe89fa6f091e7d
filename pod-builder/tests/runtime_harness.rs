//! The runtime check checked: hand-written pods whose outcome the kubelet's
//! documented behaviour fixes, so a harness kinder than a kubelet fails here.

#[path = "common/kubelet/mod.rs"]
mod kubelet;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kubelet::{Kubelet, Phase};
use serde_json::json;

fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({ "metadata": { "name": "harness" }, "spec": spec })).expect("a pod")
}

fn busybox(name: &str, script: &str) -> serde_json::Value {
    json!({ "name": name, "image": "busybox:1.37.0", "command": ["sh", "-c", script],
            "volumeMounts": [{ "name": "shared", "mountPath": "/shared" }] })
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn the_command_is_pid_1_in_its_own_namespaces_as_the_security_context_says() {
    // `$$$$` is `$$` once the kubelet has expanded the command.
    let script = "echo pid=$$$$; echo init=$(tr '\\0' ' ' < /proc/1/cmdline); echo id=$(id -u):$(id -g):$(id -G); \
                  echo home=$HOME; stat -c 'mode=%a:%g' /shared; touch /shared/f; stat -c 'file=%g' /shared/f";
    let pod = pod(json!({
        "restartPolicy": "Never",
        "securityContext": { "runAsUser": 1000, "fsGroup": 3000, "supplementalGroups": [4000] },
        "containers": [busybox("main", script)],
        "volumes": [{ "name": "shared", "emptyDir": {} }],
    }));
    let run = Kubelet::default().run(&pod);
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
    let log = &run.container("main").log;
    for expected in [
        "pid=1\n",
        "init=sh -c echo pid=$$;",
        "id=1000:0:0 3000 4000\n",
        "home=/\n",
        "mode=2777:3000\n",
        "file=3000\n",
    ] {
        assert!(log.contains(expected), "{expected:?} in\n{log}");
    }
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn env_values_command_and_args_are_expanded_as_the_kubelet_does() {
    let pod = pod(json!({
        "restartPolicy": "Never",
        "containers": [{
            "name": "main", "image": "busybox:1.37.0",
            "env": [{ "name": "A", "value": "x" }, { "name": "B", "value": "$(A)-$(C)-$$(A)" }, { "name": "C", "value": "c" }],
            "command": ["sh", "-c", "echo \"B=$B\"; echo \"arg=$1\"", "sh", "$(A)$(B) $$ $(NOPE)"],
        }],
    }));
    let run = Kubelet::default().run(&pod);
    let log = &run.container("main").log;
    assert!(log.contains("B=x-$(C)-$(A)\n"), "{log}");
    assert!(log.contains("arg=xx-$(C)-$(A) $ $(NOPE)\n"), "{log}");
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn a_native_sidecar_holds_main_until_its_startup_probe_passes_and_stops_in_reverse_order() {
    let first = "trap 'echo first >> /shared/stopped; exit 0' TERM; while :; do sleep 0.1; done";
    let second = "trap 'echo second >> /shared/stopped; exit 0' TERM; sleep 2; touch /tmp/up; while :; do sleep 0.1; done";
    let mut second = busybox("second", second);
    second["restartPolicy"] = json!("Always");
    second["startupProbe"] = json!({ "exec": { "command": ["test", "-f", "/tmp/up"] }, "periodSeconds": 1 });
    let mut first = busybox("first", first);
    first["restartPolicy"] = json!("Always");
    let pod = pod(json!({
        "restartPolicy": "Never",
        "initContainers": [first, second],
        "containers": [busybox("main", "cat /shared/stopped 2>/dev/null; echo main ran")],
        "volumes": [{ "name": "shared", "emptyDir": {} }],
    }));
    let run = Kubelet::default().run(&pod);
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
    assert!(
        run.elapsed >= Duration::from_secs(2),
        "main waited for the probe: {}",
        run.logs()
    );
    let stopped = std::fs::read_to_string(run.volumes["shared"].join("stopped")).expect("both stopped");
    assert_eq!(stopped, "second\nfirst\n", "{}", run.logs());
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn sigterm_is_lost_on_a_pid_1_without_handler_and_sigkill_follows_the_grace_period() {
    let mut sidecar = busybox("stubborn", "while :; do sleep 0.1; done");
    sidecar["restartPolicy"] = json!("Always");
    let pod = pod(json!({
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 2,
        "initContainers": [sidecar],
        "containers": [busybox("main", "true")],
        "volumes": [{ "name": "shared", "emptyDir": {} }],
    }));
    let run = Kubelet::default().run(&pod);
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
    assert_eq!(run.container("stubborn").exit_code, Some(137), "{}", run.logs());
    assert!(run.elapsed >= Duration::from_secs(2), "{}", run.logs());
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn a_failing_init_container_fails_the_pod_and_the_deadline_ends_a_stuck_one() {
    let pod_failing = pod(json!({
        "restartPolicy": "Never",
        "initContainers": [busybox("setup", "exit 3")],
        "containers": [busybox("main", "true")],
        "volumes": [{ "name": "shared", "emptyDir": {} }],
    }));
    let run = Kubelet::default().run(&pod_failing);
    assert_eq!(run.phase, Phase::Failed, "{}", run.logs());
    assert_eq!(run.container("setup").exit_code, Some(3));
    assert!(!run.containers.contains_key("main"));
    let stuck = pod(json!({
        "restartPolicy": "Never",
        "activeDeadlineSeconds": 1,
        "containers": [busybox("main", "trap 'exit 143' TERM; while :; do sleep 0.1; done")],
        "volumes": [{ "name": "shared", "emptyDir": {} }],
    }));
    let run = Kubelet::default().run(&stuck);
    assert_eq!(run.reason.as_deref(), Some("DeadlineExceeded"), "{}", run.logs());
    assert_eq!(run.container("main").exit_code, Some(143), "{}", run.logs());
}

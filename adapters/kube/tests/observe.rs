//! Reading real pod statuses (as the API server sends them) into step progress.
#![allow(clippy::unwrap_used)]

use c8s_kube::{Assessment, PodObservation, TerminationReason, assess};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

fn assess_status(status: serde_json::Value) -> Assessment {
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap();
    assess(&PodObservation::from_pod(&pod))
}

fn main_state(state: serde_json::Value) -> serde_json::Value {
    json!([{"name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": state}])
}

fn finished(a: &Assessment) -> (Option<i32>, TerminationReason, bool) {
    match a {
        Assessment::Finished(f) => (f.exit_code, f.reason, f.sidecars_still_running),
        other => panic!("not finished: {other:?}"),
    }
}

#[test]
fn unschedulable_is_waiting_for_capacity_with_the_scheduler_message() {
    let message = "0/3 nodes are available: 1 node(s) had untolerated taint, 2 Insufficient memory.";
    let a = assess_status(json!({
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]
    }));
    assert_eq!(a, Assessment::WaitingForCapacity(message.into()));
}

#[test]
fn image_pull_back_off_and_err_image_pull_are_disruptions() {
    for reason in ["ImagePullBackOff", "ErrImagePull"] {
        let a = assess_status(json!({
            "phase": "Pending",
            "containerStatuses": main_state(json!({"waiting": {"reason": reason, "message": "not found"}}))
        }));
        assert!(
            matches!(a, Assessment::Disrupted(TerminationReason::ImagePullBackOff, _)),
            "{a:?}"
        );
    }
    let a = assess_status(json!({
        "phase": "Pending",
        "containerStatuses": main_state(json!({"waiting": {"reason": "InvalidImageName"}}))
    }));
    assert_eq!(finished(&a).1, TerminationReason::Error);
}

#[test]
fn evictions_and_disruption_targets_are_disruptions() {
    let evicted = assess_status(json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"}));
    assert!(
        matches!(evicted, Assessment::Disrupted(TerminationReason::Evicted, _)),
        "{evicted:?}"
    );
    let preempted = assess_status(json!({
        "phase": "Running",
        "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}],
        "containerStatuses": main_state(json!({"running": {}}))
    }));
    assert!(
        matches!(preempted, Assessment::Disrupted(TerminationReason::Evicted, ref m) if m.contains("Preemption"))
    );
}

#[test]
fn main_decides_the_outcome_not_native_sidecars() {
    let a = assess_status(json!({
        "phase": "Succeeded",
        "initContainerStatuses": [{"name": "postgres", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 137, "reason": "Error"}}}],
        "containerStatuses": main_state(json!({"terminated": {"exitCode": 0, "reason": "Completed"}}))
    }));
    assert_eq!(finished(&a), (Some(0), TerminationReason::Completed, false));
}

#[test]
fn oom_killed_error_and_deadline_exceeded() {
    let oom = assess_status(json!({
        "phase": "Failed",
        "containerStatuses": main_state(json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}}))
    }));
    assert_eq!(finished(&oom), (Some(137), TerminationReason::OomKilled, false));
    let error = assess_status(json!({
        "phase": "Failed",
        "containerStatuses": main_state(json!({"terminated": {"exitCode": 2, "reason": "Error"}}))
    }));
    assert_eq!(finished(&error), (Some(2), TerminationReason::Error, false));
    let deadline =
        assess_status(json!({"phase": "Failed", "reason": "DeadlineExceeded", "message": "too long"}));
    assert_eq!(
        finished(&deadline),
        (None, TerminationReason::DeadlineExceeded, false)
    );
}

#[test]
fn legacy_sidecars_still_running_after_main_are_flagged() {
    let a = assess_status(json!({
        "phase": "Running",
        "containerStatuses": [
            {"name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "redis", "image": "x", "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}}}
        ]
    }));
    assert_eq!(finished(&a), (Some(0), TerminationReason::Completed, true));
}

#[test]
fn a_pod_without_status_is_starting() {
    assert_eq!(assess_status(json!(null)), Assessment::Starting);
}

fn container(name: &str, state: serde_json::Value) -> serde_json::Value {
    json!({"name": name, "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": state})
}

#[test]
fn the_artifact_helper_is_part_of_the_step() {
    let main_done = container(
        "main",
        json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
    );
    // main exited 0, the helper still saves outputs: not finished yet.
    let saving = assess_status(json!({
        "phase": "Running",
        "containerStatuses": [main_done, container("artifact-helper", json!({"running": {}}))]
    }));
    assert_eq!(saving, Assessment::Running);
    // The helper failed: the step failed, naming it.
    let a = assess_status(json!({
        "phase": "Failed",
        "containerStatuses": [main_done, container("artifact-helper", json!({"terminated": {"exitCode": 1, "reason": "Error"}}))]
    }));
    let Assessment::Finished(f) = a else {
        panic!("{a:?}")
    };
    assert_eq!(f.reason, TerminationReason::Error);
    assert!(f.message.contains("artifact-helper exited 1"), "{}", f.message);
    // A failed main does not wait for outputs; the still-running helper means
    // the pod is deleted rather than kept.
    let failed_main = container("main", json!({"terminated": {"exitCode": 2, "reason": "Error"}}));
    let a = assess_status(json!({
        "phase": "Running",
        "containerStatuses": [failed_main, container("artifact-helper", json!({"running": {}}))]
    }));
    assert_eq!(finished(&a), (Some(2), TerminationReason::Error, true));
}

#[test]
fn failures_outside_main_end_the_step_naming_the_container() {
    // A missing Secret key in a sidecar: CreateContainerConfigError, for good.
    let a = assess_status(json!({
        "phase": "Pending",
        "initContainerStatuses": [container("postgres", json!({"waiting": {"reason": "CreateContainerConfigError", "message": "secret \"db\" not found"}}))],
        "containerStatuses": main_state(json!({"waiting": {"reason": "PodInitializing"}}))
    }));
    let Assessment::Finished(f) = a else {
        panic!("{a:?}")
    };
    assert!(
        f.message
            .starts_with("container postgres: CreateContainerConfigError"),
        "{}",
        f.message
    );
    // An init container's image cannot be pulled: a disruption, named.
    let a = assess_status(json!({
        "phase": "Pending",
        "initContainerStatuses": [container("git-clone", json!({"waiting": {"reason": "ErrImagePull", "message": "not found"}}))],
        "containerStatuses": main_state(json!({"waiting": {"reason": "PodInitializing"}}))
    }));
    let Assessment::Disrupted(reason, message) = a else {
        panic!("{a:?}")
    };
    assert_eq!(reason, TerminationReason::ImagePullBackOff);
    assert!(
        message.starts_with("container git-clone: ErrImagePull"),
        "{message}"
    );
    // A failing init container fails the pod; the message says which.
    let a = assess_status(json!({
        "phase": "Failed",
        "initContainerStatuses": [container("c8s-input-0", json!({"terminated": {"exitCode": 1, "reason": "Error"}}))],
        "containerStatuses": main_state(json!({"waiting": {"reason": "PodInitializing"}}))
    }));
    let Assessment::Finished(f) = a else {
        panic!("{a:?}")
    };
    assert!(
        f.message.contains("container c8s-input-0 exited 1"),
        "{}",
        f.message
    );
}

#[test]
fn a_sidecar_that_never_becomes_ready_ends_the_step_naming_it() {
    let status = |restarts: i32| {
        json!({
            "phase": "Pending",
            "initContainerStatuses": [{
                "name": "postgres", "image": "postgres:17", "imageID": "", "ready": false, "started": false,
                "restartCount": restarts,
                "state": {"waiting": {"reason": "CrashLoopBackOff",
                                      "message": "back-off 40s restarting failed container=postgres"}}
            }],
            "containerStatuses": main_state(json!({"waiting": {"reason": "PodInitializing"}}))
        })
    };
    // Still within its budget: the kubelet retries, the step waits.
    assert_eq!(
        assess_status(status(c8s_kube::SIDECAR_RESTART_LIMIT - 1)),
        Assessment::Starting
    );
    let ended = assess_status(status(c8s_kube::SIDECAR_RESTART_LIMIT));
    assert_eq!(finished(&ended).1, TerminationReason::Error);
    let Assessment::Finished(pod) = ended else {
        unreachable!()
    };
    assert_eq!(
        pod.message,
        "sidecar postgres never became ready: restarted 3 times; CrashLoopBackOff: back-off 40s restarting failed container=postgres"
    );
}

//! On a step's failure, the logs of every container its pod spec names
//! (init containers, native sidecars, the helper) reach the sink, each
//! labelled with its container and masked.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use c8s_kube::sim::{SimCluster, StepScript};
use c8s_kube::{LogOptions, RunOptions, RunState, RunStatus, Step, StepObject, run_pipeline};
use common::Collect;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: Some("busybox:1.36".into()),
        ..Default::default()
    }
}

/// A step pod as the pod builder makes it: a clone, a native sidecar and an
/// input as init containers, then `main` and the artifact helper.
fn step_pod() -> StepObject {
    let sidecar = Container {
        restart_policy: Some("Always".into()),
        ..container("db")
    };
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some("t-only".into()),
            labels: Some([("c8s.dev/step".to_owned(), "only".to_owned())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            init_containers: Some(vec![container("git-clone"), sidecar, container("c8s-input-1")]),
            containers: vec![container("main"), container("artifact-helper")],
            restart_policy: Some("Never".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    StepObject::Pod(Box::new(pod))
}

/// Runs the one step with `script`, its logs masked (`hunter2-secret`);
/// returns the run's status and every chunk as the sink got it.
async fn run_logged(script: StepScript) -> (RunStatus, Vec<(String, u32, String, Vec<u8>)>) {
    let sim = SimCluster::new();
    sim.script("only", script);
    let sink = Collect::new();
    let masker: c8s_kube::MaskerFactory = Arc::new(|_: &str| {
        let masker = c8s_pipeline_model::SecretMasker::new(["hunter2-secret"]).unwrap();
        Box::new(masker) as Box<dyn c8s_kube::LogMasker>
    });
    let options = RunOptions::new("t").logs(LogOptions::new(masker, sink.clone()));
    let steps = vec![Step::new("only", step_pod())];
    let status = run_pipeline(&sim, steps, options, std::future::pending())
        .await
        .unwrap();
    let chunks = sink.0.lock().unwrap().clone();
    (status, chunks)
}

/// Runs the one step with `script`; returns the run's state and every chunk
/// as (container, text).
async fn run(script: StepScript) -> (RunState, Vec<(String, String)>) {
    let (status, chunks) = run_logged(script).await;
    let chunks = chunks
        .iter()
        .map(|(step, attempt, container, bytes)| {
            assert_eq!((step.as_str(), *attempt), ("only", 0));
            (container.clone(), String::from_utf8(bytes.clone()).unwrap())
        })
        .collect();
    (status.state, chunks)
}

/// Everything `container` wrote.
fn text(chunks: &[(String, String)], container: &str) -> String {
    chunks
        .iter()
        .filter(|(c, _)| c == container)
        .map(|(_, t)| t.as_str())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_failing_init_containers_log_is_shown_labelled() {
    let script = StepScript::new(secs(5))
        .start_delay(secs(3))
        .init_fails("git-clone", 128)
        .container_log(
            "git-clone",
            ["Cloning into 'src'...\n", "fatal: repository not found\n"],
        );
    let (state, chunks) = run(script).await;
    assert_eq!(state, RunState::Failed);
    assert_eq!(
        text(&chunks, "git-clone"),
        "Cloning into 'src'...\nfatal: repository not found\n"
    );
    // Only the containers of the pod's spec are asked for.
    let asked: std::collections::BTreeSet<_> = chunks.iter().map(|(c, _)| c.as_str()).collect();
    assert!(
        asked.iter().all(|c| ["git-clone", "main"].contains(c)),
        "{asked:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_sidecars_log_is_shown_when_main_fails_and_not_when_it_succeeds() {
    let script = StepScript::new(secs(5))
        .log(["running tests\n"])
        .container_log("db", ["db ready\n", "db: connection reset\n"])
        .container_log("artifact-helper", ["no outputs to save\n"]);
    let (state, chunks) = run(script.clone().exit_code(1)).await;
    assert_eq!(state, RunState::Failed);
    assert_eq!(text(&chunks, "main"), "running tests\n");
    assert_eq!(text(&chunks, "db"), "db ready\ndb: connection reset\n");
    assert_eq!(text(&chunks, "artifact-helper"), "no outputs to save\n");
    // Main's log first, then the others in the spec's order.
    let order: Vec<&str> = chunks.iter().map(|(c, _)| c.as_str()).collect();
    let first = |c: &str| order.iter().position(|o| *o == c).unwrap();
    assert!(
        first("main") < first("db") && first("db") < first("artifact-helper"),
        "{order:?}"
    );

    let (state, chunks) = run(script).await;
    assert_eq!(state, RunState::Succeeded);
    assert!(chunks.iter().all(|(c, _)| c == "main"), "{chunks:?}");
}

#[tokio::test(start_paused = true)]
async fn a_secret_in_a_sidecars_log_is_masked_even_when_split() {
    let script = StepScript::new(secs(5))
        .exit_code(1)
        .container_log("db", ["login with hunter", "2-secret ok\n", "bye\n"]);
    let (state, chunks) = run(script).await;
    assert_eq!(state, RunState::Failed);
    let db = text(&chunks, "db");
    assert_eq!(db, "login with *** ok\nbye\n");
    assert!(chunks.iter().all(|(_, t)| !t.contains("hunter")), "{chunks:?}");
}

#[tokio::test(start_paused = true)]
async fn a_disrupted_attempts_logs_are_shown_labelled_with_its_attempt_before_the_retry() {
    // Evicted after 3 s once; the retry succeeds.
    let script = StepScript::new(secs(10))
        .evictions(1, secs(3))
        .log(["step 1\n"])
        .container_log("db", ["db ready, password hunter2-secret\n"])
        .container_log("git-clone", ["Cloning into 'src'...\n"]);
    let (status, chunks) = run_logged(script).await;
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    assert_eq!(status.steps[0].attempts, 2, "{}", status.to_json());
    let of = |attempt: u32, container: &str| -> String {
        chunks
            .iter()
            .filter(|(s, a, c, _)| s == "only" && *a == attempt && c == container)
            .map(|(_, _, _, b)| String::from_utf8(b.clone()).unwrap())
            .collect()
    };
    // The evicted attempt's other containers, read before its pod was deleted, masked.
    assert_eq!(of(0, "db"), "db ready, password ***\n");
    assert_eq!(of(0, "git-clone"), "Cloning into 'src'...\n");
    // The successful retry shows only what is followed.
    assert_eq!(of(1, "main"), "step 1\n");
    assert_eq!(of(1, "db"), "");
    // Attempt 0's logs all came before attempt 1's.
    let last_of_first = chunks.iter().rposition(|(_, a, _, _)| *a == 0).unwrap();
    let first_of_second = chunks.iter().position(|(_, a, _, _)| *a == 1).unwrap();
    assert!(last_of_first < first_of_second, "{chunks:?}");
    assert!(
        chunks
            .iter()
            .all(|(_, _, _, b)| !String::from_utf8_lossy(b).contains("hunter"))
    );
}

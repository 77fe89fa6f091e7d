//! `c8s run`, `c8s reap` and `c8s logs` against a real Kubernetes control
//! plane: kube-apiserver (PodSecurity admission, RBAC), etcd,
//! kube-controller-manager (Job controller, garbage collector) and
//! kube-scheduler, built from source, with simulated nodes
//! (`testing/node-sim`: what each container does comes from a script per
//! namespace). `scripts/control-plane/up.sh` starts it; `./ci.sh` runs these
//! tests against it. Each test has its own namespace, labelled
//! `pod-security.kubernetes.io/enforce=restricted`.

mod common;

use common::explain;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use c8s_test_cluster as cluster;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams};
use serde_json::Value;

/// `c8s` from the workspace root, talking to the control plane.
fn c8s_cmd() -> Command {
    let mut command = common::command();
    command.env("KUBECONFIG", cluster::kubeconfig());
    command
}

fn run_c8s(args: &[&str]) -> Output {
    c8s_cmd().args(args).output().expect("c8s runs")
}

fn status_file(name: &str) -> PathBuf {
    common::temp_dir().join(format!("{}.json", cluster::unique_name(name)))
}

fn read_status(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
}

/// The step called `name` in the pipeline (its status names it by its
/// object, `<pipeline>-<step>-b<build>-<hash>`).
fn step<'a>(status: &'a Value, name: &str) -> &'a Value {
    let infix = format!("-{name}-b");
    status["steps"]
        .as_array()
        .and_then(|steps| {
            steps
                .iter()
                .find(|s| s["name"] == name || s["name"].as_str().is_some_and(|n| n.contains(&infix)))
        })
        .unwrap_or_else(|| panic!("no step {name} in {status:#}"))
}

fn time(value: &Value) -> k8s_openapi::jiff::Timestamp {
    value
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not a timestamp: {value}"))
}

/// A small pipeline of two steps, `first` then `second` (which reads
/// `first`'s output), written to a file of its own.
fn two_steps(name: &str, extra: &str) -> PathBuf {
    common::temp_file(
        &format!("{}.c8s.yaml", cluster::unique_name(name)),
        format!(
            "name: {name}
repository: https://github.com/example/hello.git
steps:
  - name: first
    image: busybox:1.37
    commands: [\"mkdir -p out && echo made > out/file\"]
    outputs: [out]
    timeout: 5m
  - name: second
    image: busybox:1.37
    dependsOn: [first]
    inputs: [{{ step: first, output: out }}]
    commands: [\"cat out/file\"]
    timeout: 5m
{extra}"
        ),
    )
}

async fn pods(client: &kube::Client, namespace: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .expect("pods")
        .items
}

/// A namespace of the test's own (restricted), with the artifacts claim
/// bound and `script` as its nodes' script.
async fn namespace_for(client: &kube::Client, prefix: &str, script: &str) -> String {
    let ns = cluster::namespace(client, prefix).await;
    cluster::claims(client, &ns, &["c8s-artifacts"]).await;
    cluster::script(client, &ns, script).await;
    ns
}

/// `c8s args…` in the background, its output discarded.
fn spawn_c8s(args: &[&str]) -> Child {
    c8s_cmd()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("c8s runs")
}

/// `c8s args…` in the background, its output kept for `wait_with_output`.
fn spawn_c8s_piped(args: &[&str]) -> Child {
    c8s_cmd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("c8s runs")
}

/// Waits until a pod of `namespace` matching `which` runs.
async fn until_running(client: &kube::Client, namespace: &str, which: impl Fn(&Pod) -> bool) {
    cluster::eventually(Duration::from_secs(60), "a pod to run", || async {
        pods(client, namespace)
            .await
            .iter()
            .any(|p| which(p) && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .then_some(())
    })
    .await;
}

/// Waits until no pod of `namespace` matches `which`.
async fn until_gone(client: &kube::Client, namespace: &str, which: impl Fn(&Pod) -> bool) {
    cluster::eventually(Duration::from_secs(60), "the pods to be gone", || async {
        (!pods(client, namespace).await.iter().any(&which)).then_some(())
    })
    .await;
}

/// `c8s run args… --status-file F`: its output and the status record.
fn run_with_status(args: &[&str]) -> (Output, Value) {
    let path = status_file("status");
    let mut all = args.to_vec();
    all.extend(["--status-file", path.to_str().expect("utf-8 path")]);
    let output = run_c8s(&all);
    assert!(path.is_file(), "no status record: {}", explain(&output));
    let status = read_status(&path);
    (output, status)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn orders_runs_under_restricted_pod_security_each_step_after_its_dependencies() {
    orders_runs_under_restricted_pod_security_each_step_after_its_dependencies_with(&[]).await;
}

/// The same, through `c8s run`'s older event loop (`--event-loop`).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn orders_runs_under_restricted_pod_security_each_step_after_its_dependencies_through_the_event_loop() {
    orders_runs_under_restricted_pod_security_each_step_after_its_dependencies_with(&["--event-loop"]).await;
}

/// `examples/pipelines/orders.c8s.yaml` run with `extra` flags.
async fn orders_runs_under_restricted_pod_security_each_step_after_its_dependencies_with(extra: &[&str]) {
    let client = cluster::client().await;
    let ns = cluster::namespace(&client, "orders").await;
    cluster::claims(&client, &ns, &["c8s-cache", "c8s-artifacts"]).await;
    cluster::secret(
        &client,
        &ns,
        "ci-secrets",
        &[("payments-token", "payments-token-0123456789")],
    )
    .await;
    cluster::secret(
        &client,
        &ns,
        "orders-ci",
        &[("stripe-key", "sk_test_4eC39HqLyjWDarjtT1zdp7dc")],
    )
    .await;
    cluster::secret(
        &client,
        &ns,
        "registry-credentials",
        &[("token", "registry-token-0123456789")],
    )
    .await;
    // Each main runs 1.5 s, so an ordering mistake shows at the API's
    // one-second timestamp resolution.
    cluster::script(
        &client,
        &ns,
        "containers:\n  - container: main\n    runSeconds: 1.5\n",
    )
    .await;
    let (output, status) = run_with_status(
        &[
            "run",
            "examples/pipelines/orders.c8s.yaml",
            "--branch",
            "main",
            "--namespace",
            &ns,
            "--parallelism",
            "8",
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .collect::<Vec<_>>(),
    );
    assert!(output.status.success(), "{}", explain(&output));
    assert_eq!(status["state"], "Succeeded", "{status:#}");
    let steps = status["steps"].as_array().expect("steps");
    // lint, and unit, integration and build for each of the 4 combinations, and publish.
    assert!(steps.len() >= 13, "{status:#}");
    for s in steps {
        assert_eq!(s["state"], "Succeeded", "{s:#}");
        assert_eq!(s["attempts"], 1, "{s:#}");
    }
    // Each step's first pod was created after every step it depends on ended.
    let name = |s: &Value| s["name"].as_str().unwrap_or_default().to_owned();
    for s in steps {
        let started = time(&s["started_at"]);
        let after: Vec<&Value> = if name(s).starts_with("integration") || name(s).starts_with("build") {
            let suffix = name(s)
                .split_once('-')
                .map(|(_, x)| x.to_owned())
                .unwrap_or_default();
            steps
                .iter()
                .filter(|d| name(d) == format!("unit-{suffix}"))
                .collect()
        } else if name(s).starts_with("publish") {
            steps
                .iter()
                .filter(|d| {
                    name(d).starts_with("build") || name(d).starts_with("integration") || name(d) == "lint"
                })
                .collect()
        } else {
            Vec::new()
        };
        if name(s).starts_with("integration") || name(s).starts_with("build") {
            assert_eq!(
                after.len(),
                1,
                "{} has one unit step before it: {status:#}",
                name(s)
            );
        }
        for dep in after {
            let ended = time(&dep["finished_at"]);
            assert!(
                started >= ended,
                "{} started at {started} before {} ended at {ended}",
                name(s),
                name(dep)
            );
            assert!(
                time(&dep["finished_at"]) > time(&dep["started_at"]),
                "{} ran for at least 1.5 s: {dep:#}",
                name(dep)
            );
        }
    }
    // One pod per step, each admitted and scheduled once.
    for s in steps {
        let object = s["object"].as_str().expect("object name");
        assert_eq!(cluster::scheduled_pods(&client, &ns, object).await, 1, "{object}");
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_failing_main_fails_the_run_and_its_log_comes_through_the_api_server() {
    a_failing_main_fails_the_run_and_its_log_comes_through_the_api_server_with(&[]).await;
}

/// The same, through `c8s run`'s older event loop (`--event-loop`).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_failing_main_fails_the_run_and_its_log_comes_through_the_api_server_through_the_event_loop() {
    a_failing_main_fails_the_run_and_its_log_comes_through_the_api_server_with(&["--event-loop"]).await;
}

/// A step whose `main` exits 3, run with `extra` flags.
async fn a_failing_main_fails_the_run_and_its_log_comes_through_the_api_server_with(extra: &[&str]) {
    let client = cluster::client().await;
    let ns = namespace_for(
        &client,
        "fails",
        "containers:
  - step: first
    container: main
    exitCode: 3
    logs: [\"compiling\", \"error: the widget is broken\"]
",
    )
    .await;
    let file = two_steps("fails", "");
    let mut args = vec!["run", file.to_str().expect("path"), "--namespace", &ns];
    args.extend(extra);
    let output = run_c8s(&args);
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    // `c8s run` streams every step's log to stdout as it runs; the event
    // loop prints a failed step's log on stderr when it ends.
    let stderr = common::text(&output.stderr) + &common::text(&output.stdout);
    assert!(
        stderr.contains("error: the widget is broken"),
        "{}",
        explain(&output)
    );
    assert!(stderr.contains("first"), "{}", explain(&output));
    assert!(
        common::text(&output.stdout).contains("Failed"),
        "{}",
        explain(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn outputs_that_were_not_saved_fail_the_step_and_its_dependents_never_start() {
    let client = cluster::client().await;
    let ns = namespace_for(
        &client,
        "unsaved",
        "containers:
  - step: first
    container: artifact-helper
    exitCode: 1
    message: \"out: no such directory\"
",
    )
    .await;
    let file = two_steps("unsaved", "");
    let (output, status) = run_with_status(&["run", file.to_str().expect("path"), "--namespace", &ns]);
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    assert_eq!(step(&status, "first")["state"], "Failed", "{status:#}");
    assert_ne!(step(&status, "second")["state"], "Succeeded", "{status:#}");
    assert_eq!(
        cluster::scheduled_pods(&client, &ns, "").await,
        1,
        "only the first step's pod: {status:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_failed_init_container_ends_the_run_failed_naming_it() {
    let client = cluster::client().await;
    let ns = namespace_for(
        &client,
        "init",
        "containers:
  - step: second
    container: c8s-input-0
    exitCode: 2
    logs: [\"tar: out: Cannot open\"]
",
    )
    .await;
    let file = two_steps("init", "");
    let output = run_c8s(&["run", file.to_str().expect("path"), "--namespace", &ns]);
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    let stderr = common::text(&output.stderr);
    assert!(stderr.contains("c8s-input-0"), "{}", explain(&output));
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_missing_claim_ends_the_run_at_once_quoting_the_scheduler() {
    a_missing_claim_ends_the_run_at_once_quoting_the_scheduler_with(&[]).await;
}

/// The same, through `c8s run`'s older event loop (`--event-loop`).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_missing_claim_ends_the_run_at_once_quoting_the_scheduler_through_the_event_loop() {
    a_missing_claim_ends_the_run_at_once_quoting_the_scheduler_with(&["--event-loop"]).await;
}

/// A run whose artifacts claim does not exist, with `extra` flags.
async fn a_missing_claim_ends_the_run_at_once_quoting_the_scheduler_with(extra: &[&str]) {
    let client = cluster::client().await;
    let ns = cluster::namespace(&client, "claim").await;
    let file = two_steps("claim", "");
    let started = std::time::Instant::now();
    let output = run_c8s(
        &[
            "run",
            file.to_str().expect("path"),
            "--namespace",
            &ns,
            "--artifact-claim",
            "no-such-claim",
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .collect::<Vec<_>>(),
    );
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "{}",
        explain(&output)
    );
    let stderr = common::text(&output.stderr);
    assert!(stderr.contains("no-such-claim"), "{}", explain(&output));
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn the_run_deadline_ends_a_step_that_runs_too_long() {
    the_run_deadline_ends_a_step_that_runs_too_long_with(&[]).await;
}

/// The same, through `c8s run`'s older event loop (`--event-loop`).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn the_run_deadline_ends_a_step_that_runs_too_long_through_the_event_loop() {
    the_run_deadline_ends_a_step_that_runs_too_long_with(&["--event-loop"]).await;
}

/// A run past its `--timeout`, run with `extra` flags.
async fn the_run_deadline_ends_a_step_that_runs_too_long_with(extra: &[&str]) {
    let client = cluster::client().await;
    let ns = namespace_for(
        &client,
        "deadline",
        "containers:\n  - container: main\n    runSeconds: 600\n",
    )
    .await;
    let file = two_steps("slow", "");
    let started = std::time::Instant::now();
    let (output, status) = run_with_status(
        &[
            "run",
            file.to_str().expect("path"),
            "--namespace",
            &ns,
            "--timeout",
            "8s",
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .collect::<Vec<_>>(),
    );
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "{}",
        explain(&output)
    );
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains("timeout ran out"), "{status:#}");
    assert_eq!(step(&status, "second")["state"], "Cancelled", "{status:#}");
    // The step's pod is deleted: nothing keeps running.
    until_gone(&client, &ns, |_| true).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn ctrl_c_deletes_the_runs_pods() {
    ctrl_c_deletes_the_runs_pods_with(&[]).await;
}

/// The same, through `c8s run`'s older event loop (`--event-loop`).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn ctrl_c_deletes_the_runs_pods_through_the_event_loop() {
    ctrl_c_deletes_the_runs_pods_with(&["--event-loop"]).await;
}

/// Ctrl-C during a run with `extra` flags.
async fn ctrl_c_deletes_the_runs_pods_with(extra: &[&str]) {
    let client = cluster::client().await;
    let ns = namespace_for(
        &client,
        "cancel",
        "containers:\n  - container: main\n    runSeconds: 600\n",
    )
    .await;
    let file = two_steps("cancel", "");
    let mut args = vec!["run", file.to_str().expect("path"), "--namespace", &ns];
    args.extend(extra);
    let child = spawn_c8s_piped(&args);
    until_running(&client, &ns, |_| true).await;
    signal(&child, "INT");
    let output = child.wait_with_output().expect("c8s exits");
    assert_ne!(output.status.code(), Some(0), "{}", explain(&output));
    until_gone(&client, &ns, |_| true).await;
}

/// `c8s run` drives a run from objects labelled with its id, so
/// a second run of the same id is refused before it creates anything, and
/// a run deletes its pods when it ends.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_reconciled_run_refuses_a_run_id_in_use_and_deletes_its_pods_when_it_ends() {
    let client = cluster::client().await;
    let ns = namespace_for(
        &client,
        "rec-id",
        "containers:\n  - step: first\n    container: main\n    runSeconds: 20\n",
    )
    .await;
    let file = two_steps("recid", "");
    let run_id = cluster::unique_name("recid");
    let args = [
        "run",
        file.to_str().expect("path"),
        "--namespace",
        &ns,
        "--run-id",
        &run_id,
    ];
    let first = spawn_c8s_piped(&args);
    until_running(&client, &ns, |_| true).await;
    let second = run_c8s(&args);
    assert_eq!(second.status.code(), Some(1), "{}", explain(&second));
    assert!(
        common::text(&second.stderr).contains("has objects in namespace"),
        "{}",
        explain(&second)
    );
    let output = first.wait_with_output().expect("c8s exits");
    assert!(output.status.success(), "{}", explain(&output));
    assert!(
        common::text(&output.stderr).contains("through the controller's reconcile"),
        "{}",
        explain(&output)
    );
    // The second run created nothing: one pod per step, then none.
    assert_eq!(pods_named(&client, &ns, "first").await, 1);
    until_gone(&client, &ns, |_| true).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn resume_after_sigkill_creates_no_second_pod_and_reap_cleans_a_killed_run() {
    let client = cluster::client().await;
    let ns = namespace_for(
        &client,
        "resume",
        "containers:\n  - step: first\n    container: main\n    runSeconds: 8\n",
    )
    .await;
    let file = two_steps("resume", "");
    let path = file.to_str().expect("path");
    let run_id = cluster::unique_name("r");
    let child = spawn_c8s(&["run", path, "--namespace", &ns, "--run-id", &run_id]);
    until_running(&client, &ns, |_| true).await;
    signal(&child, "KILL");
    let _ = child.wait_with_output();
    let output = run_c8s(&["run", path, "--namespace", &ns, "--run-id", &run_id, "--resume"]);
    assert!(output.status.success(), "{}", explain(&output));
    let first = pods_named(&client, &ns, "first").await;
    assert_eq!(first, 1, "the killed run's pod was followed, not created again");

    // A second run, killed: `c8s reap` removes what it left.
    let run_id = cluster::unique_name("k");
    let child = spawn_c8s(&["run", path, "--namespace", &ns, "--run-id", &run_id]);
    until_running(&client, &ns, |p| label(p, "c8s.dev/run") == Some(&run_id)).await;
    signal(&child, "KILL");
    let _ = child.wait_with_output();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let output = run_c8s(&["reap", "--namespace", &ns, "--older-than", "1s"]);
    assert!(output.status.success(), "{}", explain(&output));
    until_gone(&client, &ns, |p| label(p, "c8s.dev/run") == Some(&run_id)).await;
}

/// A resumed run goes on from the status its killed driver saved in the
/// run record: the retry the deleted first attempt spent is still spent
/// (the cluster no longer shows that attempt), the running attempt's pod is
/// followed, not created again, and the record is gone when the run ends.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_resumed_run_goes_on_from_its_saved_status_and_spends_no_retry_twice() {
    let client = cluster::client().await;
    let ns = namespace_for(
        &client,
        "resume-retry",
        "containers:
  - step: first
    container: main
    labels: { c8s.dev/attempt: \"1\" }
    exitCode: 3
  - step: first
    container: main
    runSeconds: 15
",
    )
    .await;
    let file = two_steps("resumeretry", "retries: 1\n");
    let path = file.to_str().expect("path");
    let run_id = cluster::unique_name("rr");
    let child = spawn_c8s(&["run", path, "--namespace", &ns, "--run-id", &run_id]);
    until_running(&client, &ns, |p| {
        label(p, "c8s.dev/attempt").map(String::as_str) == Some("2")
    })
    .await;
    signal(&child, "KILL");
    let _ = child.wait_with_output();
    assert_eq!(
        run_records(&client, &ns).await,
        1,
        "the killed run left its record"
    );
    let status = status_file("resumeretry");
    let output = run_c8s(&[
        "run",
        path,
        "--namespace",
        &ns,
        "--run-id",
        &run_id,
        "--resume",
        "--status-file",
        status.to_str().expect("path"),
    ]);
    assert!(output.status.success(), "{}", explain(&output));
    let record = read_status(&status);
    let first = step(&record, "first");
    assert_eq!(
        (first["attempts"].as_u64(), first["retries"].as_u64()),
        (Some(2), Some(1)),
        "{record:#}"
    );
    assert_eq!(pods_named(&client, &ns, "first").await, 2, "one pod per attempt");
    assert_eq!(
        run_records(&client, &ns).await,
        0,
        "the ended run's record is deleted"
    );
}

fn label<'p>(pod: &'p Pod, key: &str) -> Option<&'p String> {
    pod.metadata.labels.as_ref().and_then(|l| l.get(key))
}

/// Distinct pods the scheduler placed for pipeline step `step`.
async fn pods_named(client: &kube::Client, namespace: &str, step: &str) -> usize {
    let events = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .expect("events");
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let mut uids = Vec::new();
    for e in events
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Scheduled"))
    {
        let name = e.involved_object.name.clone().unwrap_or_default();
        let uid = e.involved_object.uid.clone().unwrap_or_default();
        if name.contains(step)
            || pods
                .get_opt(&name)
                .await
                .ok()
                .flatten()
                .is_some_and(|p| label(&p, "c8s.dev/step").map(String::as_str) == Some(step))
        {
            uids.push(uid);
        }
    }
    uids.sort();
    uids.dedup();
    uids.len()
}

fn signal(child: &std::process::Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {}", child.id());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_sidecar_that_never_becomes_ready_fails_the_step_naming_it() {
    a_sidecar_that_never_becomes_ready_fails_the_step_naming_it_with(&[]).await;
}

/// The same, through `c8s run`'s older event loop (`--event-loop`).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_sidecar_that_never_becomes_ready_fails_the_step_naming_it_through_the_event_loop() {
    a_sidecar_that_never_becomes_ready_fails_the_step_naming_it_with(&["--event-loop"]).await;
}

/// A step whose sidecar never becomes ready, with `extra` flags.
async fn a_sidecar_that_never_becomes_ready_fails_the_step_naming_it_with(extra: &[&str]) {
    let client = cluster::client().await;
    let ns = cluster::namespace(&client, "sidecar").await;
    cluster::script(
        &client,
        &ns,
        "containers:\n  - container: postgres\n    ready: false\n",
    )
    .await;
    let file = common::temp_file(
        &format!("{}.c8s.yaml", cluster::unique_name("sidecar")),
        "name: sidecar
repository: https://github.com/example/hello.git
steps:
  - name: integration
    image: busybox:1.37
    commands: [\"echo tests\"]
    timeout: 5m
    sidecars:
      - name: postgres
        image: postgres:16
        env: [{ name: POSTGRES_PASSWORD, value: test }]
        ports: [{ containerPort: 5432 }]
        readiness:
          exec: { command: [\"pg_isready\", \"-h\", \"127.0.0.1\"] }
          periodSeconds: 2
          timeoutSeconds: 120
        runAsUser: 999
        scratch: [/var/lib/postgresql/data, /var/run/postgresql]
",
    );
    let (output, status) = run_with_status(
        &[
            "run",
            file.to_str().expect("path"),
            "--namespace",
            &ns,
            "--start-timeout",
            "10s",
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .collect::<Vec<_>>(),
    );
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    let message = step(&status, "integration")["outcome"]["message"].to_string();
    assert!(message.contains("postgres"), "{status:#}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_crash_looping_sidecar_ends_the_step_after_its_restarts_not_at_the_deadline() {
    // The kubelet (the simulated nodes) kills a sidecar whose startupProbe
    // keeps failing and restarts it after 10 s, 20 s...: the step ends once it
    // has been restarted 3 times, naming it, long before the start timeout.
    let client = cluster::client().await;
    let ns = cluster::namespace(&client, "crashloop").await;
    cluster::script(
        &client,
        &ns,
        "containers:\n  - container: redis\n    ready: false\n",
    )
    .await;
    let file = common::temp_file(
        &format!("{}.c8s.yaml", cluster::unique_name("crashloop")),
        "name: crashloop
repository: https://github.com/example/hello.git
steps:
  - name: integration
    image: busybox:1.37
    commands: [\"echo tests\"]
    timeout: 10m
    sidecars:
      - name: redis
        image: redis:7
        ports: [{ containerPort: 6379 }]
        readiness:
          tcpSocket: { port: 6379 }
          periodSeconds: 1
          timeoutSeconds: 2
",
    );
    let started = std::time::Instant::now();
    let (output, status) = run_with_status(&[
        "run",
        file.to_str().expect("path"),
        "--namespace",
        &ns,
        "--start-timeout",
        "5m",
    ]);
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    let message = step(&status, "integration")["outcome"]["message"].to_string();
    assert!(
        message.contains("sidecar redis never became ready: restarted 3 times"),
        "{status:#}"
    );
    assert!(took < Duration::from_secs(150), "took {took:?}: {status:#}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_pod_whose_create_answer_was_lost_is_adopted() {
    let client = cluster::client().await;
    let ns = cluster::namespace(&client, "adopt").await;
    cluster::claims(&client, &ns, &["c8s-artifacts"]).await;
    // A step name unlike its object name (the object carries the pipeline
    // and run), as pod-builder names and labels it.
    let file = two_steps("adopt", "");
    let proxy = cluster::proxy::start(
        client.clone(),
        cluster::proxy::Lose {
            method: "POST",
            path_suffix: "/pods",
            times: 1,
        },
        common::temp_dir().join(format!("{}.kubeconfig", cluster::unique_name("proxy"))),
    )
    .await;
    let status = status_file("adopt");
    let mut command = common::command();
    command.env("KUBECONFIG", &proxy.kubeconfig).args([
        "run",
        file.to_str().expect("path"),
        "--namespace",
        &ns,
        "--status-file",
        status.to_str().expect("path"),
    ]);
    let output = tokio::task::spawn_blocking(move || command.output().expect("c8s runs"))
        .await
        .expect("joined");
    assert_eq!(proxy.lost(), 1, "the proxy lost one create answer");
    assert!(output.status.success(), "{}", explain(&output));
    let status = read_status(&status);
    assert_eq!(step(&status, "first")["state"], "Succeeded", "{status:#}");
    assert_eq!(
        pods_named(&client, &ns, "first").await,
        1,
        "the lost pod was adopted, not created twice"
    );
}

/// A workload chart of a user's that injects the sidecars of a chart made by
/// `c8s helm sidecars`, as the README shows.
const WORKLOAD: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-app
spec:
  selector:
    matchLabels: { app: workload }
  template:
    metadata:
      labels: { app: workload }
    spec:
      securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: RuntimeDefault } }
      initContainers:
        {{- include "ci-services.sidecars" (dict "Values" (index .Values "ci-services")) | nindent 8 }}
      containers:
        - name: app
          image: busybox:1.37.0
          command: ["sleep", "3600"]
          securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } }
      volumes:
        {{- include "ci-services.volumes" (dict "Values" (index .Values "ci-services")) | nindent 8 }}
"#;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_workload_injecting_the_sidecar_chart_is_admitted_under_restricted() {
    let client = cluster::client().await;
    let ns = cluster::namespace(&client, "inject").await;
    cluster::script(&client, &ns, "containers:\n  - runSeconds: 3600\n").await;
    let dir = common::temp_dir().join(cluster::unique_name("charts"));
    let services = dir.join("app/charts/ci-services");
    let output = run_c8s(&[
        "helm",
        "sidecars",
        "examples/sidecars/services.yml",
        "--out",
        services.to_str().expect("path"),
        "--name",
        "ci-services",
    ]);
    assert!(output.status.success(), "{}", explain(&output));
    let app = dir.join("app");
    std::fs::create_dir_all(app.join("templates")).expect("chart dirs");
    std::fs::write(
        app.join("Chart.yaml"),
        "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n  - name: ci-services\n    version: 0.1.0\n",
    )
    .expect("Chart.yaml");
    std::fs::write(app.join("templates/deployment.yaml"), WORKLOAD).expect("template");
    let output = Command::new(common::tool("helm"))
        .env("KUBECONFIG", cluster::kubeconfig())
        .args(["install", "app", app.to_str().expect("path"), "--namespace", &ns])
        .output()
        .expect("helm runs");
    assert!(output.status.success(), "{}", explain(&output));
    // The ReplicaSet's pod is admitted (a refused one leaves a FailedCreate
    // Event on the ReplicaSet, quoted if it comes) and its sidecars start.
    let events = Api::<Event>::namespaced(client.clone(), &ns);
    let pod = cluster::eventually(Duration::from_secs(90), "the workload's pod", || async {
        if let Ok(list) = events.list(&ListParams::default()).await
            && let Some(refused) = list
                .items
                .iter()
                .find(|e| e.reason.as_deref() == Some("FailedCreate"))
        {
            panic!("the pod was refused: {:?}", refused.message);
        }
        pods(&client, &ns)
            .await
            .into_iter()
            .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    })
    .await;
    let spec = pod.spec.expect("spec");
    let init: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert!(!init.is_empty(), "sidecars were injected: {init:?}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn jobs_are_run_by_the_job_controller_with_the_rendered_backoff_and_ttl() {
    let client = cluster::client().await;
    let script = "containers:
  - step: second
    container: main
    exitCode: 4
  - container: main
    runSeconds: 1
";
    let ns = namespace_for(&client, "jobs", script).await;
    let file = two_steps("jobs", "");
    let path = file.to_str().expect("path");
    // What c8s renders for the Jobs.
    let rendered = run_c8s(&["render", path, "--job", "--namespace", &ns, "-o", "json"]);
    assert!(rendered.status.success(), "{}", explain(&rendered));
    let status = status_file("jobs");
    let child = spawn_c8s_piped(&[
        "run",
        path,
        "--job",
        "--namespace",
        &ns,
        "--status-file",
        status.to_str().expect("path"),
    ]);
    let jobs = Api::<k8s_openapi::api::batch::v1::Job>::namespaced(client.clone(), &ns);
    // The Job exists with the rendered backoffLimit and TTL, and its pod was
    // made by the Job controller (owner reference to the Job).
    let job = cluster::eventually(Duration::from_secs(60), "the first Job", || async {
        jobs.list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .next()
    })
    .await;
    let rendered = common::text(&rendered.stdout);
    let spec = job.spec.as_ref().expect("job spec");
    let backoff = spec.backoff_limit.expect("backoffLimit");
    assert!(
        rendered.contains(&format!("\"backoffLimit\": {backoff}")),
        "{rendered}"
    );
    if let Some(ttl) = spec.ttl_seconds_after_finished {
        assert!(
            rendered.contains(&format!("\"ttlSecondsAfterFinished\": {ttl}")),
            "{rendered}"
        );
    }
    let job_name = job.metadata.name.clone().expect("name");
    cluster::eventually(Duration::from_secs(60), "the Job controller's pod", || async {
        pods(&client, &ns)
            .await
            .iter()
            .any(|p| {
                p.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.kind == "Job" && o.name == job_name)
            })
            .then_some(())
    })
    .await;
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().expect("c8s exits"))
        .await
        .expect("joined");
    assert_eq!(
        output.status.code(),
        Some(1),
        "second fails: {}",
        explain(&output)
    );
    let status = read_status(&status);
    assert_eq!(step(&status, "first")["state"], "Succeeded", "{status:#}");
    assert_eq!(step(&status, "second")["state"], "Failed", "{status:#}");
}

/// A Concourse pipeline as people write them: a git resource, a job whose
/// task tests the checkout, a job gated on it by `passed`.
const CONCOURSE: &str = "\
resources:
- name: repo
  type: git
  source: { uri: ((repo-uri)), branch: main }
jobs:
- name: unit
  plan:
  - get: repo
    trigger: true
  - task: test
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: golang, tag: ((go)) } }
      inputs: [{ name: repo }]
      outputs: [{ name: coverage }]
      run: { path: sh, args: [-ec, 'go test -coverprofile=../coverage/c.out ./...'], dir: repo }
- name: ship
  plan:
  - get: repo
    passed: [unit]
    trigger: true
  - task: package
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: alpine, tag: '3.20' } }
      inputs: [{ name: repo }]
      run: { path: tar, args: [-czf, /tmp/app.tgz, repo] }
";

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_concourse_pipeline_runs_each_job_after_the_jobs_it_passed() {
    let client = cluster::client().await;
    // Restricted, like every namespace c8s runs in: the git resource's `get`
    // runs as UID 1000 like the tasks (a privileged step is the next test).
    let ns = cluster::namespace(&client, "concourse").await;
    cluster::claims(&client, &ns, &["c8s-artifacts", "c8s-cache"]).await;
    cluster::script(
        &client,
        &ns,
        "containers:\n  - container: main\n    runSeconds: 1.5\n",
    )
    .await;
    let file = common::temp_file(&format!("{}.yml", cluster::unique_name("app")), CONCOURSE);
    let (output, status) = run_with_status(&[
        "run",
        file.to_str().expect("path"),
        "--namespace",
        &ns,
        "-v",
        "go=1.23",
        "-v",
        "repo-uri=https://github.com/example/app.git",
        "--version",
        r#"repo={"ref":"9f2c1d4e5b6a7980a1b2c3d4e5f60718293a4b5c"}"#,
    ]);
    assert!(output.status.success(), "{}", explain(&output));
    assert_eq!(status["state"], "Succeeded", "{status:#}");
    let steps = status["steps"].as_array().expect("steps");
    let of = |job: &str| -> Vec<&Value> {
        steps
            .iter()
            .filter(|s| {
                s["name"]
                    .as_str()
                    .is_some_and(|n| n.contains(&format!("-{job}-")))
            })
            .collect()
    };
    let (unit, ship) = (of("unit"), of("ship"));
    assert!(!unit.is_empty() && !ship.is_empty(), "{status:#}");
    let unit_ended = unit
        .iter()
        .map(|s| time(&s["finished_at"]))
        .max()
        .expect("unit ended");
    for s in ship {
        assert!(
            time(&s["started_at"]) >= unit_ended,
            "ship started before unit ended: {status:#}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_privileged_concourse_task_is_refused_by_restricted_pod_security_naming_the_rule() {
    let client = cluster::client().await;
    let ns = cluster::namespace(&client, "concourse-restricted").await;
    cluster::claims(&client, &ns, &["c8s-artifacts", "c8s-cache"]).await;
    // The same pipeline with the test task `privileged: true` (a Docker
    // build, as real pipelines have): its get is admitted and runs, the
    // privileged task is refused at admission, and `ship` never starts.
    let privileged = CONCOURSE.replacen(
        "  - task: test\n    config:",
        "  - task: test\n    privileged: true\n    config:",
        1,
    );
    assert_ne!(privileged, CONCOURSE, "the task was made privileged");
    let file = common::temp_file(&format!("{}.yml", cluster::unique_name("app")), &privileged);
    let (output, status) = run_with_status(&[
        "run",
        file.to_str().expect("path"),
        "--namespace",
        &ns,
        "-v",
        "go=1.23",
        "-v",
        "repo-uri=https://github.com/example/app.git",
        "--version",
        r#"repo={"ref":"9f2c1d4e5b6a7980a1b2c3d4e5f60718293a4b5c"}"#,
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    assert_eq!(step(&status, "repo")["state"], "Succeeded", "{status:#}");
    let test = step(&status, "test");
    let message = test["outcome"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("violates PodSecurity \"restricted") && message.contains("privileged"),
        "{status:#}"
    );
    assert_eq!(
        cluster::scheduled_pods(&client, &ns, "-test-").await,
        0,
        "the privileged task was never admitted: {status:#}"
    );
    assert_eq!(
        cluster::scheduled_pods(&client, &ns, "-ship-").await,
        0,
        "ship never started: {status:#}"
    );
}

/// A Concourse job whose second task fails, with every kind of hook: the
/// failing step's own `on_failure`, the job's `ensure`, an `on_success` that
/// must not run, and a failing task under `try` that must not fail the job.
const CONCOURSE_HOOKS: &str = "\
jobs:
- name: release
  plan:
  - try:
      task: flaky-lint
      config: &task
        platform: linux
        image_resource: { type: registry-image, source: { repository: alpine, tag: '3.20' } }
        run: { path: 'true' }
  - task: compile
    config: *task
    on_failure: { task: page-oncall, config: *task }
    on_success: { task: tag-build, config: *task }
  - task: publish
    config: *task
  ensure: { task: cleanup, config: *task }
";

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_concourse_jobs_hooks_run_by_what_their_step_did() {
    a_concourse_jobs_hooks_run_by_what_their_step_did_with(&[]).await;
}

/// The same, through `c8s run`'s older event loop (`--event-loop`).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_concourse_jobs_hooks_run_by_what_their_step_did_through_the_event_loop() {
    a_concourse_jobs_hooks_run_by_what_their_step_did_with(&["--event-loop"]).await;
}

async fn a_concourse_jobs_hooks_run_by_what_their_step_did_with(extra: &[&str]) {
    let client = cluster::client().await;
    let ns = cluster::namespace(&client, "concourse-hooks").await;
    cluster::claims(&client, &ns, &["c8s-artifacts", "c8s-cache"]).await;
    // Both failing tasks exit 1 on the simulated node; the rest exit 0.
    cluster::script(
        &client,
        &ns,
        "containers:
  - { pod: flaky-lint, container: main, exitCode: 1, runSeconds: 0.5 }
  - { pod: compile, container: main, exitCode: 1, runSeconds: 0.5 }
  - { container: main, runSeconds: 0.5 }
",
    )
    .await;
    let file = common::temp_file(&format!("{}.yml", cluster::unique_name("hooks")), CONCOURSE_HOOKS);
    let path = file.to_str().expect("path");
    let (output, status) = run_with_status(&[&["run", path, "--namespace", &ns][..], extra].concat());
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    assert_eq!(
        common::text(&output.stderr).contains("through the controller's reconcile"),
        extra.is_empty(),
        "{}",
        explain(&output)
    );
    assert_eq!(status["state"], "Failed", "{status:#}");
    let state = |task: &str| step(&status, task)["state"].as_str().map(str::to_owned);
    assert_eq!(state("flaky-lint").as_deref(), Some("Failed"), "{status:#}");
    assert_eq!(state("compile").as_deref(), Some("Failed"), "{status:#}");
    assert_eq!(state("page-oncall").as_deref(), Some("Succeeded"), "{status:#}");
    assert_eq!(state("cleanup").as_deref(), Some("Succeeded"), "{status:#}");
    assert_ne!(state("tag-build").as_deref(), Some("Succeeded"), "{status:#}");
    assert_ne!(state("publish").as_deref(), Some("Succeeded"), "{status:#}");
    // The pods the cluster saw: the failure hook and the ensure ran after
    // compile ended; neither the success hook nor publish was ever created.
    let compile_ended = time(&step(&status, "compile")["finished_at"]);
    for hook in ["page-oncall", "cleanup"] {
        assert!(
            time(&step(&status, hook)["started_at"]) >= compile_ended,
            "{hook} started before compile ended: {status:#}"
        );
    }
    for never in ["tag-build", "publish"] {
        assert_eq!(
            cluster::scheduled_pods(&client, &ns, never).await,
            0,
            "{never} got a pod: {status:#}"
        );
    }
}

/// A Concourse build's result is its plan's, not every task's: a task that
/// fails under `try` leaves the job succeeded, its success hook runs and
/// its failure hook does not.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_task_failing_under_try_leaves_the_concourse_job_succeeded() {
    let client = cluster::client().await;
    let ns = cluster::namespace(&client, "concourse-try").await;
    cluster::claims(&client, &ns, &["c8s-artifacts", "c8s-cache"]).await;
    cluster::script(
        &client,
        &ns,
        "containers:
  - { pod: flaky-lint, container: main, exitCode: 1, runSeconds: 0.5 }
  - { container: main, runSeconds: 0.5 }
",
    )
    .await;
    let file = common::temp_file(&format!("{}.yml", cluster::unique_name("try")), CONCOURSE_HOOKS);
    let (output, status) = run_with_status(&["run", file.to_str().expect("path"), "--namespace", &ns]);
    assert!(output.status.success(), "{}", explain(&output));
    assert_eq!(status["state"], "Succeeded", "{status:#}");
    let state = |task: &str| step(&status, task)["state"].as_str().map(str::to_owned);
    assert_eq!(state("flaky-lint").as_deref(), Some("Failed"), "{status:#}");
    for ran in ["compile", "tag-build", "publish", "cleanup"] {
        assert_eq!(state(ran).as_deref(), Some("Succeeded"), "{ran}: {status:#}");
    }
    assert_eq!(
        cluster::scheduled_pods(&client, &ns, "page-oncall").await,
        0,
        "{status:#}"
    );
}

/// A job whose test task's `file:` lives in the repository its `get`
/// fetches, with a failure hook and an `ensure`. Nothing beside the pipeline
/// holds `repo/ci/unit.yml`: `c8s run` reads it from the artifact.
const CONCOURSE_FETCHED_TASK: &str = "\
resources:
- name: repo
  type: git
  source: { uri: https://github.com/example/app.git }
jobs:
- name: build
  plan:
  - get: repo
  - task: unit
    file: repo/ci/unit.yml
  on_failure: { task: page-oncall, config: &task { platform: linux, image_resource: { type: registry-image, source: { repository: alpine } }, run: { path: 'true' } } }
  ensure: { task: cleanup, config: *task }
";

/// The node script's lines for the reader of `repo/ci/unit.yml`: the task
/// file, one YAML line each, written by the reader's `main`; the test task
/// runs 3 s so that its pod can be looked at.
const FETCHED_TASK_SCRIPT: &str = r#"containers:
  - pod: read-unit
    container: main
    logs:
      - "platform: linux"
      - "image_resource: { type: registry-image, source: { repository: golang, tag: '1.23' } }"
      - "inputs: [{ name: repo }]"
      - "params: { FROM_THE_ARTIFACT: read-at-run-time }"
      - "run: { path: go, args: [test, ./...], dir: repo }"
  - pod: -unit-
    container: main
    runSeconds: 3
  - container: main
    runSeconds: 0.3
"#;

/// Parts of the pod names of the get, the reader and the test task.
const GET: &str = "-build-repo-";
const READER: &str = "-read-unit-";
const UNIT: &str = "-build-unit-";

/// The node script where the reader pod whose name has `reader` prints
/// `printed` (one line, no single quote) and every other `main` ends at once.
fn reader_script(reader: &str, printed: &str) -> String {
    format!(
        "containers:\n  - pod: {reader}\n    container: main\n    logs: ['{printed}']\n  - {{ container: main, runSeconds: 0.3 }}\n"
    )
}

async fn fetched_task_namespace(client: &kube::Client, prefix: &str, script: &str) -> String {
    let ns = cluster::namespace(client, prefix).await;
    cluster::claims(client, &ns, &["c8s-artifacts", "c8s-cache"]).await;
    cluster::script(client, &ns, script).await;
    ns
}

/// `c8s run` of [`CONCOURSE_FETCHED_TASK`] in `ns`, in the background, and
/// where its status file will be.
fn run_fetched_task(ns: &str) -> (Child, PathBuf) {
    run_fetched(ns, CONCOURSE_FETCHED_TASK)
}

/// `c8s run` of the Concourse pipeline `text` in `ns` with the version of
/// its `repo` given, in the background, and where its status file will be.
fn run_fetched(ns: &str, text: &str) -> (Child, PathBuf) {
    run_concourse(
        ns,
        text,
        &[
            "--version",
            r#"repo={"ref":"9f2c1d4e5b6a7980a1b2c3d4e5f60718293a4b5c"}"#,
        ],
    )
}

/// `c8s run` of the Concourse pipeline `text` in `ns` with `args` besides,
/// in the background, and where its status file will be.
fn run_concourse(ns: &str, text: &str, args: &[&str]) -> (Child, PathBuf) {
    let file = common::temp_file(&format!("{}.yml", cluster::unique_name("fetch")), text);
    let status = status_file("fetch");
    let run = [
        "run",
        file.to_str().expect("path"),
        "--namespace",
        ns,
        "--status-file",
        status.to_str().expect("path"),
    ];
    let child = spawn_c8s_piped(&[&run[..], args].concat());
    (child, status)
}

/// The run records (ConfigMaps labelled with a run) left in `ns`.
async fn run_records(client: &kube::Client, ns: &str) -> usize {
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels("c8s.dev/run"))
        .await
        .expect("configmaps")
        .items
        .len()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_task_file_in_a_fetched_artifact_is_read_when_the_job_runs_and_the_get_runs_once() {
    let client = cluster::client().await;
    let ns = fetched_task_namespace(&client, "fetch", FETCHED_TASK_SCRIPT).await;
    let (child, status) = run_fetched_task(&ns);
    // The test task's pod, rendered from the file its reader printed.
    let is_unit = |p: &Pod| p.metadata.name.as_deref().is_some_and(|n| n.contains(UNIT));
    until_running(&client, &ns, is_unit).await;
    let unit = pods(&client, &ns)
        .await
        .into_iter()
        .find(is_unit)
        .expect("the unit pod");
    let spec = unit.spec.expect("spec");
    let main = spec.containers.iter().find(|c| c.name == "main").expect("main");
    assert_eq!(main.image.as_deref(), Some("golang:1.23"), "{main:?}");
    let env = main.env.clone().unwrap_or_default();
    assert!(
        env.iter()
            .any(|e| e.name == "FROM_THE_ARTIFACT" && e.value.as_deref() == Some("read-at-run-time")),
        "{env:?}"
    );
    let output = child.wait_with_output().expect("c8s exits");
    assert!(output.status.success(), "{}", explain(&output));
    let stderr = common::text(&output.stderr);
    assert!(
        stderr.contains("to read 1 file(s) (task files, load_var values) from the artifacts they make"),
        "{stderr}"
    );
    let status = read_status(&status);
    assert_eq!(status["state"], "Succeeded", "{status:#}");
    assert_eq!(step(&status, "unit")["state"], "Succeeded", "{status:#}");
    // The get ran once: the run was resumed after the reader, not restarted.
    assert_eq!(cluster::scheduled_pods(&client, &ns, GET).await, 1);
    assert_eq!(cluster::scheduled_pods(&client, &ns, READER).await, 1);
    assert_eq!(cluster::scheduled_pods(&client, &ns, "-cleanup-").await, 1);
    assert_eq!(cluster::scheduled_pods(&client, &ns, "-page-oncall-").await, 0);
    // The run record went with the run's end.
    assert_eq!(run_records(&client, &ns).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_task_file_missing_from_its_artifact_errors_its_task_and_the_jobs_error_hooks_run() {
    let client = cluster::client().await;
    // The reader's unpacking of the file fails, as tar does for a member
    // the archive does not hold.
    let script = "containers:
  - { pod: read-unit, container: c8s-input-0, exitCode: 1, logs: ['tar: ci/unit.yml: Not found in archive'] }
  - { container: main, runSeconds: 0.3 }
";
    let ns = fetched_task_namespace(&client, "fetch-missing", script).await;
    // Concourse: the task step errors; on_error and ensure run, on_failure not.
    let text = CONCOURSE_FETCHED_TASK.replace(
        "  ensure: { task: cleanup, config: *task }",
        "  ensure: { task: cleanup, config: *task }\n  on_error: { task: report-error, config: *task }",
    );
    let (child, status) = run_fetched(&ns, &text);
    let output = child.wait_with_output().expect("c8s exits");
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    let stderr = common::text(&output.stderr);
    let why =
        "step `unit`: cannot read task file \"repo/ci/unit.yml\": \"ci/unit.yml\" is not in artifact `repo`";
    assert!(stderr.contains(why), "{stderr}");
    let status = read_status(&status);
    assert_eq!(status["state"], "Failed", "{status:#}");
    let unit = step(&status, "unit");
    assert_eq!(unit["state"], "Failed", "{status:#}");
    assert_eq!(unit["outcome"]["reason"], "Rejected", "{status:#}");
    assert!(
        unit["outcome"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(why)),
        "{status:#}"
    );
    assert_eq!(cluster::scheduled_pods(&client, &ns, UNIT).await, 0);
    for (part, n) in [("-report-error-", 1), ("-cleanup-", 1), ("-page-oncall-", 0)] {
        assert_eq!(
            cluster::scheduled_pods(&client, &ns, part).await,
            n,
            "{part}: {status:#}"
        );
    }
    assert_eq!(run_records(&client, &ns).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_get_that_fails_before_its_task_file_is_read_runs_the_jobs_failure_hooks() {
    let client = cluster::client().await;
    let script = format!(
        "containers:\n  - {{ pod: '{GET}', container: main, exitCode: 1 }}\n  - {{ container: main, runSeconds: 0.3 }}\n"
    );
    let ns = fetched_task_namespace(&client, "fetch-get-fails", &script).await;
    let (child, status) = run_fetched_task(&ns);
    let output = child.wait_with_output().expect("c8s exits");
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    let status = read_status(&status);
    assert_eq!(status["state"], "Failed", "{status:#}");
    // As Concourse: the build failed, so on_failure and ensure ran; the
    // file was never read and its task never ran.
    assert_eq!(step(&status, "page-oncall")["state"], "Succeeded", "{status:#}");
    assert_eq!(step(&status, "cleanup")["state"], "Succeeded", "{status:#}");
    assert_eq!(cluster::scheduled_pods(&client, &ns, GET).await, 1);
    assert_eq!(cluster::scheduled_pods(&client, &ns, READER).await, 0);
    assert_eq!(cluster::scheduled_pods(&client, &ns, UNIT).await, 0);
    assert_eq!(run_records(&client, &ns).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_release_job_reads_its_task_files_and_var_at_run_time_retries_and_runs_its_hooks() {
    let client = cluster::client().await;
    // The retry's pod runs long enough to be looked at (its name ends -r1).
    let script = common::release::SCRIPT.replace(
        "  - { pod: -ship-unit-,",
        "  - { pod: -r1, container: main, runSeconds: 3 }\n  - { pod: -ship-unit-,",
    );
    let ns = fetched_task_namespace(&client, "release", &script).await;
    let file = common::temp_file(
        &format!("{}.yml", cluster::unique_name("demo")),
        common::release::PIPELINE,
    );
    let status = status_file("release");
    let child = spawn_c8s_piped(&[
        "run",
        file.to_str().expect("path"),
        "--namespace",
        &ns,
        "--version",
        r#"repo={"ref":"9f2c1d4e5b6a7980a1b2c3d4e5f60718293a4b5c"}"#,
        "--status-file",
        status.to_str().expect("path"),
    ]);
    let retry = |p: &Pod| {
        p.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.contains("-ship-unit-") && n.ends_with("-r1"))
    };
    until_running(&client, &ns, retry).await;
    let pod = pods(&client, &ns)
        .await
        .into_iter()
        .find(retry)
        .expect("the retry");
    let main = pod
        .spec
        .expect("spec")
        .containers
        .into_iter()
        .find(|c| c.name == "main")
        .expect("main");
    let env = main.env.unwrap_or_default();
    let value = |name: &str| env.iter().find(|e| e.name == name).and_then(|e| e.value.clone());
    // The placeholder the pod's wrapper replaces with the file's text.
    assert_eq!(value("VERSION").as_deref(), Some("v((.:number))"), "{env:?}");
    assert!(
        value("C8S_LOCAL_VARS").is_some_and(|v| v.contains("number=")),
        "{env:?}"
    );
    let output = child.wait_with_output().expect("c8s exits");
    assert!(output.status.success(), "{}", explain(&output));
    let stderr = common::text(&output.stderr);
    assert!(stderr.contains("to read 2 file(s)"), "{stderr}");
    let status = read_status(&status);
    assert_eq!(status["state"], "Succeeded", "{status:#}");
    assert_eq!(step(&status, "unit")["attempts"], 2, "{status:#}");
    assert_eq!(step(&status, "cleanup")["state"], "Succeeded", "{status:#}");
    // The get and the version task ran once each, the test task twice, the
    // put once; the failure hook never.
    for (part, n) in [
        ("-ship-repo-b", 1),
        ("-ship-version-", 1),
        ("-ship-unit-", 2),
        ("-ship-repo-2-", 1),
        ("-ship-page-", 0),
    ] {
        assert_eq!(
            cluster::scheduled_pods(&client, &ns, part).await,
            n,
            "{part}: {status:#}"
        );
    }
    assert_eq!(run_records(&client, &ns).await, 0);
}

/// A `json` `load_var` of a file in the fetched repository, read field by
/// field in a task's params.
const CONCOURSE_JSON_VAR: &str = "\
resources:
- name: repo
  type: git
  source: { uri: https://github.com/example/app.git }
jobs:
- name: build
  plan:
  - get: repo
  - load_var: meta
    file: repo/meta.json
  - task: show
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: alpine } }
      params: { TITLE: '((.:meta.title)) by ((.:meta.by.name))' }
      run: { path: sh, args: [-ec, 'echo \"$TITLE\"'] }
";

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_json_load_var_is_read_when_the_job_runs_and_its_fields_reach_the_params() {
    let client = cluster::client().await;
    let script = r#"containers:
  - pod: read-meta
    container: main
    logs: ['{"title": "Fix $(x) parsing", "by": {"name": "ann"}}']
  - { pod: -build-show-, container: main, runSeconds: 3 }
  - { container: main, runSeconds: 0.3 }
"#;
    let ns = fetched_task_namespace(&client, "json-var", script).await;
    let file = common::temp_file(
        &format!("{}.yml", cluster::unique_name("meta")),
        CONCOURSE_JSON_VAR,
    );
    let child = spawn_c8s_piped(&[
        "run",
        file.to_str().expect("path"),
        "--namespace",
        &ns,
        "--version",
        r#"repo={"ref":"9f2c1d4e5b6a7980a1b2c3d4e5f60718293a4b5c"}"#,
    ]);
    let title = running_env(&client, &ns, "-build-show-", "-none-", "TITLE").await;
    // The kubelet's $(VAR) expansion is escaped: the text arrives as read.
    assert_eq!(title.as_deref(), Some("Fix $$(x) parsing by ann"));
    let output = child.wait_with_output().expect("c8s exits");
    assert!(output.status.success(), "{}", explain(&output));
    assert!(
        common::text(&output.stderr).contains("to read 1 file(s)"),
        "{}",
        explain(&output)
    );
    assert_eq!(cluster::scheduled_pods(&client, &ns, "-build-repo-").await, 1);
}

/// Concourse redacts a `load_var`'s value from the build's output unless
/// the step says `reveal: true`: the values `c8s run` read (here the
/// strings of a `json` value) are masked in the logs it prints, as Secret
/// values are; with `reveal: true` they are shown.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_load_var_value_c8s_run_read_is_masked_in_the_logs_it_prints_unless_revealed() {
    let client = cluster::client().await;
    let script = r#"containers:
  - pod: read-meta
    container: main
    logs: ['{"title": "Fix the parser", "by": {"name": "ann-lee"}}']
  - pod: -build-show-
    container: main
    exitCode: 1
    logs: ['title: Fix the parser by ann-lee']
  - { container: main, runSeconds: 0.3 }
"#;
    let revealed = CONCOURSE_JSON_VAR.replace(
        "file: repo/meta.json\n",
        "file: repo/meta.json\n    reveal: true\n",
    );
    assert_ne!(revealed, CONCOURSE_JSON_VAR);
    for (text, shown) in [
        (CONCOURSE_JSON_VAR, "title: *** by ***"),
        (revealed.as_str(), "title: Fix the parser by ann-lee"),
    ] {
        let ns = fetched_task_namespace(&client, "redact", script).await;
        let (child, _) = run_fetched(&ns, text);
        let output = child.wait_with_output().expect("c8s exits");
        assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
        let stderr = common::text(&output.stderr);
        assert!(stderr.contains(shown), "{}", explain(&output));
        if text == CONCOURSE_JSON_VAR {
            assert!(!stderr.contains("ann-lee"), "{}", explain(&output));
        }
    }
}

/// A `load_var` whose file is not in its artifact errors, as Concourse's
/// `load_var` step errors the build: no step after it runs (neither the
/// task between it and the one reading its var, nor that one), and the
/// job's `on_error` and `ensure` hooks run, `on_failure` not.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_load_var_file_missing_from_its_artifact_errors_the_load_var_and_the_error_hooks_run() {
    let client = cluster::client().await;
    let script = "containers:
  - { pod: read-meta, container: c8s-input-0, exitCode: 1, logs: ['tar: meta.json: Not found in archive'] }
  - { container: main, runSeconds: 0.3 }
";
    let ns = fetched_task_namespace(&client, "json-var-missing", script).await;
    let hook = "config: { platform: linux, image_resource: { type: registry-image, source: { repository: alpine } }, run: { path: 'true' } }";
    let text = format!(
        "{}  on_error: {{ task: report-error, {hook} }}\n  on_failure: {{ task: page-oncall, {hook} }}\n  ensure: {{ task: cleanup, {hook} }}\n",
        CONCOURSE_JSON_VAR.replace(
            "  - task: show\n",
            &format!("  - task: between\n    {hook}\n  - task: show\n")
        )
    );
    let (child, status) = run_fetched(&ns, &text);
    let output = child.wait_with_output().expect("c8s exits");
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    let why = "load_var `meta`: cannot read its file \"repo/meta.json\"";
    assert!(common::text(&output.stderr).contains(why), "{}", explain(&output));
    let status = read_status(&status);
    assert_eq!(status["state"], "Failed", "{status:#}");
    let meta = step(&status, "meta");
    assert_eq!(meta["outcome"]["reason"], "Rejected", "{status:#}");
    assert!(
        meta["outcome"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(why)),
        "{status:#}"
    );
    for (part, n) in [
        ("-build-meta-", 0),
        ("-build-between-", 0),
        ("-build-show-", 0),
        ("-report-error-", 1),
        ("-cleanup-", 1),
        ("-page-oncall-", 0),
    ] {
        assert_eq!(
            cluster::scheduled_pods(&client, &ns, part).await,
            n,
            "{part}: {status:#}"
        );
    }
    assert_eq!(run_records(&client, &ns).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_json_load_var_without_the_field_a_param_reads_fails_the_run_at_that_param() {
    let client = cluster::client().await;
    let script = reader_script("read-meta", r#"{"title": "Fix parsing"}"#);
    let ns = fetched_task_namespace(&client, "json-var-field", &script).await;
    let file = common::temp_file(
        &format!("{}.yml", cluster::unique_name("meta")),
        CONCOURSE_JSON_VAR,
    );
    let path = file.to_str().expect("path");
    let status = status_file("json-var-field");
    let output = run_c8s(&[
        "run",
        path,
        "--namespace",
        &ns,
        "--version",
        r#"repo={"ref":"9f2c1d4e5b6a7980a1b2c3d4e5f60718293a4b5c"}"#,
        "--status-file",
        status.to_str().expect("path"),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    let stderr = common::text(&output.stderr);
    assert!(
        stderr.contains(&format!("{path}:11:5")) && stderr.contains("load_var `meta` has no field `by`"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("error:").count(),
        1,
        "one error, no derived one: {stderr}"
    );
    assert_eq!(read_status(&status)["state"], "Failed");
    assert_eq!(cluster::scheduled_pods(&client, &ns, "-build-show-").await, 0);
    assert_eq!(run_records(&client, &ns).await, 0);
}

/// A job whose puts set a pull request's status with the version its get
/// fetched (`((.:pr.ref))`), as Concourse's own pipelines do: nothing says
/// which version before the get ran.
const CONCOURSE_GET_VERSION: &str = "\
resources:
- name: pr
  type: git
  source: { uri: https://github.com/example/app.git }
- name: status
  type: git
  source: { uri: https://github.com/example/status.git }
jobs:
- name: build
  plan:
  - get: pr
  - put: status
    no_get: true
    params: { ref: ((.:pr.ref)), state: pending }
  on_success: { put: status, no_get: true, params: { ref: ((.:pr.ref)), state: success } }
";

/// The value of env var `env` of `main` of the pod whose name has `part`
/// and not `not`, once it runs.
async fn running_env(client: &kube::Client, ns: &str, part: &str, not: &str, env: &str) -> Option<String> {
    let which = |p: &Pod| {
        p.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.contains(part) && !n.contains(not))
    };
    until_running(client, ns, which).await;
    let pod = pods(client, ns).await.into_iter().find(which)?;
    let main = pod.spec?.containers.into_iter().find(|c| c.name == "main")?;
    main.env?
        .into_iter()
        .find(|e| e.name == env)
        .and_then(|e| e.value)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn the_version_a_get_fetched_fills_the_params_of_the_puts_after_it() {
    let client = cluster::client().await;
    // The reader of the get's saved version prints it; the puts run 3 s so
    // that their pods can be looked at.
    let script = r#"containers:
  - pod: read-pr
    container: main
    logs: ['{"ref":"9f2c1d4"}']
  - { pod: -build-status, container: main, runSeconds: 3 }
  - { container: main, runSeconds: 0.3 }
"#;
    let ns = fetched_task_namespace(&client, "get-version", script).await;
    let (child, status) = run_concourse(&ns, CONCOURSE_GET_VERSION, &[]);
    let pending = running_env(&client, &ns, "-build-status-", "-status-2-", "C8S_PARAMS").await;
    assert_eq!(pending.as_deref(), Some(r#"{"ref":"9f2c1d4","state":"pending"}"#));
    let success = running_env(&client, &ns, "-build-status-2-", "-none-", "C8S_PARAMS").await;
    assert_eq!(success.as_deref(), Some(r#"{"ref":"9f2c1d4","state":"success"}"#));
    let output = child.wait_with_output().expect("c8s exits");
    assert!(output.status.success(), "{}", explain(&output));
    let status = read_status(&status);
    assert_eq!(status["state"], "Succeeded", "{status:#}");
    // The get ran once: the run was resumed after the reader, not restarted.
    assert_eq!(cluster::scheduled_pods(&client, &ns, "-build-pr-").await, 1);
    assert_eq!(cluster::scheduled_pods(&client, &ns, "-read-pr-").await, 1);
    assert_eq!(run_records(&client, &ns).await, 0);
}

/// A job whose test runs across the Go versions a `load_var` reads from the
/// repository (`values: ((.:versions))`).
const CONCOURSE_ACROSS_LOAD_VAR: &str = "\
resources:
- name: repo
  type: git
  source: { uri: https://github.com/example/app.git }
jobs:
- name: build
  plan:
  - get: repo
  - load_var: versions
    file: repo/ci/go-versions.json
  - task: test
    across:
    - var: go
      values: ((.:versions))
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: golang, tag: ((.:go)) } }
      run: { path: go, args: [version] }
";

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn across_values_a_load_var_reads_make_their_copies_when_the_job_runs() {
    let client = cluster::client().await;
    let script = reader_script("read-versions", r#"["1.22", "1.23"]"#);
    let ns = fetched_task_namespace(&client, "across-var", &script).await;
    let (child, status) = run_fetched(&ns, CONCOURSE_ACROSS_LOAD_VAR);
    let output = child.wait_with_output().expect("c8s exits");
    assert!(output.status.success(), "{}", explain(&output));
    let status = read_status(&status);
    assert_eq!(status["state"], "Succeeded", "{status:#}");
    let copies: Vec<&serde_json::Value> = status["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["name"].as_str().is_some_and(|n| n.contains("-build-test-")))
        .collect();
    assert_eq!(copies.len(), 2, "one copy per value read: {status:#}");
    assert!(copies.iter().all(|s| s["state"] == "Succeeded"), "{status:#}");
    assert_eq!(cluster::scheduled_pods(&client, &ns, "-build-test-").await, 2);
    // The get ran once: the run was resumed after the reader.
    assert_eq!(cluster::scheduled_pods(&client, &ns, "-build-repo-").await, 1);
    assert_eq!(cluster::scheduled_pods(&client, &ns, "-read-versions-").await, 1);
}

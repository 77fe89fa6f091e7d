//! The in-cluster client commands against kube's mock service.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use c8s_controller::crd::{PipelineRun, PipelineRunStatus, RunPhase, StepPhase, StepRunStatus};
use http::Method;
use serde_json::{Value, json};

use super::{Console, LogsArgs, create_and_follow, exit_code, list_runs, new_run, pipeline_run, print_logs};
use c8s_kube::mock::{Answer, Seen, client, list, seen, status, watch_events};

const PIPELINE: &str = "name: shop
repository: https://github.com/octo-org/shop.git
steps:
  - name: unit
    image: golang:1.23
    commands: [go test ./...]
    secrets:
      - { secretRef: shop-ci, key: token, envVar: TOKEN }
  - name: lint
    image: golang:1.23
    commands: [go vet ./...]
";

const RUNS: &str = "/apis/c8s.dev/v1alpha1/namespaces/ci/pipelineruns";

/// Output and error text of a console writing into buffers.
struct Buffers {
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
}

impl Buffers {
    fn new() -> (Console, Self) {
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let console = Console::new(out.clone(), err.clone());
        (console, Buffers { out, err })
    }
    fn out(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }
    fn err(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }
}

fn run_file() -> PipelineRun {
    // One directory per call: tests run in parallel in one process.
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("c8s-incluster-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("shop.c8s.yaml");
    std::fs::write(&file, PIPELINE).unwrap();
    let run = pipeline_run(file.to_str().unwrap(), "main", "0d1a26e6", 7, Some("shop-b7"), 2).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    run
}

fn step(name: &str, phase: StepPhase, pod: Option<&str>) -> StepRunStatus {
    StepRunStatus {
        name: name.into(),
        phase,
        pod: pod.map(str::to_owned),
        ..StepRunStatus::default()
    }
}

/// `run` (as created) with this phase and these steps, at resourceVersion `version`.
fn with_status(run: &PipelineRun, phase: RunPhase, steps: Vec<StepRunStatus>, version: &str) -> Value {
    let mut run = run.clone();
    run.metadata.namespace = Some("ci".into());
    run.metadata.resource_version = Some(version.into());
    run.status = Some(PipelineRunStatus {
        phase,
        steps,
        ..PipelineRunStatus::default()
    });
    serde_json::to_value(&run).unwrap()
}

fn secret(value: &str) -> Value {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    let mut secret = Secret::default();
    secret.metadata.name = Some("shop-ci".into());
    secret.metadata.namespace = Some("ci".into());
    secret.data = Some([("token".to_owned(), ByteString(value.as_bytes().to_vec()))].into());
    let mut value = serde_json::to_value(&secret).unwrap();
    value["apiVersion"] = json!("v1");
    value["kind"] = json!("Secret");
    value
}

fn is_watch(seen: &Seen) -> bool {
    seen.uri.contains("watch=true")
}

/// Routes a run's follow: the list shows `first`, the first watch yields
/// `events` (later watches stay open), Secret `shop-ci` holds `hunter2`, and
/// every pod's log says the secret and `ok`.
fn follow_routes(
    first: Value,
    events: Vec<(&'static str, Value)>,
) -> impl FnMut(&Seen) -> Answer + Send + 'static {
    let mut watched = false;
    move |seen: &Seen| match (&seen.method, seen.uri.as_str()) {
        (&Method::POST, uri) if uri.starts_with(RUNS) => {
            let mut created = seen.body.clone();
            created["metadata"]["uid"] = json!("3b0c5b4e-0000-4000-8000-000000000001");
            Answer::Json(201, created)
        }
        (_, uri) if uri.starts_with("/api/v1/namespaces/ci/secrets/shop-ci") => {
            Answer::Json(200, secret("hunter2"))
        }
        (_, uri) if uri.contains("/log?") => Answer::Raw(200, b"token is hunter2\nok\n".to_vec()),
        (_, uri) if uri.starts_with(RUNS) && is_watch(seen) => {
            if std::mem::replace(&mut watched, true) {
                Answer::Hold
            } else {
                Answer::Raw(200, watch_events(&events))
            }
        }
        (_, uri) if uri.starts_with(RUNS) => Answer::Json(
            200,
            list("c8s.dev/v1alpha1", "PipelineRun", vec![first.clone()], "1"),
        ),
        _ => Answer::Json(404, status(404, "NotFound")),
    }
}

#[test]
fn the_created_run_embeds_the_pipeline_with_the_flags() {
    let run = run_file();
    assert_eq!(run.metadata.name.as_deref(), Some("shop-b7"));
    let pipeline = run.spec.pipeline.as_ref().unwrap();
    assert_eq!(pipeline.name, "shop");
    assert_eq!(pipeline.steps.len(), 2);
    assert_eq!(run.spec.pipeline_ref, None);
    assert_eq!(
        (run.spec.branch.as_str(), run.spec.commit.as_str(), run.spec.build),
        ("main", "0d1a26e6", 7)
    );
    assert_eq!(run.spec.parallelism, Some(2));
    assert!(
        run.spec.triggered_by.starts_with("cli:"),
        "{}",
        run.spec.triggered_by
    );
    assert!(!run.spec.cancelled);
}

#[tokio::test]
async fn run_in_cluster_creates_the_run_follows_status_and_masked_logs_and_exits_0_on_success() {
    let run = run_file();
    let unit = "shop-unit-b7-0a1b2c3d";
    let first = with_status(
        &run,
        RunPhase::Running,
        vec![step(unit, StepPhase::Pending, None)],
        "1",
    );
    let events = vec![
        (
            "MODIFIED",
            with_status(
                &run,
                RunPhase::Running,
                vec![step(unit, StepPhase::Running, Some(unit))],
                "2",
            ),
        ),
        (
            "MODIFIED",
            with_status(
                &run,
                RunPhase::Succeeded,
                vec![step(unit, StepPhase::Succeeded, Some(unit))],
                "3",
            ),
        ),
    ];
    let (client, requests) = client("ci", follow_routes(first, events));
    let (console, buffers) = Buffers::new();
    let phase = create_and_follow(client, run.clone(), "ci", &console)
        .await
        .unwrap();
    assert_eq!(phase, RunPhase::Succeeded);
    assert_eq!(
        format!("{:?}", exit_code(phase)),
        format!("{:?}", std::process::ExitCode::SUCCESS)
    );

    let seen = seen(&requests);
    let created: Vec<&Seen> = seen.iter().filter(|s| s.method == Method::POST).collect();
    assert_eq!(created.len(), 1, "{seen:#?}");
    assert_eq!(created[0].uri, format!("{RUNS}?"));
    let body = &created[0].body;
    assert_eq!(body["kind"], "PipelineRun");
    assert_eq!(body["metadata"]["name"], "shop-b7");
    assert_eq!(body["metadata"]["namespace"], "ci");
    assert_eq!(body["spec"]["pipeline"]["name"], "shop");
    assert_eq!(body["spec"]["branch"], "main");
    assert_eq!(body["spec"]["commit"], "0d1a26e6");
    assert_eq!(body["spec"]["build"], 7);
    assert_eq!(body["spec"]["parallelism"], 2);
    // The status is followed with a watch of this one run, not by polling.
    assert!(
        seen.iter()
            .any(|s| is_watch(s) && s.uri.contains("fieldSelector=metadata.name%3Dshop-b7")),
        "{seen:#?}"
    );
    let logs: Vec<&Seen> = seen.iter().filter(|s| s.uri.contains("/log?")).collect();
    assert_eq!(logs.len(), 1, "{seen:#?}");
    assert!(
        logs[0]
            .uri
            .starts_with(&format!("/api/v1/namespaces/ci/pods/{unit}/log?"))
    );
    assert!(logs[0].uri.contains("container=main"), "{}", logs[0].uri);

    let out = buffers.out();
    assert!(out.contains(&format!("[{unit}#0 main] token is ***\n")), "{out}");
    assert!(out.contains(&format!("[{unit}#0 main] ok\n")), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
    assert!(out.ends_with("run shop-b7: Succeeded\n"), "{out}");
    let err = buffers.err();
    assert!(err.contains("created pipelinerun/shop-b7 in ci"), "{err}");
    assert!(err.contains(&format!("{unit}: Running")), "{err}");
    assert!(err.contains(&format!("{unit}: Succeeded")), "{err}");
}

#[tokio::test]
async fn a_failed_run_exits_1_and_an_existing_run_is_followed_not_recreated() {
    let run = run_file();
    let unit = "shop-unit-b7-0a1b2c3d";
    let mut failed = step(unit, StepPhase::Failed, Some(unit));
    failed.exit_code = Some(2);
    failed.reason = "Error".into();
    failed.message = "main exited with 2".into();
    let first = with_status(&run, RunPhase::Running, vec![], "1");
    let events = vec![("MODIFIED", with_status(&run, RunPhase::Failed, vec![failed], "2"))];
    let mut routes = follow_routes(first, events);
    let (client, requests) = client("ci", move |seen: &Seen| {
        if seen.method == Method::POST {
            Answer::Json(409, status(409, "AlreadyExists"))
        } else {
            routes(seen)
        }
    });
    let (console, buffers) = Buffers::new();
    let phase = create_and_follow(client, run, "ci", &console).await.unwrap();
    assert_eq!(phase, RunPhase::Failed);
    assert_eq!(
        format!("{:?}", exit_code(phase)),
        format!("{:?}", std::process::ExitCode::from(1))
    );
    assert!(
        buffers
            .err()
            .contains("pipelinerun/shop-b7 exists in ci; following it")
    );
    assert!(
        buffers
            .err()
            .contains(&format!("{unit}: Failed (Error, exit 2) main exited with 2"))
    );
    assert!(buffers.out().ends_with("run shop-b7: Failed\n"));
    assert_eq!(
        seen(&requests)
            .iter()
            .filter(|s| s.method == Method::POST)
            .count(),
        1
    );
}

/// The PipelineRun that `c8s run FILE --in-cluster --build 7 EXTRA...`, as
/// `main` parses it, creates.
fn parsed_run(extra: &[&str]) -> PipelineRun {
    use clap::Parser;
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("c8s-incluster-parsed-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("shop.c8s.yaml");
    std::fs::write(&file, PIPELINE).unwrap();
    let file = file.to_str().unwrap().to_owned();
    let argv = ["c8s", "run", &file, "--in-cluster", "--build", "7"];
    let cli = crate::Cli::try_parse_from(argv.iter().chain(extra)).unwrap();
    let crate::Command::Run(args) = cli.command else {
        panic!("not a run")
    };
    let run = new_run(&args).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    run
}

/// PipelineRuns as the API server keeps them: a create of a name that exists
/// is refused (409), a `generateName` gets a fresh suffix; a run reads back
/// Succeeded (the controller ran it); watches stay open.
fn api_server() -> impl FnMut(&Seen) -> Answer + Send + 'static {
    let mut runs: Vec<Value> = Vec::new();
    move |seen: &Seen| match (&seen.method, seen.uri.as_str()) {
        (&Method::POST, uri) if uri.starts_with(RUNS) => {
            let mut run = seen.body.clone();
            let name = match run["metadata"]["name"].as_str() {
                Some(name) => name.to_owned(),
                None => format!(
                    "{}{:05}",
                    run["metadata"]["generateName"].as_str().unwrap_or_default(),
                    runs.len()
                ),
            };
            if runs.iter().any(|r| r["metadata"]["name"] == name.as_str()) {
                return Answer::Json(409, status(409, "AlreadyExists"));
            }
            run["metadata"]["name"] = json!(name);
            run["metadata"]["resourceVersion"] = json!("1");
            run["status"] = serde_json::to_value(PipelineRunStatus {
                phase: RunPhase::Succeeded,
                ..PipelineRunStatus::default()
            })
            .unwrap();
            runs.push(run.clone());
            Answer::Json(201, run)
        }
        (_, uri) if uri.starts_with("/api/v1/namespaces/ci/secrets/shop-ci") => {
            Answer::Json(200, secret("hunter2"))
        }
        (_, uri) if uri.starts_with(RUNS) && is_watch(seen) => Answer::Hold,
        (_, uri) if uri.starts_with(RUNS) => {
            let wanted = uri
                .split_once("metadata.name%3D")
                .map(|(_, rest)| rest.split('&').next().unwrap_or_default());
            let items = runs
                .iter()
                .filter(|r| wanted.is_none_or(|name| r["metadata"]["name"] == name))
                .cloned()
                .collect();
            Answer::Json(200, list("c8s.dev/v1alpha1", "PipelineRun", items, "1"))
        }
        _ => Answer::Json(404, status(404, "NotFound")),
    }
}

/// A second `c8s run --in-cluster` of a pipeline (no `--run-id`) is a new
/// PipelineRun, named `<pipeline>-b<build>-` plus the API server's suffix;
/// it never follows the first run instead.
#[tokio::test]
async fn each_in_cluster_run_without_a_run_id_creates_a_new_pipeline_run() {
    let (client, requests) = client("ci", api_server());
    let mut names = Vec::new();
    for _ in 0..2 {
        let (console, buffers) = Buffers::new();
        let phase = create_and_follow(client.clone(), parsed_run(&[]), "ci", &console)
            .await
            .unwrap();
        assert_eq!(phase, RunPhase::Succeeded);
        let err = buffers.err();
        assert!(!err.contains("exists"), "{err}");
        let name = err
            .split_once("created pipelinerun/")
            .and_then(|(_, rest)| rest.split_once(" in ci"))
            .map(|(name, _)| name.to_owned())
            .unwrap_or_else(|| panic!("no run created: {err}"));
        assert!(
            buffers.out().ends_with(&format!("run {name}: Succeeded\n")),
            "{}",
            buffers.out()
        );
        names.push(name);
    }
    assert_ne!(names[0], names[1]);
    assert!(names.iter().all(|n| n.starts_with("shop-b7-")), "{names:?}");
    let created: Vec<Seen> = seen(&requests)
        .into_iter()
        .filter(|s| s.method == Method::POST)
        .collect();
    assert_eq!(created.len(), 2);
    for body in created.iter().map(|s| &s.body) {
        assert_eq!(body["metadata"]["generateName"], "shop-b7-", "{body}");
        assert_eq!(body["metadata"]["name"], Value::Null, "{body}");
    }
}

/// With `--run-id`, the run is that PipelineRun: a second start follows it.
#[tokio::test]
async fn an_in_cluster_run_with_an_existing_run_id_is_followed() {
    let (client, requests) = client("ci", api_server());
    let mut notes = Vec::new();
    for _ in 0..2 {
        let (console, buffers) = Buffers::new();
        let run = parsed_run(&["--run-id", "shop-nightly"]);
        let phase = create_and_follow(client.clone(), run, "ci", &console)
            .await
            .unwrap();
        assert_eq!(phase, RunPhase::Succeeded);
        assert!(buffers.out().ends_with("run shop-nightly: Succeeded\n"));
        notes.push(buffers.err());
    }
    assert!(
        notes[0].contains("created pipelinerun/shop-nightly in ci"),
        "{}",
        notes[0]
    );
    assert!(
        notes[1].contains("pipelinerun/shop-nightly exists in ci; following it"),
        "{}",
        notes[1]
    );
    let created = seen(&requests).into_iter().filter(|s| s.method == Method::POST);
    assert!(
        created
            .map(|s| s.body)
            .all(|b| b["metadata"]["name"] == "shop-nightly")
    );
}

#[tokio::test]
async fn a_rejected_create_is_an_error_naming_the_run() {
    let (client, _) = client("ci", |_: &Seen| Answer::Json(403, status(403, "Forbidden")));
    let (console, _) = Buffers::new();
    let error = create_and_follow(client, run_file(), "ci", &console)
        .await
        .unwrap_err();
    assert!(error.starts_with("cannot create run shop-b7:"), "{error}");
}

#[tokio::test]
async fn get_runs_prints_a_table_of_the_listed_runs() {
    let mut a = run_file();
    a.metadata.name = Some("shop-b7".into());
    let mut b = a.clone();
    b.metadata.name = Some("shop-b8".into());
    b.spec.pipeline = None;
    b.spec.pipeline_ref = Some("shop-ref".into());
    b.spec.branch = "release/1.2".into();
    b.spec.build = 8;
    b.status = Some(PipelineRunStatus {
        phase: RunPhase::Failed,
        start_time: Some("2026-01-01T00:00:00Z".into()),
        ..PipelineRunStatus::default()
    });
    let items = vec![
        serde_json::to_value(&a).unwrap(),
        serde_json::to_value(&b).unwrap(),
    ];
    let (client, requests) = client("ci", move |_: &Seen| {
        Answer::Json(200, list("c8s.dev/v1alpha1", "PipelineRun", items.clone(), "5"))
    });
    let table = list_runs(client, None).await.unwrap();
    let lines: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        lines,
        vec![
            vec!["NAME", "PIPELINE", "BRANCH", "BUILD", "PHASE", "STARTED"],
            vec!["shop-b7", "shop", "main", "7", "Pending"],
            vec![
                "shop-b8",
                "shop-ref",
                "release/1.2",
                "8",
                "Failed",
                "2026-01-01T00:00:00Z"
            ],
        ]
    );
    let seen = seen(&requests);
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.clone(), seen[0].uri.as_str()),
        (Method::GET, format!("{RUNS}?").as_str())
    );
}

fn logs_args(step: Option<&str>, follow: bool) -> LogsArgs {
    LogsArgs {
        run: "shop-b7".into(),
        step: step.map(str::to_owned),
        follow,
        namespace: None,
        archived: false,
        archive: crate::archive::ArchiveArgs::default(),
    }
}

fn finished_and_running(run: &PipelineRun) -> Value {
    with_status(
        run,
        RunPhase::Running,
        vec![
            step(
                "shop-unit-b7-0a1b2c3d",
                StepPhase::Succeeded,
                Some("shop-unit-b7-0a1b2c3d"),
            ),
            step(
                "shop-lint-b7-4e5f6a7b",
                StepPhase::Running,
                Some("shop-lint-b7-4e5f6a7b"),
            ),
        ],
        "4",
    )
}

#[tokio::test]
async fn logs_print_a_finished_steps_masked_log_and_point_running_ones_to_follow() {
    let run = run_file();
    let body = finished_and_running(&run);
    let mut routes = follow_routes(body.clone(), vec![]);
    let (client, requests) = client("ci", move |seen: &Seen| {
        if seen.uri.starts_with(&format!("{RUNS}/shop-b7")) {
            Answer::Json(200, body.clone())
        } else {
            routes(seen)
        }
    });
    let (console, buffers) = Buffers::new();
    print_logs(client, &logs_args(None, false), &console)
        .await
        .unwrap();
    assert_eq!(
        buffers.out(),
        "[shop-unit-b7-0a1b2c3d#0 main] token is ***\n[shop-unit-b7-0a1b2c3d#0 main] ok\n"
    );
    assert!(
        buffers
            .err()
            .contains("shop-lint-b7-4e5f6a7b: running (use --follow)")
    );
    let logs: Vec<String> = seen(&requests)
        .into_iter()
        .filter(|s| s.uri.contains("/log?"))
        .map(|s| s.uri)
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(logs[0].starts_with("/api/v1/namespaces/ci/pods/shop-unit-b7-0a1b2c3d/log?"));
}

#[tokio::test]
async fn logs_of_one_step_follow_it_until_the_run_ends() {
    let run = run_file();
    let lint = "shop-lint-b7-4e5f6a7b";
    let first = finished_and_running(&run);
    let mut done = step(lint, StepPhase::Succeeded, Some(lint));
    done.exit_code = Some(0);
    let events = vec![(
        "MODIFIED",
        with_status(&run, RunPhase::Succeeded, vec![done], "5"),
    )];
    let (client, requests) = client("ci", follow_routes(first, events));
    let (console, buffers) = Buffers::new();
    print_logs(client, &logs_args(Some("lint"), true), &console)
        .await
        .unwrap();
    assert_eq!(
        buffers.out(),
        format!("[{lint}#0 main] token is ***\n[{lint}#0 main] ok\n")
    );
    let logs: Vec<String> = seen(&requests)
        .into_iter()
        .filter(|s| s.uri.contains("/log?"))
        .map(|s| s.uri)
        .collect();
    assert_eq!(logs.len(), 1, "only the lint step's pod, once: {logs:?}");
    assert!(logs[0].contains(&format!("/pods/{lint}/log?")));
}

#[tokio::test]
async fn logs_are_withheld_when_a_referenced_secret_cannot_be_read() {
    let run = run_file();
    let body = finished_and_running(&run);
    let (client, requests) = client("ci", move |seen: &Seen| {
        if seen.uri.contains("/secrets/") {
            Answer::Json(403, status(403, "Forbidden"))
        } else if seen.uri.contains("/log?") {
            Answer::Raw(200, b"token is hunter2\n".to_vec())
        } else {
            Answer::Json(200, body.clone())
        }
    });
    let (console, buffers) = Buffers::new();
    let error = print_logs(client, &logs_args(None, false), &console)
        .await
        .unwrap_err();
    assert!(
        error.starts_with("logs withheld: cannot read Secret \"shop-ci\""),
        "{error}"
    );
    assert_eq!(buffers.out(), "");
    assert!(!seen(&requests).iter().any(|s| s.uri.contains("/log?")));
}

#[test]
fn log_lines_of_concurrent_steps_are_printed_whole_each_with_its_prefix() {
    use c8s_kube::LogSink;
    let (console, buffers) = Buffers::new();
    console.write("unit", 0, "main", b"tok");
    console.write("lint", 1, "main", b"vet: ");
    console.write("unit", 0, "main", b"en is ***\nnext");
    console.write("lint", 1, "main", b"ok\n");
    console.finish("unit", 0, "main");
    console.finish("lint", 1, "main");
    assert_eq!(
        buffers.out(),
        "[unit#0 main] token is ***\n[lint#1 main] vet: ok\n[unit#0 main] next\n"
    );
}

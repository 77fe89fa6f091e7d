//! API requests per reconcile, counted on kube's mock service: with the
//! Controller's pod store, a running run costs no request; without
//! them (every read from the API server), a list per kind and a list and a
//! watch per step. A pod a lagging cache has not seen yet is looked up, not
//! restarted, unless this controller created it a moment ago.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use c8s_controller::cache::Stores;
use c8s_controller::controller::{Context, FINALIZER, reconcile};
use c8s_controller::crd::{PipelineRun, PipelineRunSpec, PipelineRunStatus};
use c8s_controller::reconcile::{ATTEMPT_LABEL, Settings};
use c8s_controller::{owner_of, run_context, run_steps};
use c8s_kube::mock::{self, Answer, Seen};
use c8s_kube::{StepObject, attempt_name};
use c8s_pipeline_model::{MemorySource, parse_pipeline};
use http::Method;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use serde_json::{Value, json};

fn not_found() -> Answer {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"});
    Answer::Json(404, status)
}

/// Answers what a reconcile writes: the status (echoed as the run's),
/// Events, and created pods.
fn writes(seen: &Seen) -> Option<Answer> {
    match (&seen.method, seen.uri.as_str()) {
        (&Method::PATCH, uri) if uri.contains("/pipelineruns/shop-b7/status?") => {
            let mut run = serde_json::to_value(running_run(PipelineRunStatus::default())).unwrap();
            run["status"] = seen.body["status"].clone();
            Some(Answer::Json(200, run))
        }
        (&Method::POST, uri) if uri.contains("/events") => Some(Answer::Json(201, seen.body.clone())),
        (&Method::POST, "/api/v1/namespaces/ci/pods?") => Some(Answer::Json(201, seen.body.clone())),
        // Admission of a Pending run: no other runs, no quota.
        (&Method::GET, "/apis/c8s.dev/v1alpha1/namespaces/ci/pipelineruns?") => Some(Answer::Json(
            200,
            json!({"apiVersion": "c8s.dev/v1alpha1", "kind": "PipelineRunList", "metadata": {}, "items": []}),
        )),
        (&Method::GET, "/api/v1/namespaces/ci/resourcequotas?") => Some(Answer::Json(
            200,
            json!({"apiVersion": "v1", "kind": "ResourceQuotaList", "metadata": {}, "items": []}),
        )),
        _ => None,
    }
}

fn running_run(status: PipelineRunStatus) -> PipelineRun {
    let text = "name: shop\nrepository: https://github.com/octo-org/shop.git\nsteps:\n  - { name: unit, image: \"golang:1.23\", commands: [\"go test ./...\"] }\n  - { name: lint, image: \"golang:1.23\", commands: [\"go vet ./...\"] }\n";
    running_run_of(text, status)
}

/// Run `shop-b7` of pipeline `text`, admitted and running, with `status`.
fn running_run_of(text: &str, status: PipelineRunStatus) -> PipelineRun {
    let pipeline = parse_pipeline("shop.c8s.yaml", text, &MemorySource::new()).unwrap();
    let mut run = PipelineRun::new(
        "shop-b7",
        PipelineRunSpec {
            pipeline: Some(pipeline),
            branch: "main".into(),
            build: 7,
            ..PipelineRunSpec::default()
        },
    );
    run.metadata.namespace = Some("ci".into());
    run.metadata.uid = Some("3b0c5b4e-0000-4000-8000-000000000001".into());
    run.metadata.generation = Some(1);
    run.metadata.finalizers = Some(vec![FINALIZER.into()]);
    run.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    run.status = Some(status);
    run
}

/// The run's step pods (attempt 0) as the cluster has them, `main` in `state`.
fn step_pods(run: &PipelineRun, phase: &str, main: &Value) -> Vec<Pod> {
    pods_with_status(
        run,
        &json!({
            "phase": phase,
            "containerStatuses": [{"name": "main", "ready": true, "restartCount": 0, "image": "golang:1.23", "imageID": "", "state": main}]
        }),
    )
}

/// The run's step pods (attempt 0), rendered as the controller creates them,
/// each with pod status `status`.
fn pods_with_status(run: &PipelineRun, status: &Value) -> Vec<Pod> {
    let pipeline = run.spec.pipeline.clone().unwrap();
    let steps = run_steps(
        &pipeline,
        &run_context(run, &pipeline, "ci"),
        owner_of(run).unwrap(),
        false,
    )
    .unwrap();
    steps
        .steps
        .iter()
        .map(|step| {
            let mut object = step.object.renamed(&attempt_name(&step.name, 0));
            object.set_label(ATTEMPT_LABEL, "0");
            let StepObject::Pod(pod) = object else {
                panic!("the controller creates pods")
            };
            let mut pod = *pod;
            pod.metadata.namespace = Some("ci".into());
            pod.status = Some(serde_json::from_value(status.clone()).unwrap());
            pod
        })
        .collect()
}

fn running() -> Value {
    json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}})
}

fn succeeded() -> Value {
    json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:01:00Z"}})
}

/// A store holding `pods`, ready; keep the writer alive.
fn cached(pods: &[Pod]) -> (Stores, Writer<Pod>) {
    let (pod_store, mut pod_writer) = reflector::store::<Pod>();
    pod_writer.apply_watcher_event(&watcher::Event::Init);
    for pod in pods {
        pod_writer.apply_watcher_event(&watcher::Event::InitApply(pod.clone()));
    }
    pod_writer.apply_watcher_event(&watcher::Event::InitDone);
    (Stores::new(pod_store), pod_writer)
}

/// Reconciles `run` once; returns the requests and the status it wrote, if any.
async fn reconcile_once(
    run: PipelineRun,
    stores: Option<Stores>,
    route: impl Fn(&Seen) -> Answer + Send + 'static,
) -> (Vec<Seen>, Option<PipelineRunStatus>) {
    let (client, requests) = mock::client("ci", route);
    let mut context = Context::new(client, Settings::default(), "replica-a");
    if let Some(stores) = stores {
        context = context.with_stores(stores);
    }
    reconcile(Arc::new(run), Arc::new(context)).await.unwrap();
    let seen = mock::seen(&requests);
    let written = seen
        .iter()
        .rev()
        .find(|s| s.method == Method::PATCH && s.uri.contains("/status?"))
        .map(|s| serde_json::from_value(s.body["status"].clone()).unwrap());
    (seen, written)
}

/// The run as the controller left it once both pods run.
async fn settled(pods: &[Pod]) -> PipelineRun {
    let (stores, _pw) = cached(pods);
    let run = running_run(PipelineRunStatus::default());
    let (_, written) =
        reconcile_once(run.clone(), Some(stores), |s| writes(s).unwrap_or_else(not_found)).await;
    running_run(written.unwrap())
}

#[tokio::test]
async fn a_running_run_reconciled_from_the_stores_makes_no_request() {
    let pods = step_pods(&running_run(PipelineRunStatus::default()), "Running", &running());
    let run = settled(&pods).await;
    let status = run.status.clone().unwrap();
    assert_eq!(status.steps.len(), 2);
    assert!(status.steps.iter().all(|s| s.pod.is_some()), "{status:?}");

    let (stores, _pw) = cached(&pods);
    let (seen, written) =
        reconcile_once(run.clone(), Some(stores), |s| writes(s).unwrap_or_else(not_found)).await;
    assert_eq!(seen.len(), 0, "{seen:#?}");
    assert_eq!(written, None);

    // The same reconcile reading from the API server: a list of pods (no
    // Jobs: the steps are all pods), then a list and a watch per step.
    let by_label =
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "9"}, "items": pods});
    let pods_by_name = pods.clone();
    let (seen, written) = reconcile_once(run, None, move |s| {
        let uri = s.uri.as_str();
        if uri.contains("watch=true") {
            Answer::Raw(200, Vec::new())
        } else if uri.starts_with("/api/v1/namespaces/ci/pods?") && uri.contains("labelSelector") {
            Answer::Json(200, by_label.clone())
        } else if uri.starts_with("/api/v1/namespaces/ci/pods?") {
            let pod = pods_by_name
                .iter()
                .find(|p| uri.contains(p.metadata.name.as_deref().unwrap()))
                .unwrap();
            let list = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "9"}, "items": [pod]});
            Answer::Json(200, list)
        } else if uri.starts_with("/apis/batch/v1/namespaces/ci/jobs?") {
            let list = json!({"apiVersion": "batch/v1", "kind": "JobList", "metadata": {"resourceVersion": "9"}, "items": []});
            Answer::Json(200, list)
        } else {
            writes(s).unwrap_or_else(not_found)
        }
    })
    .await;
    assert_eq!(written, None);
    let uris: Vec<&str> = seen.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(seen.len(), 5, "{uris:#?}");
    assert!(!uris.iter().any(|u| u.contains("/jobs")), "{uris:#?}");
    assert_eq!(uris.iter().filter(|u| u.contains("watch=true")).count(), 2);
}

#[tokio::test]
async fn a_succeeded_step_costs_one_status_write_and_no_event() {
    let mut pods = step_pods(&running_run(PipelineRunStatus::default()), "Running", &running());
    let run = settled(&pods).await;
    let finished = step_pods(&run, "Succeeded", &succeeded());
    pods[0] = finished[0].clone();
    let (stores, _pw) = cached(&pods);
    let (seen, written) = reconcile_once(run, Some(stores), |s| writes(s).unwrap_or_else(not_found)).await;
    let requests: Vec<(Method, &str)> = seen.iter().map(|s| (s.method.clone(), s.uri.as_str())).collect();
    // Its success is in the status (phase, completion time); an Event per
    // step transition would be a second write for every step.
    assert_eq!(seen.len(), 1, "{requests:#?}");
    assert!(
        requests
            .iter()
            .any(|(m, u)| *m == Method::PATCH && u.contains("/status?"))
    );
    let written = written.unwrap();
    let done = written
        .steps
        .iter()
        .find(|s| Some(s.name.as_str()) == pods[0].metadata.name.as_deref())
        .unwrap();
    assert_eq!(done.phase, c8s_controller::crd::StepPhase::Succeeded);
}

#[tokio::test]
async fn a_pod_missing_from_a_lagging_store_is_looked_up_not_started_again() {
    let pods = step_pods(&running_run(PipelineRunStatus::default()), "Running", &running());
    let run = settled(&pods).await;
    let unit = pods[0].metadata.name.clone().unwrap();
    let (stores, _pw) = cached(&pods[1..]);
    let found = pods[0].clone();
    let (seen, written) = reconcile_once(run.clone(), Some(stores), move |s| {
        if s.method == Method::GET
            && s.uri.starts_with(&format!(
                "/api/v1/namespaces/ci/pods/{}",
                found.metadata.name.as_deref().unwrap()
            ))
        {
            Answer::Json(200, serde_json::to_value(&found).unwrap())
        } else {
            writes(s).unwrap_or_else(not_found)
        }
    })
    .await;
    let requests: Vec<(Method, &str)> = seen.iter().map(|s| (s.method.clone(), s.uri.as_str())).collect();
    assert_eq!(
        requests,
        vec![(Method::GET, format!("/api/v1/namespaces/ci/pods/{unit}").as_str())]
    );
    assert_eq!(written, None);

    // Really gone: the step's attempt is lost, counted once against the
    // disruption budget, and attempt 1 waits out its backoff.
    let (stores, _pw) = cached(&pods[1..]);
    let (seen, written) = reconcile_once(run, Some(stores), |s| writes(s).unwrap_or_else(not_found)).await;
    assert!(!seen.iter().any(|s| s.method == Method::POST), "{seen:#?}");
    let lost = written.unwrap();
    let step = lost.steps.iter().find(|s| s.name == unit).unwrap();
    assert_eq!(
        (step.reason.as_str(), step.retries.disruptions),
        ("Lost", 1),
        "{step:#?}"
    );
    let retry_at: k8s_openapi::jiff::Timestamp = step.retry_at.as_deref().unwrap().parse().unwrap();
    let wait = retry_at.duration_since(k8s_openapi::jiff::Timestamp::now());
    assert!(
        wait.as_millis() <= 500,
        "the first backoff is at most 500 ms: {wait:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(
        u64::try_from(wait.as_millis()).unwrap_or(0) + 50,
    ))
    .await;

    // Once it has passed, attempt 1 starts, and the loss is not counted again.
    let (stores, _pw) = cached(&pods[1..]);
    let (seen, written) = reconcile_once(running_run(lost), Some(stores), |s| {
        writes(s).unwrap_or_else(not_found)
    })
    .await;
    let created: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.method == Method::POST && s.uri.contains("/pods?"))
        .collect();
    assert_eq!(created.len(), 1, "{seen:#?}");
    assert_eq!(created[0].body["metadata"]["name"], format!("{unit}-r1"));
    let step = written
        .unwrap()
        .steps
        .into_iter()
        .find(|s| s.name == unit)
        .unwrap();
    assert_eq!(step.attempt, 1);
    assert_eq!((step.retries.disruptions, step.retry_at.as_deref()), (1, None));
}

#[tokio::test]
async fn a_pod_created_here_that_the_store_has_not_shown_yet_costs_no_request() {
    // The first reconcile starts both steps; the store's watch has not shown their pods.
    let (stores, _pw) = cached(&[]);
    let run = running_run(PipelineRunStatus::default());
    let (seen, written) =
        reconcile_once(run, Some(stores.clone()), |s| writes(s).unwrap_or_else(not_found)).await;
    let created = seen
        .iter()
        .filter(|s| s.method == Method::POST && s.uri.contains("/pods?"))
        .count();
    assert_eq!(created, 2, "{seen:#?}");
    // The next reconcile, woken before the pods' ADDED events: they are being
    // created, not lost, and nobody asks the API server.
    let (seen, written) = reconcile_once(running_run(written.unwrap()), Some(stores), |s| {
        writes(s).unwrap_or_else(not_found)
    })
    .await;
    assert!(seen.is_empty(), "{seen:#?}");
    assert_eq!(written, None);
}

#[tokio::test]
async fn a_retried_step_is_not_judged_by_the_deleted_attempt_a_lagging_store_still_holds() {
    let pods = step_pods(&running_run(PipelineRunStatus::default()), "Running", &running());
    let mut run = settled(&pods).await;
    let first = pods[0].metadata.name.clone().unwrap();
    let retry = attempt_name(&first, 1);
    let mut status = run.status.clone().unwrap();
    let step = status.steps.iter_mut().find(|s| s.name == first).unwrap();
    step.attempt = 1;
    step.pod = Some(retry.clone());
    run.status = Some(status);
    // The store still has attempt 0, failed and since deleted, and not yet attempt 1.
    let failed = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:01:00Z"}});
    let mut stale = step_pods(&run, "Failed", &failed);
    stale[1] = pods[1].clone();
    let mut live = pods[0].clone();
    live.metadata.name = Some(retry.clone());
    let (stores, _pw) = cached(&stale);
    let path = format!("/api/v1/namespaces/ci/pods/{retry}");
    let (seen, written) = reconcile_once(run, Some(stores), move |s| {
        if s.method == Method::GET && s.uri.starts_with(&path) {
            Answer::Json(200, serde_json::to_value(&live).unwrap())
        } else {
            writes(s).unwrap_or_else(not_found)
        }
    })
    .await;
    let requests: Vec<(Method, &str)> = seen.iter().map(|s| (s.method.clone(), s.uri.as_str())).collect();
    assert_eq!(
        requests,
        vec![(
            Method::GET,
            format!("/api/v1/namespaces/ci/pods/{retry}").as_str()
        )],
        "attempt 1 is looked up; nothing is deleted or created"
    );
    assert_eq!(written, None);
}

/// `main` exited 0, but `artifact-helper` (which pod-builder adds to save a
/// step's outputs) exited 1 (`tar` failed): the kubelet reports the pod
/// Failed. The step failed, as `c8s run` judges it (exit 0 *and* reason
/// Completed), naming the cause; the step that needs its outputs never starts.
#[tokio::test]
async fn a_step_whose_outputs_were_not_saved_fails_though_main_exited_0() {
    let text = "name: shop
repository: https://github.com/octo-org/shop.git
steps:
  - { name: build, image: \"golang:1.23\", commands: [\"go build -o dist/ ./...\"], outputs: [dist] }
  - { name: publish, image: \"alpine:3\", commands: [\"ls dist\"], dependsOn: [build], inputs: [{ step: build, output: dist }] }
";
    let container = |name: &str, state: Value| json!({"name": name, "ready": false, "restartCount": 0, "image": "golang:1.23", "imageID": "", "state": state});
    let build_pod = |run: &PipelineRun, status: Value| {
        let pods = pods_with_status(run, &status);
        let build = pods
            .into_iter()
            .find(|p| p.metadata.labels.as_ref().unwrap()["c8s.dev/step"] == "build")
            .unwrap();
        let containers = &build.spec.as_ref().unwrap().containers;
        assert!(
            containers.iter().any(|c| c.name == "artifact-helper"),
            "pod-builder saves outputs with artifact-helper"
        );
        build
    };
    let run = running_run_of(text, PipelineRunStatus::default());
    let running = json!({
        "phase": "Running",
        "containerStatuses": [container("main", running()), container("artifact-helper", running())]
    });
    let (stores, _pw) = cached(&[build_pod(&run, running)]);
    let (_, written) =
        reconcile_once(run.clone(), Some(stores), |s| writes(s).unwrap_or_else(not_found)).await;
    let run = running_run_of(text, written.unwrap());

    let not_saved = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:01:01Z"}});
    let failed = json!({
        "phase": "Failed",
        "containerStatuses": [container("main", succeeded()), container("artifact-helper", not_saved)]
    });
    let (stores, _pw) = cached(&[build_pod(&run, failed)]);
    let (seen, written) = reconcile_once(run, Some(stores), |s| writes(s).unwrap_or_else(not_found)).await;
    let written = written.unwrap();
    let step = |name: &str| {
        written
            .steps
            .iter()
            .find(|s| s.name.starts_with(&format!("shop-{name}-")))
            .unwrap()
    };
    let build = step("build");
    assert_eq!(build.phase, c8s_controller::crd::StepPhase::Failed, "{build:?}");
    assert_eq!(build.exit_code, Some(0));
    assert!(
        build.message.contains("artifact-helper") && build.message.contains("outputs were not saved"),
        "{build:?}"
    );
    assert_ne!(step("publish").phase, c8s_controller::crd::StepPhase::Running);
    assert!(
        !seen
            .iter()
            .any(|s| s.method == Method::POST && s.uri.contains("/pods?")),
        "publish is not started without its inputs: {seen:#?}"
    );
    assert_eq!(
        written.phase,
        c8s_controller::crd::RunPhase::Failed,
        "{written:?}"
    );
}

/// Many runs reconcile at once when a controller starts, each waiting for the
/// caches' first list: every one of them must go on once it is there.
/// (kube-runtime's `Store::wait_until_ready` wakes only the waiter that polled
/// it last: a controller that waited on it stalled its other runs.)
#[tokio::test]
async fn every_reconcile_waiting_for_the_caches_goes_on_when_they_are_filled() {
    let (pods, mut pod_writer) = reflector::store::<Pod>();
    let stores = Stores::new(pods);
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let stores = stores.clone();
            tokio::spawn(async move { stores.ready().await })
        })
        .collect();
    // Let every waiter poll (and register its waker) before the lists arrive.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    for event in [watcher::Event::Init, watcher::Event::InitDone] {
        pod_writer.apply_watcher_event(&event);
    }
    for (i, waiter) in waiters.into_iter().enumerate() {
        let ready = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap_or_else(|_| panic!("waiter {i} never went on"));
        assert!(matches!(ready, Ok(true)), "waiter {i}: {ready:?}");
    }
}

/// A reconcile that fails says so on the run, as a Warning Event
/// `ReconcileError` (what `kubectl describe` shows), not only in the log.
#[tokio::test]
async fn a_failed_reconcile_is_recorded_as_a_warning_event_on_the_run() {
    let run = running_run(PipelineRunStatus::default());
    let (client, requests) = mock::client("ci", |s| {
        if s.method == Method::GET && s.uri.contains("/pods?") {
            let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403, "message": "pods is forbidden"});
            Answer::Json(403, status)
        } else {
            writes(s).unwrap_or_else(not_found)
        }
    });
    let context = Context::new(client, Settings::default(), "replica-a");
    let result = reconcile(Arc::new(run), Arc::new(context)).await;
    assert!(result.is_err(), "{result:?}");
    let seen = mock::seen(&requests);
    let event = seen
        .iter()
        .find(|s| s.method == Method::POST && s.uri.contains("/events"))
        .unwrap_or_else(|| panic!("no Event: {seen:#?}"));
    assert_eq!(event.body["type"], "Warning");
    assert_eq!(event.body["reason"], "ReconcileError");
    assert!(
        event.body["note"]
            .as_str()
            .unwrap_or_default()
            .contains("forbidden"),
        "{:#}",
        event.body
    );
    assert_eq!(event.body["regarding"]["name"], "shop-b7");
}

//! The kube-rs cluster against kube's mock service (`tower_test::mock::pair`,
//! as kube-rs's own `mock_tests.rs`, through `c8s_kube::mock`): the exact
//! requests made, and real API error bodies.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use c8s_kube::mock::{self, Answer, Requests, Seen, Unused};
use c8s_kube::{
    Cluster, Error, KubeCluster, LogOptions, ReapOptions, RunOptions, RunState, Step, StepState,
    TerminationReason, reap, run_pipeline,
};
use common::{Collect, pod};
use http::Method;
use serde_json::{Value, json};

/// A cluster in namespace `ci` whose requests `answers` answer, in order
/// with `(status, body)`.
fn cluster(answers: Vec<(u16, Vec<u8>)>) -> (KubeCluster, Requests) {
    let answers = answers
        .into_iter()
        .map(|(status, body)| Answer::Raw(status, body))
        .collect();
    let (client, requests) = mock::ordered("default", answers);
    (KubeCluster::new(client, "ci"), requests)
}

/// What the cluster of [`cluster`] saw, once its `answers` answers were
/// all used and no request more was made.
fn served(requests: &Requests, answers: usize) -> Vec<Seen> {
    let seen = mock::seen(requests);
    assert_eq!(
        seen.len(),
        answers,
        "every answer used, no request more: {seen:#?}"
    );
    assert_role_grants(&seen);
    seen
}

/// A cluster in namespace `ci` answering each request from the queue of its
/// route (`"<verb> <resource>"`, e.g. `"watch pods"`), in arrival order; a
/// request whose queue is empty is left unanswered (a watch that stays open).
fn routed_cluster(answers: Vec<(&'static str, u16, Vec<u8>)>) -> (KubeCluster, Requests, Unused) {
    let answers = answers
        .into_iter()
        .map(|(route, status, body)| (route.to_owned(), Answer::Raw(status, body)))
        .collect();
    let route_of = |seen: &Seen| {
        let (_, resource, verb) = rbac_of(&seen.method, &seen.uri);
        format!("{verb} {resource}")
    };
    let (client, requests, unused) = mock::routed("default", route_of, answers);
    (KubeCluster::new(client, "ci"), requests, unused)
}

/// Every request the cluster of [`routed_cluster`] saw, once it is dropped;
/// every answer was asked for.
async fn served_routes(requests: &Requests, unused: &Unused) -> Vec<Seen> {
    let seen = mock::seen_when_closed(requests).await;
    assert_role_grants(&seen);
    let unused = unused.routes();
    assert!(unused.is_empty(), "answers never asked for: {unused:?}");
    seen
}

/// `routes` plus the run record's answers for `writes` writes (one per group
/// of steps that end together): the first creates it, the others are merge
/// patches, and a record created is deleted at the end. A run that never
/// writes never touches it.
fn with_record(
    mut routes: Vec<(&'static str, u16, Vec<u8>)>,
    run: &str,
    writes: usize,
) -> Vec<(&'static str, u16, Vec<u8>)> {
    if writes == 0 {
        return routes;
    }
    let record = bytes(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("c8s-run-{run}"), "namespace": "ci"}}));
    routes.push(("create configmaps", 201, record.clone()));
    for _ in 1..writes {
        routes.push(("patch configmaps", 200, record.clone()));
    }
    let ok = bytes(&json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}));
    routes.push(("delete configmaps", 200, ok));
    routes
}

/// The run's first list, empty (nothing of it exists yet, at resourceVersion
/// 4), and a watch that shows `pod` added, then deleted.
fn added_then_deleted(pod: &Value) -> (Value, String) {
    let list =
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "4"}, "items": []});
    let watch = format!(
        "{}\n{}\n",
        json!({"type": "ADDED", "object": pod}),
        json!({"type": "DELETED", "object": pod})
    );
    (list, watch)
}

/// `(method, uri)` of each request.
fn requests(seen: &[Seen]) -> Vec<(&str, &str)> {
    seen.iter().map(|s| (s.method.as_str(), s.uri.as_str())).collect()
}

/// A pod of Job `job`, as the Job controller labels it.
fn job_pod(job: &str, phase: &str, main: Value, rv: &str) -> Value {
    let mut pod = pod_json(phase, main, rv);
    pod["metadata"]["name"] = json!(format!("{job}-x"));
    pod["metadata"]["labels"] = json!({"batch.kubernetes.io/job-name": job});
    pod
}

/// The RBAC Role documented in `rbac/role.yaml` grants every request made.
fn assert_role_grants(seen: &[Seen]) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/rbac/role.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let role: k8s_openapi::api::rbac::v1::Role = serde_saphyr::from_str(&text).unwrap();
    let rules = role.rules.unwrap_or_default();
    for request in seen {
        let (group, resource, verb) = rbac_of(&request.method, &request.uri);
        let granted = rules.iter().any(|rule| {
            rule.api_groups.iter().flatten().any(|g| *g == group)
                && rule.resources.iter().flatten().any(|r| *r == resource)
                && rule.verbs.iter().any(|v| *v == verb)
        });
        assert!(
            granted,
            "{} {} needs {verb} on {group:?}/{resource}, not in {path}",
            request.method, request.uri
        );
    }
}

/// The API group, resource and RBAC verb of a namespaced request.
fn rbac_of(method: &Method, uri: &str) -> (String, String, &'static str) {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // /api/v1/namespaces/NS/RES[/NAME[/SUB]] or /apis/GROUP/VERSION/namespaces/NS/...
    let (group, rest) = match parts.first() {
        Some(&"api") => (String::new(), &parts[4..]),
        _ => (parts[1].to_owned(), &parts[5..]),
    };
    let resource = match rest {
        [res, _, sub] => format!("{res}/{sub}"),
        [res, ..] => (*res).to_owned(),
        [] => panic!("no resource in {uri}"),
    };
    let named = rest.len() > 1;
    let verb = match *method {
        Method::POST => "create",
        Method::DELETE => "delete",
        Method::PATCH => "patch",
        Method::PUT => "update",
        _ if query.contains("watch=true") => "watch",
        _ if named => "get",
        _ => "list",
    };
    (group, resource, verb)
}

fn status_body(code: u16, reason: &str, message: &str) -> Vec<u8> {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "details": {"name": "t-only", "kind": "pods"}, "code": code
    });
    serde_json::to_vec(&status).unwrap()
}

fn pod_json(phase: &str, main: Value, rv: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "t-only", "namespace": "ci", "uid": "u-1", "resourceVersion": rv},
        "status": {
            "phase": phase,
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "initContainerStatuses": [{
                "name": "postgres", "image": "postgres:16", "imageID": "", "ready": false, "restartCount": 0,
                "state": if phase == "Succeeded" {
                    json!({"terminated": {"exitCode": 143, "reason": "Error"}})
                } else {
                    json!({"running": {}})
                }
            }],
            "containerStatuses": [{
                "name": "main", "image": "busybox", "imageID": "", "ready": true, "restartCount": 0, "state": main
            }]
        }
    })
}

fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

#[tokio::test]
async fn real_api_error_bodies_are_classified() {
    let cases = [
        (409, "AlreadyExists", "pods \"t-only\" already exists", false),
        (
            422,
            "Invalid",
            "Pod \"t-only\" is invalid: spec.containers: Required value",
            false,
        ),
        (
            403,
            "Forbidden",
            "pods is forbidden: User \"ci\" cannot create resource",
            false,
        ),
        (
            429,
            "TooManyRequests",
            "the server has received too many requests",
            true,
        ),
        (
            500,
            "InternalError",
            "Internal error occurred: etcdserver: request timed out",
            true,
        ),
        (
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
            true,
        ),
    ];
    for (code, reason, message, transient) in cases {
        let (cluster, made) = cluster(vec![(code, status_body(code, reason, message))]);
        let error = cluster.create(&pod("t", "only")).await.unwrap_err();
        match &error {
            Error::Api {
                code: c,
                reason: r,
                message: m,
                operation,
                object,
            } => {
                assert_eq!((*c, r.as_str(), m.as_str()), (code, reason, message));
                assert_eq!((*operation, object.as_str()), ("create pod", "t-only"));
            }
            other => panic!("{code}: {other:?}"),
        }
        assert_eq!(error.is_transient(), transient, "{code}");
        let seen = served(&made, 1);
        assert_eq!(
            (&seen[0].method, seen[0].uri.as_str()),
            (&Method::POST, "/api/v1/namespaces/ci/pods?")
        );
        assert_eq!(seen[0].body["metadata"]["name"], "t-only");
    }
}

#[tokio::test]
async fn a_body_that_is_not_a_status_is_still_an_api_error() {
    let (cluster, made) = cluster(vec![(502, b"<html>Bad Gateway</html>".to_vec())]);
    let error = cluster.create(&pod("t", "only")).await.unwrap_err();
    assert!(matches!(error, Error::Api { code: 502, .. }), "{error:?}");
    assert!(error.is_transient());
    served(&made, 1);
}

#[tokio::test(start_paused = true)]
async fn a_step_makes_exactly_these_requests() {
    let created = pod_json(
        "Pending",
        json!({"waiting": {"reason": "ContainerCreating"}}),
        "100",
    );
    // Nothing of the run exists at its first list; its pod comes with the watch.
    let list =
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "99"}, "items": []});
    let running = pod_json(
        "Running",
        json!({"running": {"startedAt": "2026-01-01T00:00:01Z"}}),
        "101",
    );
    let done = pod_json(
        "Succeeded",
        json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
        "102",
    );
    let watch = format!(
        "{}\n{}\n{}\n",
        json!({"type": "ADDED", "object": created}),
        json!({"type": "MODIFIED", "object": running}),
        json!({"type": "MODIFIED", "object": done})
    );
    let deleted =
        json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": "t-only"}});
    let (cluster, made, unused) = routed_cluster(with_record(
        vec![
            (
                "create pods",
                500,
                status_body(500, "InternalError", "etcdserver: leader changed"),
            ),
            ("create pods", 201, bytes(&created)),
            ("list pods", 200, bytes(&list)),
            ("watch pods", 200, watch.into_bytes()),
            ("get pods/log", 200, b"password=s3cret\nok\n".to_vec()),
            ("delete pods", 200, bytes(&deleted)),
        ],
        "r1",
        0,
    ));
    let sink = Collect::new();
    let masker: c8s_kube::MaskerFactory = Arc::new(|_: &str| {
        Box::new(c8s_kube::ChunkMasker(|chunk: &[u8]| {
            String::from_utf8_lossy(chunk)
                .replace("s3cret", "***")
                .into_bytes()
        })) as Box<dyn c8s_kube::LogMasker>
    });
    let options = RunOptions::new("r1").logs(LogOptions::new(masker, sink.clone()));
    let steps = vec![Step::new("only", pod("t", "only"))];
    let status = run_pipeline(&cluster, steps, options, std::future::pending())
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    let outcome = status.step("only").unwrap().outcome.clone().unwrap();
    assert_eq!(
        (outcome.exit_code, outcome.reason),
        (Some(0), TerminationReason::Completed)
    );
    assert_eq!(sink.text("only"), "password=***\nok\n");

    drop(cluster);
    let seen = served_routes(&made, &unused).await;
    assert_eq!(
        requests(&seen),
        [
            // The run's one watch first: its list shows nothing of run r1
            // (a live run id would be refused here, before any create), then a
            // watch from the list's resourceVersion. No run record: the run
            // never needs to write one.
            (
                "GET",
                "/api/v1/namespaces/ci/pods?&labelSelector=c8s.dev%2Frun%3Dr1&limit=500"
            ),
            (
                "GET",
                "/api/v1/namespaces/ci/pods?&watch=true&timeoutSeconds=290&labelSelector=c8s.dev%2Frun%3Dr1\
                 &allowWatchBookmarks=true&resourceVersion=99"
            ),
            ("POST", "/api/v1/namespaces/ci/pods?"),
            // The server ended that watch; it resumes from the last version (and stays open).
            (
                "GET",
                "/api/v1/namespaces/ci/pods?&watch=true&timeoutSeconds=290&labelSelector=c8s.dev%2Frun%3Dr1\
                 &allowWatchBookmarks=true&resourceVersion=102"
            ),
            // The retried create (after backoff).
            ("POST", "/api/v1/namespaces/ci/pods?"),
            (
                "GET",
                "/api/v1/namespaces/ci/pods/t-only/log?&container=main&follow=true"
            ),
            // The run ends with its one step: its pod's delete.
            ("DELETE", "/api/v1/namespaces/ci/pods/t-only?"),
        ]
    );
    // The pod carries c8s's labels; delete propagates in the background.
    let labels = &seen[4].body["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/managed-by"], "c8s");
    assert_eq!(labels["c8s.dev/run"], "r1");
    assert_eq!(seen[6].body, json!({"propagationPolicy": "Background"}));
}

#[tokio::test]
async fn an_expired_watch_is_reported_as_transient() {
    let list =
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "7"}, "items": []});
    let gone = json!({"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410, "reason": "Expired",
        "message": "too old resource version: 7 (9)"
    }});
    let (cluster, made) = cluster(vec![(200, bytes(&list)), (200, format!("{gone}\n").into_bytes())]);
    let object = c8s_kube::ObjectRef::new(c8s_kube::ObjectKind::Pod, "t-only");
    let mut stream = cluster.observe(&object).await.unwrap();
    use futures::StreamExt;
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.phase, c8s_kube::PodPhase::Gone);
    let error = stream.next().await.unwrap().unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert!(error.to_string().contains("410 Expired"), "{error}");
    served(&made, 2);
}

#[tokio::test]
async fn the_reaper_lists_pods_and_jobs_and_deletes_in_the_background() {
    let old = "2020-01-01T00:00:00Z";
    let pods = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [
        {"metadata": {"name": "a-unit", "creationTimestamp": old, "labels": {"c8s.dev/run": "a"}},
         "status": {"phase": "Succeeded"}},
        {"metadata": {"name": "b-build-xyz", "creationTimestamp": old, "labels": {"c8s.dev/run": "b"},
         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "b-build", "uid": "j"}]},
         "status": {"phase": "Running"}}
    ]});
    let jobs = json!({"apiVersion": "batch/v1", "kind": "JobList", "metadata": {}, "items": [
        {"metadata": {"name": "b-build", "creationTimestamp": old, "labels": {"c8s.dev/run": "b"}},
         "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    ]});
    // Run records: an old one (deleted), a young one (kept), and a ConfigMap
    // with the labels that is not a record (not touched).
    let young = "2999-01-01T00:00:00Z";
    let records = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {}, "items": [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "c8s-run-a", "creationTimestamp": old, "labels": {"c8s.dev/run": "a"}}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "c8s-run-c", "creationTimestamp": young, "labels": {"c8s.dev/run": "c"}}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "settings", "creationTimestamp": old, "labels": {"c8s.dev/run": "b"}}}
    ]});
    let ok = bytes(&json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}));
    let (cluster, made) = cluster(vec![
        (200, bytes(&pods)),
        (200, bytes(&jobs)),
        (200, bytes(&records)),
        (200, ok.clone()),
        (200, ok.clone()),
        (404, status_body(404, "NotFound", "gone")),
    ]);
    let report = reap(&cluster, &ReapOptions::new(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(report.deleted.len(), 2, "{report:?}");
    assert_eq!(report.kept[0].1, "owned by a Job");
    let records: Vec<_> = report.records_deleted.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(records, ["a"], "{report:?}");
    assert_eq!(report.records_kept.len(), 1, "{report:?}");
    let seen = served(&made, 6);
    let requests: Vec<_> = seen.iter().map(|s| (s.method.as_str(), s.uri.as_str())).collect();
    assert_eq!(
        requests,
        [
            (
                "GET",
                "/api/v1/namespaces/ci/pods?&labelSelector=app.kubernetes.io%2Fmanaged-by%3Dc8s"
            ),
            (
                "GET",
                "/apis/batch/v1/namespaces/ci/jobs?&labelSelector=app.kubernetes.io%2Fmanaged-by%3Dc8s"
            ),
            (
                "GET",
                "/api/v1/namespaces/ci/configmaps?&labelSelector=app.kubernetes.io%2Fmanaged-by%3Dc8s%2Cc8s.dev%2Frun"
            ),
            ("DELETE", "/api/v1/namespaces/ci/configmaps/c8s-run-a?"),
            ("DELETE", "/api/v1/namespaces/ci/pods/a-unit?"),
            // Already gone (404): counts as deleted.
            ("DELETE", "/apis/batch/v1/namespaces/ci/jobs/b-build?"),
        ]
    );
    assert!(
        seen[3..]
            .iter()
            .all(|s| s.body == json!({"propagationPolicy": "Background"}))
    );
}

#[tokio::test(start_paused = true)]
async fn a_job_whose_deadline_ran_out_is_deadline_exceeded_not_retried() {
    let job: k8s_openapi::api::batch::v1::Job = serde_json::from_value(json!({
        "metadata": {"name": "t-build", "labels": {"c8s.dev/step": "build"}},
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": 60, "template": {"spec": {"containers": []}}}
    }))
    .unwrap();
    let step = Step::new("build", c8s_kube::StepObject::Job(Box::new(job)));
    let (list, watch) = added_then_deleted(&job_pod("t-build", "Running", json!({"running": {}}), "5"));
    let failed_job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "t-build"},
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                                   "message": "Job was active longer than specified deadline"}]}});
    let ok = bytes(&json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}));
    let (cluster, made, unused) = routed_cluster(with_record(
        vec![
            ("create jobs", 201, bytes(&failed_job)),
            ("list pods", 200, bytes(&list)),
            ("watch pods", 200, watch.into_bytes()),
            ("get jobs", 200, bytes(&failed_job)),
            ("delete jobs", 200, ok),
        ],
        "r2",
        0,
    ));
    let status = run_pipeline(
        &cluster,
        vec![step],
        RunOptions::new("r2"),
        std::future::pending(),
    )
    .await
    .unwrap();
    let outcome = status.step("build").unwrap().outcome.clone().unwrap();
    assert_eq!(
        outcome.reason,
        TerminationReason::DeadlineExceeded,
        "{}",
        status.to_json()
    );
    assert_eq!(outcome.message, "Job was active longer than specified deadline");

    drop(cluster);
    let seen = served_routes(&made, &unused).await;
    let selector = "labelSelector=c8s.dev%2Frun%3Dr2";
    assert_eq!(
        requests(&seen),
        [
            (
                "GET",
                format!("/api/v1/namespaces/ci/pods?&{selector}&limit=500").as_str()
            ),
            (
                "GET",
                format!(
                    "/api/v1/namespaces/ci/pods?&watch=true&timeoutSeconds=290&{selector}\
                     &allowWatchBookmarks=true&resourceVersion=4"
                )
                .as_str()
            ),
            ("POST", "/apis/batch/v1/namespaces/ci/jobs?"),
            ("GET", "/apis/batch/v1/namespaces/ci/jobs/t-build"),
            (
                "GET",
                format!(
                    "/api/v1/namespaces/ci/pods?&watch=true&timeoutSeconds=290&{selector}\
                     &allowWatchBookmarks=true&resourceVersion=5"
                )
                .as_str()
            ),
            ("DELETE", "/apis/batch/v1/namespaces/ci/jobs/t-build?"),
        ]
    );
    // The pod template carries the run label too, so the reaper finds the Job's pods.
    assert_eq!(
        seen[2].body["spec"]["template"]["metadata"]["labels"]["c8s.dev/run"],
        "r2"
    );
    assert_eq!(seen[5].body, json!({"propagationPolicy": "Background"}));
}

#[tokio::test]
async fn a_pods_events_are_listed_by_field_selector_oldest_first() {
    let event = |name: &str, at: &str, reason: &str, message: &str| {
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": "ci"},
               "involvedObject": {"kind": "Pod", "name": "t-only"}, "type": "Warning",
               "reason": reason, "message": message, "lastTimestamp": at})
    };
    let list = json!({"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": [
        event("e2", "2026-01-01T00:01:00Z", "FailedMount", "secret \"db\" not found"),
        event("e1", "2026-01-01T00:00:00Z", "Scheduled", "assigned ci/t-only to node-1"),
    ]});
    let (cluster, made) = cluster(vec![(200, bytes(&list))]);
    let events = cluster
        .events(&c8s_kube::ObjectRef::new(c8s_kube::ObjectKind::Pod, "t-only"))
        .await
        .unwrap();
    let reasons: Vec<_> = events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, ["Scheduled", "FailedMount"]);
    assert_eq!(events[1].message, "secret \"db\" not found");
    let seen = served(&made, 1);
    assert_eq!(
        seen[0].uri,
        "/api/v1/namespaces/ci/events?&fieldSelector=involvedObject.name%3Dt-only%2CinvolvedObject.kind%3DPod"
    );
}

#[tokio::test(start_paused = true)]
async fn a_job_marked_failure_target_is_final_before_its_pod_is_gone() {
    let job: k8s_openapi::api::batch::v1::Job = serde_json::from_value(json!({
        "metadata": {"name": "t-build", "labels": {"c8s.dev/step": "build"}},
        "spec": {"backoffLimit": 0, "template": {"spec": {"containers": []}}}
    }))
    .unwrap();
    let step = Step::new("build", c8s_kube::StepObject::Job(Box::new(job)));
    let (list, watch) = added_then_deleted(&job_pod("t-build", "Running", json!({"running": {}}), "5"));
    // Kubernetes 1.31+: FailureTarget is set first; Failed only once the pods are gone.
    let target = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "t-build"},
        "status": {"conditions": [{"type": "FailureTarget", "status": "True", "reason": "PodFailurePolicy",
                                   "message": "Container main for pod ci/t-build-x failed with exit code 3"}]}});
    let ok = bytes(&json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}));
    let (cluster, made, unused) = routed_cluster(with_record(
        vec![
            ("create jobs", 201, bytes(&target)),
            ("list pods", 200, bytes(&list)),
            ("watch pods", 200, watch.into_bytes()),
            ("get jobs", 200, bytes(&target)),
            ("delete jobs", 200, ok),
        ],
        "r3",
        0,
    ));
    let status = run_pipeline(
        &cluster,
        vec![step],
        RunOptions::new("r3"),
        std::future::pending(),
    )
    .await
    .unwrap();
    let step = status.step("build").unwrap();
    assert_eq!(step.state, StepState::Failed, "{}", status.to_json());
    // One attempt: the Job's verdict is final, the runner does not retry it.
    assert_eq!(step.attempts, 1);
    let outcome = step.outcome.clone().unwrap();
    assert_eq!(outcome.reason, TerminationReason::Error, "{}", status.to_json());
    assert!(outcome.message.contains("exit code 3"), "{}", outcome.message);
    drop(cluster);
    let seen = served_routes(&made, &unused).await;
    let methods: Vec<_> = seen.iter().map(|s| s.method.as_str()).collect();
    // The watch (list, watch), the Job's creation, the Job's verdict, the
    // watch resumed; the run ends with its one step: the Job's delete (no
    // run record: nothing to write).
    assert_eq!(methods, ["GET", "GET", "POST", "GET", "GET", "DELETE"]);
    assert!(seen[2].uri.contains("/jobs"), "{}", seen[2].uri);
    assert!(seen[5].uri.contains("/jobs/t-build"), "{}", seen[5].uri);
}

#[tokio::test(start_paused = true)]
async fn a_pod_the_job_replaces_is_followed_not_retried_by_the_runner() {
    let job: k8s_openapi::api::batch::v1::Job = serde_json::from_value(json!({
        "metadata": {"name": "t-build", "labels": {"c8s.dev/step": "build"}},
        "spec": {"template": {"spec": {"containers": []}}}
    }))
    .unwrap();
    let step = Step::new("build", c8s_kube::StepObject::Job(Box::new(job)));
    let first = job_pod("t-build", "Running", json!({"running": {}}), "5");
    let mut second = job_pod(
        "t-build",
        "Succeeded",
        json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
        "7",
    );
    second["metadata"]["name"] = json!("t-build-y");
    let list =
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "4"}, "items": []});
    let watch = format!(
        "{}\n{}\n{}\n",
        json!({"type": "ADDED", "object": first}),
        json!({"type": "DELETED", "object": first}),
        json!({"type": "ADDED", "object": second})
    );
    // The pod was disrupted; the Job has no verdict and makes a new pod itself.
    let running_job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "t-build"},
        "status": {"active": 1}});
    let ok = bytes(&json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}));
    let (cluster, made, unused) = routed_cluster(with_record(
        vec![
            ("create jobs", 201, bytes(&running_job)),
            ("list pods", 200, bytes(&list)),
            ("watch pods", 200, watch.into_bytes()),
            ("get jobs", 200, bytes(&running_job)),
            ("delete jobs", 200, ok),
        ],
        "r4",
        0,
    ));
    let status = run_pipeline(
        &cluster,
        vec![step],
        RunOptions::new("r4"),
        std::future::pending(),
    )
    .await
    .unwrap();
    let step = status.step("build").unwrap();
    assert_eq!(step.state, StepState::Succeeded, "{}", status.to_json());
    assert_eq!(step.attempts, 1);
    drop(cluster);
    let seen = served_routes(&made, &unused).await;
    let methods: Vec<_> = seen.iter().map(|s| s.method.as_str()).collect();
    // The watch (list, watch), the Job's creation, the Job's verdict, the
    // watch resumed; the run ends with its one step: the Job's delete (no
    // run record: nothing to write).
    assert_eq!(methods, ["GET", "GET", "POST", "GET", "GET", "DELETE"]);
    assert!(seen[2].uri.contains("/jobs"), "{}", seen[2].uri);
    assert!(seen[5].uri.contains("/jobs/t-build"), "{}", seen[5].uri);
}

#[tokio::test(start_paused = true)]
async fn a_two_step_run_makes_these_requests_over_one_watch() {
    let named = |name: &str, phase: &str, main: Value, rv: &str| {
        let mut pod = pod_json(phase, main, rv);
        pod["metadata"]["name"] = json!(name);
        pod
    };
    let done = json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
    let empty =
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": []});
    let event = |type_: &str, pod: Value| json!({"type": type_, "object": pod}).to_string();
    let first = [
        event("ADDED", named("t-a", "Running", json!({"running": {}}), "2")),
        event("MODIFIED", named("t-a", "Succeeded", done.clone(), "3")),
    ]
    .join("\n");
    let second = [
        event("ADDED", named("t-b", "Running", json!({"running": {}}), "4")),
        event("MODIFIED", named("t-b", "Succeeded", done.clone(), "5")),
    ]
    .join("\n");
    let ok = bytes(&json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}));
    let created = |name: &str| bytes(&named(name, "Pending", json!({"waiting": {}}), "1"));
    let (cluster, made, unused) = routed_cluster(with_record(
        vec![
            ("list pods", 200, bytes(&empty)),
            ("watch pods", 200, format!("{first}\n").into_bytes()),
            ("watch pods", 200, format!("{second}\n").into_bytes()),
            ("create pods", 201, created("t-a")),
            ("create pods", 201, created("t-b")),
            ("delete pods", 200, ok.clone()),
            ("delete pods", 200, ok),
        ],
        "r5",
        1,
    ));
    let steps = vec![
        Step::new("a", pod("t", "a")),
        Step::new("b", pod("t", "b")).after(["a"]),
    ];
    let status = run_pipeline(&cluster, steps, RunOptions::new("r5"), std::future::pending())
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    drop(cluster);
    let seen = served_routes(&made, &unused).await;
    let watch = |rv: &str| {
        format!(
            "/api/v1/namespaces/ci/pods?&watch=true&timeoutSeconds=290&labelSelector=c8s.dev%2Frun%3Dr5\
             &allowWatchBookmarks=true&resourceVersion={rv}"
        )
    };
    let (w1, w3, w5) = (watch("1"), watch("3"), watch("5"));
    assert_eq!(
        requests(&seen),
        [
            // The watch's first list comes before any create.
            (
                "GET",
                "/api/v1/namespaces/ci/pods?&labelSelector=c8s.dev%2Frun%3Dr5&limit=500"
            ),
            ("GET", w1.as_str()),
            ("POST", "/api/v1/namespaces/ci/pods?"),
            ("GET", w3.as_str()),
            ("GET", w5.as_str()),
            // a's end is recorded before its pod is deleted: the record's
            // first write creates it, and b's create waits for that one (a
            // record found there refuses the run before it creates more).
            ("POST", "/api/v1/namespaces/ci/configmaps?"),
            ("DELETE", "/api/v1/namespaces/ci/pods/t-a?"),
            ("POST", "/api/v1/namespaces/ci/pods?"),
            // The run ends with b: the record goes before b's pod.
            ("DELETE", "/api/v1/namespaces/ci/configmaps/c8s-run-r5?"),
            ("DELETE", "/api/v1/namespaces/ci/pods/t-b?"),
        ]
    );
    // One list for the whole run; every watch resumes the one before it.
    assert_eq!(
        seen.iter()
            .filter(|s| !s.uri.contains("watch=true") && s.method == Method::GET)
            .count(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_pod_deleted_before_its_end_was_seen_is_judged_by_its_final_status() {
    let pending = pod_json(
        "Pending",
        json!({"waiting": {"reason": "ContainerCreating"}}),
        "1",
    );
    let list =
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": []});
    let done = pod_json(
        "Succeeded",
        json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
        "3",
    );
    // Someone deleted the finished pod; the watch only shows its deletion.
    let watch = format!(
        "{}\n{}\n",
        json!({"type": "ADDED", "object": pending}),
        json!({"type": "DELETED", "object": done})
    );
    let (cluster, made, unused) = routed_cluster(with_record(
        vec![
            ("create pods", 201, bytes(&pending)),
            ("list pods", 200, bytes(&list)),
            // The first watch ends at once; the events come to the next.
            ("watch pods", 200, Vec::new()),
            ("watch pods", 200, watch.into_bytes()),
            (
                "delete pods",
                404,
                status_body(404, "NotFound", "pods \"t-only\" not found"),
            ),
        ],
        "r6",
        0,
    ));
    let steps = vec![Step::new("only", pod("t", "only"))];
    // A retry would wait forever for an answer to its create: bounded here.
    let run = run_pipeline(&cluster, steps, RunOptions::new("r6"), std::future::pending());
    let status = tokio::time::timeout(Duration::from_secs(3600), run)
        .await
        .expect("the run ended without creating the pod again")
        .unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    assert_eq!(status.step("only").unwrap().attempts, 1);
    drop(cluster);
    let seen = served_routes(&made, &unused).await;
    // Never created again.
    let creates = seen
        .iter()
        .filter(|s| s.method == Method::POST && s.uri.contains("/pods"))
        .count();
    assert_eq!(creates, 1);
}

#[tokio::test(start_paused = true)]
async fn a_run_id_whose_pods_exist_is_refused_from_the_watchs_first_list() {
    let running = pod_json("Running", json!({"running": {}}), "3");
    let list = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "3"}, "items": [running]});
    let (cluster, made, unused) = routed_cluster(vec![("list pods", 200, bytes(&list))]);
    let steps = vec![Step::new("only", pod("t", "only"))];
    let refused = run_pipeline(&cluster, steps, RunOptions::new("r7"), std::future::pending()).await;
    assert!(
        matches!(&refused, Err(Error::RunExists { run_id }) if run_id == "r7"),
        "{refused:?}"
    );
    drop(cluster);
    let seen = served_routes(&made, &unused).await;
    // The run's one list, and nothing created, written or deleted.
    assert!(seen.iter().all(|s| s.method == Method::GET), "{seen:?}");
    assert_eq!(
        seen[0].uri,
        "/api/v1/namespaces/ci/pods?&labelSelector=c8s.dev%2Frun%3Dr7&limit=500"
    );
}

fn assert_send<T: Send>(_: &T) {}

#[tokio::test]
async fn run_pipeline_and_reap_futures_are_send() {
    let (cluster, _requests) = cluster(Vec::new());
    let run = run_pipeline(
        &cluster,
        Vec::new(),
        RunOptions::new("x"),
        std::future::pending::<()>(),
    );
    assert_send(&run);
    let options = ReapOptions::new(Duration::from_secs(1));
    assert_send(&reap(&cluster, &options));
}

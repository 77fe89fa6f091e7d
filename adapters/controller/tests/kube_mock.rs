//! The kube-specific parts against kube's mock service
//! (`tower_test::mock::pair`, through `c8s_kube::mock`): the exact requests
//! of the Lease, the status patch, the CRD apply and the finalizer.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use c8s_controller::LeaderLease;
use c8s_controller::controller::{Context, FINALIZER, apply_crds, backoff, patch_status, reconcile};
use c8s_controller::crd::{PipelineRun, PipelineRunSpec, PipelineRunStatus, RunPhase};
use c8s_controller::reconcile::Settings;
use c8s_kube::mock::{self, Answer, Requests, Seen};
use http::Method;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

#[path = "../../../pod-builder/tests/common/tools.rs"]
#[allow(dead_code)]
mod tools;

/// A client in namespace `ci` answering its requests with `answers`
/// (`(status, body)`), one each, in order.
fn client(answers: Vec<(u16, Value)>) -> (kube::Client, Script) {
    let count = answers.len();
    let answers = answers
        .into_iter()
        .map(|(status, body)| Answer::Json(status, body))
        .collect();
    let (client, requests) = mock::ordered("ci", answers);
    (client, Script { requests, count })
}

/// The requests a [`client`] saw.
struct Script {
    requests: Requests,
    count: usize,
}

impl Script {
    /// What the client saw, once every answer was used and no request more
    /// was made.
    fn seen(&self) -> Vec<Seen> {
        let seen = mock::seen(&self.requests);
        assert_eq!(
            seen.len(),
            self.count,
            "every answer used, no request more: {seen:#?}"
        );
        seen
    }
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
}

fn conflict() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "the object has been modified"})
}

fn lease(holder: &str, renewed: &str, version: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "c8s-controller", "namespace": "c8s", "resourceVersion": version},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "acquireTime": renewed, "renewTime": renewed, "leaseTransitions": 3}
    })
}

fn lease_api(client: &kube::Client) -> LeaderLease {
    LeaderLease::new(
        kube::Api::namespaced(client.clone(), "c8s"),
        "c8s-controller",
        "replica-a",
        15,
    )
}

const LEASE_URI: &str = "/apis/coordination.k8s.io/v1/namespaces/c8s/leases/c8s-controller";

#[tokio::test]
async fn a_missing_lease_is_created_held_by_us() {
    let (client, server) = client(vec![
        (404, not_found()),
        (201, lease("replica-a", "2026-01-01T00:00:00Z", "1")),
    ]);
    let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    assert!(lease_api(&client).try_acquire_or_renew(now).await.unwrap());
    let seen = server.seen();
    assert_eq!(
        (seen[0].method.clone(), seen[0].uri.as_str()),
        (Method::GET, LEASE_URI)
    );
    assert_eq!(seen[1].method, Method::POST);
    assert_eq!(seen[1].uri, "/apis/coordination.k8s.io/v1/namespaces/c8s/leases?");
    assert_eq!(seen[1].body["spec"]["holderIdentity"], "replica-a");
    assert_eq!(seen[1].body["spec"]["leaseDurationSeconds"], 15);
}

#[tokio::test]
async fn a_lease_held_by_another_live_replica_is_left_alone() {
    let (client, server) = client(vec![(200, lease("replica-b", "2026-01-01T00:00:00Z", "7"))]);
    let now: Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
    assert!(!lease_api(&client).try_acquire_or_renew(now).await.unwrap());
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "no write: {seen:?}");
}

#[tokio::test(start_paused = true)]
async fn an_expired_lease_is_taken_over_with_its_resource_version() {
    let (client, server) = client(vec![
        (200, lease("replica-b", "2026-01-01T00:00:00Z", "7")),
        (200, lease("replica-b", "2026-01-01T00:00:00Z", "7")),
        (200, lease("replica-a", "2026-01-01T00:00:20Z", "8")),
    ]);
    let lease = lease_api(&client);
    let now: Timestamp = "2026-01-01T00:00:20Z".parse().unwrap();
    // Expiry is judged by this replica's clock from when it first saw the record.
    assert!(!lease.try_acquire_or_renew(now).await.unwrap());
    tokio::time::advance(Duration::from_secs(16)).await;
    assert!(lease.try_acquire_or_renew(now).await.unwrap());
    let seen = server.seen();
    assert_eq!(
        (seen[2].method.clone(), seen[2].uri.as_str()),
        (Method::PUT, format!("{LEASE_URI}?").as_str())
    );
    assert_eq!(seen[2].body["metadata"]["resourceVersion"], "7");
    assert_eq!(seen[2].body["spec"]["holderIdentity"], "replica-a");
    assert_eq!(seen[2].body["spec"]["leaseTransitions"], 4);
    assert_eq!(seen[2].body["spec"]["renewTime"], "2026-01-01T00:00:20.000000Z");
}

#[tokio::test(start_paused = true)]
async fn another_hosts_old_renew_time_is_not_compared_with_the_local_clock() {
    // The holder's clock runs an hour behind ours: its renewTime looks an hour
    // old, yet it renews (the record changes) and must be left alone.
    let (client, server) = client(vec![
        (200, lease("replica-b", "2026-01-01T00:00:00Z", "7")),
        (200, lease("replica-b", "2026-01-01T00:00:10Z", "8")),
        (200, lease("replica-b", "2026-01-01T00:00:20Z", "9")),
    ]);
    let lease = lease_api(&client);
    let now: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
    for _ in 0..3 {
        assert!(!lease.try_acquire_or_renew(now).await.unwrap());
        tokio::time::advance(Duration::from_secs(10)).await;
    }
    let seen = server.seen();
    assert!(seen.iter().all(|s| s.method == Method::GET), "no write: {seen:?}");
}

#[tokio::test(start_paused = true)]
async fn two_replicas_racing_for_an_expired_lease_one_loses_on_409() {
    let (client, server) = client(vec![
        (200, lease("replica-b", "2026-01-01T00:00:00Z", "7")),
        (200, lease("replica-b", "2026-01-01T00:00:00Z", "7")),
        (409, conflict()),
    ]);
    let lease = lease_api(&client);
    let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
    assert!(!lease.try_acquire_or_renew(now).await.unwrap());
    tokio::time::advance(Duration::from_secs(16)).await;
    assert!(!lease.try_acquire_or_renew(now).await.unwrap());
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test]
async fn the_holder_renews_keeping_its_acquire_time() {
    let (client, server) = client(vec![
        (200, lease("replica-a", "2026-01-01T00:00:00Z", "7")),
        (200, lease("replica-a", "2026-01-01T00:00:05Z", "8")),
    ]);
    let now: Timestamp = "2026-01-01T00:00:05Z".parse().unwrap();
    assert!(lease_api(&client).try_acquire_or_renew(now).await.unwrap());
    let seen = server.seen();
    assert_eq!(seen[1].body["spec"]["acquireTime"], "2026-01-01T00:00:00.000000Z");
    assert_eq!(seen[1].body["spec"]["renewTime"], "2026-01-01T00:00:05.000000Z");
    assert_eq!(seen[1].body["spec"]["leaseTransitions"], 3);
}

#[tokio::test]
async fn the_holder_renews_without_a_read_until_someone_else_writes() {
    let (client, server) = client(vec![
        // First renewal: read, then write.
        (200, lease("replica-a", "2026-01-01T00:00:00Z", "7")),
        (200, lease("replica-a", "2026-01-01T00:00:05Z", "8")),
        // Second: one write, on the version the first wrote.
        (200, lease("replica-a", "2026-01-01T00:00:07Z", "9")),
        // Third: the write is refused (another replica wrote), so it reads.
        (409, conflict()),
        (200, lease("replica-b", "2026-01-01T00:00:08Z", "11")),
    ]);
    let lease = lease_api(&client);
    let at = |t: &str| t.parse::<Timestamp>().unwrap();
    assert!(
        lease
            .try_acquire_or_renew(at("2026-01-01T00:00:05Z"))
            .await
            .unwrap()
    );
    assert!(
        lease
            .try_acquire_or_renew(at("2026-01-01T00:00:07Z"))
            .await
            .unwrap()
    );
    assert!(
        !lease
            .try_acquire_or_renew(at("2026-01-01T00:00:09Z"))
            .await
            .unwrap()
    );
    let seen = server.seen();
    let methods: Vec<&Method> = seen.iter().map(|s| &s.method).collect();
    assert_eq!(
        methods,
        [
            &Method::GET,
            &Method::PUT,
            &Method::PUT,
            &Method::PUT,
            &Method::GET
        ]
    );
    assert_eq!(seen[2].body["metadata"]["resourceVersion"], "8");
    assert_eq!(seen[2].body["spec"]["renewTime"], "2026-01-01T00:00:07.000000Z");
    assert_eq!(seen[2].body["spec"]["acquireTime"], "2026-01-01T00:00:05.000000Z");
    assert_eq!(seen[3].body["metadata"]["resourceVersion"], "9");
}

fn run_json(finalizers: &[&str], deleting: bool) -> Value {
    let mut run = json!({
        "apiVersion": "c8s.dev/v1alpha1", "kind": "PipelineRun",
        "metadata": {"name": "shop-b7", "namespace": "ci", "uid": "u-1", "resourceVersion": "5", "generation": 1,
                     "finalizers": finalizers, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"pipelineRef": "shop", "branch": "main", "build": 7}
    });
    if deleting {
        run["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:05:00Z");
    }
    run
}

#[tokio::test]
async fn the_status_is_written_with_server_side_apply_on_the_status_subresource() {
    let (client, server) = client(vec![(200, run_json(&[], false))]);
    let api = kube::Api::<PipelineRun>::namespaced(client, "ci");
    let status = PipelineRunStatus {
        phase: RunPhase::Running,
        ..PipelineRunStatus::default()
    };
    patch_status(&api, "shop-b7", &status).await.unwrap();
    let seen = server.seen();
    assert_eq!(seen[0].method, Method::PATCH);
    assert_eq!(
        seen[0].uri,
        "/apis/c8s.dev/v1alpha1/namespaces/ci/pipelineruns/shop-b7/status?&force=true&fieldManager=c8s-controller"
    );
    assert_eq!(seen[0].content_type, "application/apply-patch+yaml");
    assert_eq!(
        seen[0].body,
        json!({"apiVersion": "c8s.dev/v1alpha1", "kind": "PipelineRun", "status": {"phase": "Running"}})
    );
}

#[tokio::test]
async fn the_crds_are_applied_server_side_one_request_each() {
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "x"},
                     "spec": {"group": "c8s.dev", "names": {"kind": "X", "plural": "xs"}, "scope": "Namespaced", "versions": []}});
    let (client, server) = client(vec![
        (200, crd.clone()),
        (200, crd.clone()),
        (200, crd.clone()),
        (200, crd),
    ]);
    apply_crds(&client).await.unwrap();
    let seen = server.seen();
    let uris: Vec<&str> = seen.iter().map(|s| s.uri.as_str()).collect();
    let base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    assert_eq!(
        uris,
        [
            format!("{base}/pipelines.c8s.dev?&force=true&fieldManager=c8s-controller"),
            format!("{base}/pipelineruns.c8s.dev?&force=true&fieldManager=c8s-controller"),
            format!("{base}/repositoryconnections.c8s.dev?&force=true&fieldManager=c8s-controller"),
            format!("{base}/concoursepipelines.c8s.dev?&force=true&fieldManager=c8s-controller"),
        ]
    );
    assert!(
        seen.iter()
            .all(|s| s.method == Method::PATCH && s.content_type == "application/apply-patch+yaml")
    );
    assert_eq!(seen[1].body["spec"]["names"]["kind"], "PipelineRun");
}

fn context(client: kube::Client) -> Arc<Context> {
    Arc::new(Context::new(client, Settings::default(), "replica-a"))
}

#[tokio::test]
async fn a_deleted_run_left_with_the_old_finalizer_has_it_removed_and_nothing_else() {
    let (client, server) = client(vec![(200, run_json(&["example.com/keep"], true))]);
    let run: PipelineRun = serde_json::from_value(run_json(&["example.com/keep", FINALIZER], true)).unwrap();
    reconcile(Arc::new(run), context(client)).await.unwrap();
    let seen = server.seen();
    // No list, no delete: the run's pods are the garbage collector's.
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, Method::PATCH);
    assert_eq!(
        seen[0].uri,
        "/apis/c8s.dev/v1alpha1/namespaces/ci/pipelineruns/shop-b7?"
    );
    assert_eq!(seen[0].content_type, "application/merge-patch+json");
    // Another owner's finalizer stays; the patch holds only if the run is unchanged.
    assert_eq!(
        seen[0].body,
        json!({"metadata": {"finalizers": ["example.com/keep"], "resourceVersion": "5"}})
    );
}

#[tokio::test]
async fn a_deleted_run_without_the_old_finalizer_costs_no_request() {
    let (client, server) = client(vec![]);
    let run: PipelineRun = serde_json::from_value(run_json(&[], true)).unwrap();
    reconcile(Arc::new(run), context(client)).await.unwrap();
    assert_eq!(server.seen().len(), 0);
}

#[test]
fn errors_back_off_exponentially_up_to_five_minutes() {
    let secs: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
    assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
}

#[test]
fn a_run_spec_defaults_to_no_pipeline() {
    assert_eq!(PipelineRunSpec::default().pipeline_ref, None);
}

/// The rules the chart grants the controller's ServiceAccount (its
/// ClusterRole and its Lease Role), rendered with the real helm.
fn chart_rules() -> Vec<k8s_openapi::api::rbac::v1::PolicyRule> {
    let chart = tools::workspace().join("charts/c8s-controller");
    let output = std::process::Command::new(tools::tool("helm"))
        .args(["template", "ci", "--namespace", "c8s"])
        .arg(chart)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut rules = Vec::new();
    for doc in text.split("\n---") {
        let value: Value = serde_saphyr::from_str(doc).unwrap_or(Value::Null);
        let name = value["metadata"]["name"].as_str().unwrap_or_default();
        let role = matches!(value["kind"].as_str(), Some("ClusterRole" | "Role"));
        if role && (name == "ci-controller" || name == "ci-controller-lease") {
            let granted: Vec<k8s_openapi::api::rbac::v1::PolicyRule> =
                serde_json::from_value(value["rules"].clone()).unwrap();
            rules.extend(granted);
        }
    }
    assert!(!rules.is_empty(), "no controller roles in the chart");
    rules
}

/// Every request in `seen` is allowed by the chart's controller RBAC.
fn assert_chart_grants(seen: &[Seen]) {
    let rules = chart_rules();
    for request in seen {
        let path = request.uri.split('?').next().unwrap_or_default();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (group, rest) = match parts.first() {
            Some(&"api") => ("", &parts[2..]),
            _ => (parts[1], &parts[3..]),
        };
        let rest = if rest.first() == Some(&"namespaces") {
            &rest[2..]
        } else {
            rest
        };
        let resource = match rest {
            [r, _, sub] => format!("{r}/{sub}"),
            [r, ..] => (*r).to_owned(),
            [] => String::new(),
        };
        let verb = match (request.method.clone(), rest.len()) {
            (Method::GET, 1) if request.uri.contains("watch=true") => "watch",
            (Method::GET, 1) => "list",
            (Method::GET, _) => "get",
            (Method::POST, _) => "create",
            (Method::PUT, _) => "update",
            (Method::PATCH, _) => "patch",
            (Method::DELETE, _) => "delete",
            _ => "other",
        };
        let granted = rules.iter().any(|rule| {
            rule.api_groups.iter().flatten().any(|g| g == group)
                && rule.resources.iter().flatten().any(|r| *r == resource)
                && rule.verbs.iter().any(|v| v == verb)
        });
        assert!(
            granted,
            "the chart does not grant {verb} {group}/{resource} ({} {})",
            request.method, request.uri
        );
    }
}

#[tokio::test]
#[ignore = "needs helm"]
async fn the_charts_rbac_grants_every_request_of_the_controller() {
    // The requests of the lease, status and finalizer tests, replayed.
    let (c, server) = client(vec![
        (200, lease("replica-b", "2026-01-01T00:00:00Z", "7")),
        (200, lease("replica-b", "2026-01-01T00:00:00Z", "7")),
        (200, lease("replica-a", "2026-01-01T00:01:00Z", "8")),
    ]);
    let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
    let lease = lease_api(&c);
    assert!(!lease.try_acquire_or_renew(now).await.unwrap());
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(16)).await;
    tokio::time::resume();
    assert!(lease.try_acquire_or_renew(now).await.unwrap());
    let mut seen = server.seen();
    let (c, server) = client(vec![(200, run_json(&[], false))]);
    let api = kube::Api::<PipelineRun>::namespaced(c, "ci");
    patch_status(&api, "shop-b7", &PipelineRunStatus::default())
        .await
        .unwrap();
    seen.extend(server.seen());
    let (c, server) = client(vec![(200, run_json(&[], true))]);
    let run: PipelineRun = serde_json::from_value(run_json(&[FINALIZER], true)).unwrap();
    reconcile(Arc::new(run), context(c)).await.unwrap();
    seen.extend(server.seen());
    // Two lease reads (the first only observes the record), a lease write, the
    // status and an earlier controller's finalizer removed.
    assert_eq!(seen.len(), 5);
    assert_chart_grants(&seen);
}

/// The webhook's store on a cluster: a run that exists already (409, a
/// replayed delivery) is reported as not created, not as an error.
#[tokio::test]
async fn the_webhook_store_reads_409_as_already_created() {
    use c8s_controller::webhook::{KubeTriggers, Triggers};
    let (c, server) = client(vec![(201, run_json(&[], false)), (409, conflict())]);
    // Stores no reflector fills: creating a run reads neither.
    let (connections, _) = kube::runtime::reflector::store();
    let (pipelines, _) = kube::runtime::reflector::store();
    let triggers = KubeTriggers::with_stores(c, connections, pipelines);
    let run: PipelineRun = serde_json::from_value(run_json(&[], false)).unwrap();
    assert!(triggers.create_run("ci", run.clone()).await.unwrap());
    assert!(!triggers.create_run("ci", run).await.unwrap());
    let seen = server.seen();
    assert!(
        seen.iter().all(
            |s| s.method == Method::POST && s.uri == "/apis/c8s.dev/v1alpha1/namespaces/ci/pipelineruns?"
        )
    );
    assert_eq!(seen[0].body["spec"]["pipelineRef"], "shop");
}

//! The reaper on the simulated cluster.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use c8s_kube::sim::{SimCluster, StepScript};
use c8s_kube::{Cluster, ObjectKind, ObjectRef, ReapOptions, RunLiveness, StepObject, reap};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn labelled(name: &str, run: Option<&str>) -> StepObject {
    let mut labels = vec![("app.kubernetes.io/managed-by".to_owned(), "c8s".to_owned())];
    labels.extend(run.map(|r| ("c8s.dev/run".to_owned(), r.to_owned())));
    labels.push(("c8s.dev/step".to_owned(), name.to_owned()));
    let meta = ObjectMeta {
        name: Some(name.to_owned()),
        labels: Some(labels.into_iter().collect()),
        ..Default::default()
    };
    StepObject::Pod(Box::new(Pod {
        metadata: meta,
        ..Default::default()
    }))
}

fn pod(name: &str) -> ObjectRef {
    ObjectRef::new(ObjectKind::Pod, name)
}

async fn cluster() -> SimCluster {
    let sim = SimCluster::new();
    sim.script("done", StepScript::new(Duration::from_secs(10)));
    sim.default_script(StepScript::new(Duration::from_secs(86_400)));
    for (name, run) in [
        ("done", Some("old-run")),
        ("orphan", Some("crashed-run")),
        ("active", Some("live-run")),
        ("fresh", Some("other-run")),
        ("finished-run", Some("ended-run")),
        ("unlabelled", None),
    ] {
        sim.create(&labelled(name, run)).await.unwrap();
        if name == "orphan" {
            tokio::time::advance(Duration::from_secs(7200)).await;
        }
    }
    tokio::time::advance(Duration::from_secs(60)).await;
    // Not c8s's: never listed.
    let mut foreign = labelled("foreign", Some("x"));
    foreign.set_label("app.kubernetes.io/managed-by", "helm");
    sim.create(&foreign).await.unwrap();
    sim
}

fn options() -> ReapOptions {
    ReapOptions::new(Duration::from_secs(3600))
        .run("live-run", RunLiveness::Active)
        .run("ended-run", RunLiveness::Finished)
}

#[tokio::test(start_paused = true)]
async fn dry_run_lists_what_would_be_deleted_and_deletes_nothing() {
    let sim = cluster().await;
    let report = reap(&sim, &options().dry_run(true)).await.unwrap();
    let deleted: Vec<_> = report.deleted.iter().map(|(o, _)| o.clone()).collect();
    assert_eq!(deleted, [pod("done"), pod("finished-run"), pod("orphan")]);
    let kept: Vec<_> = report
        .kept
        .iter()
        .map(|(o, why)| (o.name.as_str(), why.as_str()))
        .collect();
    assert_eq!(
        kept,
        [
            ("active", "run live-run is active"),
            ("fresh", "run other-run unknown, younger than 3600s"),
            ("unlabelled", "no c8s.dev/run label"),
        ]
    );
    assert!(report.dry_run);
    assert_eq!(sim.live_objects().len(), 7);
}

#[tokio::test(start_paused = true)]
async fn reap_deletes_finished_and_orphaned_objects() {
    let sim = cluster().await;
    let report = reap(&sim, &options()).await.unwrap();
    assert_eq!(report.deleted.len(), 3);
    assert!(report.failed.is_empty());
    assert_eq!(sim.live_objects(), ["active", "foreign", "fresh", "unlabelled"]);
    let reasons: Vec<_> = report.deleted.iter().map(|(_, why)| why.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "finished, run old-run unknown",
            "run ended-run finished",
            "run crashed-run unknown and older than 3600s"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_that_may_still_be_going_keeps_its_finished_pods() {
    let sim = SimCluster::new();
    sim.script("built", StepScript::new(Duration::from_secs(10)));
    sim.default_script(StepScript::new(Duration::from_secs(86_400)));
    sim.create(&labelled("built", Some("going"))).await.unwrap();
    sim.create(&labelled("testing", Some("going"))).await.unwrap();
    tokio::time::advance(Duration::from_secs(60)).await;
    let report = reap(&sim, &ReapOptions::new(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert!(report.deleted.is_empty(), "{:?}", report.deleted);
    assert_eq!(sim.live_objects(), ["built", "testing"]);
    // Once nothing of the run is unfinished, its finished pods go.
    tokio::time::advance(Duration::from_secs(86_400)).await;
    let report = reap(&sim, &ReapOptions::new(Duration::from_secs(3600) * 48))
        .await
        .unwrap();
    let deleted: Vec<_> = report.deleted.iter().map(|(o, _)| o.name.as_str()).collect();
    assert_eq!(deleted, ["built", "testing"]);
}

#[tokio::test(start_paused = true)]
async fn records_of_runs_that_are_not_live_are_deleted() {
    let sim = SimCluster::new();
    sim.default_script(StepScript::new(Duration::from_secs(86_400)));
    let entries = [("started".to_owned(), "x".to_owned())].into();
    for run in ["killed-run", "going-run", "live-run"] {
        assert!(sim.create_record(run, &entries).await.unwrap());
    }
    tokio::time::advance(Duration::from_secs(7200)).await;
    // An old run with a pod still running: may still be going.
    sim.create(&labelled("step-a", Some("going-run"))).await.unwrap();
    for run in ["between-steps", "ended-run"] {
        assert!(sim.create_record(run, &entries).await.unwrap());
    }
    tokio::time::advance(Duration::from_secs(60)).await;

    let dry = reap(&sim, &options().dry_run(true)).await.unwrap();
    assert_eq!(sim.records().len(), 5, "a dry run deletes nothing");
    let report = reap(&sim, &options()).await.unwrap();
    assert_eq!(dry.records_deleted, report.records_deleted);
    let deleted: Vec<_> = report.records_deleted.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(deleted, ["ended-run", "killed-run"]);
    let kept: Vec<_> = report
        .records_kept
        .iter()
        .map(|(r, why)| (r.as_str(), why.as_str()))
        .collect();
    assert_eq!(
        kept,
        [
            (
                "between-steps",
                "run between-steps unknown, record younger than 3600s"
            ),
            (
                "going-run",
                "run going-run has unfinished objects: it may still be going"
            ),
            ("live-run", "run live-run is active"),
        ]
    );
    assert!(report.records_failed.is_empty());
    let left: Vec<_> = sim.records().into_keys().collect();
    assert_eq!(left, ["between-steps", "going-run", "live-run"]);
    // The running pod of the going run is kept as well.
    assert!(report.kept.iter().any(|(o, _)| o.name == "step-a"), "{report:?}");
}

/// The simulated cluster, but deleting run records is forbidden, and listing
/// them too when `list_forbidden`.
struct ForbiddenRecords {
    sim: SimCluster,
    list_forbidden: bool,
}

impl Cluster for ForbiddenRecords {
    async fn create(&self, object: &StepObject) -> c8s_kube::Result<ObjectRef> {
        self.sim.create(object).await
    }
    async fn observe(&self, object: &ObjectRef) -> c8s_kube::Result<c8s_kube::ObservationStream> {
        self.sim.observe(object).await
    }
    async fn logs(&self, object: &ObjectRef, container: &str) -> c8s_kube::Result<c8s_kube::LogStream> {
        self.sim.logs(object, container).await
    }
    async fn delete(&self, object: &ObjectRef) -> c8s_kube::Result<()> {
        self.sim.delete(object).await
    }
    async fn list(&self, selector: &str) -> c8s_kube::Result<Vec<c8s_kube::ListedObject>> {
        self.sim.list(selector).await
    }
    async fn list_records(&self) -> c8s_kube::Result<Vec<c8s_kube::ListedRecord>> {
        if self.list_forbidden {
            return Err(c8s_kube::Error::api("list configmaps", "*", 403, "forbidden"));
        }
        self.sim.list_records().await
    }
    async fn delete_record(&self, run_id: &str) -> c8s_kube::Result<()> {
        Err(c8s_kube::Error::api("delete configmap", run_id, 403, "forbidden"))
    }
    fn now(&self) -> k8s_openapi::jiff::Timestamp {
        self.sim.now()
    }
}

#[tokio::test(start_paused = true)]
async fn a_record_that_could_not_be_deleted_is_a_failed_reap() {
    let sim = cluster().await;
    let entries = [("started".to_owned(), "x".to_owned())].into();
    assert!(sim.create_record("ended-run", &entries).await.unwrap());
    let forbidden = ForbiddenRecords {
        sim: sim.clone(),
        list_forbidden: false,
    };
    let report = reap(&forbidden, &options()).await.unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.records_failed.len(), 1, "{report:?}");
    assert_eq!(report.records_failed[0].0, "ended-run");
    assert!(report.deletes_failed());
    assert_eq!(sim.records().len(), 1);
    // Records that cannot even be listed (an older Role) fail no deletion:
    // the pods are still reaped.
    let unlisted = ForbiddenRecords {
        sim,
        list_forbidden: true,
    };
    let report = reap(&unlisted, &options()).await.unwrap();
    assert_eq!(report.records_failed.len(), 1, "{report:?}");
    assert!(!report.deletes_failed(), "{report:?}");
}

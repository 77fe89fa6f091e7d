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

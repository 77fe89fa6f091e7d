//! On a real cluster (kind or k3d; see the README): the controller, run in
//! this process, drives a two-step PipelineRun to Succeeded, and deleting a
//! run removes its pods.

use std::time::Duration;

use c8s_controller::crd::{PipelineRun, PipelineRunSpec, RunPhase};
use c8s_controller::reconcile::Settings;
use c8s_pipeline_model::{MemorySource, parse_pipeline};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};

const PIPELINE: &str = r#"
name: live
repository: https://github.com/kubernetes/examples.git
steps:
  - { name: first, image: "busybox:1.36", commands: ["echo first"] }
  - { name: second, image: "busybox:1.36", commands: ["echo second"], dependsOn: [first] }
"#;

#[tokio::test]
#[ignore = "needs cluster"]
async fn the_controller_drives_a_run_to_success_on_a_cluster() {
    let client = Client::try_default()
        .await
        .unwrap_or_else(|e| panic!("no cluster: {e}"));
    let namespace = client.default_namespace().to_owned();
    let (lease_client, lease_namespace) = (client.clone(), namespace.clone());
    let controller = tokio::spawn(async move {
        c8s_controller::controller::run(
            lease_client,
            Settings::default(),
            &lease_namespace,
            "live-test",
            true,
            std::future::pending(),
        )
        .await
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pipeline =
        parse_pipeline("live.c8s.yaml", PIPELINE, &MemorySource::new()).unwrap_or_else(|e| panic!("{e}"));
    let name = format!("live-{}", std::process::id());
    let run = PipelineRun::new(
        &name,
        PipelineRunSpec {
            pipeline: Some(pipeline),
            branch: "master".into(),
            build: 1,
            ..PipelineRunSpec::default()
        },
    );
    let api = Api::<PipelineRun>::namespaced(client.clone(), &namespace);
    api.create(&PostParams::default(), &run)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut phase = RunPhase::Pending;
    for _ in 0..180 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let current = api.get(&name).await.unwrap_or_else(|e| panic!("{e}"));
        phase = current.status.map(|s| s.phase).unwrap_or_default();
        if phase.is_finished() {
            break;
        }
    }
    assert_eq!(phase, RunPhase::Succeeded);
    api.delete(&name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    controller.abort();
}

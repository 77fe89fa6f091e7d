//! `c8s run --log-archive-bucket` against a real control plane and a real
//! S3 server: the run is driven by the controller's reconcile, and archived
//! by the controller's archive after each pass; each step's log comes
//! through the API server's `pods/log`
//! (from the simulated node), is masked with the values of the Secrets the
//! pipeline references, and is stored in the bucket; the status record
//! names each object. Needs both `scripts/control-plane/up.sh` and
//! `scripts/s3/up.sh` (`./ci.sh` runs it in its log-archive step).

mod common;

use common::explain;

use c8s_kube::archive::{Archive, ArchiveSettings, Credentials};
use c8s_test_cluster as cluster;
use serde_json::Value;

use cluster::s3::{create_bucket, var};

const TOKEN: &str = "tok-4eC39HqLyjWDarjtT1zdp7dc";

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane and s3"]
async fn a_runs_step_logs_are_archived_masked_and_the_status_names_them() {
    archived_masked_and_named(&[]).await;
}

/// The same through `c8s run`'s older event loop (`--event-loop`), which
/// archives a Concourse job's logs.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane and s3"]
async fn a_runs_step_logs_are_archived_masked_and_the_status_names_them_through_the_event_loop() {
    archived_masked_and_named(&["--event-loop"]).await;
}

async fn archived_masked_and_named(extra: &[&str]) {
    let client = cluster::client().await;
    let ns = cluster::namespace(&client, "archive").await;
    cluster::claims(&client, &ns, &["c8s-artifacts"]).await;
    cluster::secret(&client, &ns, "deploy", &[("token", TOKEN)]).await;
    // The node prints the token, as a careless script would.
    cluster::script(
        &client,
        &ns,
        &format!(
            "containers:
  - {{ step: build, container: main, runSeconds: 0.6, logs: [\"using {TOKEN}\", \"built\"] }}
  - {{ step: check, container: main, runSeconds: 0.6, exitCode: 3, logs: [\"check failed\"] }}
"
        ),
    )
    .await;
    let file = common::temp_file(
        &format!("{}.c8s.yaml", cluster::unique_name("archive")),
        "name: archive
repository: https://github.com/example/hello.git
steps:
  - name: build
    image: busybox:1.37
    commands: [\"echo $DEPLOY_TOKEN\"]
    secrets:
      - { secretRef: deploy, key: token, envVar: DEPLOY_TOKEN }
  - name: check
    image: busybox:1.37
    dependsOn: [build]
    commands: [\"false\"]
",
    );
    let bucket = cluster::unique_name("c8s-logs");
    create_bucket(&bucket);
    let status_path = common::temp_dir().join(format!("{}.json", cluster::unique_name("status")));
    let endpoint = var("C8S_TEST_S3_ENDPOINT");
    let output = common::command()
        .env("KUBECONFIG", cluster::kubeconfig())
        .envs(cluster::s3::credentials_env())
        .args(["run", file.to_str().expect("path"), "--namespace", &ns])
        .args([
            "--log-archive-bucket",
            &bucket,
            "--log-archive-endpoint",
            &endpoint,
        ])
        .args(["--status-file", status_path.to_str().expect("path")])
        .args(extra)
        .output()
        .expect("c8s runs");
    // The run's result is the steps' (check fails), archive or not.
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    // Without `--event-loop`, archived by the controller's archive after
    // each pass of its reconcile.
    assert_eq!(
        common::text(&output.stderr).contains("through the controller's reconcile"),
        extra.is_empty(),
        "{}",
        explain(&output)
    );
    let status: Value =
        serde_json::from_slice(&std::fs::read(&status_path).expect("status record")).expect("status JSON");
    // `c8s run` names each step by its object, `<pipeline>-<step>-b<build>-<hash>`.
    let step = |name: &str| {
        let infix = format!("-{name}-b");
        status["steps"]
            .as_array()
            .and_then(|s| {
                s.iter()
                    .find(|s| s["name"].as_str().is_some_and(|n| n.contains(&infix)))
            })
            .cloned()
            .unwrap_or_else(|| panic!("no step {name}: {status:#}"))
    };
    let run_id = status["run_id"].as_str().expect("run id");

    let mut settings = ArchiveSettings::new(
        &bucket,
        Credentials::new(var("C8S_TEST_S3_ACCESS_KEY"), var("C8S_TEST_S3_SECRET_KEY")),
    );
    settings.endpoint = Some(endpoint.clone());
    settings.prefix = "c8s".into();
    let archive = Archive::new(settings).expect("archive");
    for (name, text) in [("build", "using ***\nbuilt\n"), ("check", "check failed\n")] {
        let step = step(name);
        assert!(step["log_archive_error"].is_null(), "{step:#}");
        let main = step["archived_logs"]
            .as_array()
            .and_then(|logs| logs.iter().find(|l| l["container"] == "main"))
            .unwrap_or_else(|| panic!("no archived main log: {step:#}"));
        let key = main["key"].as_str().expect("key");
        let object = step["name"].as_str().expect("name");
        assert_eq!(key, format!("c8s/{ns}/{run_id}/{object}/0/main.log"));
        assert_eq!(main["url"], format!("{endpoint}/{bucket}/{key}"));
        let stored = archive.fetch(key).await.expect("the archived log");
        let stored = String::from_utf8_lossy(&stored);
        assert_eq!(stored, text, "{name}");
    }
    // The token never left the cluster unmasked: not in the bucket (above),
    // not in the run's output.
    assert!(!explain(&output).contains(TOKEN), "{}", explain(&output));
}

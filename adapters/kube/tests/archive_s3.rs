//! The log archive against a real S3-compatible server (SeaweedFS, started
//! by `scripts/s3/up.sh`, which prints the `C8S_TEST_S3_*` variables these
//! tests read):
//!
//! ```sh
//! eval "$(scripts/s3/up.sh)"
//! cargo test -p c8s-kube --test archive_s3 -- --include-ignored
//! scripts/s3/down.sh
//! ```
//!
//! Each test makes its own bucket(s), named uniquely.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use c8s_kube::archive::{Archive, ArchiveError, ArchiveRetry, ArchiveSettings, Credentials, LogKey};
use c8s_pipeline_model::SecretMasker;
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;

/// The server up.sh started.
struct Server {
    endpoint: String,
    region: String,
    access_key: String,
    secret_key: String,
}

use c8s_test_cluster::s3::var;

fn server() -> Server {
    Server {
        endpoint: var("C8S_TEST_S3_ENDPOINT"),
        region: std::env::var("C8S_TEST_S3_REGION").unwrap_or_else(|_| "us-east-1".into()),
        access_key: var("C8S_TEST_S3_ACCESS_KEY"),
        secret_key: var("C8S_TEST_S3_SECRET_KEY"),
    }
}

/// object_store's own client on `bucket`, to look at what the archive stored.
fn store_of(server: &Server, bucket: &str) -> object_store::aws::AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(&server.endpoint)
        .with_allow_http(true)
        .with_region(&server.region)
        .with_bucket_name(bucket)
        .with_access_key_id(&server.access_key)
        .with_secret_access_key(&server.secret_key)
        .build()
        .expect("store")
}

/// A bucket name no other test (or run) uses.
fn unique_bucket(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("c8s-{test}-{}-{nanos}", std::process::id())
}

/// Settings with the archive's identity (not an admin), and
/// short retries so a failing test ends soon.
fn settings(server: &Server, bucket: &str) -> ArchiveSettings {
    let mut settings = ArchiveSettings::new(bucket, Credentials::new(&server.access_key, &server.secret_key));
    settings.endpoint = Some(server.endpoint.clone());
    settings.region = server.region.clone();
    settings.prefix = "c8s/logs".into();
    settings.retry = quick_retry();
    settings
}

fn quick_retry() -> ArchiveRetry {
    let mut retry = ArchiveRetry::default();
    retry.max_retries = 3;
    retry.initial_backoff = Duration::from_millis(100);
    retry.max_backoff = Duration::from_millis(400);
    retry.retry_timeout = Duration::from_secs(10);
    retry.request_timeout = Duration::from_secs(30);
    retry.connect_timeout = Duration::from_secs(2);
    retry
}

/// A server, a bucket made for `test`, and an archive into it.
async fn fresh_archive(test: &str) -> (Server, String, Archive) {
    let server = server();
    let bucket = unique_bucket(test);
    c8s_test_cluster::s3::create_bucket(&bucket);
    let archive = Archive::new(settings(&server, &bucket)).expect("archive");
    (server, bucket, archive)
}

/// Uploads a small log that must fail: the error and how long it took.
async fn failed_upload(archive: &Archive) -> (ArchiveError, Duration) {
    let started = Instant::now();
    let err = archive
        .upload(&unit_log(), &b"log"[..])
        .await
        .expect_err("the upload fails");
    (err, started.elapsed())
}

fn unit_log() -> LogKey {
    LogKey::new("team-a", "orders-b42", "unit", 1, "main")
}

#[tokio::test]
#[ignore = "needs s3"]
async fn upload_then_fetch_round_trips_under_the_key_layout() {
    let (server, bucket, archive) = fresh_archive("roundtrip").await;
    let log = b"line 1\nline 2: \xff binary is kept\n".to_vec();

    let archived = archive.upload(&unit_log(), log.clone()).await.expect("upload");

    assert_eq!(archived.key, "c8s/logs/team-a/orders-b42/unit/1/main.log");
    assert_eq!(
        archived.url,
        format!("{}/{bucket}/{}", server.endpoint, archived.key)
    );
    assert_eq!((archived.size, archived.parts), (log.len() as u64, 1));
    let fetched = archive.fetch(&archived.key).await.expect("fetch");
    assert_eq!(fetched.as_ref(), log.as_slice());

    // The plain URL needs the credentials; the presigned one does not.
    let plain = curl(&archived.url);
    assert!(
        plain.0 == "403" || plain.0 == "401",
        "anonymous GET answered {}",
        plain.0
    );
    let presigned = archive
        .presigned_url(&archived.key, Duration::from_secs(60))
        .await
        .expect("presign");
    let (status, body) = curl(&presigned);
    assert_eq!(status, "200");
    assert_eq!(body, log);

    // A key part that tries to walk up stays inside its own part.
    let evil = LogKey::new("team-a", "../../etc", "a/b", 0, "..");
    let archived = archive.upload(&evil, &b"x"[..]).await.expect("upload");
    assert_eq!(archived.key, "c8s/logs/team-a/.._.._etc/a_b/0/__.log");
    assert_eq!(archive.fetch(&archived.key).await.expect("fetch").as_ref(), b"x");
}

/// GET `url` with curl: the status and the body.
fn curl(url: &str) -> (String, Vec<u8>) {
    let out = std::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", url])
        .output()
        .expect("curl runs");
    let text = out.stdout;
    let cut = text.iter().rposition(|&b| b == b'\n').unwrap_or(0);
    let status = String::from_utf8_lossy(text.get(cut + 1..).unwrap_or_default()).into_owned();
    (status, text.get(..cut).unwrap_or_default().to_vec())
}

#[tokio::test]
#[ignore = "needs s3"]
async fn a_large_log_goes_as_a_multipart_upload() {
    let (server, bucket, archive) = fresh_archive("multipart").await;
    // 20 MiB of lines that differ, so a misplaced part would show.
    let mut log = Vec::with_capacity(20 * 1024 * 1024 + 64);
    let mut i = 0u64;
    while log.len() < 20 * 1024 * 1024 {
        log.extend_from_slice(format!("line {i:012}: some build output\n").as_bytes());
        i += 1;
    }

    let archived = archive.upload(&unit_log(), log.clone()).await.expect("upload");

    // 8 MiB parts: 8 + 8 + the rest.
    assert_eq!(archived.parts, 3);
    let fetched = archive.fetch(&archived.key).await.expect("fetch");
    assert_eq!(fetched.len(), log.len());
    assert!(fetched.as_ref() == log.as_slice(), "the fetched log differs");
    // The server saw a multipart upload: its ETag is `<md5 of the parts' md5s>-<parts>`
    // (https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html).
    let store = store_of(&server, &bucket);
    let meta = store
        .head(&Path::from(archived.key.as_str()))
        .await
        .expect("head");
    let etag = meta.e_tag.unwrap_or_default();
    assert!(
        etag.trim_matches('"').ends_with("-3"),
        "ETag {etag} is not that of a 3-part upload"
    );
}

#[tokio::test]
#[ignore = "needs s3"]
async fn a_missing_bucket_is_a_clear_error_at_once() {
    let server = server();
    let bucket = unique_bucket("missing");
    let archive = Archive::new(settings(&server, &bucket)).expect("archive");

    let (err, elapsed) = failed_upload(&archive).await;

    assert!(matches!(err, ArchiveError::NoSuchBucket { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&bucket), "{message}");
    assert!(message.contains("does not exist"), "{message}");
    assert!(elapsed < Duration::from_secs(2), "retried: {elapsed:?}");
    // Fetching from it says the same, not "no such object".
    let err = archive.fetch("c8s/logs/x.log").await.expect_err("no bucket");
    assert!(matches!(err, ArchiveError::NoSuchBucket { .. }), "{err:?}");
}

#[tokio::test]
#[ignore = "needs s3"]
async fn wrong_credentials_are_a_clear_error_without_the_secret() {
    let server = server();
    let bucket = unique_bucket("creds");
    c8s_test_cluster::s3::create_bucket(&bucket);
    let wrong_secret = format!("wrong-{}", server.secret_key);
    for credentials in [
        Credentials::new(&server.access_key, &wrong_secret),
        Credentials::new("c8sunknownkey", &wrong_secret),
    ] {
        let mut settings = settings(&server, &bucket);
        settings.credentials = credentials;
        let archive = Archive::new(settings).expect("archive");

        let (err, elapsed) = failed_upload(&archive).await;

        assert!(matches!(err, ArchiveError::AccessDenied { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("refused access") && message.contains(&bucket),
            "{message}"
        );
        for text in [message, format!("{err:?}"), format!("{archive:?}")] {
            assert!(!text.contains(&wrong_secret), "the secret leaked: {text}");
            assert!(!text.contains(&server.secret_key), "the secret leaked: {text}");
        }
        assert!(elapsed < Duration::from_secs(2), "retried: {elapsed:?}");
    }
}

#[tokio::test]
#[ignore = "needs s3"]
async fn an_unreachable_server_is_retried_with_backoff_then_an_error() {
    let server = server();
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut settings = settings(&server, "c8s-down");
    settings.endpoint = Some(format!("http://127.0.0.1:{port}"));
    let archive = Archive::new(settings).expect("archive");

    let (err, elapsed) = failed_upload(&archive).await;

    assert!(matches!(err, ArchiveError::Unavailable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.contains("after 3 retries"), "{message}");
    // Three backoffs happened (at least the first, 100 ms), and the total is bounded.
    assert!(elapsed >= Duration::from_millis(100), "no backoff: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "unbounded: {elapsed:?}");
}

#[tokio::test]
#[ignore = "needs s3"]
async fn a_secret_in_the_log_never_reaches_the_stored_object() {
    let (_, _, archive) = fresh_archive("masked").await;
    let secret = "hunter2-s3cr3t-Value";
    let masker = SecretMasker::named([("db/password", secret)]).expect("masker");
    let raw = format!("connecting with {secret}\nretry: password={secret}; done\n");

    let archived = archive
        .upload_masked(&unit_log(), raw.as_bytes(), masker)
        .await
        .expect("upload");

    let stored = archive.fetch(&archived.key).await.expect("fetch");
    let stored = String::from_utf8_lossy(&stored);
    assert!(!stored.contains(secret), "{stored}");
    assert_eq!(stored, "connecting with ***\nretry: password=***; done\n");
}

#[tokio::test]
#[ignore = "needs s3"]
async fn an_unmaskable_log_is_not_uploaded() {
    let (_, _, archive) = fresh_archive("unmaskable").await;
    let masker =
        SecretMasker::named([("db/password", "long-enough-value"), ("db/user", "ab")]).expect("masker");

    let err = archive
        .upload_masked(&unit_log(), b"user ab logged in with long-enough-value\n", masker)
        .await
        .expect_err("refused");

    match &err {
        ArchiveError::Unmaskable { key, count, names } => {
            assert_eq!(key, "c8s/logs/team-a/orders-b42/unit/1/main.log");
            assert_eq!(
                (*count, names.as_slice()),
                (1, ["db/user".to_string()].as_slice())
            );
        }
        other => panic!("not Unmaskable: {other:?}"),
    }
    assert!(!err.to_string().contains("ab logged"), "{err}");
    let fetched = archive.fetch(&archive.key(&unit_log())).await;
    assert!(
        matches!(fetched, Err(ArchiveError::NotFound { .. })),
        "{fetched:?}"
    );
}

// --- the runner: each attempt's masked logs archived when it ends ---------

/// A step pod: `main` and, as a native sidecar, `db`.
fn step_pod(name: &str, step: &str) -> c8s_kube::StepObject {
    use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
    let container = |name: &str, always: bool| Container {
        name: name.into(),
        image: Some("busybox:1.36".into()),
        restart_policy: always.then(|| "Always".into()),
        ..Default::default()
    };
    let mut pod = Pod::default();
    pod.metadata.name = Some(name.into());
    pod.metadata.labels = Some([("c8s.dev/step".to_owned(), step.to_owned())].into());
    pod.spec = Some(PodSpec {
        init_containers: Some(vec![container("db", true)]),
        containers: vec![container("main", false)],
        restart_policy: Some("Never".into()),
        ..Default::default()
    });
    c8s_kube::StepObject::Pod(Box::new(pod))
}

const RUN_SECRET: &str = "hunter2-s3cr3t-Value";

/// Runs `build` (writes the secret, succeeds), then `test` (fails; its
/// sidecar logged), on the simulated cluster in real time, its logs masked
/// and archived per `archive`.
async fn run_archived(archive: c8s_kube::ArchiveOptions) -> c8s_kube::RunStatus {
    use c8s_kube::sim::{SimCluster, StepScript};
    use c8s_kube::{LogOptions, LogSink, RunOptions, Step, run_pipeline};
    use std::sync::Arc;
    struct Discard;
    impl LogSink for Discard {
        fn write(&self, _: &str, _: u32, _: &str, _: &[u8]) {}
    }
    let sim = SimCluster::new();
    let quick = Duration::from_millis(200);
    sim.script(
        "build",
        StepScript::new(quick).log([format!("token {RUN_SECRET} ok\n"), "built\n".to_owned()]),
    );
    sim.script(
        "test",
        StepScript::new(quick)
            .exit_code(1)
            .log(["1 test failed\n"])
            .container_log("db", ["db ready\n"]),
    );
    let masker: c8s_kube::MaskerFactory = Arc::new(|_: &str| {
        let masker = SecretMasker::new([RUN_SECRET]).expect("masker");
        Box::new(masker) as Box<dyn c8s_kube::LogMasker>
    });
    let options = RunOptions::new("orders-b7")
        .logs(LogOptions::new(masker, Arc::new(Discard)))
        .archive(Some(archive));
    let steps = vec![
        Step::new("build", step_pod("orders-build", "build")),
        Step::new("test", step_pod("orders-test", "test")).after(["build"]),
    ];
    run_pipeline(&sim, steps, options, std::future::pending())
        .await
        .expect("the run ends")
}

fn step_status<'a>(status: &'a c8s_kube::RunStatus, name: &str) -> &'a c8s_kube::StepStatus {
    status
        .steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name}: {}", status.to_json()))
}

#[tokio::test]
#[ignore = "needs s3"]
async fn a_runs_logs_are_archived_masked_per_step_attempt_and_container() {
    let (_, bucket, archive) = fresh_archive("run").await;
    let status = run_archived(c8s_kube::ArchiveOptions::new(archive.clone(), "team-a")).await;

    assert_eq!(status.state, c8s_kube::RunState::Failed, "{}", status.to_json());
    let build = step_status(&status, "build");
    assert_eq!(build.log_archive_error, None, "{}", status.to_json());
    let keys: Vec<(&str, &str)> = build
        .archived_logs
        .iter()
        .map(|l| (l.container.as_str(), l.key.as_str()))
        .collect();
    assert_eq!(keys, [("main", "c8s/logs/team-a/orders-b7/build/0/main.log")]);
    assert!(
        build.archived_logs[0]
            .url
            .ends_with(&format!("/{bucket}/{}", keys[0].1))
    );
    let stored = archive.fetch(keys[0].1).await.expect("fetch");
    assert_eq!(String::from_utf8_lossy(&stored), "token *** ok\nbuilt\n");
    assert_eq!(build.archived_logs[0].bytes, stored.len() as u64);

    // The failed step: main's log and, read on its failure, the sidecar's.
    let test = step_status(&status, "test");
    let containers: Vec<&str> = test.archived_logs.iter().map(|l| l.container.as_str()).collect();
    assert_eq!(containers, ["db", "main"], "{}", status.to_json());
    for (log, text) in test.archived_logs.iter().zip(["db ready\n", "1 test failed\n"]) {
        let stored = archive.fetch(&log.key).await.expect("fetch");
        assert_eq!(String::from_utf8_lossy(&stored), text);
    }
}

#[tokio::test]
#[ignore = "needs s3"]
async fn an_archive_that_fails_is_recorded_on_the_step_and_the_run_ends_as_it_would() {
    let server = server();
    let missing = Archive::new(settings(&server, &unique_bucket("gone"))).expect("archive");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut down = settings(&server, "c8s-down");
    down.endpoint = Some(format!("http://127.0.0.1:{port}"));
    let down = Archive::new(down).expect("archive");
    for (archive, says) in [(missing, "does not exist"), (down, "after 3 retries")] {
        let status = run_archived(c8s_kube::ArchiveOptions::new(archive, "team-a")).await;
        assert_eq!(status.state, c8s_kube::RunState::Failed, "{}", status.to_json());
        let build = step_status(&status, "build");
        assert_eq!(build.state, c8s_kube::StepState::Succeeded);
        assert!(build.archived_logs.is_empty());
        let error = build.log_archive_error.as_deref().unwrap_or_default();
        assert!(error.starts_with("log of main not archived: "), "{error}");
        assert!(error.contains(says), "{error}");
        assert_eq!(step_status(&status, "test").state, c8s_kube::StepState::Failed);
    }
}

#[tokio::test]
#[ignore = "needs s3"]
async fn logs_that_cannot_be_masked_are_never_uploaded_and_the_step_says_why() {
    let (_, bucket, archive) = fresh_archive("withheld").await;
    let options = c8s_kube::ArchiveOptions::new(archive, "team-a")
        .withheld("the value of db/user is too short to mask");
    let status = run_archived(options).await;
    let build = step_status(&status, "build");
    assert!(build.archived_logs.is_empty());
    assert_eq!(
        build.log_archive_error.as_deref(),
        Some("logs not archived: the value of db/user is too short to mask")
    );
    // Nothing reached the bucket.
    let server = server();
    let store = store_of(&server, &bucket);
    let listed: Vec<_> = futures::TryStreamExt::try_collect(object_store::ObjectStore::list(&store, None))
        .await
        .expect("list");
    assert!(listed.is_empty(), "{listed:?}");
}

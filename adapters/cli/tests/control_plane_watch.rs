//! `c8s watch` against a real Kubernetes control plane (kube-apiserver,
//! etcd, kube-controller-manager, kube-scheduler; simulated nodes whose
//! script says what each container prints): a resource's check pod finds
//! versions, each new version triggers a job once, `passed:` carries a
//! version only through a succeeded build, and two watchers that see the same
//! version start one build.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};

use c8s_test_cluster as cluster;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::watcher;

const PIPELINE: &str = "\
resources:
- name: repo
  type: git
  source: { uri: https://github.com/example/app.git }
jobs:
- name: build
  plan:
  - get: repo
    trigger: true
  - task: unit
    config: &task { platform: linux, image_resource: { type: registry-image, source: { repository: alpine } }, inputs: [{ name: repo }], run: { path: 'true' } }
- name: deploy
  plan:
  - get: repo
    trigger: true
    passed: [build]
  - task: ship
    config: *task
";

/// The node script: the check answers `versions` (after the resource's own
/// stderr noise), build 2's unit test fails, everything else succeeds.
fn script(versions: &[&str]) -> String {
    let list: Vec<String> = versions
        .iter()
        .map(|v| format!(r#"{{\"ref\": \"{v}\"}}"#))
        .collect();
    format!(
        r#"containers:
  - pod: -check-repo-
    container: main
    logs:
      - "Cloning into '/tmp/git-resource-repo-cache'..."
      - "c8s-versions: [{}]"
  - pod: -build-unit-b2-
    container: main
    exitCode: 1
  - container: main
    runSeconds: 0.2
"#,
        list.join(", ")
    )
}

/// A namespace of the test's own (restricted), with the claims bound and
/// `script` as its nodes' script.
async fn watch_namespace(client: &kube::Client, prefix: &str, script: &str) -> String {
    let ns = cluster::namespace(client, prefix).await;
    cluster::claims(client, &ns, &["c8s-artifacts", "c8s-cache"]).await;
    cluster::script(client, &ns, script).await;
    ns
}

/// Every pod created in `ns` while the test runs: name → the `C8S_VERSION`
/// its `main` was given (empty when none).
type Seen = Arc<Mutex<BTreeMap<String, String>>>;

fn collect_pods(client: &kube::Client, ns: &str) -> Seen {
    let seen: Seen = Arc::default();
    let api = Api::<Pod>::namespaced(client.clone(), ns);
    let into = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = events.next().await {
            let (Ok(watcher::Event::Apply(pod)) | Ok(watcher::Event::InitApply(pod))) = event else {
                continue;
            };
            let version = pod
                .spec
                .iter()
                .flat_map(|s| &s.containers)
                .filter(|c| c.name == "main")
                .flat_map(|c| c.env.iter().flatten())
                .find(|e| e.name == "C8S_VERSION")
                .and_then(|e| e.value.clone())
                .unwrap_or_default();
            let name = pod.metadata.name.unwrap_or_default();
            into.lock().expect("seen").insert(name, version);
        }
    });
    seen
}

/// The pods seen whose name has `infix`, with their version, by name.
fn named(seen: &Seen, infix: &str) -> Vec<String> {
    seen.lock()
        .expect("seen")
        .iter()
        .filter(|(name, _)| name.contains(infix))
        .map(|(_, version)| version.clone())
        .collect()
}

fn watch_once(file: &Path, ns: &str) -> std::process::Child {
    common::command()
        .env("KUBECONFIG", cluster::kubeconfig())
        .args(["watch", file.to_str().expect("path"), "--namespace", ns, "--once"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("c8s runs")
}

fn succeeded(output: Output) -> String {
    let text = common::explain(&output);
    assert!(output.status.success(), "{text}");
    text
}

async fn set_script(client: &kube::Client, ns: &str, versions: &[&str]) {
    let patch = serde_json::json!({ "data": { "script.yaml": script(versions) } });
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .patch("c8s-node-sim", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("script");
}

async fn history(client: &kube::Client, ns: &str) -> serde_json::Value {
    let maps = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=c8s"))
        .await
        .expect("configmaps")
        .items;
    assert_eq!(maps.len(), 1, "one history per pipeline: {maps:?}");
    let text = maps[0]
        .data
        .as_ref()
        .and_then(|d| d.get("history.json"))
        .expect("history");
    serde_json::from_str(text).expect("json")
}

fn v(r: &str) -> String {
    format!(r#"{{"ref":"{r}"}}"#)
}

/// Waits until a pod whose name has `infix` was seen.
async fn until_seen(seen: &Seen, infix: &str) {
    cluster::eventually(std::time::Duration::from_secs(90), infix, || {
        let found = !named(seen, infix).is_empty();
        async move { found.then_some(()) }
    })
    .await;
}

/// Waits until the pod watch has seen what the API server has (the pods of
/// a run are deleted when it ends; the watch saw each one when created).
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn each_new_version_triggers_each_job_once_and_passed_takes_only_what_succeeded() {
    let client = cluster::client().await;
    let ns = watch_namespace(&client, "watch", &script(&["aaa"])).await;
    let file = common::temp_file(&format!("{}.yml", cluster::unique_name("watch")), PIPELINE);
    let seen = collect_pods(&client, &ns);

    // The first version: build 1 fetches it, then deploy 1 (it passed build).
    let out = succeeded(watch_once(&file, &ns).wait_with_output().expect("c8s exits"));
    settle().await;
    assert_eq!(
        named(&seen, "-check-repo-"),
        [""],
        "the first check asks for the newest\n{out}"
    );
    assert_eq!(named(&seen, "-build-repo-b1-"), [v("aaa")], "{out}");
    assert_eq!(named(&seen, "-build-unit-b1-").len(), 1, "{out}");
    assert_eq!(named(&seen, "-deploy-repo-b1-"), [v("aaa")], "{out}");
    assert_eq!(named(&seen, "-deploy-ship-b1-").len(), 1, "{out}");

    // Nothing new: the check asks from the version it knows; no build starts.
    let out = succeeded(watch_once(&file, &ns).wait_with_output().expect("c8s exits"));
    settle().await;
    let checks = named(&seen, "-check-repo-");
    assert_eq!(checks.len(), 2, "{out}");
    assert!(checks.contains(&v("aaa")), "{checks:?}");
    assert_eq!(named(&seen, "-b2-").len(), 0, "no second build: {out}");

    // A new version whose build fails: build 2 runs it, deploy never sees it.
    set_script(&client, &ns, &["aaa", "bbb"]).await;
    let out = succeeded(watch_once(&file, &ns).wait_with_output().expect("c8s exits"));
    settle().await;
    assert_eq!(named(&seen, "-build-repo-b2-"), [v("bbb")], "{out}");
    assert_eq!(
        named(&seen, "-deploy-").len(),
        2,
        "deploy ran once, in build 1: {out}"
    );

    // Two watchers see the next version at once: one build of each job.
    set_script(&client, &ns, &["bbb", "ccc"]).await;
    let (a, b) = (watch_once(&file, &ns), watch_once(&file, &ns));
    let outs = [a.wait_with_output(), b.wait_with_output()].map(|o| succeeded(o.expect("c8s exits")));
    settle().await;
    assert_eq!(named(&seen, "-build-repo-b3-"), [v("ccc")], "{outs:?}");
    assert_eq!(named(&seen, "-build-unit-b3-").len(), 1, "{outs:?}");
    assert_eq!(named(&seen, "-deploy-repo-b2-"), [v("ccc")], "{outs:?}");
    assert_eq!(named(&seen, "-b4-").len(), 0, "{outs:?}");
    assert_eq!(named(&seen, "-deploy-repo-b3-").len(), 0, "{outs:?}");

    // What the cluster keeps: the versions in order, each job's last inputs.
    let history = history(&client, &ns).await;
    assert_eq!(
        history["resources"]["repo"],
        serde_json::json!([v("aaa"), v("bbb"), v("ccc")]),
        "{history:#}"
    );
    assert_eq!(history["jobs"]["build"]["builds"], 3, "{history:#}");
    assert_eq!(history["jobs"]["deploy"]["builds"], 2, "{history:#}");
    assert_eq!(history["jobs"]["deploy"]["last"]["repo"], v("ccc"), "{history:#}");
}

/// The release job (a triggering get, task files and a `load_var` read from
/// the fetched repository, `attempts: 2`, a put, `on_failure` and `ensure`),
/// started by the version a check found: once, and not again by a second
/// watcher that finds nothing new.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_new_version_triggers_the_release_job_once_and_it_runs_to_its_documented_end() {
    let client = cluster::client().await;
    let check = r#"  - pod: -check-repo-
    container: main
    logs: ["c8s-versions: [{\"ref\": \"9f2c1d4e\"}]"]
  - { pod: -r1, container: main }
"#;
    let script = common::release::SCRIPT.replacen("containers:\n", &format!("containers:\n{check}"), 1);
    let ns = watch_namespace(&client, "release-watch", &script).await;
    let file = common::temp_file(
        &format!("{}.yml", cluster::unique_name("release")),
        common::release::PIPELINE,
    );
    let seen = collect_pods(&client, &ns);
    let out = succeeded(watch_once(&file, &ns).wait_with_output().expect("c8s exits"));
    assert!(
        out.contains("job `ship` build 1: repo {\"ref\":\"9f2c1d4e\"}"),
        "{out}"
    );
    assert!(out.contains("to read 2 file(s)"), "{out}");
    assert!(out.contains("Succeeded"), "{out}");
    let out = succeeded(watch_once(&file, &ns).wait_with_output().expect("c8s exits"));
    assert!(!out.contains("job `ship` build"), "{out}");
    settle().await;
    assert_eq!(named(&seen, "-check-repo-").len(), 2);
    assert_eq!(named(&seen, "-ship-repo-b1-"), [v("9f2c1d4e")]);
    // The get and the version task ran once, the test task twice (its first
    // attempt fails), the put once, the failure hook never; no build 2.
    for (part, n) in [
        ("-ship-repo-b", 1),
        ("-ship-version-", 1),
        ("-ship-unit-", 2),
        ("-ship-repo-2-", 1),
        ("-ship-cleanup-", 1),
        ("-ship-page-", 0),
        ("-b2-", 0),
    ] {
        assert_eq!(
            cluster::scheduled_pods(&client, &ns, part).await,
            n,
            "{part}: {out}"
        );
    }
}

/// Left running, the watcher checks each resource every `check_every`: a
/// version that appears later starts its build at the next check, once;
/// SIGTERM stops it cleanly.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_running_watch_checks_every_check_every_and_starts_a_later_version_once() {
    let client = cluster::client().await;
    let ns = watch_namespace(&client, "watch-loop", &script(&["aaa"])).await;
    let text = PIPELINE.replace(
        "  source: { uri: https://github.com/example/app.git }",
        "  check_every: 2s\n  source: { uri: https://github.com/example/app.git }",
    );
    let file = common::temp_file(&format!("{}.yml", cluster::unique_name("loop")), text);
    let seen = collect_pods(&client, &ns);
    let child = common::command()
        .env("KUBECONFIG", cluster::kubeconfig())
        .args(["watch", file.to_str().expect("path"), "--namespace", &ns])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("c8s runs");
    until_seen(&seen, "-deploy-ship-b1-").await;
    set_script(&client, &ns, &["aaa", "bbb"]).await;
    // Build 2 of `build` fails (the script says so); a third check follows.
    until_seen(&seen, "-build-unit-b2-").await;
    let checks = named(&seen, "-check-repo-").len();
    cluster::eventually(std::time::Duration::from_secs(60), "another check", || {
        let more = named(&seen, "-check-repo-").len() > checks + 1;
        async move { more.then_some(()) }
    })
    .await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = succeeded(child.wait_with_output().expect("c8s exits"));
    settle().await;
    assert!(out.contains("stopping the watch"), "{out}");
    assert_eq!(named(&seen, "-build-repo-b2-"), [v("bbb")], "{out}");
    assert_eq!(named(&seen, "-build-unit-b2-").len(), 1, "{out}");
    assert_eq!(named(&seen, "-b3-").len(), 0, "{out}");
    assert_eq!(named(&seen, "-deploy-").len(), 2, "{out}");
}

/// `helm install` of the chart as `release` in `ns` with the Concourse
/// pipelines `pipelines` (name, file, the Secrets it may read).
fn helm_install_pipelines(release: &str, ns: &str, pipelines: &[(&str, &Path, &[&str])]) {
    let mut args = Vec::new();
    for (name, file, secrets) in pipelines {
        args.push("--set-file".to_owned());
        args.push(format!("concourse.pipelines.{name}.file={}", file.display()));
        if !secrets.is_empty() {
            args.push("--set".to_owned());
            args.push(format!(
                "concourse.pipelines.{name}.secretNames={{{}}}",
                secrets.join(",")
            ));
        }
    }
    common::helm_install(release, ns, &args);
}

/// What the chart's watcher Deployment of `name` runs, read back from the
/// API server: its args with the mounted pipeline file (the chart's
/// ConfigMap, written to `dir`) at its path here.
async fn chart_watch_args(
    client: &kube::Client,
    ns: &str,
    full: &str,
    name: &str,
    dir: &Path,
) -> Vec<String> {
    use k8s_openapi::api::apps::v1::Deployment;
    let deployment = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(full)
        .await
        .expect("the watcher Deployment");
    let map = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get(full)
        .await
        .expect("the pipeline ConfigMap");
    let file = dir.join(format!("{name}.yml"));
    let text = map
        .data
        .as_ref()
        .and_then(|d| d.get(&format!("{name}.yml")))
        .expect("the pipeline");
    std::fs::write(&file, text).expect("write");
    let spec = deployment.spec.template.spec.expect("pod spec");
    assert_eq!(spec.service_account_name.as_deref(), Some(full));
    let mount = format!("/etc/c8s/concourse/{name}.yml");
    spec.containers[0]
        .args
        .clone()
        .expect("args")
        .into_iter()
        .map(|a| if a == mount { file.display().to_string() } else { a })
        .collect()
}

/// The chart's watcher, as its Deployment runs it and with its
/// ServiceAccount's rights only: a check whose resource has credentials
/// reads the Secret it was allowed by name and triggers the build; one not
/// allowed its Secret cannot mask the check's log, so it starts nothing.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn the_charts_watcher_triggers_builds_with_its_service_accounts_rights_only() {
    let client = cluster::client().await;
    let ns = watch_namespace(&client, "chart-watch", &script(&["aaa"])).await;
    let text = PIPELINE.replace(
        "  source: { uri: https://github.com/example/app.git }",
        "  source: { uri: https://github.com/example/app.git, private_key: ((repo-key)) }",
    );
    let dir = common::temp_dir().join(cluster::unique_name("chart-watch"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("pipeline.yml");
    std::fs::write(&file, &text).expect("write");
    let source =
        r#"{"uri":"https://github.com/example/app.git","private_key":"-----BEGIN KEY----- s3cr3t-k3y"}"#;
    for secret in ["c8s-app-repo", "c8s-locked-repo"] {
        cluster::secret(&client, &ns, secret, &[("source", source)]).await;
    }
    let release = cluster::unique_name("cw");
    helm_install_pipelines(
        &release,
        &ns,
        &[("app", &file, &["c8s-app-repo"]), ("locked", &file, &[])],
    );
    let seen = collect_pods(&client, &ns);
    for (name, builds) in [("app", 1), ("locked", 0)] {
        let full = format!("{release}-concourse-{name}");
        let kubeconfig = cluster::service_account_kubeconfig(&client, &ns, &full, &dir).await;
        let mut args = chart_watch_args(&client, &ns, &full, name, &dir).await;
        args.push("--once".to_owned());
        let output = common::command()
            .env("KUBECONFIG", &kubeconfig)
            .args(&args)
            .output()
            .expect("c8s runs");
        let out = succeeded(output);
        settle().await;
        assert_eq!(named(&seen, &format!("{name}-check-repo-")).len(), 1, "{out}");
        assert_eq!(
            named(&seen, &format!("{name}-build-unit-b1-")).len(),
            builds,
            "{out}"
        );
        assert!(!out.contains("s3cr3t-k3y"), "{out}");
        if builds == 0 {
            assert!(out.contains("check of resource `repo` failed"), "{out}");
        }
    }
    // Nothing outside its namespace.
    let kubeconfig =
        cluster::service_account_kubeconfig(&client, &ns, &format!("{release}-concourse-app"), &dir).await;
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig"),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("config");
    let account = kube::Client::try_from(config).expect("client");
    let elsewhere = Api::<Pod>::namespaced(account.clone(), "default")
        .list(&ListParams::default())
        .await;
    assert!(
        matches!(elsewhere, Err(kube::Error::Api(ref e)) if e.code == 403),
        "{elsewhere:?}"
    );
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(account, &ns)
        .get("c8s-locked-repo")
        .await;
    assert!(
        matches!(secrets, Err(kube::Error::Api(ref e)) if e.code == 403),
        "{secrets:?}"
    );
}

/// `version: every`: a check that finds three versions at once gives each
/// its own build, oldest first, in one `--once` round.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn version_every_gives_each_version_found_its_own_build_in_order() {
    let client = cluster::client().await;
    let ns = watch_namespace(&client, "watch-every", &script(&["aaa", "bbb", "ccc"])).await;
    let text = PIPELINE.replacen(
        "    trigger: true\n",
        "    trigger: true\n    version: every\n",
        1,
    );
    let file = common::temp_file(&format!("{}.yml", cluster::unique_name("every")), text);
    let seen = collect_pods(&client, &ns);
    let out = succeeded(watch_once(&file, &ns).wait_with_output().expect("c8s exits"));
    settle().await;
    for (build, version) in [("b1", "aaa"), ("b2", "bbb"), ("b3", "ccc")] {
        assert_eq!(
            named(&seen, &format!("-build-repo-{build}-")),
            [v(version)],
            "{out}"
        );
    }
    assert_eq!(named(&seen, "-build-repo-b4-").len(), 0, "{out}");
    let order: Vec<usize> = [
        "job `build` build 1",
        "job `build` build 2",
        "job `build` build 3",
    ]
    .iter()
    .map(|line| out.find(line).unwrap_or_else(|| panic!("{line}: {out}")))
    .collect();
    assert!(order.is_sorted(), "{out}");
}

/// `--pin` (fly pin-resource) makes every get fetch the pinned version and
/// so triggers; `--unpin` goes back to the newest; `--trigger` (fly
/// trigger-job) starts a build whose inputs are not new.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_pinned_version_triggers_and_a_job_triggered_by_hand_runs_with_what_passed() {
    let client = cluster::client().await;
    let ns = watch_namespace(&client, "watch-pin", &script(&["aaa"])).await;
    let file = common::temp_file(&format!("{}.yml", cluster::unique_name("pin")), PIPELINE);
    let seen = collect_pods(&client, &ns);
    let watch = |extra: &[&str]| {
        let mut args = vec![
            "watch",
            file.to_str().expect("path"),
            "--namespace",
            &ns,
            "--once",
        ];
        args.extend_from_slice(extra);
        let output = common::command()
            .env("KUBECONFIG", cluster::kubeconfig())
            .args(&args)
            .output()
            .expect("c8s runs");
        succeeded(output)
    };
    watch(&[]);
    // Pinned to an older version: build 2 fetches it (and fails: the
    // script fails build 2's unit test), so deploy stays at aaa.
    let out = watch(&["--pin", r#"repo={"ref": "old"}"#]);
    settle().await;
    assert_eq!(named(&seen, "-build-repo-b2-"), [v("old")], "{out}");
    // Unpinned, and deploy by hand: build 3 takes the newest again; deploy
    // 2 runs with what passed build (aaa), though nothing new passed.
    let out = watch(&["--unpin", "repo", "--trigger", "deploy"]);
    settle().await;
    assert_eq!(named(&seen, "-deploy-repo-b2-"), [v("aaa")], "{out}");
    assert_eq!(named(&seen, "-build-repo-b3-"), [v("aaa")], "{out}");
    assert_eq!(named(&seen, "-b4-").len(), 0, "{out}");
    // A job or resource the pipeline lacks is refused before anything runs.
    let refused = common::command()
        .env("KUBECONFIG", cluster::kubeconfig())
        .args([
            "watch",
            file.to_str().expect("path"),
            "--namespace",
            &ns,
            "--trigger",
            "nope",
        ])
        .output()
        .expect("c8s runs");
    assert_eq!(refused.status.code(), Some(1));
    assert!(common::text(&refused.stderr).contains("--trigger nope: the pipeline has no job `nope`"));
}

/// A build job that puts an image and a deploy job that gets it `passed:`
/// the build: the image is never checked (`check_every: never`), so the
/// only way deploy gets a version is through the put.
const PUTS: &str = "\
resources:
- name: src
  type: git
  source: { uri: https://github.com/example/app.git }
- name: image
  type: registry-image
  check_every: never
  source: { repository: example/app }
jobs:
- name: build
  plan:
  - get: src
    trigger: true
  - put: image
    params: { image: src/image.tar }
- name: deploy
  plan:
  - get: image
    trigger: true
    passed: [build]
";

/// The version a put makes passes on: `c8s run` reads it from the put's
/// log, the watcher records it as the build's output and a new version of
/// the resource, and the job after it (`passed: [build]`) is triggered
/// with it, once.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn the_version_a_put_made_triggers_the_job_after_it_with_that_version() {
    let client = cluster::client().await;
    let script = r#"containers:
  - pod: -check-src-
    container: main
    logs:
      - "c8s-versions: [{\"ref\": \"aaa\"}]"
  - pod: -build-image-b1-
    container: main
    logs:
      - "pushing example/app"
      - "c8s-put-response: {"
      - "  \"version\": {\"digest\": \"sha256:1\"},"
      - "  \"metadata\": [{\"name\": \"tag\", \"value\": \"latest\"}]"
      - "}"
      - "c8s-put-end"
  - container: main
    runSeconds: 0.2
"#;
    let ns = watch_namespace(&client, "watch-put", script).await;
    let file = common::temp_file(&format!("{}.yml", cluster::unique_name("puts")), PUTS);
    let seen = collect_pods(&client, &ns);
    let out = succeeded(watch_once(&file, &ns).wait_with_output().expect("c8s exits"));
    settle().await;
    let digest = r#"{"digest":"sha256:1"}"#;
    assert_eq!(named(&seen, "-build-src-b1-"), [v("aaa")], "{out}");
    assert_eq!(named(&seen, "-build-image-b1-").len(), 1, "{out}");
    assert_eq!(named(&seen, "-deploy-image-b1-"), [digest], "{out}");
    assert!(named(&seen, "-check-image-").is_empty(), "never checked: {out}");
    let history = history(&client, &ns).await;
    assert_eq!(
        history["resources"]["image"],
        serde_json::json!([digest]),
        "{history}"
    );
    assert_eq!(
        history["jobs"]["build"]["succeeded"][0]["outputs"]["image"], digest,
        "{history}"
    );
    // Once: another round starts nothing.
    let out = succeeded(watch_once(&file, &ns).wait_with_output().expect("c8s exits"));
    settle().await;
    assert_eq!(named(&seen, "-b2-").len(), 0, "{out}");
}

/// Two jobs a version triggers, and a `serial` job with `version: every`.
const LIMITS: &str = "\
resources:
- name: repo
  type: git
  source: { uri: https://github.com/example/app.git }
jobs:
- name: unit
  plan:
  - get: repo
    trigger: true
  - task: test
    config: &task { platform: linux, image_resource: { type: registry-image, source: { repository: alpine } }, inputs: [{ name: repo }], run: { path: 'true' } }
- name: lint
  plan:
  - get: repo
    trigger: true
  - task: test
    config: *task
- name: deploy
  serial: true
  plan:
  - get: repo
    trigger: true
    version: every
  - task: test
    config: *task
";

/// When each pod's `main` ran, by pod name: (startedAt, finishedAt) as the
/// nodes wrote them (RFC 3339).
type Spans = Arc<Mutex<BTreeMap<String, (String, String)>>>;

fn collect_spans(client: &kube::Client, ns: &str) -> Spans {
    let spans: Spans = Arc::default();
    let api = Api::<Pod>::namespaced(client.clone(), ns);
    let into = Arc::clone(&spans);
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = events.next().await {
            let (Ok(watcher::Event::Apply(pod)) | Ok(watcher::Event::InitApply(pod))) = event else {
                continue;
            };
            let terminated = pod
                .status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
                .find(|c| c.name == "main")
                .and_then(|c| c.state.as_ref()?.terminated.clone());
            if let Some(t) = terminated {
                let time = |t: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
                    t.map(|t| t.0.to_string()).unwrap_or_default()
                };
                let name = pod.metadata.name.unwrap_or_default();
                into.lock()
                    .expect("spans")
                    .insert(name, (time(t.started_at), time(t.finished_at)));
            }
        }
    });
    spans
}

/// The one span of a pod whose name has `infix`.
fn span(
    spans: &Spans,
    infix: &str,
    out: &str,
) -> (k8s_openapi::jiff::Timestamp, k8s_openapi::jiff::Timestamp) {
    let spans = spans.lock().expect("spans");
    let found: Vec<_> = spans.iter().filter(|(name, _)| name.contains(infix)).collect();
    assert_eq!(found.len(), 1, "{infix}: {found:?}\n{out}");
    let (start, end) = found[0].1;
    let parse = |t: &str| t.parse().unwrap_or_else(|e| panic!("{t}: {e}"));
    (parse(start), parse(end))
}

/// Builds of different jobs run at once, as Concourse runs them (no job
/// waits for another it does not name in `passed:`); a `serial` job's
/// builds run one after the other.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn jobs_triggered_together_run_at_once_and_a_serial_jobs_builds_one_at_a_time() {
    let client = cluster::client().await;
    let script = r#"containers:
  - pod: -check-repo-
    container: main
    logs:
      - "c8s-versions: [{\"ref\": \"aaa\"}, {\"ref\": \"bbb\"}]"
  - pod: -test-
    container: main
    runSeconds: 3
  - container: main
    runSeconds: 0.2
"#;
    let ns = watch_namespace(&client, "watch-limits", script).await;
    let file = common::temp_file(&format!("{}.yml", cluster::unique_name("limits")), LIMITS);
    let spans = collect_spans(&client, &ns);
    let out = succeeded(watch_once(&file, &ns).wait_with_output().expect("c8s exits"));
    settle().await;
    let (unit, lint) = (
        span(&spans, "-unit-test-b1-", &out),
        span(&spans, "-lint-test-b1-", &out),
    );
    let (first, second) = (
        span(&spans, "-deploy-test-b1-", &out),
        span(&spans, "-deploy-test-b2-", &out),
    );
    assert!(
        unit.0 < lint.1 && lint.0 < unit.1 && first.0 < unit.1,
        "unit {unit:?}, lint {lint:?} and deploy {first:?} ran at once\n{out}"
    );
    assert!(
        second.0 >= first.1,
        "deploy is serial: build 2 {second:?} after build 1 {first:?}\n{out}"
    );
}

/// Concourse's resource webhook, as the chart installs it: the chart's
/// watcher (its args, its ServiceAccount) publishes the digest of the
/// resource's `webhook_token`; `c8s webhook` (with the chart's webhook
/// ServiceAccount) answers a wrong token 401 and starts nothing, and the
/// right one 201: the watcher checks the resource at once (it has
/// `check_every: never`, so nothing else would) and the new version
/// triggers its builds.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_resource_webhook_with_its_token_makes_the_chart_watcher_check_at_once() {
    let client = cluster::client().await;
    let ns = watch_namespace(&client, "watch-hook", &script(&["aaa"])).await;
    let token = cluster::unique_name("t0ken");
    let text = PIPELINE.replace(
        "  source: { uri: https://github.com/example/app.git }",
        &format!("  check_every: never\n  webhook_token: {token}\n  source: {{ uri: https://github.com/example/app.git }}"),
    );
    let dir = common::temp_dir().join(cluster::unique_name("chart-hook"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("pipeline.yml");
    std::fs::write(&file, &text).expect("write");
    let release = cluster::unique_name("ch");
    helm_install_pipelines(&release, &ns, &[("app", &file, &[])]);
    let seen = collect_pods(&client, &ns);
    let full = format!("{release}-concourse-app");
    let watch_config = cluster::service_account_kubeconfig(&client, &ns, &full, &dir).await;
    let args = chart_watch_args(&client, &ns, &full, "app", &dir).await;
    let mut watcher = Stopped(Some(
        common::command()
            .env("KUBECONFIG", &watch_config)
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("c8s watch runs"),
    ));
    let hook_config =
        cluster::service_account_kubeconfig(&client, &ns, &format!("{release}-webhook"), &dir).await;
    let listen = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        format!("127.0.0.1:{}", socket.local_addr().expect("address").port())
    };
    let log = dir.join("webhook.log");
    let mut webhook = Stopped(Some(
        common::command()
            .env("KUBECONFIG", &hook_config)
            .args(["webhook", "--listen", &listen])
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(std::fs::File::create(dir.join("webhook.err")).expect("log"))
            .spawn()
            .expect("c8s webhook runs"),
    ));
    cluster::eventually(
        std::time::Duration::from_secs(30),
        "the webhook to listen",
        || async { std::net::TcpStream::connect(&listen).ok().map(|_| ()) },
    )
    .await;
    // The watcher published the token's digest (never the token).
    cluster::eventually(std::time::Duration::from_secs(30), "the digest", || {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            let maps = Api::<ConfigMap>::namespaced(client, &ns)
                .list(&ListParams::default().labels("app.kubernetes.io/managed-by=c8s"))
                .await
                .ok()?;
            maps.items
                .into_iter()
                .find_map(|m| m.data?.get("webhooks.json").cloned())
        }
    })
    .await;
    let post = |token: &str| {
        let url = format!(
            "http://{listen}/api/v1/teams/{ns}/pipelines/app/resources/repo/check/webhook?webhook_token={token}"
        );
        let output = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", &url])
            .output()
            .expect("curl runs");
        common::text(&output.stdout)
    };
    assert_eq!(post("wrong"), "401");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(
        named(&seen, "-check-repo-").is_empty(),
        "a wrong token checks nothing"
    );
    assert_eq!(post(&token), "201");
    until_seen(&seen, "-deploy-ship-b1-").await;
    let watcher = watcher.0.take().expect("running");
    terminate(watcher.id());
    let out = succeeded(watcher.wait_with_output().expect("c8s exits"));
    drop(webhook.0.take().map(|mut webhook| {
        terminate(webhook.id());
        webhook.wait()
    }));
    settle().await;
    assert!(out.contains("a check of resource `repo` was asked for"), "{out}");
    assert_eq!(named(&seen, "-check-repo-"), [""], "one check: {out}");
    assert_eq!(named(&seen, "-build-repo-b1-"), [v("aaa")], "{out}");
    let maps = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=c8s"))
        .await
        .expect("configmaps");
    let stored = serde_json::to_string(&maps.items).expect("json");
    assert!(stored.contains("check-requests.json"), "{stored}");
    assert!(!stored.contains(&token), "the token is never stored: {stored}");
}

/// A process a test started: sent SIGTERM and waited for when the test ends
/// without taking it (a failed assertion leaves nothing running).
struct Stopped(Option<std::process::Child>);

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            terminate(child.id());
            let _ = child.wait();
        }
    }
}

/// Sends SIGTERM to the process `pid` (one this test started).
fn terminate(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Two jobs a version triggers together: `quick` ends first, `slow` would
/// run for minutes.
const QUICK_AND_SLOW: &str = "\
resources:
- name: repo
  type: git
  source: { uri: https://github.com/example/app.git }
jobs:
- name: quick
  plan:
  - get: repo
    trigger: true
  - task: test
    config: &task { platform: linux, image_resource: { type: registry-image, source: { repository: alpine } }, inputs: [{ name: repo }], run: { path: 'true' } }
- name: slow
  plan:
  - get: repo
    trigger: true
  - task: wait
    config: *task
";

/// A ValidatingAdmissionPolicy (and its binding, both named `name`) that
/// refuses every update of a `c8s-versions-…` ConfigMap in `ns`.
async fn refuse_history_writes(client: &kube::Client, name: &str, ns: &str) {
    use k8s_openapi::api::admissionregistration::v1::{
        ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": { "resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["UPDATE"], "resources": ["configmaps"],
            }] },
            "validations": [{
                "expression": "!object.metadata.name.startsWith('c8s-versions-')",
                "message": "the test refuses history writes",
            }],
        },
    }))
    .expect("policy");
    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": { "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": ns } } },
        },
    }))
    .expect("binding");
    let post = kube::api::PostParams::default();
    Api::<ValidatingAdmissionPolicy>::all(client.clone())
        .create(&post, &policy)
        .await
        .expect("the policy");
    Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
        .create(&post, &binding)
        .await
        .expect("the binding");
}

/// A history write refused for good while builds run: the watcher cancels
/// the build still running (its pod deleted, as at Ctrl-C) and exits with
/// the error, instead of leaving the pod for `c8s reap`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_history_write_refused_for_good_cancels_the_builds_running_and_leaves_no_pod() {
    use k8s_openapi::api::admissionregistration::v1::{
        ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };
    let client = cluster::client().await;
    let script = r#"containers:
  - pod: -check-repo-
    container: main
    logs:
      - "c8s-versions: [{\"ref\": \"aaa\"}]"
  - { pod: -quick-test-, container: main, runSeconds: 8 }
  - { pod: -slow-wait-, container: main, runSeconds: 300 }
  - { container: main, runSeconds: 0.2 }
"#;
    let ns = watch_namespace(&client, "watch-refused", script).await;
    let file = common::temp_file(
        &format!("{}.yml", cluster::unique_name("refused")),
        QUICK_AND_SLOW,
    );
    let seen = collect_pods(&client, &ns);
    let started = std::time::Instant::now();
    let child = watch_once(&file, &ns);
    until_seen(&seen, "-quick-test-").await;
    until_seen(&seen, "-slow-wait-").await;
    // Both builds were claimed; from now on the history cannot be written.
    let policy = cluster::unique_name("refuse-history");
    refuse_history_writes(&client, &policy, &ns).await;
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("joined")
        .expect("c8s exits");
    let text = common::explain(&output);
    let delete = kube::api::DeleteParams::default();
    let _ = Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
        .delete(&policy, &delete)
        .await;
    let _ = Api::<ValidatingAdmissionPolicy>::all(client.clone())
        .delete(&policy, &delete)
        .await;
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("the test refuses history writes"), "{text}");
    assert!(text.contains("cancelling the 1 build(s) running"), "{text}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(120),
        "the slow build was cancelled, not waited for: {text}"
    );
    // Its pod was deleted: nothing is left for `c8s reap`.
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    cluster::eventually(std::time::Duration::from_secs(30), "no pod left", || async {
        let left = pods.list(&ListParams::default()).await.ok()?.items;
        left.iter()
            .all(|p| !p.metadata.name.as_deref().unwrap_or_default().contains("-slow-"))
            .then_some(())
    })
    .await;
}

/// A ServiceAccount `name` in `ns` with what a watcher needs (the chart's
/// Role for its own watchers): pods and their logs, ConfigMaps, Events.
async fn watcher_account(client: &kube::Client, ns: &str, name: &str) {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let post = kube::api::PostParams::default();
    let account: ServiceAccount =
        serde_json::from_value(serde_json::json!({ "metadata": { "name": name } })).expect("account");
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create(&post, &account)
        .await
        .expect("account");
    let role: Role = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "rules": [
            { "apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "create", "delete"] },
            { "apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"] },
            { "apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch", "create", "update", "delete"] },
            { "apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch"] },
        ],
    }))
    .expect("role");
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&post, &role)
        .await
        .expect("role");
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name },
        "subjects": [{ "kind": "ServiceAccount", "name": name, "namespace": ns }],
    }))
    .expect("binding");
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&post, &binding)
        .await
        .expect("binding");
}

/// The `Ready` condition of ConcoursePipeline `name`: status and message.
async fn ready(api: &Api<c8s_controller::crd::ConcoursePipeline>, name: &str, want: &'static str) -> String {
    cluster::eventually(std::time::Duration::from_secs(60), want, || async move {
        let pipeline = api.get(name).await.ok()?;
        let status = pipeline.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (ready.status == want && status.observed_generation == pipeline.metadata.generation)
            .then(|| ready.message.clone())
    })
    .await
}

/// A ConcoursePipeline applied to the cluster: the controller (as the
/// chart's ServiceAccount, with `controller.concoursePipelines`) keeps its
/// watcher, a Deployment running `c8s watch` on a ConfigMap of the text as
/// the ServiceAccount the pipeline names, both owned by the pipeline. Run
/// as that Deployment runs it, the watcher starts one build for a new
/// version and none the second time; an invalid edit is refused in the
/// status and leaves the watcher; deleting the pipeline deletes it.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_concourse_pipeline_resource_gets_a_watcher_that_triggers_a_new_version_once() {
    use c8s_controller::crd::{ConcoursePipeline, ConcoursePipelineSpec};
    use k8s_openapi::api::apps::v1::Deployment;
    let client = cluster::client().await;
    let ns = watch_namespace(&client, "cpl", &script(&["aaa"])).await;
    let release = cluster::unique_name("cpl");
    common::helm_install(
        &release,
        &ns,
        &[
            "--set".to_owned(),
            "controller.concoursePipelines=true".to_owned(),
        ],
    );
    watcher_account(&client, &ns, "watcher").await;
    let dir = common::temp_dir().join(cluster::unique_name("cpl"));
    std::fs::create_dir_all(&dir).expect("dir");
    let controller_config =
        cluster::service_account_kubeconfig(&client, &ns, &format!("{release}-controller"), &dir).await;
    let controller = common::command()
        .env("KUBECONFIG", &controller_config)
        .args(["controller", "--namespace", &ns, "--identity", "cpl"])
        .args([
            "--metrics-address=127.0.0.1:0",
            "--concourse-watcher-image=example.com/c8s:test",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("controller starts");
    let _controller = Stopped(Some(controller));

    let api = Api::<ConcoursePipeline>::namespaced(client.clone(), &ns);
    let spec = ConcoursePipelineSpec {
        pipeline: PIPELINE.to_owned(),
        service_account_name: "watcher".to_owned(),
        vars: BTreeMap::new(),
        parallelism: None,
    };
    // The chart's CRD may be new to the API server: created once it is served.
    let pipeline = ConcoursePipeline::new("app", spec);
    let created = cluster::eventually(std::time::Duration::from_secs(30), "pipeline created", || {
        let (api, pipeline) = (api.clone(), pipeline.clone());
        async move {
            api.create(&kube::api::PostParams::default(), &pipeline)
                .await
                .ok()
        }
    })
    .await;
    ready(&api, "app", "True").await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let deployment = deployments.get("concourse-app").await.expect("the watcher");
    let owner = deployment.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owner.first().map(|o| o.uid.clone()), created.metadata.uid);
    let map = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("concourse-app")
        .await
        .expect("the text");
    let file = dir.join("app.yml");
    let text = map.data.as_ref().and_then(|d| d.get("app.yml")).expect("text");
    std::fs::write(&file, text).expect("write");
    let template = deployment.spec.template.clone();
    let pod = template.spec.expect("pod spec");
    assert_eq!(pod.service_account_name.as_deref(), Some("watcher"));
    let mut args: Vec<String> = pod.containers[0]
        .args
        .clone()
        .expect("args")
        .into_iter()
        .map(|a| match a == "/etc/c8s/concourse/app.yml" {
            true => file.display().to_string(),
            false => a,
        })
        .collect();
    args.push("--once".to_owned());

    // As the Deployment runs it, with the named account's rights only.
    let seen = collect_pods(&client, &ns);
    let account = cluster::service_account_kubeconfig(&client, &ns, "watcher", &dir).await;
    for round in 1..=2 {
        let output = common::command()
            .env("KUBECONFIG", &account)
            .args(&args)
            .output()
            .expect("c8s runs");
        let out = succeeded(output);
        settle().await;
        assert!(
            !named(&seen, "app-check-repo-").is_empty(),
            "round {round}: {out}"
        );
        assert_eq!(named(&seen, "app-build-repo-b1-"), [v("aaa")], "{out}");
        assert_eq!(named(&seen, "app-build-unit-b1-").len(), 1, "{out}");
        assert!(named(&seen, "app-build-unit-b2-").is_empty(), "{out}");
    }

    // An edit that does not validate: refused where it is written, and the
    // watcher of the last valid text stays as it was.
    let checksum = |d: &Deployment| {
        d.spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get("c8s.dev/pipeline-sha256").cloned())
    };
    let patch = serde_json::json!({ "spec": { "pipeline": PIPELINE.replace("  - get: repo\n    trigger: true\n  - task: unit", "  - get: nothing\n  - task: unit") } });
    api.patch("app", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("edit");
    let message = ready(&api, "app", "False").await;
    assert!(message.contains("app.yml:"), "{message}");
    let kept = deployments.get("concourse-app").await.expect("the watcher");
    assert_eq!(checksum(&kept), checksum(&deployment));

    // Deleted with its pipeline, by the garbage collector.
    api.delete("app", &kube::api::DeleteParams::default())
        .await
        .expect("delete");
    cluster::eventually(std::time::Duration::from_secs(60), "watcher deleted", || {
        let deployments = deployments.clone();
        async move {
            deployments
                .get_opt("concourse-app")
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
}

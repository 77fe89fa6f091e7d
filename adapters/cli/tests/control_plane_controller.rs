//! The in-cluster side against a real Kubernetes control plane (see
//! `control_plane.rs`): the CRDs as the API server takes them, `c8s
//! controller` and `c8s webhook` installed by the chart `charts/c8s-controller`
//! with `helm install` and run with the chart's ServiceAccount tokens and
//! RBAC, and `c8s run --in-cluster`.
//!
//! A controller acts on PipelineRuns of every namespace, so these tests run
//! one at a time (the nextest test group `controller`, .config/nextest.toml).
//! The processes log at `C8S_TEST_RUST_LOG` (default `info`); a failing
//! test prints its controller's log.

mod common;

use common::explain;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use c8s_test_cluster as cluster;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("c8s.dev", "v1alpha1", kind))
}

fn runs(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &resource("PipelineRun"))
}

/// `helm install` of charts/c8s-controller with `values` (`--set`).
fn helm_install(release: &str, ns: &str, values: &[&str]) {
    let args: Vec<String> = values
        .iter()
        .flat_map(|v| ["--set".to_owned(), (*v).to_owned()])
        .collect();
    common::helm_install(release, ns, &args);
}

/// A kubeconfig that authenticates as ServiceAccount `account` of `ns`.
async fn service_account_kubeconfig(client: &Client, ns: &str, account: &str) -> PathBuf {
    cluster::service_account_kubeconfig(client, ns, account, &common::temp_dir()).await
}

async fn client_for(kubeconfig: &Path) -> Client {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig"),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("config");
    Client::try_from(config).expect("client")
}

/// A `c8s` process that is killed when the test ends, whatever happens.
struct Process {
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    fn start(kubeconfig: &Path, args: &[&str]) -> Process {
        Process::start_with(kubeconfig, args, &[])
    }

    /// [`Process::start`] with `env` set too.
    fn start_with(kubeconfig: &Path, args: &[&str], env: &[(&str, String)]) -> Process {
        let log = common::temp_dir().join(format!("{}.log", cluster::unique_name("c8s")));
        let file = std::fs::File::create(&log).expect("log file");
        let child = common::command()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("KUBECONFIG", kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("C8S_TEST_RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .args(args)
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("c8s starts");
        Process {
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process has ended (without waiting).
    fn ended(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A namespace with the chart installed in it (release `c8s-<n>`): its
/// controller's kubeconfig, its webhook's, and the release name.
struct Installed {
    ns: String,
    controller: PathBuf,
    webhook: PathBuf,
    /// The dashboard's, when the chart installed it (`dashboard.enabled=true`).
    dashboard: Option<PathBuf>,
}

async fn install(client: &Client, prefix: &str) -> Installed {
    let main = "  - container: main\n    runSeconds: 2\n    logs: [\"main says hello\"]\n";
    install_with(client, prefix, main, &[]).await
}

/// [`install`] with `rules` first in the nodes' script and the chart's
/// `values` (`key=value`, as `helm --set` takes them).
async fn install_with(client: &Client, prefix: &str, rules: &str, values: &[&str]) -> Installed {
    let ns = cluster::namespace(client, prefix).await;
    cluster::script(client, &ns, &format!("containers:\n{rules}{CHART_PODS}")).await;
    cluster::claims(client, &ns, &["c8s-artifacts"]).await;
    let release = cluster::unique_name("c8s");
    helm_install(&release, &ns, values);
    let controller = service_account_kubeconfig(client, &ns, &format!("{release}-controller")).await;
    let webhook = service_account_kubeconfig(client, &ns, &format!("{release}-webhook")).await;
    let dashboard = match values.contains(&"dashboard.enabled=true") {
        true => Some(service_account_kubeconfig(client, &ns, &format!("{release}-dashboard")).await),
        false => None,
    };
    Installed {
        ns,
        controller,
        webhook,
        dashboard,
    }
}

/// `GET url` with curl: the body (empty when nothing answered).
fn http_get(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "30", url])
        .output()
        .expect("curl runs");
    common::text(&out.stdout)
}

/// `c8s controller` for the test's namespace only; its Lease lives there too
/// (`--namespace` is the Lease's namespace when `--lease-namespace` is not
/// given). Its metrics on any free port: several replicas run on this host.
fn start_controller(installed: &Installed, identity: &str) -> Process {
    metered_controller(installed, identity, "127.0.0.1:0")
}

/// Serves the controller's metrics on a free port: several replicas run on this host.
const ANY_METRICS_PORT: &str = "--metrics-address=127.0.0.1:0";

/// `c8s controller` for namespace `ns` only, as replica `identity`, its
/// metrics on any free port, with `extra` flags.
fn controller_args<'a>(ns: &'a str, identity: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "controller",
        "--namespace",
        ns,
        "--identity",
        identity,
        ANY_METRICS_PORT,
    ];
    args.extend_from_slice(extra);
    args
}

/// Script rules for the chart's own Deployments (the controller's and the
/// webhook's pods, which the tests run as processes instead): they "run"
/// for an hour, so their ReplicaSets do not churn.
const CHART_PODS: &str =
    "  - container: controller\n    runSeconds: 3600\n  - container: webhook\n    runSeconds: 3600\n";

const TWO_STEPS: &str = "name: hello
repository: https://github.com/octo-org/shop.git
steps:
  - name: first
    image: busybox:1.37
    commands: [\"mkdir -p out && echo made > out/file\"]
    outputs: [out]
    timeout: 5m
  - name: second
    image: busybox:1.37
    dependsOn: [first]
    inputs: [{ step: first, output: out }]
    commands: [\"cat out/file\"]
    timeout: 5m
";

async fn create_run(client: &Client, ns: &str, name: &str) {
    create_run_of(client, ns, name, &two_steps_json()).await;
}

/// A PipelineRun `name` embedding `pipeline`, on branch main, build 1.
async fn create_run_of(client: &Client, ns: &str, name: &str, pipeline: &Value) {
    create_run_with(client, ns, name, pipeline, json!({})).await;
}

/// [`create_run_of`] with the fields of `spec` added to the run's spec.
async fn create_run_with(client: &Client, ns: &str, name: &str, pipeline: &Value, spec: Value) {
    create_run_labelled(client, ns, name, pipeline, spec, json!({})).await;
}

/// [`create_run_with`], the run carrying `labels`.
async fn create_run_labelled(
    client: &Client,
    ns: &str,
    name: &str,
    pipeline: &Value,
    spec: Value,
    labels: Value,
) {
    let mut run = json!({
        "apiVersion": "c8s.dev/v1alpha1",
        "kind": "PipelineRun",
        "metadata": { "name": name, "labels": labels },
        "spec": { "pipeline": pipeline, "branch": "main", "commit": "0123abcd0123abcd0123abcd0123abcd0123abcd", "build": 1 }
    });
    for (key, value) in spec.as_object().into_iter().flatten() {
        run["spec"][key] = value.clone();
    }
    let run: DynamicObject = serde_json::from_value(run).expect("run");
    runs(client, ns)
        .create(&PostParams::default(), &run)
        .await
        .unwrap_or_else(|e| panic!("create run: {e}"));
}

/// [`TWO_STEPS`] as the JSON a PipelineRun embeds.
fn two_steps_json() -> Value {
    json!({
        "name": "hello",
        "repository": "https://github.com/octo-org/shop.git",
        "steps": [
            { "name": "first", "image": "busybox:1.37", "commands": ["mkdir -p out && echo made > out/file"],
              "outputs": ["out"], "timeout": "5m" },
            { "name": "second", "image": "busybox:1.37", "dependsOn": ["first"],
              "inputs": [{ "step": "first", "output": "out" }], "commands": ["cat out/file"], "timeout": "5m" }
        ]
    })
}

async fn phase(client: &Client, ns: &str, name: &str) -> Option<String> {
    let run = runs(client, ns).get_opt(name).await.ok().flatten()?;
    run.data["status"]["phase"].as_str().map(str::to_owned)
}

async fn wait_phase(client: &Client, ns: &str, name: &str, want: &str, process: &Process) {
    let result = tokio::time::timeout(Duration::from_secs(240), async {
        loop {
            let now = phase(client, ns, name).await;
            if now.as_deref() == Some(want) {
                return;
            }
            if matches!(now.as_deref(), Some("Succeeded" | "Failed" | "Cancelled")) {
                panic!(
                    "run {name} ended {now:?}, not {want}\n{:#}\ncontroller log:\n{}",
                    run_json(client, ns, name).await,
                    process.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    if result.is_err() {
        panic!(
            "run {name} not {want} after 240 s: {:#}\ncontroller log:\n{}",
            run_json(client, ns, name).await,
            process.log()
        );
    }
}

/// Waits up to 60 s for the run's first pod, printing `controller`'s log if none comes.
async fn first_pod(pods: &Api<Pod>, controller: &Process) {
    let started = std::time::Instant::now();
    let labelled = ListParams::default().labels("c8s.dev/run");
    loop {
        if pods.list(&labelled).await.is_ok_and(|l| !l.items.is_empty()) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no step pod after 60 s; controller log:\n{}",
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn run_json(client: &Client, ns: &str, name: &str) -> Value {
    runs(client, ns)
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .map(|r| r.data)
        .unwrap_or(Value::Null)
}

fn forbidden(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("forbidden") || l.contains("Forbidden") || l.contains(" 403"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn the_crds_are_served_structural_and_validate_with_a_clear_message() {
    let client = cluster::client().await;
    let installed = install(&client, "crds").await;
    // The CRDs the chart installed are `c8s crd`'s, and the API server marks them Established.
    let crds = Api::<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    >::all(client.clone());
    for name in [
        "pipelines.c8s.dev",
        "pipelineruns.c8s.dev",
        "repositoryconnections.c8s.dev",
    ] {
        let crd = crds.get(name).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True"),
            "{name}: {conditions:?}"
        );
        assert!(
            !conditions
                .iter()
                .any(|c| c.type_ == "NonStructuralSchema" && c.status == "True"),
            "{name}: {conditions:?}"
        );
    }
    // A run whose build is not a number is refused, naming the field.
    let bad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "c8s.dev/v1alpha1", "kind": "PipelineRun",
        "metadata": { "name": "bad" },
        "spec": { "pipelineRef": "x", "build": "seven" }
    }))
    .expect("object");
    let error = runs(&client, &installed.ns)
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("refused");
    let text = error.to_string();
    assert!(text.contains("spec.build"), "{text}");
    // Unknown fields are pruned, not stored.
    let pruned: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "c8s.dev/v1alpha1", "kind": "PipelineRun",
        "metadata": { "name": "pruned" },
        "spec": { "pipelineRef": "x", "surprise": true }
    }))
    .expect("object");
    let stored = runs(&client, &installed.ns)
        .create(&PostParams::default(), &pruned)
        .await
        .expect("created");
    assert!(stored.data["spec"].get("surprise").is_none(), "{:#}", stored.data);
    assert_eq!(stored.data["spec"]["pipelineRef"], "x");
    // The schema's default is applied by the API server: no build given, 0 stored.
    assert_eq!(stored.data["spec"]["build"], 0, "{:#}", stored.data);
    // And its minimum holds.
    let negative: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "c8s.dev/v1alpha1", "kind": "PipelineRun",
        "metadata": { "name": "negative" },
        "spec": { "pipelineRef": "x", "build": -1 }
    }))
    .expect("object");
    let error = runs(&client, &installed.ns)
        .create(&PostParams::default(), &negative)
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("spec.build"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn the_controller_with_the_charts_rbac_runs_a_pipeline_run_to_succeeded() {
    let client = cluster::client().await;
    let installed = install(&client, "ctl").await;
    let ns = &installed.ns;
    let controller = start_controller(&installed, "a");
    // A run of another namespace, which its ClusterRole would let it drive:
    // started with `--namespace`, it never touches it.
    let elsewhere = cluster::namespace(&client, "elsewhere").await;
    create_run(&client, &elsewhere, "hello-1").await;
    create_run(&client, ns, "hello-1").await;
    wait_phase(&client, ns, "hello-1", "Succeeded", &controller).await;
    let run = run_json(&client, ns, "hello-1").await;
    let steps = run["status"]["steps"].as_array().cloned().unwrap_or_default();
    assert_eq!(steps.len(), 2, "{run:#}");
    // Status came through the status subresource by server-side apply.
    let object = runs(&client, ns).get("hello-1").await.expect("the run");
    let managers: Vec<String> = object
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|f| f.subresource.as_deref() == Some("status") && f.operation.as_deref() == Some("Apply"))
        .filter_map(|f| f.manager.clone())
        .collect();
    assert!(
        managers.iter().any(|m| m == "c8s-controller"),
        "{managers:?}: {run:#}"
    );
    // A run that can never be rendered (a short commit) fails once, saying
    // why, instead of being retried with no status.
    let short: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "c8s.dev/v1alpha1",
        "kind": "PipelineRun",
        "metadata": { "name": "short-1" },
        "spec": { "pipeline": two_steps_json(), "branch": "main", "commit": "0123abcd", "build": 2 }
    }))
    .expect("run");
    runs(&client, ns)
        .create(&PostParams::default(), &short)
        .await
        .expect("created");
    wait_phase(&client, ns, "short-1", "Failed", &controller).await;
    let failed = run_json(&client, ns, "short-1").await;
    let ready = failed["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Succeeded").cloned())
        .unwrap_or_default();
    // A meta/v1 Condition, as Tekton's PipelineRun has it.
    assert_eq!(
        (&ready["status"], &ready["reason"], &ready["observedGeneration"]),
        (&json!("False"), &json!("InvalidSpec"), &json!(1)),
        "{failed:#}"
    );
    assert!(
        ready["message"].as_str().unwrap_or_default().contains("0123abcd"),
        "{failed:#}"
    );
    let untouched = runs(&client, &elsewhere)
        .get("hello-1")
        .await
        .expect("the other run");
    assert!(
        untouched.data["status"].is_null() && untouched.metadata.finalizers.is_none(),
        "{:#}",
        untouched.data
    );
    let others = Api::<Pod>::namespaced(client.clone(), &elsewhere)
        .list(&ListParams::default())
        .await
        .expect("pods");
    assert!(others.items.is_empty(), "pods in {elsewhere}");
    assert!(!controller.log().contains(&elsewhere), "{}", controller.log());
    // Every request it made was allowed...
    assert!(forbidden(&controller.log()).is_empty(), "{}", controller.log());
    // ... and a request outside its role is denied: a Secret in another namespace.
    let as_controller = client_for(&installed.controller).await;
    let denied = Api::<Secret>::namespaced(as_controller, "default")
        .list(&ListParams::default())
        .await;
    match denied {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("listing Secrets as the controller: {other:?}"),
    }
}

/// `controller.namespaced=true`: the controller's RBAC is a Role in the
/// release namespace only, and `--namespace` keeps every watch and request
/// inside it: a run goes to Succeeded without one refused request.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_namespaced_install_runs_a_pipeline_with_a_role_only() {
    let client = cluster::client().await;
    let main = "  - container: main\n    runSeconds: 1\n    logs: [\"main says hello\"]\n";
    let installed = install_with(&client, "namespaced", main, &["controller.namespaced=true"]).await;
    let ns = &installed.ns;
    let as_controller = client_for(&installed.controller).await;
    // Its ServiceAccount cannot read runs of the whole cluster...
    let every = Api::<DynamicObject>::all_with(as_controller, &resource("PipelineRun"));
    match every.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("listing every namespace's runs as the controller: {other:?}"),
    }
    // ... and needs not: the run is driven to its end.
    let controller = start_controller(&installed, "a");
    create_run(&client, ns, "hello-1").await;
    wait_phase(&client, ns, "hello-1", "Succeeded", &controller).await;
    assert!(forbidden(&controller.log()).is_empty(), "{}", controller.log());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_step_whose_outputs_were_not_saved_fails_the_run_in_the_controller() {
    let client = cluster::client().await;
    let installed = install_with(
        &client,
        "unsaved",
        "  - step: first
    container: artifact-helper
    exitCode: 1
    message: \"out: no such directory\"
  - container: main
    runSeconds: 1
",
        &[],
    )
    .await;
    let ns = &installed.ns;
    let controller = start_controller(&installed, "a");
    create_run(&client, ns, "unsaved-1").await;
    wait_phase(&client, ns, "unsaved-1", "Failed", &controller).await;
    let run = run_json(&client, ns, "unsaved-1").await;
    assert_eq!(
        cluster::scheduled_pods(&client, ns, "second").await,
        0,
        "second never started: {run:#}"
    );
}

/// A pod the scheduler refuses for good (its claim does not exist) fails
/// its step in the controller at once, in the scheduler's words, by the
/// rule `c8s run` follows, instead of waiting out the capacity bound.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_missing_claim_fails_the_run_in_the_controller_at_once_naming_it() {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    let client = cluster::client().await;
    let installed = install_with(
        &client,
        "noclaim",
        "  - container: main\n    runSeconds: 1\n",
        &[],
    )
    .await;
    let ns = &installed.ns;
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns);
    claims
        .delete("c8s-artifacts", &DeleteParams::default())
        .await
        .expect("delete the claim");
    cluster::eventually(Duration::from_secs(60), "the claim to be gone", || async {
        claims
            .get_opt("c8s-artifacts")
            .await
            .ok()
            .flatten()
            .is_none()
            .then_some(())
    })
    .await;
    let controller = start_controller(&installed, "a");
    let started = std::time::Instant::now();
    create_run(&client, ns, "noclaim-1").await;
    wait_phase(&client, ns, "noclaim-1", "Failed", &controller).await;
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "{:?}",
        started.elapsed()
    );
    let run = run_json(&client, ns, "noclaim-1").await;
    let first = run["status"]["steps"]
        .as_array()
        .and_then(|steps| {
            steps
                .iter()
                .find(|s| s["name"].as_str().is_some_and(|n| n.contains("-first-")))
        })
        .cloned()
        .unwrap_or_else(|| panic!("no first step: {run:#}"));
    let message = first["message"].as_str().unwrap_or_default();
    assert!(message.contains("cannot start"), "{run:#}");
    assert!(message.contains("c8s-artifacts"), "{run:#}");
}

/// Each failed step is an Event of its own on the run, naming its pod as the
/// related object (Events that agree in reason, object and related object
/// become one series that keeps the first note); a step that succeeds is
/// no Event (its status says so), so a step costs no Event write.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn each_failed_step_is_an_event_of_its_own_and_a_success_is_none() {
    let client = cluster::client().await;
    let installed = install_with(
        &client,
        "events",
        "  - { step: lint, container: main, runSeconds: 1, exitCode: 3 }
  - { step: unit, container: main, runSeconds: 1, exitCode: 5 }
  - { container: main, runSeconds: 1 }
",
        &[],
    )
    .await;
    let ns = &installed.ns;
    let controller = start_controller(&installed, "a");
    let pipeline = json!({
        "name": "checks",
        "repository": "https://github.com/octo-org/shop.git",
        "steps": [
            { "name": "build", "image": "busybox:1.37", "commands": ["make"] },
            { "name": "lint", "image": "busybox:1.37", "dependsOn": ["build"], "commands": ["make lint"] },
            { "name": "unit", "image": "busybox:1.37", "dependsOn": ["build"], "commands": ["make test"] }
        ]
    });
    create_run_with(
        &client,
        ns,
        "events-1",
        &pipeline,
        json!({ "continueOnFailure": true }),
    )
    .await;
    wait_phase(&client, ns, "events-1", "Failed", &controller).await;
    let run = run_json(&client, ns, "events-1").await;
    let pod_of = |step: &str| {
        run["status"]["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| {
                s["name"]
                    .as_str()
                    .is_some_and(|n| n.contains(&format!("-{step}-")))
            })
            .and_then(|s| s["pod"].as_str())
            .unwrap_or_else(|| panic!("the pod of {step}: {run:#}"))
            .to_owned()
    };
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), ns);
    let on_run: Vec<_> = cluster::eventually(Duration::from_secs(30), "the run's end Event", || {
        let events = events.clone();
        async move {
            let on_run: Vec<_> = events
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("events-1"))
                .collect();
            on_run
                .iter()
                .any(|e| e.reason.as_deref() == Some("RunFailed"))
                .then_some(on_run)
        }
    })
    .await;
    let described: Vec<String> = on_run
        .iter()
        .map(|e| {
            format!(
                "{} {} related={:?} count={:?}",
                e.reason.as_deref().unwrap_or_default(),
                e.note.as_deref().unwrap_or_default(),
                e.related.as_ref().and_then(|r| r.name.as_deref()),
                e.series.as_ref().map(|s| s.count)
            )
        })
        .collect();
    for (step, code) in [("lint", "3"), ("unit", "5")] {
        let pod = pod_of(step);
        let event = on_run
            .iter()
            .find(|e| {
                e.reason.as_deref() == Some("StepFailed")
                    && e.related.as_ref().and_then(|r| r.name.as_deref()) == Some(pod.as_str())
            })
            .unwrap_or_else(|| panic!("no StepFailed Event related to {pod}: {described:#?}"));
        let note = event.note.as_deref().unwrap_or_default();
        assert!(
            note.contains(step) && note.contains(&format!("exit {code}")),
            "{note}: {described:#?}"
        );
        assert!(event.series.is_none(), "{described:#?}");
    }
    assert!(
        !on_run
            .iter()
            .any(|e| matches!(e.reason.as_deref(), Some("StepSucceeded" | "StepStarted"))),
        "{described:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn deleting_a_run_deletes_its_pods_and_a_restarted_controller_creates_no_duplicate() {
    let client = cluster::client().await;
    let installed = install_with(
        &client,
        "restart",
        "  - step: first\n    container: main\n    runSeconds: 40\n  - container: main\n    runSeconds: 6\n",
        &[],
    )
    .await;
    let ns = &installed.ns;
    let mut controller = start_controller(&installed, "a");
    create_run(&client, ns, "restart-1").await;
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let running = ListParams::default().labels("c8s.dev/run");
    first_pod(&pods, &controller).await;
    controller.kill();
    // A new replica takes the Lease once the killed one's expires (15 s),
    // while the first step's pod still runs (40 s). A pod that ended while
    // no controller ran is the next test, a known bug.
    let controller = start_controller(&installed, "b");
    wait_phase(&client, ns, "restart-1", "Succeeded", &controller).await;
    assert_eq!(
        cluster::scheduled_pods(&client, ns, "first").await,
        1,
        "no duplicate pod for first"
    );
    assert_eq!(
        cluster::scheduled_pods(&client, ns, "second").await,
        1,
        "one pod for second"
    );

    // Deleting a run in flight: its pods go (the garbage collector, by their
    // owner references); each pod's reference blocks the run's foreground
    // deletion until it is gone. The run carries no finalizer (one would cost
    // every run a write).
    create_run(&client, ns, "restart-2").await;
    cluster::eventually(Duration::from_secs(60), "restart-2's pod", || async {
        pods.list(&running)
            .await
            .ok()?
            .items
            .iter()
            .any(|p| {
                p.metadata.owner_references.iter().flatten().any(|o| {
                    o.name == "restart-2"
                        && o.controller == Some(true)
                        && o.block_owner_deletion == Some(true)
                })
            })
            .then_some(())
    })
    .await;
    let flight = runs(&client, ns).get("restart-2").await.expect("get run");
    assert!(
        flight.metadata.finalizers.as_ref().is_none_or(Vec::is_empty),
        "{:?}",
        flight.metadata.finalizers
    );
    runs(&client, ns)
        .delete("restart-2", &DeleteParams::default())
        .await
        .expect("delete run");
    cluster::eventually(
        Duration::from_secs(60),
        "restart-2 and its pods to be gone",
        || async {
            let left = pods.list(&running).await.ok()?.items;
            let gone = runs(&client, ns).get_opt("restart-2").await.ok()?.is_none();
            (gone
                && !left.iter().any(|p| {
                    p.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.name == "restart-2")
                }))
            .then_some(())
        },
    )
    .await;
    drop(controller);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_finished_run_past_its_ttl_is_deleted_with_its_pods_and_one_without_a_ttl_is_kept() {
    let client = cluster::client().await;
    // The chart's RBAC with a TTL set grants the delete it needs.
    let installed = install_with(
        &client,
        "ttl",
        "  - container: main\n    runSeconds: 1\n",
        &["controller.finishedRunTTL=4s"],
    )
    .await;
    let ns = &installed.ns;
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    // Without --finished-run-ttl a finished run stays.
    let keeper = start_controller(&installed, "a");
    create_run(&client, ns, "kept").await;
    wait_phase(&client, ns, "kept", "Succeeded", &keeper).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        runs(&client, ns).get_opt("kept").await.expect("get").is_some(),
        "a run is kept when no TTL is set"
    );
    drop(keeper);
    let controller = Process::start(
        &installed.controller,
        &controller_args(ns, "a", &["--finished-run-ttl", "4s"]),
    );
    // `kept` finished longer ago than the TTL while no controller had one:
    // deleted when this one starts, as Kubernetes' TTL-after-finished
    // controller deletes the Jobs that expired meanwhile.
    cluster::eventually(Duration::from_secs(60), "kept to be deleted", || async {
        runs(&client, ns)
            .get_opt("kept")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    create_run(&client, ns, "brief").await;
    wait_phase(&client, ns, "brief", "Succeeded", &controller).await;
    let finished: k8s_openapi::jiff::Timestamp =
        run_json(&client, ns, "brief").await["status"]["completionTime"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .expect("completionTime");
    let of_brief = ListParams::default().labels("c8s.dev/run=brief");
    assert!(
        !pods.list(&of_brief).await.expect("pods").items.is_empty(),
        "brief's pods are there while it lives"
    );
    cluster::eventually(
        Duration::from_secs(60),
        "brief and its pods to be gone",
        || async {
            let gone = runs(&client, ns).get_opt("brief").await.ok()?.is_none();
            let left = pods.list(&of_brief).await.ok()?.items;
            (gone && left.is_empty()).then_some(())
        },
    )
    .await;
    let lived = k8s_openapi::jiff::Timestamp::now().duration_since(finished);
    assert!(
        lived >= k8s_openapi::jiff::SignedDuration::from_secs(4),
        "deleted {lived:#} after it finished, before its TTL of 4 s"
    );
    assert!(
        forbidden(&controller.log()).is_empty(),
        "the chart's RBAC refused: {}",
        controller.log()
    );
}

/// A controller that starts after a step's pod ended while no controller
/// ran goes on with the run within a minute of taking the Lease (it once
/// took 70 s to 4 min: the reconciles waiting for the caches to fill were
/// not all woken when they filled).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_controller_started_after_a_step_ended_resumes_the_run_at_once() {
    let client = cluster::client().await;
    let installed = install(&client, "resume-ended").await;
    let ns = &installed.ns;
    let mut controller = start_controller(&installed, "a");
    create_run(&client, ns, "ended-1").await;
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let running = ListParams::default().labels("c8s.dev/run");
    first_pod(&pods, &controller).await;
    controller.kill();
    cluster::eventually(Duration::from_secs(60), "the first step's pod to end", || async {
        pods.list(&running)
            .await
            .ok()?
            .items
            .iter()
            .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded"))
            .then_some(())
    })
    .await;
    let controller = start_controller(&installed, "b");
    let started = std::time::Instant::now();
    wait_phase(&client, ns, "ended-1", "Succeeded", &controller).await;
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "resumed after {:?}:\n{}",
        started.elapsed(),
        controller.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn of_two_replicas_only_the_lease_holder_acts_and_the_other_takes_over() {
    let client = cluster::client().await;
    let installed = install(&client, "lease").await;
    let ns = &installed.ns;
    let leases = Api::<Lease>::namespaced(client.clone(), ns);
    let holder = |leases: Api<Lease>| async move {
        leases
            .get_opt("c8s-controller")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
    };
    let mut a = start_controller(&installed, "replica-a");
    cluster::eventually(Duration::from_secs(30), "replica-a to hold the lease", || async {
        (holder(leases.clone()).await.as_deref() == Some("replica-a")).then_some(())
    })
    .await;
    let b = start_controller(&installed, "replica-b");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(holder(leases.clone()).await.as_deref(), Some("replica-a"));
    assert!(b.log().contains("waiting for the lease"), "{}", b.log());
    a.kill();
    let killed = std::time::Instant::now();
    cluster::eventually(Duration::from_secs(40), "replica-b to take over", || async {
        (holder(leases.clone()).await.as_deref() == Some("replica-b")).then_some(())
    })
    .await;
    assert!(
        killed.elapsed() < Duration::from_secs(15 + 5 + 5),
        "took over after {:?}",
        killed.elapsed()
    );
    create_run(&client, ns, "lease-1").await;
    wait_phase(&client, ns, "lease-1", "Succeeded", &b).await;
}

/// `c8s controller` for the test's namespace, as `identity`, serving its
/// metrics at `address` (port 0: any free port).
fn metered_controller(installed: &Installed, identity: &str, address: &str) -> Process {
    Process::start(
        &installed.controller,
        &[
            "controller",
            "--namespace",
            &installed.ns,
            "--identity",
            identity,
            "--metrics-address",
            address,
        ],
    )
}

/// A free `127.0.0.1:port` for a controller's metrics.
fn free_address() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    format!("127.0.0.1:{port}")
}

/// ResourceQuota `name` in `ns`: `cpus` CPUs of requests.
async fn cpu_quota(client: &Client, ns: &str, name: &str, cpus: &str) {
    let quota: k8s_openapi::api::core::v1::ResourceQuota = serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": { "hard": { "requests.cpu": cpus } }
    }))
    .expect("quota");
    Api::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &quota)
        .await
        .expect("quota created");
}

/// `GET /metrics` of the controller at `address`, with its status line and headers.
fn scrape(address: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    if stream.write_all(request.as_bytes()).is_ok() {
        let _ = stream.read_to_string(&mut answer);
    }
    answer
}

/// The sum of the samples of series `name` in the Prometheus text `text`
/// whose labels include every one of `labels` (`None`: no such series).
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if series_name != name {
            continue;
        }
        let has = |(key, want): &(&str, &str)| {
            series_labels
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .any(|(k, v)| k == *key && v.trim_matches('"') == *want)
        };
        if labels.iter().all(has) {
            let value: f64 = value.parse().unwrap_or(f64::NAN);
            found = Some(found.unwrap_or(0.0) + value);
        }
    }
    found
}

/// Steps of every run of `ns` that ended at or after `since`, with a start
/// time: the ones a controller of that namespace started at `since` measured.
async fn steps_ended_since(client: &Client, ns: &str, since: k8s_openapi::jiff::Timestamp) -> usize {
    let all = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource("PipelineRun"));
    let listed = all.list(&ListParams::default()).await.expect("list runs");
    let time = |step: &Value, field: &str| {
        step[field]
            .as_str()
            .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
    };
    listed
        .items
        .iter()
        .flat_map(|run| {
            run.data["status"]["steps"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|step| matches!(step["phase"].as_str(), Some("Succeeded" | "Failed" | "Skipped")))
        .filter(|step| time(step, "startTime").is_some())
        .filter(|step| time(step, "completionTime").is_some_and(|end| end >= since))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn the_controller_serves_prometheus_metrics_of_runs_steps_reconciles_and_requests() {
    let client = cluster::client().await;
    let installed = install(&client, "metrics").await;
    let ns = &installed.ns;
    let address = free_address();
    // Whole seconds: a step's completionTime written in this second counts.
    let since = k8s_openapi::jiff::Timestamp::from_second(k8s_openapi::jiff::Timestamp::now().as_second())
        .expect("now");
    let controller = metered_controller(&installed, "metrics", &address);
    create_run(&client, ns, "hello-1").await;
    wait_phase(&client, ns, "hello-1", "Succeeded", &controller).await;
    let run = run_json(&client, ns, "hello-1").await;
    let steps = run["status"]["steps"].as_array().cloned().unwrap_or_default();
    assert_eq!(steps.len(), 2, "{run:#}");
    assert!(
        steps
            .iter()
            .all(|s| s["startTime"].is_string() && s["completionTime"].is_string()),
        "a step without its times has no duration: {run:#}"
    );
    // The gauges read the controller's cache, which may trail the run by a watch event.
    let mut text = String::new();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        text = scrape(&address);
        if metric(&text, "c8s_pipelineruns", &[("phase", "Succeeded")]).is_some_and(|n| n >= 1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let context = || format!("{text}\ncontroller log:\n{}", controller.log());
    assert!(text.starts_with("HTTP/1.1 200"), "{}", context());
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        context()
    );
    let succeeded = metric(&text, "c8s_pipelineruns", &[("phase", "Succeeded")]);
    assert!(succeeded.is_some_and(|n| n >= 1.0), "{}", context());
    assert!(
        metric(&text, "c8s_pipelineruns_queued", &[]).is_some(),
        "{}",
        context()
    );
    for verb in ["watch", "list", "create", "patch"] {
        let requests = metric(&text, "c8s_kube_api_requests_total", &[("verb", verb)]);
        assert!(
            requests.is_some_and(|n| n > 0.0),
            "no {verb} requests: {}",
            context()
        );
    }
    // Pods and Events were created: 201.
    let created = metric(
        &text,
        "c8s_kube_api_requests_total",
        &[("verb", "create"), ("code", "201")],
    );
    assert!(created.is_some_and(|n| n > 0.0), "{}", context());
    let reconciles = metric(&text, "c8s_reconcile_duration_seconds_count", &[]);
    assert!(reconciles.is_some_and(|n| n > 0.0), "{}", context());
    // Each step once, whatever the number of reconciles that saw it ended
    // (its 2 steps, and those of any other run this controller finished).
    let measured = metric(&text, "c8s_step_duration_seconds_count", &[]).unwrap_or(0.0);
    let succeeded_steps = metric(
        &text,
        "c8s_step_duration_seconds_count",
        &[("outcome", "Succeeded")],
    )
    .unwrap_or(0.0);
    let ended = steps_ended_since(&client, ns, since).await;
    assert!(ended >= steps.len(), "{ended} steps ended: {run:#}");
    assert_eq!(measured, ended as f64, "{}", context());
    assert!(succeeded_steps >= 2.0, "{}", context());
    assert!(
        reconciles.is_some_and(|n| n > measured),
        "more reconciles than steps: {}",
        context()
    );
    assert!(forbidden(&controller.log()).is_empty(), "{}", controller.log());
}

/// Once the controller holds its Lease and its watches have listed, runs
/// cost it no read at all: the Lease is renewed by replacing what it last
/// wrote, and runs, pods and quota limits come from its watches (a quota is
/// there, so admission has limits to read). A one-step run costs at most 4
/// writes: its pod and three status writes (no finalizer, no Event for a
/// run that succeeds).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_steady_controller_reads_nothing_and_writes_at_most_three_times_a_one_step_run() {
    let client = cluster::client().await;
    // Steps of 1 s: the step's start, seen while it runs, waits for its end
    // to be written with (5 s at most), so a run costs its pod's create and
    // two status writes (the run started, the run ended).
    let installed = install_with(&client, "steady", "  - container: main\n    runSeconds: 1\n", &[]).await;
    let ns = &installed.ns;
    cpu_quota(&client, ns, "roomy", "50").await;
    let address = free_address();
    let controller = metered_controller(&installed, "steady", &address);
    let one_step = json!({
        "name": "one",
        "repository": "https://github.com/octo-org/shop.git",
        // Under a quota of requests.cpu the API server refuses a pod that requests no CPU.
        "steps": [{ "name": "only", "image": "busybox:1.37", "commands": ["true"], "timeout": "5m",
                    "resources": { "requests": { "cpu": "100m" } } }]
    });
    // The first run: the Lease taken, the watches' first lists done.
    create_run_of(&client, ns, "warm", &one_step).await;
    wait_phase(&client, ns, "warm", "Succeeded", &controller).await;
    let before = scrape(&address);
    let runs = 4;
    for i in 0..runs {
        create_run_of(&client, ns, &format!("steady-{i}"), &one_step).await;
    }
    for i in 0..runs {
        wait_phase(&client, ns, &format!("steady-{i}"), "Succeeded", &controller).await;
    }
    // The Lease is renewed every 2 s: the window holds renewals.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = scrape(&address);
    let delta = |verb: &str| {
        let count =
            |text: &str| metric(text, "c8s_kube_api_requests_total", &[("verb", verb)]).unwrap_or(0.0);
        count(&after) - count(&before)
    };
    let context = || {
        format!(
            "before:\n{before}\nafter:\n{after}\ncontroller log:\n{}",
            controller.log()
        )
    };
    assert_eq!((delta("get"), delta("list")), (0.0, 0.0), "{}", context());
    assert!(delta("update") >= 2.0, "the Lease was renewed: {}", context());
    let writes = delta("create") + delta("patch") + delta("delete");
    assert!(
        (2.0 * f64::from(runs)..=3.0 * f64::from(runs)).contains(&writes),
        "{writes} writes for {runs} one-step runs: {}",
        context()
    );
}

/// A finished run is never reconciled again and nothing reads its pods, so
/// the controller's caches leave both out: they hold the runs in flight
/// and their pods, however many finished runs the cluster keeps (without
/// `--finished-run-ttl`, all of them). The run gauges still count the
/// finished runs, and a controller started later lists them without
/// caching them either. The pods themselves stay in the cluster.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn finished_runs_and_their_pods_leave_the_controllers_caches_and_are_still_counted() {
    let client = cluster::client().await;
    let installed = install(&client, "forget").await;
    let ns = &installed.ns;
    let address = free_address();
    let mut controller = metered_controller(&installed, "forget", &address);
    let runs = 3;
    for i in 0..runs {
        create_run(&client, ns, &format!("forget-{i}")).await;
    }
    for i in 0..runs {
        wait_phase(&client, ns, &format!("forget-{i}"), "Succeeded", &controller).await;
    }
    // Forgotten once the cache sees each run end: counted, not held.
    let settled = |address: String, succeeded: f64| async move {
        let started = std::time::Instant::now();
        let mut text = String::new();
        while started.elapsed() < Duration::from_secs(30) {
            text = scrape(&address);
            let cached = |resource| metric(&text, "c8s_cached_objects", &[("resource", resource)]);
            if cached("pods") == Some(0.0)
                && cached("pipelineruns") == Some(0.0)
                && metric(&text, "c8s_pipelineruns", &[("phase", "Succeeded")]) == Some(succeeded)
            {
                return Ok(text);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(text)
    };
    let text = settled(address.clone(), f64::from(runs)).await;
    assert!(text.is_ok(), "{text:?}\ncontroller log:\n{}", controller.log());
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels("c8s.dev/run"))
        .await
        .expect("pods listed");
    assert_eq!(
        pods.items.len(),
        2 * runs as usize,
        "the pods stay in the cluster"
    );
    // A controller started now lists the finished runs and their pods, and
    // caches none of them; a new run still runs.
    controller.kill();
    let address = free_address();
    let controller = metered_controller(&installed, "forget", &address);
    create_run(&client, ns, "forget-late").await;
    wait_phase(&client, ns, "forget-late", "Succeeded", &controller).await;
    let text = settled(address.clone(), f64::from(runs + 1)).await;
    assert!(text.is_ok(), "{text:?}\ncontroller log:\n{}", controller.log());
}

/// A run an earlier controller finished while it still put its finalizer
/// on every run stays in the cache, though finished runs leave it: deleting
/// it needs a reconcile to remove the finalizer, or it would stay
/// Terminating for good.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_finished_run_with_an_earlier_controllers_finalizer_goes_when_deleted() {
    let client = cluster::client().await;
    let installed = install(&client, "legacy").await;
    let ns = &installed.ns;
    let api = runs(&client, ns);
    create_run(&client, ns, "legacy").await;
    let patch = |value: Value| Patch::Merge(value);
    api.patch(
        "legacy",
        &PatchParams::default(),
        &patch(json!({ "metadata": { "finalizers": ["c8s.dev/cleanup"] } })),
    )
    .await
    .expect("finalizer added");
    api.patch_status(
        "legacy",
        &PatchParams::default(),
        &patch(json!({ "status": { "phase": "Succeeded" } })),
    )
    .await
    .expect("status written");
    let controller = start_controller(&installed, "legacy");
    // A second run: once it succeeded, the controller has listed the first.
    create_run(&client, ns, "legacy-next").await;
    wait_phase(&client, ns, "legacy-next", "Succeeded", &controller).await;
    api.delete("legacy", &DeleteParams::default())
        .await
        .expect("delete asked");
    cluster::eventually(Duration::from_secs(30), "the finished run to go", || async {
        matches!(api.get_opt("legacy").await, Ok(None)).then_some(())
    })
    .await;
    assert!(forbidden(&controller.log()).is_empty(), "{}", controller.log());
}

/// Under a ResourceQuota of `requests.cpu` the API server refuses a pod that
/// requests no CPU (403 "must specify requests.cpu"), and would refuse it
/// every time: the step fails `Rejected` with the API server's words, and the
/// run fails, instead of a reconcile retried with backoff forever.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_pod_the_api_server_refuses_for_good_fails_the_run_with_its_words() {
    let client = cluster::client().await;
    let installed = install(&client, "refused").await;
    let ns = &installed.ns;
    cpu_quota(&client, ns, "cpu-only", "50").await;
    let controller = start_controller(&installed, "refused");
    let bare = json!({
        "name": "bare",
        "repository": "https://github.com/octo-org/shop.git",
        "steps": [{ "name": "only", "image": "busybox:1.37", "commands": ["true"] }]
    });
    create_run_of(&client, ns, "bare-1", &bare).await;
    wait_phase(&client, ns, "bare-1", "Failed", &controller).await;
    let run = run_json(&client, ns, "bare-1").await;
    let step = &run["status"]["steps"][0];
    assert_eq!(step["reason"], "Rejected", "{run:#}");
    assert!(
        step["message"]
            .as_str()
            .is_some_and(|m| m.contains("must specify requests.cpu")),
        "{run:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_leader_that_cannot_renew_its_lease_stops_acting_before_the_lease_expires() {
    let client = cluster::client().await;
    let installed = install(&client, "renew").await;
    let ns = &installed.ns;
    // The API server takes every renewal, but the controller never hears an answer.
    let proxy = cluster::proxy::start(
        client.clone(),
        cluster::proxy::Lose {
            method: "PUT",
            path_suffix: "/leases/c8s-controller",
            times: usize::MAX,
        },
        common::temp_dir().join(format!("{}.kubeconfig", cluster::unique_name("proxy"))),
    )
    .await;
    let mut controller = Process::start(
        &proxy.kubeconfig,
        &[
            "controller",
            "--namespace",
            ns,
            "--identity",
            "cut-off",
            ANY_METRICS_PORT,
        ],
    );
    let log = controller.log.clone();
    cluster::eventually(
        Duration::from_secs(30),
        "the controller to hold the lease",
        || {
            let log = log.clone();
            async move {
                std::fs::read_to_string(&log)
                    .ok()?
                    .contains("holding the leader lease")
                    .then_some(())
            }
        },
    )
    .await;
    let held = std::time::Instant::now();
    let status = loop {
        if let Some(status) = controller.ended() {
            break status;
        }
        assert!(
            held.elapsed() < Duration::from_secs(15),
            "still acting 15 s after its last renewal, when another replica may take over:\n{}",
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!status.success(), "{}", controller.log());
    assert!(
        controller.log().contains("stopped acting before it could expire"),
        "{}",
        controller.log()
    );
    assert!(proxy.lost() >= 3, "renewals lost: {}", proxy.lost());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_run_keeps_the_pipeline_it_started_with_when_the_pipeline_is_deleted() {
    let client = cluster::client().await;
    let installed = install(&client, "keeps").await;
    let ns = &installed.ns;
    let pipelines = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource("Pipeline"));
    let pipeline: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "c8s.dev/v1alpha1",
        "kind": "Pipeline",
        "metadata": { "name": "hello" },
        "spec": { "pipeline": two_steps_json() }
    }))
    .expect("pipeline");
    pipelines
        .create(&PostParams::default(), &pipeline)
        .await
        .unwrap_or_else(|e| panic!("create pipeline: {e}"));
    let run: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "c8s.dev/v1alpha1",
        "kind": "PipelineRun",
        "metadata": { "name": "kept-1" },
        "spec": { "pipelineRef": "hello", "branch": "main", "commit": "0123abcd0123abcd0123abcd0123abcd0123abcd", "build": 1 }
    }))
    .expect("run");
    runs(&client, ns)
        .create(&PostParams::default(), &run)
        .await
        .unwrap_or_else(|e| panic!("create run: {e}"));
    let controller = start_controller(&installed, "a");
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    first_pod(&pods, &controller).await;
    pipelines
        .delete("hello", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete pipeline: {e}"));
    wait_phase(&client, ns, "kept-1", "Succeeded", &controller).await;
    let kept = run_json(&client, ns, "kept-1").await;
    assert_eq!(
        kept["status"]["pipelineSpec"]["steps"][1]["name"], "second",
        "{kept:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_controller_started_with_several_runs_waiting_starts_every_one_at_once() {
    // Every run reconciles at once when the controller starts, each waiting
    // for the pod and Job caches' first list; each must go on when it comes.
    let client = cluster::client().await;
    let installed = install(&client, "many").await;
    let ns = &installed.ns;
    let names = ["many-1", "many-2", "many-3", "many-4"];
    for name in names {
        create_run(&client, ns, name).await;
    }
    let controller = start_controller(&installed, "a");
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let started = std::time::Instant::now();
    loop {
        let listed = pods
            .list(&ListParams::default().labels("c8s.dev/run"))
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let waiting: Vec<&str> = names
            .iter()
            .copied()
            .filter(|run| {
                !listed.iter().any(|p| {
                    p.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("c8s.dev/run"))
                        .map(String::as_str)
                        == Some(*run)
                })
            })
            .collect();
        if waiting.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "runs without a pod 45 s after the controller started: {waiting:?}\ncontroller log:\n{}",
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for name in names {
        wait_phase(&client, ns, name, "Succeeded", &controller).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs cluster"]
async fn the_namespace_limit_holds_when_runs_are_admitted_at_once() {
    // Three runs wait when the controller starts; it reconciles them at the
    // same time, and with a limit of one only one may be Running at a time.
    let client = cluster::client().await;
    let installed = install(&client, "limit").await;
    let ns = &installed.ns;
    let names = ["limit-1", "limit-2", "limit-3"];
    for name in names {
        create_run(&client, ns, name).await;
    }
    let controller = Process::start(
        &installed.controller,
        &controller_args(
            ns,
            "a",
            &["--max-running-per-namespace", "1", "--log-format", "json"],
        ),
    );
    let started = std::time::Instant::now();
    let mut most = 0;
    loop {
        let mut phases = Vec::new();
        for name in names {
            phases.push(phase(&client, ns, name).await.unwrap_or_default());
        }
        let running = phases.iter().filter(|p| *p == "Running").count();
        most = most.max(running);
        assert!(
            running <= 1,
            "{running} runs Running at once with a limit of 1: {phases:?}\ncontroller log:\n{}",
            controller.log()
        );
        if phases.iter().all(|p| p == "Succeeded") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "not every run succeeded in 180 s: {phases:?}\ncontroller log:\n{}",
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(most, 1, "no run was ever seen Running");
    // A queued run starts when the slot frees, not at its next poll (30 s):
    // each run starts within seconds of the one before it ending.
    let mut spans = Vec::new();
    for name in names {
        let run = run_json(&client, ns, name).await;
        let at = |field: &str| -> k8s_openapi::jiff::Timestamp {
            run["status"][field]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("{name} has no {field}: {run:#}"))
        };
        spans.push((at("startTime"), at("completionTime")));
    }
    spans.sort();
    for pair in spans.windows(2) {
        let waited = pair[1].0.duration_since(pair[0].1);
        assert!(
            waited < k8s_openapi::jiff::SignedDuration::from_secs(10),
            "a queued run started {waited:#} after the slot freed: {spans:?}\ncontroller log:\n{}",
            controller.log()
        );
    }
    // `--log-format json`: every line is one JSON object a log pipeline reads.
    let log = controller.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the controller logged nothing");
    for line in lines {
        let parsed: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            parsed["level"].is_string() && parsed["timestamp"].is_string(),
            "{line}"
        );
    }
}

/// Reads a pipeline's `sidecarFiles` from its directory.
struct Beside<'a>(&'a Path);

impl c8s_pipeline_model::SourceReader for Beside<'_> {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.0.join(path))
    }
}

/// Every example pipeline, embedded in a Pipeline as a person writes one and
/// applied with `kubectl apply` (a YAML 1.1 reader: the key `on` would become
/// `true`), reads back as c8s reads the file: the same steps and retries.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn every_example_pipeline_survives_kubectl_apply() {
    let client = cluster::client().await;
    let installed = install(&client, "kubectl").await;
    let ns = &installed.ns;
    let examples = common::workspace().join("examples/pipelines");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&examples)
        .expect("examples")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".c8s.yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let pipelines = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource("Pipeline"));
    for file in files {
        let text = std::fs::read_to_string(&file).expect("example");
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".c8s.yaml"))
            .expect("name")
            .to_owned();
        let indented: String = text.lines().map(|l| format!("    {l}\n")).collect();
        let manifest = common::temp_dir().join(format!("{}.yaml", cluster::unique_name(&name)));
        std::fs::write(
            &manifest,
            format!("apiVersion: c8s.dev/v1alpha1\nkind: Pipeline\nmetadata:\n  name: {name}\nspec:\n  pipeline:\n{indented}"),
        )
        .expect("manifest");
        let output = Command::new(common::tool("kubectl"))
            .env("KUBECONFIG", cluster::kubeconfig())
            .args(["apply", "--namespace", ns, "-f"])
            .arg(&manifest)
            .output()
            .expect("kubectl runs");
        assert!(
            output.status.success(),
            "kubectl apply {name}: {}",
            explain(&output)
        );
        let stored = pipelines
            .get(&name)
            .await
            .unwrap_or_else(|e| panic!("get {name}: {e}"));
        let read: c8s_pipeline_model::Pipeline =
            serde_json::from_value(stored.data["spec"]["pipeline"].clone())
                .unwrap_or_else(|e| panic!("{name} as kubectl stored it: {e}\n{:#}", stored.data["spec"]));
        let written =
            c8s_pipeline_model::parse_pipeline(file.to_str().expect("path"), &text, &Beside(&examples))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(read.retries, written.retries, "{name}");
        let steps = |p: &c8s_pipeline_model::Pipeline| {
            p.steps
                .iter()
                .map(|s| (s.name.clone(), s.retries.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(steps(&read), steps(&written), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn run_in_cluster_twice_makes_two_runs_each_followed_to_its_end() {
    let client = cluster::client().await;
    let installed = install(&client, "incluster").await;
    let ns = &installed.ns;
    let controller = start_controller(&installed, "a");
    let file = common::temp_file(&format!("{}.c8s.yaml", cluster::unique_name("hello")), TWO_STEPS);
    let run = || {
        common::command()
            .env("KUBECONFIG", cluster::kubeconfig())
            .args([
                "run",
                file.to_str().expect("path"),
                "--in-cluster",
                "--namespace",
                ns,
                "--branch",
                "main",
            ])
            .output()
            .expect("c8s runs")
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}\ncontroller:\n{}",
        explain(&first),
        controller.log()
    );
    let second = run();
    assert!(
        second.status.success(),
        "{}\ncontroller:\n{}",
        explain(&second),
        controller.log()
    );
    assert!(
        !common::text(&second.stderr).contains("exists; following it"),
        "{}",
        explain(&second)
    );
    let all = runs(&client, ns)
        .list(&ListParams::default())
        .await
        .expect("runs");
    assert_eq!(
        all.items.len(),
        2,
        "two PipelineRuns: {:?}",
        all.items
            .iter()
            .map(|r| r.metadata.name.clone())
            .collect::<Vec<_>>()
    );
    for r in &all.items {
        assert_eq!(r.data["status"]["phase"], "Succeeded", "{:#}", r.data);
    }
    // `c8s get runs` lists both; `c8s logs` reads a step's log through the
    // API server's pods/log path (the steps' pods are kept until the run is
    // deleted).
    let c8s = |args: &[&str]| {
        common::command()
            .env("KUBECONFIG", cluster::kubeconfig())
            .args(args)
            .output()
            .expect("c8s runs")
    };
    let listed = c8s(&["get", "runs", "-n", ns]);
    assert!(listed.status.success(), "{}", explain(&listed));
    let table = common::text(&listed.stdout);
    for r in &all.items {
        let name = r.metadata.name.as_deref().expect("name");
        assert!(
            table.lines().any(|l| l.contains(name) && l.contains("Succeeded")),
            "{name} in:\n{table}"
        );
    }
    let name = all.items[0].metadata.name.clone().expect("name");
    let logs = c8s(&["logs", &name, "-n", ns]);
    assert!(logs.status.success(), "{}", explain(&logs));
    assert!(
        common::text(&logs.stdout).contains("main says hello"),
        "{}",
        explain(&logs)
    );
}

fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// A Pipeline `name` in `ns` triggered through connection `connection` by
/// pushes of `repository` (`owner/name` on github.com) to `main`.
async fn triggered_pipeline(client: &Client, ns: &str, name: &str, connection: &str, repository: &str) {
    let pipelines = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource("Pipeline"));
    let definition = two_steps_json();
    let pipeline: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "c8s.dev/v1alpha1", "kind": "Pipeline",
        "metadata": { "name": name },
        "spec": { "pipeline": definition, "trigger": {
            "connection": connection,
            "repository": format!("https://github.com/{repository}.git"),
            "branches": ["main"]
        } }
    }))
    .expect("pipeline");
    pipelines
        .create(&PostParams::default(), &pipeline)
        .await
        .expect("pipeline created");
}

/// A GitHub RepositoryConnection `name` in `ns` whose webhook secret is key
/// `secret` of Secret `secret_name`.
async fn github_connection(client: &Client, ns: &str, name: &str, secret_name: &str) {
    let connections =
        Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource("RepositoryConnection"));
    let connection: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "c8s.dev/v1alpha1", "kind": "RepositoryConnection",
        "metadata": { "name": name },
        "spec": { "provider": "github", "webhookSecret": { "name": secret_name, "key": "secret" } }
    }))
    .expect("connection");
    connections
        .create(&PostParams::default(), &connection)
        .await
        .expect("connection created");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_signed_push_creates_one_run_and_a_bad_signature_or_redelivery_creates_nothing() {
    let client = cluster::client().await;
    let installed = install(&client, "hooks").await;
    let ns = &installed.ns;
    // The webhook watches the connections and pipelines of every namespace:
    // the repositories, the secret and the delivery ids are this test's own.
    let secret = cluster::unique_name("hook-secret");
    let repository = format!("octo-org/{}", cluster::unique_name("shop"));
    let (d1, d2, d3) = (
        cluster::unique_name("delivery"),
        cluster::unique_name("delivery"),
        cluster::unique_name("delivery"),
    );
    // `c8s-webhook` is the chart's default `webhook.secretNames`: the only
    // Secret name its RBAC lets the webhook read.
    cluster::secret(&client, ns, "c8s-webhook", &[("secret", &secret)]).await;
    github_connection(&client, ns, "shop-hooks", "c8s-webhook").await;
    triggered_pipeline(&client, ns, "shop", "shop-hooks", &repository).await;
    // A connection naming a Secret outside that set: its deliveries cannot be verified.
    let outside = format!("octo-org/{}", cluster::unique_name("outside"));
    cluster::secret(&client, ns, "shop-webhook", &[("secret", &secret)]).await;
    github_connection(&client, ns, "outside-hooks", "shop-webhook").await;
    triggered_pipeline(&client, ns, "outside", "outside-hooks", &outside).await;

    let port = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        socket.local_addr().expect("address").port()
    };
    let listen = format!("127.0.0.1:{port}");
    let webhook = Process::start(&installed.webhook, &["webhook", "--listen", &listen]);
    let url = format!("http://{listen}/hooks/github");
    let push_of = |repository: &str| {
        json!({
            "ref": "refs/heads/main",
            "after": "9f2c1d4e5b6a7980a1b2c3d4e5f60718293a4b5c",
            "repository": { "full_name": repository, "clone_url": format!("https://github.com/{repository}.git") },
            "head_commit": { "id": "9f2c1d4e5b6a7980a1b2c3d4e5f60718293a4b5c" }
        })
        .to_string()
    };
    let body = push_of(&repository);
    let post = |body: &str, signature: String, delivery: &str| {
        let output = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", &url])
            .args([
                "-H",
                "Content-Type: application/json",
                "-H",
                "X-GitHub-Event: push",
            ])
            .args(["-H", &format!("X-GitHub-Delivery: {delivery}")])
            .args(["-H", &format!("X-Hub-Signature-256: {signature}")])
            .args(["--data-binary", body])
            .output()
            .expect("curl runs");
        common::text(&output.stdout)
    };
    cluster::eventually(Duration::from_secs(30), "the webhook to listen", || async {
        std::net::TcpStream::connect(&listen).ok().map(|_| ())
    })
    .await;
    assert_eq!(
        post(&body, sign("wrong secret", body.as_bytes()), &d1),
        "401",
        "{}",
        webhook.log()
    );
    let unknown = push_of(&format!("octo-org/{}", cluster::unique_name("unknown")));
    assert_eq!(
        post(&unknown, sign(&secret, unknown.as_bytes()), &d1),
        "401",
        "{}",
        webhook.log()
    );
    assert!(
        runs(&client, ns)
            .list(&ListParams::default())
            .await
            .expect("runs")
            .items
            .is_empty()
    );
    let good = sign(&secret, body.as_bytes());
    assert_eq!(post(&body, good.clone(), &d2), "201", "{}", webhook.log());
    assert_eq!(
        post(&body, good.clone(), &d2),
        "200",
        "redelivery: {}",
        webhook.log()
    );
    // The Git host's "redeliver" may give a fresh delivery id: still one run.
    assert_eq!(
        post(&body, good, &d3),
        "200",
        "redelivery with a fresh id: {}",
        webhook.log()
    );
    let all = runs(&client, ns)
        .list(&ListParams::default())
        .await
        .expect("runs")
        .items;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        all[0].data["spec"]["commit"],
        "9f2c1d4e5b6a7980a1b2c3d4e5f60718293a4b5c"
    );
    let labels = all[0].metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("c8s.dev/commit").map(String::as_str),
        Some("9f2c1d4e5b6a7980a1b2c3d4e5f60718293a4b5c")
    );
    assert_eq!(labels.get("c8s.dev/pipeline").map(String::as_str), Some("shop"));
    assert!(forbidden(&webhook.log()).is_empty(), "{}", webhook.log());

    // Least privilege, as the webhook's own ServiceAccount: its Secret by
    // name, no other Secret, no listing, no pods.
    let as_webhook = client_for(&installed.webhook).await;
    let secrets = Api::<Secret>::namespaced(as_webhook.clone(), ns);
    secrets
        .get("c8s-webhook")
        .await
        .expect("the named webhook Secret");
    let refused = |result: Result<_, kube::Error>, what: &str| match result {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{what}: {status:?}"),
        Err(other) => panic!("{what}: {other:?}"),
        Ok(_) => panic!("{what}: allowed"),
    };
    refused(
        secrets.get("shop-webhook").await.map(|_| ()),
        "get secret shop-webhook",
    );
    refused(
        secrets.list(&ListParams::default()).await.map(|_| ()),
        "list secrets",
    );
    refused(
        Api::<Pod>::namespaced(as_webhook, ns)
            .list(&ListParams::default())
            .await
            .map(|_| ()),
        "list pods",
    );
    // The webhook itself cannot read the Secret outside the set: 503, nothing created.
    let body = push_of(&outside);
    assert_eq!(
        post(&body, sign(&secret, body.as_bytes()), &d1),
        "503",
        "{}",
        webhook.log()
    );
    assert!(
        !forbidden(&webhook.log()).is_empty(),
        "the webhook logs the refused read: {}",
        webhook.log()
    );
    let all = runs(&client, ns)
        .list(&ListParams::default())
        .await
        .expect("runs")
        .items;
    assert_eq!(all.len(), 1, "{all:?}");
}

/// Deletes a cluster-scoped ValidatingWebhookConfiguration when the test
/// ends, whatever happens: one left behind with `failurePolicy: Fail` would
/// refuse the Pipelines of every later test once its webhook is gone.
struct WebhookConfiguration(String);

impl Drop for WebhookConfiguration {
    fn drop(&mut self) {
        let _ = Command::new(common::tool("kubectl"))
            .env("KUBECONFIG", cluster::kubeconfig())
            .args([
                "delete",
                "validatingwebhookconfiguration",
                &self.0,
                "--ignore-not-found",
            ])
            .output();
    }
}

/// A CA and a serving certificate for the IP address 127.0.0.1 signed by
/// it, made with the `openssl` command in `dir`: (CA PEM, cert file, key file).
fn serving_certificate(dir: &Path) -> (String, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(output.status.success(), "openssl {args:?}: {}", explain(&output));
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509", "-days", "1", "-subj", "/CN=c8s-admission-test-ca"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.crt"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req", "-subj", "/CN=127.0.0.1"][..],
            &ec,
            &["-keyout", "tls.key", "-out", "tls.csr"],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext.cnf");
    openssl(&[
        "x509",
        "-req",
        "-days",
        "1",
        "-in",
        "tls.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-extfile",
        "ext.cnf",
        "-out",
        "tls.crt",
    ]);
    let ca = std::fs::read_to_string(dir.join("ca.crt")).expect("ca.crt");
    (ca, dir.join("tls.crt"), dir.join("tls.key"))
}

/// `kubectl apply` of a Pipeline manifest as a person writes it (kubectl
/// reads YAML 1.1: a key `on:` becomes `"true"`).
fn kubectl_apply(ns: &str, name: &str, pipeline: &str) -> std::process::Output {
    let indented: String = pipeline.lines().map(|l| format!("    {l}\n")).collect();
    let manifest = common::temp_file(
        &format!("{}.yaml", cluster::unique_name(name)),
        format!(
            "apiVersion: c8s.dev/v1alpha1\nkind: Pipeline\nmetadata:\n  name: {name}\nspec:\n  pipeline:\n{indented}"
        ),
    );
    Command::new(common::tool("kubectl"))
        .env("KUBECONFIG", cluster::kubeconfig())
        .args(["apply", "--namespace", ns, "-f"])
        .arg(&manifest)
        .output()
        .expect("kubectl runs")
}

/// `c8s webhook --admission-address` registered as a validating admission
/// webhook (by URL, for this test's namespace only): `kubectl apply` of a
/// Pipeline whose `retries.on` kubectl turned into `true` is refused with a
/// message naming the field; a valid one is created; a run that requests
/// more than the namespace's ResourceQuota allows is refused (422); a run by
/// `pipelineRef` is admitted.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn the_admission_webhook_refuses_a_pipeline_kubectl_broke_and_admits_a_valid_one() {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;

    let client = cluster::client().await;
    let installed = install(&client, "admission").await;
    let ns = &installed.ns;
    let dir = common::temp_dir().join(cluster::unique_name("admission-tls"));
    std::fs::create_dir_all(&dir).expect("tls dir");
    let (ca, cert, key) = serving_certificate(&dir);
    let free_port = || {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        socket.local_addr().expect("address").port()
    };
    let listen = format!("127.0.0.1:{}", free_port());
    let admission = format!("127.0.0.1:{}", free_port());
    let webhook = Process::start(
        &installed.webhook,
        &[
            "webhook",
            "--listen",
            &listen,
            "--admission-address",
            &admission,
            "--tls-cert-file",
            cert.to_str().expect("path"),
            "--tls-key-file",
            key.to_str().expect("path"),
        ],
    );
    cluster::eventually(Duration::from_secs(30), "the admission listener", || async {
        std::net::TcpStream::connect(&admission).ok().map(|_| ())
    })
    .await;

    let name = cluster::unique_name("c8s-admission-test");
    let _guard = WebhookConfiguration(name.clone());
    let configuration: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": { "name": name },
        "webhooks": [{
            "name": "validate.c8s.dev",
            "clientConfig": {
                "url": format!("https://{admission}/validate"),
            },
            "rules": [{
                "apiGroups": ["c8s.dev"], "apiVersions": ["v1alpha1"],
                "resources": ["pipelines", "pipelineruns"],
                "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"
            }],
            "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": ns } },
            // As the chart: an update that leaves the spec alone (the
            // controller's finalizer) never waits for the webhook.
            "matchConditions": [{
                "name": "spec-written",
                "expression": "request.operation == 'CREATE' || object.spec != oldObject.spec"
            }],
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 10
        }]
    }))
    .expect("configuration");
    let mut configuration = configuration;
    for hook in configuration.webhooks.iter_mut().flatten() {
        hook.client_config.ca_bundle = Some(k8s_openapi::ByteString(ca.clone().into_bytes()));
    }
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &configuration)
        .await
        .unwrap_or_else(|e| panic!("create the ValidatingWebhookConfiguration: {e}"));

    let broken = "name: broken\nrepository: https://github.com/octo-org/shop.git\n\
                  retries: {limit: 1, on: [infrastructure]}\n\
                  steps:\n  - name: test\n    image: busybox:1.37\n    commands: [\"true\"]\n";
    let pipelines = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource("Pipeline"));
    // The API server picks the configuration up from its informer: until
    // then the broken Pipeline is still stored (and deleted again here).
    let refused = cluster::eventually(Duration::from_secs(60), "the webhook to refuse", || async {
        let output = kubectl_apply(ns, "broken", broken);
        if output.status.success() {
            let _ = pipelines.delete("broken", &DeleteParams::default()).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            return None;
        }
        Some(output)
    })
    .await;
    let said = common::text(&refused.stderr);
    assert!(
        said.contains("denied the request")
            && said.contains("spec.pipeline.retries.true: unknown field `true`"),
        "{}\nwebhook log:\n{}",
        explain(&refused),
        webhook.log()
    );
    assert!(said.contains("write `when` for `retries.on`"), "{said}");
    // `spec.pipeline:LINE:COLUMN:` in the YAML the webhook read.
    assert!(
        said.lines().any(|l| l
            .split("spec.pipeline:")
            .nth(1)
            .and_then(|rest| rest.split(": ").next())
            .and_then(|at| at.split_once(':'))
            .is_some_and(|(line, column)| line.parse::<u32>().is_ok() && column.parse::<u32>().is_ok())),
        "{said}"
    );
    assert!(pipelines.get_opt("broken").await.expect("get").is_none());

    let valid = broken.replace("on: [infrastructure]", "when: [infrastructure]");
    let created = kubectl_apply(ns, "valid", &valid);
    assert!(
        created.status.success(),
        "{}\nwebhook log:\n{}",
        explain(&created),
        webhook.log()
    );
    let stored = pipelines.get("valid").await.expect("the valid Pipeline");
    assert_eq!(
        stored.data["spec"]["pipeline"]["retries"],
        json!({ "limit": 1, "when": ["infrastructure"] })
    );
    assert!(webhook.log().contains("admission denied"), "{}", webhook.log());

    // The quota pre-check, with the chart's `resourcequotas` rule (granted
    // here in the namespace: this install has admission off): a run whose
    // step requests 2 CPUs where the namespace allows 1 in all could never
    // start, and is refused.
    let account = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("service accounts")
        .items
        .into_iter()
        .filter_map(|a| a.metadata.name)
        .find(|n| n.ends_with("-webhook"))
        .expect("the chart's webhook ServiceAccount");
    let role: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(json!({
        "metadata": { "name": "admission-quotas" },
        "rules": [{ "apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["list"] }]
    }))
    .expect("role");
    Api::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("role created");
    let binding: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "admission-quotas" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "admission-quotas" },
        "subjects": [{ "kind": "ServiceAccount", "name": account, "namespace": ns }]
    }))
    .expect("binding");
    Api::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding created");
    cpu_quota(&client, ns, "small", "1").await;
    let mut greedy = two_steps_json();
    greedy["steps"][0]["resources"] = json!({ "requests": { "cpu": "2" } });
    let run = |name: &str, spec: Value| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "c8s.dev/v1alpha1", "kind": "PipelineRun",
            "metadata": { "name": name }, "spec": spec
        }))
        .expect("run")
    };
    let greedy_run = run(
        "greedy",
        json!({ "pipeline": greedy, "branch": "main", "build": 1 }),
    );
    // RBAC takes effect at once; retry briefly all the same.
    let status = cluster::eventually(Duration::from_secs(30), "the quota refusal", || async {
        match runs(&client, ns)
            .create(&PostParams::default(), &greedy_run)
            .await
        {
            Err(kube::Error::Api(status)) if status.message.contains("quota") => Some(status),
            Err(other) => panic!("create greedy run: {other:?}\n{}", webhook.log()),
            Ok(_) => {
                let _ = runs(&client, ns).delete("greedy", &DeleteParams::default()).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                None
            }
        }
    })
    .await;
    assert_eq!(status.code, 422, "{status:?}");
    // 2 CPUs and the step's helper containers: its peak as the controller counts it.
    assert!(
        status
            .message
            .contains("would exceed cpu quota: 2050m requested, 1 allowed"),
        "{status:?}"
    );
    // A run by pipelineRef is the controller's to resolve: admitted.
    runs(&client, ns)
        .create(
            &PostParams::default(),
            &run(
                "by-ref",
                json!({ "pipelineRef": "valid", "branch": "main", "build": 2 }),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("create a run by pipelineRef: {e}\n{}", webhook.log()));
    // Nothing left for the controllers of later tests (they act in every
    // namespace): the run would fail there on this namespace's quota.
    runs(&client, ns)
        .delete("by-ref", &DeleteParams::default())
        .await
        .expect("delete the run by pipelineRef");
    Api::<k8s_openapi::api::core::v1::ResourceQuota>::namespaced(client.clone(), ns)
        .delete("small", &DeleteParams::default())
        .await
        .expect("delete the quota");
}

/// A token the simulated `main` prints, as a careless script would.
const ARCHIVE_TOKEN: &str = "tok-9xQ2vL7rT4mW8kZ1pB6nY3cD";

/// Runs in `./ci.sh`'s log-archive step (it needs `scripts/s3/up.sh`'s
/// server too): the filter picks test names with `archives_`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane and s3"]
async fn the_controller_archives_each_ended_steps_log_masked_and_c8s_logs_reads_it_once_the_pod_is_gone() {
    use cluster::s3::{create_bucket, var};
    let client = cluster::client().await;
    let bucket = cluster::unique_name("c8s-ctl-logs");
    create_bucket(&bucket);
    let endpoint = var("C8S_TEST_S3_ENDPOINT");
    let rules = format!(
        "  - {{ step: first, container: main, runSeconds: 1, logs: [\"using {ARCHIVE_TOKEN}\", \"made\"] }}
  - {{ step: second, container: main, runSeconds: 1, exitCode: 2, logs: [\"no file\"] }}
"
    );
    // The chart with the archive on: its RBAC lets the controller read Secrets.
    let installed = install_with(
        &client,
        "archive",
        &rules,
        &[
            &format!("controller.logArchive.bucket={bucket}"),
            "controller.logArchive.credentialsSecret=c8s-archive",
            "dashboard.enabled=true",
        ],
    )
    .await;
    let ns = &installed.ns;
    cluster::secret(&client, ns, "deploy", &[("token", ARCHIVE_TOKEN)]).await;
    let credentials = cluster::s3::credentials_env();
    let archive_flags = [
        "--log-archive-bucket",
        &bucket,
        "--log-archive-endpoint",
        &endpoint,
    ];
    let mut args = vec![
        "controller",
        "--namespace",
        ns,
        "--identity",
        "archiver",
        ANY_METRICS_PORT,
    ];
    args.extend(archive_flags);
    let mut controller = Process::start_with(&installed.controller, &args, &credentials);

    let mut pipeline = two_steps_json();
    pipeline["steps"][0]["secrets"] = json!([{ "secretRef": "deploy", "key": "token", "envVar": "TOKEN" }]);
    create_run_of(&client, ns, "archived-1", &pipeline).await;
    wait_phase(&client, ns, "archived-1", "Failed", &controller).await;
    let run = run_json(&client, ns, "archived-1").await;
    // Steps are named by their objects, `<pipeline>-<step>-b<build>-<hash>`.
    let step = |name: &str| {
        let infix = format!("-{name}-b");
        run["status"]["steps"]
            .as_array()
            .and_then(|s| {
                s.iter()
                    .find(|s| s["name"].as_str().is_some_and(|n| n.contains(&infix)))
            })
            .cloned()
            .unwrap_or_else(|| panic!("no step {name}: {run:#}"))
    };

    let mut settings = c8s_kube::archive::ArchiveSettings::new(
        &bucket,
        c8s_kube::archive::Credentials::new(&credentials[0].1, &credentials[1].1),
    );
    settings.endpoint = Some(endpoint.clone());
    settings.prefix = "c8s".into();
    let archive = c8s_kube::archive::Archive::new(settings).expect("archive");
    for (name, text) in [("first", "using ***\nmade\n"), ("second", "no file\n")] {
        let step = step(name);
        assert!(
            step["logArchiveError"].is_null(),
            "{step:#}\n{}",
            controller.log()
        );
        let logs = step["archivedLogs"].as_array().cloned().unwrap_or_default();
        let main = logs
            .iter()
            .find(|l| l["container"] == "main")
            .unwrap_or_else(|| panic!("no archived main log: {step:#}\n{}", controller.log()));
        let key = main["key"].as_str().expect("key");
        let object = step["name"].as_str().expect("name");
        assert_eq!(key, format!("c8s/{ns}/archived-1/{object}/0/main.log"));
        assert_eq!(main["url"], format!("{endpoint}/{bucket}/{key}"));
        let stored = archive.fetch(key).await.expect("the archived log");
        assert_eq!(String::from_utf8_lossy(&stored), text, "{name}");
    }
    // The failed step's other containers were stored too (the artifact
    // helper ran before main failed; what it logged is kept).
    let second = step("second");
    let containers: Vec<&str> = second["archivedLogs"]
        .as_array()
        .map(|l| l.iter().filter_map(|l| l["container"].as_str()).collect())
        .unwrap_or_default();
    assert!(containers.contains(&"main"), "{second:#}");

    // The chart's dashboard, with its read-only ServiceAccount: the run is
    // listed; the live log of `first`, whose pod references a Secret it may
    // not read, is withheld, never shown unmasked.
    let dashboard_kubeconfig = installed.dashboard.clone().expect("the chart's dashboard");
    let mut dashboard_args = vec!["dashboard", "--all-namespaces", "--address", "127.0.0.1:0"];
    dashboard_args.extend(archive_flags);
    let mut dashboard = Process::start_with(&dashboard_kubeconfig, &dashboard_args, &credentials);
    let base = loop {
        if let Some(line) = dashboard
            .log()
            .lines()
            .find(|l| l.contains("dashboard on http://"))
        {
            let address = line
                .split("http://")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .unwrap_or_default();
            break format!("http://{address}");
        }
        assert!(
            dashboard.ended().is_none(),
            "the dashboard exited: {}",
            dashboard.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let list = http_get(&format!("{base}/"));
    assert!(
        list.contains(&format!("{ns}/archived-1")),
        "{list}
{}",
        dashboard.log()
    );
    let first = step("first");
    let log_url = format!(
        "{base}/runs/{ns}/archived-1/steps/{}/log",
        first["name"].as_str().expect("name")
    );
    let live = http_get(&log_url);
    assert!(live.contains("(log withheld: cannot read Secret"), "{live}");
    assert!(!live.contains(ARCHIVE_TOKEN), "{live}");

    // The pods go; `c8s logs` and the dashboard read the archive instead.
    cluster::delete_step_pods(&client, ns).await;
    let archived = http_get(&log_url);
    assert!(archived.contains("from the log archive"), "{archived}");
    assert!(archived.contains("using ***"), "{archived}");
    assert!(!archived.contains(ARCHIVE_TOKEN), "{archived}");
    assert!(forbidden(&dashboard.log()).is_empty(), "{}", dashboard.log());
    let logs = |flags: &[&str]| {
        common::command()
            .env("KUBECONFIG", cluster::kubeconfig())
            .envs(credentials.iter().map(|(k, v)| (*k, v.as_str())))
            .args(["logs", "archived-1", "--namespace", ns, "--step", "first"])
            .args(flags)
            .output()
            .expect("c8s logs runs")
    };
    let read = logs(&archive_flags);
    assert!(read.status.success(), "{}", explain(&read));
    let out = common::text(&read.stdout);
    assert!(
        out.contains("-first-b1-") && out.contains("#0 main] using ***"),
        "{}",
        explain(&read)
    );
    assert!(!explain(&read).contains(ARCHIVE_TOKEN), "{}", explain(&read));
    // Without the archive's settings it says where the log is.
    let told = logs(&[]);
    assert!(
        common::text(&told.stderr).contains(&format!("its log is archived at {endpoint}/{bucket}/")),
        "{}",
        explain(&told)
    );
    assert!(forbidden(&controller.log()).is_empty(), "{}", controller.log());

    // An archive whose bucket does not exist: each step says so, and the run
    // ends as it would without an archive (second fails, first succeeds).
    controller.kill();
    let missing = format!("{bucket}-missing");
    let mut args = vec![
        "controller",
        "--namespace",
        ns,
        "--identity",
        "archiver-2",
        ANY_METRICS_PORT,
    ];
    args.extend([
        "--log-archive-bucket",
        &missing,
        "--log-archive-endpoint",
        &endpoint,
    ]);
    let controller = Process::start_with(&installed.controller, &args, &credentials);
    create_run_of(&client, ns, "archived-2", &pipeline).await;
    wait_phase(&client, ns, "archived-2", "Failed", &controller).await;
    let run = run_json(&client, ns, "archived-2").await;
    let steps = run["status"]["steps"].as_array().cloned().unwrap_or_default();
    let phases: Vec<&str> = steps.iter().filter_map(|s| s["phase"].as_str()).collect();
    assert_eq!(phases, ["Succeeded", "Failed"], "{run:#}");
    for step in &steps {
        assert!(step["archivedLogs"].is_null(), "{step:#}");
        let error = step["logArchiveError"].as_str().unwrap_or_default();
        assert!(
            error.contains(&missing) && error.contains("does not exist"),
            "{step:#}"
        );
    }
}

/// How many runs of `ns` carry a `Queued=True` condition.
async fn queued_runs(client: &Client, ns: &str) -> usize {
    let listed = runs(client, ns)
        .list(&ListParams::default())
        .await
        .expect("list runs");
    listed
        .items
        .iter()
        .filter(|r| {
            r.data["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "Queued" && c["status"] == "True"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn a_namespace_flooded_with_runs_does_not_hold_up_another_namespaces_run() {
    // One controller for two namespaces (an instance of its own, so it
    // touches no other test's runs), 4 reconciles at once and 5 requests a
    // second (client-go's default QPS). Namespace `flood` has 200 runs and
    // room for one: the other 199 are each told, with a status write, that
    // they are queued — 40 s of the request budget. A run of namespace
    // `quiet`, created once the flood is being worked off, takes its turn
    // at the next free slot: its pod comes while most of the flood is still
    // to be told. Served in the order they were woken, it came after all.
    let client = cluster::client().await;
    let flood = install(&client, "flood").await;
    let quiet = cluster::namespace(&client, "quiet").await;
    cluster::script(
        &client,
        &quiet,
        "containers:\n  - container: main\n    runSeconds: 2\n",
    )
    .await;
    let instance = cluster::unique_name("fair");
    let pipeline = json!({
        "name": "one",
        "repository": "https://github.com/octo-org/shop.git",
        "steps": [{ "name": "main", "image": "busybox:1.37", "commands": ["true"], "timeout": "5m" }]
    });
    let labels = json!({ "c8s.dev/controller-instance": instance });
    const FLOOD: usize = 200;
    for i in 0..FLOOD {
        create_run_labelled(
            &client,
            &flood.ns,
            &format!("f-{i}"),
            &pipeline,
            json!({}),
            labels.clone(),
        )
        .await;
    }
    let kubeconfig = cluster::kubeconfig();
    let controller = Process::start(
        &kubeconfig,
        &[
            "controller",
            "--instance-id",
            &instance,
            "--lease-namespace",
            &flood.ns,
            "--identity",
            "a",
            ANY_METRICS_PORT,
            "--max-running-per-namespace",
            "1",
            "--concurrency",
            "4",
            "--kube-qps",
            "5",
            "--kube-burst",
            "5",
        ],
    );
    // The flood is being worked off.
    let started = std::time::Instant::now();
    while queued_runs(&client, &flood.ns).await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no flood run was queued in 120 s\ncontroller log:\n{}",
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    create_run_labelled(&client, &quiet, "q-0", &pipeline, json!({}), labels).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &quiet);
    let created = std::time::Instant::now();
    loop {
        let listed = pods
            .list(&ListParams::default().labels("c8s.dev/run"))
            .await
            .map(|l| l.items.len())
            .unwrap_or_default();
        if listed > 0 {
            break;
        }
        assert!(
            created.elapsed() < Duration::from_secs(120),
            "the quiet namespace's run has no pod after 120 s\ncontroller log:\n{}",
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let told = queued_runs(&client, &flood.ns).await;
    assert!(
        told < FLOOD / 4,
        "the quiet namespace's pod came after {told} of the {FLOOD} flood runs were told they are queued \
         ({:?} after its run)\ncontroller log:\n{}",
        created.elapsed(),
        controller.log()
    );
    eprintln!(
        "quiet run's pod {:?} after its run, {told} of {FLOOD} flood runs queued by then",
        created.elapsed()
    );
}

/// A controller of one instance (`--instance-id`) caches only its own
/// runs' pods: the pods it creates carry its label, and its pod watch
/// selects on it, so the pods of another instance's runs in the same
/// namespace cost it no memory (before, its cache held every run's pods).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn an_instances_controller_caches_only_its_own_runs_pods() {
    let client = cluster::client().await;
    let installed = install_with(
        &client,
        "instances",
        "  - container: main\n    runSeconds: 60\n",
        &[],
    )
    .await;
    let ns = &installed.ns;
    let pipeline = json!({
        "name": "one",
        "repository": "https://github.com/octo-org/shop.git",
        "steps": [{ "name": "main", "image": "busybox:1.37", "commands": ["true"], "timeout": "5m" }]
    });
    let (mine, theirs) = (cluster::unique_name("mine"), cluster::unique_name("theirs"));
    let address = free_address();
    let controller = |instance: &str, identity: &str, metrics: &str| {
        Process::start(
            &installed.controller,
            &[
                "controller",
                "--namespace",
                ns,
                "--instance-id",
                instance,
                "--identity",
                identity,
                "--metrics-address",
                metrics,
            ],
        )
    };
    let ours = controller(&mine, "a", &address);
    let _other = controller(
        &theirs,
        "b",
        ANY_METRICS_PORT.trim_start_matches("--metrics-address="),
    );
    for (run, instance) in [("r-mine", &mine), ("r-theirs", &theirs)] {
        let labels = json!({ "c8s.dev/controller-instance": instance });
        create_run_labelled(&client, ns, run, &pipeline, json!({}), labels).await;
    }
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let started = std::time::Instant::now();
    let listed = loop {
        let listed = pods
            .list(&ListParams::default().labels("c8s.dev/run"))
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        if listed.len() == 2 {
            break listed;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{} run pods after 120 s\ncontroller log:\n{}",
            listed.len(),
            ours.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for pod in &listed {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let run = labels.get("c8s.dev/run").cloned().unwrap_or_default();
        let want = if run == "r-mine" { &mine } else { &theirs };
        assert_eq!(
            labels.get("c8s.dev/controller-instance"),
            Some(want),
            "{labels:?}"
        );
    }
    // The watch has seen both pods by now; give it a moment past the second.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let text = scrape(&address);
    assert_eq!(
        metric(&text, "c8s_cached_objects", &[("resource", "pods")]),
        Some(1.0),
        "{text}\ncontroller log:\n{}",
        ours.log()
    );
}

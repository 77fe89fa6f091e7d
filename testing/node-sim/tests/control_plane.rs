//! Against a real control plane with c8s-node-sim as its nodes
//! (`eval "$(scripts/control-plane/up.sh)"`, then
//! `export C8S_TEST_KUBECONFIG=$KUBECONFIG`; `./ci.sh` does both):
//!
//! ```sh
//! cargo test -p c8s-node-sim --test control_plane -- --ignored
//! ```
//!
//! Each test makes its own namespace with a script ConfigMap, creates plain
//! pods (or a Job), and checks what the API server then says: phases,
//! container states, conditions, and logs read through the API server (which
//! proxies them to the simulator's kubelet endpoint).

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::time::{Duration, Instant};

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// The client of the kubeconfig named by `C8S_TEST_KUBECONFIG` (and only
/// that one: these tests create and delete namespaces, so they never fall
/// back to `~/.kube/config`).
async fn client() -> Client {
    c8s_test_cluster::client().await
}

/// A fresh namespace with `script` as its c8s-node-sim script, once its
/// default ServiceAccount exists (the admission plugin wants it for pods).
async fn namespace(client: &Client, test: &str, script: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!("nodesim-{test}-{nanos:x}");
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "c8s-node-sim" },
        "data": { "script.yaml": script },
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), &name)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
    let start = Instant::now();
    while sas.get_opt("default").await.unwrap().is_none() {
        assert!(start.elapsed() < WAIT, "no default ServiceAccount in {name}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    name
}

async fn cleanup(client: &Client, ns: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(ns, &DeleteParams::default())
        .await;
}

fn container(name: &str) -> Value {
    json!({ "name": name, "image": "registry.example/none:1", "command": ["sh", "-c", "exit 0"] })
}

async fn create_pod(client: &Client, ns: &str, pod: Value) -> Pod {
    let pod: Pod = serde_json::from_value(pod).unwrap();
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap()
}

/// Polls the pod until `done` holds; every version seen goes through `seen`.
async fn wait_pod(
    client: &Client,
    ns: &str,
    name: &str,
    mut seen: impl FnMut(&Pod),
    done: impl Fn(&Pod) -> bool,
) -> Pod {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let start = Instant::now();
    loop {
        let pod = api.get(name).await.unwrap();
        seen(&pod);
        if done(&pod) {
            return pod;
        }
        assert!(
            start.elapsed() < WAIT,
            "pod {ns}/{name} never got there; last status: {}",
            serde_json::to_string_pretty(&pod.status).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

fn ended(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// The pod's status as JSON, to look into without a chain of Options.
fn status(pod: &Pod) -> Value {
    serde_json::to_value(pod.status.as_ref().unwrap()).unwrap()
}

fn find<'a>(list: &'a Value, key: &str, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|a| a.iter().find(|c| c[key] == name))
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

fn condition(status: &Value, kind: &str) -> (String, String) {
    let c = find(&status["conditions"], "type", kind);
    (
        c["status"].as_str().unwrap_or("").to_owned(),
        c["reason"].as_str().unwrap_or("").to_owned(),
    )
}

async fn logs(client: &Client, ns: &str, pod: &str, params: LogParams) -> String {
    Api::<Pod>::namespaced(client.clone(), ns)
        .logs(pod, &params)
        .await
        .unwrap()
}

fn of(container: &str) -> LogParams {
    LogParams {
        container: Some(container.to_owned()),
        ..LogParams::default()
    }
}

#[tokio::test]
#[ignore = "needs control plane"]
async fn nodes_are_ready_with_leases() {
    let client = client().await;
    let nodes = Api::<Node>::all(client.clone())
        .list(&kube::api::ListParams::default().labels("type=c8s-sim"))
        .await
        .unwrap();
    assert!(!nodes.items.is_empty(), "no c8s-sim nodes");
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    for node in &nodes.items {
        let name = node.name_any();
        assert_eq!(node.labels()["kubernetes.io/hostname"], name);
        assert_eq!(node.labels()["kubernetes.io/os"], "linux");
        let status = serde_json::to_value(node.status.as_ref().unwrap()).unwrap();
        assert_eq!(condition(&status, "Ready").0, "True");
        assert_eq!(condition(&status, "MemoryPressure").0, "False");
        assert_eq!(status["allocatable"]["cpu"], "16");
        assert_eq!(status["nodeInfo"]["kubeletVersion"], "v1.37.2");
        assert_eq!(
            find(&status["addresses"], "type", "InternalIP")["address"],
            "127.0.0.1"
        );
        assert!(
            status["daemonEndpoints"]["kubeletEndpoint"]["Port"]
                .as_i64()
                .unwrap()
                > 0
        );
        let lease = leases.get(&name).await.unwrap();
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some(name.as_str()));
        assert!(spec.renew_time.is_some());
        // The not-ready taint goes once the node is Ready.
        let start = Instant::now();
        loop {
            let node = Api::<Node>::all(client.clone()).get(&name).await.unwrap();
            let tainted = node
                .spec
                .and_then(|s| s.taints)
                .is_some_and(|ts| ts.iter().any(|t| t.key == "node.kubernetes.io/not-ready"));
            if !tainted {
                break;
            }
            assert!(start.elapsed() < WAIT, "{name} keeps the not-ready taint");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

#[tokio::test]
#[ignore = "needs control plane"]
async fn plain_pod_succeeds_without_a_rule() {
    let client = client().await;
    let ns = namespace(&client, "plain", "containers: []\n").await;
    create_pod(
        &client,
        &ns,
        json!({
            "metadata": { "name": "ok" },
            "spec": { "restartPolicy": "Never", "containers": [container("main")] },
        }),
    )
    .await;
    let mut phases = Vec::new();
    let pod = wait_pod(
        &client,
        &ns,
        "ok",
        |p| {
            let p = phase(p).to_owned();
            if phases.last() != Some(&p) {
                phases.push(p);
            }
        },
        ended,
    )
    .await;
    assert_eq!(phase(&pod), "Succeeded", "phases seen: {phases:?}");
    let s = status(&pod);
    assert!(
        pod.spec
            .as_ref()
            .unwrap()
            .node_name
            .as_ref()
            .unwrap()
            .starts_with("sim-node-")
    );
    assert_eq!(s["hostIP"], "127.0.0.1");
    assert!(s["podIP"].as_str().unwrap().starts_with("10.244."));
    assert!(s["startTime"].is_string());
    let main = find(&s["containerStatuses"], "name", "main");
    assert_eq!(main["state"]["terminated"]["exitCode"], 0);
    assert_eq!(main["state"]["terminated"]["reason"], "Completed");
    assert_eq!(main["containerID"], format!("sim://{}-main", pod.uid().unwrap()));
    assert_eq!(main["image"], "registry.example/none:1");
    assert_eq!(main["restartCount"], 0);
    assert_eq!(condition(&s, "Ready"), ("False".into(), "PodCompleted".into()));
    assert_eq!(condition(&s, "Initialized").0, "True");
    assert_eq!(
        condition(&s, "PodScheduled").0,
        "True",
        "the scheduler's condition is kept"
    );
    assert_eq!(logs(&client, &ns, "ok", of("main")).await, "");
    cleanup(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs control plane"]
async fn main_exits_3_with_logs_through_the_api_server() {
    let client = client().await;
    let script = r#"
containers:
  - step: build
    container: main
    exitCode: 3
    runSeconds: 0.5
    message: "tests failed"
    logs: ["compiling", "running tests", "3 failed"]
"#;
    let ns = namespace(&client, "exit3", script).await;
    create_pod(
        &client,
        &ns,
        json!({
            "metadata": { "name": "build-1", "labels": { "c8s.dev/step": "build" } },
            "spec": { "restartPolicy": "Never", "containers": [container("main"), container("helper")] },
        }),
    )
    .await;
    let pod = wait_pod(&client, &ns, "build-1", |_| {}, ended).await;
    assert_eq!(phase(&pod), "Failed");
    let s = status(&pod);
    let main = &find(&s["containerStatuses"], "name", "main")["state"]["terminated"];
    assert_eq!(main["exitCode"], 3);
    assert_eq!(main["reason"], "Error");
    assert_eq!(main["message"], "tests failed");
    let helper = &find(&s["containerStatuses"], "name", "helper")["state"]["terminated"];
    assert_eq!(helper["exitCode"], 0);
    assert_eq!(condition(&s, "Ready"), ("False".into(), "PodFailed".into()));

    assert_eq!(
        logs(&client, &ns, "build-1", of("main")).await,
        "compiling\nrunning tests\n3 failed\n"
    );
    let tail = LogParams {
        tail_lines: Some(1),
        ..of("main")
    };
    assert_eq!(logs(&client, &ns, "build-1", tail).await, "3 failed\n");
    let stamped = LogParams {
        timestamps: true,
        ..of("main")
    };
    let stamped = logs(&client, &ns, "build-1", stamped).await;
    let first = stamped.lines().next().unwrap();
    let (time, text) = first.split_once(' ').unwrap();
    assert!(time.parse::<k8s_openapi::jiff::Timestamp>().is_ok(), "{first}");
    assert_eq!(text, "compiling");
    let limited = LogParams {
        limit_bytes: Some(4),
        ..of("main")
    };
    assert_eq!(logs(&client, &ns, "build-1", limited).await, "comp");
    cleanup(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs control plane"]
async fn native_sidecar_runs_beside_main_and_stops_after_it() {
    let client = client().await;
    let script = r#"
containers:
  - container: proxy
    logs: ["proxy up"]
  - container: setup
    runSeconds: 0.3
    logs: ["setting up"]
  - container: main
    runSeconds: 1.5
    logs: ["main ran"]
"#;
    let ns = namespace(&client, "sidecar", script).await;
    let mut proxy = container("proxy");
    proxy["restartPolicy"] = json!("Always");
    proxy["startupProbe"] = json!({ "tcpSocket": { "port": 8080 }, "periodSeconds": 1 });
    create_pod(
        &client,
        &ns,
        json!({
            "metadata": { "name": "with-sidecar" },
            "spec": {
                "restartPolicy": "Never",
                "initContainers": [proxy, container("setup")],
                "containers": [container("main")],
            },
        }),
    )
    .await;
    let mut saw_ready_running = false;
    let mut saw_setup_after_proxy = false;
    let pod = wait_pod(
        &client,
        &ns,
        "with-sidecar",
        |p| {
            let Some(st) = p.status.as_ref() else { return };
            let s = serde_json::to_value(st).unwrap();
            let inits = &s["initContainerStatuses"];
            if inits.is_array()
                && find(inits, "name", "setup")["state"]["running"].is_object()
                && find(inits, "name", "proxy")["started"] == true
            {
                saw_setup_after_proxy = true;
            }
            if phase(p) == "Running"
                && s["conditions"].is_array()
                && condition(&s, "Ready").0 == "True"
                && find(inits, "name", "proxy")["state"]["running"].is_object()
            {
                saw_ready_running = true;
            }
        },
        ended,
    )
    .await;
    assert_eq!(phase(&pod), "Succeeded");
    assert!(
        saw_ready_running,
        "never saw the pod Running and Ready with the sidecar up"
    );
    assert!(
        saw_setup_after_proxy,
        "never saw setup running beside a started proxy"
    );
    let s = status(&pod);
    let proxy = &find(&s["initContainerStatuses"], "name", "proxy")["state"]["terminated"];
    let main = &find(&s["containerStatuses"], "name", "main")["state"]["terminated"];
    assert_eq!(proxy["exitCode"], 0);
    assert_eq!(proxy["reason"], "Completed");
    assert!(
        proxy["finishedAt"].as_str().unwrap() >= main["finishedAt"].as_str().unwrap(),
        "the sidecar stops after main"
    );
    let setup = find(&s["initContainerStatuses"], "name", "setup");
    assert_eq!(setup["state"]["terminated"]["reason"], "Completed");
    assert_eq!(setup["ready"], true);
    assert_eq!(condition(&s, "Initialized").0, "True");
    assert_eq!(
        logs(&client, &ns, "with-sidecar", of("proxy")).await,
        "proxy up\n"
    );
    assert_eq!(
        logs(&client, &ns, "with-sidecar", of("setup")).await,
        "setting up\n"
    );
    assert_eq!(logs(&client, &ns, "with-sidecar", of("main")).await, "main ran\n");
    cleanup(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs control plane"]
async fn failed_init_container_fails_the_pod_before_main_starts() {
    let client = client().await;
    let script = "containers:\n  - container: setup\n    exitCode: 1\n    logs: [\"no config\"]\n";
    let ns = namespace(&client, "initfail", script).await;
    create_pod(
        &client,
        &ns,
        json!({
            "metadata": { "name": "init-fails" },
            "spec": {
                "restartPolicy": "Never",
                "initContainers": [container("setup")],
                "containers": [container("main")],
            },
        }),
    )
    .await;
    let pod = wait_pod(&client, &ns, "init-fails", |_| {}, ended).await;
    assert_eq!(phase(&pod), "Failed");
    let s = status(&pod);
    let setup = &find(&s["initContainerStatuses"], "name", "setup")["state"]["terminated"];
    assert_eq!(
        (setup["exitCode"].clone(), setup["reason"].clone()),
        (json!(1), json!("Error"))
    );
    let main = &find(&s["containerStatuses"], "name", "main")["state"];
    assert_eq!(main["waiting"]["reason"], "PodInitializing");
    assert_eq!(
        condition(&s, "Initialized"),
        ("False".into(), "ContainersNotInitialized".into())
    );
    assert_eq!(logs(&client, &ns, "init-fails", of("setup")).await, "no config\n");
    // main never started: the kubelet's 400, passed on by the API server.
    let err = Api::<Pod>::namespaced(client.clone(), &ns)
        .logs("init-fails", &of("main"))
        .await
        .unwrap_err();
    let kube::Error::Api(e) = err else { panic!("{err}") };
    assert_eq!(e.code, 400);
    assert!(
        e.message
            .contains("container \"main\" in pod \"init-fails\" is waiting to start: PodInitializing"),
        "{}",
        e.message
    );
    cleanup(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs control plane"]
async fn active_deadline_kills_the_pod() {
    let client = client().await;
    let ns = namespace(&client, "deadline", "containers:\n  - runSeconds: 3600\n").await;
    create_pod(
        &client,
        &ns,
        json!({
            "metadata": { "name": "slow" },
            "spec": { "restartPolicy": "Never", "activeDeadlineSeconds": 2, "containers": [container("main")] },
        }),
    )
    .await;
    let pod = wait_pod(&client, &ns, "slow", |_| {}, ended).await;
    assert_eq!(phase(&pod), "Failed");
    let s = status(&pod);
    assert_eq!(s["reason"], "DeadlineExceeded");
    assert_eq!(
        s["message"],
        "Pod was active on the node longer than the specified deadline"
    );
    let main = &find(&s["containerStatuses"], "name", "main")["state"]["terminated"];
    assert_eq!(main["exitCode"], 137);
    cleanup(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs control plane"]
async fn job_completes_and_its_pod_logs_are_read() {
    let client = client().await;
    let script = "containers:\n  - labels: {batch.kubernetes.io/job-name: sim-job}\n    logs: [\"job done\"]\n    runSeconds: 0.3\n";
    let ns = namespace(&client, "job", script).await;
    let job: Job = serde_json::from_value(json!({
        "metadata": { "name": "sim-job" },
        "spec": {
            "backoffLimit": 0,
            "template": { "spec": { "restartPolicy": "Never", "containers": [container("main")] } },
        },
    }))
    .unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let start = Instant::now();
    loop {
        let job = jobs.get("sim-job").await.unwrap();
        let complete = job
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Complete" && c.status == "True"));
        if complete {
            assert_eq!(job.status.unwrap().succeeded, Some(1));
            break;
        }
        assert!(start.elapsed() < WAIT, "job never completed: {:?}", job.status);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pods = Api::<Pod>::namespaced(client.clone(), &ns)
        .list(&kube::api::ListParams::default().labels("batch.kubernetes.io/job-name=sim-job"))
        .await
        .unwrap();
    let pod = pods.items.first().expect("the job's pod");
    assert_eq!(phase(pod), "Succeeded");
    assert_eq!(
        logs(&client, &ns, &pod.name_any(), of("main")).await,
        "job done\n"
    );
    // Deleting the job (foreground) deletes its pod through the simulated kubelet.
    jobs.delete("sim-job", &DeleteParams::foreground()).await.unwrap();
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let start = Instant::now();
    while pods_api.get_opt(&pod.name_any()).await.unwrap().is_some() {
        assert!(start.elapsed() < WAIT, "the job's pod was never deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cleanup(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs control plane"]
async fn follow_streams_until_the_container_ends() {
    let client = client().await;
    let script = "containers:\n  - logs: [a, b, c]\n    runSeconds: 2\n";
    let ns = namespace(&client, "follow", script).await;
    create_pod(
        &client,
        &ns,
        json!({
            "metadata": { "name": "talker" },
            "spec": { "restartPolicy": "Never", "containers": [container("main")] },
        }),
    )
    .await;
    wait_pod(&client, &ns, "talker", |_| {}, |p| phase(p) == "Running").await;
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let params = LogParams {
        follow: true,
        ..of("main")
    };
    let started = Instant::now();
    let lines: Vec<String> = api
        .log_stream("talker", &params)
        .await
        .unwrap()
        .lines()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(lines, ["a", "b", "c"]);
    // The stream stayed open while the container ran (lines at 0, 0.67, 1.33 s; exit at 2 s).
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    let pod = wait_pod(&client, &ns, "talker", |_| {}, ended).await;
    assert_eq!(phase(&pod), "Succeeded");
    cleanup(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs control plane"]
async fn waiting_container_and_deletion() {
    let client = client().await;
    let script = r#"
containers:
  - pod: pull
    container: main
    waiting: { reason: ImagePullBackOff, message: "Back-off pulling image" }
  - pod: long
    runSeconds: 3600
    logs: ["working"]
"#;
    let ns = namespace(&client, "delete", script).await;
    for name in ["pull", "long"] {
        create_pod(
            &client,
            &ns,
            json!({
                "metadata": { "name": name },
                "spec": { "restartPolicy": "Never", "containers": [container("main")] },
            }),
        )
        .await;
    }
    let pod = wait_pod(
        &client,
        &ns,
        "pull",
        |_| {},
        |p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.state
                            .as_ref()
                            .and_then(|s| s.waiting.as_ref())
                            .is_some_and(|w| w.reason.as_deref() == Some("ImagePullBackOff"))
                    })
                })
        },
    )
    .await;
    assert_eq!(phase(&pod), "Pending");
    let err = Api::<Pod>::namespaced(client.clone(), &ns)
        .logs("pull", &of("main"))
        .await
        .unwrap_err();
    let kube::Error::Api(e) = err else { panic!("{err}") };
    assert_eq!(e.code, 400);
    assert!(
        e.message
            .contains("is waiting to start: trying and failing to pull image"),
        "{}",
        e.message
    );

    wait_pod(&client, &ns, "long", |_| {}, |p| phase(p) == "Running").await;
    assert_eq!(logs(&client, &ns, "long", of("main")).await, "working\n");
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    // A default grace period of 30 s: the simulated kubelet still ends it at once.
    let start = Instant::now();
    for name in ["pull", "long"] {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    for name in ["pull", "long"] {
        while api.get_opt(name).await.unwrap().is_some() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{name} was never deleted"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Gone for the kubelet too: the API server answers 404.
    assert!(api.logs("long", &of("main")).await.is_err());
    cleanup(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs control plane"]
async fn many_pods_across_the_nodes() {
    // Many pods at once across the nodes: every one ends as scripted.
    let client = client().await;
    let script = "containers:\n  - pod: odd\n    exitCode: 1\n";
    let ns = namespace(&client, "many", script).await;
    let names: Vec<String> = (0..10)
        .map(|i| {
            if i % 2 == 1 {
                format!("odd-{i}")
            } else {
                format!("even-{i}")
            }
        })
        .collect();
    for name in &names {
        create_pod(
            &client,
            &ns,
            json!({
                "metadata": { "name": name },
                "spec": { "restartPolicy": "Never", "containers": [container("main")] },
            }),
        )
        .await;
    }
    let mut nodes = std::collections::BTreeSet::new();
    let mut ips = std::collections::BTreeSet::new();
    for name in &names {
        let pod = wait_pod(&client, &ns, name, |_| {}, ended).await;
        let want = if name.starts_with("odd") {
            "Failed"
        } else {
            "Succeeded"
        };
        assert_eq!(phase(&pod), want, "{name}");
        nodes.insert(pod.spec.unwrap().node_name.unwrap());
        ips.insert(pod.status.unwrap().pod_ip.unwrap());
    }
    assert_eq!(ips.len(), names.len(), "pod IPs are unique");
    eprintln!("pods ran on {nodes:?}");
    let stream = futures::stream::iter(names.clone())
        .map(|name| {
            let client = client.clone();
            let ns = ns.clone();
            async move { logs(&client, &ns, &name, of("main")).await }
        })
        .buffer_unordered(5)
        .collect::<Vec<_>>()
        .await;
    assert!(stream.iter().all(String::is_empty));
    cleanup(&client, &ns).await;
}

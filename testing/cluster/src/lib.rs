//! Test support for the tests that run against a real Kubernetes control
//! plane: kube-apiserver, etcd, kube-controller-manager and kube-scheduler
//! built from source, with nodes simulated by `c8s-node-sim`
//! (`scripts/control-plane/up.sh` starts them; `./ci.sh` does it for the
//! tests). Those tests are `#[ignore = "needs control plane"]` and find the
//! API server through `C8S_TEST_KUBECONFIG`; without it they fail, never
//! pass.
//!
//! Every test gets its own namespace (labelled for Pod Security
//! `restricted`), so the tests run in parallel on one control plane.
//!
//! [`s3`] is the same for the log archive's S3 server.

pub mod proxy;
pub mod s3;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// The environment variable naming the control plane's admin kubeconfig.
pub const KUBECONFIG_VAR: &str = "C8S_TEST_KUBECONFIG";

/// The admin kubeconfig of the running control plane; panics with how to start
/// one when `C8S_TEST_KUBECONFIG` is not set or names no file.
pub fn kubeconfig() -> PathBuf {
    let path = std::env::var_os(KUBECONFIG_VAR).map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "{KUBECONFIG_VAR} is not set: start a control plane with `eval \"$(scripts/control-plane/up.sh)\"` \
             and set {KUBECONFIG_VAR}=\"$KUBECONFIG\" (./ci.sh does both)"
        )
    });
    assert!(
        path.is_file(),
        "{KUBECONFIG_VAR}={} is not a file",
        path.display()
    );
    path
}

/// A client of the control plane, as its admin.
pub async fn client() -> Client {
    let path = kubeconfig();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Client::try_from(config).unwrap_or_else(|e| panic!("client: {e}"))
}

/// A name no other test of this control plane has: `prefix-<pid>-<n>-<time>`,
/// at most 63 characters.
pub fn unique_name(prefix: &str) -> String {
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut name = format!("{prefix}-{}-{n}-{}", std::process::id(), nanos % 100_000);
    name.truncate(63);
    name.trim_end_matches('-').to_owned()
}

/// Creates a namespace of its own for a test, labelled
/// `pod-security.kubernetes.io/enforce=restricted` (the PodSecurity admission
/// plugin then refuses any pod that is not restricted), and waits for its
/// `default` ServiceAccount (the ServiceAccount admission plugin refuses pods
/// until the controller-manager made it).
pub async fn namespace(client: &Client, prefix: &str) -> String {
    namespace_with_level(client, prefix, "restricted").await
}

/// [`namespace`] with another Pod Security level enforced.
pub async fn namespace_with_level(client: &Client, prefix: &str, level: &str) -> String {
    let name = unique_name(prefix);
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": name,
            "labels": {
                "pod-security.kubernetes.io/enforce": level,
                "pod-security.kubernetes.io/enforce-version": "latest",
            }
        }
    }))
    .unwrap_or_else(|e| panic!("namespace: {e}"));
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &name);
    eventually(Duration::from_secs(60), "the default ServiceAccount", || async {
        accounts.get_opt("default").await.ok().flatten().map(|_| ())
    })
    .await;
    name
}

/// Writes the node simulator's script for `namespace` (what each container
/// does: exit code, run time, logs, readiness; see testing/node-sim).
pub async fn script(client: &Client, namespace: &str, yaml: &str) {
    let map: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "c8s-node-sim" },
        "data": { "script.yaml": yaml }
    }))
    .unwrap_or_else(|e| panic!("script: {e}"));
    Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &map)
        .await
        .unwrap_or_else(|e| panic!("script in {namespace}: {e}"));
}

/// Creates an Opaque Secret with string data.
pub async fn secret(client: &Client, namespace: &str, name: &str, data: &[(&str, &str)]) {
    let data: serde_json::Map<String, serde_json::Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
        .collect();
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "stringData": data
    }))
    .unwrap_or_else(|e| panic!("secret: {e}"));
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap_or_else(|e| panic!("secret {name} in {namespace}: {e}"));
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after
/// `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates each PersistentVolumeClaim in `claims` (ReadWriteMany, 1Gi) in
/// `namespace`, bound from the start to a hostPath PersistentVolume of its
/// own: the control plane has no provisioner, and the scheduler refuses a pod
/// whose claim is missing or unbound.
pub async fn claims(client: &Client, namespace: &str, claims: &[&str]) {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    for claim in claims {
        let volume = unique_name(&format!("pv-{claim}"));
        let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
            "metadata": { "name": volume },
            "spec": {
                "capacity": { "storage": "1Gi" },
                "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": "",
                "hostPath": { "path": format!("/tmp/c8s-sim-volumes/{volume}") },
                "claimRef": { "namespace": namespace, "name": claim }
            }
        }))
        .unwrap_or_else(|e| panic!("volume: {e}"));
        Api::<PersistentVolume>::all(client.clone())
            .create(&PostParams::default(), &pv)
            .await
            .unwrap_or_else(|e| panic!("create volume {volume}: {e}"));
        let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
            "metadata": { "name": claim },
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "volumeName": volume,
                "resources": { "requests": { "storage": "1Gi" } }
            }
        }))
        .unwrap_or_else(|e| panic!("claim: {e}"));
        let api = Api::<PersistentVolumeClaim>::namespaced(client.clone(), namespace);
        api.create(&PostParams::default(), &pvc)
            .await
            .unwrap_or_else(|e| panic!("create claim {claim}: {e}"));
        eventually(
            Duration::from_secs(60),
            &format!("claim {claim} to be Bound"),
            || async {
                let pvc = api.get_opt(claim).await.ok().flatten()?;
                (pvc.status?.phase.as_deref() == Some("Bound")).then_some(())
            },
        )
        .await;
    }
}

/// How many distinct pods the scheduler placed in `namespace` whose name
/// contains `name_part` (all with `""`): the `Scheduled` Events name each
/// pod once, so a duplicate create shows even after the pods are deleted.
pub async fn scheduled_pods(client: &Client, namespace: &str, name_part: &str) -> usize {
    use k8s_openapi::api::core::v1::Event;
    let events = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&kube::api::ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("events of {namespace}: {e}"));
    let mut uids: Vec<String> = events
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Scheduled"))
        .filter(|e| {
            e.involved_object
                .name
                .as_deref()
                .is_some_and(|n| n.contains(name_part))
        })
        .filter_map(|e| e.involved_object.uid.clone())
        .collect();
    uids.sort();
    uids.dedup();
    uids.len()
}

/// Deletes every step pod (labelled `c8s.dev/run`) of `namespace` at once
/// and waits until they are gone.
pub async fn delete_step_pods(client: &Client, namespace: &str) {
    use k8s_openapi::api::core::v1::Pod;
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let labelled = kube::api::ListParams::default().labels("c8s.dev/run");
    pods.delete_collection(&kube::api::DeleteParams::default().grace_period(0), &labelled)
        .await
        .unwrap_or_else(|e| panic!("deleting the step pods of {namespace}: {e}"));
    eventually(Duration::from_secs(60), "the step pods to be gone", || async {
        pods.list(&labelled)
            .await
            .ok()
            .filter(|l| l.items.is_empty())
            .map(|_| ())
    })
    .await;
}

/// A kubeconfig that authenticates as ServiceAccount `account` of `ns` with a
/// bound token from the TokenRequest API (what the kubelet mounts in a pod),
/// written in `dir`.
pub async fn service_account_kubeconfig(client: &Client, ns: &str, account: &str, dir: &Path) -> PathBuf {
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    let request: TokenRequest = serde_json::from_value(serde_json::json!({
        "spec": { "audiences": [], "expirationSeconds": 3600 }
    }))
    .expect("token request");
    let token = accounts
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("token for {ns}/{account}: {e}"))
        .status
        .expect("token status")
        .token
        .expect("token");
    let admin = std::fs::read_to_string(kubeconfig()).expect("admin kubeconfig");
    let server = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .expect("server line")
        .to_owned();
    let ca = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority: "))
        .expect("certificate-authority line")
        .to_owned();
    let path = dir.join(format!("{}.kubeconfig", unique_name(account)));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{ server: \"{server}\", certificate-authority: \"{ca}\" }}\n\
             users:\n- name: {account}\n  user: {{ token: \"{token}\" }}\ncontexts:\n- name: c\n  context: {{ cluster: c, user: {account}, namespace: {ns} }}\n\
             current-context: c\n"
        ),
    )
    .expect("write kubeconfig");
    path
}

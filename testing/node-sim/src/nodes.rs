//! The simulated Node objects: registration, status, heartbeats.
//!
//! A kubelet registers its Node, posts its status (capacity, conditions,
//! addresses, the kubelet endpoint) and then proves it is alive in two ways
//! (<https://kubernetes.io/docs/concepts/architecture/nodes/#node-heartbeats>):
//! it renews its Lease in `kube-node-lease` (every 10 s, a quarter of the 40 s
//! lease) and updates `.status` when something changes or at least every
//! `nodeStatusReportFrequency`. The node-lifecycle controller in
//! kube-controller-manager marks a node whose heartbeats stop `Unknown`,
//! taints it `node.kubernetes.io/unreachable` and evicts its pods
//! (<https://kubernetes.io/docs/reference/labels-annotations-taints/#node-kubernetes-io-not-ready>).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};

/// The kubelet version the nodes report.
pub const KUBELET_VERSION: &str = "v1.37.2";
/// The node label every simulated node has, `type=c8s-sim`.
pub const TYPE_LABEL: (&str, &str) = ("type", "c8s-sim");
/// The taint the node-lifecycle controller puts on a node until it is Ready.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
/// How often the lease is renewed (the kubelet: a quarter of the 40 s lease).
pub const LEASE_RENEW: Duration = Duration::from_secs(10);
/// The lease duration.
pub const LEASE_SECONDS: i32 = 40;
/// How often the status heartbeat (Ready's lastHeartbeatTime) is posted.
pub const STATUS_EVERY: Duration = Duration::from_secs(30);

/// The address the nodes report: the API server reaches their kubelet there.
pub const NODE_IP: &str = "127.0.0.1";

/// The simulated nodes and what they report.
#[derive(Clone)]
pub struct Nodes {
    client: Client,
    /// The node names.
    pub names: Vec<String>,
    port: u16,
}

fn quantities() -> BTreeMap<String, Quantity> {
    [
        ("cpu", "16"),
        ("memory", "64Gi"),
        ("pods", "110"),
        ("ephemeral-storage", "100Gi"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
    .collect()
}

fn condition(
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &Time,
    old: Option<&NodeStatus>,
) -> NodeCondition {
    // lastTransitionTime moves only when the status does.
    let since = old
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    NodeCondition {
        type_: kind.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(since),
    }
}

impl Nodes {
    /// `count` nodes named `<prefix>0..count-1` whose kubelet listens on `port`.
    pub fn new(client: Client, prefix: &str, count: usize, port: u16) -> Self {
        Self {
            client,
            names: (0..count).map(|i| format!("{prefix}{i}")).collect(),
            port,
        }
    }

    fn labels(name: &str) -> BTreeMap<String, String> {
        [
            ("kubernetes.io/hostname", name),
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "amd64"),
            TYPE_LABEL,
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// The node's status as the kubelet posts it (conditions keep their
    /// transition times from `old`).
    fn status(&self, name: &str, old: Option<&NodeStatus>) -> NodeStatus {
        let now = Time(Timestamp::now());
        NodeStatus {
            capacity: Some(quantities()),
            allocatable: Some(quantities()),
            // The kubelet's reasons and messages (pkg/kubelet/nodestatus/setters.go).
            conditions: Some(vec![
                condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                    &now,
                    old,
                ),
                condition(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                    &now,
                    old,
                ),
                condition(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                    &now,
                    old,
                ),
                condition(
                    "Ready",
                    "True",
                    "KubeletReady",
                    "kubelet is posting ready status",
                    &now,
                    old,
                ),
            ]),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".to_owned(),
                    address: NODE_IP.to_owned(),
                },
                NodeAddress {
                    type_: "Hostname".to_owned(),
                    address: name.to_owned(),
                },
            ]),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint {
                    port: i32::from(self.port),
                }),
            }),
            node_info: Some(NodeSystemInfo {
                architecture: "amd64".to_owned(),
                boot_id: format!("c8s-node-sim-{name}"),
                container_runtime_version: "sim://0.1.0".to_owned(),
                kernel_version: "0.0.0-c8s-sim".to_owned(),
                kube_proxy_version: KUBELET_VERSION.to_owned(),
                kubelet_version: KUBELET_VERSION.to_owned(),
                machine_id: format!("c8s-node-sim-{name}"),
                operating_system: "linux".to_owned(),
                os_image: "c8s node simulator".to_owned(),
                system_uuid: format!("c8s-node-sim-{name}"),
                ..NodeSystemInfo::default()
            }),
            ..NodeStatus::default()
        }
    }

    /// Creates or updates every node, posts its status and its lease.
    pub async fn register(&self) -> Result<(), kube::Error> {
        for name in &self.names {
            self.register_one(name).await?;
            log!("node {name} registered");
        }
        Ok(())
    }

    async fn register_one(&self, name: &str) -> Result<(), kube::Error> {
        let api: Api<Node> = Api::all(self.client.clone());
        let node = match api.get_opt(name).await? {
            Some(mut node) => {
                let labels = node.labels_mut();
                let wanted = Self::labels(name);
                if wanted.iter().any(|(k, v)| labels.get(k) != Some(v)) {
                    labels.extend(wanted);
                    api.replace(name, &PostParams::default(), &node).await?
                } else {
                    node
                }
            }
            None => {
                let node = Node {
                    metadata: ObjectMeta {
                        name: Some(name.to_owned()),
                        labels: Some(Self::labels(name)),
                        ..ObjectMeta::default()
                    },
                    ..Node::default()
                };
                api.create(&PostParams::default(), &node).await?
            }
        };
        self.post_status(&api, node).await?;
        // The TaintNodesByCondition admission plugin put the
        // not-ready taint on the new Node; the status now says Ready.
        self.remove_not_ready_taint(&api, name).await?;
        self.renew_lease(name).await
    }

    /// Drops the not-ready taint if the node has it (read fresh; replaced at
    /// that resourceVersion, so a conflict leaves it for the next beat).
    async fn remove_not_ready_taint(&self, api: &Api<Node>, name: &str) -> Result<(), kube::Error> {
        let Some(mut node) = api.get_opt(name).await? else {
            return Ok(());
        };
        let Some(taints) = node.spec.as_mut().and_then(|s| s.taints.as_mut()) else {
            return Ok(());
        };
        if !taints.iter().any(|t| t.key == NOT_READY_TAINT) {
            return Ok(());
        }
        taints.retain(|t| t.key != NOT_READY_TAINT);
        match api.replace(name, &PostParams::default(), &node).await {
            Ok(_) => {
                log!("node {name}: removed the {NOT_READY_TAINT} taint");
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Posts the status over `node` (retrying once on a conflict with a fresh copy).
    async fn post_status(&self, api: &Api<Node>, mut node: Node) -> Result<(), kube::Error> {
        for attempt in 0..3 {
            let name = node.name_any();
            node.status = Some(self.status(&name, node.status.as_ref()));
            match api.replace_status(&name, &PostParams::default(), &node).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(e)) if e.code == 409 && attempt < 2 => {
                    node = api.get(&name).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Renews (or creates) the node's lease.
    async fn renew_lease(&self, name: &str) -> Result<(), kube::Error> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        let now = MicroTime(Timestamp::now());
        match api.get_opt(name).await? {
            Some(mut lease) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.holder_identity = Some(name.to_owned());
                spec.lease_duration_seconds = Some(LEASE_SECONDS);
                spec.renew_time = Some(now);
                api.replace(name, &PostParams::default(), &lease).await?;
            }
            None => {
                // The kubelet owns its lease by the Node, so it goes with the Node.
                let owner = Api::<Node>::all(self.client.clone())
                    .get_opt(name)
                    .await?
                    .and_then(|node| node.metadata.uid)
                    .map(|uid| OwnerReference {
                        api_version: "v1".to_owned(),
                        kind: "Node".to_owned(),
                        name: name.to_owned(),
                        uid,
                        ..OwnerReference::default()
                    });
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.to_owned()),
                        namespace: Some("kube-node-lease".to_owned()),
                        owner_references: owner.map(|o| vec![o]),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(name.to_owned()),
                        lease_duration_seconds: Some(LEASE_SECONDS),
                        renew_time: Some(now),
                        ..LeaseSpec::default()
                    }),
                };
                api.create(&PostParams::default(), &lease).await?;
            }
        }
        Ok(())
    }

    /// Drops the not-ready taint if it is there and posts the status again.
    async fn status_heartbeat(&self, name: &str) -> Result<(), kube::Error> {
        let api: Api<Node> = Api::all(self.client.clone());
        self.remove_not_ready_taint(&api, name).await?;
        match api.get_opt(name).await? {
            Some(node) => self.post_status(&api, node).await,
            // Deleted under us: register it again, as a kubelet would.
            None => self.register_one(name).await,
        }
    }

    /// Renews the leases every 10 s and posts the status every 30 s, forever.
    pub async fn heartbeats(self) {
        let mut ticks: u64 = 0;
        let mut interval = tokio::time::interval(LEASE_RENEW);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is at once; registration just did both.
        interval.tick().await;
        loop {
            interval.tick().await;
            ticks += 1;
            let status_due = ticks.is_multiple_of((STATUS_EVERY.as_secs() / LEASE_RENEW.as_secs()).max(1));
            for name in &self.names {
                if let Err(e) = self.renew_lease(name).await {
                    log!("node {name}: renewing the lease: {e}");
                }
                // The taint is looked at every beat; the status posted with it.
                let tainted_or_due = status_due || self.has_not_ready_taint(name).await;
                if tainted_or_due && let Err(e) = self.status_heartbeat(name).await {
                    log!("node {name}: status heartbeat: {e}");
                }
            }
        }
    }

    async fn has_not_ready_taint(&self, name: &str) -> bool {
        let api: Api<Node> = Api::all(self.client.clone());
        match api.get_opt(name).await {
            Ok(Some(node)) => node
                .spec
                .and_then(|s| s.taints)
                .is_some_and(|ts| ts.iter().any(|t| t.key == NOT_READY_TAINT)),
            // Gone: the status heartbeat registers it again.
            Ok(None) => true,
            Err(_) => false,
        }
    }
}

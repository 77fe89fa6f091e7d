//! Pods that really run (issue 11): each fix of a pod that rendered valid but
//! failed or hung at runtime, asserted on the rendered spec.

use c8s_pod_builder::model::sidecar::{Port, ReadinessProbe, SidecarConfig, validate::validate_sidecars};
use c8s_pod_builder::model::{PlanIdentity, TaskPlan};
use c8s_pod_builder::{RunContext, render_pod};
use k8s_openapi::api::core::v1 as core;

fn plan() -> TaskPlan {
    let mut plan = TaskPlan::new(PlanIdentity::new("shop", "unit"), "golang:1.23");
    plan.command = vec!["sh".into(), "-ec".into(), "go test ./...".into()];
    plan
}

fn ctx() -> RunContext {
    RunContext::new("run-1", 1)
}

fn spec(pod: &core::Pod) -> &core::PodSpec {
    pod.spec.as_ref().expect("spec")
}

fn init<'a>(pod: &'a core::Pod, name: &str) -> &'a core::Container {
    spec(pod)
        .init_containers
        .iter()
        .flatten()
        .find(|c| c.name == name)
        .expect("init container")
}

#[test]
fn huge_readiness_timeouts_render_without_overflow() {
    let mut plan = plan();
    let mut db = SidecarConfig::new("db", "redis:7");
    db.ports.push(Port::tcp(6379));
    db.readiness = c8s_pod_builder::model::sidecar::Readiness::Probe(
        ReadinessProbe::tcp(c8s_pod_builder::model::sidecar::PortRef::Number(6379))
            .with_timeout_seconds(i32::MAX)
            .with_period_seconds(1),
    );
    plan.sidecars.push(db);
    let pod = render_pod(&plan, &ctx()).expect("renders");
    let probe = init(&pod, "db").startup_probe.as_ref().expect("probe");
    assert_eq!(probe.failure_threshold, Some(i32::MAX));
    assert_eq!(probe.period_seconds, Some(1));
}

#[test]
fn udp_and_sctp_ports_get_no_default_readiness() {
    let mut plan = plan();
    let mut dns = SidecarConfig::new("dns", "coredns/coredns:1.11.1");
    let mut udp = Port::tcp(53);
    udp.protocol = c8s_pod_builder::model::sidecar::Protocol::Udp;
    dns.ports.push(udp);
    plan.sidecars.push(dns.clone());
    let pod = render_pod(&plan, &ctx()).expect("renders");
    assert!(init(&pod, "dns").startup_probe.is_none());
    // A TCP port next to it gets the check, on that port.
    dns.ports.push(Port::tcp(8053));
    assert_eq!(
        dns.effective_readiness(),
        Some(ReadinessProbe::tcp(c8s_pod_builder::model::sidecar::PortRef::Number(8053)))
    );
}

#[test]
fn uids_beyond_int32_are_refused() {
    let mut db = SidecarConfig::new("db", "redis:7");
    db.run_as_user = Some(1 << 31);
    let errors = validate_sidecars(&[db]).expect_err("refused").to_string();
    assert!(errors.contains("must be at most 2147483647"), "{errors}");
}

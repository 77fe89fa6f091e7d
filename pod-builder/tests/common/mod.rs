//! Plans built in code, mirroring the examples, shared by the test files.
#![allow(dead_code)]

use c8s_pod_builder::model::sidecar::{EnvVar, SidecarConfig, parse_sidecars};
use c8s_pod_builder::model::{PlanIdentity, PlanInput, TaskPlan};
use c8s_pod_builder::{Object, RunContext, SidecarMode, render_job, render_pod};

pub const POSTGRES: &str = include_str!("../../../examples/sidecars/postgres.yml");
pub const SERVICES: &str = include_str!("../../../examples/sidecars/services.yml");
pub const MONITORING: &str = include_str!("../../../examples/sidecars/monitoring-agent.yml");

pub fn sidecars(file: &str, text: &str) -> Vec<SidecarConfig> {
    parse_sidecars(file, text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn step(name: &str, image: &str, script: &str) -> TaskPlan {
    let mut plan = TaskPlan::new(PlanIdentity::new("orders-service", name), image);
    plan.command = vec!["sh".into(), "-ec".into(), script.into()];
    plan
}

/// The example plans, by snapshot name.
pub fn plans() -> Vec<(&'static str, TaskPlan)> {
    let mut postgres = step("integration", "golang:1.23", "go test -tags integration ./...");
    postgres.sidecars = sidecars("postgres.yml", POSTGRES);
    postgres.env = vec![EnvVar::value(
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    )];
    postgres.timeout_seconds = Some(1800);

    let mut services = step("e2e", "node:22", "npm ci\nnpm run e2e");
    services.sidecars = sidecars("services.yml", SERVICES);

    let mut artifacts = step(
        "publish",
        "golang:1.23",
        "go build -o dist/app ./cmd/app\ncp -r dist reports/",
    );
    artifacts.identity.matrix_id = Some("3f2a9c".into());
    artifacts.identity.matrix.insert("go".into(), "1.23".into());
    artifacts.identity.matrix.insert("db".into(), "16".into());
    artifacts.working_dir = Some("source".into());
    artifacts.inputs = vec![PlanInput::new("build", "dist")];
    artifacts.outputs = vec!["reports".into(), "dist/bin".into()];
    artifacts.caches = vec![".gocache".into()];
    artifacts.sidecars = sidecars("monitoring-agent.yml", MONITORING);
    artifacts.env = vec![
        EnvVar::value("LOG_LEVEL", "debug"),
        EnvVar::secret("STRIPE_KEY", "orders-ci", "stripe-key"),
    ];
    artifacts.timeout_seconds = Some(3600);

    let mut root = step(
        "image",
        "gcr.io/kaniko-project/executor:debug",
        "/kaniko/executor --no-push",
    );
    root.run_as_root = true;

    vec![
        ("postgres", postgres),
        ("services", services),
        ("artifacts", artifacts),
        ("root", root),
    ]
}

pub fn ctx(mode: SidecarMode) -> RunContext {
    RunContext::new("run-20260101-0001", 42)
        .with_repository("https://github.com/example/orders.git")
        .with_commit("0123456789abcdef0123456789abcdef01234567")
        .with_branch("main")
        .with_namespace("ci")
        .with_sidecar_mode(mode)
}

/// Every example rendered in every mode and kind: (snapshot name, object).
pub fn rendered() -> Vec<(String, Object)> {
    let mut out = Vec::new();
    for (name, plan) in plans() {
        for (mode_name, mode) in [("native", SidecarMode::Native), ("legacy", SidecarMode::Legacy)] {
            let ctx = ctx(mode);
            let pod = render_pod(&plan, &ctx).unwrap_or_else(|e| panic!("{name}: {e}"));
            out.push((format!("{name}-{mode_name}-pod"), Object::from(pod)));
            // A legacy Job with sidecars could never complete: refused.
            if mode == SidecarMode::Legacy && !plan.sidecars.is_empty() {
                let refused = render_job(&plan, &ctx);
                assert!(
                    matches!(refused, Err(c8s_pod_builder::Error::LegacyJobWithSidecars { .. })),
                    "{name}: {refused:?}"
                );
                continue;
            }
            let job = render_job(&plan, &ctx).unwrap_or_else(|e| panic!("{name}: {e}"));
            out.push((format!("{name}-{mode_name}-job"), Object::from(job)));
        }
    }
    out
}

/// The pod spec inside an object.
pub fn pod_spec(object: &Object) -> &k8s_openapi::api::core::v1::PodSpec {
    let spec = match object {
        Object::Pod(pod) => pod.spec.as_ref(),
        Object::Job(job) => job.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
    };
    spec.expect("rendered objects have a pod spec")
}

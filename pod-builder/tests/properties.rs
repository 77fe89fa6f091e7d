//! Properties: rendering is deterministic, names and labels stay valid for any
//! identity, distinct identities get distinct names, YAML round-trips any
//! string, and secret values never reach the output.

mod common;

use c8s_pod_builder::model::sidecar::{EnvVar, SidecarConfig, names};
use c8s_pod_builder::model::{PlanIdentity, TaskPlan};
use c8s_pod_builder::{
    RunContext, object_name, render_job, render_pod, to_canonical_json, to_canonical_yaml,
};
use k8s_openapi::api::core::v1::Pod;
use proptest::prelude::*;

fn any_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,20}",
        ".{0,120}",
        "[ -~]{0,100}",
        "[a-zA-Z0-9äöüß😀/_.: -]{50,200}",
    ]
}

fn plan_for(pipeline: &str, step: &str, matrix: Option<String>) -> TaskPlan {
    let mut identity = PlanIdentity::new(pipeline, step);
    identity.matrix_id = matrix;
    let mut plan = TaskPlan::new(identity, "alpine:3.20");
    plan.command = vec!["sh".into(), "-ec".into(), "true".into()];
    plan
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_identity_renders_with_valid_names(
        pipeline in any_name(), step in any_name(), matrix in proptest::option::of(any_name()),
        build in any::<u64>(), run in any_name(),
    ) {
        let plan = plan_for(&pipeline, &step, matrix);
        let ctx = RunContext::new(run, build);
        let pod = render_pod(&plan, &ctx).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        prop_assert!(names::dns1123_label(&name).is_ok(), "{name}");
        for (key, value) in pod.metadata.labels.iter().flatten() {
            prop_assert!(names::label_value(value).is_ok(), "{key}={value}");
        }
        render_job(&plan, &ctx).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }

    #[test]
    fn distinct_identities_get_distinct_names(
        a in (any_name(), any_name(), proptest::option::of("[a-z0-9]{1,8}"), 0u64..5, "[a-z0-9]{1,4}"),
        b in (any_name(), any_name(), proptest::option::of("[a-z0-9]{1,8}"), 0u64..5, "[a-z0-9]{1,4}"),
    ) {
        prop_assume!(a != b);
        let name = |(p, s, m, build, run): &(String, String, Option<String>, u64, String)| {
            object_name(&plan_for(p, s, m.clone()), &RunContext::new(run.clone(), *build))
        };
        prop_assert_ne!(name(&a), name(&b));
    }

    #[test]
    fn long_shared_prefixes_do_not_collide(prefix in "[a-z]{70,90}", x in "[a-z]{1,5}", y in "[a-z]{1,5}") {
        prop_assume!(x != y);
        let ctx = RunContext::new("r", 1);
        let a = object_name(&plan_for(&prefix, &x, None), &ctx);
        let b = object_name(&plan_for(&prefix, &y, None), &ctx);
        prop_assert!(a.len() <= 63 && b.len() <= 63);
        prop_assert_ne!(a, b);
    }

    #[test]
    fn rendering_is_deterministic_and_yaml_round_trips(
        values in proptest::collection::vec(prop_oneof![".{0,60}", "[ -~\n\t]{0,200}", "( {0,3}[a-z]{1,9}\n?){10,40}"], 1..6),
    ) {
        let mut plan = plan_for("p", "s", None);
        plan.env = values.iter().enumerate().map(|(i, v)| EnvVar::value(format!("V{i}"), v.clone())).collect();
        plan.args = values.clone();
        let ctx = RunContext::new("run", 1);
        let first = render_pod(&plan, &ctx).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let second = render_pod(&plan.clone(), &ctx.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let yaml = to_canonical_yaml(&first).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&yaml, &to_canonical_yaml(&second).map_err(|e| TestCaseError::fail(e.to_string()))?);
        prop_assert_eq!(
            to_canonical_json(&first).map_err(|e| TestCaseError::fail(e.to_string()))?,
            to_canonical_json(&second).map_err(|e| TestCaseError::fail(e.to_string()))?
        );
        let back: Pod = serde_saphyr::from_str(&yaml).map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
        prop_assert_eq!(back, first);
    }

    #[test]
    fn secret_values_never_appear(
        secrets in proptest::collection::btree_map("[a-z]{3,8}", "[A-Za-z0-9]{16,24}", 1..5),
        plain in proptest::collection::vec("[a-z]{1,10}", 0..4),
    ) {
        // The "cluster" knows the values; the plan only holds references.
        let mut plan = plan_for("p", "s", None);
        let mut sidecar = SidecarConfig::new("svc", "redis:7");
        for (i, (key, _value)) in secrets.iter().enumerate() {
            plan.env.push(EnvVar::secret(format!("SECRET_{i}"), "ci-secrets", key.clone()));
            sidecar.env.push(EnvVar::secret(format!("SECRET_{i}"), "ci-secrets", key.clone()));
        }
        for (i, value) in plain.iter().enumerate() {
            plan.env.push(EnvVar::value(format!("PLAIN_{i}"), value.clone()));
        }
        plan.sidecars.push(sidecar);
        let ctx = RunContext::new("run", 1);
        let pod = render_pod(&plan, &ctx).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let job = render_job(&plan, &ctx).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let outputs = [
            to_canonical_yaml(&pod), to_canonical_json(&pod), to_canonical_yaml(&job), to_canonical_json(&job),
        ];
        for text in outputs {
            let text = text.map_err(|e| TestCaseError::fail(e.to_string()))?;
            for value in secrets.values() {
                prop_assert!(!text.contains(value.as_str()), "secret value {value} leaked");
            }
            prop_assert!(text.contains("secretKeyRef"));
        }
    }
}

#[test]
fn examples_render_the_same_bytes_twice() {
    let first: Vec<String> = common::rendered()
        .iter()
        .map(|(_, o)| to_canonical_yaml(o).expect("yaml"))
        .collect();
    let second: Vec<String> = common::rendered()
        .iter()
        .map(|(_, o)| to_canonical_yaml(o).expect("yaml"))
        .collect();
    assert_eq!(first, second);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any probe numbers the API server accepts (int32) and any step timeout
    /// render or fail with an error: never a panic (the overflow of issue 11).
    #[test]
    fn any_probe_numbers_and_timeouts_render_without_panic(
        period in prop_oneof![Just(i32::MAX), Just(1), any::<i32>()],
        timeout in prop_oneof![Just(i32::MAX), Just(i32::MAX - 1), any::<i32>()],
        step_timeout in proptest::option::of(prop_oneof![Just(u64::MAX), any::<u64>(), 1u64..100_000]),
    ) {
        use c8s_pod_builder::model::sidecar::{Port, PortRef, Readiness, ReadinessProbe};
        let mut plan = plan_for("p", "s", None);
        plan.timeout_seconds = step_timeout;
        let mut db = SidecarConfig::new("db", "redis:7");
        db.ports.push(Port::tcp(6379));
        db.readiness = Readiness::Probe(
            ReadinessProbe::tcp(PortRef::Number(6379))
                .with_period_seconds(period)
                .with_timeout_seconds(timeout),
        );
        plan.sidecars.push(db);
        if let Ok(pod) = render_pod(&plan, &RunContext::new("r", 1)) {
            let spec = pod.spec.unwrap_or_default();
            let probe = spec.init_containers.iter().flatten().find_map(|c| c.startup_probe.clone());
            let threshold = probe.and_then(|p| p.failure_threshold).unwrap_or(0);
            prop_assert!(threshold >= 1);
        }
    }
}

//! Pod overrides and `podSpecPatch` on rendered pods: a snapshot, the
//! precedence of context over step over pipeline, the patch's merge rules,
//! its strictness, and the Pod Security level a patch leaves.

use c8s_pod_builder::model::{MemorySource, parse_pipeline};
use c8s_pod_builder::{
    Error, RunContext, SecurityProfile, pod_security_level, render_job, render_pod, to_canonical_yaml,
};
use k8s_openapi::api::core::v1::{Pod, Toleration};
use serde_json::json;

const PIPELINE: &str = "\
name: shop
repository: https://example.com/shop.git
nodeSelector: { pool: ci }
tolerations: [{ key: ci, operator: Exists, effect: NoSchedule }]
imagePullSecrets: [regcred]
labels: { team: payments }
ephemeralStorage: { request: 1Gi, limit: 4Gi }
steps:
  - name: test
    image: golang:1.23
    commands: [go test ./...]
    serviceAccountName: ci-runner
    runtimeClassName: gvisor
    priorityClassName: ci-high
    nodeSelector: { pool: ci-big }
    annotations: { example.com/owner: payments }
    affinity:
      podAntiAffinity:
        preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 50
            podAffinityTerm:
              labelSelector: { matchLabels: { c8s.dev/step: test } }
              topologyKey: kubernetes.io/hostname
    podSpecPatch:
      dnsConfig: { options: [{ name: ndots, value: \"2\" }] }
      containers: [{ name: main, imagePullPolicy: Always }]
";

fn ctx() -> RunContext {
    RunContext::new("run-1", 7).with_commit("0123456789abcdef0123456789abcdef01234567")
}

fn plan(text: &str) -> c8s_pod_builder::model::TaskPlan {
    let pipeline = parse_pipeline(".c8s.yaml", text, &MemorySource::new()).expect("valid pipeline");
    let mut run = pipeline.expand(None).expect("expands");
    run.plans.remove(0)
}

fn render(text: &str, ctx: &RunContext) -> Pod {
    render_pod(&plan(text), ctx).expect("renders")
}

#[test]
fn overrides_reach_the_pod() {
    let pod = render(PIPELINE, &ctx());
    insta::assert_snapshot!("pod-overrides", to_canonical_yaml(&pod).expect("yaml"));
    let spec = pod.spec.as_ref().expect("spec");
    // Step over pipeline for maps, both for lists.
    assert_eq!(spec.node_selector.as_ref().expect("selector")["pool"], "ci-big");
    assert_eq!(spec.service_account_name.as_deref(), Some("ci-runner"));
    // A named account is there to reach the API: its token is mounted.
    assert_eq!(spec.automount_service_account_token, None);
    let main = spec.containers.iter().find(|c| c.name == "main").expect("main");
    assert_eq!(main.image_pull_policy.as_deref(), Some("Always"));
    let resources = main.resources.as_ref().expect("resources");
    assert_eq!(
        resources.limits.as_ref().expect("limits")["ephemeral-storage"].0,
        "4Gi"
    );
    assert_eq!(pod.metadata.labels.as_ref().expect("labels")["team"], "payments");
    // The same overrides reach a Job's pod template.
    let job = render_job(&plan(PIPELINE), &ctx()).expect("job");
    let template = job.spec.expect("spec").template;
    assert_eq!(
        template
            .spec
            .as_ref()
            .and_then(|s| s.runtime_class_name.as_deref()),
        Some("gvisor")
    );
    assert_eq!(
        template.metadata.expect("meta").labels.expect("labels")["team"],
        "payments"
    );
}

#[test]
fn the_run_context_wins_over_the_file() {
    let toleration = Toleration {
        key: Some("spot".into()),
        operator: Some("Exists".into()),
        ..Default::default()
    };
    let ctx = ctx()
        .with_node_selector("pool", "operator-pool")
        .with_service_account("deployer")
        .with_image_pull_secret("regcred")
        .with_image_pull_secret("mirror")
        .with_toleration(toleration)
        .with_pod_spec_patch(json!({"dnsConfig": null, "hostname": "ci"}));
    let spec = render(PIPELINE, &ctx).spec.expect("spec");
    assert_eq!(spec.node_selector.expect("selector")["pool"], "operator-pool");
    assert_eq!(spec.service_account_name.as_deref(), Some("deployer"));
    let secrets: Vec<String> = spec
        .image_pull_secrets
        .into_iter()
        .flatten()
        .map(|s| s.name)
        .collect();
    assert_eq!(secrets, ["regcred", "mirror"]);
    let keys: Vec<_> = spec.tolerations.into_iter().flatten().map(|t| t.key).collect();
    assert_eq!(keys, [Some("ci".to_owned()), Some("spot".to_owned())]);
    // The context's patch applies after the step's: it removed dnsConfig again.
    assert_eq!(spec.dns_config, None);
    assert_eq!(spec.hostname.as_deref(), Some("ci"));
}

#[test]
fn without_an_account_no_token_is_mounted() {
    let text = "name: shop\nrepository: r\nsteps: [{ name: a, image: alpine:3 }]\n";
    let spec = render(text, &ctx()).spec.expect("spec");
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(spec.service_account_name, None);
}

#[test]
fn a_patch_field_the_pod_spec_does_not_have_is_an_error() {
    let ctx =
        ctx().with_pod_spec_patch(json!({"containers": [{"name": "main", "imagePullPolcy": "Always"}]}));
    let err = render_pod(&plan(PIPELINE), &ctx).expect_err("typo");
    assert_eq!(
        err.to_string(),
        "podSpecPatch: spec.containers[0].imagePullPolcy: unknown field"
    );
}

#[test]
fn a_patched_pod_is_validated_again() {
    let ctx = ctx().with_pod_spec_patch(json!({"containers": [{"name": "main", "image": ""}]}));
    let err = render_pod(&plan(PIPELINE), &ctx).expect_err("empty image");
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("spec.containers[0].image"), "{err}");
}

#[test]
fn a_patch_can_add_and_delete_named_items() {
    let ctx = ctx().with_pod_spec_patch(json!({
        "volumes": [{"name": "docker-sock", "emptyDir": {}}],
        "containers": [{"name": "main", "env": [{"name": "EXTRA", "value": "1"}]}]
    }));
    let spec = render(PIPELINE, &ctx).spec.expect("spec");
    let volumes: Vec<&str> = spec.volumes.iter().flatten().map(|v| v.name.as_str()).collect();
    assert_eq!(volumes, ["workspace", "c8s-home", "docker-sock"]);
    let main = spec.containers.iter().find(|c| c.name == "main").expect("main");
    let env = main.env.as_ref().expect("env");
    assert_eq!(env.iter().filter(|e| e.name == "EXTRA").count(), 1, "{env:?}");
    // The untouched fields of main stay.
    assert_eq!(main.image.as_deref(), Some("golang:1.23"));

    let ctx = ctx.with_pod_spec_patch(json!({"volumes": [{"name": "workspace", "$patch": "delete"}]}));
    let err = render_pod(&plan(PIPELINE), &ctx).expect_err("main mounts the deleted volume");
    assert!(err.to_string().contains("workspace"), "{err}");
}

#[test]
fn the_pod_security_level_a_patch_leaves_is_reported() {
    let spec = render(PIPELINE, &ctx()).spec.expect("spec");
    assert_eq!(pod_security_level(&spec), Some(SecurityProfile::Restricted));
    let ctx = ctx().with_pod_spec_patch(json!({"hostNetwork": true}));
    let spec = render(PIPELINE, &ctx).spec.expect("spec");
    assert_eq!(pod_security_level(&spec), None, "hostNetwork meets no profile");
    let ctx = ctx.with_pod_spec_patch(json!({
        "containers": [{"name": "main", "securityContext": {"runAsNonRoot": null, "runAsUser": 0}}]
    }));
    let spec = render(PIPELINE, &ctx).spec.expect("spec");
    assert_eq!(pod_security_level(&spec), Some(SecurityProfile::Baseline));
}

#[test]
fn reserved_labels_from_a_plan_built_in_code_are_refused() {
    let mut plan = plan(PIPELINE);
    plan.pod.labels.insert("c8s.dev/run".into(), "x".into());
    let err = render_pod(&plan, &ctx()).expect_err("reserved");
    assert!(matches!(err, Error::ReservedLabel { .. }), "{err}");
}

//! The charts under the real `helm` 4: `helm lint --strict` on every chart,
//! `helm template` with default values and with overrides, every output
//! through `kubernetes-validate --strict` (1.33.0 and 1.37.0), the pipeline
//! chart equal to pod-builder's render (what `c8s render` prints), and values
//! that look like template code staying literal.
//!
//! Every chart is generated and every helm process run once, in parallel, by
//! [`outputs`]; the tests share the results.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use c8s_helm::pod_builder::containers;
use c8s_helm::pod_builder::model::sidecar::{SidecarConfig, parse_sidecars};
use c8s_helm::pod_builder::model::{TaskPlan, TaskStep, parse_pipeline, parse_task_config, visit_task};
use c8s_helm::pod_builder::{Object, RunContext, SidecarMode, names, render_job, render_pod};
use c8s_helm::{pipeline_chart, sidecar_chart};
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};
use support::{DirSource, documents, root, sidecar_file};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const OTHER_COMMIT: &str = "fedcba9876543210fedcba9876543210fedcba98";
const SIDECAR_EXAMPLES: [&str; 3] = ["monitoring-agent", "postgres", "services"];

/// Sidecars whose values look like Go templates.
const TRICKY_SIDECARS: &str = r#"
- name: tricky
  image: busybox:1.37.0
  command: ["sh", "-c", "{{- fail \"boom\" }}"]
  args: ["{{ .Release.Name }}", "{{ include \"tricky.sidecars\" . }}", "{{/* gone? */}}", "}}{{", "{{ tpl \"x\" . }}"]
  env:
    - name: GREETING
      value: "{{ .Release.Name }} {{ .Values.nativeSidecars }} {{- fail \"x\" }}"
    - name: TOKEN
      secretKeyRef: { name: ci-secrets, key: token }
  ports: [{ containerPort: 9000, name: web }]
"#;

/// A pipeline whose commands, env and sidecars look like Go templates.
const TRICKY_PIPELINE: &str = r#"
name: tricky
repository: https://example.com/{{ .Release.Name }}.git
steps:
  - name: echo
    image: busybox:1.37.0
    commands: ["echo '{{ .Release.Name }}'", "{{- fail \"boom\" }}"]
    env: { LITERAL: "{{ .Values.namespace }}", OTHER: "{{ template \"x\" }}" }
    sidecars:
      - name: mock
        image: busybox:1.37.0
        args: ["{{ .Chart.Name }}"]
        ports: [{ containerPort: 8080 }]
"#;

fn orders() -> (Vec<TaskPlan>, RunContext) {
    let file = root().join("examples/pipelines/orders.c8s.yaml");
    let text = std::fs::read_to_string(&file).expect("pipeline example");
    let dir = file.parent().expect("dir").to_path_buf();
    let pipeline = parse_pipeline("orders.c8s.yaml", &text, &DirSource(dir)).expect("valid pipeline");
    let run = pipeline.expand(None).expect("expands");
    (run.plans, context(&pipeline.repository))
}

fn task() -> Vec<TaskPlan> {
    let file = root().join("examples/tasks/integration-task.yml");
    let text = std::fs::read_to_string(&file).expect("task example");
    let config = parse_task_config("integration-task.yml", &text).expect("valid task");
    let reader = DirSource(file.parent().expect("dir").to_path_buf());
    vec![visit_task("integration-task", &TaskStep::new("task", config), &reader).expect("plan")]
}

fn tricky_pipeline() -> (Vec<TaskPlan>, RunContext) {
    let pipeline =
        parse_pipeline("tricky.c8s.yaml", TRICKY_PIPELINE, &DirSource(root())).expect("valid pipeline");
    let run = pipeline.expand(None).expect("expands");
    (run.plans, context(&pipeline.repository))
}

/// The context `c8s render --commit C --build 7 --run-id run-7` uses.
fn context(repository: &str) -> RunContext {
    RunContext::new("run-7", 7)
        .with_commit(COMMIT)
        .with_repository(repository)
}

/// pod-builder's objects for `plans`, parsed back from the canonical YAML stream.
fn rendered(plans: &[TaskPlan], ctx: &RunContext, job: bool) -> Vec<Value> {
    let objects: Vec<Object> = plans
        .iter()
        .map(|plan| {
            if job {
                render_job(plan, ctx).map(Object::from)
            } else {
                render_pod(plan, ctx).map(Object::from)
            }
        })
        .collect::<Result<_, _>>()
        .expect("renders");
    let yaml = c8s_helm::pod_builder::to_canonical_yaml_stream(&objects).expect("serialises");
    documents(&yaml)
}

/// A chart that uses the `services` chart as a dependency (under `charts/`).
const PARENT_DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-parent
spec:
  selector:
    matchLabels: { app: parent }
  template:
    metadata:
      labels: { app: parent }
    spec:
      securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: RuntimeDefault } }
      initContainers:
        {{- include "services.sidecars" (dict "Values" (index .Values "services")) | nindent 8 }}
      containers:
        - name: app
          image: busybox:1.37.0
      volumes:
        {{- include "services.volumes" (dict "Values" (index .Values "services")) | nindent 8 }}
"#;

fn write_parent_chart(services: &Path) {
    let parent = chart_dir("parent");
    let copy = parent.join("charts/services/templates");
    std::fs::create_dir_all(&copy).expect("parent chart dirs");
    for file in ["Chart.yaml", "values.yaml"] {
        std::fs::copy(services.join(file), parent.join("charts/services").join(file)).expect("copy");
    }
    for file in std::fs::read_dir(services.join("templates")).expect("templates") {
        let file = file.expect("entry").path();
        std::fs::copy(&file, copy.join(file.file_name().expect("name"))).expect("copy");
    }
    std::fs::create_dir_all(parent.join("templates")).expect("templates dir");
    std::fs::write(
        parent.join("Chart.yaml"),
        "apiVersion: v2\nname: parent\nversion: 0.1.0\ndescription: uses the services chart\n\
         dependencies:\n  - name: services\n    version: 0.1.0\n",
    )
    .expect("Chart.yaml");
    std::fs::write(parent.join("values.yaml"), "{}\n").expect("values.yaml");
    std::fs::write(parent.join("templates/deployment.yaml"), PARENT_DEPLOYMENT).expect("template");
}

/// Every helm output, by case name.
struct Outputs {
    templates: BTreeMap<&'static str, String>,
    failures: BTreeMap<&'static str, String>,
}

fn chart_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("helm-charts-{}", std::process::id()))
        .join(name)
}

/// Writes every chart, lints them all in one `helm lint --strict`, runs every
/// `helm template` case in parallel, and validates every output with
/// kubernetes-validate (one call per Kubernetes version).
fn outputs() -> &'static Outputs {
    static OUTPUTS: OnceLock<Outputs> = OnceLock::new();
    OUTPUTS.get_or_init(|| {
        let helm = support::helm();
        let mut charts = Vec::new();
        for stem in SIDECAR_EXAMPLES {
            charts.push((
                stem.to_owned(),
                sidecar_chart(stem, &sidecar_file(stem)).expect("chart"),
            ));
        }
        let tricky = parse_sidecars("tricky.yml", TRICKY_SIDECARS).expect("valid sidecars");
        charts.push((
            "tricky".to_owned(),
            sidecar_chart("tricky", &tricky).expect("chart"),
        ));
        let (orders, ctx) = orders();
        charts.push((
            "orders-pods".to_owned(),
            pipeline_chart("orders-service", &orders, &ctx, false).expect("chart"),
        ));
        charts.push((
            "orders-jobs".to_owned(),
            pipeline_chart("orders-service", &orders, &ctx, true).expect("chart"),
        ));
        let task_ctx = context("");
        charts.push((
            "task-jobs".to_owned(),
            pipeline_chart("integration-task", &task(), &task_ctx, true).expect("chart"),
        ));
        let old = task_ctx.clone().with_kubernetes_minor(28);
        charts.push((
            "task-old".to_owned(),
            pipeline_chart("integration-task", &task(), &old, false).expect("chart"),
        ));
        let (tricky_plans, tricky_ctx) = tricky_pipeline();
        charts.push((
            "tricky-pipeline".to_owned(),
            pipeline_chart("tricky", &tricky_plans, &tricky_ctx, false).expect("chart"),
        ));
        for (dir, chart) in &charts {
            chart.write_to(&chart_dir(dir)).expect("write chart");
        }

        write_parent_chart(&chart_dir("services"));
        let mut lint_dirs: Vec<PathBuf> = charts.iter().map(|(dir, _)| chart_dir(dir)).collect();
        lint_dirs.push(chart_dir("parent"));

        let lint = support::run(Command::new(&helm).args(["lint", "--strict"]).args(&lint_dirs));
        assert!(
            lint.contains(&format!("{} chart(s) linted, 0 chart(s) failed", lint_dirs.len())),
            "{lint}"
        );

        let example = ["--set", "example.enabled=true"];
        let legacy = ["--set", "example.enabled=true", "--set", "nativeSidecars=false"];
        let overrides: &[&str] = &[
            "--set",
            "example.enabled=true",
            "--set",
            "nativeSidecars=false",
            "--set",
            "sidecars.redis.enabled=false",
            "--set",
            "sidecars.payments-mock.image.tag=3.10.0",
            "--set",
            "sidecars.payments-mock.resources.limits.memory=1Gi",
        ];
        let pipeline_overrides: &[&str] = &[
            "--set",
            "sidecarMode=legacy",
            "--set",
            "namespace=ci",
            "--set-string",
            &format!("run.commit={OTHER_COMMIT}"),
            "--set",
            "images.unit=golang:1.25",
        ];
        let mut cases: Vec<(&'static str, &str, Vec<&str>)> = vec![
            ("services-default", "services", vec![]),
            ("services-overrides", "services", overrides.to_vec()),
            ("tricky-native", "tricky", example.to_vec()),
            ("tricky-legacy", "tricky", legacy.to_vec()),
            ("orders-pods", "orders-pods", vec![]),
            (
                "orders-pods-overrides",
                "orders-pods",
                pipeline_overrides.to_vec(),
            ),
            ("orders-jobs", "orders-jobs", vec![]),
            ("task-jobs", "task-jobs", vec![]),
            ("task-old", "task-old", vec![]),
            ("tricky-pipeline", "tricky-pipeline", vec![]),
            (
                "parent",
                "parent",
                vec!["--set", "services.sidecars.redis.enabled=false"],
            ),
        ];
        for (native, legacy_case, stem) in [
            (
                "monitoring-agent-native",
                "monitoring-agent-legacy",
                "monitoring-agent",
            ),
            ("postgres-native", "postgres-legacy", "postgres"),
            ("services-native", "services-legacy", "services"),
        ] {
            cases.push((native, stem, example.to_vec()));
            cases.push((legacy_case, stem, legacy.to_vec()));
        }
        let failing: Vec<(&'static str, &str, Vec<&str>)> = vec![
            ("build", "orders-pods", vec!["--set", "run.build=8"]),
            ("branch", "orders-pods", vec!["--set", "run.branch=main"]),
            ("mode", "orders-pods", vec!["--set", "sidecarMode=sidecar"]),
            ("old-native", "task-old", vec!["--set", "sidecarMode=native"]),
            // A legacy Job with sidecars could never complete: no legacy form.
            ("legacy-job", "task-jobs", vec!["--set", "sidecarMode=legacy"]),
            (
                "short-commit",
                "orders-pods",
                vec!["--set-string", "run.commit=abc1234"],
            ),
        ];

        let (templates, failures) = std::thread::scope(|scope| {
            let helm = &helm;
            let ok: Vec<_> = cases
                .iter()
                .map(|(case, dir, args)| {
                    scope.spawn(move || (*case, support::template(helm, &chart_dir(dir), args)))
                })
                .collect();
            let bad: Vec<_> = failing
                .iter()
                .map(|(case, dir, args)| {
                    scope.spawn(move || {
                        let stderr = support::run_failing(
                            Command::new(helm)
                                .args(["template", "release-1"])
                                .arg(chart_dir(dir))
                                .args(args),
                        );
                        (*case, stderr)
                    })
                })
                .collect();
            let templates: BTreeMap<_, _> = ok.into_iter().map(|h| h.join().expect("helm thread")).collect();
            let failures: BTreeMap<_, _> = bad.into_iter().map(|h| h.join().expect("helm thread")).collect();
            (templates, failures)
        });

        // Every non-empty output through kubernetes-validate, all files per call.
        let out_dir = chart_dir("rendered");
        std::fs::create_dir_all(&out_dir).expect("output dir");
        let mut files = Vec::new();
        for (case, text) in &templates {
            if !documents(text).is_empty() {
                let file = out_dir.join(format!("{case}.yaml"));
                std::fs::write(&file, text).expect("write output");
                files.push(file);
            }
        }
        std::thread::scope(|scope| {
            let files = &files;
            let checks: Vec<_> = ["1.33.0", "1.37.0"]
                .into_iter()
                .map(|version| scope.spawn(move || support::kubernetes_validate(version, files)))
                .collect();
            for check in checks {
                check.join().expect("kubernetes-validate");
            }
        });
        // Everything needed is in memory now.
        let _ = std::fs::remove_dir_all(chart_dir(""));
        Outputs { templates, failures }
    })
}

fn template(case: &str) -> Vec<Value> {
    documents(&outputs().templates[case])
}

fn deployment(case: &str) -> Deployment {
    let docs = template(case);
    assert_eq!(docs.len(), 1, "{case}: one Deployment");
    serde_json::from_value(docs[0].clone()).expect("a Deployment")
}

fn json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("json")
}

#[test]
#[ignore = "needs helm and kubernetes-validate"]
fn every_output_is_valid_for_kubernetes() {
    // `outputs` lints every chart and validates every output; a failure panics there.
    let outputs = outputs();
    assert!(outputs.templates.len() >= 15);
}

#[test]
#[ignore = "needs helm"]
fn pipeline_chart_with_default_values_equals_c8s_render() {
    let (orders, ctx) = orders();
    assert_eq!(template("orders-pods"), rendered(&orders, &ctx, false));
    assert_eq!(template("orders-jobs"), rendered(&orders, &ctx, true));
    let task_ctx = context("");
    assert_eq!(template("task-jobs"), rendered(&task(), &task_ctx, true));
    let old = task_ctx.with_kubernetes_minor(28);
    assert_eq!(template("task-old"), rendered(&task(), &old, false));
    assert_eq!(template("orders-pods").len(), orders.len());
}

#[test]
#[ignore = "needs helm"]
fn pipeline_overrides_equal_c8s_render_of_the_overridden_run() {
    let (mut orders, ctx) = orders();
    for plan in &mut orders {
        if plan.identity.step == "unit" {
            plan.image = "golang:1.25".to_owned();
        }
    }
    let overridden = ctx
        .with_namespace("ci")
        .with_commit(OTHER_COMMIT)
        .with_sidecar_mode(SidecarMode::Legacy);
    assert_eq!(
        template("orders-pods-overrides"),
        rendered(&orders, &overridden, false)
    );
}

#[test]
#[ignore = "needs helm"]
fn fixed_values_and_impossible_modes_fail_with_a_reason() {
    let failures = &outputs().failures;
    assert!(
        failures["build"].contains("run.build is fixed"),
        "{}",
        failures["build"]
    );
    assert!(
        failures["branch"].contains("run.branch is fixed"),
        "{}",
        failures["branch"]
    );
    assert!(
        failures["mode"].contains("sidecarMode must be native or legacy"),
        "{}",
        failures["mode"]
    );
    assert!(
        failures["old-native"].contains("native sidecars need Kubernetes >= 1.29"),
        "{}",
        failures["old-native"]
    );
    assert!(
        failures["legacy-job"].contains("a legacy Job with sidecars could never complete"),
        "{}",
        failures["legacy-job"]
    );
    assert!(
        failures["short-commit"].contains("run.commit must be a full hex object name"),
        "{}",
        failures["short-commit"]
    );
}

/// pod-builder's own sidecar container, without the pipeline's workspace mounts.
fn pod_builder_sidecar(config: &SidecarConfig, mode: SidecarMode) -> Value {
    let scratch: Vec<String> = (0..config.scratch.len())
        .map(|i| names::scratch_volume_name(&config.name, i))
        .collect();
    let mut container = containers::sidecar(config, &RunContext::new("helm", 0), mode, Vec::new(), &scratch);
    // Without workspace mounts and scratch, the chart leaves out `volumeMounts: []`.
    if container.volume_mounts.as_ref().is_some_and(Vec::is_empty) {
        container.volume_mounts = None;
    }
    json(&container)
}

#[test]
#[ignore = "needs helm"]
fn injected_sidecars_are_pod_builders_sidecar_containers() {
    for stem in SIDECAR_EXAMPLES {
        let sidecars = sidecar_file(stem);
        for (case, mode) in [("native", SidecarMode::Native), ("legacy", SidecarMode::Legacy)] {
            let deployment = deployment(&format!("{stem}-{case}"));
            let spec = deployment.spec.template.spec.expect("pod spec");
            assert_eq!(
                c8s_helm::pod_builder::check_restricted(&spec),
                Vec::<String>::new(),
                "{stem} {case}"
            );
            let expected: Vec<Value> = sidecars.iter().map(|s| pod_builder_sidecar(s, mode)).collect();
            let injected = match mode {
                SidecarMode::Native => spec.init_containers.clone().expect("init containers"),
                SidecarMode::Legacy => {
                    assert!(
                        spec.init_containers.is_none(),
                        "{stem}: legacy sidecars are not init containers"
                    );
                    spec.containers[1..].to_vec()
                }
            };
            assert_eq!(spec.containers[0].name, "app");
            assert_eq!(json(&injected), json(&expected), "{stem} {case}");
            let volumes: Vec<String> = spec.volumes.iter().flatten().map(|v| v.name.clone()).collect();
            let scratch: Vec<String> = sidecars
                .iter()
                .flat_map(|s| (0..s.scratch.len()).map(|i| names::scratch_volume_name(&s.name, i)))
                .collect();
            assert_eq!(volumes, scratch, "{stem} {case}");
            // Service names: every sidecar name and alias on 127.0.0.1, as pod-builder writes them.
            let hostnames: Vec<String> = sidecars
                .iter()
                .flat_map(|s| std::iter::once(s.name.clone()).chain(s.aliases.iter().cloned()))
                .collect();
            let aliases = spec.host_aliases.clone().expect("hostAliases");
            assert_eq!(aliases.len(), 1, "{stem} {case}");
            assert_eq!(aliases[0].ip, "127.0.0.1", "{stem} {case}");
            assert_eq!(
                aliases[0].hostnames.clone().unwrap_or_default(),
                hostnames,
                "{stem} {case}"
            );
        }
    }
}

#[test]
#[ignore = "needs helm"]
fn a_parent_chart_injects_the_sidecars_of_its_dependency() {
    let spec = deployment("parent").spec.template.spec.expect("pod spec");
    let sidecars = sidecar_file("services");
    let mock = sidecars.iter().find(|s| s.name == "payments-mock").expect("mock");
    let injected = spec.init_containers.expect("init containers");
    assert_eq!(
        json(&injected),
        json(&[pod_builder_sidecar(mock, SidecarMode::Native)])
    );
    let volumes: Vec<&str> = spec.volumes.iter().flatten().map(|v| v.name.as_str()).collect();
    assert_eq!(volumes, ["scratch-payments-mock-0"]);
}

#[test]
#[ignore = "needs helm"]
fn sidecar_values_override_the_containers() {
    assert!(
        template("services-default").is_empty(),
        "the example is off by default"
    );
    let spec = deployment("services-overrides")
        .spec
        .template
        .spec
        .expect("pod spec");
    assert!(spec.init_containers.is_none());
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["app", "payments-mock"], "redis is disabled");
    let mock = &spec.containers[1];
    assert_eq!(mock.image.as_deref(), Some("wiremock/wiremock:3.10.0"));
    assert!(mock.readiness_probe.is_some() && mock.startup_probe.is_none());
    assert!(mock.restart_policy.is_none());
    let limits = mock
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .expect("limits");
    assert_eq!(limits["memory"].0, "1Gi");
    assert_eq!(limits["cpu"].0, "1");
    let volumes: Vec<&str> = spec.volumes.iter().flatten().map(|v| v.name.as_str()).collect();
    assert_eq!(volumes, ["scratch-payments-mock-0"]);
}

#[test]
#[ignore = "needs helm"]
fn values_that_look_like_templates_stay_literal() {
    let sidecar = &parse_sidecars("tricky.yml", TRICKY_SIDECARS).expect("valid")[0];
    for (case, field) in [
        ("tricky-native", "initContainers"),
        ("tricky-legacy", "containers"),
    ] {
        let docs = template(case);
        let containers = docs[0]["spec"]["template"]["spec"][field]
            .as_array()
            .expect("containers");
        let tricky = containers
            .iter()
            .find(|c| c["name"] == "tricky")
            .expect("tricky sidecar");
        assert_eq!(tricky["command"], json(&sidecar.command), "{case}");
        assert_eq!(tricky["args"], json(&sidecar.args), "{case}");
        assert_eq!(
            tricky["env"],
            json!([
                { "name": "GREETING", "value": "{{ .Release.Name }} {{ .Values.nativeSidecars }} {{- fail \"x\" }}" },
                { "name": "TOKEN", "valueFrom": { "secretKeyRef": { "name": "ci-secrets", "key": "token" } } },
            ]),
            "{case}"
        );
    }
    let (plans, ctx) = tricky_pipeline();
    let docs = template("tricky-pipeline");
    assert_eq!(docs, rendered(&plans, &ctx, false));
    let text = serde_json::to_string(&docs).expect("json");
    assert!(
        text.contains(r#"echo '{{ .Release.Name }}'\n{{- fail \"boom\" }}"#),
        "{text}"
    );
    assert!(text.contains("https://example.com/{{ .Release.Name }}.git"));
    assert!(
        !text.contains("release-1"),
        "no value was evaluated as a template"
    );
}

//! Concourse pipelines lowered to a job's DAG of pods: resources through the
//! resource protocol, artifacts by name, credentials through Secrets, hooks
//! with their conditions, and steps c8s cannot run listed, never dropped.

use std::collections::BTreeMap;

use c8s_pipeline_model::concourse::{JobPlan, When, lower_job, parse_concourse_pipeline};
use c8s_pipeline_model::{MemorySource, Vars};

const PIPELINE: &str = r#"
resources:
- name: repo
  type: git
  source: { uri: https://github.com/acme/app.git, private_key: ((deploy-key)) }
- name: builder
  type: registry-image
  source: { repository: ((registry))/builder, tag: "1.10", username: ci, password: ((registry-password)) }
- name: release
  type: github-release
  source: { owner: acme, repository: app, access_token: ((github-token)) }
jobs:
- name: unit
  plan:
  - in_parallel:
    - get: repo
      trigger: true
    - get: builder
  - task: test
    image: builder
    file: repo/ci/test.yml
    input_mapping: { source: repo }
    output_mapping: { report: unit-report }
    on_failure:
      put: release
      params: { body: unit-report/summary.txt }
  - set_pipeline: self
    file: repo/ci/pipeline.yml
- name: ship
  serial: true
  plan:
  - get: repo
    passed: [unit]
  - put: release
    params: { tag: repo/.git/ref }
  ensure:
    task: notify
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: alpine } }
      run: { path: echo, args: [done] }
"#;

const TASK: &str = r#"
platform: linux
inputs: [{ name: source }]
outputs: [{ name: report }]
params: { TOKEN: ((github-token)), URL: "https://x/((github-token))/y", PLAIN: }
run: { path: make, dir: source }
"#;

fn files() -> MemorySource {
    MemorySource::new().with("repo/ci/test.yml", TASK)
}

fn lower(job: &str, versions: &[(&str, &str)]) -> JobPlan {
    let mut vars = Vars::new();
    vars.set("registry", "ghcr.io/acme");
    let pipeline =
        parse_concourse_pipeline("app.yml", PIPELINE, &vars, &files()).unwrap_or_else(|e| panic!("{e}"));
    let versions: BTreeMap<String, String> = versions
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    lower_job(&pipeline, job, &files(), &versions, "app.yml").unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_job_becomes_a_dag_of_get_task_and_put_pods() {
    let job = lower("unit", &[("repo", r#"{"ref":"abc123"}"#)]);
    let names: Vec<(&str, &str)> = job
        .steps
        .iter()
        .map(|s| (s.kind, s.plan.identity.step.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("get", "unit.repo"),
            ("get", "unit.builder"),
            ("task", "unit.test"),
            ("put", "unit.release")
        ]
    );
    let test = &job.steps[2];
    assert_eq!(
        test.depends_on,
        ["unit.repo", "unit.builder"],
        "in_parallel branches both precede the task"
    );
    assert_eq!(
        test.plan.image, "ghcr.io/acme/builder:1.10",
        "image: from the registry resource the get fetched"
    );
    assert_eq!(test.plan.image_pull_secrets, ["c8s-pull-ghcr-io"]);
    assert_eq!(test.plan.inputs.len(), 1);
    assert_eq!(
        (
            test.plan.inputs[0].step.as_str(),
            test.plan.inputs[0].path.as_str()
        ),
        ("unit.repo", "source")
    );
    let hook = &job.steps[3];
    assert_eq!(hook.when, When::Failure);
    assert_eq!(hook.depends_on, ["unit.test"]);
    assert!(
        hook.plan
            .inputs
            .iter()
            .any(|i| i.path == "unit-report" && i.step == "unit.test" && i.output == "report"),
        "output_mapping names the artifact the put reads: {:?}",
        hook.plan.inputs
    );
    assert_eq!(
        job.skipped.len(),
        1,
        "set_pipeline is listed, not dropped: {:?}",
        job.skipped
    );
    assert!(job.skipped[0].contains("set_pipeline"));

    // The get runs the git resource's image with the version given, source from a Secret.
    let get = &job.steps[0].plan;
    assert_eq!(get.image, "concourse/git-resource");
    let env = |name: &str| get.env.iter().find(|e| e.name == name).expect(name);
    assert_eq!(env("C8S_VERSION").value.as_deref(), Some(r#"{"ref":"abc123"}"#));
    let source = env("C8S_SOURCE")
        .secret_key_ref
        .as_ref()
        .expect("source from a Secret");
    assert_eq!(
        (source.name.as_str(), source.key.as_str()),
        ("c8s-app-repo", "source")
    );
    assert_eq!(get.outputs, ["repo"]);
    assert!(
        job.secrets
            .iter()
            .any(|s| s.name == "c8s-app-repo" && s.value.contains("((deploy-key))"))
    );

    // Task params with vars: a whole value by secretKeyRef, inside text by $(VAR).
    let env = |name: &str| test.plan.env.iter().find(|e| e.name == name).expect(name);
    assert_eq!(
        env("TOKEN").secret_key_ref.as_ref().map(|r| r.key.as_str()),
        Some("github-token")
    );
    assert_eq!(env("URL").value.as_deref(), Some("https://x/$(C8S_VAR_0)/y"));
    assert_eq!(
        env("C8S_VAR_0").secret_key_ref.as_ref().map(|r| r.name.as_str()),
        Some("c8s-app-vars")
    );
    assert_eq!(env("PLAIN").value.as_deref(), Some(""));
    for step in &job.steps {
        let plan = serde_json::to_string(&step.plan).expect("json");
        assert!(!plan.contains("(("), "no ((var)) reaches a pod: {plan}");
    }
}

#[test]
fn a_job_without_a_version_checks_and_hooks_carry_their_condition() {
    let job = lower("ship", &[]);
    let get = &job.steps[0].plan;
    assert_eq!(
        get.env
            .iter()
            .find(|e| e.name == "C8S_VERSION")
            .and_then(|e| e.value.as_deref()),
        Some("")
    );
    assert!(get.command[2].contains("/opt/resource/check"));
    let put = &job.steps[1];
    assert!(put.plan.command[2].contains("/opt/resource/out"));
    let ensure = &job.steps[2];
    assert_eq!(ensure.when, When::Always);
    assert_eq!(ensure.depends_on, ["ship.release"]);
    assert_eq!(job.max_in_flight, Some(1), "serial: one build at a time");
}

#[test]
fn broken_references_are_located() {
    let broken = PIPELINE.replace("passed: [unit]", "passed: [nope]").replace(
        "- put: release\n    params: { tag",
        "- put: relase\n    params: { tag",
    );
    let errors = parse_concourse_pipeline("app.yml", &broken, &Vars::new(), &files())
        .expect_err("broken")
        .to_string();
    assert!(errors.contains("passed: job `nope` is not defined"), "{errors}");
    assert!(errors.contains("resource `relase` is not defined"), "{errors}");
    for line in errors.lines() {
        assert!(line.starts_with("app.yml:"), "{line}");
    }
    // The image repository needs its var; the error names it where the step is.
    let pipeline = parse_concourse_pipeline("app.yml", PIPELINE, &Vars::new(), &files())
        .unwrap_or_else(|e| panic!("{e}"));
    let errors = lower_job(&pipeline, "unit", &files(), &BTreeMap::new(), "app.yml")
        .expect_err("no registry")
        .to_string();
    assert!(errors.contains("var ((registry)) has no value"), "{errors}");
    let unknown = PIPELINE.replace("trigger: true", "trigger: true\n      tigger: true");
    let errors = parse_concourse_pipeline("app.yml", &unknown, &Vars::new(), &files())
        .expect_err("unknown")
        .to_string();
    assert!(errors.contains("unknown field `tigger`"), "{errors}");
}

#[test]
fn lowering_is_deterministic() {
    let a = serde_json::to_string(&lower("unit", &[])).expect("json");
    let b = serde_json::to_string(&lower("unit", &[])).expect("json");
    assert_eq!(a, b);
}

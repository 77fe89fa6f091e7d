//! Concourse task steps and task configs written as people write them render to pods that mean what
//! the Concourse file means: params as env with the same text, inputs at
//! their paths, `run.dir`, `run.user`, the image, privileged only when asked.

#[path = "common/tools.rs"]
mod tools;

use c8s_pod_builder::model::concourse::step::parse_task_step;
use c8s_pod_builder::model::{MemorySource, TaskStep, Vars, parse_task_config_with, visit_task};
use c8s_pod_builder::{RunContext, SecurityProfile, pod_security_level, render_pod, to_canonical_yaml};
use k8s_openapi::api::core::v1 as core;

fn ctx() -> RunContext {
    RunContext::new("run-1", 1).with_namespace("ci")
}

/// A task config written for these tests (`tests/fixtures/concourse/`), each
/// carrying a trait real task configs have.
fn fixture_task(name: &str) -> String {
    let path = tools::workspace()
        .join("pod-builder/tests/fixtures/concourse")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn main_container(pod: &core::Pod) -> &core::Container {
    let spec = pod.spec.as_ref().expect("spec");
    spec.containers.iter().find(|c| c.name == "main").expect("main")
}

fn env<'p>(container: &'p core::Container, name: &str) -> Option<&'p core::EnvVar> {
    container.env.iter().flatten().find(|e| e.name == name)
}

const SEED: &str = "\
task: integration-tests
config:
  platform: linux
  image_resource:
    type: registry-image
    source: { repository: my-app }
  run:
    path: ./run-tests.sh
  sidecars:
    - name: postgres
      image: postgres:16
      env:
        - name: POSTGRES_PASSWORD
          value: test
      ports:
        - containerPort: 5432
";

#[test]
fn the_seed_task_step_validates_and_renders_as_written() {
    let step = parse_task_step("step.yml", SEED, &Vars::new(), &MemorySource::new())
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = visit_task("ci", &step, &MemorySource::new()).unwrap_or_else(|e| panic!("{e}"));
    let pod = render_pod(&plan, &ctx()).unwrap_or_else(|e| panic!("{e}"));
    let spec = pod.spec.as_ref().expect("spec");
    let main = main_container(&pod);
    assert_eq!(main.image.as_deref(), Some("my-app"));
    assert_eq!(main.command.as_deref(), Some(&["./run-tests.sh".to_owned()][..]));
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let postgres = init
        .iter()
        .find(|c| c.name == "postgres")
        .expect("postgres sidecar");
    assert_eq!(postgres.restart_policy.as_deref(), Some("Always"));
    assert_eq!(
        env(postgres, "POSTGRES_PASSWORD").and_then(|e| e.value.as_deref()),
        Some("test")
    );
    assert!(
        init.iter().all(|c| c.name != "git-clone"),
        "a Concourse step clones nothing"
    );
    assert_eq!(pod_security_level(spec), Some(SecurityProfile::Restricted));
    let dir = std::env::temp_dir().join(format!("c8s-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("seed.yaml");
    std::fs::write(&file, to_canonical_yaml(&pod).expect("yaml")).expect("write");
    tools::kubernetes_validate("1.33.0", &[file]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_step_with_file_vars_mappings_privileged_and_sidecar_files() {
    let task = "\
platform: linux
image_resource: { type: registry-image, source: { repository: ((registry))/builder, tag: 1.10 } }
inputs: [{ name: src }, { name: cache, optional: true }]
outputs: [{ name: out }]
params: { MODE: ((mode)), EMPTY: }
run: { path: make, dir: src }
";
    let files = MemorySource::new()
        .with("repo/ci/build.yml", task)
        .with(
            "repo/ci/redis.yml",
            "- name: redis\n  image: redis:7\n  ports: [{ containerPort: 6379 }]\n",
        )
        .with(
            "repo/ci/redis2.yml",
            "- name: redis\n  image: redis:7\n  ports: [{ containerPort: 6380 }]\n",
        );
    let text = "\
task: build
file: repo/ci/build.yml
vars: { mode: release }
params: { EXTRA: yes }
input_mapping: { src: repo }
output_mapping: { out: built }
privileged: true
timeout: 30m
attempts: 3
sidecars: [repo/ci/redis.yml]
";
    let mut vars = Vars::new();
    vars.set("registry", "ghcr.io/acme");
    let step = parse_task_step("step.yml", text, &vars, &files).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(step.input_artifact("src"), "repo");
    assert_eq!(step.output_artifact("out"), "built");
    let plan = visit_task("ci", &step, &files).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.image, "ghcr.io/acme/builder:1.10");
    assert_eq!(plan.timeout_seconds, Some(1800));
    assert_eq!(plan.attempts, Some(3));
    assert_eq!(plan.inputs[0].step, "repo", "input src reads artifact repo");
    assert_eq!(plan.inputs[0].path, "src");
    assert!(plan.inputs[1].optional);
    let pod = render_pod(&plan, &ctx()).unwrap_or_else(|e| panic!("{e}"));
    let main = main_container(&pod);
    assert_eq!(
        env(main, "MODE").and_then(|e| e.value.as_deref()),
        Some("release")
    );
    assert_eq!(env(main, "EMPTY").and_then(|e| e.value.as_deref()), Some(""));
    assert_eq!(env(main, "EXTRA").and_then(|e| e.value.as_deref()), Some("yes"));
    assert_eq!(main.working_dir.as_deref(), Some("/workspace/src"));
    let sc = main.security_context.as_ref().expect("security context");
    assert_eq!(sc.privileged, Some(true));
    let spec = pod.spec.as_ref().expect("spec");
    assert_eq!(
        pod_security_level(spec),
        None,
        "privileged pods meet only the privileged profile"
    );
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let optional = init
        .iter()
        .find(|c| c.name == "c8s-input-1")
        .expect("optional input");
    assert!(
        optional.command.as_ref().expect("command")[2].contains("absent"),
        "an absent optional input does not fail the pod"
    );
    assert!(init.iter().any(|c| c.name == "redis"));

    // A sidecar name used in two files: the error names both files.
    let mut twice: TaskStep = step.clone();
    twice.sidecar_files.push("repo/ci/redis2.yml".to_owned());
    let errors = visit_task("ci", &twice, &files)
        .expect_err("duplicate sidecar")
        .to_string();
    assert!(
        errors.contains("repo/ci/redis2.yml") && errors.contains("repo/ci/redis.yml"),
        "{errors}"
    );

    // Without the var, the error lists it; nothing is rendered with a literal ((x)).
    let errors = parse_task_step("step.yml", text, &Vars::new(), &files)
        .expect_err("missing var")
        .to_string();
    assert!(errors.contains("((registry))"), "{errors}");
}

#[test]
fn task_configs_as_people_write_them_render_with_their_meaning() {
    // Empty param, run.user root, a long numeric-looking tag, two artifact inputs.
    let text = fixture_task("build-docs.yml");
    let config =
        parse_task_config_with("build-docs.yml", &text, &Vars::new()).unwrap_or_else(|e| panic!("{e}"));
    let plan = visit_task("ci", &TaskStep::new("docs", config), &MemorySource::new())
        .unwrap_or_else(|e| panic!("{e}"));
    let pod = render_pod(&plan, &ctx()).unwrap_or_else(|e| panic!("{e}"));
    let main = main_container(&pod);
    assert_eq!(
        main.image.as_deref(),
        Some("example/docs-builder:build-20240611-1718093400123456789-42")
    );
    assert_eq!(env(main, "BASE_URL").and_then(|e| e.value.as_deref()), Some(""));
    assert_eq!(
        main.security_context.as_ref().and_then(|s| s.run_as_user),
        Some(0)
    );
    let spec = pod.spec.as_ref().expect("spec");
    assert_eq!(
        pod_security_level(spec),
        Some(SecurityProfile::Baseline),
        "root, not privileged"
    );
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let inputs: Vec<&str> = init
        .iter()
        .filter(|c| c.name.starts_with("c8s-input-"))
        .map(|c| c.command.as_ref().expect("command")[5].as_str())
        .collect();
    assert_eq!(inputs, ["site", "site-theme"]);

    // run.dir, no image_resource (the step gives it).
    let text = fixture_task("lint.yml");
    let config = parse_task_config_with("lint.yml", &text, &Vars::new()).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.image().is_none());
    let mut step = TaskStep::new("lint", config.clone());
    let err = visit_task("ci", &step, &MemorySource::new())
        .expect_err("no image")
        .to_string();
    assert!(err.contains("names no image"), "{err}");
    step.image = Some("golang:1.23".to_owned());
    let plan = visit_task("ci", &step, &MemorySource::new()).unwrap_or_else(|e| panic!("{e}"));
    let pod = render_pod(&plan, &ctx()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        main_container(&pod).working_dir.as_deref(),
        Some("/workspace/service")
    );

    // Registry mirror credentials: an imagePullSecrets reference, never text.
    let text = fixture_task("publish-image.yml");
    let mut vars = Vars::new();
    vars.set("mirror-host", "mirror.example.com");
    vars.set("image-name", "api");
    vars.set("registry-token", "c2VjcmV0");
    let config = parse_task_config_with("publish-image.yml", &text, &vars).unwrap_or_else(|e| panic!("{e}"));
    let plan = visit_task("ci", &TaskStep::new("image", config), &MemorySource::new())
        .unwrap_or_else(|e| panic!("{e}"));
    let pod = render_pod(&plan, &ctx()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        main_container(&pod).image.as_deref(),
        Some("mirror.example.com/concourse/oci-build-task:0.11.1")
    );
    let secrets = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.clone())
        .unwrap_or_default();
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].name, "c8s-pull-mirror-example-com");
    let yaml = to_canonical_yaml(&pod).expect("yaml");
    assert!(
        !yaml.contains("mirror-username") && !has_unresolved_var(&yaml),
        "{yaml}"
    );
}

#[test]
fn templates_for_other_tools_are_rejected_with_the_reason() {
    let cases = [
        ("platform: linux\nrun: { path: ((grab meta.x)) }\n", "spruce"),
        (
            "#@ load(\"@ytt:data\", \"data\")\nplatform: linux\nrun: { path: x }\n",
            "ytt",
        ),
        (
            "platform: linux\nparams:\n  A: {{old_param}}\nrun: { path: x }\n",
            "{{param}}",
        ),
        ("platform: windows\nrun: { path: x }\n", "linux"),
    ];
    for (text, reason) in cases {
        let errors = parse_task_config_with("t.yml", text, &Vars::new()).expect_err(text);
        assert!(errors.to_string().contains(reason), "{errors}");
        assert!(errors.iter().all(|e| e.position().line > 0), "{errors}");
    }
}

/// A Concourse `((var))` left in rendered text; shell arithmetic `$((…))` in
/// c8s's own scripts is not one.
fn has_unresolved_var(text: &str) -> bool {
    text.match_indices("((").any(|(i, _)| !text[..i].ends_with('$'))
}

//! Concourse files through the CLI as a user runs it: the seed task step,
//! a pipeline's plan and render with -v, --version and --concourse-job.

mod common;

use common::{c8s, text};

fn temp_file(name: &str, bytes: &str) -> String {
    common::temp_file(name, bytes).to_string_lossy().into_owned()
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

const PIPELINE: &str = "\
resources:
- name: repo
  type: git
  source: { uri: ((repo-uri)) }
jobs:
- name: unit
  plan:
  - get: repo
    trigger: true
  - task: test
    privileged: true
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: golang, tag: ((go)) } }
      inputs: [{ name: repo }]
      run: { path: go, args: [test, ./...], dir: repo }
- name: ship
  plan:
  - get: repo
    passed: [unit]
";

#[test]
fn the_seed_task_step_validates_and_renders() {
    let file = temp_file("step.yml", SEED);
    let out = c8s(&["validate", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = c8s(&["render", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(
        yaml.contains("image: my-app") && yaml.contains("image: postgres:16"),
        "{yaml}"
    );
    assert!(!yaml.contains("git-clone"), "{yaml}");
}

#[test]
fn a_pipeline_plans_validates_and_renders_one_job() {
    let file = temp_file("app.yml", PIPELINE);
    let out = c8s(&["plan", &file, "-v", "go=1.23"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "job unit\njob ship  <- unit\n");
    let out = c8s(&["plan", &file, "--job", "unit", "-o", "dot", "-v", "go=1.23"]);
    assert!(
        text(&out.stdout).contains("\"unit.repo\" -> \"unit.test\";"),
        "{}",
        text(&out.stdout)
    );

    // Without -v the missing var is named, located.
    let out = c8s(&["validate", &file]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("var ((go)) has no value"),
        "{}",
        text(&out.stderr)
    );

    let out = c8s(&["validate", &file, "-v", "go=1.23"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("warning: unit.test: privileged"), "{stderr}");
    assert!(
        stderr.contains("kubectl create secret generic c8s-app-repo"),
        "{stderr}"
    );

    let out = c8s(&[
        "render",
        &file,
        "-v",
        "go=1.23",
        "--concourse-job",
        "unit",
        "--version",
        r#"repo={"ref":"abc"}"#,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(yaml.contains("image: golang:1.23"), "{yaml}");
    assert!(yaml.contains(r#"value: "{\"ref\":\"abc\"}""#), "{yaml}");
    assert!(yaml.contains("privileged: true"), "{yaml}");
    // No `((var))` is left; `$((…))` is shell arithmetic in c8s's own scripts.
    assert!(
        !yaml.match_indices("((").any(|(i, _)| !yaml[..i].ends_with('$')),
        "{yaml}"
    );
}

#[test]
fn a_task_input_can_be_the_repository_checkout() {
    let out = c8s(&[
        "render",
        "examples/tasks/integration-task.yml",
        "--checkout-input",
        "source",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(
        yaml.contains("name: git-clone") && yaml.contains("value: /workspace/source"),
        "{yaml}"
    );
    let out = c8s(&["render", "examples/tasks/integration-task.yml"]);
    assert!(
        !text(&out.stdout).contains("git-clone"),
        "inputs are artifacts by default"
    );
}

//! The planner step for Concourse task steps (`visit_task`): sidecar files
//! are loaded through a `SourceReader`, and a step without them plans exactly
//! like before.

use c8s_pipeline_model::{MemorySource, PlanIdentity, TaskStep, parse_task_config, task_plan, visit_task};

const CONFIG: &str = "\
platform: linux
image_resource:
  type: registry-image
  source: { repository: golang, tag: \"1.23\" }
run: { path: go, args: [test, ./...] }
sidecars:
  - name: postgres
    image: postgres:16
    ports: [{ containerPort: 5432 }]
";

fn step(files: &[&str]) -> TaskStep {
    let config = parse_task_config("task.yml", CONFIG).unwrap_or_else(|e| panic!("{e}"));
    let mut step = TaskStep::new("integration", config);
    step.sidecar_files = files.iter().map(|f| (*f).to_owned()).collect();
    step
}

fn files() -> MemorySource {
    MemorySource::new()
        .with(
            "ci/redis.yml",
            "- name: redis\n  image: redis:7\n  ports: [{ containerPort: 6379 }]\n",
        )
        .with(
            "ci/pg.yml",
            "- name: pg\n  image: postgres:16\n  ports: [{ containerPort: 5432 }]\n",
        )
        .with("ci/bad.yml", "- name: x\n  image: [\n")
}

#[test]
fn a_step_without_sidecar_files_plans_like_the_config_alone() {
    let s = step(&[]);
    let planned = visit_task("ci", &s, &MemorySource::new()).unwrap_or_else(|e| panic!("{e}"));
    let plain = task_plan(PlanIdentity::new("ci", "integration"), &s.config);
    assert_eq!(planned, plain);
    assert_eq!(planned.sidecars.len(), 1);
}

#[test]
fn sidecar_files_are_appended_after_inline_sidecars() {
    let planned = visit_task("ci", &step(&["ci/redis.yml"]), &files()).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = planned.sidecars.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["postgres", "redis"]);
}

#[test]
fn file_errors_name_the_file() {
    let errors = visit_task(
        "ci",
        &step(&["ci/missing.yml", "ci/bad.yml", "ci/pg.yml"]),
        &files(),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(lines.len(), 3, "{errors}");
    assert_eq!(lines[0], "ci/missing.yml: cannot read: file not found");
    assert!(lines[1].starts_with("ci/bad.yml:2:"), "{errors}");
    assert_eq!(
        lines[2],
        "ci/pg.yml:3:11: sidecar \"pg\": ports[0]: port 5432/TCP is already used by sidecar \"postgres\""
    );
}

#[test]
fn duplicate_names_across_files_are_errors() {
    let source = files().with("ci/redis2.yml", "- name: redis\n  image: redis:6\n");
    let errors = visit_task("ci", &step(&["ci/redis.yml", "ci/redis2.yml"]), &source)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(
        errors,
        "ci/redis2.yml:1:3: sidecar \"redis\": name: sidecar \"redis\" is already defined at ci/redis.yml:1:3"
    );
}

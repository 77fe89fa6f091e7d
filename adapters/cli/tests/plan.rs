//! `c8s validate` on task configs and pipelines, and `c8s plan` in every
//! output format, as a user runs them.

mod common;

use common::{c8s, temp_dir, text};

fn temp_file(name: &str, bytes: &str) -> String {
    common::temp_file(name, bytes).to_string_lossy().into_owned()
}

const PIPELINE: &str = "examples/pipelines/orders.c8s.yaml";

#[test]
fn validate_detects_pipelines_and_tasks() {
    let out = c8s(&[
        "validate",
        PIPELINE,
        "examples/tasks/integration-task.yml",
        "examples/sidecars/postgres.yml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "ok: {PIPELINE}\nok: examples/tasks/integration-task.yml\nok: examples/sidecars/postgres.yml\n"
        )
    );
}

#[test]
fn validate_reports_pipeline_errors_with_a_snippet() {
    let file = temp_file(
        "cycle.c8s.yaml",
        "name: demo\nrepository: https://example.com/d.git\nsteps:\n  - name: a\n    image: alpine:3\n    dependsOn: [b]\n  - name: b\n    image: alpine:${{ matrix.v }}\n    dependsOn: [a]\n",
    );
    let out = c8s(&["validate", &file]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "error: {file}:6:5: step \"a\": dependsOn: dependency cycle: a -> b -> a\n"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "error: {file}:8:5: step \"b\": image: matrix dimension \"v\" is not defined (the pipeline has no matrix)\n"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("6 |     dependsOn: [b]\n  |     ^\n"), "{stderr}");
}

#[test]
fn validate_reports_sidecar_file_errors_relative_to_the_pipeline() {
    let dir = temp_dir().join("sidecar-files");
    std::fs::create_dir_all(dir.join("ci")).expect("dir");
    std::fs::write(
        dir.join("ci/redis.yml"),
        "- name: redis\n  image: redis:7\n  colour: red\n",
    )
    .expect("write");
    let file = dir.join("p.c8s.yaml");
    std::fs::write(
        &file,
        "name: demo\nrepository: https://example.com/d.git\nsteps:\n  - name: a\n    image: alpine:3\n    sidecarFiles: [ci/redis.yml, ci/none.yml]\n",
    )
    .expect("write");
    let out = c8s(&["validate", &file.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("error: ci/redis.yml:3:3: unknown field `colour`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("3 |   colour: red\n"),
        "snippet from the sidecar file: {stderr}"
    );
    assert!(
        stderr.contains("error: ci/none.yml: cannot read: file not found"),
        "{stderr}"
    );
}

#[test]
fn validate_reports_task_errors_and_honours_kind() {
    let task = temp_file(
        "task.yml",
        "platform: linux\nimage_resource:\n  type: registry-image\n  source: { repository: alpine }\nrun: { path: sh, user: nobody }\n",
    );
    let out = c8s(&["validate", &task]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "error: {task}:5:18: run.user: user \"nobody\": give `root` or a numeric UID"
        )),
        "{stderr}"
    );
    let out = c8s(&[
        "validate",
        "--kind",
        "pipeline",
        "examples/tasks/integration-task.yml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown field `platform`"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        c8s(&["validate", "--kind", "nope", PIPELINE]).status.code(),
        Some(2)
    );
    let unknown = temp_file("unknown.yml", "apiVersion: v1\nkind: Pod\n");
    let out = c8s(&["validate", &unknown]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!(
            "error: {unknown}:1:1: cannot tell what kind of file this is"
        )),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn plan_text() {
    let out = c8s(&["plan", PIPELINE, "--branch", "main"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!(text(&out.stdout));
}

#[test]
fn plan_text_on_another_branch_skips_the_conditional_step() {
    let out = c8s(&["plan", PIPELINE, "--branch", "feature/faster-tests"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("skipped:\n  publish: the branch does not match its condition\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("critical path: unit -> integration (3000s;"),
        "{stdout}"
    );
    let out = c8s(&["plan", PIPELINE, "--branch", "hotfix"]);
    assert!(text(&out.stdout).contains("  lint: the pipeline does not run on this branch\n"));
}

#[test]
fn plan_json() {
    let out = c8s(&["plan", PIPELINE, "--branch", "main", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["run"]["combinations"].as_array().map(Vec::len), Some(4));
    assert_eq!(json["run"]["plans"].as_array().map(Vec::len), Some(20));
    assert_eq!(
        json["criticalPath"]["steps"],
        serde_json::json!(["unit", "integration", "publish"])
    );
    assert_eq!(json["steps"][3]["name"], "integration");
    assert_eq!(
        json["steps"][3]["sidecars"],
        serde_json::json!(["postgres", "redis", "payments-mock"])
    );
    assert!(json["resources"]["peak"]["requests"]["cpu"].is_string());
}

#[test]
fn plan_dot_and_mermaid() {
    let dot = c8s(&["plan", PIPELINE, "--branch", "feature/x", "-o", "dot"]);
    assert_eq!(dot.status.code(), Some(0), "{}", text(&dot.stderr));
    insta::assert_snapshot!("dot", text(&dot.stdout));
    let mermaid = c8s(&["plan", PIPELINE, "--branch", "main", "-o", "mermaid"]);
    assert_eq!(mermaid.status.code(), Some(0), "{}", text(&mermaid.stderr));
    insta::assert_snapshot!("mermaid", text(&mermaid.stdout));
}

#[test]
fn plan_errors_exit_1() {
    let out = c8s(&["plan", "no/such.c8s.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("error: no/such.c8s.yaml: cannot read: file not found"));
    let out = c8s(&["plan", "examples/tasks/integration-task.yml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(c8s(&["plan", PIPELINE, "-o", "svg"]).status.code(), Some(2));
}

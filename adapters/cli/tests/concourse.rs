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

    let yaml = text(&render_unit_job(&file, &[]));
    assert!(yaml.contains("image: golang:1.23"), "{yaml}");
    assert!(yaml.contains(r#"value: "{\"ref\":\"abc\"}""#), "{yaml}");
    assert!(yaml.contains("privileged: true"), "{yaml}");
    // No `((var))` is left; `$((…))` is shell arithmetic in c8s's own scripts.
    assert!(
        !yaml.match_indices("((").any(|(i, _)| !yaml[..i].ends_with('$')),
        "{yaml}"
    );
}

/// `c8s render` of job `unit` of `file` at a pinned version of `repo`: stdout.
fn render_unit_job(file: &str, extra: &[&str]) -> Vec<u8> {
    let mut args = vec![
        "render",
        file,
        "-v",
        "go=1.23",
        "--concourse-job",
        "unit",
        "--version",
        r#"repo={"ref":"abc"}"#,
    ];
    args.extend_from_slice(extra);
    let out = c8s(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    out.stdout
}

/// Each rendered pod of the `unit` job, with its Pod Security level.
fn unit_job_levels(pipeline: &str) -> Vec<(String, Option<c8s_pod_builder::SecurityProfile>)> {
    let file = temp_file("levels.yml", pipeline);
    let json = render_unit_job(&file, &["-o", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&json).expect("a JSON List");
    let items = list["items"].as_array().expect("items");
    items
        .iter()
        .filter(|item| item["kind"] == "Pod")
        .map(|item| {
            let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(item.clone()).expect("a Pod");
            let name = pod.metadata.name.clone().unwrap_or_default();
            let level = pod.spec.as_ref().and_then(c8s_pod_builder::pod_security_level);
            (name, level)
        })
        .collect()
}

#[test]
fn a_resource_get_meets_restricted_and_only_a_privileged_resource_type_runs_as_root() {
    use c8s_pod_builder::SecurityProfile::Restricted;
    let levels = unit_job_levels(PIPELINE);
    let get = levels
        .iter()
        .find(|(name, _)| name.contains("-repo-"))
        .expect("the get's pod");
    assert_eq!(get.1, Some(Restricted), "{levels:?}");
    let task = levels
        .iter()
        .find(|(name, _)| name.contains("-test-"))
        .expect("the task's pod");
    assert_eq!(task.1, None, "a privileged task meets no profile: {levels:?}");

    // A resource type declared privileged (Concourse's own knob for a
    // resource that needs more rights) keeps root and privilege.
    let custom = PIPELINE.replacen(
        "resources:",
        "resource_types:\n- name: git\n  type: registry-image\n  privileged: true\n  source: { repository: concourse/git-resource }\nresources:",
        1,
    );
    let levels = unit_job_levels(&custom);
    let get = levels
        .iter()
        .find(|(name, _)| name.contains("-repo-"))
        .expect("the get's pod");
    assert_eq!(get.1, None, "{levels:?}");
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

/// A task config with a plain var and a dotted one (`((dockerhub.username))`
/// is field `username` of var `dockerhub`, as fly reads it).
const TASK_WITH_VARS: &str = "\
platform: linux
image_resource:
  type: registry-image
  source: { repository: busybox }
params:
  A: ((ab))
  U: ((dockerhub.username))
run: { path: sh, args: [-c, 'echo hi'] }
";

#[test]
fn a_task_config_takes_vars_as_fly_execute_does() {
    let file = temp_file("task.yml", TASK_WITH_VARS);
    let out = c8s(&["validate", &file]);
    assert_eq!(out.status.code(), Some(1), "no value for ((ab)) is an error");
    assert!(
        text(&out.stderr).contains("var ((ab)) has no value"),
        "{}",
        text(&out.stderr)
    );

    let set = ["-v", "ab=1", "-v", "dockerhub.username=u"];
    let out = c8s(&[&["validate", file.as_str()][..], &set[..]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = c8s(&[&["render", file.as_str()][..], &set[..]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(yaml.contains("- name: A\n      value: \"1\""), "{yaml}");
    assert!(yaml.contains("- name: U\n      value: u"), "{yaml}");

    // A vars file's mapping gives the dotted var its field.
    let vars = temp_file("vars.yml", "ab: 2\ndockerhub:\n  username: from-file\n");
    let out = c8s(&["render", &file, "--vars-file", &vars]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(yaml.contains("- name: A\n      value: \"2\""), "{yaml}");
    assert!(yaml.contains("- name: U\n      value: from-file"), "{yaml}");
}

#[test]
fn validate_and_helm_use_the_vars_given_for_a_pipeline() {
    let file = temp_file("pipeline.yml", PIPELINE);
    let set = ["-v", "repo-uri=https://example.com/r.git", "-v", "go=1.23"];
    let out = c8s(&[&["validate", file.as_str()][..], &set[..]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Every var has a value: no Secret is needed, and nothing is said twice.
    assert!(
        !text(&out.stderr).contains("needs Secret"),
        "{}",
        text(&out.stderr)
    );

    let chart = common::temp_dir().join("vars-chart");
    let out = c8s(&[
        &[
            "helm",
            "pipeline",
            file.as_str(),
            "--out",
            chart.to_str().expect("utf-8 path"),
        ][..],
        &set[..],
    ]
    .concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let values = std::fs::read_to_string(chart.join("values.yaml")).expect("the chart has values");
    assert!(values.contains("golang:1.23"), "{values}");
    assert!(!values.contains("((go))"), "{values}");
}

const HOOKS: &str = "\
jobs:
- name: job
  plan:
  - task: build
    config: &cfg
      platform: linux
      image_resource: { type: registry-image, source: { repository: alpine } }
      run: { path: 'true' }
    on_failure: { task: alert, config: *cfg }
    on_abort: { task: stop, config: *cfg }
    ensure: { task: cleanup, config: *cfg }
";

#[test]
fn run_keeps_the_hooks_of_a_pipeline_and_no_longer_warns_they_are_not_run() {
    let file = temp_file("hooks.yml", HOOKS);
    let missing = temp_file("no-kubeconfig", "");
    // No cluster: the run fails to connect, after printing what it loaded.
    let out = common::command()
        .env("KUBECONFIG", format!("{missing}.absent"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .args(["run", &file, "--concourse-job", "job", "--connect-timeout", "1s"])
        .output()
        .expect("c8s runs");
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("is not run"), "{stderr}");
    assert!(!stderr.contains("hook;"), "{stderr}");
    let out = c8s(&["render", &file, "--concourse-job", "job"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for step in ["job.build", "job.alert", "job.stop", "job.cleanup"] {
        assert!(text(&out.stdout).contains(step), "{step} missing");
    }
}

/// `across` over a list from a vars file: one pod per combination, the
/// first var varying slowest (<https://concourse-ci.org/across-step.html>).
const ACROSS: &str = "\
jobs:
- name: job
  plan:
  - task: test
    across:
    - var: os
      values: [linux, windows]
    - var: go
      values: ((go-versions))
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: golang, tag: ((.:go)) } }
      params: { TARGET: ((.:os)) }
      run: { path: make }
";

#[test]
fn across_renders_one_pod_per_combination_with_its_values() {
    let file = temp_file("across.yml", ACROSS);
    let vars = temp_file("across-vars.yml", "go-versions: ['1.21', '1.22']\n");
    let out = c8s(&["render", &file, "--concourse-job", "job", "--vars-file", &vars]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    let images: Vec<&str> = yaml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: golang:"))
        .collect();
    assert_eq!(images, ["1.21", "1.22", "1.21", "1.22"], "{yaml}");
    let targets: Vec<&str> = yaml
        .lines()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0].trim() == "- name: TARGET")
        .map(|w| w[1].trim().trim_start_matches("value: "))
        .collect();
    assert_eq!(targets, ["linux", "linux", "windows", "windows"], "{yaml}");
    for step in ["job.test-linux-1-21-", "job.test-windows-1-22-"] {
        assert!(yaml.contains(step), "{step} missing: {yaml}");
    }
}

/// `across` values a `load_var` sets are known when the job runs: validate
/// notes the step as deferred, at its line; a local var no `load_var` of the
/// job sets is an error located at the values.
#[test]
fn across_values_a_load_var_sets_are_deferred_to_run_time() {
    let text_of = |var: &str| {
        ACROSS
            .replace(
                "jobs:\n",
                "resources:\n- { name: repo, type: git, source: { uri: https://example.com/app.git } }\njobs:\n",
            )
            .replace(
                "  plan:\n",
                "  plan:\n  - get: repo\n  - load_var: versions\n    file: repo/versions.json\n",
            )
            .replace("((go-versions))", var)
    };
    let file = temp_file("across-runtime.yml", &text_of("((.:versions))"));
    let out = c8s(&["validate", &file]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "across-runtime.yml:9:5: step `test` deferred to run time: its across values are ((.:versions))"
        ),
        "{stderr}"
    );
    let file = temp_file("across-unset.yml", &text_of("((.:other))"));
    let out = c8s(&["validate", &file]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("across-unset.yml:14:15"), "{stderr}");
    assert!(
        stderr.contains("((.:other)) names no load_var of this job"),
        "{stderr}"
    );
    // One error, not a second one derived from it.
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
}

/// A get, a `load_var` of one of its files, and a task reading it in params.
const LOAD_VAR: &str = "\
resources:
- name: version
  type: semver
  source: { driver: git, uri: https://example.com/v.git, branch: version, file: number }
jobs:
- name: release
  plan:
  - get: version
  - load_var: number
    file: version/number
  - load_var: unused
    file: version/number
  - task: tag
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: alpine } }
      params: { TAG: v((.:number)) }
      run: { path: sh, args: [-ec, 'echo $TAG'] }
";

#[test]
fn a_load_var_read_by_a_task_param_validates_and_renders_the_reader_of_its_file() {
    let file = temp_file("load-var.yml", LOAD_VAR);
    let out = c8s(&["validate", &file]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("load-var.yml:11:5: load_var `unused` not read"),
        "the unused var is said, located: {stderr}"
    );
    let out = c8s(&["render", &file]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    // The reader's pod unpacks only the file, and its wrapper sets TAG from it.
    for want in [
        "- name: C8S_LOCAL_VARS\n      value: number=trim:number",
        "- name: C8S_LOCAL_VAR_ENV\n      value: TAG",
        "- name: TAG\n      value: v((.:number))",
        "- .c8s/vars/number\n    - number\n",
        "- c8s-load-vars",
    ] {
        assert!(yaml.contains(want), "missing {want:?} in:\n{yaml}");
    }
}

#[test]
#[ignore = "needs kubernetes-validate"]
fn a_load_var_readers_pod_passes_kubernetes_validate_strict() {
    let file = temp_file("load-var-kv.yml", LOAD_VAR);
    let out = c8s(&["render", &file]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rendered = common::temp_file("load-var-kv-pods.yaml", text(&out.stdout));
    for version in ["1.33.0", "1.37.0"] {
        common::kubernetes_validate(version, std::slice::from_ref(&rendered));
    }
}

/// A task whose file is in the repository a get fetches, and a put of what it builds.
const DEFERRED: &str = "\
resources:
- name: repo
  type: git
  source: { uri: https://example.com/app.git }
jobs:
- name: build
  plan:
  - get: repo
  - task: unit
    file: repo/ci/unit.yml
  - task: lint
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: alpine } }
      inputs: [{ name: repo }]
      run: { path: sh, args: [-ec, 'true'] }
  - put: repo
    params: { repository: repo }
";

#[test]
fn a_task_file_fetched_at_run_time_is_noted_rendered_around_and_refused_by_a_chart() {
    let file = common::temp_file("deferred-ci.yml", DEFERRED);
    let dir = file.parent().expect("its directory").to_path_buf();
    let file = file.to_string_lossy().into_owned();
    let chart = dir.join("deferred-chart").to_string_lossy().into_owned();
    // validate: not an error, a located note for each deferred step.
    let out = c8s(&["validate", &file]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("deferred-ci.yml:9:5: step `unit` deferred to run time: its file \"repo/ci/unit.yml\" is read from artifact `repo`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("deferred-ci.yml:17:5: step `repo` deferred to run time: it takes every artifact"),
        "{stderr}"
    );
    // render: the rest (the get and the lint task).
    let out = c8s(&["render", &file, "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON List");
    let steps: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|item| item["metadata"]["annotations"]["c8s.dev/step"].as_str())
        .collect();
    assert_eq!(steps, ["build.repo", "build.lint"], "{list}");
    // plan: the DAG of what renders, then each deferred step.
    let out = c8s(&["plan", &file, "--concourse-job", "build"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    let lines: Vec<&str> = plan.lines().collect();
    assert_eq!(
        lines[..2],
        ["get build.repo", "task build.lint  <- build.repo"],
        "{plan}"
    );
    assert!(lines[2].starts_with("deferred ") && lines[2].ends_with("deferred-ci.yml:9:5: step `unit` deferred to run time: its file \"repo/ci/unit.yml\" is read from artifact `repo`, which step `build.repo` fetches when the job runs"), "{plan}");
    assert_eq!(lines.len(), 4, "{plan}");
    let out = c8s(&["plan", &file, "--concourse-job", "build", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["deferred"].as_array().map(Vec::len), Some(2), "{json}");
    assert_eq!(json["nodes"].as_array().map(Vec::len), Some(2), "{json}");
    // A chart: refused, naming the steps (`c8s run` reads the file while
    // the job runs: tests/control_plane.rs).
    let out = c8s(&["helm", "pipeline", file.as_str(), "--out", chart.as_str()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("2 step(s) are known only when the job runs"),
        "{stderr}"
    );
    assert!(
        stderr.contains("c8s run reads such files while the job runs"),
        "{stderr}"
    );
    assert!(stderr.contains("deferred-ci.yml:9:5: step `unit`"), "{stderr}");
    // With the artifact's directory given, a missing file is an error, not deferred.
    let checkout = dir.join("deferred-checkout");
    std::fs::create_dir_all(&checkout).expect("checkout");
    let artifact = format!("repo={}", checkout.display());
    let out = c8s(&["validate", &file, "--artifact", &artifact]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("deferred-ci.yml:10:5: jobs[0].plan[1].file: cannot read task file \"repo/ci/unit.yml\": ci/unit.yml is not in"),
        "{stderr}"
    );
}

//! `across` with values known before the run, and `in_parallel`'s `limit`
//! and `fail_fast`, lowered as Concourse runs them
//! (<https://concourse-ci.org/across-step.html>, `atc/exec/across_step.go`,
//! `atc/exec/in_parallel.go`): one pod per combination, `((.:var))`
//! replaced, and conditions that keep at most `max_in_flight` at once.

use c8s_pipeline_model::concourse::JobPlan;
use c8s_pipeline_model::scheduler::Condition;
use c8s_pipeline_model::{MemorySource, Vars};

mod common;

const PIPELINE: &str = r#"
jobs:
- name: build
  plan:
  - task: test
    across:
    - var: os
      values: [linux, windows]
    - var: go
      values: ((go-versions))
      max_in_flight: all
    fail_fast: true
    timeout: 5m
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: "golang", tag: "((.:go))" } }
      params: { TARGET: ((.:os)), LABEL: "go((.:go))-((.:os))", REGION: ((region)) }
      run: { path: make, args: [((.:os))] }
    on_failure:
      task: alert
      config:
        platform: linux
        image_resource: { type: registry-image, source: { repository: alpine } }
        run: { path: echo, args: [failed] }
"#;

fn lower(text: &str, vars: &Vars) -> Result<JobPlan, String> {
    common::lower_build(text, vars, &MemorySource::new())
}

fn vars() -> Vars {
    let mut vars = Vars::new();
    vars.add_file("vars.yml", "go-versions: ['1.21', '1.22']\nregion: eu\n")
        .expect("vars");
    vars
}

fn env<'a>(job: &'a JobPlan, step: &str, name: &str) -> &'a str {
    let step = job
        .steps
        .iter()
        .find(|s| s.plan.identity.step == step)
        .unwrap_or_else(|| panic!("no step {step}"));
    step.plan
        .env
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
        .unwrap_or_else(|| panic!("no env {name}"))
}

#[test]
fn across_makes_one_pod_per_combination_the_first_var_slowest() {
    let job = lower(PIPELINE, &vars()).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = job.steps.iter().map(|s| s.plan.identity.step.as_str()).collect();
    assert_eq!(ids.len(), 5, "{ids:?}");
    let prefixes = [
        "build.test-linux-1-21-",
        "build.test-linux-1-22-",
        "build.test-windows-1-21-",
        "build.test-windows-1-22-",
    ];
    for (id, prefix) in ids.iter().zip(prefixes) {
        assert!(id.starts_with(prefix), "{id} should start with {prefix}");
    }
    assert_eq!(ids[4], "build.alert");
    // `((.:var))` replaced in params, args and the image, whole or spliced.
    assert_eq!(env(&job, ids[2], "TARGET"), "windows");
    assert_eq!(env(&job, ids[2], "LABEL"), "go1.21-windows");
    assert_eq!(env(&job, ids[2], "REGION"), "eu");
    let third = &job.steps[2].plan;
    assert_eq!(third.args, ["windows"]);
    assert_eq!(third.image, "golang:1.21");
    // `timeout` applies to each copy.
    assert!(job.steps[..4].iter().all(|s| s.plan.timeout_seconds == Some(300)));
}

#[test]
fn max_in_flight_and_fail_fast_become_conditions() {
    let job = lower(PIPELINE, &vars()).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<String> = job.steps.iter().map(|s| s.plan.identity.step.clone()).collect();
    let c = &job.conditions;
    // `go` (max_in_flight: all): both Linux copies start at once.
    assert_eq!(c[&ids[0]], Condition::True);
    assert_eq!(c[&ids[1]], Condition::True);
    // `os` (max_in_flight 1): the Windows copies wait until both Linux ones
    // ended, and with fail_fast start only if they succeeded.
    let windows = &c[&ids[2]];
    let named = windows.steps();
    assert!(
        named.contains(ids[0].as_str()) && named.contains(ids[1].as_str()),
        "{windows:?}"
    );
    assert!(!named.contains(ids[3].as_str()), "{windows:?}");
    match windows {
        Condition::All(parts) => {
            assert!(
                parts.contains(&Condition::Succeeded(ids[0].clone())),
                "{windows:?}"
            );
            assert!(parts.contains(&Condition::Ended(ids[1].clone())), "{windows:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c[&ids[3]], c[&ids[2]]);
    // The hook wraps the whole across step: it runs when any copy failed.
    let alert = &c["build.alert"];
    assert!(
        ids[..4].iter().all(|id| alert.steps().contains(id.as_str())),
        "{alert:?}"
    );
    // The build succeeded iff every copy did.
    let outcome = job.outcome.steps();
    assert!(ids[..4].iter().all(|id| outcome.contains(id.as_str())));
}

#[test]
fn names_are_deterministic() {
    let a = serde_json::to_string(&lower(PIPELINE, &vars()).expect("a")).expect("json");
    let b = serde_json::to_string(&lower(PIPELINE, &vars()).expect("b")).expect("json");
    assert_eq!(a, b);
}

#[test]
fn values_known_only_at_run_time_are_located_errors() {
    // A var with no value is named, too.
    let errors = lower(PIPELINE, &Vars::new()).expect_err("no vars");
    assert!(errors.contains("((go-versions)) has no value"), "{errors}");
    // A var with no value inside the copies is reported once, not per copy.
    let errors = lower(&PIPELINE.replace("path: make", "path: ((make))"), &vars()).expect_err("no make");
    assert_eq!(errors.matches("((make)) has no value").count(), 1, "{errors}");
    // A `((.:var))` that is not an across var of the step stays an error.
    let errors = lower(&PIPELINE.replace("[((.:os))]", "[((.:arch))]"), &vars()).expect_err("arch");
    assert!(
        errors.contains("((.:arch))") && errors.contains("known only at run time"),
        "{errors}"
    );
}

/// `across` values a `load_var` holds (`values: ((.:versions))`): as
/// Concourse expands an across step when it runs, its copies are known once
/// a runner read the load_var's file (given under `FetchFile::VAR_PREFIX`);
/// until then the step is deferred to run time, the load_var's file to read.
#[test]
fn values_a_load_var_holds_are_read_when_the_job_runs_and_its_copies_then_render() {
    use c8s_pipeline_model::concourse::FetchFile;
    let text = r#"
resources:
- name: repo
  type: git
  source: { uri: "https://example.com/app.git" }
jobs:
- name: build
  plan:
  - get: repo
  - load_var: versions
    file: repo/versions.json
  - task: test
    across:
    - var: go
      values: ((.:versions))
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: golang, tag: ((.:go)) } }
      run: { path: go, args: [version] }
"#;
    let job = common::lower_build(text, &Vars::new(), &MemorySource::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        job.deferred,
        [
            "10:5: step `versions` deferred to run time: its json value is read from artifact `repo`, which step `build.repo` makes when the job runs",
            "12:5: step `test` deferred to run time: its across values are ((.:versions)), set by a load_var read when the job runs",
        ]
    );
    assert_eq!(job.steps.len(), 1, "only the get runs first");
    assert_eq!(job.fetch.len(), 1);
    let key = format!("{}repo/versions.json", FetchFile::VAR_PREFIX);
    assert_eq!(job.fetch[0].key, key);

    // Read (as c8s run gives it): one copy per value, each with its image.
    let read = MemorySource::new().with(&key, r#"["1.22", "1.23"]"#);
    let job = common::lower_build(text, &Vars::new(), &read).unwrap_or_else(|e| panic!("{e}"));
    assert!(job.deferred.is_empty(), "{:?}", job.deferred);
    assert!(job.skipped.is_empty(), "the load_var was read: {:?}", job.skipped);
    let images: Vec<&str> = job.steps[1..].iter().map(|s| s.plan.image.as_str()).collect();
    assert_eq!(images, ["golang:1.22", "golang:1.23"]);
    // Not a list: located at the values.
    let read = MemorySource::new().with(&key, "1.22");
    let errors = common::lower_build(text, &Vars::new(), &read).expect_err("not a list");
    assert!(
        errors.contains("ci.yml:15:15") && errors.contains("`values` is a list"),
        "{errors}"
    );
    // A local var no load_var of the job sets: an error at the values.
    let errors = common::lower_build(
        &text.replace("((.:versions))", "((.:other))"),
        &Vars::new(),
        &MemorySource::new(),
    )
    .expect_err("no such load_var");
    assert!(
        errors.contains("ci.yml:15:15") && errors.contains("((.:other)) names no load_var of this job"),
        "{errors}"
    );
}

#[test]
fn in_parallel_limit_and_fail_fast_gate_the_later_children() {
    let text = r#"
jobs:
- name: build
  plan:
  - in_parallel:
      limit: 2
      fail_fast: true
      steps:
      - { task: a, config: { platform: linux, image_resource: { type: registry-image, source: { repository: alpine } }, run: { path: "true" } } }
      - { task: b, config: { platform: linux, image_resource: { type: registry-image, source: { repository: alpine } }, run: { path: "true" } } }
      - { task: c, config: { platform: linux, image_resource: { type: registry-image, source: { repository: alpine } }, run: { path: "true" } } }
"#;
    let job = lower(text, &Vars::new()).unwrap_or_else(|e| panic!("{e}"));
    let c = &job.conditions;
    assert_eq!(c["build.a"], Condition::True);
    assert_eq!(c["build.b"], Condition::True);
    let gate = &c["build.c"];
    assert_eq!(
        gate.steps().into_iter().collect::<Vec<_>>(),
        ["build.a"],
        "c waits for a alone: {gate:?}"
    );
    assert!(
        matches!(gate, Condition::All(parts) if parts.contains(&Condition::Succeeded("build.a".into()))),
        "{gate:?}"
    );
    // Without fail_fast, c starts once a ended, however.
    let job = lower(&text.replace("fail_fast: true", "fail_fast: false"), &Vars::new()).expect("plain");
    let gate = &job.conditions["build.c"];
    assert!(
        matches!(gate, Condition::All(parts) if parts.contains(&Condition::Ended("build.a".into()))
            && !parts.contains(&Condition::Succeeded("build.a".into()))),
        "{gate:?}"
    );
}

/// A `set_pipeline` across the entries of a `load_var` (Concourse's own CI
/// sets one pipeline per pull request this way): c8s does not run
/// set_pipeline, so the step is one note whatever its values, and its vars
/// (local or not) are never asked for.
const SET_PIPELINES: &str = r#"
resources:
- name: prs
  type: git
  source: { uri: "https://example.com/prs.git" }
jobs:
- name: build
  plan:
  - get: prs
  - load_var: open_prs
    file: prs/prs.json
  - across:
    - var: pr
      values: ((.:open_prs))
      max_in_flight: all
    set_pipeline: pr
    file: prs/pipelines/pr.yml
    instance_vars: { number: ((.:pr.number)) }
    vars: { branch: release/((release_minor)).x }
"#;

#[test]
fn a_set_pipeline_across_a_load_vars_values_is_one_note_not_an_error() {
    let job = lower(SET_PIPELINES, &Vars::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(job.steps.len(), 1, "the get");
    assert!(
        job.skipped
            .iter()
            .any(|s| s.starts_with("12:5: set_pipeline `pr` not run")),
        "{:?}",
        job.skipped
    );
}

//! A get's version as a local var: Concourse adds the version a `get`
//! fetched to the build's local vars under the step's name, so a later step
//! reads its fields as `((.:repo.ref))` — Concourse's own pipelines
//! (concourse/ci `pipelines/pr.yml`, `helm-prs.yml`) set a pull request's
//! status with them in a put's params. A resource's params are JSON written
//! before its pod runs, so such a value is known to the lowering: given
//! (`--version`, a pinned `version:`), or read by a runner once the get ran,
//! the steps that read it deferred until then. A `load_var` a resource's
//! params read is read by a runner the same way.

use std::collections::BTreeMap;

use c8s_pipeline_model::concourse::resource::{GET_SCRIPT, VERSION_FILE, version_dir};
use c8s_pipeline_model::concourse::{FetchFile, JobPlan, lower_job, parse_concourse_pipeline};
use c8s_pipeline_model::{MemorySource, Vars};

mod stand_in;
use stand_in::StandIn;

const PIPELINE: &str = r#"
resources:
- name: pr
  type: git
  source: { uri: "https://example.com/app.git" }
- name: status
  type: git
  source: { uri: "https://example.com/status.git" }
jobs:
- name: build
  plan:
  - get: pr
  - put: status
    no_get: true
    params:
      ref: ((.:pr.ref))
      pr: ((.:pr.number))
      state: pending
  - task: test
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: busybox } }
      params:
        REF: ((.:pr.ref))
      run: { path: sh, args: [-c, env] }
"#;

fn lower(text: &str, versions: &[(&str, &str)], files: &MemorySource) -> Result<JobPlan, String> {
    let pipeline =
        parse_concourse_pipeline("ci.yml", text, &Vars::new(), files).map_err(|e| e.to_string())?;
    let versions: BTreeMap<String, String> = versions
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    lower_job(&pipeline, "build", files, &versions, "ci.yml").map_err(|e| e.to_string())
}

fn env(job: &JobPlan, step: usize, name: &str) -> Option<String> {
    job.steps[step]
        .plan
        .env
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

#[test]
fn a_given_version_fills_the_params_that_read_it() {
    let version = r#"{"ref":"abc123","number":"42"}"#;
    let job = lower(PIPELINE, &[("pr", version)], &MemorySource::new()).unwrap_or_else(|e| panic!("{e}"));
    assert!(job.deferred.is_empty(), "{:?}", job.deferred);
    assert!(job.fetch.is_empty(), "nothing to read: {:?}", job.fetch);
    let kinds: Vec<&str> = job.steps.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, ["get", "put", "task"]);
    // Interpolated text is a string, as Concourse's `pr: "42"`.
    assert_eq!(
        env(&job, 1, "C8S_PARAMS").as_deref(),
        Some(r#"{"pr":"42","ref":"abc123","state":"pending"}"#)
    );
    assert_eq!(env(&job, 2, "REF").as_deref(), Some("abc123"));
    // The get need not save what is known.
    assert_eq!(job.steps[0].plan.outputs, ["pr"]);
    // A field the version lacks: located at the param that reads it.
    let errors =
        lower(PIPELINE, &[("pr", r#"{"ref":"abc123"}"#)], &MemorySource::new()).expect_err("no field");
    assert!(
        errors.contains("ci.yml:13:5")
            && errors.contains("the version get `pr` fetched has no field `number`"),
        "{errors}"
    );
    assert_eq!(errors.lines().count(), 1, "one error, no derived one:\n{errors}");
}

#[test]
fn a_version_fetched_when_the_job_runs_is_read_after_the_get_and_its_readers_wait_for_it() {
    let job = lower(PIPELINE, &[], &MemorySource::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        job.deferred,
        [
            "13:5: step `status` deferred to run time: its params use ((.:pr.number)), set by the version get `pr` fetches, known when it ran",
            "19:5: step `test` deferred to run time: its params use ((.:pr.ref)), set by the version get `pr` fetches, known when it ran",
        ]
    );
    assert_eq!(job.steps.len(), 1, "the get runs");
    let get = &job.steps[0].plan;
    // The get saves the version `in` answered, as an output of its own.
    assert_eq!(get.outputs, ["pr".to_owned(), version_dir("pr")]);
    assert_eq!(get.command.last(), Some(&version_dir("pr")));
    let fetch = &job.fetch[..];
    assert_eq!(fetch.len(), 1, "{fetch:?}");
    assert_eq!(
        (
            fetch[0].producer.as_str(),
            fetch[0].output.as_str(),
            fetch[0].path.as_str()
        ),
        ("build.pr", version_dir("pr").as_str(), VERSION_FILE)
    );
    assert!(
        fetch[0].key.starts_with(FetchFile::VAR_PREFIX),
        "{}",
        fetch[0].key
    );
    // A file of that name beside the pipeline is not what the get fetched.
    let beside = MemorySource::new().with(format!("{}/{VERSION_FILE}", version_dir("pr")), "{}");
    assert_eq!(lower(PIPELINE, &[], &beside).map(|j| j.deferred.len()), Ok(2));

    // Read (as c8s run gives it): the job lowers whole, and the get's pod is
    // the one that ran, so the resumed run does not run it again.
    let read = MemorySource::new().with(&fetch[0].key, "{\"ref\":\"abc123\",\"number\":\"42\"}\n");
    let whole = lower(PIPELINE, &[], &read).unwrap_or_else(|e| panic!("{e}"));
    assert!(whole.deferred.is_empty(), "{:?}", whole.deferred);
    assert_eq!(whole.steps[0].plan, *get);
    assert_eq!(
        env(&whole, 1, "C8S_PARAMS").as_deref(),
        Some(r#"{"pr":"42","ref":"abc123","state":"pending"}"#)
    );
    assert_eq!(env(&whole, 2, "REF").as_deref(), Some("abc123"));
    // What the get saved is not a version: an error at the get.
    let garbled = MemorySource::new().with(&fetch[0].key, "no version");
    let errors = lower(PIPELINE, &[], &garbled).expect_err("not a version");
    assert!(
        errors.contains("ci.yml:12:5") && errors.contains("is not a JSON object"),
        "{errors}"
    );
}

#[test]
fn a_load_var_a_resources_params_read_is_read_by_the_runner_first() {
    let text = PIPELINE
        .replace(
            "  - put: status",
            "  - load_var: tag\n    file: pr/.git/tag\n  - put: status",
        )
        .replace("state: pending", "tag: v((.:tag))");
    let job = lower(
        &text,
        &[("pr", r#"{"ref":"a","number":"1"}"#)],
        &MemorySource::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        job.deferred,
        [
            "13:5: step `tag` deferred to run time: its text value is read from artifact `pr`, which step `build.pr` makes when the job runs",
            "15:5: step `status` deferred to run time: its params use ((.:tag)), set by a load_var deferred to run time",
        ]
    );
    let key = &job.fetch[0].key;
    let read = MemorySource::new().with(key, "1.2.3\n");
    let whole =
        lower(&text, &[("pr", r#"{"ref":"a","number":"1"}"#)], &read).unwrap_or_else(|e| panic!("{e}"));
    assert!(whole.deferred.is_empty(), "{:?}", whole.deferred);
    // Trimmed, as `format: trim` reads it.
    assert_eq!(
        env(&whole, 1, "C8S_PARAMS").as_deref(),
        Some(r#"{"pr":"1","ref":"a","tag":"v1.2.3"}"#)
    );
    // A var no step sets is still an error at the put.
    let errors = lower(
        &PIPELINE.replace("state: pending", "tag: ((.:nothing))"),
        &[("pr", r#"{"ref":"a","number":"1"}"#)],
        &MemorySource::new(),
    )
    .expect_err("no such var");
    assert!(
        errors.contains("ci.yml:13:5") && errors.contains("((.:nothing)) has no value"),
        "{errors}"
    );
    assert_eq!(errors.lines().count(), 1, "{errors}");
}

/// The get pod's script, run by `sh` with a stand-in resource: it saves the
/// version `in` answered where the lowering's reader looks for it.
#[test]
fn the_get_script_saves_the_version_in_answered() {
    let stand_in = StandIn::new("get-version");
    stand_in.write(
        "in",
        "#!/bin/sh\ncat > \"$1/request\"\necho 'fetching' >&2\nprintf '{\\n  \"version\": {\"ref\": \"abc\", \"number\": \"7\"},\\n  \"metadata\": [{\"name\": \"x\", \"value\": \"}\"}]\\n}\\n'\n",
    );
    let run = |save: &str| {
        stand_in.run(
            GET_SCRIPT,
            &["c8s-get", "pr", save],
            &[
                ("C8S_SOURCE", r#"{"uri":"x"}"#),
                ("C8S_PARAMS", "{}"),
                ("C8S_VERSION", r#"{"ref":"abc"}"#),
            ],
        )
    };
    let out = run(&version_dir("pr"));
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"metadata\""),
        "in's response is logged"
    );
    let saved_at = stand_in.workspace.join(version_dir("pr")).join(VERSION_FILE);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved_at).expect("saved")).expect("JSON");
    assert_eq!(saved, serde_json::json!({"ref": "abc", "number": "7"}));
    // Without a place to save it, nothing is saved; `in` failing fails the pod.
    let _ = std::fs::remove_dir_all(stand_in.workspace.join(".c8s-version"));
    assert!(run("").status.success());
    assert!(!stand_in.workspace.join(".c8s-version").exists());
    stand_in.write("in", "#!/bin/sh\necho 'denied' >&2\nexit 3\n");
    assert_eq!(run(&version_dir("pr")).status.code(), Some(3));
}

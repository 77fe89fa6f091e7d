//! `load_var` as Concourse runs it (`atc/exec/load_var_step.go`): the file
//! `ARTIFACT/PATH` of an earlier step, read as `trim` unless `format` or the
//! file's extension says otherwise, sets `((.:NAME))` for the steps after.
//! c8s carries a task param that uses it into the pod, which reads the file
//! when the step runs; what c8s cannot read is a located error.

use c8s_pipeline_model::concourse::JobPlan;
use c8s_pipeline_model::local_vars::{LoadFormat, LocalVar};
use c8s_pipeline_model::{MemorySource, Vars};

mod common;

const PIPELINE: &str = r#"
resources:
- name: version
  type: git
  source: { uri: "https://example.com/version.git", private_key: ((deploy-key)) }
jobs:
- name: build
  plan:
  - get: version
  - load_var: number
    file: version/number
  - load_var: notes
    file: version/notes.md
    format: raw
  - task: show
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: busybox } }
      params:
        NUMBER: ((.:number))
        TAG: v((.:number))-((token))
        NOTES: ((.:notes))
        PLAIN: plain
      run: { path: sh, args: [-c, env] }
"#;

fn lower(text: &str) -> Result<JobPlan, String> {
    common::lower_build(text, &Vars::new(), &MemorySource::new())
}

#[test]
fn a_task_param_using_a_load_var_keeps_its_placeholder_and_names_the_file_on_its_plan() {
    let job = lower(PIPELINE).unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<&str> = job.steps.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, ["get", "task"], "a load_var makes no pod");
    let show = &job.steps[1];
    assert_eq!(
        show.depends_on,
        ["build.version"],
        "the task still runs after the get"
    );
    let plan = &show.plan;
    assert_eq!(
        plan.local_vars,
        [
            LocalVar::new("number", "build.version", "version", "number", LoadFormat::Trim),
            LocalVar::new("notes", "build.version", "version", "notes.md", LoadFormat::Raw),
        ]
    );
    let value = |name: &str| {
        plan.env
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no env {name}"))
    };
    assert_eq!(value("NUMBER").value.as_deref(), Some("((.:number))"));
    assert_eq!(value("NOTES").value.as_deref(), Some("((.:notes))"));
    // A credential var beside a local one still comes from the Secret, spliced by the kubelet.
    assert_eq!(value("TAG").value.as_deref(), Some("v((.:number))-$(C8S_VAR_0)"));
    let secret = plan
        .env
        .iter()
        .find(|e| e.name == "C8S_VAR_0")
        .expect("the credential's env");
    assert!(secret.value.is_none(), "from a Secret: {secret:?}");
    assert_eq!(plan.local_var_env(), ["NUMBER", "TAG", "NOTES"]);
    // The pod unpacks only each var's file, under the vars directory.
    let inputs = plan.artifact_inputs();
    let members: Vec<(&str, Option<&str>)> = inputs
        .iter()
        .map(|i| (i.path.as_str(), i.member.as_deref()))
        .collect();
    assert_eq!(
        members,
        [
            (".c8s/vars/number", Some("number")),
            (".c8s/vars/notes", Some("notes.md"))
        ]
    );
    assert!(plan.validate().is_ok(), "{:?}", plan.validate());
    assert!(job.skipped.is_empty(), "{:?}", job.skipped);
}

#[test]
fn the_format_follows_the_file_extension_unless_given() {
    let job = lower(&PIPELINE.replace("notes.md\n    format: raw\n", "notes.trim.raw\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        job.steps[1].plan.local_vars[1].format,
        LoadFormat::Raw,
        "`.raw` is raw"
    );
    let job = lower(&PIPELINE.replace("format: raw", "format: trim")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(job.steps[1].plan.local_vars[1].format, LoadFormat::Trim);
}

#[test]
fn a_load_var_no_param_reads_is_listed_as_not_read() {
    let job = lower(&PIPELINE.replace("        NOTES: ((.:notes))\n", "")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(job.steps[1].plan.local_vars.len(), 1);
    assert_eq!(job.skipped.len(), 1, "{:?}", job.skipped);
    assert!(
        job.skipped[0].starts_with("12:5: load_var `notes` not read"),
        "{:?}",
        job.skipped
    );
}

#[test]
fn what_c8s_cannot_read_is_a_located_error() {
    let cases = [
        // The artifact must come from a step before.
        (
            "file: version/number",
            "file: elsewhere/number",
            "ci.yml:11:5",
            "artifact `elsewhere` is not produced",
        ),
        // Concourse needs ARTIFACT/PATH.
        (
            "file: version/number",
            "file: number",
            "ci.yml:11:5",
            "write ARTIFACT/PATH",
        ),
        (
            "file: version/number",
            "file: version/../x",
            "ci.yml:11:5",
            "may not leave its artifact",
        ),
        // A text var has no fields.
        (
            "NOTES: ((.:notes))",
            "NOTES: ((.:notes.title))",
            "ci.yml:15:5",
            "reads field `title` of load_var `notes`",
        ),
        (
            "format: raw",
            "format: toml",
            "ci.yml:14:5",
            "invalid format \"toml\"",
        ),
        (
            "NOTES: ((.:notes))",
            "NOTES: ((.:later))",
            "ci.yml:15:5",
            "((.:later)) names no load_var before this step",
        ),
        // The wrapper sets the param from a shell.
        (
            "NOTES: ((.:notes))",
            "notes-text: ((.:notes))",
            "ci.yml:15:5",
            "is a shell name",
        ),
        // Outside a task's params a local var has no value before the run.
        (
            "run: { path: sh, args: [-c, env] }",
            "run: { path: sh, args: [((.:number))] }",
            "ci.yml:24:",
            "known only at run time",
        ),
    ];
    for (from, to, at, message) in cases {
        let text = PIPELINE.replace(from, to);
        assert_ne!(text, PIPELINE, "{from} not found");
        let errors = lower(&text).expect_err(to);
        assert!(
            errors.contains(at) && errors.contains(message),
            "{to}: want {at} {message}, got:\n{errors}"
        );
        assert_eq!(errors.lines().count(), 1, "one error, no derived ones:\n{errors}");
    }
    // A resource's params reach it as JSON written before the run: a var
    // no step before sets has no value there.
    let put = format!("{PIPELINE}  - put: version\n    params: {{ tag: ((.:later)) }}\n");
    let errors = lower(&put).expect_err("put");
    assert!(
        errors.contains("ci.yml:25:5") && errors.contains("plan[4].params: ((.:later)) has no value"),
        "{errors}"
    );
}

#[test]
fn a_task_files_var_may_hold_a_load_var_value_its_params_read() {
    let text = r#"
resources:
- name: repo
  type: git
  source: { uri: "https://example.com/app.git" }
jobs:
- name: build
  plan:
  - get: repo
  - load_var: v
    file: repo/version
  - task: show
    file: repo/ci/task.yml
    vars: { version: ((.:v)) }
"#;
    let task = "platform: linux\nimage_resource: { type: registry-image, source: { repository: busybox } }\nparams: { VERSION: \"v((version))\" }\nrun: { path: sh, args: [-c, env] }\n";
    let lower_with = |task: &str| {
        let files = MemorySource::new().with("repo/ci/task.yml", task.to_owned());
        common::lower_build(text, &Vars::new(), &files)
    };
    let job = lower_with(task).unwrap_or_else(|e| panic!("{e}"));
    let plan = &job.steps[1].plan;
    assert_eq!(plan.local_vars.len(), 1, "{plan:?}");
    let version = plan.env.iter().find(|e| e.name == "VERSION").expect("VERSION");
    assert_eq!(version.value.as_deref(), Some("v((.:v))"));
    // Used outside params, it would be text in the pod spec: refused, at the step's vars.
    let errors = lower_with(&task.replace("repository: busybox", "repository: busybox, tag: ((version))"))
        .expect_err("an image tag from a load_var");
    assert!(
        errors.contains("ci.yml:14:5: jobs[0].plan[2].vars: version holds a load_var value")
            && errors.contains("outside params"),
        "{errors}"
    );
}

/// A `json` `load_var` (a structure, read field by field): its file is read
/// when the job runs (`c8s run` reads it from the artifact and gives it to
/// the lowering under [`FetchFile::VAR_PREFIX`]), and until then the var and
/// the tasks that read it are deferred.
#[test]
fn a_json_load_var_is_read_when_the_job_runs_and_its_fields_fill_the_params() {
    use c8s_pipeline_model::concourse::FetchFile;
    let text = PIPELINE
        .replace("notes.md\n    format: raw", "meta.json")
        .replace(
            "NOTES: ((.:notes))",
            "NOTES: \"((.:notes.title)) by ((.:notes.by.name))\"\n        META: ((.:notes))",
        );
    let job = lower(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(job.steps.len(), 1, "only the get: {:?}", job.deferred);
    assert_eq!(
        job.deferred,
        [
            "12:5: step `notes` deferred to run time: its json value is read from artifact `version`, which step `build.version` makes when the job runs",
            "14:5: step `show` deferred to run time: its params use ((.:notes.title)), set by a load_var deferred to run time",
        ]
    );
    let fetch = &job.fetch[0];
    assert_eq!(fetch.key, format!("{}version/meta.json", FetchFile::VAR_PREFIX));
    assert_eq!(
        (fetch.path.as_str(), fetch.producer.as_str()),
        ("meta.json", "build.version")
    );
    // A file of that name beside the pipeline is not the artifact's.
    let beside = MemorySource::new().with("version/meta.json", "{}");
    let job = common::lower_build(&text, &Vars::new(), &beside).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(job.deferred.len(), 2, "{:?}", job.deferred);

    // Read (as c8s run gives it): the fields' text in the params, the whole
    // value as JSON, the trim var still read in the pod.
    let read = MemorySource::new().with(
        &fetch.key,
        r#"{"title": "Fix $(x)", "by": {"name": "ann"}, "n": 3}"#,
    );
    let job = common::lower_build(&text, &Vars::new(), &read).unwrap_or_else(|e| panic!("{e}"));
    assert!(job.deferred.is_empty(), "{:?}", job.deferred);
    let plan = &job.steps[1].plan;
    let env = |name: &str| {
        plan.env
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(env("NOTES").as_deref(), Some("Fix $(x) by ann"));
    // Keys sorted, as Go's encoding/json writes a map (Concourse's vars).
    assert_eq!(
        env("META").as_deref(),
        Some(r#"{"by":{"name":"ann"},"n":3,"title":"Fix $(x)"}"#)
    );
    assert_eq!(plan.local_vars.len(), 1, "only `number` is read in the pod");
    // A field the value does not have: located at the param.
    let missing = text.replace("((.:notes.by.name))", "((.:notes.by.email))");
    let errors = common::lower_build(&missing, &Vars::new(), &read).expect_err("no field");
    assert!(
        errors.contains("ci.yml:14:5") && errors.contains("load_var `notes` has no field `email`"),
        "{errors}"
    );
    assert_eq!(errors.lines().count(), 1, "one error, no derived one:\n{errors}");
}

/// A `json` `load_var` whose file a runner could not read from the artifact
/// (it gives [`FetchFile::UNREADABLE_VAR`]): as Concourse's `load_var` step
/// errors the build, the load_var becomes a step of its own, which the
/// runner errors without a pod (its env holds the placeholder), and what
/// comes after it waits for it, so nothing after it runs.
#[test]
fn a_load_var_whose_file_was_not_read_is_a_step_that_errors_before_what_follows() {
    use c8s_pipeline_model::concourse::FetchFile;
    let text = PIPELINE
        .replace("notes.md\n    format: raw", "meta.json")
        .replace("NOTES: ((.:notes))", "NOTES: ((.:notes.title))");
    let job = lower(&text).unwrap_or_else(|e| panic!("{e}"));
    let key = job.fetch[0].key.clone();
    let read = MemorySource::new().with(&key, FetchFile::UNREADABLE_VAR);
    let job = common::lower_build(&text, &Vars::new(), &read).unwrap_or_else(|e| panic!("{e}"));
    let steps: Vec<(&str, &str, Vec<String>)> = job
        .steps
        .iter()
        .map(|s| (s.plan.identity.step.as_str(), s.kind, s.depends_on.clone()))
        .collect();
    assert_eq!(
        steps,
        [
            ("build.version", "get", vec![]),
            ("build.notes", "load_var", vec!["build.version".to_owned()]),
            ("build.show", "task", vec!["build.notes".to_owned()]),
        ]
    );
    let marker = &job.steps[1].plan;
    assert!(
        marker.env.iter().any(|e| e
            .value
            .as_deref()
            .is_some_and(|v| v.contains(FetchFile::UNREADABLE_VAR))),
        "{marker:?}"
    );
    // A file that was read makes no such step.
    let read = MemorySource::new().with(&key, r#"{"title": "t"}"#);
    let job = common::lower_build(&text, &Vars::new(), &read).unwrap_or_else(|e| panic!("{e}"));
    assert!(job.steps.iter().all(|s| s.kind != "load_var"), "{:?}", job.steps);
}

/// Concourse redacts a `load_var`'s value from the build's output unless
/// the step says `reveal: true` (`atc/exec/load_var_step.go`); its var
/// tracker keeps the strings of a value, field by field through mappings
/// (`vars/tracker.go`). The values c8s read itself are given to the runner
/// to mask, never serialized with the plan; a value read in the pod is not.
#[test]
fn the_load_var_values_read_before_the_pod_are_redacted_unless_revealed() {
    use c8s_pipeline_model::concourse::FetchFile;
    let text = PIPELINE
        .replace("notes.md\n    format: raw", "meta.json")
        .replace("NOTES: ((.:notes))", "NOTES: \"((.:notes.title))\"");
    let key = format!("{}version/meta.json", FetchFile::VAR_PREFIX);
    let read = MemorySource::new().with(
        &key,
        r#"{"title": "hunter-two", "by": {"name": "ann-lee"}, "n": 3, "tags": ["x-y-z"]}"#,
    );
    let job = common::lower_build(&text, &Vars::new(), &read).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        job.redact,
        [
            ("load_var notes.title".to_owned(), "hunter-two".to_owned()),
            ("load_var notes.by.name".to_owned(), "ann-lee".to_owned()),
        ],
        "strings through mappings; not the number, not the list, not `number` (read in the pod)"
    );
    let shown = serde_json::to_string(&job).unwrap_or_else(|e| panic!("{e}"));
    assert!(!shown.contains("load_var notes."), "{shown}");

    let revealed = text.replace("meta.json\n", "meta.json\n    reveal: true\n");
    assert_ne!(revealed, text);
    let job = common::lower_build(&revealed, &Vars::new(), &read).unwrap_or_else(|e| panic!("{e}"));
    assert!(job.redact.is_empty(), "{:?}", job.redact);
}

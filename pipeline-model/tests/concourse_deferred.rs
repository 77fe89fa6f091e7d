//! A task `file:` that lives in an artifact a step fetches when the job runs
//! (`repo/ci/unit.yml` after `get: repo`): Concourse reads it only then, and
//! `fly validate-pipeline` never does. c8s defers that step, and every later
//! task or put that may read what it makes, and renders the rest.

use c8s_pipeline_model::concourse::JobPlan;
use c8s_pipeline_model::{MemorySource, Vars};

mod common;

const PIPELINE: &str = r#"
resources:
- name: repo
  type: git
  source: { uri: "https://example.com/app.git" }
- name: image
  type: registry-image
  source: { repository: example/app }
jobs:
- name: build
  plan:
  - get: repo
  - task: unit
    file: repo/ci/unit.yml
  - task: lint
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: golangci/golangci-lint } }
      inputs: [{ name: repo }]
      run: { path: golangci-lint, args: [run] }
  - task: package
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: busybox } }
      inputs: [{ name: repo }, { name: binary }]
      outputs: [{ name: image }]
      run: { path: sh, args: [-c, "tar -cf image/image.tar binary"] }
  - put: tag
    resource: repo
    inputs: [repo]
    params: { repository: repo, only_tag: true }
  - put: image
    params: { image: image/image.tar }
"#;

fn lower(text: &str, files: &MemorySource) -> Result<JobPlan, String> {
    common::lower_build(text, &Vars::new(), files)
}

fn ids(job: &JobPlan) -> Vec<&str> {
    job.steps.iter().map(|s| s.plan.identity.step.as_str()).collect()
}

#[test]
fn a_task_file_in_a_fetched_artifact_is_deferred_with_what_may_read_its_outputs() {
    let job = lower(PIPELINE, &MemorySource::new()).unwrap_or_else(|e| panic!("{e}"));
    // Rendered: the get, a task on known inputs, a put that lists its inputs.
    assert_eq!(ids(&job), ["build.repo", "build.lint", "build.tag"]);
    assert_eq!(
        job.deferred,
        [
            "13:5: step `unit` deferred to run time: its file \"repo/ci/unit.yml\" is read from artifact `repo`, which step `build.repo` fetches when the job runs",
            "21:5: step `package` deferred to run time: artifact `binary` it reads may be made by step `unit`, deferred to run time",
            "32:5: step `image` deferred to run time: it takes every artifact of the build, which may include what deferred step `package` makes",
        ]
    );
    // Only the task file can be fetched: from the get's output, at its path
    // inside the artifact. The steps deferred with it follow once it is read.
    let fetch: Vec<_> = job
        .fetch
        .iter()
        .map(|f| {
            (
                f.step.as_str(),
                f.file.as_str(),
                f.path.as_str(),
                f.producer.as_str(),
                f.output.as_str(),
            )
        })
        .collect();
    assert_eq!(
        fetch,
        [("unit", "repo/ci/unit.yml", "ci/unit.yml", "build.repo", "repo")]
    );
}

#[test]
fn a_task_file_the_reader_has_is_read_and_nothing_is_deferred() {
    let unit = "platform: linux\nimage_resource: { type: registry-image, source: { repository: golang } }\ninputs: [{ name: repo }]\noutputs: [{ name: binary }]\nrun: { path: go, args: [build] }\n";
    let files = MemorySource::new().with("repo/ci/unit.yml", unit);
    let job = lower(PIPELINE, &files).unwrap_or_else(|e| panic!("{e}"));
    assert!(job.deferred.is_empty(), "{:?}", job.deferred);
    assert_eq!(
        ids(&job),
        [
            "build.repo",
            "build.unit",
            "build.lint",
            "build.package",
            "build.tag",
            "build.image"
        ]
    );
}

#[test]
fn a_task_file_in_an_artifact_no_step_fetches_is_a_located_error() {
    let text = PIPELINE.replace("file: repo/ci/unit.yml", "file: tools/ci/unit.yml");
    let errors = lower(&text, &MemorySource::new()).expect_err("nobody fetches tools");
    assert!(
        errors.contains("ci.yml:14:5: jobs[0].plan[1].file: cannot read task file \"tools/ci/unit.yml\""),
        "{errors}"
    );
    assert!(
        errors.contains("no step before this one produces artifact `tools`"),
        "{errors}"
    );
    assert_eq!(errors.lines().count(), 1, "no derived errors: {errors}");
    // A file without an artifact is read from where c8s reads files, and not deferred.
    let text = PIPELINE.replace("file: repo/ci/unit.yml", "file: unit.yml");
    let errors = lower(&text, &MemorySource::new()).expect_err("no such file");
    assert!(errors.contains("cannot read task file \"unit.yml\""), "{errors}");
}

/// A `load_var` of what a deferred task makes, and a known task whose
/// params read that var: both wait for the task file, then lower as usual.
const LOAD_VAR_AFTER: &str = r#"
resources:
- name: repo
  type: git
  source: { uri: "https://example.com/app.git" }
jobs:
- name: build
  plan:
  - get: repo
  - task: version
    file: repo/ci/version.yml
  - load_var: number
    file: version/number
  - task: announce
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: busybox } }
      params: { TAG: "v((.:number))" }
      run: { path: sh, args: [-ec, 'echo "$TAG"'] }
"#;

#[test]
fn a_load_var_of_a_deferred_steps_artifact_is_deferred_with_the_tasks_that_read_it() {
    let job = lower(LOAD_VAR_AFTER, &MemorySource::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(&job), ["build.repo"]);
    assert_eq!(
        job.deferred,
        [
            "10:5: step `version` deferred to run time: its file \"repo/ci/version.yml\" is read from artifact `repo`, which step `build.repo` fetches when the job runs",
            "12:5: step `number` deferred to run time: artifact `version` it reads may be made by step `version`, deferred to run time",
            "14:5: step `announce` deferred to run time: its params use ((.:number)), set by a load_var deferred to run time",
        ]
    );
    assert!(
        job.skipped.is_empty(),
        "a deferred var is not reported unread: {:?}",
        job.skipped
    );
    // With the task file read (as c8s run reads it), the var is an input of
    // the task that reads it.
    let version = "platform: linux\nimage_resource: { type: registry-image, source: { repository: busybox } }\noutputs: [{ name: version }]\nrun: { path: sh, args: [-ec, 'echo 1.2.3 > version/number'] }\n";
    let files = MemorySource::new().with("repo/ci/version.yml", version);
    let job = lower(LOAD_VAR_AFTER, &files).unwrap_or_else(|e| panic!("{e}"));
    assert!(job.deferred.is_empty(), "{:?}", job.deferred);
    assert_eq!(ids(&job), ["build.repo", "build.version", "build.announce"]);
    let announce = &job.steps[2].plan;
    assert_eq!(announce.local_vars.len(), 1, "{announce:?}");
}

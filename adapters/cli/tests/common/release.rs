//! The release job of a Concourse pipeline that the control-plane tests run
//! (by `c8s run`, and triggered by `c8s watch`).

/// The job the Concourse run-time issue asks for: a get that triggers it,
/// a task whose file is in the fetched repository and makes a version, a
/// `load_var` of it, a test task (its file fetched too) whose params read the
/// var and that has `attempts: 2`, a put, and the job's `on_failure` and
/// `ensure` hooks.
pub const PIPELINE: &str = "\
resources:
- name: repo
  type: git
  source: { uri: https://github.com/example/app.git }
jobs:
- name: ship
  plan:
  - get: repo
    trigger: true
  - task: version
    file: repo/ci/version.yml
  - load_var: number
    file: version/number
  - task: unit
    file: repo/ci/unit.yml
    attempts: 2
  - put: repo
    params: { repository: repo, tag: version/number }
  on_failure: { task: page, config: &task { platform: linux, image_resource: { type: registry-image, source: { repository: alpine } }, run: { path: 'true' } } }
  ensure: { task: cleanup, config: *task }
";

/// What the nodes do for [`PIPELINE`]: each reader prints its task
/// file; the test task's first attempt fails and its second runs 3 s.
pub const SCRIPT: &str = r#"containers:
  - pod: read-version
    container: main
    logs:
      - "platform: linux"
      - "image_resource: { type: registry-image, source: { repository: busybox } }"
      - "inputs: [{ name: repo }]"
      - "outputs: [{ name: version }]"
      - "run: { path: sh, args: [-ec, 'echo 1.2.3 > version/number'] }"
  - pod: read-unit
    container: main
    logs:
      - "platform: linux"
      - "image_resource: { type: registry-image, source: { repository: golang, tag: '1.23' } }"
      - "inputs: [{ name: repo }]"
      - "params: { VERSION: v((.:number)) }"
      - "run: { path: go, args: [test, ./...], dir: repo }"
  - { pod: -ship-unit-, container: main, exitCode: 1, runSeconds: 0.3 }
  - { container: main, runSeconds: 0.3 }
"#;

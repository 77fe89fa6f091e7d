//! `c8s render` output run under kubelet rules (the runtime check shared from
//! `pod-builder/tests/common/kubelet`): what the CLI prints is what runs.

mod common;
#[path = "../../../pod-builder/tests/common/kubelet/mod.rs"]
mod kubelet;

use std::path::PathBuf;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kubelet::fixtures::origin;
use kubelet::{Kubelet, Phase, job_pod};

/// A resource type's image for the runtime check: busybox, with `scripts`
/// (name, text) at `/opt/resource` (from `dir/opt-resource`, a fresh
/// `dir` with `artifacts` and `seen` beside it, all writable by the
/// container's UID 1000).
fn resource_image(dir: &std::path::Path, scripts: &[(&str, String)]) -> kubelet::images::Image {
    let _ = std::fs::remove_dir_all(dir);
    let resource = dir.join("opt-resource");
    for sub in [&resource, &dir.join("artifacts"), &dir.join("seen")] {
        std::fs::create_dir_all(sub).expect("dir");
    }
    std::fs::write(dir.join("request"), "").expect("request");
    for (name, text) in scripts {
        std::fs::write(resource.join(name), text).expect("script");
    }
    let chmod = |args: &[&str], path: &std::path::Path| {
        let status = std::process::Command::new("chmod")
            .args(args)
            .arg(path)
            .status()
            .expect("chmod");
        assert!(status.success());
    };
    chmod(&["-R", "a+rwX"], dir);
    for (name, _) in scripts {
        chmod(&["a+rx"], &resource.join(name));
    }
    kubelet::images::Image {
        path: vec![kubelet::images::busybox_bin()],
        files: vec![kubelet::volumes::Mount {
            source: resource,
            destination: "/opt/resource".to_owned(),
            read_only: true,
        }],
        ..kubelet::images::Image::default()
    }
}

/// The image of `pod`'s `main` container.
fn main_image(pod: &Pod) -> String {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .find(|c| c.name == "main")
        .and_then(|c| c.image.clone())
        .expect("main's image")
}

/// A Concourse task with an output and a Redis service, written for the test.
const TASK: &str = r#"platform: linux
image_resource: { type: registry-image, source: { repository: golang, tag: "1.23" } }
inputs: [{ name: source }]
outputs: [{ name: reports }]
run:
  path: sh
  args: ["-ec", "git rev-parse HEAD > ../reports/commit\nredis-cli -h 127.0.0.1 ping | grep -qx PONG\n[ -z \"$STUCK\" ] || sleep 300"]
  dir: source
params: { STUCK: "" }
sidecars:
  - name: redis
    image: redis:7
    ports: [{ containerPort: 6379 }]
"#;

fn task_file(name: &str, text: &str) -> PathBuf {
    let dir = kubelet::scratch_root().join(format!("cli-runtime-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write task");
    path
}

/// `c8s render … -o json` as objects: each Pod, or each Job's pod.
fn render(args: &[&str]) -> Vec<Pod> {
    let out = common::c8s(&[&["render"], args, &["-o", "json"]].concat());
    assert!(out.status.success(), "c8s render: {}", common::text(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON List");
    let items = list["items"].as_array().expect("items").clone();
    items
        .into_iter()
        .map(|item| match item["kind"].as_str() {
            Some("Job") => job_pod(&serde_json::from_value::<Job>(item).expect("a Job")),
            _ => serde_json::from_value(item).expect("a Pod"),
        })
        .collect()
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn a_rendered_task_runs_clones_its_commit_and_saves_its_output() {
    let origin = origin();
    let file = task_file("task.yml", TASK);
    let file = file.to_str().expect("utf-8 path");
    for job in [false, true] {
        let mut args = vec![
            file,
            "--repository",
            &origin.url,
            "--commit",
            &origin.commit,
            "--checkout-input",
            "source",
        ];
        if job {
            args.push("--job");
        }
        let pods = render(&args);
        assert_eq!(pods.len(), 1);
        let artifacts = kubelet::scratch_root().join(format!("cli-artifacts-{}-{job}", std::process::id()));
        let _ = std::fs::remove_dir_all(&artifacts);
        std::fs::create_dir_all(&artifacts).expect("artifacts");
        let run = Kubelet::default()
            .claim("c8s-artifacts", artifacts.clone())
            .run(&pods[0]);
        assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
        let commit =
            std::fs::read_to_string(run.volumes["workspace"].join("reports/commit")).expect("output");
        assert_eq!(commit.trim(), origin.commit);
        assert!(
            run.container("artifact-helper").log.contains("saved reports"),
            "{}",
            run.logs()
        );
    }
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn default_timeout_ends_a_stuck_task_and_a_bad_commit_renders_nothing() {
    let origin = origin();
    let file = task_file("stuck.yml", &TASK.replace("STUCK: \"\"", "STUCK: \"yes\""));
    let file = file.to_str().expect("utf-8 path");
    let pods = render(&[
        file,
        "--repository",
        &origin.url,
        "--commit",
        &origin.commit,
        "--default-timeout",
        "4s",
        "--checkout-input",
        "source",
    ]);
    let run = Kubelet::default().run(&pods[0]);
    assert_eq!(run.reason.as_deref(), Some("DeadlineExceeded"), "{}", run.logs());
    for commit in ["--upload-pack=touch /tmp/c8s-pwned", "abc123"] {
        let flag = format!("--commit={commit}");
        let out = common::c8s(&["render", file, "--repository", &origin.url, &flag]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{commit}: {}",
            common::text(&out.stdout)
        );
        assert!(out.stdout.is_empty(), "{commit}: nothing rendered");
    }
}

/// A Concourse job whose task reads two `load_var` values in its params: a
/// task writes the files, the vars name them, and the reading task's env
/// holds the values when its command runs.
const LOAD_VAR_JOB: &str = r#"jobs:
- name: release
  plan:
  - task: version
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: busybox } }
      outputs: [{ name: version }]
      run:
        path: sh
        args: ["-ec", "printf '  1.2.3\\n\\n' > version/number; printf 'a $(b) `c`\\n' > version/notes"]
  - load_var: number
    file: version/number
  - load_var: notes
    file: version/notes
    format: raw
  - task: show
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: busybox } }
      params:
        NUMBER: ((.:number))
        TAG: v((.:number))-rc((.:number))
        NOTES: ((.:notes))
        file: ((.:number))
        value: kept
      run:
        path: sh
        args:
          - -ec
          - |
            nl='
            '
            test "$NUMBER" = 1.2.3
            test "$TAG" = v1.2.3-rc1.2.3
            test "$NOTES" = "a \$(b) \`c\`$nl"
            test "$file" = 1.2.3
            test "$value" = kept
            test -z "${c8s_value:-}"
            echo "released $NUMBER as $TAG"
"#;

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn a_load_var_value_reaches_the_params_of_a_later_task_when_it_runs() {
    let file = task_file("load-var.yml", LOAD_VAR_JOB);
    let pods = render(&[file.to_str().expect("utf-8 path")]);
    assert_eq!(pods.len(), 2, "one pod per task; a load_var has none");
    let artifacts = kubelet::scratch_root().join(format!("cli-load-var-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).expect("artifacts");
    let kubelet = Kubelet::default().claim("c8s-artifacts", artifacts.clone());
    let wrote = kubelet.run(&pods[0]);
    assert_eq!(wrote.phase, Phase::Succeeded, "{}", wrote.logs());
    let read = kubelet.run(&pods[1]);
    assert_eq!(read.phase, Phase::Succeeded, "{}", read.logs());
    assert!(
        read.container("main")
            .log
            .contains("released 1.2.3 as v1.2.3-rc1.2.3"),
        "{}",
        read.logs()
    );

    // A file the producing task did not write fails the reading task before
    // its command runs, naming the var, as Concourse's load_var fails the build.
    let file = task_file(
        "load-var-missing.yml",
        &LOAD_VAR_JOB.replace("version/number\n", "version/nowhere\n"),
    );
    let pods = render(&[file.to_str().expect("utf-8 path")]);
    let artifacts = kubelet::scratch_root().join(format!("cli-load-var-missing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).expect("artifacts");
    let kubelet = Kubelet::default().claim("c8s-artifacts", artifacts);
    assert_eq!(kubelet.run(&pods[0]).phase, Phase::Succeeded);
    let read = kubelet.run(&pods[1]);
    assert_eq!(read.phase, Phase::Failed, "{}", read.logs());
    let main = &read.container("main").log;
    assert!(
        main.contains("load_var number: file nowhere is not in its artifact"),
        "{}",
        read.logs()
    );
    assert!(!main.contains("released"), "{}", read.logs());
}

/// A job whose test task's `file:` is in an artifact an earlier task makes
/// (the way a `get` of the repository makes it): the file is known only when
/// the job runs, so `c8s run` reads it with a reader pod first.
const FETCHED_TASK_JOB: &str = r#"jobs:
- name: build
  plan:
  - task: checkout
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: busybox } }
      outputs: [{ name: repo }]
      run:
        path: sh
        args: ["-ec", "mkdir -p repo/ci && printf 'platform: linux\n# a $(b) `c` line\nrun: { path: echo, args: [from-the-artifact] }\n' > repo/ci/unit.yml && echo other > repo/ci/other.yml"]
  - task: unit
    file: repo/ci/unit.yml
"#;

/// Job `build` of pipeline `text` (at `path`), lowered with the files (and
/// read values) of `files`, as `c8s run` lowers it.
fn lower_build(
    path: &str,
    text: &str,
    files: &c8s_pipeline_model::MemorySource,
) -> c8s_pipeline_model::concourse::JobPlan {
    use c8s_pipeline_model::concourse::{lower_job, parse_concourse_pipeline};
    let vars = c8s_pipeline_model::Vars::new();
    let pipeline = parse_concourse_pipeline(path, text, &vars, files).expect("the pipeline reads");
    lower_job(
        &pipeline,
        "build",
        files,
        &std::collections::BTreeMap::new(),
        path,
    )
    .expect("lowered")
}

/// The reader pod `c8s run` adds for the first file `job` defers
/// (adapters/cli/src/run_fetch.rs), rendered for run `run_id`.
fn first_reader(job: &c8s_pipeline_model::concourse::JobPlan, run_id: &str) -> Pod {
    assert!(!job.fetch.is_empty(), "{:?}", job.deferred);
    let ctx = c8s_pod_builder::RunContext::new(run_id, 1);
    let producer = &job.steps[0].plan.identity.pipeline;
    let reader = job.fetch[0].reader_plan(producer, &ctx.helper_image, "t");
    c8s_pod_builder::render_pod(&reader, &ctx).expect("the reader renders")
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn the_reader_pod_of_a_deferred_task_file_prints_that_file_whole() {
    let file = task_file("fetched-task.yml", FETCHED_TASK_JOB);
    let path = file.to_str().expect("utf-8 path");
    let pods = render(&[path, "--run-id", "fetch-rt"]);
    assert_eq!(
        pods.len(),
        1,
        "only the checkout renders: the test task is deferred"
    );
    let job = lower_build(path, FETCHED_TASK_JOB, &c8s_pipeline_model::MemorySource::new());
    assert_eq!(job.fetch.len(), 1, "{:?}", job.deferred);
    let reader = first_reader(&job, "fetch-rt");

    let artifacts = kubelet::scratch_root().join(format!("cli-fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).expect("artifacts");
    let kubelet = Kubelet::default().claim("c8s-artifacts", artifacts);
    let made = kubelet.run(&pods[0]);
    assert_eq!(made.phase, Phase::Succeeded, "{}", made.logs());
    let read = kubelet.run(&reader);
    assert_eq!(read.phase, Phase::Succeeded, "{}", read.logs());
    assert_eq!(
        read.container("main").log,
        "platform: linux\n# a $(b) `c` line\nrun: { path: echo, args: [from-the-artifact] }\n",
        "{}",
        read.logs()
    );
}

/// The check pod `c8s watch` runs for a resource (adapters/cli/src/watch.rs:
/// `check_plan` rendered with the run's context), under kubelet rules, with
/// a resource type image whose `/opt/resource/check` records its request
/// and answers two versions after some stderr noise: the response is read
/// back from `main`'s log, the request has the source from its Secret and
/// the last version known, and the credential is not in the pod spec.
#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn the_check_pod_of_a_resource_asks_from_the_last_version_and_its_response_reads_back() {
    use c8s_pipeline_model::concourse::node::Report;
    use c8s_pipeline_model::concourse::resource::check_plan;
    use c8s_pipeline_model::concourse::triggers::check_response;
    use c8s_pipeline_model::{MemorySource, PlanIdentity, Vars};

    let text = "resources:
- name: repo
  type: git
  source: { uri: https://example.com/app.git, private_key: ((repo-key)) }
jobs:
- name: build
  plan:
  - get: repo
    trigger: true
";
    let pipeline = c8s_pipeline_model::concourse::parse_concourse_pipeline(
        "ci.yml",
        text,
        &Vars::new(),
        &MemorySource::new(),
    )
    .expect("the pipeline reads");
    let mut needs = Vec::new();
    let mut report = Report::new("ci.yml");
    let plan = check_plan(
        &pipeline,
        PlanIdentity::new(&pipeline.name, "check-repo"),
        &pipeline.resources[0],
        Some(r#"{"ref":"aaa"}"#.to_owned()),
        &mut needs,
        &mut report,
    )
    .expect("a check plan");
    assert_eq!(
        needs.len(),
        1,
        "the source's credential comes from a Secret: {needs:?}"
    );
    let ctx = c8s_pod_builder::RunContext::new("check-rt", 1);
    let pod = c8s_pod_builder::render_pod(&plan, &ctx).expect("the check renders");
    let spec = serde_json::to_string(&pod).expect("json");
    assert!(!spec.contains("s3cr3t"), "{spec}");

    // The resource type's image: its check records stdin and answers.
    let dir = kubelet::scratch_root().join(format!("cli-check-{}", std::process::id()));
    let request = dir.join("request");
    let check = format!(
        "#!/bin/sh\ncat > {}\necho 'Cloning into /tmp/git-resource-repo-cache...' >&2\nprintf '[\\n  {{\"ref\": \"aaa\"}},\\n  {{\"ref\": \"bbb\"}}\\n]\\n'\n",
        request.display()
    );
    let image = resource_image(&dir, &[("check", check)]);
    let secret = &needs[0];
    let source = r#"{"uri":"https://example.com/app.git","private_key":"s3cr3t"}"#;
    let kubelet =
        Kubelet::default()
            .image("concourse/git-resource", image)
            .secret(&secret.name, &secret.key, source);
    let run = kubelet.run(&pod);
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
    let log = &run.container("main").log;
    assert_eq!(
        check_response(log).expect("the response"),
        [r#"{"ref":"aaa"}"#, r#"{"ref":"bbb"}"#],
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(&request).expect("request"),
        format!(r#"{{"source":{source},"version":{{"ref":"aaa"}}}}"#)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A job whose task builds an image tarball and whose put pushes it (to a
/// registry-image resource), as `c8s render` renders it.
const PUT_JOB: &str = r#"resources:
- name: image
  type: registry-image
  source: { repository: example/app }
jobs:
- name: build
  plan:
  - task: build
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: busybox } }
      outputs: [{ name: built }]
      run: { path: sh, args: ["-ec", "echo layers > built/image.tar"] }
  - put: image
    params: { image: built/image.tar }
"#;

/// The put pod as rendered runs under kubelet rules: the resource type's
/// `out` (a stand-in at /opt/resource) sees the artifact the task made,
/// the implicit get's `in` is given the version `out` answered, and the
/// response (which `out` broke into lines) reads back from `main`'s log
/// after what `in` logged: the version c8s watch passes on.
#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn the_put_pod_pushes_what_the_task_made_and_its_version_reads_back_from_its_log() {
    use c8s_pipeline_model::concourse::triggers::put_response;

    let file = task_file("put.yml", PUT_JOB);
    let pods = render(&[file.to_str().expect("utf-8 path")]);
    assert_eq!(pods.len(), 2, "the task and the put");
    let put = &pods[1];
    let image_name = main_image(put);

    let dir = kubelet::scratch_root().join(format!("cli-put-{}", std::process::id()));
    let (artifacts, seen) = (dir.join("artifacts"), dir.join("seen"));
    let out = format!(
        "#!/bin/sh\ncat > {seen}/out-request\ncp \"$1/built/image.tar\" {seen}/pushed\necho 'pushing example/app' >&2\nprintf '{{\\n  \"version\": {{\"digest\": \"sha256:9\"}},\\n  \"metadata\": []\\n}}\\n'\n",
        seen = seen.display()
    );
    let fetch = format!(
        "#!/bin/sh\ncat > {seen}/in-request\necho 'fetching' >&2\necho '{{\"version\": {{\"digest\": \"sha256:9\"}}}}'\n",
        seen = seen.display()
    );
    let image = resource_image(&dir, &[("out", out), ("in", fetch)]);
    let kubelet = Kubelet::default()
        .claim("c8s-artifacts", artifacts)
        .image(&image_name, image);
    let built = kubelet.run(&pods[0]);
    assert_eq!(built.phase, Phase::Succeeded, "{}", built.logs());
    let run = kubelet.run(put);
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
    let log = &run.container("main").log;
    assert_eq!(
        put_response(log).expect("the response"),
        r#"{"digest":"sha256:9"}"#,
        "{log}"
    );
    let read = |name: &str| std::fs::read_to_string(seen.join(name)).unwrap_or_default();
    assert_eq!(read("pushed"), "layers\n");
    assert_eq!(
        read("out-request"),
        r#"{"source":{"repository":"example/app"},"params":{"image":"built/image.tar"}}"#
    );
    assert!(
        read("in-request").contains(r#""version":{"digest": "sha256:9"}"#),
        "{}",
        read("in-request")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A job whose put sets a pull request's status with fields of the version
/// its get fetched (`((.:pr.ref))`), as Concourse's own pipelines do.
const GET_VERSION_JOB: &str = r#"resources:
- name: pr
  type: git
  source: { uri: https://example.com/app.git }
- name: status
  type: git
  source: { uri: https://example.com/status.git }
jobs:
- name: build
  plan:
  - get: pr
  - put: status
    no_get: true
    params: { ref: ((.:pr.ref)), state: pending }
"#;

/// The get pod as rendered runs under kubelet rules with a stand-in git
/// resource: it saves the version `in` answered in the artifact store, the
/// reader `c8s run` adds prints it whole, and with it the job lowers again
/// into the same get and a put whose params hold the version's field.
#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn the_version_a_get_fetched_is_saved_read_back_and_fills_a_later_puts_params() {
    let file = task_file("get-version.yml", GET_VERSION_JOB);
    let path = file.to_str().expect("utf-8 path");
    let pods = render(&[path, "--run-id", "version-rt"]);
    assert_eq!(
        pods.len(),
        1,
        "only the get renders: the put waits for its version"
    );
    let image_name = main_image(&pods[0]);
    let job = lower_build(path, GET_VERSION_JOB, &c8s_pipeline_model::MemorySource::new());
    assert_eq!(job.fetch.len(), 1, "{:?}", job.deferred);
    let reader = first_reader(&job, "version-rt");

    // The git resource: no version given, so its `check` finds the newest;
    // `in` clones nothing and answers that version with metadata after
    // some noise.
    let dir = kubelet::scratch_root().join(format!("cli-get-version-{}", std::process::id()));
    let check = "#!/bin/sh\ncat > /dev/null\nprintf '[{\"ref\": \"1111111\"}, {\"ref\": \"9f2c1d4\"}]\\n'\n";
    let fetch = "#!/bin/sh\ncat > /dev/null\necho 'Cloning into pr...' >&2\nprintf '{\\n  \"version\": {\"ref\": \"9f2c1d4\"},\\n  \"metadata\": [{\"name\": \"author\", \"value\": \"ann {x}\"}]\\n}\\n'\n";
    let image = resource_image(&dir, &[("check", check.to_owned()), ("in", fetch.to_owned())]);
    let kubelet = Kubelet::default()
        .claim("c8s-artifacts", dir.join("artifacts"))
        .image(&image_name, image);
    let got = kubelet.run(&pods[0]);
    assert_eq!(got.phase, Phase::Succeeded, "{}", got.logs());
    let read = kubelet.run(&reader);
    assert_eq!(read.phase, Phase::Succeeded, "{}", read.logs());
    let printed = read.container("main").log.clone();
    assert_eq!(printed, "{\"ref\": \"9f2c1d4\"}\n", "{}", read.logs());

    // What c8s run does with it: the job lowers whole.
    let known = c8s_pipeline_model::MemorySource::new().with(&job.fetch[0].key, printed);
    let whole = lower_build(path, GET_VERSION_JOB, &known);
    assert!(whole.deferred.is_empty(), "{:?}", whole.deferred);
    assert_eq!(whole.steps[0].plan, job.steps[0].plan, "the get that ran");
    let params = whole.steps[1]
        .plan
        .env
        .iter()
        .find(|e| e.name == "C8S_PARAMS")
        .and_then(|e| e.value.clone());
    assert_eq!(params.as_deref(), Some(r#"{"ref":"9f2c1d4","state":"pending"}"#));
    let _ = std::fs::remove_dir_all(&dir);
}

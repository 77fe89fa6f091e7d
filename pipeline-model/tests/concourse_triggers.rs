//! Which builds new versions start, as Concourse's scheduler decides
//! (<https://concourse-ci.org/jobs.html>: a get with `trigger: true` starts a
//! build when it has a version the job's last build did not run with;
//! `passed:` takes only versions that went through the upstream jobs).

use std::collections::BTreeMap;

use c8s_pipeline_model::concourse::resource::{CHECK_MARKER, CHECK_SCRIPT, PUT_SCRIPT, check_plan};
use c8s_pipeline_model::concourse::triggers::{
    Build, History, KEEP_VERSIONS, check_response, checked_resources, may_start, put_response,
};
use c8s_pipeline_model::concourse::{ConcoursePipeline, parse_concourse_pipeline};
use c8s_pipeline_model::{MemorySource, PlanIdentity, Vars};

mod stand_in;
use stand_in::StandIn;

const PIPELINE: &str = r#"
resources:
- name: repo
  type: git
  source: { uri: "https://example.com/app.git" }
- name: tools
  type: git
  check_every: 4h
  source: { uri: "https://example.com/tools.git" }
- name: nightly
  type: time
  check_every: never
  source: { interval: 24h }
- name: unused
  type: git
  source: { uri: "https://example.com/unused.git" }
jobs:
- name: build
  plan:
  - in_parallel:
    - get: repo
      trigger: true
    - get: tools
  - task: unit
    config: &task
      platform: linux
      image_resource: { type: registry-image, source: { repository: busybox } }
      run: { path: "true" }
- name: deploy
  plan:
  - get: repo
    trigger: true
    passed: [build]
  - task: ship
    config: *task
- name: by-hand
  plan:
  - get: repo
  - get: nightly
  - task: report
    config: *task
"#;

fn pipeline(text: &str) -> ConcoursePipeline {
    parse_concourse_pipeline("ci.yml", text, &Vars::new(), &MemorySource::new())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn v(r: &str) -> String {
    format!("{{\"ref\":\"{r}\"}}")
}

fn jobs(builds: &[Build]) -> Vec<(&str, u64)> {
    builds.iter().map(|b| (b.job.as_str(), b.number)).collect()
}

#[test]
fn a_new_version_starts_one_build_of_each_job_it_triggers_and_a_seen_one_none() {
    let pipeline = pipeline(PIPELINE);
    let mut history = History::default();
    // Nothing checked yet: no input resolves, nothing starts.
    assert!(history.next_builds(&pipeline).is_empty());
    assert_eq!(history.add_versions("repo", vec![v("a")]), 1);
    // `tools` has no version yet: build waits for every input.
    assert!(history.next_builds(&pipeline).is_empty());
    history.add_versions("tools", vec![v("t1")]);
    let builds = history.next_builds(&pipeline);
    assert_eq!(jobs(&builds), [("build", 1)]);
    assert_eq!(builds[0].versions["repo"], v("a"));
    assert_eq!(builds[0].versions["tools"], v("t1"));
    history.started(&builds[0]);
    // Started: the same versions start nothing, however often it is asked.
    assert!(history.next_builds(&pipeline).is_empty());
    // A new version of a non-trigger input starts nothing either.
    history.add_versions("tools", vec![v("t1"), v("t2")]);
    assert!(history.next_builds(&pipeline).is_empty());
    // A check that answers the known version and two new ones: the newest runs, once.
    assert_eq!(history.add_versions("repo", vec![v("a"), v("b"), v("c")]), 2);
    let builds = history.next_builds(&pipeline);
    assert_eq!(jobs(&builds), [("build", 2)]);
    assert_eq!(builds[0].versions["repo"], v("c"));
    assert_eq!(builds[0].versions["tools"], v("t2"));
}

#[test]
fn passed_takes_the_newest_version_that_every_upstream_job_succeeded_with() {
    let pipeline = pipeline(PIPELINE);
    let mut history = History::default();
    history.add_versions("repo", vec![v("a")]);
    history.add_versions("tools", vec![v("t1")]);
    let build = history.next_builds(&pipeline).remove(0);
    history.started(&build);
    // Started, not succeeded: deploy has nothing that passed.
    assert!(history.next_builds(&pipeline).is_empty());
    history.succeeded(&build, &BTreeMap::new());
    let builds = history.next_builds(&pipeline);
    assert_eq!(jobs(&builds), [("deploy", 1)]);
    assert_eq!(builds[0].versions["repo"], v("a"));
    history.started(&builds[0]);
    // A newer version that has not passed build: deploy stays where it is.
    history.add_versions("repo", vec![v("b")]);
    let builds = history.next_builds(&pipeline);
    assert_eq!(jobs(&builds), [("build", 2)]);
    history.started(&builds[0]);
    assert!(history.next_builds(&pipeline).is_empty());
    // A failed build of `b` passes nothing; a later success does.
    history.succeeded(&builds[0], &BTreeMap::new());
    let builds = history.next_builds(&pipeline);
    assert_eq!(jobs(&builds), [("deploy", 2)]);
    assert_eq!(builds[0].versions["repo"], v("b"));
}

#[test]
fn a_pinned_version_is_the_one_fetched_and_a_job_without_a_trigger_never_starts() {
    let text = PIPELINE.replace(
        "  - get: repo\n    trigger: true\n    passed: [build]",
        "  - get: repo\n    trigger: true\n    version: { ref: pinned, branch: main }",
    );
    let pipeline = pipeline(&text);
    let mut history = History::default();
    for resource in ["repo", "tools", "nightly"] {
        history.add_versions(resource, vec![v("x")]);
    }
    let builds = history.next_builds(&pipeline);
    // `by-hand` has every input and no trigger: it is never started here.
    assert_eq!(jobs(&builds), [("build", 1), ("deploy", 1)]);
    // Pinned, keys sorted as every version is stored.
    assert_eq!(builds[1].versions["repo"], r#"{"branch":"main","ref":"pinned"}"#);
}

#[test]
fn the_history_is_stored_as_json_and_keeps_the_newest_versions() {
    let mut history = History::default();
    let versions: Vec<String> = (0..KEEP_VERSIONS + 5).map(|i| v(&i.to_string())).collect();
    history.add_versions("repo", versions);
    assert_eq!(history.resources["repo"].len(), KEEP_VERSIONS);
    assert_eq!(
        history.latest("repo"),
        Some(v(&(KEEP_VERSIONS + 4).to_string()).as_str())
    );
    assert_eq!(history.resources["repo"][0], v("5"));
    let back = History::from_json(&history.to_json()).expect("read back");
    assert_eq!(back, history);
    assert_eq!(History::from_json("").expect("empty"), History::default());
    assert!(History::from_json("{\"resources\": 3}").is_err());
}

#[test]
fn a_check_response_is_read_after_its_marker_whatever_the_resource_logged() {
    let log = format!(
        "Cloning into '/tmp/git-resource-repo-cache'...\n{CHECK_MARKER}[{{\"ref\": \"b\"}}, {{\"z\": \"1\", \"a\": \"2\"}}]\n"
    );
    assert_eq!(
        check_response(&log).expect("read"),
        [v("b"), r#"{"a":"2","z":"1"}"#.to_owned()]
    );
    assert_eq!(
        check_response(&format!("{CHECK_MARKER}[]\n")).expect("none"),
        Vec::<String>::new()
    );
    assert!(check_response("fatal: repository not found\n").is_err());
    let error = check_response(&format!("{CHECK_MARKER}[\"b\"]")).expect_err("not a version");
    assert!(error.contains("not a version"), "{error}");
}

#[test]
fn only_resources_a_job_gets_are_checked_each_as_often_as_it_says() {
    let pipeline = pipeline(PIPELINE);
    let checked: Vec<(&str, Option<u64>)> = checked_resources(&pipeline)
        .iter()
        .map(|r| (r.name.as_str(), r.check_every))
        .collect();
    assert_eq!(
        checked,
        [("repo", Some(60)), ("tools", Some(4 * 3600)), ("nightly", None)]
    );
    let bad = PIPELINE.replace("check_every: 4h", "check_every: four hours");
    let error = parse_concourse_pipeline("ci.yml", &bad, &Vars::new(), &MemorySource::new())
        .expect_err("not a duration")
        .to_string();
    assert!(
        error.starts_with("ci.yml:8:16: resources[1].check_every: "),
        "{error}"
    );
}

#[test]
fn a_check_pod_asks_from_the_last_version_and_prints_its_response_marked() {
    let pipeline = pipeline(PIPELINE);
    let repo = &pipeline.resources[0];
    let mut needs = Vec::new();
    let mut report = c8s_pipeline_model::concourse::node::Report::new("ci.yml");
    let plan = check_plan(
        &pipeline,
        PlanIdentity::new("ci", "check-repo"),
        repo,
        Some(v("a")),
        &mut needs,
        &mut report,
    )
    .expect("a plan");
    assert_eq!(plan.image, "concourse/git-resource");
    assert_eq!(plan.command, ["sh", "-c", CHECK_SCRIPT]);
    assert!(CHECK_SCRIPT.contains("/opt/resource/check"));
    let env: Vec<(&str, Option<&str>)> = plan
        .env
        .iter()
        .map(|e| (e.name.as_str(), e.value.as_deref()))
        .collect();
    assert_eq!(
        env,
        [
            ("C8S_SOURCE", Some(r#"{"uri":"https://example.com/app.git"}"#)),
            ("C8S_VERSION", Some(v("a").as_str())),
        ]
    );
    assert!(plan.inputs.is_empty() && plan.outputs.is_empty() && plan.skip_checkout);
    assert!(needs.is_empty());
}

/// The check script as a shell runs it, with a stand-in for the resource's
/// `check` (at a path of the test's own): what it is given on stdin, and
/// that its response is read back whatever it logged on stderr and however
/// it broke its JSON into lines.
#[test]
fn the_check_script_gives_the_source_and_last_version_and_its_response_reads_back() {
    let dir = std::env::temp_dir().join(format!("c8s-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let check = dir.join("check");
    let stdin = dir.join("stdin");
    std::fs::write(
        &check,
        format!(
            "#!/bin/sh\ncat > {}\necho 'Cloning into cache...' >&2\nprintf '[\\n  {{\"ref\": \"a\"}},\\n  {{\"ref\": \"b\"}}\\n]\\n'\n",
            stdin.display()
        ),
    )
    .expect("check");
    let run = |version: &str| {
        let script = CHECK_SCRIPT.replace("/opt/resource/check", check.to_str().expect("path"));
        std::process::Command::new("sh")
            .args(["-c", &script])
            .env("C8S_SOURCE", r#"{"uri":"https://example.com/app.git"}"#)
            .env("C8S_VERSION", version)
            .output()
            .expect("sh runs")
    };
    std::process::Command::new("chmod")
        .args(["+x", check.to_str().expect("path")])
        .status()
        .expect("chmod");
    let out = run(&v("a"));
    assert!(out.status.success(), "{out:?}");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(check_response(&log).expect("read"), [v("a"), v("b")]);
    assert_eq!(
        std::fs::read_to_string(&stdin).expect("stdin"),
        r#"{"source":{"uri":"https://example.com/app.git"},"version":{"ref":"a"}}"#
    );
    // No version known: `null`, Concourse's "the newest".
    assert!(run("").status.success());
    assert_eq!(
        std::fs::read_to_string(&stdin).expect("stdin"),
        r#"{"source":{"uri":"https://example.com/app.git"},"version":null}"#
    );
    // A check that fails fails the pod, and prints no response.
    std::fs::write(&check, "#!/bin/sh\necho 'auth failed' >&2\nexit 3\n").expect("check");
    let out = run("");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(CHECK_MARKER));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn version_every_builds_each_version_in_order_and_then_nothing() {
    let text = PIPELINE.replace(
        "    - get: repo\n      trigger: true",
        "    - get: repo\n      trigger: true\n      version: every",
    );
    let pipeline = pipeline(&text);
    let mut history = History::default();
    history.add_versions("tools", vec![v("t")]);
    history.add_versions("repo", vec![v("a")]);
    let mut fetched = Vec::new();
    let next = |history: &mut History| {
        let build = history
            .next_builds(&pipeline)
            .into_iter()
            .find(|b| b.job == "build")?;
        history.started(&build);
        Some((build.number, build.versions["repo"].clone()))
    };
    fetched.extend(next(&mut history));
    // Three versions at once: each gets its build, oldest first.
    history.add_versions("repo", vec![v("a"), v("b"), v("c"), v("d")]);
    while let Some(build) = next(&mut history) {
        fetched.push(build);
    }
    assert_eq!(fetched, [(1, v("a")), (2, v("b")), (3, v("c")), (4, v("d"))]);
}

#[test]
fn a_version_pinned_by_hand_wins_and_a_job_triggered_by_hand_runs_with_what_resolves() {
    let pipeline = pipeline(PIPELINE);
    let mut history = History::default();
    history.add_versions("repo", vec![v("a"), v("b")]);
    history.add_versions("tools", vec![v("t")]);
    history.pinned.insert("repo".to_owned(), v("a"));
    let build = history.next_builds(&pipeline).remove(0);
    assert_eq!(
        (build.job.as_str(), build.versions["repo"].as_str()),
        ("build", v("a").as_str())
    );
    history.started(&build);
    // Unpinned: the newest is new to the job, so it triggers.
    history.pinned.clear();
    let build = history.next_builds(&pipeline).remove(0);
    assert_eq!(
        (build.number, build.versions["repo"].as_str()),
        (2, v("b").as_str())
    );
    history.started(&build);
    assert!(history.next_builds(&pipeline).is_empty());
    // By hand: no new version needed; a job without a trigger too.
    let job = |name: &str| pipeline.jobs.iter().find(|j| j.name == name).expect("job");
    let again = history.build_of(&pipeline, job("build")).expect("resolves");
    assert_eq!(
        (again.number, again.versions["repo"].as_str()),
        (3, v("b").as_str())
    );
    history.add_versions("nightly", vec![v("n")]);
    let by_hand = history.build_of(&pipeline, job("by-hand")).expect("resolves");
    assert_eq!(by_hand.number, 1);
    // An input with no version yet: nothing to run by hand either.
    assert!(History::default().build_of(&pipeline, job("build")).is_none());
    // A pin is the only candidate, and `passed:` still holds for it.
    history.pinned.insert("repo".to_owned(), v("z"));
    assert!(history.build_of(&pipeline, job("deploy")).is_none());
    let mut passed = history.build_of(&pipeline, job("build")).expect("pinned");
    passed.versions.insert("repo".to_owned(), v("z"));
    history.succeeded(&passed, &BTreeMap::new());
    assert_eq!(
        history
            .build_of(&pipeline, job("deploy"))
            .expect("passed")
            .versions["repo"],
        v("z")
    );
    // Pins are stored with the rest.
    assert_eq!(History::from_json(&history.to_json()).expect("read"), history);
}

/// A build job that puts an image and the jobs that get it: Concourse's
/// "build, then deploy what was built" (<https://concourse-ci.org/jobs.html>).
const PUTS: &str = r#"
resources:
- name: src
  type: git
  source: { uri: "https://example.com/app.git" }
- name: image
  type: registry-image
  source: { repository: example/app }
jobs:
- name: build
  plan:
  - get: src
    trigger: true
  - put: image
    params: { image: src/image.tar }
- name: deploy
  plan:
  - get: image
    trigger: true
    passed: [build]
- name: scan
  plan:
  - get: image
    trigger: true
"#;

fn image(digest: &str) -> String {
    format!("{{\"digest\":\"{digest}\"}}")
}

#[test]
fn the_version_a_put_made_passes_on_to_the_jobs_after_it_and_is_a_new_version() {
    let pipeline = pipeline(PUTS);
    let mut history = History::default();
    history.add_versions("src", vec![v("a")]);
    let build = history.next_builds(&pipeline).remove(0);
    assert_eq!(build.job, "build");
    history.started(&build);
    // The image was never checked: nothing gets it before the put made one.
    assert!(history.next_builds(&pipeline).is_empty());
    let outputs = BTreeMap::from([("image".to_owned(), image("sha256:1"))]);
    history.succeeded(&build, &outputs);
    assert_eq!(history.latest("image"), Some(image("sha256:1").as_str()));
    let builds = history.next_builds(&pipeline);
    assert_eq!(jobs(&builds), [("deploy", 1), ("scan", 1)]);
    assert_eq!(builds[0].versions["image"], image("sha256:1"));
    for build in &builds {
        history.started(build);
    }
    // A check that finds a newer image nobody built: scan takes it, deploy
    // only takes what went through build.
    history.add_versions("image", vec![image("sha256:1"), image("sha256:2")]);
    let builds = history.next_builds(&pipeline);
    assert_eq!(jobs(&builds), [("scan", 2)]);
    // A failed build passes on nothing it made.
    history.add_versions("src", vec![v("b")]);
    let failed = history.next_builds(&pipeline).remove(0);
    history.started(&failed);
    assert!(history.next_builds(&pipeline).iter().all(|b| b.job != "deploy"));
    // Stored with the rest.
    assert_eq!(History::from_json(&history.to_json()).expect("read"), history);
}

/// Two gets that name the same job in `passed:` take versions that went
/// through one build of it, as Concourse's docs state for `passed`: "if
/// multiple gets are configured with passed constraints, all of the
/// mentioned jobs are correlated".
#[test]
fn gets_that_share_a_passed_job_take_versions_from_one_build_of_it() {
    let text = r#"
resources:
- { name: repo, type: git, source: { uri: "https://example.com/app.git" } }
- { name: tools, type: git, source: { uri: "https://example.com/tools.git" } }
jobs:
- name: build
  plan:
  - get: repo
  - get: tools
- name: test
  plan:
  - get: tools
- name: ship
  plan:
  - get: repo
    trigger: true
    passed: [build]
  - get: tools
    passed: [build]
"#;
    let pipeline = pipeline(text);
    let ship = pipeline.jobs.iter().find(|j| j.name == "ship").expect("ship");
    let mut history = History::default();
    history.add_versions("repo", vec![v("a"), v("b")]);
    history.add_versions("tools", vec![v("t1"), v("t2")]);
    let passed = |history: &mut History, job: &str, number: u64, versions: &[(&str, String)]| {
        let build = Build {
            job: job.to_owned(),
            number,
            versions: versions
                .iter()
                .map(|(r, v)| ((*r).to_owned(), v.clone()))
                .collect(),
        };
        history.started(&build);
        history.succeeded(&build, &BTreeMap::new());
    };
    // The newest of each went through build, but never together.
    passed(&mut history, "build", 1, &[("repo", v("a")), ("tools", v("t2"))]);
    passed(&mut history, "build", 2, &[("repo", v("b")), ("tools", v("t1"))]);
    let build = history.build_of(&pipeline, ship).expect("resolves");
    assert_eq!(build.versions["repo"], v("b"));
    assert_eq!(build.versions["tools"], v("t1"), "tools from build 2, with b");

    // Also through `test`, which only ever had t1... and build 2 had b with
    // t2 this time: the newest repo has no build that fits, so the one
    // before it is taken (the search goes back).
    let text = text.replace(
        "  - get: tools\n    passed: [build]",
        "  - get: tools\n    passed: [build, test]",
    );
    let pipeline = self::pipeline(&text);
    let ship = pipeline.jobs.iter().find(|j| j.name == "ship").expect("ship");
    let mut history = History::default();
    history.add_versions("repo", vec![v("a"), v("b")]);
    history.add_versions("tools", vec![v("t1"), v("t2")]);
    passed(&mut history, "build", 1, &[("repo", v("a")), ("tools", v("t1"))]);
    passed(&mut history, "build", 2, &[("repo", v("b")), ("tools", v("t2"))]);
    passed(&mut history, "test", 1, &[("tools", v("t1"))]);
    let build = history.build_of(&pipeline, ship).expect("resolves");
    assert_eq!(
        (build.versions["repo"].as_str(), build.versions["tools"].as_str()),
        (v("a").as_str(), v("t1").as_str())
    );
    // No build of `build` had t1 with b, and none of test has t2: with only
    // build 2, nothing fits.
    let mut history = History::default();
    history.add_versions("repo", vec![v("a"), v("b")]);
    history.add_versions("tools", vec![v("t1"), v("t2")]);
    passed(&mut history, "build", 2, &[("repo", v("b")), ("tools", v("t2"))]);
    passed(&mut history, "test", 1, &[("tools", v("t1"))]);
    assert!(history.build_of(&pipeline, ship).is_none());
}

/// The put script as a shell runs it, with stand-ins for the resource's
/// `out` and `in`: the response (however `out` broke it into lines) reads
/// back after whatever `in` logged, and a failing `out` fails the step even
/// with no implicit get after it.
#[test]
fn the_put_script_prints_its_response_last_and_fails_when_out_fails() {
    let stand_in = StandIn::new("put");
    stand_in.write(
        "out",
        "#!/bin/sh\ncat > /dev/null\necho 'pushing...' >&2\nprintf '{\\n  \"version\": {\"digest\": \"sha256:9\"},\\n  \"metadata\": []\\n}\\n'\n",
    );
    stand_in.write(
        "in",
        "#!/bin/sh\ncat > \"$1/request\"\necho '{\"version\": {\"digest\": \"old\"}}'\n",
    );
    let run = |get: &str| {
        stand_in.run(
            PUT_SCRIPT,
            &["c8s-put", get],
            &[
                ("C8S_SOURCE", r#"{"repository":"example/app"}"#),
                ("C8S_PARAMS", "{}"),
                ("C8S_GET_PARAMS", "{}"),
            ],
        )
    };
    for get in ["", ".c8s-get/image"] {
        let out = run(get);
        assert!(out.status.success(), "{out:?}");
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(put_response(&log).expect("read"), image("sha256:9"), "{log}");
    }
    // The implicit get fetched the version out made.
    let request =
        std::fs::read_to_string(stand_in.workspace.join(".c8s-get/image/request")).expect("request");
    assert!(
        request.contains(r#""version":{"digest": "sha256:9"}"#),
        "{request}"
    );
    // out fails: the step fails, with or without the get after it.
    stand_in.write("out", "#!/bin/sh\necho 'denied' >&2\nexit 4\n");
    for get in ["", ".c8s-get/image"] {
        let out = run(get);
        assert_eq!(out.status.code(), Some(4), "{out:?}");
        assert!(put_response(&String::from_utf8_lossy(&out.stdout)).is_err());
    }
    // A response cut short, or without a version, is not read.
    assert!(put_response("c8s-put-response: {\"version\": {\"a\": \"1\"}}").is_err());
    assert!(put_response("c8s-put-response: {\"metadata\": []}\nc8s-put-end\n").is_err());
}

/// How many builds may run at once, as <https://concourse-ci.org/jobs.html>
/// states: `max_in_flight` builds of a job, `serial: true` one, and one
/// build at a time across the jobs that share a `serial_groups` tag;
/// without any of them (or with `max_in_flight: 0`), any number.
#[test]
fn builds_start_within_max_in_flight_serial_and_serial_groups() {
    let text = r#"
jobs:
- { name: free, plan: [{ task: t, config: &task { platform: linux, image_resource: { type: registry-image, source: { repository: busybox } }, run: { path: "true" } } }] }
- { name: zero, max_in_flight: 0, plan: [{ task: t, config: *task }] }
- { name: serial, serial: true, plan: [{ task: t, config: *task }] }
- { name: two, max_in_flight: 2, plan: [{ task: t, config: *task }] }
- { name: a, serial_groups: [deploy], plan: [{ task: t, config: *task }] }
- { name: b, serial_groups: [deploy, db], plan: [{ task: t, config: *task }] }
- { name: c, serial_groups: [db], plan: [{ task: t, config: *task }] }
"#;
    let pipeline = pipeline(text);
    let running = |jobs: &[&str]| jobs.iter().map(|j| (*j).to_owned()).collect::<Vec<_>>();
    assert!(may_start(&pipeline, "free", &running(&["free", "free", "free"])));
    assert!(may_start(&pipeline, "zero", &running(&["zero", "zero"])));
    assert!(may_start(&pipeline, "serial", &running(&["free", "two"])));
    assert!(!may_start(&pipeline, "serial", &running(&["serial"])));
    assert!(may_start(&pipeline, "two", &running(&["two"])));
    assert!(!may_start(&pipeline, "two", &running(&["two", "two"])));
    // A group: one build across it; b shares a tag with both a and c.
    assert!(!may_start(&pipeline, "a", &running(&["a"])));
    assert!(!may_start(&pipeline, "b", &running(&["a"])));
    assert!(!may_start(&pipeline, "b", &running(&["c"])));
    assert!(may_start(&pipeline, "c", &running(&["a", "free", "serial"])));
    assert!(!may_start(&pipeline, "nowhere", &running(&[])));
}

/// A history stored before builds kept their outputs (each succeeded build
/// the versions it got) still reads, so a watcher upgraded in place keeps
/// what `passed:` had.
#[test]
fn a_history_stored_before_outputs_were_kept_still_reads() {
    let before = format!(
        r#"{{"resources":{{"repo":[{a:?}]}},"jobs":{{"build":{{"builds":1,"last":{{"repo":{a:?}}},"succeeded":[{{"repo":{a:?}}}]}}}}}}"#,
        a = v("a")
    );
    let history = History::from_json(&before).expect("reads");
    let passed = &history.jobs["build"].succeeded[0];
    assert_eq!(passed.inputs["repo"], v("a"));
    assert!(passed.outputs.is_empty());
    let pipeline = pipeline(PIPELINE);
    let deploy = pipeline.jobs.iter().find(|j| j.name == "deploy").expect("deploy");
    assert_eq!(
        history.build_of(&pipeline, deploy).expect("passed").versions["repo"],
        v("a")
    );
    assert!(History::from_json(r#"{"jobs":{"build":{"succeeded":[3]}}}"#).is_err());
}

//! One runtime case per breakage of issue 11 section 2, each run under
//! kubelet rules (`common/kubelet`) and asserting the behaviour a user
//! expects. Stand-in images are shell scripts over host tools; each says what
//! it stands in for.

mod common;
#[path = "common/kubelet/mod.rs"]
mod kubelet;

use std::path::PathBuf;
use std::time::Duration;

use c8s_pod_builder::model::sidecar::{EnvVar, parse_sidecars};
use c8s_pod_builder::model::{MemorySource, parse_pipeline};
use c8s_pod_builder::{Error, RunContext, render_pod, to_canonical_yaml};
use kubelet::fixtures::{origin, origin_context as ctx, private_origin, service, shell_step as step};
use kubelet::{Action, Kubelet, Phase};

fn artifacts_dir(name: &str) -> PathBuf {
    let dir = kubelet::scratch_root().join(format!("cases-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

fn find(dir: &std::path::Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }
    out
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn git_works_on_the_checkout_in_main_and_in_a_sidecar_with_its_own_uid() {
    let origin = origin();
    // go build's VCS stamping runs these two.
    let mut plan =
        step("git status --porcelain >/dev/null\ngit -c log.showsignature=false log -1 --format=%H:%ct");
    plan.sidecars = parse_sidecars(
        "s.yml",
        "- name: indexer\n  image: example/indexer:1\n  runAsUser: 2000\n  readiness: { exec: { command: [test, -f, /tmp/ready] }, periodSeconds: 1, timeoutSeconds: 10 }\n",
    )
    .expect("sidecar");
    let kubelet = Kubelet::default().image(
        "example/indexer",
        service(
            "cd /workspace && git status --porcelain >/dev/null && git rev-parse HEAD && touch /tmp/ready",
        ),
    );
    let run = kubelet.run(&render_pod(&plan, &ctx(&origin)).expect("render"));
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
    assert!(
        run.container("main").log.contains(&origin.commit),
        "{}",
        run.logs()
    );
    assert!(
        run.container("indexer").log.contains(&origin.commit),
        "{}",
        run.logs()
    );
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn every_container_gets_a_writable_home_and_cache() {
    let origin = origin();
    let check = "test \"$HOME\" != /\ntouch \"$HOME/.probe\"\nmkdir -p \"${XDG_CACHE_HOME:?}/go-build\"";
    let mut plan = step(check);
    plan.outputs = vec!["out".into()];
    plan.sidecars = parse_sidecars(
        "s.yml",
        "- name: cache\n  image: example/cache:1\n  readiness: { exec: { command: [test, -f, /tmp/ready] }, periodSeconds: 1, timeoutSeconds: 10 }\n",
    )
    .expect("sidecar");
    let kubelet = Kubelet::default().image("example/cache", service(&format!("{check}\ntouch /tmp/ready")));
    let run = kubelet.run(&render_pod(&plan, &ctx(&origin)).expect("render"));
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
    // A HOME the user sets wins.
    let mut plan = step("test \"$HOME\" = /home/me");
    plan.env = vec![EnvVar::value("HOME", "/home/me")];
    let run = Kubelet::default().run(&render_pod(&plan, &ctx(&origin)).expect("render"));
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn outputs_exist_before_main_and_an_untouched_output_is_saved_empty() {
    let origin = origin();
    let mut plan = step("echo report > out/report.txt");
    plan.outputs = vec!["out".into(), "untouched".into()];
    let artifacts = artifacts_dir("outputs");
    let run = Kubelet::default()
        .claim("c8s-artifacts", artifacts.clone())
        .run(&render_pod(&plan, &ctx(&origin)).expect("render"));
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
    assert_eq!(find(&artifacts, "/out.tar").len(), 1, "{}", run.logs());
    assert_eq!(find(&artifacts, "/untouched.tar").len(), 1, "{}", run.logs());
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn an_oom_killed_main_ends_the_helper_with_a_failure_within_seconds() {
    let origin = origin();
    let mut plan = step("echo started\nsleep 300");
    plan.outputs = vec!["out".into()];
    let run = Kubelet::default()
        .hook("main", "started", Action::OomKill)
        .limit(Duration::from_secs(40))
        .run(&render_pod(&plan, &ctx(&origin)).expect("render"));
    assert_eq!(run.container("main").reason, "OOMKilled", "{}", run.logs());
    assert_eq!(run.phase, Phase::Failed, "{}", run.logs());
    let helper = run.container("artifact-helper");
    assert!(helper.exit_code.is_some_and(|c| c != 0), "{}", run.logs());
    assert!(run.elapsed < Duration::from_secs(25), "{}", run.logs());
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn a_pipeline_timeout_reaches_the_pod_and_ends_a_stuck_step() {
    let origin = origin();
    let text = format!(
        "name: shop\nrepository: {}\ntimeout: 3s\nsteps:\n  - name: stuck\n    image: golang:1.23\n    commands: [\"sleep 300\"]\n",
        origin.url
    );
    let pipeline = parse_pipeline(".c8s.yaml", &text, &MemorySource::new()).expect("parses");
    let run_plan = pipeline.expand(Some("main")).expect("expands");
    let pod = render_pod(&run_plan.plans[0], &ctx(&origin)).expect("render");
    let run = Kubelet::default().run(&pod);
    assert_eq!(run.phase, Phase::Failed, "{}", run.logs());
    assert_eq!(run.reason.as_deref(), Some("DeadlineExceeded"), "{}", run.logs());
    // SIGTERM reached `sleep`: no wait for the 30 s grace period.
    assert!(run.elapsed < Duration::from_secs(15), "{}", run.logs());
    // A step with no timeout anywhere still gets a deadline.
    let pod = render_pod(&step("true"), &ctx(&origin).with_default_deadline_seconds(2)).expect("render");
    let deadline = pod.spec.as_ref().and_then(|s| s.active_deadline_seconds);
    assert_eq!(deadline, Some(2));
    let pod = render_pod(&step("sleep 300"), &ctx(&origin).with_default_deadline_seconds(2)).expect("render");
    let run = Kubelet::default().run(&pod);
    assert_eq!(run.reason.as_deref(), Some("DeadlineExceeded"), "{}", run.logs());
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn what_the_user_wrote_reaches_the_process_literally() {
    let origin = origin();
    let mut plan =
        step("echo \"pid $$\"\nprintf '%s\\n' \"$LITERAL\"\nprintf 'branch=%s\\n' \"$C8S_BRANCH\"");
    plan.env = vec![EnvVar::value("LITERAL", "a$$b $(HOME) $(LITERAL)")];
    let ctx = ctx(&origin).with_branch("feature/a$b");
    let run = Kubelet::default().run(&render_pod(&plan, &ctx).expect("render"));
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
    let log = &run.container("main").log;
    assert!(!log.contains("pid $\n"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.strip_prefix("pid ").is_some_and(|p| p.parse::<u32>().is_ok())),
        "{log}"
    );
    assert!(log.contains("a$$b $(HOME) $(LITERAL)\n"), "{log}");
    assert!(log.contains("branch=feature/a$b\n"), "{log}");
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn commits_and_refs_are_checked_before_anything_runs() {
    let origin = origin();
    for commit in [
        "0123abc",
        "--upload-pack=touch /tmp/pwned",
        "g123456789abcdef0123456789abcdef01234567",
    ] {
        let err = render_pod(&step("true"), &ctx(&origin).with_commit(commit)).expect_err(commit);
        assert!(matches!(err, Error::InvalidCommit { .. }), "{commit}: {err}");
    }
    for branch in [
        "-x",
        "--upload-pack=evil",
        "a..b",
        "a b",
        "a~1",
        "refs/heads/x.lock",
    ] {
        let err = render_pod(&step("true"), &ctx(&origin).with_branch(branch)).expect_err(branch);
        assert!(matches!(err, Error::InvalidBranch { .. }), "{branch}: {err}");
    }
    // A branch alone (no commit) is fetched as a ref, never as an option.
    let ctx = RunContext::new("run-1", 7)
        .with_repository(&origin.url)
        .with_branch("main");
    let run = Kubelet::default().run(&render_pod(&step("git rev-parse HEAD"), &ctx).expect("render"));
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
    assert!(
        run.container("main").log.contains(&origin.commit),
        "{}",
        run.logs()
    );
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn git_credentials_come_from_a_secret_and_are_never_printed() {
    let origin = origin();
    let token = "ghp_runtimecheck0123456789token";
    let err = render_pod(
        &step("true"),
        &ctx(&origin).with_repository(format!("https://x:{token}@example.com/o.git")),
    )
    .expect_err("credentials in the URL");
    assert!(matches!(err, Error::CredentialsInUrl { .. }), "{err}");
    assert!(!err.to_string().contains(token), "{err}");
    let pod = render_pod(&step("true"), &ctx(&origin).with_git_secret("git-creds")).expect("render");
    let yaml = to_canonical_yaml(&pod).expect("yaml");
    assert!(yaml.contains("git-creds") && !yaml.contains(token), "{yaml}");
    let run = Kubelet::default()
        .secret("git-creds", "username", "ci")
        .secret("git-creds", "password", token)
        .run(&pod);
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
    assert!(!run.logs().contains(token), "{}", run.logs());
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn other_uids_can_write_the_checkout_and_inputs() {
    let origin = origin();
    let mut plan = step("echo main >> go.mod\ntouch cmd/orders/main_test.go");
    plan.sidecars = parse_sidecars(
        "s.yml",
        "- name: writer\n  image: example/writer:1\n  runAsUser: 2000\n  readiness: { exec: { command: [test, -f, /tmp/ready] }, periodSeconds: 1, timeoutSeconds: 10 }\n",
    )
    .expect("sidecar");
    let kubelet = Kubelet::default().image(
        "example/writer",
        service("echo writer >> /workspace/go.mod && touch /workspace/cmd/orders/gen.go && touch /tmp/ready"),
    );
    let run = kubelet.run(&render_pod(&plan, &ctx(&origin)).expect("render"));
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
    let go_mod = std::fs::read_to_string(run.volumes["workspace"].join("go.mod")).expect("go.mod");
    assert!(go_mod.ends_with("writer\nmain\n"), "{go_mod}");
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn sigterm_to_pid_1_reaches_the_users_process() {
    let origin = origin();
    let mut plan = step("trap 'echo got TERM; exit 7' TERM\necho ready\nwhile :; do sleep 0.2; done");
    plan.outputs = vec!["out".into()];
    let run = Kubelet::default()
        .hook("main", "ready", Action::TermPid1)
        .run(&render_pod(&plan, &ctx(&origin)).expect("render"));
    let main = run.container("main");
    assert!(main.log.contains("got TERM"), "{}", run.logs());
    // Ended by the user's handler (its exit code), not by SIGKILL after the 30 s grace period.
    assert_eq!(main.exit_code, Some(7), "{}", run.logs());
    assert!(run.elapsed < Duration::from_secs(20), "{}", run.logs());
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn smaller_fixes_hold_at_runtime() {
    let origin = origin();
    // main sees the commit and branch; an unreadable output fails the upload.
    let mut plan = step(
        "test \"$C8S_COMMIT\" = \"$EXPECTED\"\ntest \"$C8S_BRANCH\" = main\nmkdir -p out\necho x > out/a\nchmod 000 out/a",
    );
    plan.env = vec![EnvVar::value("EXPECTED", &origin.commit)];
    plan.outputs = vec!["out".into()];
    plan.caches = vec![".gocache".into()];
    let pod = render_pod(&plan, &ctx(&origin)).expect("render");
    let spec = pod.spec.as_ref().expect("spec");
    let workspace = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "workspace")
        .expect("workspace");
    assert!(
        workspace
            .empty_dir
            .as_ref()
            .and_then(|e| e.size_limit.as_ref())
            .is_some()
    );
    let security = spec.security_context.as_ref().expect("pod security context");
    assert_eq!(security.fs_group_change_policy.as_deref(), Some("OnRootMismatch"));
    let artifacts = artifacts_dir("smaller");
    let run = Kubelet::default()
        .claim("c8s-artifacts", artifacts.clone())
        .run(&pod);
    assert_eq!(run.container("main").reason, "Completed", "{}", run.logs());
    assert!(
        run.container("artifact-helper").exit_code.is_some_and(|c| c != 0),
        "{}",
        run.logs()
    );
    assert!(
        find(&artifacts, ".tar.tmp").is_empty(),
        "{:?}",
        find(&artifacts, "")
    );
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn run_as_non_root_refuses_uid_0() {
    let origin = origin();
    let mut pod = render_pod(&step("true"), &ctx(&origin)).expect("render");
    let spec = pod.spec.as_mut().expect("spec");
    spec.security_context.as_mut().expect("security").run_as_user = Some(0);
    let run = Kubelet::default().run(&pod);
    assert_eq!(run.phase, Phase::Failed, "{}", run.logs());
    assert_eq!(
        run.container("git-clone").reason,
        "CreateContainerConfigError",
        "{}",
        run.logs()
    );
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn a_private_repository_is_cloned_with_the_secret_and_refused_without() {
    let token = "runtime-check-http-token-0123";
    let origin = private_origin("ci", token);
    let ctx = RunContext::new("run-1", 7)
        .with_repository(&origin.url)
        .with_commit(&origin.commit);
    let pod = render_pod(
        &step("git rev-parse HEAD"),
        &ctx.clone().with_git_secret("git-creds"),
    )
    .expect("render");
    let run = Kubelet::default()
        .secret("git-creds", "username", "ci")
        .secret("git-creds", "password", token)
        .run(&pod);
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
    assert!(
        run.container("main").log.contains(&origin.commit),
        "{}",
        run.logs()
    );
    assert!(!run.logs().contains(token), "{}", run.logs());
    // The server really asks: without the Secret the clone fails.
    let run = Kubelet::default().run(&render_pod(&step("true"), &ctx).expect("render"));
    assert_eq!(run.phase, Phase::Failed, "{}", run.logs());
    assert_eq!(run.container("git-clone").reason, "Error", "{}", run.logs());
}

//! `c8s render`'s run flags are checked before anything is emitted: commits,
//! branches, credentials in URLs; and the deadline and git-secret flags reach the pods.

mod common;

fn render(extra: &[&str]) -> std::process::Output {
    let mut args = vec!["render", "examples/tasks/integration-task.yml", "-o", "json"];
    args.extend_from_slice(extra);
    common::c8s(&args)
}

#[test]
fn short_commits_option_like_refs_and_bad_branches_are_refused() {
    for extra in [
        &["--commit", "abc1234"][..],
        &["--commit=--upload-pack=touch /tmp/x"][..],
        &["--branch=--upload-pack=x"][..],
        &["--branch", "a..b"][..],
    ] {
        let output = render(extra);
        assert_eq!(output.status.code(), Some(1), "{extra:?}");
        let stderr = common::text(&output.stderr);
        assert!(
            stderr.contains("full hex object name") || stderr.contains("not a valid git branch name"),
            "{extra:?}: {stderr}"
        );
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn credentials_in_the_repository_url_are_refused_without_being_printed() {
    let output = render(&["--repository", "https://bot:hunter2@git.example.com/org/app.git"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = common::text(&output.stderr);
    assert!(stderr.contains("https://git.example.com/org/app.git"), "{stderr}");
    assert!(!stderr.contains("hunter2") && !stderr.contains("bot"), "{stderr}");
}

#[test]
fn git_secret_and_default_timeout_reach_the_pod() {
    let output = render(&["--git-secret", "app-git", "--default-timeout", "45m"]);
    assert!(output.status.success(), "{}", common::text(&output.stderr));
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let spec = &list["items"][0]["spec"];
    assert_eq!(spec["activeDeadlineSeconds"], 2700);
    let volumes = spec["volumes"].as_array().expect("volumes");
    assert!(
        volumes
            .iter()
            .any(|v| v["name"] == "git-credentials" && v["secret"]["secretName"] == "app-git")
    );
}

#[test]
fn validate_warns_where_c8s_cannot_know_and_stays_quiet_for_known_images() {
    let dir = common::temp_dir();
    let file = dir.join("services.yml");
    std::fs::write(
        &file,
        "- name: dns\n  image: coredns/coredns:1.11.1\n  ports: [{containerPort: 53, protocol: UDP}]\n\
         - name: db\n  image: mongo:7\n",
    )
    .expect("write");
    let output = common::c8s(&["validate", file.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(0));
    let stderr = common::text(&output.stderr);
    assert!(
        stderr.contains("sidecar \"dns\": image coredns/coredns:1.11.1 is not one c8s knows"),
        "{stderr}"
    );
    assert!(stderr.contains("sidecar \"dns\": no TCP port"), "{stderr}");
    assert!(!stderr.contains("\"db\""), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

//! `c8s render` with the pod override flags: they reach every pod, win over
//! the file's values, a bad flag is a usage error, and a patch reports the
//! Pod Security level it ends at.

mod common;

use common::{c8s, text};
use k8s_openapi::api::core::v1::Pod;

const EXAMPLE: &str = "examples/pipelines/deploy.c8s.yaml";

fn pods(stdout: &[u8]) -> Vec<Pod> {
    let list: serde_json::Value = serde_json::from_slice(stdout).expect("json list");
    let items = list["items"].as_array().expect("items").clone();
    items
        .into_iter()
        .map(|i| serde_json::from_value(i).expect("pod"))
        .collect()
}

#[test]
fn flags_reach_every_pod_over_the_file() {
    let out = c8s(&[
        "render",
        EXAMPLE,
        "-o",
        "json",
        "--node-selector",
        "pool=operator",
        "--toleration",
        "spot=true:NoSchedule",
        "--toleration",
        "gpu",
        "--image-pull-secret",
        "mirror",
        "--service-account",
        "runner",
        "--runtime-class",
        "gvisor",
        "--patch",
        "examples/patches/ndots.yaml",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pods = pods(&out.stdout);
    assert_eq!(pods.len(), 2);
    for pod in &pods {
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(spec.node_selector.as_ref().expect("selector")["pool"], "operator");
        assert_eq!(spec.service_account_name.as_deref(), Some("runner"));
        assert_eq!(spec.automount_service_account_token, None);
        assert_eq!(spec.runtime_class_name.as_deref(), Some("gvisor"));
        let secrets: Vec<&str> = spec
            .image_pull_secrets
            .iter()
            .flatten()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(secrets, ["regcred", "mirror"]);
        let tolerations: Vec<String> = spec
            .tolerations
            .iter()
            .flatten()
            .map(|t| format!("{:?} {:?} {:?} {:?}", t.key, t.operator, t.value, t.effect))
            .collect();
        assert_eq!(
            tolerations[1..],
            [
                r#"Some("spot") Some("Equal") Some("true") Some("NoSchedule")"#,
                r#"Some("gpu") Some("Exists") None None"#
            ]
        );
        let ndots = spec
            .dns_config
            .as_ref()
            .and_then(|d| d.options.as_ref())
            .expect("dnsConfig");
        assert_eq!(ndots[0].value.as_deref(), Some("2"));
    }
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr
            .matches("patched; meets Pod Security level restricted")
            .count(),
        2,
        "{stderr}"
    );
}

#[test]
fn a_patch_that_lowers_the_level_is_reported() {
    let dir = common::temp_dir();
    let patch = dir.join("host.yaml");
    std::fs::write(&patch, "hostNetwork: true\n").expect("write");
    let out = c8s(&["render", EXAMPLE, "--patch", patch.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr
            .matches("meets Pod Security level none (privileged)")
            .count(),
        2,
        "{stderr}"
    );
}

#[test]
fn bad_flags_are_usage_errors_with_the_reason() {
    let dir = common::temp_dir();
    let patch = dir.join("typo.yaml");
    std::fs::write(&patch, "dnsConfig:\n  options: [\n").expect("write");
    let patch = patch.to_str().expect("utf-8").to_owned();
    for (flag, value, reason) in [
        ("--node-selector", "pool", "expected KEY=VALUE"),
        ("--toleration", "ci:NoSchedul", "is not an effect"),
        ("--patch", patch.as_str(), "typo.yaml:2:12: unclosed bracket"),
        ("--patch", "no/such/file.yaml", "no/such/file.yaml"),
    ] {
        let out = c8s(&["render", EXAMPLE, flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(reason), "{flag} {value}: {stderr}");
    }
}

#[test]
fn a_patch_typo_is_an_error_not_a_dropped_field() {
    let dir = common::temp_dir();
    let patch = dir.join("unknown.yaml");
    std::fs::write(&patch, "containers: [{ name: main, imagePullPolcy: Always }]\n").expect("write");
    let out = c8s(&["render", EXAMPLE, "--patch", patch.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("podSpecPatch: spec.containers[0].imagePullPolcy: unknown field"),
        "{stderr}"
    );
}

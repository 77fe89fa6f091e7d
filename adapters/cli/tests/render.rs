//! `c8s render` on every example file: both sidecar modes, Pods and Jobs. The
//! output must pass `kubernetes-validate --strict` (1.33.0 and 1.37.0), every
//! container the Pod Security "restricted" check, and render the same bytes
//! twice. Snapshots: the example pipeline (native pods, the README's main
//! job) and every task and sidecar example in all four variants.

mod common;

use std::path::Path;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, PodSpec};

fn examples() -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["examples/pipelines", "examples/tasks", "examples/sidecars"] {
        let mut found: Vec<String> = std::fs::read_dir(common::workspace().join(dir))
            .expect("examples directory")
            .filter_map(|e| e.ok())
            .map(|e| format!("{dir}/{}", e.file_name().to_string_lossy()))
            .filter(|name| name.ends_with(".yml") || name.ends_with(".yaml"))
            .collect();
        found.sort();
        files.extend(found);
    }
    files
}

fn c8s(args: &[&str]) -> String {
    let output = common::c8s(args);
    assert!(
        output.status.success(),
        "c8s {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

const VARIANTS: [(&str, &[&str]); 4] = [
    ("native-pod", &["--sidecars", "native"]),
    ("legacy-pod", &["--sidecars", "legacy"]),
    ("native-job", &["--sidecars", "native", "--job"]),
    ("legacy-job", &["--sidecars", "legacy", "--job"]),
];

fn render_args<'a>(file: &'a str, extra: &[&'a str], format: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        "render",
        file,
        "--commit",
        "0123456789abcdef0123456789abcdef01234567",
        "--build",
        "7",
        "--run-id",
        "run-7",
        "-o",
        format,
    ];
    args.extend_from_slice(extra);
    args
}

fn render(file: &str, extra: &[&str], format: &str) -> String {
    c8s(&render_args(file, extra, format))
}

/// `render`, except that a legacy Job with sidecars must be refused (nothing
/// would stop its sidecars, so it could never complete): `None` then.
fn render_variant(file: &str, variant: &str, extra: &[&str], format: &str) -> Option<String> {
    if variant != "legacy-job" {
        return Some(render(file, extra, format));
    }
    let output = common::c8s(&render_args(file, extra, format));
    if output.status.success() {
        return Some(String::from_utf8(output.stdout).expect("utf-8 output"));
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("a Job with sidecars needs native sidecars"),
        "{file}: {stderr}"
    );
    None
}

fn pod_specs(json: &str) -> Vec<PodSpec> {
    let list: serde_json::Value = serde_json::from_str(json).expect("json list");
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().expect("items").clone();
    items
        .into_iter()
        .map(|item| match item["kind"].as_str() {
            Some("Pod") => serde_json::from_value::<Pod>(item)
                .expect("pod")
                .spec
                .expect("spec"),
            Some("Job") => serde_json::from_value::<Job>(item)
                .expect("job")
                .spec
                .and_then(|s| s.template.spec)
                .expect("template spec"),
            other => panic!("unexpected kind {other:?}"),
        })
        .collect()
}

#[test]
fn every_example_renders_restricted_and_deterministic() {
    for file in examples() {
        for (variant, extra) in VARIANTS {
            let Some(json) = render_variant(&file, variant, extra, "json") else {
                continue;
            };
            assert_eq!(
                json,
                render(&file, extra, "json"),
                "{file} {variant}: not deterministic"
            );
            let specs = pod_specs(&json);
            assert!(!specs.is_empty(), "{file}: nothing rendered");
            for spec in specs {
                // No example opts out of the restricted profile.
                assert_eq!(
                    c8s_pod_builder::check_restricted(&spec),
                    Vec::<String>::new(),
                    "{file} {variant}"
                );
            }
        }
    }
}

#[test]
fn snapshots() {
    for file in examples() {
        let stem = Path::new(&file)
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("stem")
            .to_owned();
        for (variant, extra) in VARIANTS {
            if file.starts_with("examples/pipelines") && variant != "native-pod" {
                continue;
            }
            if let Some(yaml) = render_variant(&file, variant, extra, "yaml") {
                insta::assert_snapshot!(format!("{stem}-{variant}"), yaml);
            }
        }
    }
}

#[test]
#[ignore = "needs kubernetes-validate"]
fn every_example_passes_kubernetes_validate_strict() {
    let dir = std::env::temp_dir().join(format!("c8s-render-kv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut files = Vec::new();
    for file in examples() {
        for (variant, extra) in VARIANTS {
            let Some(yaml) = render_variant(&file, variant, extra, "yaml") else {
                continue;
            };
            let name = format!("{}-{variant}.yaml", file.replace('/', "_"));
            let path = dir.join(name);
            std::fs::write(&path, yaml).expect("write");
            files.push(path);
        }
    }
    for version in ["1.33.0", "1.37.0"] {
        common::kubernetes_validate(version, &files);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn native_sidecars_below_1_29_are_refused() {
    let output = common::c8s(&[
        "render",
        "examples/sidecars/postgres.yml",
        "--sidecars",
        "native",
        "--kubernetes-minor",
        "28",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("native sidecars need Kubernetes >= 1.29"),
        "{stderr}"
    );
}

//! `c8s render` on every example file: both sidecar modes, Pods and Jobs. The
//! output must pass `kubernetes-validate --strict` (1.33.0 and 1.37.0), every
//! container the Pod Security "restricted" check, and render the same bytes
//! twice. Snapshots: the example pipeline (native pods, the README's main
//! job) and every task and sidecar example in all four variants.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, PodSpec};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn examples() -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["examples/pipelines", "examples/tasks", "examples/sidecars"] {
        let mut found: Vec<String> = std::fs::read_dir(root().join(dir))
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
    let output = Command::new(env!("CARGO_BIN_EXE_c8s"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run c8s");
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

fn render(file: &str, extra: &[&str], format: &str) -> String {
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
    c8s(&args)
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
            let json = render(&file, extra, "json");
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
            insta::assert_snapshot!(format!("{stem}-{variant}"), render(&file, extra, "yaml"));
        }
    }
}

fn find_kubernetes_validate() -> PathBuf {
    let tool = "kubernetes-validate";
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file());
    let fallback = root().join(".tools/bin").join(tool);
    match on_path {
        Some(path) => path,
        None if fallback.is_file() => fallback,
        None => panic!(
            "{tool} not found on PATH or at {}; run ./scripts/install-tools.sh first",
            fallback.display()
        ),
    }
}

#[test]
fn every_example_passes_kubernetes_validate_strict() {
    let tool = find_kubernetes_validate();
    let dir = std::env::temp_dir().join(format!("c8s-render-kv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut files = Vec::new();
    for file in examples() {
        for (variant, extra) in VARIANTS {
            let name = format!("{}-{variant}.yaml", file.replace('/', "_"));
            let path = dir.join(name);
            std::fs::write(&path, render(&file, extra, "yaml")).expect("write");
            files.push(path);
        }
    }
    for version in ["1.33.0", "1.37.0"] {
        let output = Command::new(&tool)
            .args(["--strict", "--quiet", "-k", version])
            .args(&files)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
        assert!(
            output.status.success(),
            "kubernetes-validate {version} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn native_sidecars_below_1_29_are_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_c8s"))
        .args([
            "render",
            "examples/sidecars/postgres.yml",
            "--sidecars",
            "native",
            "--kubernetes-minor",
            "28",
        ])
        .current_dir(root())
        .output()
        .expect("run c8s");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("native sidecars need Kubernetes >= 1.29"),
        "{stderr}"
    );
}

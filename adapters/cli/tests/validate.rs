//! `c8s validate` and `c8s schema` as a user runs them: exit codes and output.

mod common;

use common::{c8s, temp_file, text};

#[test]
fn valid_examples_print_ok_and_exit_0() {
    let files = [
        "examples/sidecars/postgres.yml",
        "examples/sidecars/services.yml",
        "examples/sidecars/monitoring-agent.yml",
    ];
    let out = c8s(&[&["validate"][..], &files].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let expected: String = files.iter().map(|f| format!("ok: {f}\n")).collect();
    assert_eq!(text(&out.stdout), expected);
}

#[test]
fn invalid_file_prints_every_error_with_location_and_exits_1() {
    let bad = temp_file(
        "bad.yml",
        b"- name: postgres\n  image: postgres:16\n  ports: [{containerPort: 5432}]\n- name: pg-replica\n  image: postgres:16\n  ports:\n    - containerPort: 5432\n- name: main\n  image: alpine:3\n",
    );
    let bad = bad.to_string_lossy().into_owned();
    let out = c8s(&["validate", "examples/sidecars/postgres.yml", &bad]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "ok: examples/sidecars/postgres.yml\n");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "error: {bad}:7:7: sidecar \"pg-replica\": ports[0]: port 5432/TCP is already used by sidecar \"postgres\"\n"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "error: {bad}:8:3: sidecar \"main\": name: \"main\" is reserved"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("7 |     - containerPort: 5432\n  |       ^\n"),
        "{stderr}"
    );
}

#[test]
fn missing_file_and_directory_exit_1() {
    let out = c8s(&["validate", "no/such/file.yml", "examples"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("error: no/such/file.yml: cannot read: file not found"),
        "{stderr}"
    );
    assert!(stderr.contains("error: examples: cannot read:"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(c8s(&["validate"]).status.code(), Some(2));
    assert_eq!(c8s(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(c8s(&["schema", "nope"]).status.code(), Some(2));
    assert_eq!(c8s(&["--help"]).status.code(), Some(0));
}

#[test]
fn hostile_bytes_never_panic() {
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("nul.yml", b"- name: a\0b\n  image: x\n".to_vec()),
        ("utf8.yml", vec![0xff, 0xfe, 0x00, 0x41]),
        ("bom.yml", b"\xef\xbb\xbf- name: a\n  image: alpine:3\n".to_vec()),
        ("tabs.yml", b"- name: a\n\timage: x\n".to_vec()),
        (
            "deep.yml",
            format!("{}x{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
        ),
        (
            "multi.yml",
            b"- name: a\n  image: x\n---\n- name: b\n  image: y\n".to_vec(),
        ),
        ("scalar.yml", b"42".to_vec()),
    ];
    for (name, bytes) in inputs {
        let path = temp_file(name, &bytes);
        let out = c8s(&["validate", &path.to_string_lossy()]);
        let code = out.status.code();
        assert!(
            code == Some(0) || code == Some(1),
            "{name}: exit {code:?}: {}",
            text(&out.stderr)
        );
        if code == Some(1) {
            let stderr = text(&out.stderr);
            assert!(
                stderr.contains(&format!("{}", path.display())),
                "{name}: {stderr}"
            );
        }
    }
}

#[test]
fn schema_is_json_schema_for_a_list_of_sidecars() {
    let out = c8s(&["schema", "sidecars"]);
    assert_eq!(out.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(schema["type"], "array");
    assert!(
        schema["$schema"]
            .as_str()
            .is_some_and(|s| s.contains("json-schema.org"))
    );
    let sidecar = &schema["$defs"]["SidecarConfig"];
    assert_eq!(sidecar["additionalProperties"], false);
    let required: Vec<&str> = sidecar["required"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(required, ["name", "image"]);
    assert!(sidecar["properties"]["secretKeyRef"].is_null());
    assert!(
        !sidecar["properties"]["workingDir"].is_null(),
        "camelCase field names"
    );
}

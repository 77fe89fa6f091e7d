//! `c8s schema pipeline|task|sidecars`: every file c8s reads (the examples,
//! the Concourse corpus) is valid against its schema, as an editor with the
//! YAML language server sees it, and documents c8s rejects for their shape
//! are flagged by the schema too.

mod common;

use std::path::{Path, PathBuf};

use c8s_pipeline_model::schema::{pipeline_file_schema, sidecar_file_schema, task_file_schema};
use c8s_pipeline_model::sidecar::parse_sidecars;
use c8s_pipeline_model::{MemorySource, SourceReader, Vars, parse_pipeline, parse_task_config_with};
use common::{c8s, text, workspace};
use serde_json::Value;

/// The document as JSON the way the YAML language server types it (YAML 1.2
/// core: plain `true`/`false`/numbers/null are typed, quoted text is a string).
fn as_json(file: &str, yaml: &str) -> Value {
    let node =
        c8s_pipeline_model::concourse::node::parse(file, yaml).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_json::from_str(&node.to_json()).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The schema's complaints about `yaml`, one line each (empty: valid).
fn complaints(schema: &Value, file: &str, yaml: &str) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).expect("a valid JSON Schema");
    let doc = as_json(file, yaml);
    validator
        .iter_errors(&doc)
        .map(|e| format!("{file}: {} at {}", e, e.instance_path()))
        .collect()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn read(path: &Path) -> (String, String) {
    let text = std::fs::read_to_string(path).expect("read");
    (path.display().to_string(), text)
}

/// Reads a pipeline's `sidecarFiles` beside it.
struct Beside(PathBuf);

impl SourceReader for Beside {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.0.join(path))
    }
}

#[test]
fn every_example_pipeline_is_read_and_valid_against_the_pipeline_schema() {
    let schema = pipeline_file_schema();
    let dir = workspace().join("examples/pipelines");
    let all = files(&dir);
    assert!(all.len() >= 2, "examples/pipelines is empty");
    for path in all {
        let (file, yaml) = read(&path);
        parse_pipeline(&file, &yaml, &Beside(dir.clone())).unwrap_or_else(|e| panic!("{file}: {e}"));
        let found = complaints(&schema, &file, &yaml);
        assert!(found.is_empty(), "{}", found.join("\n"));
    }
}

#[test]
fn every_example_sidecar_file_is_valid_against_the_sidecars_schema() {
    let schema = sidecar_file_schema();
    let all = files(&workspace().join("examples/sidecars"));
    assert!(all.len() >= 3);
    for path in all {
        let (file, yaml) = read(&path);
        parse_sidecars(&file, &yaml).unwrap_or_else(|e| panic!("{file}: {e}"));
        let found = complaints(&schema, &file, &yaml);
        assert!(found.is_empty(), "{}", found.join("\n"));
    }
}

#[test]
fn every_example_task_config_is_valid_against_the_task_schema() {
    let schema = task_file_schema();
    let all = files(&workspace().join("examples/tasks"));
    assert!(!all.is_empty());
    for path in all {
        let (file, yaml) = read(&path);
        parse_task_config_with(&file, &yaml, &Vars::new()).unwrap_or_else(|e| panic!("{file}: {e}"));
        let found = complaints(&schema, &file, &yaml);
        assert!(found.is_empty(), "{}", found.join("\n"));
    }
}

/// The `((var))` names an error list says have no value.
fn missing_vars(errors: &c8s_pipeline_model::Errors) -> Vec<String> {
    let mut names = Vec::new();
    for error in errors.iter() {
        let text = error.to_string();
        if let Some(start) = text.find("var ((").map(|i| i + 6)
            && let Some(end) = text[start..].find(")) has no value")
        {
            names.push(text[start..start + end].to_owned());
        }
    }
    names
}

#[test]
#[ignore = "needs the Concourse corpus (C8S_CONCOURSE_CORPUS)"]
fn concourse_corpus_task_configs_c8s_reads_are_valid_against_the_task_schema() {
    let dir = common::concourse_corpus().join("tasks");
    let schema = task_file_schema();
    let (mut read_ok, mut rejected_by_both, mut rejected_by_c8s_only) = (0, 0, 0);
    let mut flagged = Vec::new();
    let all = files(&dir);
    for path in &all {
        let (file, yaml) = read(path);
        let mut vars = Vars::new();
        let mut parsed = parse_task_config_with(&file, &yaml, &vars);
        if let Err(errors) = &parsed {
            let missing = missing_vars(errors);
            if !missing.is_empty() {
                for var in missing {
                    vars.set(var, "value");
                }
                parsed = parse_task_config_with(&file, &yaml, &vars);
            }
        }
        let found = complaints(&schema, &file, &yaml);
        match parsed {
            Ok(_) => {
                read_ok += 1;
                flagged.extend(found);
            }
            Err(_) if found.is_empty() => rejected_by_c8s_only += 1,
            Err(_) => rejected_by_both += 1,
        }
    }
    println!(
        "task corpus ({} files): {read_ok} read by c8s and valid against the schema; \
         rejected by c8s: {rejected_by_both} also flagged by the schema, {rejected_by_c8s_only} by c8s's rules only",
        all.len()
    );
    assert!(read_ok > 100, "only {read_ok} corpus files read");
    assert!(
        flagged.is_empty(),
        "the schema flags files c8s reads:\n{}",
        flagged.join("\n")
    );
}

#[test]
fn the_schemas_accept_what_the_readers_accept_beyond_the_types() {
    // Scalars where strings go, quoted numbers: read by c8s, so not flagged.
    let pipeline = "name: p\nrepository: https://example.com/r.git\nsteps:\n  - name: s\n    image: alpine:3\n    commands: [\"true\"]\n    env: { RETRIES: 3, DEBUG: true, RATIO: 1.20 }\n    runAsUser: \"1000\"\n";
    parse_pipeline("p.yaml", pipeline, &MemorySource::new()).expect("read by c8s");
    assert_eq!(
        complaints(&pipeline_file_schema(), "p.yaml", pipeline),
        Vec::<String>::new()
    );

    let sidecars = "- name: pg\n  image: postgres:16\n  env: [{ name: N, value: 5 }]\n  ports: [{ containerPort: \"5432\" }]\n";
    parse_sidecars("s.yml", sidecars).expect("read by c8s");
    assert_eq!(
        complaints(&sidecar_file_schema(), "s.yml", sidecars),
        Vec::<String>::new()
    );

    // Concourse: `FOO:` is "", lists in params are JSON, quoted limits, a numeric tag.
    let task = "platform: linux\nimage_resource: { type: registry-image, source: { repository: golang, tag: 1.20 } }\ninputs: [{ name: repo, optional: \"true\" }]\nparams: { EMPTY:, LIST: [a, b], MAP: { k: v }, N: 1 }\nrun: { path: go, args: [test, 1], user: 0 }\ncontainer_limits: { cpu: \"512\", memory: 2147483648 }\n";
    parse_task_config_with("t.yml", task, &Vars::new()).expect("read by c8s");
    assert_eq!(
        complaints(&task_file_schema(), "t.yml", task),
        Vec::<String>::new()
    );
}

#[test]
fn documents_c8s_rejects_for_their_shape_are_flagged_by_the_schemas() {
    let pipelines = [
        // no steps
        "name: p\nrepository: https://example.com/r.git\n",
        // a misspelt field
        "name: p\nrepository: r\nstepz: []\nsteps: []\n",
        // a field c8s fills in, never written
        "name: p\nrepository: r\nsteps:\n  - { name: s, image: a, loadedSidecars: [] }\n",
        // a list where a name goes
        "name: p\nrepository: r\nsteps:\n  - { name: [s], image: a }\n",
        // a mapping where commands go
        "name: p\nrepository: r\nsteps:\n  - { name: s, image: a, commands: { a: b } }\n",
    ];
    for yaml in pipelines {
        assert!(
            parse_pipeline("p.yaml", yaml, &MemorySource::new()).is_err(),
            "{yaml}"
        );
        assert!(
            !complaints(&pipeline_file_schema(), "p.yaml", yaml).is_empty(),
            "{yaml}"
        );
    }
    let tasks = [
        // no run
        "platform: linux\n",
        // a misspelt input field
        "platform: linux\nrun: { path: x }\ninputs: [{ nam: x }]\n",
        // not a registry image
        "platform: linux\nrun: { path: x }\nimage_resource: { type: git, source: { uri: x } }\n",
        // a word where a number goes
        "platform: linux\nrun: { path: x }\ncontainer_limits: { cpu: lots }\n",
    ];
    for yaml in tasks {
        assert!(
            parse_task_config_with("t.yml", yaml, &Vars::new()).is_err(),
            "{yaml}"
        );
        assert!(
            !complaints(&task_file_schema(), "t.yml", yaml).is_empty(),
            "{yaml}"
        );
    }
    let sidecars = [
        "- { name: pg }\n",
        "- { name: pg, image: postgres:16, ports: [{ containerPort: http }] }\n",
        "- { name: pg, image: postgres:16, readiness: sometimes }\n",
    ];
    for yaml in sidecars {
        assert!(parse_sidecars("s.yml", yaml).is_err(), "{yaml}");
        assert!(
            !complaints(&sidecar_file_schema(), "s.yml", yaml).is_empty(),
            "{yaml}"
        );
    }
}

#[test]
fn c8s_schema_prints_each_schema() {
    for (kind, schema) in [
        ("pipeline", pipeline_file_schema()),
        ("task", task_file_schema()),
        ("sidecars", sidecar_file_schema()),
    ] {
        let out = c8s(&["schema", kind]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(printed, schema, "c8s schema {kind}");
        assert!(
            printed["title"].as_str().is_some_and(|t| t.starts_with("c8s")),
            "{kind}: title"
        );
    }
}

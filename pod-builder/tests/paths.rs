//! One path rule, one verdict: the same paths through the parsers
//! (`parse_pipeline`, `parse_sidecars`) and through plans built in code
//! (`render_pod`) are accepted or refused alike, for the same reason.

use c8s_pod_builder::model::sidecar::paths::PathError;
use c8s_pod_builder::model::{MemorySource, Problem as PipelineProblem, parse_pipeline};
use c8s_pod_builder::prelude::*;

/// Workspace-relative paths (a step's caches) and the verdict for each.
const RELATIVE: &[(&str, Option<PathError>)] = &[
    ("target", None),
    ("target/", None),
    ("a/b/c", None),
    ("a..b", None),
    ("", Some(PathError::Empty)),
    ("/", Some(PathError::Empty)),
    ("/root/.cache", Some(PathError::Absolute)),
    ("../up", Some(PathError::ParentDir)),
    ("a/../b", Some(PathError::ParentDir)),
    ("a\nb", Some(PathError::ControlCharacter)),
    ("a\u{1b}b", Some(PathError::ControlCharacter)),
];

/// Absolute paths (a sidecar's scratch dirs) and the verdict for each.
const ABSOLUTE: &[(&str, Option<PathError>)] = &[
    ("/data", None),
    ("/var/lib/postgresql/data", None),
    ("data", Some(PathError::NotAbsolute)),
    ("", Some(PathError::Empty)),
    ("/var/../etc", Some(PathError::ParentDir)),
    ("/a\tb", Some(PathError::ControlCharacter)),
];

fn yaml_string(value: &str) -> String {
    // JSON strings are YAML double-quoted strings, escapes included.
    serde_json::to_string(value).unwrap_or_default()
}

fn parsed_cache(path: &str) -> Option<PathError> {
    let text = format!(
        "name: shop\nrepository: https://example.com/shop.git\nsteps:\n  - name: unit\n    image: alpine:3\n    commands: [\"true\"]\n    caches: [{}]\n",
        yaml_string(path)
    );
    let errors = parse_pipeline(".c8s.yaml", &text, &MemorySource::new()).err()?;
    let found: Vec<_> = errors
        .iter()
        .map(|e| match e.problem() {
            Some(PipelineProblem::InvalidRelativePath { reason, .. }) => *reason,
            _ => panic!("{path:?}: unexpected {e}"),
        })
        .collect();
    assert_eq!(found.len(), 1, "{path:?}: {errors}");
    found.first().copied()
}

fn rendered_cache(path: &str) -> Option<PathError> {
    let plan = TaskPlan::for_step("shop", "unit", "alpine:3")
        .with_command(["true"])
        .with_caches([path]);
    match render_pod(&plan, &RunContext::new("run-1", 1)) {
        Ok(_) => None,
        Err(Error::InvalidPath { reason, .. }) => Some(reason),
        Err(other) => panic!("{path:?}: unexpected {other}"),
    }
}

fn parsed_scratch(path: &str) -> Option<PathError> {
    let text = format!(
        "- name: db\n  image: postgres:16\n  scratch: [{}]\n",
        yaml_string(path)
    );
    let errors = c8s_pod_builder::model::sidecar::parse_sidecars("db.yml", &text).err()?;
    assert_eq!(errors.len(), 1, "{path:?}: {errors}");
    match errors.as_slice()[0].problem() {
        Some(Problem::InvalidPath { reason, .. }) => Some(*reason),
        _ => panic!("{path:?}: unexpected {errors}"),
    }
}

fn rendered_scratch(path: &str) -> Option<PathError> {
    let plan = TaskPlan::for_step("shop", "unit", "alpine:3")
        .with_command(["true"])
        .with_sidecar(SidecarConfig::new("db", "postgres:16").with_scratch([path]));
    match render_pod(&plan, &RunContext::new("run-1", 1)) {
        Ok(_) => None,
        Err(Error::InvalidPlan(errors)) => match errors.as_slice()[0].rule() {
            Some(Problem::InvalidPath { reason, .. }) => Some(*reason),
            _ => panic!("{path:?}: unexpected {errors}"),
        },
        Err(other) => panic!("{path:?}: unexpected {other}"),
    }
}

#[test]
fn workspace_paths_get_one_verdict_from_the_parser_and_from_code() {
    for (path, verdict) in RELATIVE {
        assert_eq!(parsed_cache(path), *verdict, "parser, {path:?}");
        assert_eq!(rendered_cache(path), *verdict, "render_pod, {path:?}");
    }
}

#[test]
fn absolute_paths_get_one_verdict_from_the_parser_and_from_code() {
    for (path, verdict) in ABSOLUTE {
        assert_eq!(parsed_scratch(path), *verdict, "parser, {path:?}");
        assert_eq!(rendered_scratch(path), *verdict, "render_pod, {path:?}");
    }
}

//! Data-driven tests: each `tests/cases/pipelines/*.yml` is parsed as a
//! pipeline (sidecar files come from `tests/cases/files/`) and expanded for a
//! run on `main`; each `tests/cases/tasks/*.yml` is parsed as a task config and
//! lowered to a plan. The snapshot holds what a user would see: every error,
//! or the plan as JSON.

use std::path::{Path, PathBuf};

use c8s_pipeline_model::{PlanIdentity, SourceReader, parse_pipeline, parse_task_config, task_plan};

/// Reads sidecar files from `tests/cases/files/`.
struct CaseFiles;

impl SourceReader for CaseFiles {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(cases_dir().join("files").join(path))
    }
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

fn check_pipeline(name: &str, text: &str) -> String {
    let pipeline = match parse_pipeline(name, text, &CaseFiles) {
        Ok(p) => p,
        Err(errors) => return format!("{errors}\n"),
    };
    match pipeline.expand(Some("main")) {
        Ok(run) => {
            let feature = pipeline
                .expand(Some("feature/x"))
                .map(|r| r.skipped.into_keys().collect::<Vec<_>>().join(", "))
                .unwrap_or_else(|e| e.to_string());
            let json = serde_json::to_string_pretty(&run).unwrap_or_default();
            format!(
                "ok: {} plan(s) on main; skipped on feature/x: [{feature}]\n{json}\n",
                run.plans.len()
            )
        }
        Err(errors) => format!("expand failed: {errors}\n"),
    }
}

fn check_task(name: &str, text: &str) -> String {
    match parse_task_config(name, text) {
        Ok(config) => {
            let plan = task_plan(PlanIdentity::new("ci", "task"), &config);
            let json = serde_json::to_string_pretty(&plan).unwrap_or_default();
            format!("ok\n{json}\n")
        }
        Err(errors) => format!("{errors}\n"),
    }
}

fn case_name(kind: &str, path: &Path) -> String {
    let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    format!("{kind}/{file}")
}

#[test]
fn pipelines() {
    insta::glob!("cases/pipelines/*.yml", |path| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        insta::assert_snapshot!(check_pipeline(&case_name("pipelines", path), &text));
    });
}

#[test]
fn tasks() {
    insta::glob!("cases/tasks/*.yml", |path| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        insta::assert_snapshot!(check_task(&case_name("tasks", path), &text));
    });
}

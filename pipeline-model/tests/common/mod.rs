//! Test support shared by the Concourse tests.

use std::collections::BTreeMap;

use c8s_pipeline_model::concourse::{JobPlan, lower_job, parse_concourse_pipeline};
use c8s_pipeline_model::{MemorySource, Vars};

/// Job `build` of pipeline `text` (file `ci.yml`), read with `vars` and the
/// task files of `files`, lowered; the errors as text.
pub fn lower_build(text: &str, vars: &Vars, files: &MemorySource) -> Result<JobPlan, String> {
    let pipeline = parse_concourse_pipeline("ci.yml", text, vars, files).map_err(|e| e.to_string())?;
    lower_job(&pipeline, "build", files, &BTreeMap::new(), "ci.yml").map_err(|e| e.to_string())
}

//! Who findings are about (`step "unit"`, or the pipeline itself) and where;
//! shared by the pipeline rules in `check.rs` and `links.rs`.

use c8s_sidecar_core::FieldPath;
use c8s_sidecar_core::validate;

use crate::pipeline::Pipeline;

/// Who findings are about and where they are written.
pub(crate) type Subject<'f> = validate::Sink<'f, crate::Problem>;

/// A broken pipeline rule (or a sidecar rule, wrapped), before it is located.
pub(crate) type Finding = validate::Finding<crate::Problem>;

/// A subject for step number `i` of [`Pipeline::all_steps`] (`steps`, then `finally`).
pub(crate) fn step_subject<'f>(
    findings: &'f mut Vec<Finding>,
    doc: usize,
    pipeline: &Pipeline,
    i: usize,
) -> Subject<'f> {
    let name = pipeline.all_steps().nth(i).map_or("", |s| s.name.as_str());
    let label = format!("step {}", c8s_sidecar_core::error::quoted(name));
    Subject::at(findings, doc, step_path(pipeline, i), Some(label))
}

/// Where step number `i` of [`Pipeline::all_steps`] is written: `steps[i]`,
/// or `finally[j]` past the steps.
pub(crate) fn step_path(pipeline: &Pipeline, i: usize) -> FieldPath {
    match i.checked_sub(pipeline.steps.len()) {
        None => FieldPath::root().key("steps").index(i),
        Some(j) => FieldPath::root().key("finally").index(j),
    }
}

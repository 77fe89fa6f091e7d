//! Who findings are about (`step "unit"`, or the pipeline itself) and where;
//! shared by the pipeline rules in `check.rs` and `links.rs`.

use c8s_sidecar_core::FieldPath;
use c8s_sidecar_core::validate::{self, Finding};

use crate::pipeline::Step;

/// Who findings are about and where they are written.
pub(crate) type Subject<'f> = validate::Sink<'f>;

/// A subject for step number `i`.
pub(crate) fn step_subject<'f>(
    findings: &'f mut Vec<Finding>,
    doc: usize,
    i: usize,
    step: &Step,
) -> Subject<'f> {
    let label = format!("step {}", c8s_sidecar_core::error::quoted(&step.name));
    Subject::at(
        findings,
        doc,
        FieldPath::root().key("steps").index(i),
        Some(label),
    )
}

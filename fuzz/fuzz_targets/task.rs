//! Raw bytes → Concourse task config → TaskPlan → Pod: never panics, and a
//! valid config always renders to a pod that passes client-side validation.
#![no_main]

use c8s_pipeline_model::{PlanIdentity, parse_task_config, task_plan};
use c8s_pod_builder::{RunContext, render_pod, to_canonical_json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = parse_task_config("task.yml", text) else { return };
    let plan = task_plan(PlanIdentity::new("fuzz", "task"), &config);
    let ctx = RunContext::new("run-1", 1).with_commit("0123456789abcdef0123456789abcdef01234567");
    // An error is allowed (e.g. a root user under the restricted profile), a panic is not.
    if let Ok(pod) = render_pod(&plan, &ctx) {
        let _ = to_canonical_json(&pod);
    }
});

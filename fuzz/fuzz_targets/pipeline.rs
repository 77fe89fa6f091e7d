//! Raw bytes → pipeline: parse, validate, plan, render every plan. Never panics.
#![no_main]

use c8s_pipeline_model::{MemorySource, parse_pipeline};
use c8s_pod_builder::{RunContext, render_job, render_pod, to_canonical_yaml};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let files = MemorySource::new().with("ci/redis.yml", "- name: redis\n  image: redis:7\n  ports: [{containerPort: 6379}]\n");
    let Ok(pipeline) = parse_pipeline("pipeline.yml", text, &files) else { return };
    let Ok(run) = pipeline.expand(Some("main")) else { return };
    let ctx = RunContext::new("run-1", 7).with_commit("0123456789abcdef0123456789abcdef01234567");
    for plan in run.plans.iter().take(64) {
        if let Ok(pod) = render_pod(plan, &ctx) {
            let _ = to_canonical_yaml(&pod);
        }
        let _ = render_job(plan, &ctx);
    }
});

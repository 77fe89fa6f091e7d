//! Structured pipelines (built in code from `arbitrary` data) → expand → render
//! → canonical JSON → parse back: the object read back equals the one rendered,
//! and rendering twice gives the same bytes.
#![no_main]

use arbitrary::Arbitrary;
use c8s_pipeline_model::pipeline::{Pipeline, Step};
use c8s_pipeline_model::sidecar::{Port, SidecarConfig};
use c8s_pod_builder::{RunContext, render_job, render_pod, to_canonical_json};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct FuzzStep {
    name: String,
    image_tag: u8,
    commands: Vec<String>,
    depends_on_previous: bool,
    sidecar_ports: Vec<u16>,
    env: Vec<(String, String)>,
}

#[derive(Debug, Arbitrary)]
struct FuzzPipeline {
    name: String,
    build: u32,
    branch: String,
    steps: Vec<FuzzStep>,
}

fuzz_target!(|input: FuzzPipeline| {
    let mut steps = Vec::new();
    for (i, s) in input.steps.iter().take(8).enumerate() {
        let mut step = Step::new(format!("s{i}-{}", sanitize(&s.name)), format!("alpine:3.{}", s.image_tag))
            .with_commands(s.commands.iter().take(4).cloned());
        if s.depends_on_previous && i > 0 {
            step = step.depends_on([format!("s{}-{}", i - 1, sanitize(&input.steps[i - 1].name))]);
        }
        for (j, port) in s.sidecar_ports.iter().take(3).enumerate() {
            let mut sidecar = SidecarConfig::new(format!("svc{j}"), "redis:7");
            sidecar.ports.push(Port::tcp(i32::from(*port)));
            step.sidecars.push(sidecar);
        }
        for (k, v) in s.env.iter().take(4) {
            step.env.insert(k.clone(), v.clone());
        }
        steps.push(step);
    }
    let pipeline = Pipeline::new(sanitize(&input.name), "https://example.com/repo.git", steps);
    let Ok(run) = pipeline.expand(Some(&input.branch)) else { return };
    let ctx = RunContext::new("run-1", u64::from(input.build))
        .with_commit("0123456789abcdef0123456789abcdef01234567")
        .with_branch(input.branch.clone());
    for plan in &run.plans {
        if let Ok(pod) = render_pod(plan, &ctx) {
            let json = to_canonical_json(&pod).expect("a rendered pod serialises");
            let back: Pod = serde_json::from_str(&json).expect("canonical JSON parses back");
            assert_eq!(back, pod);
            let again = render_pod(plan, &ctx).expect("rendering is deterministic");
            assert_eq!(to_canonical_json(&again).ok().as_deref(), Some(json.as_str()));
        }
        if let Ok(job) = render_job(plan, &ctx) {
            let json = to_canonical_json(&job).expect("a rendered job serialises");
            let back: Job = serde_json::from_str(&json).expect("canonical JSON parses back");
            assert_eq!(back, job);
        }
    }
});

/// Keeps the fuzzer's names mostly valid so rendering is reached, while still
/// passing odd characters through (validation must reject, not panic).
fn sanitize(name: &str) -> String {
    let cleaned: String = name.chars().take(40).map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let trimmed = cleaned.trim_matches('-');
    if trimmed.is_empty() { "p".to_owned() } else { trimmed.to_owned() }
}

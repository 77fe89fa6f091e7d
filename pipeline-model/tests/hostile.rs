//! The hostile corpus, in process: every input gets a located error (or its
//! documented acceptance) within a time budget and a memory budget enforced by
//! a capped allocator — no panic, no hang, no runaway allocation.
//! One test function, so the allocator limit is not shared with other tests.

#[path = "hostile/corpus.rs"]
mod corpus;

use std::alloc::System;
use std::time::{Duration, Instant};

use c8s_pipeline_model::{Error, Errors, MemorySource, parse_pipeline};
use c8s_sidecar_core::parse_sidecars_bytes;
use cap::Cap;
use corpus::Expect;

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

/// Generous: debug builds on a loaded 2-core machine.
const TIME_BUDGET: Duration = Duration::from_secs(20);
/// Beyond what the input itself occupies.
const MEMORY_BUDGET: usize = 512 * 1024 * 1024;

fn parse(kind: &str, name: &str, bytes: &[u8]) -> Result<(), Errors> {
    match kind {
        "sidecars" => parse_sidecars_bytes(name, bytes)
            .map(|_| ())
            .map_err(c8s_sidecar_core::ErrorList::convert),
        _ => {
            let text = c8s_sidecar_core::yaml::as_utf8(name, bytes).map_err(Error::document)?;
            let pipeline = parse_pipeline(name, text, &MemorySource::new())?;
            pipeline.expand(Some("main")).map(|_| ())
        }
    }
}

#[test]
fn hostile_inputs_get_located_errors_within_budgets() {
    for input in corpus::corpus() {
        let baseline = ALLOC.allocated();
        ALLOC
            .set_limit(baseline + MEMORY_BUDGET)
            .expect("limit above current use");
        let started = Instant::now();
        let result = parse(input.kind, input.name, &input.bytes);
        let took = started.elapsed();
        ALLOC.set_limit(usize::MAX).expect("raise limit");
        assert!(took < TIME_BUDGET, "{}: took {took:?}", input.name);
        match (input.expect, &result) {
            (Expect::Accept, Ok(())) => {}
            (Expect::Error, Err(errors)) => {
                assert!(!errors.is_empty(), "{}: empty error list", input.name);
                for error in errors.iter() {
                    let text = error.to_string();
                    assert!(
                        text.starts_with(input.name),
                        "{}: error not located: {text}",
                        input.name
                    );
                    assert!(
                        text.len() < 2_000,
                        "{}: error message too long ({} bytes)",
                        input.name,
                        text.len()
                    );
                }
            }
            (expect, result) => panic!(
                "{}: expected {expect:?}, got {:?}",
                input.name,
                result.as_ref().map_err(|e| e.to_string())
            ),
        }
    }
}

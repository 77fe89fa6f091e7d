//! Building a masker stays bounded in memory for large and repetitive
//! values (a 100 KB value once took about 900 MB). Its own test binary, so
//! the counting allocator sees nothing else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::System;

use c8s_pipeline_model::SecretMasker;
use cap::Cap;

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

/// Builds a masker for `value` with the allocator capped at `budget` bytes
/// above what is in use: going over aborts the test binary.
fn build_within(value: &[u8], budget: usize) -> SecretMasker {
    let before = ALLOC.allocated();
    ALLOC.set_limit(before + budget).expect("limit above current use");
    let masker = SecretMasker::new([value]);
    ALLOC.set_limit(usize::MAX).expect("raise limit");
    masker.expect("masker builds")
}

#[test]
fn large_and_repetitive_values_build_in_bounded_memory() {
    let mut random = Vec::with_capacity(100_000);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    while random.len() < 100_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        random.push((x >> 24) as u8);
    }
    let cases: [(&str, Vec<u8>); 3] = [
        ("20 KB of one byte", vec![b'a'; 20_000]),
        ("100 KB of one byte", vec![b'z'; 100_000]),
        ("100 KB random", random),
    ];
    for (name, value) in cases {
        // Linear, under 500 bytes per value byte (it was about 9 KB).
        let masker = build_within(&value, 500 * value.len());
        assert!(masker.max_held_back() < 128, "{name}");
        assert_eq!(masker.value_count(), 1, "{name}");
    }
}

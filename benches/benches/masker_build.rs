//! Building a `SecretMasker` for one large or repetitive value (a 20 KB value
//! of one repeated byte once took 65 s, a 100 KB one about 900 MB), against
//! the least any masker of that value must build: one aho-corasick automaton
//! over the value's raw 128-byte pieces, in the same process.

use aho_corasick::AhoCorasick;
use c8s_benches::{XorShift, report_ratio};
use c8s_pipeline_model::SecretMasker;

fn random(len: usize) -> Vec<u8> {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    (0..len).map(|_| (rng.next_u64() >> 24) as u8).collect()
}

/// The value's raw 128-byte pieces (the last one overlapping), deduplicated.
fn raw_pieces(value: &[u8]) -> Vec<&[u8]> {
    let mut pieces: Vec<&[u8]> = value.chunks(128).collect();
    if let Some(last) = pieces.last_mut() {
        *last = &value[value.len().saturating_sub(128)..];
    }
    pieces.sort_unstable();
    pieces.dedup();
    pieces
}

fn main() {
    if !c8s_benches::ratios_wanted() {
        return;
    }
    let cases = [
        ("20KB-one-byte", vec![b'a'; 20_000]),
        ("100KB-one-byte", vec![b'a'; 100_000]),
        ("4KB-random", random(4_000)),
        ("100KB-random", random(100_000)),
    ];
    for (size, value) in &cases {
        let pieces = raw_pieces(value);
        report_ratio(
            "masker-build",
            size,
            None,
            &mut || {
                let masker = SecretMasker::new([value]).expect("the masker builds");
                masker.value_count() + masker.max_held_back()
            },
            &mut || {
                AhoCorasick::new(&pieces)
                    .expect("the pieces build")
                    .patterns_len()
            },
        );
    }
}

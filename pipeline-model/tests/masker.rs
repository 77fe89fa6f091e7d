//! The secret masker's core property: whatever the chunking, the output
//! never contains a registered value or one of its base64 forms, and it is
//! exactly what masking the whole stream at once gives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use c8s_pipeline_model::masker::{MIN_SECRET_LEN, SecretMasker};
use proptest::prelude::*;

/// Feeds `input` cut at `cuts` (any positions, any order) and joins the
/// outputs; `after_feed(masker, emitted, fed)` runs after every feed with the
/// bytes emitted and fed so far.
fn mask_with_cuts_checked(
    values: &[Vec<u8>],
    input: &[u8],
    cuts: &[usize],
    mut after_feed: impl FnMut(&SecretMasker, usize, usize),
) -> Vec<u8> {
    let mut masker = SecretMasker::new(values).expect("masker builds");
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain([input.len()]) {
        out.extend(masker.feed(&input[start..cut]));
        after_feed(&masker, out.len(), cut);
        start = cut;
    }
    out.extend(masker.finish());
    out
}

/// [`mask_with_cuts_checked`] with nothing checked between feeds.
fn mask_with_cuts(values: &[Vec<u8>], input: &[u8], cuts: &[usize]) -> Vec<u8> {
    mask_with_cuts_checked(values, input, cuts, |_, _, _| {})
}

fn mask_whole(values: &[Vec<u8>], input: &[u8]) -> Vec<u8> {
    mask_with_cuts(values, input, &[])
}

/// What is searched for a value over the alphabet `ab\nx` (no `\r`, nothing
/// that JSON, URL or XML escaping or base64 could bring into such input): the
/// value, trimmed, and each trimmed line of it.
fn reference_patterns(values: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut patterns = Vec::new();
    for value in values.iter().filter(|v| v.trim_ascii().len() >= MIN_SECRET_LEN) {
        patterns.push(value.clone());
        patterns.push(value.trim_ascii().to_vec());
        patterns.extend(value.split(|&b| b == b'\n').map(|l| l.trim_ascii().to_vec()));
    }
    patterns.retain(|p| p.len() >= MIN_SECRET_LEN);
    patterns
}

/// The obvious, slow definition: mark every byte of every occurrence, then
/// replace each run of overlapping occurrences by one `***`.
fn reference(values: &[Vec<u8>], input: &[u8]) -> Vec<u8> {
    let patterns = reference_patterns(values);
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for start in 0..input.len() {
        for value in &patterns {
            if input[start..].starts_with(value) {
                spans.push((start, start + value.len()));
            }
        }
    }
    spans.sort_unstable();
    let mut out = Vec::new();
    let mut done = 0;
    let mut mask_end = 0;
    for (start, end) in spans {
        if start < mask_end {
            mask_end = mask_end.max(end);
        } else {
            out.extend_from_slice(&input[done..start]);
            out.extend_from_slice(b"***");
            mask_end = end;
        }
        done = mask_end;
    }
    out.extend_from_slice(&input[done..]);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn standalone_forms(value: &[u8]) -> Vec<Vec<u8>> {
    [STANDARD, URL_SAFE]
        .iter()
        .map(|e| e.encode(value).into_bytes())
        .chain(
            [STANDARD_NO_PAD, URL_SAFE_NO_PAD]
                .iter()
                .map(|e| e.encode(value).into_bytes()),
        )
        .collect()
}

fn bytes_from(
    alphabet: &'static [u8],
    len: impl Into<prop::collection::SizeRange>,
) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(alphabet), len)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Tiny alphabet, so values overlap, touch, repeat and span lines often.
    /// (Values of 3-5 bytes of these letters have base64 forms starting with
    /// `Y`, `e`, `C` or `K`, which the input cannot contain, so the raw values
    /// are all there is to find.)
    #[test]
    fn never_leaks_and_matches_the_reference_under_any_chunking(
        values in prop::collection::vec(bytes_from(b"ab\nx", 1..=5), 0..4),
        input in bytes_from(b"ab\nx*", 0..80),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let out = mask_with_cuts(&values, &input, &cuts);
        prop_assert_eq!(&out, &reference(&values, &input));
        for value in reference_patterns(&values) {
            prop_assert!(!contains(&out, &value), "{:?} leaked in {:?}", value, out);
        }
    }

    /// Random byte values, written into the log raw, base64-encoded on their
    /// own, and inside larger base64 blobs at every alignment.
    #[test]
    fn base64_forms_never_survive(
        values in prop::collection::vec(prop::collection::vec(any::<u8>().prop_filter("no *", |b| *b != b'*'), 6..20), 1..4),
        pieces in prop::collection::vec((0usize..4, 0usize..6, 0usize..3, bytes_from(b"abc \n=", 0..8)), 1..8),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut input = Vec::new();
        for (which, form, prefix, filler) in &pieces {
            let value = &values[which % values.len()];
            input.extend_from_slice(filler);
            match form {
                0 => input.extend_from_slice(value),
                1..=4 => input.extend_from_slice(&standalone_forms(value)[form - 1]),
                _ => {
                    let mut blob = vec![b'z'; *prefix];
                    blob.extend_from_slice(value);
                    blob.extend_from_slice(b"tail");
                    input.extend_from_slice(STANDARD.encode(&blob).as_bytes());
                }
            }
        }
        let out = mask_with_cuts(&values, &input, &cuts);
        prop_assert_eq!(&out, &mask_whole(&values, &input), "chunking changed the output");
        // Masking again changes nothing: no pattern of any value is left.
        prop_assert_eq!(&mask_whole(&values, &out), &out);
        for value in &values {
            prop_assert!(!contains(&out, value));
            for form in standalone_forms(value) {
                prop_assert!(!contains(&out, &form));
            }
        }
    }

    /// Logs without secrets pass through unchanged, and nothing beyond the
    /// promised hold-back waits between calls.
    #[test]
    fn output_without_secrets_is_the_input(
        values in prop::collection::vec(bytes_from(b"QRSTUVWXYZ", 3..=12), 0..5),
        input in bytes_from(b"cde \n", 0..200),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let out = mask_with_cuts_checked(&values, &input, &cuts, |masker, emitted, fed| {
            assert!(
                emitted + masker.max_held_back() >= fed,
                "held back more than promised: {emitted} emitted of {fed} fed"
            );
        });
        prop_assert_eq!(out, input);
    }
}

#[test]
fn overlapping_secrets_are_masked_as_their_union() {
    let values = [b"abcd".to_vec(), b"cdef".to_vec()];
    assert_eq!(mask_whole(&values, b"[abcdef]"), b"[***]");
    // Nested: the longer wins, the shorter inside it adds nothing.
    let values = [b"password".to_vec(), b"word".to_vec()];
    assert_eq!(mask_whole(&values, b"my password, a word"), b"my ***, a ***");
}

#[test]
fn adjacent_secrets_are_each_masked() {
    let values = [b"abc".to_vec(), b"def".to_vec()];
    assert_eq!(mask_whole(&values, b"abcdef abcabc"), b"****** ******");
}

#[test]
fn values_spanning_lines_are_masked_one_byte_at_a_time() {
    let key = b"-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\n-----END KEY-----".to_vec();
    let mut input = b"loading key\n".to_vec();
    input.extend_from_slice(&key);
    input.extend_from_slice(b"\ndone\n");
    let cuts: Vec<usize> = (0..input.len()).collect();
    assert_eq!(mask_with_cuts(&[key], &input, &cuts), b"loading key\n***\ndone\n");
}

#[test]
fn base64_of_a_value_is_masked_in_every_form() {
    let value = b"s3cr3t?>value".to_vec(); // encodes with `+`/`/` in standard base64
    for form in standalone_forms(&value) {
        let mut input = b"auth: ".to_vec();
        input.extend_from_slice(&form);
        input.push(b'\n');
        assert_eq!(mask_whole(std::slice::from_ref(&value), &input), b"auth: ***\n");
    }
}

#[test]
fn empty_input_and_finish_without_feed() {
    let masker = SecretMasker::new(["secret"]).expect("masker builds");
    assert!(masker.finish().is_empty());
    assert_eq!(mask_whole(&[b"secret".to_vec()], b""), b"");
}

#[test]
fn reshaped_values_are_masked_too() {
    let value = b"  p@ss\"w<rd&1 \r\nsecond-line-here\r\n".to_vec();
    let shapes: [&[u8]; 9] = [
        b"p@ss\"w<rd&1 \r\nsecond-line-here",          // trimmed
        b"  p@ss\"w<rd&1 \nsecond-line-here\n",        // CRLF as LF
        b"p@ss\"w<rd&1",                               // one line
        b"second-line-here",                           // another line
        br#"p@ss\"w<rd&1"#,                            // JSON string
        b"p%40ss%22w%3Crd%261",                        // URL
        b"p@ss&quot;w&lt;rd&amp;1",                    // XML
        br#"p@ss\"w<rd&1 \r\nsecond-line-here"#,       // JSON, whole
        b"p%40ss%22w%3Crd%261+%0D%0Asecond-line-here", // form-encoded
    ];
    for shape in shapes {
        let mut input = b"[".to_vec();
        input.extend_from_slice(shape);
        input.extend_from_slice(b"]");
        assert_eq!(
            mask_whole(std::slice::from_ref(&value), &input),
            b"[***]",
            "{}",
            String::from_utf8_lossy(shape)
        );
    }
}

#[test]
fn long_and_repetitive_values_are_masked_whole_with_a_bounded_hold_back() {
    let repeated = vec![b'a'; 20_000];
    let mut random = Vec::new();
    let mut x = 7u32;
    for _ in 0..5_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        random.push(b'!' + ((x >> 16) % 90) as u8);
    }
    random.retain(|&b| b != b'*');
    for value in [repeated, random] {
        let masker = SecretMasker::new([&value]).expect("masker builds");
        assert!(masker.max_held_back() < 128, "{}", masker.max_held_back());
        let mut input = b"before ".to_vec();
        input.extend_from_slice(&value);
        input.extend_from_slice(b" after ");
        input.extend_from_slice(STANDARD.encode(&value).as_bytes());
        input.extend_from_slice(b" end");
        let cuts: Vec<usize> = (0..input.len()).step_by(997).collect();
        let out = mask_with_cuts(std::slice::from_ref(&value), &input, &cuts);
        assert_eq!(out, mask_whole(std::slice::from_ref(&value), &input));
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("before *") && text.ends_with("* end"),
            "{text:.200}"
        );
        assert!(text.contains(" after *"), "{text:.200}");
        assert!(!contains(&out, &value[..64]));
    }
}

#[test]
fn short_values_are_reported_by_name_never_by_value() {
    let masker = SecretMasker::named([
        ("db/password", "hunter2"),
        ("db/pin", "42"),
        ("x/y", " \n7\n"),
        ("e/f", ""),
    ])
    .expect("masker builds");
    assert_eq!(masker.short_values(), ["db/pin", "x/y"]);
    assert_eq!(masker.ignored_values(), 2);
    let debug = format!("{masker:?}");
    assert!(!debug.contains("42") && !debug.contains("hunter2"), "{debug}");
}

//! Raw bytes and random chunkings → masker: no registered value ever appears in
//! the output, and with no secrets the output equals the input.
#![no_main]

use arbitrary::Arbitrary;
use c8s_pipeline_model::SecretMasker;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    secrets: Vec<Vec<u8>>,
    log: Vec<u8>,
    cuts: Vec<u8>,
}

fn run(masker: &mut SecretMasker, log: &[u8], cuts: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = log;
    for &cut in cuts {
        let n = usize::from(cut).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        out.extend(masker.feed(chunk));
        rest = tail;
    }
    out.extend(masker.feed(rest));
    out
}

fuzz_target!(|input: Input| {
    let secrets: Vec<Vec<u8>> = input
        .secrets
        .into_iter()
        .take(8)
        .map(|s| s.into_iter().take(32).collect())
        .collect();
    let Ok(mut masker) = SecretMasker::new(&secrets) else {
        return;
    };
    let mut out = run(&mut masker, &input.log, &input.cuts);
    out.extend(masker.finish());
    // Values under the minimum once trimmed are not masked, and a value
    // containing `*` can be re-formed next to a `***` mask (documented limits).
    let masked = |s: &&Vec<u8>| {
        s.trim_ascii().len() >= c8s_pipeline_model::masker::MIN_SECRET_LEN && !s.contains(&b'*')
    };
    for secret in secrets.iter().filter(masked) {
        assert!(
            !out.windows(secret.len()).any(|w| w == secret.as_slice()),
            "leaked {secret:?}"
        );
    }
    let Ok(mut plain) = SecretMasker::new(Vec::<Vec<u8>>::new()) else {
        return;
    };
    let mut same = run(&mut plain, &input.log, &input.cuts);
    same.extend(plain.finish());
    assert_eq!(same, input.log);
});

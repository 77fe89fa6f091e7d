//! Masking 64 MiB of step logs with 100 registered secrets (and their base64
//! forms), fed in 64 KiB chunks, against one aho-corasick `find_iter` scan of
//! the same bytes counting matches, measured in the same process.
//!
//! Goal: at most 2× the scan at 64 MiB. The same is measured at 0.64 MiB and
//! 6.4 MiB for the scaling table, and aho-corasick's own `stream_replace_all`
//! over every pattern the masker registers, fed the same 64 KiB chunks, is
//! measured against the scan for reference. Criterion also measures `find_iter`
//! over every registered pattern (the same automaton size); `-- ratios`
//! skips criterion.

use c8s_benches::{XorShift, report_ratio, report_scaling};

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use c8s_pipeline_model::SecretMasker;
use criterion::{Criterion, SamplingMode, Throughput};

const LOG_BYTES: usize = 64 << 20;
const CHUNK: usize = 64 << 10;
const SECRETS: usize = 100;

fn secrets(rng: &mut XorShift) -> Vec<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..SECRETS)
        .map(|_| {
            let len = 16 + rng.below(25);
            (0..len)
                .map(|_| char::from(ALPHABET[rng.below(ALPHABET.len())]))
                .collect()
        })
        .collect()
}

/// Log lines as a test run prints them; about one line in 200 carries a secret,
/// raw or base64-encoded.
fn log(rng: &mut XorShift, secrets: &[String]) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "running",
        "test",
        "ok",
        "PASS",
        "connecting",
        "to",
        "postgres:5432",
        "GET",
        "/api/v1/orders",
        "200",
        "cache",
        "hit",
        "compiled",
        "package",
        "github.com/example/orders",
        "in",
        "warning:",
        "unused",
    ];
    let mut out = Vec::with_capacity(LOG_BYTES + 256);
    let mut line = 0u64;
    while out.len() < LOG_BYTES {
        line += 1;
        out.extend_from_slice(
            format!(
                "2026-11-22T05:{:02}:{:02}.{:03}Z INFO ",
                line / 60 % 60,
                line % 60,
                line % 1000
            )
            .as_bytes(),
        );
        for _ in 0..4 + rng.below(8) {
            out.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
            out.push(b' ');
        }
        match rng.below(400) {
            0 => out.extend_from_slice(secrets[rng.below(secrets.len())].as_bytes()),
            1 => out.extend_from_slice(STANDARD.encode(&secrets[rng.below(secrets.len())]).as_bytes()),
            _ => out.extend_from_slice(format!("({}ms)", rng.below(5000)).as_bytes()),
        }
        out.push(b'\n');
    }
    out.truncate(LOG_BYTES);
    out
}

/// The patterns the masker registers for `value` (mirrors `masker.rs`).
fn forms(value: &[u8]) -> Vec<Vec<u8>> {
    let mut forms = vec![value.to_vec()];
    for (padded, unpadded) in [(STANDARD, STANDARD_NO_PAD), (URL_SAFE, URL_SAFE_NO_PAD)] {
        forms.push(padded.encode(value).into_bytes());
        forms.push(unpadded.encode(value).into_bytes());
        for offset in 0..3 {
            let mut shifted = vec![0u8; offset];
            shifted.extend_from_slice(value);
            let encoded = unpadded.encode(&shifted).into_bytes();
            forms.push(encoded[(8 * offset).div_ceil(6)..(8 * shifted.len()) / 6].to_vec());
        }
    }
    forms
}

fn mask(masker: &SecretMasker, log: &[u8], out: &mut Vec<u8>) -> usize {
    let mut masker = masker.clone();
    let mut emitted = 0;
    for chunk in log.chunks(CHUNK) {
        out.clear();
        masker.feed_into(chunk, out);
        emitted += out.len();
    }
    out.clear();
    masker.finish_into(out);
    emitted + out.len()
}

fn main() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let secrets = secrets(&mut rng);
    let log = log(&mut rng, &secrets);
    let masker = SecretMasker::new(&secrets).expect("100 secrets build a masker");
    let raw = AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(&secrets)
        .expect("100 secrets build an automaton");
    let mut all: Vec<Vec<u8>> = secrets.iter().flat_map(|s| forms(s.as_bytes())).collect();
    all.sort_unstable();
    all.dedup();
    let every = AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(&all)
        .expect("every form builds an automaton");
    let standard = AhoCorasick::new(&all).expect("every form builds a standard automaton");
    let stars = vec!["***"; all.len()];
    println!(
        "masking: {} MiB, {} secrets, {} patterns, {} matches of raw secrets, {} of every form",
        LOG_BYTES >> 20,
        SECRETS,
        all.len(),
        raw.find_iter(&log).count(),
        every.find_iter(&log).count()
    );

    let mut out = Vec::with_capacity(2 * CHUNK);
    let mut out_large = Vec::with_capacity(2 * CHUNK);
    let run_stream = |log: &[u8]| {
        let mut sink = Vec::with_capacity(log.len());
        standard
            .try_stream_replace_all(ChunkedReader(log), &mut sink, &stars)
            .expect("writing to memory cannot fail");
        sink.len()
    };
    if c8s_benches::criterion_wanted() {
        let mut criterion = Criterion::default().configure_from_args();
        let mut group = criterion.benchmark_group("masking-64MiB");
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .throughput(Throughput::Bytes(LOG_BYTES as u64));
        group.bench_function("masker", |b| b.iter(|| mask(&masker, &log, &mut out)));
        group.bench_function("find_iter_raw_secrets", |b| {
            b.iter(|| raw.find_iter(&log).count())
        });
        group.bench_function("find_iter_every_form", |b| {
            b.iter(|| every.find_iter(&log).count())
        });
        group.bench_function("stream_replace_all", |b| b.iter(|| run_stream(&log)));
        group.finish();
        criterion.final_summary();
    }
    if !c8s_benches::ratios_wanted() {
        return;
    }

    // 0.64 MiB, 6.4 MiB and 64 MiB: 10x steps, like the other areas.
    let sizes = [LOG_BYTES / 100, LOG_BYTES / 10, LOG_BYTES];
    let size_label = |n: usize| format!("{:.2}MiB", n as f64 / f64::from(1u32 << 20));
    for &n in &sizes {
        let goal = (n == LOG_BYTES).then_some(2.0);
        report_ratio(
            "masking",
            &size_label(n),
            goal,
            &mut || mask(&masker, &log[..n], &mut out),
            &mut || raw.find_iter(&log[..n]).count(),
        );
    }
    // The reference point the masking goal was set against.
    report_ratio(
        "stream_replace_all",
        &size_label(LOG_BYTES),
        None,
        &mut || run_stream(&log),
        &mut || raw.find_iter(&log).count(),
    );
    for pair in sizes.windows(2) {
        let (small, large) = (pair[0], pair[1]);
        report_scaling(
            "masking",
            &size_label(large),
            large / small,
            &mut || mask(&masker, &log[..small], &mut out),
            &mut || mask(&masker, &log[..large], &mut out_large),
            &mut || raw.find_iter(&log[..small]).count(),
            &mut || raw.find_iter(&log[..large]).count(),
        );
    }
}

/// Hands out the log in 64 KiB reads, like a pod log stream.
struct ChunkedReader<'a>(&'a [u8]);

impl std::io::Read for ChunkedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(CHUNK).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

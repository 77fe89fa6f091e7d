//! Masking 64 MiB of step logs with 100 registered secrets (and their base64
//! forms), fed in 64 KiB chunks, against one aho-corasick `find_iter` scan of
//! the same bytes counting matches, measured in the same process.
//!
//! Prints `ratio masker/find_iter: X.XX` (goal: at most 2). Baselines:
//! `find_iter` over the 100 raw secrets, `find_iter` over every pattern the
//! masker registers (the same automaton size), and aho-corasick's own
//! `stream_replace_all` over every pattern, fed the same 64 KiB chunks.

use std::cell::RefCell;
use std::hint::black_box;
use std::time::Duration;

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use c8s_pipeline_model::SecretMasker;
use criterion::{Criterion, SamplingMode, Throughput};

const LOG_BYTES: usize = 64 << 20;
const CHUNK: usize = 64 << 10;
const SECRETS: usize = 100;

/// A small deterministic generator, so every run masks the same bytes.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

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

fn median(samples: &RefCell<Vec<Duration>>) -> Duration {
    let mut samples = samples.borrow().clone();
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn bench(c: &mut Criterion) {
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

    let samples: [RefCell<Vec<Duration>>; 4] = Default::default();
    let mut group = c.benchmark_group("masking");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .throughput(Throughput::Bytes(LOG_BYTES as u64));
    let mut timed = |name: &str, slot: &RefCell<Vec<Duration>>, f: &mut dyn FnMut() -> usize| {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    black_box(f());
                }
                let elapsed = start.elapsed();
                slot.borrow_mut().push(elapsed / iters.max(1) as u32);
                elapsed
            })
        });
    };
    let mut out = Vec::with_capacity(2 * CHUNK);
    let mut run_masker = || mask(&masker, &log, &mut out);
    let mut run_raw = || raw.find_iter(&log).count();
    let mut run_every = || every.find_iter(&log).count();
    let mut run_stream = || {
        let mut sink = Vec::with_capacity(LOG_BYTES);
        standard
            .try_stream_replace_all(ChunkedReader(&log), &mut sink, &stars)
            .expect("writing to memory cannot fail");
        sink.len()
    };
    timed("masker", &samples[0], &mut run_masker);
    timed("find_iter_raw_secrets", &samples[1], &mut run_raw);
    timed("find_iter_every_form", &samples[2], &mut run_every);
    timed("stream_replace_all", &samples[3], &mut run_stream);
    group.finish();

    let [masker_time, raw_time, every_time, stream_time] = samples.each_ref().map(median);
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE);
    // Criterion measures one function after another; on a busy machine the
    // load can change in between, so the headline ratio alternates the two.
    let (masker_min, raw_min) = interleaved_min(&mut run_masker, &mut run_raw, 5);
    println!(
        "ratio masker/find_iter: {:.2} (fastest of 5 alternating runs: {:.1} ms vs {:.1} ms)",
        ratio(masker_min, raw_min),
        masker_min.as_secs_f64() * 1e3,
        raw_min.as_secs_f64() * 1e3
    );
    println!(
        "criterion medians: masker/find_iter {:.2}, masker/find_iter over every form {:.2}, \
         stream_replace_all/find_iter {:.2}, masker/stream_replace_all {:.2}",
        ratio(masker_time, raw_time),
        ratio(masker_time, every_time),
        ratio(stream_time, raw_time),
        ratio(masker_time, stream_time)
    );
}

/// The fastest time of each of `a` and `b`, run alternately `rounds` times.
fn interleaved_min(
    a: &mut dyn FnMut() -> usize,
    b: &mut dyn FnMut() -> usize,
    rounds: usize,
) -> (Duration, Duration) {
    let time = |f: &mut dyn FnMut() -> usize| {
        let start = std::time::Instant::now();
        black_box(f());
        start.elapsed()
    };
    let (mut best_a, mut best_b) = (Duration::MAX, Duration::MAX);
    for _ in 0..rounds {
        best_a = best_a.min(time(a));
        best_b = best_b.min(time(b));
    }
    (best_a, best_b)
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

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}

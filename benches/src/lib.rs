//! Benchmarks live in `benches/`; this library holds what they share: input
//! generators, a deterministic random source, and the timing and reporting
//! helpers that turn measurements into ratios against a baseline run in the
//! same process.
//!
//! Every bench prints machine-readable lines that `scripts/bench-report.sh`
//! turns into `BENCHMARKS.md`:
//!
//! - `c8s-bench ratio <area> <size> <value> <goal> <ms> <baseline ms>` — the
//!   measured code against its baseline at one size (lower is better);
//! - `c8s-bench scale <area> <size> <factor> <value> <baseline value>` — how
//!   much longer a `factor` times larger input takes, for the measured code
//!   and for its baseline (linear is `factor`).
//!
//! Fields are separated by tabs; `goal` is `-` where no goal was set.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Whether criterion's own measurements run: not with `-- ratios`.
pub fn criterion_wanted() -> bool {
    !std::env::args().any(|a| a == "ratios")
}

/// Whether the same-run ratios are measured and printed: not when criterion
/// only profiles (`-- --profile-time N`, for `perf record`).
pub fn ratios_wanted() -> bool {
    !std::env::args().any(|a| a == "--profile-time")
}

/// A small deterministic generator (xorshift64), so every run measures the
/// same inputs.
#[derive(Debug, Clone)]
pub struct XorShift(pub u64);

impl XorShift {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// How long one call of `f` takes (its result is kept from the optimiser).
pub fn time(f: &mut dyn FnMut() -> usize) -> Duration {
    let start = Instant::now();
    black_box(f());
    start.elapsed()
}

/// The fastest of `runs` calls of `f`.
pub fn fastest(runs: usize, f: &mut dyn FnMut() -> usize) -> Duration {
    (0..runs.max(1)).map(|_| time(f)).min().unwrap_or_default()
}

/// The fastest time of each of `a` and `b`, called alternately `rounds`
/// times: load from other processes hits both sides alike.
pub fn interleaved_min(
    a: &mut dyn FnMut() -> usize,
    b: &mut dyn FnMut() -> usize,
    rounds: usize,
) -> (Duration, Duration) {
    let (mut best_a, mut best_b) = (Duration::MAX, Duration::MAX);
    for _ in 0..rounds.max(1) {
        best_a = best_a.min(time(a));
        best_b = best_b.min(time(b));
    }
    (best_a, best_b)
}

/// `a / b`, with a zero `b` treated as the smallest positive time.
pub fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE)
}

/// Milliseconds, for people.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Rounds that fit a time budget: enough alternating calls for a stable
/// minimum, fewer for inputs whose single call is slow.
pub fn rounds_for(one_call: Duration) -> usize {
    match one_call.as_millis() {
        0..=20 => 30,
        21..=200 => 10,
        201..=1_000 => 5,
        _ => 3,
    }
}

/// Measures `measured` against `baseline` at one size (alternating calls,
/// fastest of each) and prints a `ratio` line. Returns the two times.
pub fn report_ratio(
    area: &str,
    size: &str,
    goal: Option<f64>,
    measured: &mut dyn FnMut() -> usize,
    baseline: &mut dyn FnMut() -> usize,
) -> (Duration, Duration) {
    let probe = time(measured).max(time(baseline));
    let (a, b) = interleaved_min(measured, baseline, rounds_for(probe));
    let goal = goal.map_or_else(|| "-".to_owned(), |g| format!("<= {g}"));
    println!(
        "c8s-bench ratio\t{area}\t{size}\t{:.2}\t{goal}\t{:.3}\t{:.3}",
        ratio(a, b),
        ms(a),
        ms(b)
    );
    (a, b)
}

/// How much longer `large` takes than `small`, where `large`'s input is
/// `factor` times `small`'s: one `large` call alternates with `factor`
/// `small` calls, so both sides span about the same wall time and see the
/// same load. Returns the fastest `large` call over the fastest `small` call
/// (taken as a mean within a run of `factor`), so `factor` means exactly
/// linear; the median of three such passes, since this is the figure most
/// sensitive to a busy machine.
pub fn scaling(factor: usize, small: &mut dyn FnMut() -> usize, large: &mut dyn FnMut() -> usize) -> f64 {
    let rounds = rounds_for(time(large));
    let mut repeated = || (0..factor).map(|_| small()).fold(0usize, usize::wrapping_add);
    let mut passes: Vec<f64> = (0..3)
        .map(|_| {
            let (large_time, small_times) = interleaved_min(large, &mut repeated, rounds);
            ratio(large_time, small_times) * factor as f64
        })
        .collect();
    passes.sort_by(f64::total_cmp);
    passes[1]
}

/// Measures and prints a `scale` line for the measured code and its baseline
/// going from `small` to `large` (`factor` times the input).
pub fn report_scaling(
    area: &str,
    size: &str,
    factor: usize,
    small: &mut dyn FnMut() -> usize,
    large: &mut dyn FnMut() -> usize,
    baseline_small: &mut dyn FnMut() -> usize,
    baseline_large: &mut dyn FnMut() -> usize,
) -> f64 {
    let measured = scaling(factor, small, large);
    let baseline = scaling(factor, baseline_small, baseline_large);
    println!("c8s-bench scale\t{area}\t{size}\t{factor}\t{measured:.2}\t{baseline:.2}");
    measured
}

/// A size label: `1k`, `10k`, `100k`, or the number.
pub fn label(n: usize) -> String {
    if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// A sidecar file with `n` sidecars, each with env, ports, resources and readiness.
pub fn sidecar_file(n: usize) -> String {
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            "- name: svc-{i}\n  image: registry.example.com/team/svc-{i}:1.{i}\n  env:\n    - name: MODE\n      value: test\n    - name: TOKEN\n      secretKeyRef: {{ name: ci-secrets, key: token-{i} }}\n  ports:\n    - containerPort: {port}\n      name: http\n  resources:\n    requests: {{ cpu: 100m, memory: 64Mi }}\n    limits: {{ cpu: 200m, memory: 128Mi }}\n  readiness:\n    httpGet: {{ path: /healthz, port: http }}\n    periodSeconds: 2\n",
            port = 1024 + i
        ));
    }
    text
}

/// A `.c8s.yaml` pipeline with `n` steps: each depends on up to two earlier
/// steps, has commands, env, a secret, resources, a timeout and caches; every
/// tenth step takes an input from its first dependency and every fifth has an
/// inline sidecar.
pub fn pipeline_file(n: usize) -> String {
    let mut text = String::from(
        "name: bench\nrepository: https://example.com/bench.git\nbranches: [main, \"release/*\"]\ntimeout: 2h\nsteps:\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "  - name: step-{i}\n    image: registry.example.com/team/builder:1.{i}\n    commands:\n      - make build-{i}\n      - make test-{i}\n    env: {{ LEVEL: debug, INDEX: \"{i}\" }}\n    secrets:\n      - {{ secretRef: ci-secrets, key: token-{i}, envVar: TOKEN }}\n    resources:\n      requests: {{ cpu: 100m, memory: 128Mi }}\n      limits: {{ cpu: \"1\", memory: 512Mi }}\n    timeout: 10m\n    caches: [.cache/{i}]\n    outputs: [out-{i}]\n"
        ));
        if i > 0 {
            let a = (i * 7919) % i;
            let b = (i * 104_729 + 13) % i;
            if a == b {
                text.push_str(&format!("    dependsOn: [step-{a}]\n"));
            } else {
                text.push_str(&format!("    dependsOn: [step-{a}, step-{b}]\n"));
            }
            if i % 10 == 0 {
                text.push_str(&format!("    inputs: [{{ step: step-{a}, output: out-{a} }}]\n"));
            }
        }
        if i % 5 == 0 {
            text.push_str(&format!(
                "    sidecars:\n      - name: db\n        image: postgres:16\n        env: [{{ name: POSTGRES_PASSWORD, value: test-{i} }}]\n        ports: [{{ containerPort: 5432 }}]\n        resources:\n          requests: {{ cpu: 100m, memory: 256Mi }}\n"
            ));
        }
    }
    text
}

/// `n` DAG steps, each depending on 0–3 earlier steps (forward edges only),
/// named in an order unrelated to their position.
pub fn random_steps(n: usize) -> Vec<(String, Vec<String>)> {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15 ^ n as u64);
    let names: Vec<String> = (0..n)
        .map(|i| format!("s{:016x}", (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
        .collect();
    (0..n)
        .map(|i| {
            let deps = if i == 0 {
                Vec::new()
            } else {
                let k = rng.below(4);
                let mut deps: Vec<String> = (0..k).map(|_| names[rng.below(i)].clone()).collect();
                deps.sort();
                deps.dedup();
                deps
            };
            (names[i].clone(), deps)
        })
        .collect()
}

/// A pipeline whose matrix expands to `n` combinations (`n` a multiple of
/// 100): `os` (10 values) × `go` (10) × `shard` (`n / 100`), minus the
/// combinations of one `os`/`go` pair, plus as many includes as that removed,
/// so exactly `n` remain.
pub fn matrix_pipeline_file(n: usize) -> String {
    let shards = (n / 100).max(1);
    let list = |prefix: &str, count: usize| {
        (0..count)
            .map(|i| format!("{prefix}-{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = format!(
        "name: matrix-bench\nrepository: https://example.com/bench.git\nmatrix:\n  dimensions:\n    os: [{}]\n    go: [{}]\n    shard: [{}]\n  exclude:\n    - {{ os: os-0, go: go-0 }}\n  include:\n",
        list("os", 10),
        list("go", 10),
        list("shard", shards)
    );
    for i in 0..shards {
        text.push_str(&format!("    - {{ os: os-extra, go: go-0, shard: extra-{i} }}\n"));
    }
    text.push_str(
        "steps:\n  - name: test\n    image: golang:${{ matrix.go }}\n    commands: [\"go test ./shard/${{ matrix.shard }}/... # ${{ matrix.os }}\"]\n",
    );
    text
}

//! The runtime check (`common/kubelet`): rendered pods run under kubelet
//! rules on this machine. Every example under `examples/` and every script
//! c8s emits (git-clone, input extraction, main's wrapper, artifact-helper)
//! runs here; `runtime_cases.rs` holds one case per fixed breakage.
//!
//! Tools the machine lacks (`go`, `golangci-lint`, `crane`, the WireMock and
//! metrics-agent images) are replaced by shell stand-ins that do what the
//! pods need from them; each replacement says so where it is made.

mod common;
#[path = "common/kubelet/mod.rs"]
mod kubelet;

use std::path::{Path, PathBuf};

use c8s_pod_builder::model::sidecar::{EnvVar, parse_sidecars};
use c8s_pod_builder::model::{
    MemorySource, PlanIdentity, TaskPlan, parse_pipeline, parse_task_config, task_plan,
};
use c8s_pod_builder::{RunContext, SidecarMode, render_job, render_pod};
use kubelet::fixtures::{Origin, example_kubelet, origin};
use kubelet::{Image, Phase, job_pod};

const ORDERS: &str = include_str!("../../examples/pipelines/orders.c8s.yaml");
const TASK: &str = include_str!("../../examples/tasks/integration-task.yml");

fn ctx(origin: &Origin, mode: SidecarMode) -> RunContext {
    RunContext::new("run-1", 7)
        .with_repository(&origin.url)
        .with_commit(&origin.commit)
        .with_branch("main")
        .with_sidecar_mode(mode)
}

fn shell(script: &str) -> Vec<String> {
    vec!["sh".into(), "-ec".into(), script.into()]
}

/// A fresh host directory standing in for the artifacts PVC.
fn artifacts_dir(name: &str) -> PathBuf {
    let dir = kubelet::scratch_root().join(format!("artifacts-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// Every file under `dir`, relative.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).expect("under dir").display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// What `main` checks in each sidecar example: the service answers.
fn sidecar_examples() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        (
            "postgres.yml",
            common::POSTGRES,
            "PGPASSWORD=test psql -h 127.0.0.1 -U postgres -tAc 'select 40 + 2' | grep -qx 42",
        ),
        (
            "services.yml",
            common::SERVICES,
            "redis-cli -h 127.0.0.1 ping | grep -qx PONG\nbusybox wget -qO- http://127.0.0.1:8080/__admin/health",
        ),
        (
            "monitoring-agent.yml",
            common::MONITORING,
            "busybox wget -qO- http://127.0.0.1:8080/healthz",
        ),
    ]
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn sidecar_examples_serve_main_in_native_pods_and_jobs() {
    let origin = origin();
    for (file, text, check) in sidecar_examples() {
        let mut plan = TaskPlan::new(PlanIdentity::new("orders", "services"), "golang:1.23");
        plan.sidecars = parse_sidecars(file, text).expect("example parses");
        plan.command = shell(check);
        let pod = render_pod(&plan, &ctx(&origin, SidecarMode::Native)).expect("render");
        let run = example_kubelet().run(&pod);
        assert_eq!(run.phase, Phase::Succeeded, "{file} pod:\n{}", run.logs());
        for sidecar in &plan.sidecars {
            // Stopped by SIGTERM after main ended, not restarted on the way.
            assert_eq!(
                run.container(&sidecar.name).restarts,
                0,
                "{file}:\n{}",
                run.logs()
            );
        }
        // The Job's pod template holds the same containers as the Pod: one Job
        // run (the quickest example) shows the template runs too.
        if file == "monitoring-agent.yml" {
            let job = render_job(&plan, &ctx(&origin, SidecarMode::Native)).expect("render job");
            let run = example_kubelet().run(&job_pod(&job));
            assert_eq!(run.phase, Phase::Succeeded, "{file} job:\n{}", run.logs());
        }
    }
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn sidecar_examples_serve_main_in_legacy_pods() {
    let origin = origin();
    for (file, text, check) in sidecar_examples() {
        let mut plan = TaskPlan::new(PlanIdentity::new("orders", "services"), "golang:1.23");
        plan.sidecars = parse_sidecars(file, text).expect("example parses");
        plan.command = shell(check);
        let pod = render_pod(&plan, &ctx(&origin, SidecarMode::Legacy)).expect("render");
        // The runner deletes a legacy pod when main ends (nothing else stops its sidecars).
        let run = example_kubelet().delete_after("main").run(&pod);
        assert_eq!(
            run.container("main").reason,
            "Completed",
            "{file}:\n{}",
            run.logs()
        );
        assert_eq!(run.phase, Phase::Succeeded, "{file}:\n{}", run.logs());
    }
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn concourse_task_example_runs_and_saves_its_output() {
    let origin = origin();
    let config = parse_task_config("integration-task.yml", TASK).expect("example parses");
    let mut plan = task_plan(PlanIdentity::new("orders", "integration"), &config);
    // Inputs are artifacts; here `source` is the clone, as with `--checkout-input source`.
    assert!(plan.checkout_input("source"));
    // Stand-in for `go test -json ./... > ../reports/integration.json` (no Go
    // here): the same database round trip, the same output file.
    plan.args = vec![
        "-ec".into(),
        "test -f go.mod\npsql \"$DATABASE_URL\" -tAc 'select 1' > ../reports/integration.json".into(),
    ];
    let artifacts = artifacts_dir("task");
    let pod = render_pod(&plan, &ctx(&origin, SidecarMode::Native)).expect("render");
    let run = example_kubelet()
        .claim("c8s-artifacts", artifacts.clone())
        .run(&pod);
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
    let saved = files(&artifacts);
    assert!(
        saved.iter().any(|f| f.ends_with("/reports.tar")),
        "{saved:?}\n{}",
        run.logs()
    );
}

/// The orders pipeline on `main`, one matrix combination (go 1.23, db 16),
/// step by step in DAG order, all sharing one artifacts PVC.
#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn orders_pipeline_steps_all_succeed_and_outputs_flow_to_inputs() {
    let origin = origin();
    let reader = MemorySource::new().with("../sidecars/services.yml", common::SERVICES.as_bytes().to_vec());
    let pipeline = parse_pipeline("orders.c8s.yaml", ORDERS, &reader).expect("example parses");
    let run_plan = pipeline.expand(Some("main")).expect("expands");
    // Stand-ins for the tools this machine lacks, each doing what the pod
    // needs from it: git on the checkout (go's VCS stamping, golangci-lint's
    // new-from-rev), a writable HOME and cache, the output files.
    let stand_ins = [
        (
            "lint",
            "git status --porcelain >/dev/null\nmkdir -p \"$HOME/.cache/golangci-lint\"\necho lint ok",
        ),
        (
            "unit",
            "mkdir -p \"$HOME/go/pkg/mod\" \"$GOCACHE\"\ngit log -1 --format=%H:%ct >/dev/null\necho 'mode: set' > coverage/unit.out",
        ),
        (
            "integration",
            "psql \"$DATABASE_URL\" -tAc 'select 1' | grep -qx 1\nredis-cli -h 127.0.0.1 ping | grep -qx PONG\nbusybox wget -qO- \"$PAYMENTS_URL/__admin/health\"\ntest \"$STRIPE_KEY\" = stripe-key-value",
        ),
        (
            "build",
            "mkdir -p dist\ngit status --porcelain >/dev/null\nmkdir -p \"$GOCACHE\" \"$HOME/go\"\nprintf '#!/bin/sh\\necho orders\\n' > dist/orders\nchmod +x dist/orders",
        ),
        (
            "publish",
            "tar -C dist -cf dist/orders.tar orders\ntar -tf dist/orders.tar | grep -qx orders\ntest \"$REGISTRY_TOKEN\" = registry-token-value\necho published",
        ),
    ];
    let artifacts = artifacts_dir("orders");
    let kubelet = example_kubelet().claim("c8s-artifacts", artifacts.clone()).image(
        "gcr.io/go-containerregistry/crane",
        Image {
            path: vec![kubelet::images::busybox_bin()],
            ..Image::default()
        },
    );
    let ctx = ctx(&origin, SidecarMode::Native).with_pipeline("orders-service");
    let mut ran = Vec::new();
    for layer in &run_plan.layers {
        for step in layer {
            let plan = run_plan
                .plans
                .iter()
                .find(|p| {
                    &p.identity.step == step
                        && p.identity.matrix.get("go").map(String::as_str) == Some("1.23")
                        && p.identity.matrix.get("db").map(String::as_str) == Some("16")
                })
                .unwrap_or_else(|| panic!("no plan for {step}"));
            let mut plan = plan.clone();
            let (_, script) = stand_ins
                .iter()
                .find(|(name, _)| name == step)
                .expect("a stand-in per step");
            plan.command = shell(script);
            let pod = render_pod(&plan, &ctx).unwrap_or_else(|e| panic!("{step}: {e}"));
            let run = kubelet.run(&pod);
            assert_eq!(run.phase, Phase::Succeeded, "step {step}:\n{}", run.logs());
            ran.push(step.clone());
        }
    }
    assert_eq!(ran.len(), 5, "every step ran: {ran:?}");
    let saved = files(&artifacts);
    assert!(saved.iter().any(|f| f.ends_with("/build/dist.tar")), "{saved:?}");
    assert!(
        saved.iter().any(|f| f.ends_with("/unit/coverage.tar")),
        "{saved:?}"
    );
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn git_clone_checks_out_the_commit_and_main_sees_it() {
    let origin = origin();
    let mut plan = TaskPlan::new(PlanIdentity::new("orders", "unit"), "golang:1.23");
    plan.command = shell(
        "test \"$(git rev-parse HEAD)\" = \"$EXPECTED\"\ntest -f go.mod\ntest -z \"$(git status --porcelain)\"",
    );
    plan.env = vec![EnvVar::value("EXPECTED", &origin.commit)];
    // c8s's own `.c8s/` (main's exit-code file) is excluded: the checkout is clean.
    for mode in [SidecarMode::Native, SidecarMode::Legacy] {
        let pod = render_pod(&plan, &ctx(&origin, mode)).expect("render");
        let run = example_kubelet().run(&pod);
        assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
        assert!(
            run.container("git-clone").log.contains(&origin.commit),
            "{}",
            run.logs()
        );
    }
}

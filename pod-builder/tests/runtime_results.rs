//! Step results under kubelet rules (`common/kubelet`): a value one step's
//! pod writes to `$C8S_RESULTS` reaches a dependent step's pod as env, through
//! the artifact PVC both pods mount; a declared result that is never written
//! fails its step.

mod common;
#[path = "common/kubelet/mod.rs"]
mod kubelet;

use std::path::PathBuf;

use c8s_pod_builder::model::{MemorySource, RunPlan, TaskPlan, parse_pipeline};
use c8s_pod_builder::render_pod;
use kubelet::fixtures::{Origin, origin, origin_context as ctx};
use kubelet::{Kubelet, Phase};

fn artifacts_dir(name: &str) -> PathBuf {
    let dir = kubelet::scratch_root().join(format!("results-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

fn expand(origin: &Origin, steps: &str) -> RunPlan {
    let text = format!("name: shop\nrepository: {}\nsteps:\n{steps}", origin.url);
    let pipeline = parse_pipeline(".c8s.yaml", &text, &MemorySource::new()).expect("parses");
    pipeline.expand(Some("main")).expect("expands")
}

fn plan<'r>(run: &'r RunPlan, step: &str) -> &'r TaskPlan {
    run.plans
        .iter()
        .find(|p| p.identity.step == step)
        .unwrap_or_else(|| panic!("no plan for {step}"))
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn a_result_written_by_one_step_arrives_as_env_in_a_dependent_steps_pod() {
    let origin = origin();
    let run = expand(
        &origin,
        r#"  - name: build
    image: golang:1.23
    results: [digest, notes]
    commands:
      - printf 'sha256:%s\n' 0123abcd > "$C8S_RESULTS/digest"
      - printf 'line one\nit'"'"'s $(not) `run`\n' > "$C8S_RESULTS/notes"
  - name: package
    image: golang:1.23
    dependsOn: [build]
    commands: ["true"]
  - name: ship
    image: golang:1.23
    dependsOn: [package]
    env:
      f: ${{ steps.build.results.digest }}
      DIGEST: ${{ steps.build.results.digest }}
      NOTES: ${{ steps.build.results.notes }}
    commands:
      - test "$f" = sha256:0123abcd
      - test "$DIGEST" = sha256:0123abcd
      - test "$NOTES" = "$(printf 'line one\nit'"'"'s $(not) `run`')"
      - echo "shipping $DIGEST"
"#,
    );
    let artifacts = artifacts_dir("flow");
    let kubelet = Kubelet::default().claim("c8s-artifacts", artifacts.clone());
    let ctx = ctx(&origin).with_pipeline("shop");
    for step in ["build", "package", "ship"] {
        let pod = render_pod(plan(&run, step), &ctx).unwrap_or_else(|e| panic!("{step}: {e}"));
        let ran = kubelet.run(&pod);
        assert_eq!(ran.phase, Phase::Succeeded, "step {step}:\n{}", ran.logs());
        if step == "ship" {
            assert!(
                ran.container("main").log.contains("shipping sha256:0123abcd"),
                "{}",
                ran.logs()
            );
        }
    }
}

#[test]
#[ignore = "needs root and the runtime check's host tools (scripts/install-tools.sh)"]
fn a_declared_result_that_is_never_written_fails_its_step() {
    let origin = origin();
    let run = expand(
        &origin,
        "  - name: build\n    image: golang:1.23\n    results: [digest]\n    commands: [\"echo forgot\"]\n",
    );
    let artifacts = artifacts_dir("missing");
    let kubelet = Kubelet::default().claim("c8s-artifacts", artifacts);
    let pod = render_pod(plan(&run, "build"), &ctx(&origin)).expect("render");
    let ran = kubelet.run(&pod);
    assert_eq!(ran.phase, Phase::Failed, "{}", ran.logs());
    assert!(
        ran.container("main")
            .log
            .contains("result digest was not written"),
        "{}",
        ran.logs()
    );
}

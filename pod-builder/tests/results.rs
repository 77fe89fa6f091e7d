//! Step results in rendered pods: the producer's `main` gets `$C8S_RESULTS`
//! and its `artifact-helper` saves the results directory; a reader unpacks
//! each producer's results with one more input container and loads them into
//! env before its command (snapshots of both pods, and the rules).

use c8s_pod_builder::env::literal_text;
use c8s_pod_builder::inspect::{container, container_names, env_value};
use c8s_pod_builder::model::results::MAX_RESULT_BYTES;
use c8s_pod_builder::model::{MemorySource, RunPlan, TaskPlan, parse_pipeline};
use c8s_pod_builder::{Error, RunContext, render_pod, scripts, to_canonical_yaml};

const RELEASE: &str = include_str!("../../examples/pipelines/release.c8s.yaml");

fn run() -> RunPlan {
    let pipeline = parse_pipeline("release.c8s.yaml", RELEASE, &MemorySource::new()).expect("parses");
    pipeline.expand(Some("main")).expect("expands")
}

fn plan<'r>(run: &'r RunPlan, step: &str) -> &'r TaskPlan {
    run.plans.iter().find(|p| p.identity.step == step).expect("plan")
}

fn ctx() -> RunContext {
    RunContext::for_run(&run(), "run-1", 3).with_artifact_claim("ci-artifacts")
}

fn args(container: &k8s_openapi::api::core::v1::Container) -> Vec<String> {
    container.command.clone().unwrap_or_default()
}

#[test]
fn the_producer_and_a_reader_render_as_snapshots() {
    let run = run();
    for step in ["image", "announce"] {
        let pod = render_pod(plan(&run, step), &ctx()).expect("render");
        insta::assert_snapshot!(format!("results-{step}"), to_canonical_yaml(&pod).expect("yaml"));
    }
}

#[test]
fn the_producer_writes_to_c8s_results_and_its_helper_saves_them() {
    let run = run();
    let pod = render_pod(plan(&run, "image"), &ctx()).expect("render");
    let main = container(&pod, "main").expect("main");
    assert_eq!(env_value(main, "C8S_RESULTS"), Some("/workspace/.c8s/results"));
    assert_eq!(env_value(main, "C8S_RESULT_NAMES"), Some("digest url"));
    let command = args(main);
    assert!(
        command.iter().any(|a| *a == literal_text(scripts::STEP_RESULTS)),
        "{command:?}"
    );
    assert!(
        command.iter().any(|a| a == ".c8s/results"),
        "created before the command: {command:?}"
    );
    let helper = container(&pod, "artifact-helper").expect("the helper saves the results");
    assert_eq!(args(helper).last().map(String::as_str), Some(".c8s/results"));
    assert!(scripts::STEP_RESULTS.contains(&format!("-gt {MAX_RESULT_BYTES} ]")));
}

#[test]
fn a_reader_unpacks_each_producers_results_and_loads_them_into_env() {
    let run = run();
    let pod = render_pod(plan(&run, "announce"), &ctx()).expect("render");
    assert_eq!(
        container_names(&pod),
        ["git-clone", "c8s-input-0", "c8s-input-1", "main"]
    );
    let input = |name: &str| args(container(&pod, name).expect("input"));
    let version = input("c8s-input-0");
    assert!(
        version.iter().any(|a| a.ends_with("/version/.c8s/results.tar")),
        "{version:?}"
    );
    assert!(
        version.iter().any(|a| a == ".c8s/results-of/version"),
        "{version:?}"
    );
    let image = input("c8s-input-1");
    assert!(
        image.iter().any(|a| a.ends_with("/image/.c8s/results.tar")),
        "{image:?}"
    );
    let main = container(&pod, "main").expect("main");
    assert_eq!(
        env_value(main, "C8S_RESULT_ENV"),
        Some("VERSION=version/version DIGEST=image/digest IMAGE=image/url")
    );
    // The values are not known when the pod is rendered: no literal env var.
    for name in ["VERSION", "DIGEST", "IMAGE"] {
        assert_eq!(env_value(main, name), None, "{name}");
    }
    assert!(
        args(main)
            .iter()
            .any(|a| *a == literal_text(scripts::STEP_RESULTS))
    );
}

#[test]
fn results_without_a_command_are_an_error() {
    let producer = TaskPlan::for_step("shop", "build", "alpine:3").with_results(["digest"]);
    assert!(
        matches!(render_pod(&producer, &ctx()), Err(Error::ResultsNeedCommand { step }) if step == "build")
    );
    let reader = TaskPlan::for_step("shop", "ship", "alpine:3").with_result_env("DIGEST", "build", "digest");
    assert!(matches!(
        render_pod(&reader, &ctx()),
        Err(Error::ResultsNeedCommand { .. })
    ));
}

#[test]
fn a_plan_built_in_code_with_bad_result_names_is_refused() {
    let plan = TaskPlan::for_step("shop", "ship", "alpine:3")
        .with_command(["sh", "-ec", "true"])
        .with_results(["a b"])
        .with_result_env("1BAD", "build", "digest");
    let Err(Error::InvalidPlan(errors)) = render_pod(&plan, &ctx()) else {
        panic!("accepted");
    };
    let text = errors.to_string();
    assert!(text.contains("results[0]: \"a b\" is not a valid name"), "{text}");
    assert!(
        text.contains("resultEnv[0].name: \"1BAD\" is not a valid environment variable name"),
        "{text}"
    );
}

//! The generated chart files (insta snapshots) and the library's errors; no
//! external tools needed.

mod support;

use std::path::Path;

use support::{DirSource, root, sidecar_file};

use c8s_helm::pod_builder::RunContext;
use c8s_helm::pod_builder::SidecarMode;
use c8s_helm::pod_builder::model::sidecar::SidecarConfig;
use c8s_helm::pod_builder::model::{
    PlanIdentity, TaskPlan, TaskStep, parse_pipeline, parse_task_config, visit_task,
};
use c8s_helm::{Chart, Error, pipeline_chart, sidecar_chart};

fn context() -> RunContext {
    RunContext::new("run-7", 7).with_commit("0123456789abcdef0123456789abcdef01234567")
}

/// One snapshot per file: `<chart>__<path with / as ->`.
fn snapshot_files(label: &str, chart: &Chart) {
    for (path, contents) in chart.files() {
        insta::assert_snapshot!(format!("{label}__{}", path.replace('/', "-")), contents);
    }
}

#[test]
fn sidecar_chart_snapshots() {
    for stem in ["monitoring-agent", "postgres", "services"] {
        let chart = sidecar_chart(stem, &sidecar_file(stem)).expect("chart");
        let paths: Vec<&str> = chart.files().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "Chart.yaml",
                "templates/NOTES.txt",
                "templates/_helpers.tpl",
                "templates/_sidecars.tpl",
                "templates/example-deployment.yaml",
                "values.yaml"
            ]
        );
        snapshot_files(&format!("sidecars-{stem}"), &chart);
    }
}

#[test]
fn pipeline_chart_snapshots() {
    let file = root().join("examples/tasks/integration-task.yml");
    let text = std::fs::read_to_string(&file).expect("task example");
    let config = parse_task_config("integration-task.yml", &text).expect("valid task");
    let plan = visit_task(
        "integration-task",
        &TaskStep::new("task", config),
        &DirSource(root()),
    )
    .expect("plan");
    let chart = pipeline_chart("integration-task", &[plan], &context(), true).expect("chart");
    snapshot_files("pipeline-task", &chart);

    // The example pipeline: everything but the (large) rendered objects.
    let file = root().join("examples/pipelines/orders.c8s.yaml");
    let text = std::fs::read_to_string(&file).expect("pipeline example");
    let pipeline = parse_pipeline(
        "orders.c8s.yaml",
        &text,
        &DirSource(file.parent().expect("dir").to_path_buf()),
    )
    .expect("valid pipeline");
    let run = pipeline.expand(None).expect("expands");
    let ctx = context().with_repository(pipeline.repository.clone());
    let chart = pipeline_chart("orders-service", &run.plans, &ctx, false).expect("chart");
    let values = chart.file("values.yaml").expect("values");
    let head = &values[..values.find("\nobjects:\n").expect("objects")];
    insta::assert_snapshot!("pipeline-orders__values-head", head);
    insta::assert_snapshot!(
        "pipeline-orders__Chart.yaml",
        chart.file("Chart.yaml").expect("Chart.yaml")
    );
    // Native and legacy forms only for the steps with sidecars (integration).
    let by_mode = values.matches("\n  native:\n").count();
    let integration = run.plans.iter().filter(|p| !p.sidecars.is_empty()).count();
    assert_eq!(by_mode, integration);
    assert_eq!(
        values.matches("\n  object:\n").count(),
        run.plans.len() - integration
    );
}

#[test]
fn charts_are_deterministic_and_written_as_files() {
    let sidecars = sidecar_file("services");
    let chart = sidecar_chart("ci-services", &sidecars).expect("chart");
    assert_eq!(chart, sidecar_chart("ci-services", &sidecars).expect("chart"));
    assert_eq!(chart.name(), "ci-services");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("write-{}", std::process::id()));
    chart.write_to(&dir).expect("write");
    for (path, contents) in chart.files() {
        assert_eq!(
            std::fs::read_to_string(dir.join(path)).expect("written"),
            contents
        );
    }
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn errors_say_what_is_wrong() {
    let postgres = sidecar_file("postgres");
    let err = sidecar_chart("CI_services", &postgres).expect_err("must fail");
    assert!(matches!(err, Error::InvalidChartName { .. }));
    assert_eq!(
        err.to_string(),
        "chart name \"CI_services\" may contain only lowercase letters, digits and '-'"
    );
    assert!(matches!(sidecar_chart("ci", &[]), Err(Error::NoSidecars)));

    let twice = [postgres[0].clone(), postgres[0].clone()];
    let err = sidecar_chart("ci", &twice).expect_err("must fail");
    assert!(matches!(err, Error::InvalidSidecars(_)), "{err}");
    let bad = [SidecarConfig::new("Bad Name", "postgres:16")];
    assert!(matches!(
        sidecar_chart("ci", &bad),
        Err(Error::InvalidSidecars(_))
    ));

    assert!(matches!(
        pipeline_chart("p", &[], &context(), false),
        Err(Error::NoPlans)
    ));
    let plan = TaskPlan::new(PlanIdentity::new("p", "unit"), "alpine:3");
    let old = context()
        .with_kubernetes_minor(28)
        .with_sidecar_mode(SidecarMode::Native);
    let err = pipeline_chart("p", &[plan], &old, false).expect_err("must fail");
    assert!(
        err.to_string()
            .contains("native sidecars need Kubernetes >= 1.29"),
        "{err}"
    );
}

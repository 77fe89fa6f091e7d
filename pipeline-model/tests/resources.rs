//! Effective pod resources (KEP-753), run totals and peaks, and quota checks,
//! computed on the layout pod-builder renders.
#![allow(clippy::unwrap_used)]

use c8s_pipeline_model::resources::{
    EffectiveResources, QuotaError, ResourceList, check_quota, run_resources,
};
use c8s_pipeline_model::sidecar::{Quantity, Resources, parse_sidecars};
use c8s_pipeline_model::{
    ContainerRole, LaidOutContainer, PlanIdentity, PlanInput, TaskPlan, effective_resources,
    plan_effective_resources,
};

fn list(pairs: &[(&str, &str)]) -> ResourceList {
    pairs
        .iter()
        .map(|(name, text)| ((*name).to_owned(), text.parse::<Quantity>().unwrap()))
        .collect()
}

fn render(list: &ResourceList) -> String {
    list.iter()
        .map(|(name, q)| format!("{name}={q}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn container(role: ContainerRole, requests: &[(&str, &str)], limits: &[(&str, &str)]) -> LaidOutContainer {
    let resources = Resources {
        requests: list(requests),
        limits: list(limits),
    };
    LaidOutContainer {
        name: format!("{role:?}").to_lowercase(),
        role,
        resources,
    }
}

/// A plan whose sidecars are given as a sidecar file, as a user writes it.
fn plan(sidecars_yaml: &str, main: &[(&str, &str)]) -> TaskPlan {
    let mut plan = TaskPlan::new(PlanIdentity::new("orders", "integration"), "golang:1.23");
    if !sidecars_yaml.is_empty() {
        plan.sidecars = parse_sidecars("sidecars.yml", sidecars_yaml).unwrap();
    }
    plan.resources.requests = list(main);
    plan
}

#[test]
fn k8s_md_example() {
    use ContainerRole::*;
    let sidecar = container(Sidecar, &[("cpu", "500m")], &[]);
    let init = container(Init, &[("cpu", "1000m")], &[]);
    let main = container(Regular, &[("cpu", "600m")], &[]);
    let sidecar_first = effective_resources(&[sidecar.clone(), init.clone(), main.clone()]);
    assert_eq!(render(&sidecar_first.requests), "cpu=1500m");
    let init_first = effective_resources(&[init, sidecar, main]);
    assert_eq!(render(&init_first.requests), "cpu=1100m");
    assert!(init_first.limits.is_empty());
}

#[test]
fn several_sidecars_accumulate_and_an_init_between_them_sees_the_running_sum() {
    use ContainerRole::*;
    let pod = [
        container(Sidecar, &[("cpu", "1")], &[]),
        container(Sidecar, &[("cpu", "2")], &[]),
        container(Init, &[("cpu", "4")], &[]),
        container(Sidecar, &[("cpu", "500m")], &[]),
        container(Regular, &[("cpu", "100m")], &[]),
    ];
    // InitUse: 1, 3, 3+4=7, 3.5; containers: 3.5 + 0.1 = 3.6 -> 7.
    assert_eq!(render(&effective_resources(&pod).requests), "cpu=7");
    let late_init = [
        container(Sidecar, &[("cpu", "1")], &[]),
        container(Sidecar, &[("cpu", "2")], &[]),
        container(Regular, &[("cpu", "100m")], &[]),
    ];
    assert_eq!(render(&effective_resources(&late_init).requests), "cpu=3100m");
}

#[test]
fn limits_only_containers_request_their_limits() {
    use ContainerRole::*;
    let pod = [
        container(Sidecar, &[], &[("cpu", "200m"), ("memory", "128Mi")]),
        container(Regular, &[("cpu", "1")], &[("memory", "1Gi")]),
    ];
    let effective = effective_resources(&pod);
    assert_eq!(render(&effective.requests), "cpu=1200m memory=1152Mi");
    assert_eq!(render(&effective.limits), "cpu=200m memory=1152Mi");
}

#[test]
fn resources_are_computed_per_name_and_limits_separately() {
    use ContainerRole::*;
    let pod = [
        container(Init, &[("memory", "2Gi")], &[("memory", "2Gi"), ("cpu", "4")]),
        container(
            Sidecar,
            &[("cpu", "100m"), ("ephemeral-storage", "1Gi")],
            &[("cpu", "1")],
        ),
        container(Regular, &[("cpu", "1"), ("memory", "512Mi")], &[("cpu", "2")]),
    ];
    let effective = effective_resources(&pod);
    assert_eq!(
        render(&effective.requests),
        "cpu=4 ephemeral-storage=1Gi memory=2Gi",
        "the init container's cpu request defaults to its 4-core limit"
    );
    assert_eq!(render(&effective.limits), "cpu=4 memory=2Gi");
}

#[test]
fn a_plan_counts_the_containers_c8s_adds() {
    let sidecars = "\
- name: postgres
  image: postgres:16
  resources:
    requests: { cpu: 100m, memory: 256Mi }
    limits: { cpu: '1', memory: 512Mi }
- name: redis
  image: redis:7
  resources:
    limits: { cpu: 200m, memory: 128Mi }
";
    let effective = plan_effective_resources(&plan(sidecars, &[("cpu", "1"), ("memory", "1Gi")]));
    // git-clone (50m/64Mi, limit 500m/256Mi) runs alone first; then sidecars + main.
    assert_eq!(render(&effective.requests), "cpu=1300m memory=1408Mi");
    assert_eq!(render(&effective.limits), "cpu=1200m memory=640Mi");

    // A tiny step: the clone container is the largest thing in the pod.
    let tiny = plan_effective_resources(&plan("", &[("cpu", "10m"), ("memory", "16Mi")]));
    assert_eq!(render(&tiny.requests), "cpu=50m memory=64Mi");

    // Inputs add init containers (run one at a time); outputs add artifact-helper beside main.
    let mut with_artifacts = plan("", &[("cpu", "1"), ("memory", "1Gi")]);
    with_artifacts.inputs = vec![PlanInput::new("build", "dist"), PlanInput::new("lint", "report")];
    with_artifacts.outputs = vec!["reports".to_owned()];
    let effective = plan_effective_resources(&with_artifacts);
    assert_eq!(render(&effective.requests), "cpu=1050m memory=1088Mi");
}

#[test]
fn a_run_has_a_total_and_a_peak() {
    let step = |cpu: &str, memory: &str| {
        EffectiveResources::new(list(&[("cpu", cpu), ("memory", memory)]), ResourceList::new())
    };
    let unit = step("1", "1Gi");
    let integration = step("2", "512Mi");
    let build = step("500m", "2Gi");
    let publish = step("100m", "64Mi");
    let layers = vec![vec![&unit], vec![&integration, &build], vec![&publish]];
    let run = run_resources(layers);
    assert_eq!(render(&run.total.requests), "cpu=3600m memory=3648Mi");
    assert_eq!(render(&run.peak.requests), "cpu=2500m memory=2560Mi");

    // Owned layers work the same, and an empty run needs nothing.
    let owned = vec![vec![unit.clone()], vec![integration, build]];
    assert_eq!(
        render(&run_resources(&owned).peak.requests),
        "cpu=2500m memory=2560Mi"
    );
    assert_eq!(
        run_resources(Vec::<Vec<&EffectiveResources>>::new()),
        Default::default()
    );
}

#[test]
fn quota_errors_read_like_the_spec() {
    let err = check_quota(&list(&[("cpu", "120")]), &list(&[("cpu", "100")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "would exceed cpu quota: 120 requested, 100 allowed"
    );

    let err = check_quota(
        &list(&[("cpu", "1500m"), ("memory", "3072Mi")]),
        &list(&[("cpu", "1"), ("memory", "2Gi"), ("pods", "10")]),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "would exceed cpu quota: 1500m requested, 1 allowed; would exceed memory quota: 3Gi requested, 2Gi allowed"
    );
    let QuotaError::Exceeded(excesses) = err else {
        unreachable!("the only variant")
    };
    assert_eq!(excesses.len(), 2);
    assert_eq!(excesses[1].resource, "memory");

    // Equal is fine; unnamed resources are unlimited; missing requests are zero.
    assert!(check_quota(&list(&[("cpu", "1000m")]), &list(&[("cpu", "1")])).is_ok());
    assert!(check_quota(&list(&[("gpu", "8")]), &list(&[("cpu", "1")])).is_ok());
    assert!(check_quota(&ResourceList::new(), &list(&[("cpu", "1")])).is_ok());
}

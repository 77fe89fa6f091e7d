//! What a CI tool author writes in the first hour: an integration-test step
//! with a Postgres sidecar, built in code, rendered, snapshot-compared — in
//! about 25 lines, with one `use`.

use c8s_pod_builder::prelude::*;

#[test]
fn an_integration_test_plan_with_postgres_built_in_code() -> Result<(), Box<dyn std::error::Error>> {
    let postgres = SidecarConfig::new("postgres", "postgres:16")
        .with_env("POSTGRES_PASSWORD", "test")
        .with_env("PGDATA", "/var/lib/postgresql/data/pgdata")
        .with_port(5432)
        .with_resources(Resources::parse(
            [("cpu", "100m"), ("memory", "256Mi")],
            [("memory", "512Mi")],
        )?)
        .with_readiness(ReadinessProbe::exec(["pg_isready", "-h", "127.0.0.1"]).with_period_seconds(2))
        .with_run_as_user(999)
        .with_scratch(["/var/lib/postgresql/data", "/var/run/postgresql"]);
    let plan = TaskPlan::for_step("orders", "integration", "golang:1.23")
        .with_command(["sh", "-ec", "go test -tags integration ./..."])
        .with_env("DATABASE_URL", "postgres://postgres:test@127.0.0.1:5432/postgres")
        .with_secret_env("API_TOKEN", "ci-secrets", "api-token")
        .with_sidecar(postgres)
        .with_timeout(std::time::Duration::from_secs(900));
    let ctx = RunContext::new("run-1", 42)
        .with_repository("https://example.com/orders.git")
        .with_commit("0123456789abcdef0123456789abcdef01234567")
        .with_owner(
            "batch/v1",
            "Job",
            "ci-run-1",
            "0b0e6a9c-0000-4000-8000-000000000001",
        )
        .with_taint_toleration("dedicated", "ci", "NoSchedule");

    let pod = render_pod(&plan, &ctx)?;
    let sidecar = container(&pod, "postgres").ok_or("postgres is rendered")?;
    assert_eq!(sidecar.restart_policy.as_deref(), Some("Always"));
    assert!(sidecar.startup_probe.is_some());
    assert_eq!(
        env_value(container(&pod, "main").ok_or("main")?, "API_TOKEN"),
        None
    );
    insta::assert_snapshot!(to_canonical_yaml(&pod)?);
    Ok(())
}

#[test]
fn a_port_conflict_built_in_code_is_the_typed_problem_the_parser_gives() {
    let redis = |name: &str| SidecarConfig::new(name, "redis:7").with_port(6379);
    let plan = TaskPlan::for_step("orders", "unit", "golang:1.23")
        .with_sidecar(redis("cache"))
        .with_sidecar(redis("queue"));
    let Err(Error::InvalidPlan(errors)) = render_pod(&plan, &RunContext::new("run-1", 1)) else {
        panic!("two sidecars on 6379 must be rejected");
    };
    assert!(matches!(
        errors.as_slice()[0].rule(),
        Some(Problem::PortConflict { port: 6379, .. })
    ));
    assert_eq!(
        errors.to_string(),
        "<input>: sidecar \"queue\": ports[0]: port 6379/TCP is already used by sidecar \"cache\""
    );
}

#[test]
fn bad_quantities_name_the_resource() {
    let err = Resources::parse([("memory", "1GB")], []).expect_err("1GB is not a quantity");
    assert_eq!(err.resource, "memory");
    assert!(err.to_string().starts_with("requests.memory: "), "{err}");
}

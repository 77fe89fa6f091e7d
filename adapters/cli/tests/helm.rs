//! `c8s helm sidecars` and `c8s helm pipeline` write charts that `helm lint
//! --strict` accepts (the chart contents themselves are tested in adapters/helm),
//! and the webhook of charts/c8s-controller is started with flags `c8s webhook`
//! takes.

mod common;

use std::process::Command;

use common::{c8s, tool};

#[test]
#[ignore = "needs helm"]
fn sidecar_and_pipeline_charts_pass_helm_lint() {
    let out_dir = std::env::temp_dir().join(format!("c8s-helm-cli-{}", std::process::id()));
    let sidecars = out_dir.join("sidecars");
    let pipeline = out_dir.join("pipeline");
    let (s, p) = (
        sidecars.to_string_lossy().into_owned(),
        pipeline.to_string_lossy().into_owned(),
    );

    let out = c8s(&[
        "helm",
        "sidecars",
        "examples/sidecars/services.yml",
        "--out",
        &s,
        "--name",
        "ci-services",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let chart = std::fs::read_to_string(sidecars.join("Chart.yaml")).expect("Chart.yaml written");
    assert!(chart.contains("name: ci-services"), "{chart}");

    let out = c8s(&[
        "helm",
        "pipeline",
        "examples/pipelines/orders.c8s.yaml",
        "--out",
        &p,
        "--branch",
        "main",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(pipeline.join("values.yaml").exists());

    for dir in [&s, &p] {
        let lint = Command::new(tool("helm"))
            .args(["lint", "--strict", dir])
            .output()
            .expect("helm runs");
        assert!(
            lint.status.success(),
            "helm lint {dir}: {}",
            String::from_utf8_lossy(&lint.stdout)
        );
    }

    let bad = c8s(&[
        "helm",
        "sidecars",
        "examples/sidecars/postgres.yml",
        "--out",
        &s,
        "--name",
        "Bad_Name",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// The webhook container's args in `helm template` of charts/c8s-controller
/// with `sets`.
fn webhook_args(sets: &[&str]) -> Vec<String> {
    container_args("templates/webhook.yaml", "webhook", sets)
}

/// The args of the first container of `template` in `helm template` of
/// charts/c8s-controller with `sets`; the first is the command `command`.
fn container_args(template: &str, command: &str, sets: &[&str]) -> Vec<String> {
    let mut helm = Command::new(tool("helm"));
    helm.current_dir(common::workspace()).args([
        "template",
        "ci",
        "charts/c8s-controller",
        "--namespace",
        "c8s",
        "--show-only",
        template,
    ]);
    for set in sets {
        helm.args(["--set", set]);
    }
    let output = helm.output().expect("helm runs");
    assert!(output.status.success(), "{}", common::explain(&output));
    let text = common::text(&output.stdout);
    let mut lines = text.lines().skip_while(|l| l.trim() != "args:").skip(1);
    let mut args = Vec::new();
    for line in lines.by_ref() {
        let Some(arg) = line.trim().strip_prefix("- ") else {
            break;
        };
        args.push(arg.trim_matches('"').to_owned());
    }
    assert_eq!(args.first().map(String::as_str), Some(command), "{text}");
    args
}

/// `args` are flags the `c8s` command they name takes: with no cluster it
/// stops after parsing them, exit 1 "no cluster" (exit 2: a flag it does
/// not take, or a value it cannot read).
fn parsed_without_a_cluster(args: &[String]) {
    let output = common::command()
        .args(args)
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .expect("c8s runs");
    assert_eq!(
        output.status.code(),
        Some(1),
        "{args:?}: {}",
        common::explain(&output)
    );
    assert!(
        common::text(&output.stderr).contains("no cluster"),
        "{args:?}: {}",
        common::explain(&output)
    );
}

#[test]
#[ignore = "needs helm"]
fn the_controller_charts_controller_args_are_flags_c8s_controller_takes() {
    for sets in [
        &[][..],
        &["controller.startTimeout=20m", "controller.capacityWait=1h"][..],
    ] {
        let args = container_args("templates/controller.yaml", "controller", sets);
        for flag in ["--start-timeout=", "--capacity-wait="] {
            assert!(args.iter().any(|a| a.starts_with(flag)), "{flag} in {args:?}");
        }
        parsed_without_a_cluster(&args);
    }
}

#[test]
#[ignore = "needs helm"]
fn the_controller_charts_webhook_args_are_flags_c8s_webhook_takes() {
    // With no cluster, `c8s webhook` stops after parsing its flags: exit 1,
    // "no cluster". A flag it does not take (or a value such as helm's
    // `5.24288e+06` for a large number) is exit 2.
    for sets in [
        &[][..],
        &[
            "webhook.clientIpHeader=X-Forwarded-For",
            "webhook.replayWindow=90m",
            "webhook.failuresPerMinute=0",
            "webhook.bodyLimitBytes=26214400",
        ][..],
        // The admission listener's flags (the TLS files are read after the
        // cluster is found).
        &["admission.enabled=true"][..],
    ] {
        let args = webhook_args(sets);
        if sets.contains(&"admission.enabled=true") {
            for flag in ["--admission-address=", "--tls-cert-file=", "--tls-key-file="] {
                assert!(args.iter().any(|a| a.starts_with(flag)), "{flag} in {args:?}");
            }
        }
        parsed_without_a_cluster(&args);
    }
}

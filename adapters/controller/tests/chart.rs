//! The chart in `charts/c8s-controller`: lints strictly, renders objects the
//! Kubernetes 1.33 and 1.37 schemas accept, and ships exactly the CRDs
//! `c8s crd` prints.

#[path = "../../../pod-builder/tests/common/tools.rs"]
mod tools;

use std::process::Command;

fn chart() -> std::path::PathBuf {
    tools::workspace().join("charts/c8s-controller")
}

#[test]
fn the_chart_ships_the_crds_of_the_library() {
    let shipped = std::fs::read_to_string(chart().join("crds/c8s.dev.yaml")).unwrap_or_default();
    let expected = c8s_controller::crd::crd_yaml().unwrap_or_default();
    assert!(
        shipped == expected,
        "charts/c8s-controller/crds/c8s.dev.yaml is stale: regenerate it with `c8s crd > charts/c8s-controller/crds/c8s.dev.yaml`"
    );
}

#[test]
#[ignore = "needs helm and kubernetes-validate"]
fn helm_lint_strict_and_template_validate() {
    let helm = tools::tool("helm");
    let lint = Command::new(&helm)
        .args(["lint", "--strict"])
        .arg(chart())
        .output();
    let lint = lint.unwrap_or_else(|e| panic!("cannot run helm: {e}"));
    assert!(
        lint.status.success(),
        "{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    // Every optional part on, so each template is validated.
    let template = Command::new(&helm)
        .args(["template", "ci", "--namespace", "c8s", "--include-crds"])
        .args([
            "--set",
            "dashboard.enabled=true",
            "--set",
            "controller.logArchive.bucket=ci-logs",
        ])
        .args(["--set", "controller.logArchive.credentialsSecret=s3-creds"])
        .args(["--set", "concourse.pipelines.app.file=jobs: []"])
        .args(["--set", "concourse.pipelines.app.secretNames={c8s-app-repo}"])
        .arg(chart())
        .output()
        .unwrap_or_else(|e| panic!("cannot run helm: {e}"));
    assert!(
        template.status.success(),
        "{}",
        String::from_utf8_lossy(&template.stderr)
    );
    let text = String::from_utf8_lossy(&template.stdout).into_owned();
    for kind in [
        "kind: CustomResourceDefinition",
        "kind: Deployment",
        "kind: Service",
        "kind: ClusterRole",
        "kind: Role",
    ] {
        assert!(text.contains(kind), "{kind} missing");
    }
    // Least privilege: nothing cluster-wide beyond what the controller and webhook use.
    assert!(!text.contains("\"*\""), "a wildcard in RBAC");
    assert!(
        !text.contains("customresourcedefinitions"),
        "the chart installs CRDs; the controller must not write them"
    );
    let dir = std::env::temp_dir().join(format!("c8s-chart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_default();
    let file = dir.join("chart.yaml");
    std::fs::write(&file, text).unwrap_or_default();
    tools::kubernetes_validate("1.33", std::slice::from_ref(&file));
    tools::kubernetes_validate("1.37", std::slice::from_ref(&file));
    std::fs::remove_dir_all(&dir).unwrap_or_default();
}

/// The object of `kind` named `name` among `docs`.
fn object<'a>(docs: &'a [serde_json::Value], kind: &str, name: &str) -> Option<&'a serde_json::Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

#[test]
#[ignore = "needs helm"]
fn the_controller_serves_metrics_on_a_named_port_and_a_switch_adds_a_scraped_service() {
    let docs = render(&[]).unwrap_or_else(|e| panic!("{e}"));
    let deployment = object(&docs, "Deployment", "ci-controller").expect("the controller Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "controller");
    assert_eq!(
        container["ports"],
        serde_json::json!([{ "name": "metrics", "containerPort": 9090 }]),
        "{container:#}"
    );
    let args: Vec<&str> = container["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(args.contains(&"--metrics-address=0.0.0.0:9090"), "{args:?}");
    // The client limit by default is the binary's own default.
    let qps = format!("--kube-qps={}", c8s_controller::throttle::DEFAULT_QPS);
    let burst = format!("--kube-burst={}", c8s_controller::throttle::DEFAULT_BURST);
    assert!(
        args.contains(&qps.as_str()) && args.contains(&burst.as_str()),
        "{args:?}"
    );
    // No Service for the metrics unless asked.
    assert!(object(&docs, "Service", "ci-controller-metrics").is_none());

    let docs = render(&[
        "controller.metrics.service.enabled=true",
        "controller.metrics.port=9300",
        "controller.kubeQps=0",
        "controller.kubeBurst=7",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let deployment = object(&docs, "Deployment", "ci-controller").expect("the controller Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["ports"][0]["containerPort"], 9300, "{container:#}");
    let args = container["args"].to_string();
    assert!(
        args.contains("\"--kube-qps=0\"") && args.contains("\"--kube-burst=7\""),
        "{args}"
    );
    let service = object(&docs, "Service", "ci-controller-metrics").expect("the metrics Service");
    let annotations = &service["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true", "{service:#}");
    assert_eq!(annotations["prometheus.io/port"], "9300", "{service:#}");
    assert_eq!(annotations["prometheus.io/path"], "/metrics", "{service:#}");
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"], "metrics",
        "{service:#}"
    );
    assert_eq!(
        service["spec"]["selector"]["app.kubernetes.io/component"], "controller",
        "{service:#}"
    );
}

/// `helm template` of the chart with `sets` (`--set` values): the rendered
/// objects, or helm's error.
fn render(sets: &[&str]) -> Result<Vec<serde_json::Value>, String> {
    let mut helm = Command::new(tools::tool("helm"));
    helm.args(["template", "ci", "--namespace", "c8s"]).arg(chart());
    for set in sets {
        helm.args(["--set", set]);
    }
    let output = helm.output().unwrap_or_else(|e| panic!("cannot run helm: {e}"));
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    Ok(text
        .split("\n---")
        .filter_map(|doc| serde_saphyr::from_str::<serde_json::Value>(doc).ok())
        .filter(|v| v.is_object())
        .collect())
}

/// The arguments of the controller Deployment's container.
fn controller_args(objects: &[serde_json::Value]) -> Vec<String> {
    let deployment = object(objects, "Deployment", "ci-controller").expect("the controller Deployment");
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

/// The rules of every Role and ClusterRole: (kind, namespace, name, rule).
fn rules(objects: &[serde_json::Value]) -> Vec<(String, String, String, serde_json::Value)> {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    objects
        .iter()
        .filter(|o| matches!(o["kind"].as_str(), Some("Role" | "ClusterRole")))
        .flat_map(|o| {
            let rules = o["rules"].as_array().cloned().unwrap_or_default();
            rules.into_iter().map(move |rule| {
                (
                    text(&o["kind"]),
                    text(&o["metadata"]["namespace"]),
                    text(&o["metadata"]["name"]),
                    rule,
                )
            })
        })
        .collect()
}

fn on_secrets(rule: &serde_json::Value) -> bool {
    rule["resources"]
        .as_array()
        .is_some_and(|r| r.iter().any(|r| r == "secrets" || r == "*"))
}

#[test]
#[ignore = "needs helm"]
fn the_webhook_may_read_only_the_named_secrets() {
    use serde_json::json;
    let objects = render(&[]).unwrap_or_else(|e| panic!("{e}"));
    let all = rules(&objects);
    // No role of the chart reads Secrets but by name.
    let secret_rules: Vec<_> = all.iter().filter(|(.., rule)| on_secrets(rule)).collect();
    assert_eq!(secret_rules.len(), 1, "{secret_rules:#?}");
    let (kind, _, name, rule) = secret_rules[0];
    assert_eq!((kind.as_str(), name.as_str()), ("ClusterRole", "ci-webhook"));
    assert_eq!(rule["resourceNames"], json!(["c8s-webhook"]));
    assert_eq!(rule["verbs"], json!(["get"]));
    // The webhook's caches watch; it lists runs (replays) and creates them.
    let webhook: Vec<&serde_json::Value> = all
        .iter()
        .filter(|(_, _, name, _)| name == "ci-webhook")
        .map(|(.., rule)| rule)
        .collect();
    assert!(webhook.contains(&&json!({
        "apiGroups": ["c8s.dev"], "resources": ["repositoryconnections", "pipelines"], "verbs": ["list", "watch"]
    })));
    assert!(webhook.contains(&&json!({
        "apiGroups": ["c8s.dev"], "resources": ["pipelineruns"], "verbs": ["list", "create"]
    })));
    let deployment = objects
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "ci-webhook")
        .unwrap_or_else(|| panic!("no webhook Deployment"));
    let args = &deployment["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(
        *args,
        json!([
            "webhook",
            "--listen=0.0.0.0:8080",
            "--body-limit=5242880",
            "--replay-window=1h",
            "--failures-per-minute=30"
        ])
    );

    // Per namespace: a Role in each listed namespace, nothing cluster-wide.
    let objects = render(&[
        "webhook.secretNamespaces={ci,team-b}",
        "webhook.secretNames={hooks,gitlab-hooks}",
        "webhook.clientIpHeader=X-Forwarded-For",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let secret_rules: Vec<_> = rules(&objects)
        .into_iter()
        .filter(|(.., rule)| on_secrets(rule))
        .map(|(kind, namespace, name, rule)| (kind, namespace, name, rule["resourceNames"].clone()))
        .collect();
    let names = json!(["hooks", "gitlab-hooks"]);
    assert_eq!(
        secret_rules,
        [
            (
                "Role".into(),
                "ci".into(),
                "ci-webhook-secrets".into(),
                names.clone()
            ),
            ("Role".into(), "team-b".into(), "ci-webhook-secrets".into(), names),
        ]
    );
    let bindings: Vec<_> = objects
        .iter()
        .filter(|o| o["kind"] == "RoleBinding" && o["metadata"]["name"] == "ci-webhook-secrets")
        .map(|o| (o["metadata"]["namespace"].clone(), o["subjects"].clone()))
        .collect();
    let subject = json!([{"kind": "ServiceAccount", "name": "ci-webhook", "namespace": "c8s"}]);
    assert_eq!(
        bindings,
        [(json!("ci"), subject.clone()), (json!("team-b"), subject)]
    );
    let rendered = serde_json::to_string(&objects).unwrap_or_default();
    assert!(rendered.contains("--client-ip-header=X-Forwarded-For"));

    // An empty list would be every Secret: refused.
    for bad in ["webhook.secretNames=null", "webhook.secretNames={}"] {
        let error = render(&[bad]).err().unwrap_or_else(|| panic!("{bad} rendered"));
        assert!(error.contains("webhook.secretNames"), "{bad}: {error}");
    }
}

#[test]
#[ignore = "needs helm, openssl and kubernetes-validate"]
fn the_admission_webhook_is_opt_in_and_registers_both_resources_with_the_ca_of_its_certificate() {
    use serde_json::json;
    // Off by default: no configuration, no certificate, no quota reads.
    let off = render(&[]).unwrap_or_else(|e| panic!("{e}"));
    assert!(off.iter().all(|o| o["kind"] != "ValidatingWebhookConfiguration"));
    assert!(object(&off, "Secret", "ci-admission-tls").is_none());
    assert!(rules(&off).iter().all(|(_, _, name, rule)| name != "ci-webhook"
        || !rule["resources"].to_string().contains("resourcequotas")));

    let on = render(&["admission.enabled=true"]).unwrap_or_else(|e| panic!("{e}"));
    let configuration = object(&on, "ValidatingWebhookConfiguration", "c8s-ci-validate")
        .unwrap_or_else(|| panic!("no ValidatingWebhookConfiguration"));
    let hooks = configuration["webhooks"].as_array().cloned().unwrap_or_default();
    assert_eq!(hooks.len(), 1, "{configuration:#}");
    let hook = &hooks[0];
    assert_eq!(
        hook["clientConfig"]["service"],
        json!({ "name": "ci-webhook", "namespace": "c8s", "path": "/validate", "port": 443 })
    );
    assert_eq!(
        hook["rules"],
        json!([{
            "apiGroups": ["c8s.dev"], "apiVersions": ["v1alpha1"],
            "resources": ["pipelines", "pipelineruns"],
            "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"
        }])
    );
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(hook["sideEffects"], "None");
    assert_eq!(hook["admissionReviewVersions"], json!(["v1"]));
    // The Service's HTTPS port reaches the container's admission listener,
    // which reads the certificate of the Secret.
    let service = object(&on, "Service", "ci-webhook").unwrap_or_else(|| panic!("no webhook Service"));
    assert!(
        service["spec"]["ports"].as_array().is_some_and(
            |p| p.contains(&json!({ "name": "admission", "port": 443, "targetPort": "admission" }))
        ),
        "{service:#}"
    );
    let deployment =
        object(&on, "Deployment", "ci-webhook").unwrap_or_else(|| panic!("no webhook Deployment"));
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    for flag in [
        "--admission-address=0.0.0.0:8443",
        "--tls-cert-file=/etc/c8s/admission/tls.crt",
        "--tls-key-file=/etc/c8s/admission/tls.key",
    ] {
        assert!(args.contains(&flag), "{flag} not in {args:?}");
    }
    assert!(
        container["ports"]
            .as_array()
            .is_some_and(|p| p.contains(&json!({ "name": "admission", "containerPort": 8443 }))),
        "{container:#}"
    );
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], "ci-admission-tls");
    assert_eq!(container["volumeMounts"][0]["mountPath"], "/etc/c8s/admission");
    assert!(
        rules(&on)
            .iter()
            .any(|(kind, _, name, rule)| kind == "ClusterRole"
                && name == "ci-webhook"
                && rule == &json!({ "apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["list"] })),
        "the quota pre-check lists ResourceQuotas"
    );
    // The caBundle is the CA that signed the Secret's certificate, for the
    // Service's DNS name.
    let secret = object(&on, "Secret", "ci-admission-tls").unwrap_or_else(|| panic!("no TLS Secret"));
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let decode = |v: &serde_json::Value| {
        serde_json::from_value::<k8s_openapi::ByteString>(v.clone())
            .unwrap_or_else(|e| panic!("not base64: {e}"))
            .0
    };
    let dir = std::env::temp_dir().join(format!("c8s-chart-admission-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_default();
    std::fs::write(dir.join("ca.crt"), decode(&hook["clientConfig"]["caBundle"])).unwrap_or_default();
    std::fs::write(dir.join("tls.crt"), decode(&secret["data"]["tls.crt"])).unwrap_or_default();
    let verify = Command::new("openssl")
        .current_dir(&dir)
        .args([
            "verify",
            "-CAfile",
            "ca.crt",
            "-verify_hostname",
            "ci-webhook.c8s.svc",
            "tls.crt",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    // The rendered objects are valid for the Kubernetes versions the chart supports.
    let mut helm = Command::new(tools::tool("helm"));
    let template = helm
        .args([
            "template",
            "ci",
            "--namespace",
            "c8s",
            "--set",
            "admission.enabled=true",
        ])
        .arg(chart())
        .output()
        .unwrap_or_else(|e| panic!("cannot run helm: {e}"));
    let file = dir.join("chart.yaml");
    std::fs::write(&file, &template.stdout).unwrap_or_default();
    tools::kubernetes_validate("1.33", std::slice::from_ref(&file));
    tools::kubernetes_validate("1.37", std::slice::from_ref(&file));
    std::fs::remove_dir_all(&dir).unwrap_or_default();

    // Served by `c8s webhook`; the failure policy is one the API server takes.
    let error = render(&["admission.enabled=true", "webhook.enabled=false"])
        .err()
        .unwrap_or_default();
    assert!(
        error.contains("admission.enabled needs webhook.enabled"),
        "{error}"
    );
    let error = render(&["admission.enabled=true", "admission.failurePolicy=Sometimes"])
        .err()
        .unwrap_or_default();
    assert!(
        error.contains("admission.failurePolicy must be Fail or Ignore"),
        "{error}"
    );
    let ignore = render(&["admission.enabled=true", "admission.failurePolicy=Ignore"])
        .unwrap_or_else(|e| panic!("{e}"));
    let configuration = object(&ignore, "ValidatingWebhookConfiguration", "c8s-ci-validate")
        .unwrap_or_else(|| panic!("no ValidatingWebhookConfiguration"));
    assert_eq!(configuration["webhooks"][0]["failurePolicy"], "Ignore");
}

#[test]
#[ignore = "needs helm"]
fn the_log_archive_and_the_dashboard_are_off_by_default_and_secrets_are_readable_only_with_the_archive() {
    let controller_secret_rules = |objects: &[serde_json::Value]| {
        rules(objects)
            .into_iter()
            .filter(|(kind, _, name, rule)| {
                kind == "ClusterRole" && name == "ci-controller" && on_secrets(rule)
            })
            .count()
    };
    let plain = render(&[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(controller_secret_rules(&plain), 0);
    assert!(
        !controller_args(&plain)
            .iter()
            .any(|a| a.starts_with("--log-archive") || a.starts_with("--dashboard"))
    );

    // A bucket without the credentials' Secret is refused, naming the value.
    let refused = render(&["controller.logArchive.bucket=ci-logs"])
        .err()
        .unwrap_or_default();
    assert!(
        refused.contains("controller.logArchive.credentialsSecret"),
        "{refused}"
    );

    let on = render(&[
        "controller.logArchive.bucket=ci-logs",
        "controller.logArchive.credentialsSecret=s3-creds",
        "controller.logArchive.endpoint=http://minio.storage:9000",
        "dashboard.enabled=true",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(controller_secret_rules(&on), 1);
    let args = controller_args(&on);
    for arg in [
        "--log-archive-bucket=ci-logs",
        "--log-archive-prefix=c8s",
        "--log-archive-region=us-east-1",
        "--log-archive-endpoint=http://minio.storage:9000",
    ] {
        assert!(args.iter().any(|a| a == arg), "{arg}: {args:?}");
    }
    let deployment = object(&on, "Deployment", "ci-controller").expect("the controller Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["envFrom"],
        serde_json::json!([{ "secretRef": { "name": "s3-creds" } }]),
        "{container:#}"
    );

    // The dashboard: its own Deployment, reading with a ServiceAccount that
    // may only read, and never Secrets.
    let dashboard = object(&on, "Deployment", "ci-dashboard").expect("the dashboard Deployment");
    let pod = &dashboard["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "ci-dashboard");
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(
        &args[..3],
        ["dashboard", "--all-namespaces", "--address=0.0.0.0:8080"]
    );
    assert!(args.contains(&"--log-archive-bucket=ci-logs"), "{args:?}");
    let dashboard_rules: Vec<serde_json::Value> = rules(&on)
        .into_iter()
        .filter(|(_, _, name, _)| name == "ci-dashboard")
        .map(|(_, _, _, rule)| rule)
        .collect();
    assert_eq!(dashboard_rules.len(), 3, "{dashboard_rules:#?}");
    for rule in &dashboard_rules {
        assert!(!on_secrets(rule), "{rule:#}");
        for verb in rule["verbs"].as_array().into_iter().flatten() {
            assert!(
                ["get", "list", "watch"].contains(&verb.as_str().unwrap_or_default()),
                "{rule:#}"
            );
        }
    }
    assert!(object(&on, "Service", "ci-dashboard").is_some());
    assert!(
        object(&plain, "Deployment", "ci-dashboard").is_none(),
        "off by default"
    );
}

#[test]
#[ignore = "needs helm"]
fn a_namespaced_controller_has_a_role_in_the_release_namespace_and_no_cluster_role() {
    let controller_roles = |objects: &[serde_json::Value]| -> Vec<(String, String)> {
        objects
            .iter()
            .filter(|o| o["metadata"]["name"] == "ci-controller")
            .filter(|o| {
                o["kind"]
                    .as_str()
                    .is_some_and(|k| k.ends_with("Role") || k.ends_with("RoleBinding"))
            })
            .map(|o| {
                let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
                (text(&o["kind"]), text(&o["metadata"]["namespace"]))
            })
            .collect()
    };
    let namespace_arg = |objects: &[serde_json::Value]| -> Vec<String> {
        let args = controller_args(objects);
        args.into_iter()
            .filter(|a| a.starts_with("--namespace"))
            .collect()
    };
    let plain = render(&[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        controller_roles(&plain),
        [
            ("ClusterRole".to_owned(), String::new()),
            ("ClusterRoleBinding".to_owned(), String::new())
        ]
    );
    assert!(namespace_arg(&plain).is_empty());
    let namespaced = render(&["controller.namespaced=true"]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        controller_roles(&namespaced),
        [
            ("Role".to_owned(), "c8s".to_owned()),
            ("RoleBinding".to_owned(), "c8s".to_owned())
        ]
    );
    let binding = object(&namespaced, "RoleBinding", "ci-controller").expect("the binding");
    assert_eq!(binding["roleRef"]["kind"], "Role", "{binding:#}");
    assert_eq!(namespace_arg(&namespaced), ["--namespace=c8s"]);
}

/// A Concourse pipeline in the values: a ConfigMap with its text, a watcher
/// Deployment of one replica mounting it, and a Role in the release namespace
/// that reads Secrets only by the names given (none without them).
#[test]
#[ignore = "needs helm"]
fn a_concourse_pipeline_gets_a_watcher_whose_role_reads_only_the_named_secrets() {
    use serde_json::json;
    let pipeline = "concourse.pipelines.app.file=jobs: []";
    let objects = render(&[
        pipeline,
        "concourse.pipelines.app.vars.registry=ghcr.io/acme",
        "concourse.pipelines.app.secretNames={c8s-app-repo}",
        "concourse.pipelines.other.file=jobs: []",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let map = object(&objects, "ConfigMap", "ci-concourse-app").expect("the pipeline ConfigMap");
    assert_eq!(map["data"]["app.yml"], "jobs: []");
    let deployment = object(&objects, "Deployment", "ci-concourse-app").expect("the watcher");
    let spec = &deployment["spec"]["template"]["spec"];
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(spec["serviceAccountName"], "ci-concourse-app");
    assert_eq!(
        spec["containers"][0]["args"],
        json!([
            "watch",
            "/etc/c8s/concourse/app.yml",
            "--namespace=c8s",
            "--parallelism=4",
            "--var=registry=ghcr.io/acme"
        ])
    );
    assert_eq!(spec["volumes"][0]["configMap"]["name"], "ci-concourse-app");
    let secret_rules: Vec<_> = rules(&objects)
        .into_iter()
        .filter(|(.., rule)| on_secrets(rule))
        .filter(|(_, _, name, _)| name.starts_with("ci-concourse-"))
        .collect();
    assert_eq!(secret_rules.len(), 1, "{secret_rules:#?}");
    let (kind, namespace, name, rule) = &secret_rules[0];
    assert_eq!(
        (kind.as_str(), namespace.as_str(), name.as_str()),
        ("Role", "c8s", "ci-concourse-app")
    );
    assert_eq!(rule["resourceNames"], json!(["c8s-app-repo"]));
    assert_eq!(rule["verbs"], json!(["get"]));
    // Nothing cluster-wide for a watcher.
    assert!(!objects.iter().any(|o| {
        o["kind"] == "ClusterRole"
            && o["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.contains("concourse"))
    }));
    // A pipeline without its text is refused, naming the value.
    let error = render(&["concourse.pipelines.app.vars.a=b"]).expect_err("no file");
    assert!(error.contains("concourse.pipelines.app.file"), "{error}");
}

/// `controller.concoursePipelines`: the controller is given the chart's own
/// image for the watchers, and may watch ConcoursePipelines, write their
/// status and apply Deployments and ConfigMaps; without it, none of that.
#[test]
#[ignore = "needs helm"]
fn concourse_pipelines_give_the_controller_the_image_and_the_rights_of_their_watchers() {
    let on_concourse = |objects: &[serde_json::Value]| -> Vec<String> {
        rules(objects)
            .into_iter()
            .filter(|(_, _, name, _)| name == "ci-controller")
            .flat_map(|(_, _, _, rule)| rule["resources"].as_array().cloned().unwrap_or_default())
            .filter_map(|r| r.as_str().map(str::to_owned))
            .filter(|r| r.starts_with("concoursepipelines") || r == "deployments" || r == "configmaps")
            .collect()
    };
    let image_arg = |objects: &[serde_json::Value]| -> Vec<String> {
        controller_args(objects)
            .into_iter()
            .filter(|a| a.starts_with("--concourse-watcher-image="))
            .collect()
    };
    let plain = render(&[]).unwrap_or_else(|e| panic!("{e}"));
    assert!(on_concourse(&plain).is_empty(), "{:?}", on_concourse(&plain));
    assert!(image_arg(&plain).is_empty());
    let on =
        render(&["controller.concoursePipelines=true", "image.tag=1.2.3"]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        on_concourse(&on),
        [
            "concoursepipelines",
            "concoursepipelines/status",
            "concoursepipelines/finalizers",
            "deployments",
            "configmaps"
        ]
    );
    let arg = image_arg(&on);
    assert_eq!(arg.len(), 1, "{arg:?}");
    assert!(arg[0].ends_with(":1.2.3"), "{arg:?}");
}

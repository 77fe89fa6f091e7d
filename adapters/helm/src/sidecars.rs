//! The sidecar injection chart: values from pod-builder's sidecar containers,
//! static named templates that turn them back into containers.

use c8s_pod_builder::containers::{self, RunAs};
use c8s_pod_builder::model::layout::helper_resources;
use c8s_pod_builder::model::sidecar::{SidecarConfig, validate_sidecars};
use c8s_pod_builder::{RunContext, SecurityProfile, SidecarMode, names};
use k8s_openapi::api::core::v1 as core;
use serde::Serialize;

use crate::chart::{Chart, chart_yaml, check_chart_name};
use crate::{Error, yaml};

const HELPERS: &str = include_str!("templates/_helpers.tpl");
const CONTAINER: &str = include_str!("templates/_container.tpl");
const EXAMPLE: &str = include_str!("templates/example-deployment.yaml");
const NOTES: &str = include_str!("templates/NOTES.txt");
const VALUES_HEADER: &str = include_str!("templates/sidecar-values-header.txt");

/// Image of the example workload's `app` container.
const EXAMPLE_IMAGE: &str = "busybox:1.37.0";

/// Splits an image reference into repository, tag and digest (each possibly
/// empty) such that `repository[:tag][@digest]` gives it back.
///
/// ```
/// use c8s_helm::split_image;
/// assert_eq!(split_image("postgres:16"), ("postgres", "16", ""));
/// assert_eq!(split_image("localhost:5000/mock"), ("localhost:5000/mock", "", ""));
/// assert_eq!(split_image("ghcr.io/o/m:1@sha256:ab"), ("ghcr.io/o/m", "1", "sha256:ab"));
/// ```
pub fn split_image(image: &str) -> (&str, &str, &str) {
    let (rest, digest) = image.split_once('@').unwrap_or((image, ""));
    let name_start = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[name_start..].rfind(':') {
        Some(i) => (&rest[..name_start + i], &rest[name_start + i + 1..], digest),
        None => (rest, "", digest),
    }
}

/// `sidecars.<name>.image`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageValues<'a> {
    repository: &'a str,
    tag: &'a str,
    digest: &'a str,
    pull_policy: String,
}

/// `sidecars.<name>`: one container's settings, as pod-builder shapes them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SidecarValues<'a> {
    enabled: bool,
    image: ImageValues<'a>,
    command: Vec<String>,
    args: Vec<String>,
    working_dir: String,
    env: Vec<core::EnvVar>,
    ports: Vec<core::ContainerPort>,
    resources: core::ResourceRequirements,
    probe: serde_json::Value,
    readiness_probe: serde_json::Value,
    liveness_probe: serde_json::Value,
    hostnames: Vec<String>,
    security_context: Option<core::SecurityContext>,
    volume_mounts: Vec<core::VolumeMount>,
    volumes: Vec<core::Volume>,
}

/// `example`: the workload that shows the injection.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExampleValues {
    enabled: bool,
    replicas: u32,
    pod_security_context: core::PodSecurityContext,
    container: core::Container,
}

/// Builds the sidecar injection chart `name` for `sidecars` (in order).
///
/// The sidecars are validated as one pod's sidecars (unique names and ports).
/// Each container is pod-builder's own sidecar container (restricted security
/// profile) without the pipeline workspace mounts, plus its scratch emptyDirs,
/// which `{{ include "<chart>.volumes" . }}` declares in the workload.
pub fn sidecar_chart(name: &str, sidecars: &[SidecarConfig]) -> Result<Chart, Error> {
    check_chart_name(name)?;
    if sidecars.is_empty() {
        return Err(Error::NoSidecars);
    }
    validate_sidecars(sidecars).map_err(Error::InvalidSidecars)?;
    let ctx = RunContext::new("helm", 0);

    let mut values = yaml::comment(VALUES_HEADER, 0);
    values.push_str("\n# Native sidecars (Kubernetes >= 1.29): include under initContainers; each gets\n");
    values.push_str("# restartPolicy: Always, its probe as a startupProbe and readinessProbe beside it.\n");
    values.push_str("# false: include under containers; the probe becomes the readinessProbe.\n");
    values.push_str("# livenessProbe (if set) restarts a hung service in both modes.\n");
    values.push_str("nativeSidecars: true\n\n");
    values.push_str("# One entry per sidecar, in the order of the sidecar files.\n");
    values.push_str("sidecars:\n");
    for sidecar in sidecars {
        values.push_str(&yaml::comment(&format!("{}: {}", sidecar.name, sidecar.image), 2));
        let entry = sidecar_values(sidecar, &ctx)?;
        values.push_str(&yaml::entry(&sidecar.name, &entry, 2)?);
    }
    values.push_str("\n# A Deployment that shows the injection: helm template --set example.enabled=true\n");
    values.push_str(&yaml::entry("example", &example_values(&ctx), 0)?);

    let sidecar_names: Vec<&str> = sidecars.iter().map(|s| s.name.as_str()).collect();
    let description = format!("Sidecars injected by c8s: {}", sidecar_names.join(", "));
    let mut chart = Chart::new(name);
    chart.add("Chart.yaml", chart_yaml(name, &description));
    chart.add("values.yaml", values);
    chart.add("templates/_helpers.tpl", HELPERS.replace("__CHART__", name));
    chart.add("templates/_sidecars.tpl", sidecars_tpl(name, &sidecar_names));
    chart.add(
        "templates/example-deployment.yaml",
        EXAMPLE.replace("__CHART__", name),
    );
    chart.add("templates/NOTES.txt", NOTES.replace("__CHART__", name));
    Ok(chart)
}

fn sidecar_values<'a>(sidecar: &'a SidecarConfig, ctx: &RunContext) -> Result<SidecarValues<'a>, Error> {
    let scratch: Vec<String> = (0..sidecar.scratch.len())
        .map(|i| names::scratch_volume_name(&sidecar.name, i))
        .collect();
    let container = containers::sidecar(sidecar, ctx, SidecarMode::Native, Vec::new(), &scratch);
    let as_value = |probe: &Option<core::Probe>| match probe {
        Some(probe) => serde_json::to_value(probe).map_err(|e| {
            Error::Serialize(c8s_pod_builder::Error::Serialize {
                format: "json",
                reason: e.to_string(),
            })
        }),
        None => Ok(serde_json::Value::Object(serde_json::Map::new())),
    };
    let probe = as_value(&container.startup_probe)?;
    let readiness_probe = as_value(&container.readiness_probe)?;
    let liveness_probe = as_value(&container.liveness_probe)?;
    let (repository, tag, digest) = split_image(&sidecar.image);
    Ok(SidecarValues {
        enabled: true,
        image: ImageValues {
            repository,
            tag,
            digest,
            pull_policy: container.image_pull_policy.unwrap_or_default(),
        },
        command: container.command.unwrap_or_default(),
        args: container.args.unwrap_or_default(),
        working_dir: container.working_dir.unwrap_or_default(),
        env: container.env.unwrap_or_default(),
        ports: container.ports.unwrap_or_default(),
        resources: container.resources.unwrap_or_default(),
        probe,
        readiness_probe,
        liveness_probe,
        hostnames: c8s_pod_builder::model::sidecar::aliases::service_names(sidecar)
            .map(str::to_owned)
            .collect(),
        security_context: container.security_context,
        volume_mounts: container.volume_mounts.unwrap_or_default(),
        volumes: scratch
            .into_iter()
            .map(|name| core::Volume {
                name,
                empty_dir: Some(Default::default()),
                ..Default::default()
            })
            .collect(),
    })
}

fn example_values(ctx: &RunContext) -> ExampleValues {
    ExampleValues {
        enabled: false,
        replicas: 1,
        pod_security_context: containers::pod_security_context(ctx),
        container: core::Container {
            name: "app".to_owned(),
            image: Some(EXAMPLE_IMAGE.to_owned()),
            image_pull_policy: Some("IfNotPresent".to_owned()),
            command: Some(vec![
                "sh".to_owned(),
                "-c".to_owned(),
                "echo 'the app runs beside its sidecars'; exec sleep 2147483647".to_owned(),
            ]),
            resources: containers::resources(helper_resources()),
            security_context: Some(containers::security_context(
                SecurityProfile::Restricted,
                RunAs {
                    user: None,
                    root: false,
                },
            )),
            ..Default::default()
        },
    }
}

/// `_sidecars.tpl`: one named template per sidecar, one for all, one for their
/// volumes. Sidecar names are validated DNS-1123 labels, safe inside quotes.
fn sidecars_tpl(chart: &str, sidecars: &[&str]) -> String {
    let mut out = CONTAINER.replace("__CHART__", chart);
    for name in sidecars {
        out.push_str(&format!(
            "\n{{{{/* Sidecar {name}: nothing when sidecars.{name}.enabled is false. */}}}}\n\
             {{{{- define \"{chart}.sidecar.{name}\" -}}}}\n\
             {{{{- $values := index (.Values.sidecars | default dict) \"{name}\" -}}}}\n\
             {{{{- if and $values $values.enabled -}}}}\n\
             {{{{- include \"{chart}.sidecarContainer\" (dict \"name\" \"{name}\" \"values\" $values \"native\" .Values.nativeSidecars) -}}}}\n\
             {{{{- end -}}}}\n\
             {{{{- end -}}}}\n"
        ));
    }
    let quoted: Vec<String> = sidecars.iter().map(|n| format!("\"{n}\"")).collect();
    out.push_str(&format!(
        "\n{{{{/* Every enabled sidecar, in file order: a YAML list (or nothing). */}}}}\n\
         {{{{- define \"{chart}.sidecars\" -}}}}\n\
         {{{{- $items := list -}}}}\n"
    ));
    for name in sidecars {
        out.push_str(&format!(
            "{{{{- with include \"{chart}.sidecar.{name}\" . }}}}{{{{ $items = append $items . }}}}{{{{ end -}}}}\n"
        ));
    }
    out.push_str("{{- join \"\\n\" $items -}}\n{{- end -}}\n");
    out.push_str(&format!(
        "\n{{{{/* The names and aliases of every enabled sidecar as one 127.0.0.1 hostAliases entry: a YAML list (or nothing). */}}}}\n\
         {{{{- define \"{chart}.hostAliases\" -}}}}\n\
         {{{{- $names := list -}}}}\n\
         {{{{- range $name := list {} }}}}\n\
         {{{{- $values := index ($.Values.sidecars | default dict) $name }}}}\n\
         {{{{- if and $values $values.enabled }}}}{{{{ range $values.hostnames }}}}{{{{ $names = append $names . }}}}{{{{ end }}}}{{{{ end }}}}\n\
         {{{{- end }}}}\n\
         {{{{- with $names }}}}{{{{ toYaml (list (dict \"ip\" \"127.0.0.1\" \"hostnames\" .)) }}}}{{{{ end -}}}}\n\
         {{{{- end -}}}}\n",
        quoted.join(" ")
    ));
    out.push_str(&format!(
        "\n{{{{/* The scratch emptyDirs of every enabled sidecar: a YAML list (or nothing) for the pod's volumes. */}}}}\n\
         {{{{- define \"{chart}.volumes\" -}}}}\n\
         {{{{- $volumes := list -}}}}\n\
         {{{{- range $name := list {} }}}}\n\
         {{{{- $values := index ($.Values.sidecars | default dict) $name }}}}\n\
         {{{{- if and $values $values.enabled }}}}{{{{ range $values.volumes }}}}{{{{ $volumes = append $volumes . }}}}{{{{ end }}}}{{{{ end }}}}\n\
         {{{{- end }}}}\n\
         {{{{- with $volumes }}}}{{{{ toYaml . }}}}{{{{ end -}}}}\n\
         {{{{- end -}}}}\n",
        quoted.join(" ")
    ));
    out
}

//! Helm charts from c8s sidecars and pipelines.
//!
//! ```
//! use c8s_helm::sidecar_chart;
//! use c8s_helm::pod_builder::model::sidecar::{parse_sidecars, EnvVar};
//!
//! let mut sidecars = parse_sidecars(
//!     "ci/pg.yml",
//!     "- name: postgres\n  image: postgres:16\n  ports: [{ containerPort: 5432 }]\n",
//! )?;
//! // A value that looks like template code stays data: it is only ever emitted with `toYaml`.
//! sidecars[0].env.push(EnvVar::value("GREETING", "{{ .Release.Name }}"));
//! let chart = sidecar_chart("ci-services", &sidecars)?;
//! let templates = chart.file("templates/_sidecars.tpl").unwrap_or_default();
//! assert!(templates.contains(r#"{{- define "ci-services.sidecar.postgres" -}}"#));
//! // The value is in values.yaml, as data; no template mentions it.
//! assert!(chart.file("values.yaml").unwrap_or_default().contains("{{ .Release.Name }}"));
//! assert!(!templates.contains(".Release.Name"));
//! // chart.write_to(std::path::Path::new("charts/ci-services"))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Two charts:
//!
//! - [`sidecar_chart`]: a library-style chart whose named templates inject
//!   sidecars into any workload — `{{ include "<chart>.sidecars" . | nindent 8 }}`
//!   under `initContainers:` (native sidecars, the default) or `containers:`
//!   (`nativeSidecars: false`). Every setting (image, env, resources, probe,
//!   ports, security context, scratch volumes) is a value; the containers are
//!   built by pod-builder ([`c8s_pod_builder::containers::sidecar`]), so they
//!   have the same shape as in the pods `c8s render` prints.
//! - [`pipeline_chart`]: a chart whose templates render a run's Pods or Jobs.
//!   The objects pod-builder rendered are data in `values.yaml`; a static
//!   template applies the overrides (namespace, commit, sidecar mode, per-step
//!   images) to a deep copy and emits it with `toYaml`. With default values,
//!   `helm template` equals `c8s render`, object for object.
//!
//! Template text is static: values only ever pass through `toYaml` (never
//! `tpl`), so a value containing `{{ }}` is emitted as that literal text. The
//! only generated words in templates are the chart name and sidecar names,
//! both checked to be DNS-1123 labels. Secret env vars stay `secretKeyRef`
//! references; no secret value is ever written.
//!
//! Unlike the core crates this adapter may write files: [`Chart::write_to`].

mod chart;
mod error;
mod pipeline;
mod sidecars;
mod yaml;

pub use c8s_pod_builder as pod_builder;
pub use chart::Chart;
pub use error::Error;
pub use pipeline::pipeline_chart;
pub use sidecars::{sidecar_chart, split_image};

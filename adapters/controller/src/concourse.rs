//! [`ConcoursePipeline`]s: each is kept watched by one `c8s watch`, the
//! command that checks a Concourse pipeline's resources and runs the builds
//! their new versions trigger. The controller owns no Concourse logic of its
//! own: for each pipeline it applies a ConfigMap holding the text and a
//! one-replica Deployment running `c8s watch` on it as the pipeline's
//! ServiceAccount, both owned by the pipeline (so deleting it deletes them,
//! by garbage collection), and says in the status whether the text is a
//! pipeline c8s can run.
//!
//! As `fly set-pipeline` refuses a pipeline that does not validate and
//! Concourse goes on running the one it had, an invalid text leaves the
//! watcher of the last valid one running and marks the pipeline `Ready`
//! `False` with the located errors.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::crd::{ConcoursePipeline, ConcoursePipelineStatus, Condition};
use crate::error::Error;
use crate::settings::FIELD_MANAGER;
pub use crate::settings::WatcherSettings;

/// Where the watcher's pod finds the pipeline's text.
pub const PIPELINE_DIR: &str = "/etc/c8s/concourse";
/// The ConfigMap key (and file name) of pipeline `name`'s text, `NAME.yml`:
/// `c8s watch` names the pods of its checks and builds after the file's
/// stem, as the chart's own watchers are named after their pipelines.
pub fn pipeline_file(name: &str) -> String {
    format!("{name}.yml")
}
/// The label that ties a watcher's Deployment, pods and ConfigMap to its
/// pipeline.
pub const PIPELINE_LABEL: &str = "c8s.dev/concourse-pipeline";
/// The annotation on the watcher's pod template that changes with the text
/// and the args, so that an edited pipeline rolls its watcher.
pub const CHECKSUM_ANNOTATION: &str = "c8s.dev/pipeline-sha256";

/// The name of the watcher's Deployment and ConfigMap for pipeline `name`:
/// a valid label value (so also a valid object name), hashed when `name` is
/// too long.
pub fn watcher_name(name: &str) -> String {
    c8s_pod_builder::names::label_value(&format!("concourse-{name}"))
}

/// Checks the pipeline's text as `c8s watch` reads it (task files are read
/// from their artifacts when a build runs, so none is read here): the
/// located errors, one per line, when it is not a pipeline c8s can run.
pub fn validate(pipeline: &ConcoursePipeline) -> Result<(), String> {
    let mut vars = c8s_pipeline_model::Vars::new();
    for (name, value) in &pipeline.spec.vars {
        vars.set(name, value);
    }
    let file = pipeline_file(&pipeline.name_any());
    c8s_pipeline_model::concourse::parse_concourse_pipeline(
        &file,
        &pipeline.spec.pipeline,
        &vars,
        &c8s_pipeline_model::MemorySource::new(),
    )
    .map(|_| ())
    .map_err(|errors| errors.to_string())
}

/// The watcher's ConfigMap and Deployment for `pipeline` in `namespace`,
/// each owned by it.
pub fn watcher_objects(
    pipeline: &ConcoursePipeline,
    namespace: &str,
    settings: &WatcherSettings,
) -> (ConfigMap, Deployment) {
    let name = pipeline.name_any();
    let watcher = watcher_name(&name);
    // None only for an object that is not from the API server (no uid).
    let owner: Vec<_> = crate::steps::owner_of(pipeline).into_iter().collect();
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "c8s".to_owned()),
        ("app.kubernetes.io/component".to_owned(), "concourse".to_owned()),
        (PIPELINE_LABEL.to_owned(), watcher.clone()),
    ]);
    let map: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": watcher,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": owner,
        },
        "data": { pipeline_file(&name): pipeline.spec.pipeline },
    }))
    .unwrap_or_default();
    let args = watch_args(pipeline, namespace, settings);
    let checksum = checksum(&pipeline.spec.pipeline, &args);
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": watcher,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": owner,
        },
        "spec": {
            // One watcher: two would be safe (a build is claimed with the
            // history's resourceVersion) but would check every resource twice.
            "replicas": 1,
            "strategy": { "type": "Recreate" },
            "selector": { "matchLabels": { PIPELINE_LABEL: watcher } },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": { CHECKSUM_ANNOTATION: checksum },
                },
                "spec": {
                    "serviceAccountName": pipeline.spec.service_account_name,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "seccompProfile": { "type": "RuntimeDefault" },
                    },
                    "containers": [{
                        "name": "watch",
                        "image": settings.image,
                        "args": args,
                        "volumeMounts": [{
                            "name": "pipeline",
                            "mountPath": PIPELINE_DIR,
                            "readOnly": true,
                        }],
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": { "drop": ["ALL"] },
                        },
                        "resources": {
                            "requests": { "cpu": "20m", "memory": "32Mi" },
                            "limits": { "memory": "128Mi" },
                        },
                    }],
                    "volumes": [{ "name": "pipeline", "configMap": { "name": watcher } }],
                },
            },
        },
    }))
    .unwrap_or_default();
    (map, deployment)
}

/// `c8s watch`'s arguments for `pipeline`: the mounted text, its namespace,
/// its name (which keys its version history) and its vars.
fn watch_args(pipeline: &ConcoursePipeline, namespace: &str, settings: &WatcherSettings) -> Vec<String> {
    let parallelism = pipeline.spec.parallelism.unwrap_or(settings.default_parallelism);
    let mut args = vec![
        "watch".to_owned(),
        format!("{PIPELINE_DIR}/{}", pipeline_file(&pipeline.name_any())),
        format!("--namespace={namespace}"),
        format!("--pipeline-name={}", pipeline.name_any()),
        format!("--parallelism={parallelism}"),
    ];
    args.extend(pipeline.spec.vars.iter().map(|(k, v)| format!("--var={k}={v}")));
    args
}

/// SHA-256 over the text and the args, each length-prefixed.
fn checksum(text: &str, args: &[String]) -> String {
    let mut hash = Sha256::new();
    for part in std::iter::once(text).chain(args.iter().map(String::as_str)) {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The status `pipeline` should have: `Ready` as the check of its text
/// says, keeping the transition time of a condition whose status did not
/// change.
pub fn status_for(
    pipeline: &ConcoursePipeline,
    checked: &Result<(), String>,
    now: k8s_openapi::jiff::Timestamp,
) -> ConcoursePipelineStatus {
    let before = pipeline.status.clone().unwrap_or_default();
    let (value, reason, message) = match checked {
        Ok(()) => ("True", "WatcherApplied", "c8s watch runs the pipeline".to_owned()),
        Err(errors) => ("False", "InvalidPipeline", errors.clone()),
    };
    let since = before
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == value)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    let generation = pipeline.metadata.generation;
    ConcoursePipelineStatus {
        conditions: vec![Condition {
            type_: "Ready".to_owned(),
            status: value.to_owned(),
            reason: reason.to_owned(),
            message,
            last_transition_time: since,
            observed_generation: generation,
        }],
        // The watcher of the last valid text keeps running.
        watcher: match checked {
            Ok(()) => Some(watcher_name(&pipeline.name_any())),
            Err(_) => before.watcher,
        },
        observed_generation: generation,
    }
}

/// What each reconcile shares.
struct Context {
    client: Client,
    settings: WatcherSettings,
}

/// One reconcile: check the text; when it is valid apply the watcher's
/// ConfigMap and Deployment; write the status when it changed.
async fn reconcile(pipeline: Arc<ConcoursePipeline>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = pipeline.namespace().unwrap_or_default();
    let name = pipeline.name_any();
    let checked = validate(&pipeline);
    if checked.is_ok() {
        let (map, deployment) = watcher_objects(&pipeline, &namespace, &ctx.settings);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let watcher = watcher_name(&name);
        Api::<ConfigMap>::namespaced(ctx.client.clone(), &namespace)
            .patch(&watcher, &params, &Patch::Apply(&map))
            .await?;
        Api::<Deployment>::namespaced(ctx.client.clone(), &namespace)
            .patch(&watcher, &params, &Patch::Apply(&deployment))
            .await?;
    }
    let status = status_for(&pipeline, &checked, k8s_openapi::jiff::Timestamp::now());
    if pipeline.status.as_ref() != Some(&status) {
        let patch = json!({
            "apiVersion": ConcoursePipeline::api_version(&()),
            "kind": ConcoursePipeline::kind(&()),
            "status": status,
        });
        Api::<ConcoursePipeline>::namespaced(ctx.client.clone(), &namespace)
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
    }
    Ok(Action::await_change())
}

/// Tries again after a failed reconcile (a refused apply, an API server
/// that did not answer).
fn error_policy(pipeline: Arc<ConcoursePipeline>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(pipeline = %pipeline.name_any(), "concourse pipeline: {error}");
    Action::requeue(Duration::from_secs(10))
}

/// Keeps a watcher for every ConcoursePipeline of `namespace` (every
/// namespace when `None`) until the stream of reconciles ends; a deleted
/// or edited Deployment is put back as its pipeline says.
pub async fn run(client: Client, namespace: Option<&str>, settings: WatcherSettings) {
    let (pipelines, deployments) = match namespace {
        Some(ns) => (
            Api::<ConcoursePipeline>::namespaced(client.clone(), ns),
            Api::<Deployment>::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let owned = watcher::Config::default().labels(PIPELINE_LABEL);
    let context = Arc::new(Context { client, settings });
    Controller::new(pipelines, watcher::Config::default())
        .owns(deployments, owned)
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!("concourse pipeline reconcile: {e}");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ConcoursePipelineSpec;

    const PIPELINE: &str = "\
resources:
- name: repo
  type: git
  source: { uri: https://github.com/example/app.git }
jobs:
- name: build
  plan:
  - get: repo
    trigger: true
";

    fn pipeline(text: &str) -> ConcoursePipeline {
        let mut pipeline = ConcoursePipeline::new(
            "app",
            ConcoursePipelineSpec {
                pipeline: text.to_owned(),
                service_account_name: "watcher".to_owned(),
                vars: BTreeMap::from([("registry".to_owned(), "ghcr.io/acme".to_owned())]),
                parallelism: None,
            },
        );
        pipeline.metadata.uid = Some("u-1".to_owned());
        pipeline.metadata.generation = Some(3);
        pipeline
    }

    fn settings() -> WatcherSettings {
        WatcherSettings {
            image: "ghcr.io/c8s/c8s:1".to_owned(),
            default_parallelism: 4,
        }
    }

    #[test]
    fn the_watcher_runs_c8s_watch_on_the_mounted_text_as_the_pipelines_account_owned_by_it() {
        let (map, deployment) = watcher_objects(&pipeline(PIPELINE), "ci", &settings());
        assert_eq!(map.metadata.name.as_deref(), Some("concourse-app"));
        assert_eq!(
            map.data
                .as_ref()
                .and_then(|d| d.get("app.yml"))
                .map(String::as_str),
            Some(PIPELINE)
        );
        let owners = deployment.metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(owners.len(), 1);
        assert_eq!(
            (
                owners[0].kind.as_str(),
                owners[0].uid.as_str(),
                owners[0].controller
            ),
            ("ConcoursePipeline", "u-1", Some(true))
        );
        let spec = deployment.spec.template.spec.unwrap_or_default();
        assert_eq!(spec.service_account_name.as_deref(), Some("watcher"));
        assert_eq!(
            spec.containers[0].args.clone().unwrap_or_default(),
            [
                "watch",
                "/etc/c8s/concourse/app.yml",
                "--namespace=ci",
                "--pipeline-name=app",
                "--parallelism=4",
                "--var=registry=ghcr.io/acme",
            ]
        );
    }

    #[test]
    fn an_edited_text_changes_the_pod_templates_checksum_so_the_watcher_rolls() {
        let annotation = |text: &str| {
            let (_, deployment) = watcher_objects(&pipeline(text), "ci", &settings());
            deployment
                .spec
                .template
                .metadata
                .and_then(|m| m.annotations)
                .and_then(|a| a.get(CHECKSUM_ANNOTATION).cloned())
        };
        let first = annotation(PIPELINE);
        assert!(first.is_some());
        assert_eq!(first, annotation(PIPELINE));
        assert_ne!(first, annotation(&PIPELINE.replace("app.git", "api.git")));
    }

    #[test]
    fn an_invalid_text_is_not_ready_with_the_located_error_and_keeps_the_last_watcher() {
        let now = k8s_openapi::jiff::Timestamp::UNIX_EPOCH;
        let mut valid = pipeline(PIPELINE);
        let ready = status_for(&valid, &validate(&valid), now);
        assert_eq!(ready.watcher.as_deref(), Some("concourse-app"));
        assert_eq!(ready.conditions[0].status, "True");
        valid.status = Some(ready);
        let mut invalid = valid.clone();
        invalid.spec.pipeline = PIPELINE.replace("  - get: repo", "  - get: nothing");
        let checked = validate(&invalid);
        let message = checked.clone().err().unwrap_or_default();
        assert!(message.contains("app.yml:8:"), "{message}");
        let status = status_for(&invalid, &checked, now);
        assert_eq!(
            (
                status.conditions[0].status.as_str(),
                status.conditions[0].reason.as_str()
            ),
            ("False", "InvalidPipeline")
        );
        assert_eq!(status.watcher.as_deref(), Some("concourse-app"));
    }

    #[test]
    fn a_long_name_makes_a_valid_watcher_name() {
        let name = watcher_name(&"a".repeat(200));
        assert!(name.len() <= 63, "{name}");
        assert_eq!(c8s_pod_builder::names::label_value(&name), name);
    }
}

//! The log archive in the controller: when a step ends for good (Succeeded,
//! or Failed with no retry left), its latest attempt's logs are read from
//! its pod through the API server's `pods/log`, masked with the values of
//! every Secret the pod can see, and stored in the archive; the step's
//! status records each object (`archivedLogs`) or why its logs are not
//! there (`logArchiveError`). It runs after the reconcile decided and
//! started what comes next, so no step waits for an upload; a failure to
//! archive never changes a step's or the run's result.
//!
//! - `main`'s log is always stored; on a failure, the pod's other
//!   containers' too (init containers, native sidecars, the helper), as
//!   `c8s run` shows them.
//! - Logs that cannot be masked (a Secret the pod references cannot be
//!   read, a value too short to mask) are never uploaded.
//! - Steps are archived once: a step whose status already names its logs,
//!   or an error, is left alone, so a reconcile that runs again (a restart,
//!   a conflict) does not upload twice — and one cut before its status was
//!   written stores the same objects again under the same keys.
//! - Earlier attempts of a retried step are not archived: their pods are
//!   deleted when the retry is decided.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use c8s_kube::archive::{Archive, LogKey};
use c8s_kube::{Cluster, ObjectRef, StepObject};
use c8s_pipeline_model::SecretMasker;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{PodSpec, Secret};

use crate::crd::{ArchivedLogStatus, PipelineRunStatus, StepPhase, StepRunStatus};
use crate::steps::RunSteps;

/// How long reading one container's log may take (a stream that never ends
/// — a container still running — is cut, and what was read is stored).
const LOG_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the controller archives step logs: an [`Archive`], equal to another
/// when both store in the same place.
#[derive(Clone, Debug)]
pub struct LogArchive(pub Archive);

impl PartialEq for LogArchive {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0.settings(), other.0.settings());
        (&a.endpoint, &a.bucket, &a.prefix, &a.region, a.path_style)
            == (&b.endpoint, &b.bucket, &b.prefix, &b.region, b.path_style)
    }
}

impl Eq for LogArchive {}

/// Reads the Secrets of a run's namespace.
pub trait SecretSource: Sync {
    /// The data of Secret `name`, or why it cannot be read.
    fn secret(&self, name: &str) -> impl Future<Output = Result<BTreeMap<String, Vec<u8>>, String>> + Send;
}

/// The Secrets of one namespace, read from the API server.
pub struct KubeSecrets {
    api: kube::Api<Secret>,
}

impl KubeSecrets {
    /// The Secrets of `namespace`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        KubeSecrets {
            api: kube::Api::namespaced(client, namespace),
        }
    }
}

impl SecretSource for KubeSecrets {
    async fn secret(&self, name: &str) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let secret = self
            .api
            .get(name)
            .await
            .map_err(|e| format!("cannot read Secret {name:?} to mask its values: {e}"))?;
        Ok(secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| (key, value.0))
            .collect())
    }
}

/// The Secrets (and keys; `None`: every key) the pod spec makes visible to
/// its containers: env `secretKeyRef`s, `envFrom` `secretRef`s and secret
/// volumes (projected ones too).
pub fn visible_secrets(spec: &PodSpec) -> BTreeMap<String, Option<BTreeSet<String>>> {
    let mut out: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
    let mut whole = |name: &str| {
        out.insert(name.to_owned(), None);
    };
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut keys: Vec<(String, String)> = Vec::new();
    for container in containers {
        for env in container.env.iter().flatten() {
            if let Some(r) = env.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()) {
                keys.push((r.name.clone(), r.key.clone()));
            }
        }
        for from in container.env_from.iter().flatten() {
            if let Some(r) = &from.secret_ref {
                whole(&r.name);
            }
        }
    }
    for volume in spec.volumes.iter().flatten() {
        if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.as_deref()) {
            whole(name);
        }
        let projected = volume.projected.as_ref().and_then(|p| p.sources.as_ref());
        for source in projected.into_iter().flatten() {
            if let Some(s) = &source.secret {
                whole(&s.name);
            }
        }
    }
    for (name, key) in keys {
        if let Some(set) = out.entry(name).or_insert_with(|| Some(BTreeSet::new())) {
            set.insert(key);
        }
    }
    out
}

/// The masker of every value the secrets of `spec` hold, as `secrets` reads them.
pub(crate) async fn masker_for(spec: &PodSpec, secrets: &impl SecretSource) -> Result<SecretMasker, String> {
    let mut values: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, keys) in visible_secrets(spec) {
        let data = secrets.secret(&name).await?;
        for (key, value) in data {
            if keys.as_ref().is_none_or(|k| k.contains(&key)) {
                values.push((format!("Secret {name}, key {key}"), value));
            }
        }
    }
    SecretMasker::named(values).map_err(|e| e.to_string())
}

/// The pod spec of a rendered step.
fn pod_spec(object: &StepObject) -> Option<&PodSpec> {
    match object {
        StepObject::Pod(pod) => pod.spec.as_ref(),
        StepObject::Job(job) => job.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
    }
}

/// Whether `step` ended for good and its logs were not archived yet.
fn needs_archive(step: &StepRunStatus) -> bool {
    matches!(step.phase, StepPhase::Succeeded | StepPhase::Failed)
        && step.pod.is_some()
        && step.archived_logs.is_empty()
        && step.log_archive_error.is_none()
}

/// Archives the logs of every step of `status` that ended for good and has
/// none recorded (a Succeeded or Failed step with a pod, no `archivedLogs`
/// and no `logArchiveError`), recording each on its step.
pub async fn archive_ended_steps<C: Cluster>(
    cluster: &C,
    secrets: &impl SecretSource,
    archive: &Archive,
    (namespace, run): (&str, &str),
    steps: &RunSteps,
    status: &mut PipelineRunStatus,
) {
    for step in status.steps.iter_mut().filter(|s| needs_archive(s)) {
        let Some(spec) = steps
            .steps
            .iter()
            .find(|s| s.name == step.name)
            .and_then(|s| pod_spec(&s.object))
        else {
            continue;
        };
        let (logs, errors) = archive_step(cluster, secrets, archive, (namespace, run), step, spec).await;
        step.archived_logs = logs;
        if !errors.is_empty() {
            step.log_archive_error = Some(errors.join("; "));
        }
    }
}

/// One ended step's logs: stored ones, and what went wrong.
async fn archive_step<C: Cluster>(
    cluster: &C,
    secrets: &impl SecretSource,
    archive: &Archive,
    (namespace, run): (&str, &str),
    step: &StepRunStatus,
    spec: &PodSpec,
) -> (Vec<ArchivedLogStatus>, Vec<String>) {
    let masker = match masker_for(spec, secrets).await {
        Ok(masker) => masker,
        Err(reason) => return (Vec::new(), vec![format!("logs not archived: {reason}")]),
    };
    let Some(pod) = &step.pod else {
        return (Vec::new(), Vec::new());
    };
    let object = ObjectRef::new(c8s_kube::ObjectKind::Pod, pod);
    let mut containers = vec![c8s_kube::MAIN_CONTAINER.to_owned()];
    if step.phase == StepPhase::Failed {
        let names = spec.init_containers.iter().flatten().chain(&spec.containers);
        containers.extend(
            names
                .map(|c| c.name.clone())
                .filter(|n| n != c8s_kube::MAIN_CONTAINER),
        );
    }
    let (mut logs, mut errors) = (Vec::new(), Vec::new());
    for container in containers {
        let raw = match read_log(cluster, &object, &container).await {
            Ok(raw) => raw,
            Err(e) if container == c8s_kube::MAIN_CONTAINER => {
                errors.push(format!("log of {container} not read: {e}"));
                continue;
            }
            // A container that never started has no log.
            Err(_) => continue,
        };
        if raw.is_empty() && container != c8s_kube::MAIN_CONTAINER {
            continue;
        }
        let key = LogKey::new(namespace, run, &step.name, step.attempt, &container);
        match archive.upload_masked(&key, &raw, masker.clone()).await {
            Ok(stored) => logs.push(ArchivedLogStatus {
                attempt: step.attempt,
                container,
                key: stored.key,
                url: stored.url,
                bytes: stored.size,
            }),
            Err(e) => {
                tracing::warn!(step = %step.name, container, error = %e, "log not archived");
                errors.push(format!("log of {container} not archived: {e}"));
                // The same cause (bucket, credentials, masking) holds for the rest.
                break;
            }
        }
    }
    (logs, errors)
}

/// The whole log of `container` of `object`, unmasked (at most 30 s of
/// reading: what a container still running printed by then).
///
/// # Errors
///
/// The API server's answer when the log cannot be read.
pub async fn read_log<C: Cluster>(
    cluster: &C,
    object: &ObjectRef,
    container: &str,
) -> c8s_kube::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let read = async {
        let mut stream = cluster.logs(object, container).await?;
        while let Some(chunk) = stream.next().await {
            raw.extend_from_slice(&chunk?);
        }
        Ok::<(), c8s_kube::Error>(())
    };
    match tokio::time::timeout(LOG_READ_TIMEOUT, read).await {
        Ok(Err(e)) => Err(e),
        Ok(Ok(())) | Err(_) => Ok(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, EnvFromSource, EnvVar, EnvVarSource, SecretEnvSource, SecretKeySelector,
        SecretVolumeSource, Volume,
    };

    #[test]
    fn the_secrets_a_pod_can_see_are_its_env_refs_env_from_and_volumes() {
        let env = |name: &str, key: &str| EnvVar {
            name: "X".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: name.into(),
                    key: key.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let spec = PodSpec {
            containers: vec![Container {
                name: "main".into(),
                env: Some(vec![env("db", "password"), env("db", "user"), env("all", "k")]),
                env_from: Some(vec![EnvFromSource {
                    secret_ref: Some(SecretEnvSource {
                        name: "all".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            volumes: Some(vec![Volume {
                name: "tls".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some("tls".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let seen = visible_secrets(&spec);
        let keys = |k: &[&str]| Some(k.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>());
        assert_eq!(seen.get("db"), Some(&keys(&["password", "user"])));
        assert_eq!(seen.get("all"), Some(&None), "envFrom makes every key visible");
        assert_eq!(seen.get("tls"), Some(&None));
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn only_a_step_that_ended_for_good_and_has_no_record_is_archived() {
        let step = |phase| StepRunStatus {
            name: "unit".into(),
            phase,
            pod: Some("p".into()),
            ..StepRunStatus::default()
        };
        assert!(needs_archive(&step(StepPhase::Succeeded)));
        assert!(needs_archive(&step(StepPhase::Failed)));
        assert!(!needs_archive(&step(StepPhase::Running)));
        assert!(!needs_archive(&step(StepPhase::Skipped)));
        let mut done = step(StepPhase::Succeeded);
        done.log_archive_error = Some("logs not archived: x".into());
        assert!(!needs_archive(&done));
        let mut no_pod = step(StepPhase::Failed);
        no_pod.pod = None;
        assert!(!needs_archive(&no_pod));
    }
}

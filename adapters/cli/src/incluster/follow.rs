//! Following a run: its status with a watch, its steps' masked logs.

use std::collections::BTreeSet;
use std::time::Duration;

use c8s_controller::crd::{PipelineRun, RunPhase, StepPhase, StepRunStatus};
use c8s_kube::{KubeCluster, MAIN_CONTAINER, ObjectKind, ObjectRef, stream_masked_logs};
use c8s_pipeline_model::SecretMasker;
use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};

use super::Console;
use crate::secrets::{read_secret_values, referenced_secrets};

/// Watches run `name` until it ends and returns its phase. With `status`,
/// prints each step's phase changes on stderr; streams the masked `main` log
/// of every step (or of `only`) once it has a pod. When the Secrets the
/// pipeline references cannot be read, the logs are withheld (said once),
/// never printed unmasked.
pub async fn follow_run(
    client: Client,
    namespace: &str,
    name: &str,
    only: Option<&str>,
    status: bool,
    console: &Console,
) -> Result<RunPhase, String> {
    let api = Api::<PipelineRun>::namespaced(client.clone(), namespace);
    let mut watch = kube::runtime::watcher::watch_object(api, name)
        .default_backoff()
        .boxed();
    let cluster = KubeCluster::new(client.clone(), namespace.to_owned());
    let mut secrets: Option<Result<Vec<Vec<u8>>, String>> = None;
    let mut printed: BTreeSet<String> = BTreeSet::new();
    let mut followed: BTreeSet<(String, u32)> = BTreeSet::new();
    let mut streams = tokio::task::JoinSet::new();
    while let Some(event) = watch.next().await {
        let run = match event {
            Ok(Some(run)) => run,
            Ok(None) => return Err(format!("run {name} does not exist (or was deleted)")),
            Err(e) => {
                console.note(&format!("c8s: watching run {name}: {e}; retrying"));
                continue;
            }
        };
        let values = match &secrets {
            Some(values) => values.clone(),
            None => {
                let values = secret_values(&client, namespace, &run).await;
                if let Err(reason) = &values {
                    console.note(&format!("c8s: logs withheld: {reason}"));
                }
                secrets.insert(values).clone()
            }
        };
        let run_status = run.status.clone().unwrap_or_default();
        for step in run_status.steps.iter().filter(|s| step_wanted(s, only)) {
            let line = format!("{}: {:?} {}", step.name, step.phase, step.message);
            if status && printed.insert(line.clone()) {
                console.note(line.trim_end());
            }
            let Some(object) = step_object(step) else {
                continue;
            };
            let started = step.phase != StepPhase::Pending;
            if let (true, Ok(values)) = (started, &values)
                && followed.insert((step.name.clone(), step.attempt))
            {
                let (cluster, console) = (cluster.clone(), console.clone());
                let (values, step) = (values.clone(), step.clone());
                streams.spawn(async move { stream_step(&cluster, &object, &step, &values, &console).await });
            }
        }
        if run_status.phase.is_finished() {
            // A finished step's log ends with its container; bound the wait for the rest.
            let _ = tokio::time::timeout(Duration::from_secs(30), async {
                while streams.join_next().await.is_some() {}
            })
            .await;
            if status {
                console.out(&format!("run {name}: {:?}\n", run_status.phase));
            }
            return Ok(run_status.phase);
        }
    }
    Err(format!("the watch of run {name} ended"))
}

pub(super) fn step_wanted(step: &StepRunStatus, only: Option<&str>) -> bool {
    only.is_none_or(|s| step.name == s || step.name.contains(&format!("-{s}-")))
}

pub(super) fn step_object(step: &StepRunStatus) -> Option<ObjectRef> {
    match (&step.pod, &step.job) {
        (Some(pod), _) => Some(ObjectRef::new(ObjectKind::Pod, pod.clone())),
        (None, Some(job)) => Some(ObjectRef::new(ObjectKind::Job, job.clone())),
        (None, None) => None,
    }
}

/// Streams one step's masked `main` log; waits (up to a minute) while its
/// container has not started (the API server answers 400 until it has).
pub(super) async fn stream_step(
    cluster: &KubeCluster,
    object: &ObjectRef,
    step: &StepRunStatus,
    values: &[Vec<u8>],
    console: &Console,
) {
    for _ in 0..30 {
        let mut masker = match SecretMasker::new(values.iter()) {
            Ok(masker) => masker,
            Err(e) => return console.note(&format!("{}: logs withheld: {e}", step.name)),
        };
        let streamed = stream_masked_logs(
            cluster,
            object,
            MAIN_CONTAINER,
            &mut masker,
            console,
            &step.name,
            step.attempt,
        )
        .await;
        console.finish(&step.name, step.attempt, MAIN_CONTAINER);
        match streamed {
            Err(e) if e.code() == Some(400) => tokio::time::sleep(Duration::from_secs(2)).await,
            Err(e) => return console.note(&format!("{}: {e}", step.name)),
            Ok(_) => return,
        }
    }
    console.note(&format!("{}: its container did not start", step.name));
}

/// The values of every Secret key the run's pipeline references.
pub(super) async fn secret_values(
    client: &Client,
    namespace: &str,
    run: &PipelineRun,
) -> Result<Vec<Vec<u8>>, String> {
    let pipeline = match (&run.spec.pipeline, &run.spec.pipeline_ref) {
        (Some(p), _) => p.clone(),
        (None, Some(name)) => {
            let api = Api::<c8s_controller::crd::Pipeline>::namespaced(client.clone(), namespace);
            api.get(name)
                .await
                .map_err(|e| format!("cannot read pipeline {name}: {e}"))?
                .spec
                .pipeline
        }
        (None, None) => return Ok(Vec::new()),
    };
    let branch = Some(run.spec.branch.as_str()).filter(|b| !b.is_empty());
    let run_plan = pipeline.expand(branch).map_err(|e| e.to_string())?;
    let mut plans = run_plan.plans;
    plans.extend(run_plan.finally);
    let refs = referenced_secrets(&plans);
    let values = read_secret_values(client, namespace, &refs).await?;
    Ok(values.into_iter().map(|(_, value)| value).collect())
}

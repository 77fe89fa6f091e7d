//! Following a run: its status with a watch, its steps' masked logs; and
//! where the commands that follow runs print ([`Console`]).

mod console;

pub use console::Console;

use std::collections::BTreeSet;
use std::time::Duration;

use c8s_controller::crd::{PipelineRun, PipelineRunStatus, RunPhase, StepPhase, StepRunStatus};
use c8s_kube::{KubeCluster, MAIN_CONTAINER, ObjectKind, ObjectRef, stream_masked_logs};
use c8s_pipeline_model::SecretMasker;
use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};

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
    let mut follower: Option<Follower> = None;
    while let Some(event) = watch.next().await {
        let run = match event {
            Ok(Some(run)) => run,
            Ok(None) => return Err(format!("run {name} does not exist (or was deleted)")),
            Err(e) => {
                console.note(&format!("c8s: watching run {name}: {e}; retrying"));
                continue;
            }
        };
        if follower.is_none() {
            let values = secret_values(&client, namespace, &run).await;
            follower = Some(Follower::new(cluster.clone(), values, only, status, console));
        }
        let run_status = run.status.clone().unwrap_or_default();
        if let Some(follower) = follower.as_mut() {
            follower.see(&run_status);
        }
        if run_status.phase.is_finished() {
            if let Some(follower) = follower.take() {
                follower.finish().await;
            }
            if status {
                console.out(&format!("run {name}: {:?}\n", run_status.phase));
            }
            return Ok(run_status.phase);
        }
    }
    Err(format!("the watch of run {name} ended"))
}

/// What follows a run's statuses as they come: each step's phase changes
/// printed (with `status`), the masked `main` log of each attempt of every
/// step (or of `only`) streamed from when it has a pod. `c8s logs --follow`
/// and `c8s run --in-cluster` feed it the PipelineRun's watch;
/// `c8s run` each status its reconcile returns.
pub struct Follower {
    cluster: KubeCluster,
    /// The values logs are masked with; why logs are withheld instead.
    values: Result<Vec<Vec<u8>>, String>,
    only: Option<String>,
    status: bool,
    console: Console,
    printed: BTreeSet<String>,
    followed: BTreeSet<(String, u32)>,
    streams: tokio::task::JoinSet<()>,
}

impl Follower {
    /// A follower printing to `console`, masking logs with `values` (or
    /// saying once why they are withheld).
    pub fn new(
        cluster: KubeCluster,
        values: Result<Vec<Vec<u8>>, String>,
        only: Option<&str>,
        status: bool,
        console: &Console,
    ) -> Self {
        if let Err(reason) = &values {
            console.note(&format!("c8s: logs withheld: {reason}"));
        }
        Follower {
            cluster,
            values,
            only: only.map(str::to_owned),
            status,
            console: console.clone(),
            printed: BTreeSet::new(),
            followed: BTreeSet::new(),
            streams: tokio::task::JoinSet::new(),
        }
    }

    /// Prints what changed in `run_status` and starts following the logs
    /// of attempts that now have a pod.
    pub fn see(&mut self, run_status: &PipelineRunStatus) {
        for step in run_status
            .steps
            .iter()
            .filter(|s| step_wanted(s, self.only.as_deref()))
        {
            let line = step_line(step);
            if self.status && self.printed.insert(line.clone()) {
                self.console.note(&line);
            }
            let Some(object) = step_object(step) else {
                continue;
            };
            let started = step.phase != StepPhase::Pending;
            if let (true, Ok(values)) = (started, &self.values)
                && self.followed.insert((step.name.clone(), step.attempt))
            {
                let (cluster, console) = (self.cluster.clone(), self.console.clone());
                let (values, step) = (values.clone(), step.clone());
                self.streams
                    .spawn(async move { stream_step(&cluster, &object, &step, &values, &console).await });
            }
        }
    }

    /// Waits for the logs being streamed: a finished step's log ends with
    /// its container; the wait is bounded by 30 seconds for the rest.
    pub async fn finish(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(30), async {
            while self.streams.join_next().await.is_some() {}
        })
        .await;
    }
}

/// A step's phase as the follower prints it: a failure with its reason and
/// `main`'s exit code when it has one, then what the status says of it
/// (`unit-b7-0f0e: Failed (Error, exit 3)`).
fn step_line(step: &StepRunStatus) -> String {
    let mut line = format!("{}: {:?}", step.name, step.phase);
    if step.phase == StepPhase::Failed && !step.reason.is_empty() {
        line = match step.exit_code {
            Some(code) => format!("{line} ({}, exit {code})", step.reason),
            None => format!("{line} ({})", step.reason),
        };
    }
    if !step.message.is_empty() {
        line = format!("{line} {}", step.message);
    }
    line
}

pub(crate) fn step_wanted(step: &StepRunStatus, only: Option<&str>) -> bool {
    only.is_none_or(|s| step.name == s || step.name.contains(&format!("-{s}-")))
}

pub(crate) fn step_object(step: &StepRunStatus) -> Option<ObjectRef> {
    match (&step.pod, &step.job) {
        (Some(pod), _) => Some(ObjectRef::new(ObjectKind::Pod, pod.clone())),
        (None, Some(job)) => Some(ObjectRef::new(ObjectKind::Job, job.clone())),
        (None, None) => None,
    }
}

/// Streams one step's masked `main` log once its container started (a log
/// asked for earlier is empty); waits (up to a minute) while the API server
/// still refuses it (400 until the container has started, 404 from a node
/// that does not know the pod yet).
pub(crate) async fn stream_step(
    cluster: &KubeCluster,
    object: &ObjectRef,
    step: &StepRunStatus,
    values: &[Vec<u8>],
    console: &Console,
) {
    if !main_started(cluster, object).await {
        return;
    }
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
            // 400: its container has not started; 404 from the node: its pod
            // is not on a node yet (the reconcile records a step running as
            // soon as its pod is created).
            Err(e)
                if e.code() == Some(400) || (e.code() == Some(404) && still_there(cluster, object).await) =>
            {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return console.note(&format!("{}: {e}", step.name)),
            Ok(_) => return,
        }
    }
    console.note(&format!("{}: its container did not start", step.name));
}

/// Waits until `object`'s `main` container has started (or ended): a log
/// asked for before that is empty or refused. `false` when the object went
/// first; `true` when it cannot be watched (the log request then says why).
async fn main_started(cluster: &KubeCluster, object: &ObjectRef) -> bool {
    use c8s_kube::{Cluster as _, ContainerObservation, PodPhase};
    let Ok(mut seen) = cluster.observe(object).await else {
        return true;
    };
    while let Some(seen) = seen.next().await {
        match seen {
            Ok(pod) if pod.phase == PodPhase::Gone => return false,
            Ok(pod)
                if matches!(
                    pod.main,
                    ContainerObservation::Running | ContainerObservation::Terminated { .. }
                ) =>
            {
                return true;
            }
            Ok(_) => {}
            Err(_) => return true,
        }
    }
    true
}

/// Whether `object` still exists (its log may come once it is on a node).
async fn still_there(cluster: &KubeCluster, object: &ObjectRef) -> bool {
    use c8s_kube::Cluster as _;
    match cluster.observe(object).await {
        Ok(mut seen) => matches!(seen.next().await, Some(Ok(o)) if o.phase != c8s_kube::PodPhase::Gone),
        Err(_) => false,
    }
}

/// The values of every Secret key the run's pipeline references.
pub(crate) async fn secret_values(
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

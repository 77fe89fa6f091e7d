//! `c8s run`: the run driven from the terminal by the
//! controller's own reconcile ([`c8s_controller::drive_run`]): the same
//! code decides, starts, retries and ends every step as for a
//! `PipelineRun` in the cluster, with the run's spec and status held in
//! this process instead of the API server. What it prints is what
//! `c8s run --in-cluster` prints while it follows a PipelineRun (the same
//! [`Follower`]): each step's phase changes and its masked `main` log.
//!
//! The run's status is what a `PipelineRun` keeps in the API server; here it
//! is kept in the run's record (a ConfigMap, [`Cluster::save_record`]),
//! saved after every pass that changed it and before the next pass acts,
//! so that `c8s run --resume` started after this process was killed goes
//! on from it: the reconcile takes up the pods still there, and the status
//! remembers what the cluster no longer shows (attempts whose pods were
//! deleted, the retries they spent, when the run started).

use std::collections::BTreeMap;
use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use c8s_controller::archive::{KubeSecrets, archive_ended_steps, read_log};
use c8s_controller::crd::{
    PipelineRun, PipelineRunSpec, PipelineRunStatus, RunPhase, StepPhase, StepRunStatus,
};
use c8s_controller::{RunSteps, Settings, drive_run};
use c8s_kube::archive::Archive;
use c8s_kube::{
    ArchivedLogRef, Cluster, KubeCluster, MAIN_CONTAINER, ObjectKind, ObjectRef, RunState, RunStatus, Step,
    StepOutcome, StepState, StepStatus, TerminationReason,
};
use c8s_pipeline_model::concourse::triggers::put_response;
use c8s_pipeline_model::scheduler::Condition;
use c8s_pipeline_model::{Dag, SecretMasker, TaskPlan};
use k8s_openapi::jiff::Timestamp;

use crate::follow::{Console, Follower};
use crate::secrets::{read_secret_values, referenced_secrets};

/// The record entry holding the run's status (JSON).
const STATUS_KEY: &str = "run-status.json";

/// The versions a run's puts made, by resource (as `c8s run` returns them).
type Outputs = BTreeMap<String, String>;

/// How often a run is looked at without any change to its pods: the run's
/// watch wakes every pass that matters, this only bounds what a lost event
/// can delay.
const POLL: Duration = Duration::from_secs(10);

/// What the run is, as `c8s run` read it from its flags and file.
pub(crate) struct Reconciled<'a> {
    /// The run id (the name every object of the run is labelled with).
    pub run_id: &'a str,
    /// The plans the steps were rendered from (for the Secrets they read).
    pub plans: &'a [TaskPlan],
    /// The steps, rendered.
    pub steps: Vec<Step>,
    /// Steps at once.
    pub parallelism: usize,
    /// Whether independent steps go on after a failure.
    pub continue_on_failure: bool,
    /// The whole run's deadline.
    pub timeout: Duration,
    /// How long a scheduled step's `main` may take to start.
    pub start_timeout: Duration,
    /// Where to write the run's status (`--status-file`).
    pub status_file: Option<&'a str>,
    /// Whether the run goes on from its record (`--resume`).
    pub resume: bool,
    /// Where the logs of steps that ended are archived (`--log-archive-bucket`).
    pub archive: Option<Archive>,
    /// When the run succeeded (a Concourse build's result), over the
    /// steps' names; `None`: when every step did.
    pub outcome: Option<Condition>,
    /// A Concourse job's put steps (by step name, as the status names
    /// them), each with the resource it makes a version of.
    pub puts: BTreeMap<String, String>,
}

/// Runs `run` on `cluster` until it ends or `cancel` cancels it, then
/// deletes its objects and writes its status; the exit code, and the
/// versions its puts made (by resource).
pub(crate) async fn run_reconciled(
    cluster: &KubeCluster,
    run: Reconciled<'_>,
    cancel: impl Future<Output = ()>,
) -> (ExitCode, Outputs) {
    let mut outputs = Outputs::new();
    let code = run_reconciled_into(cluster, run, cancel, &mut outputs).await;
    (code, outputs)
}

/// [`run_reconciled`], the versions written into `outputs`.
async fn run_reconciled_into(
    cluster: &KubeCluster,
    run: Reconciled<'_>,
    cancel: impl Future<Output = ()>,
    outputs: &mut Outputs,
) -> ExitCode {
    let console = Console::std();
    let selector = c8s_controller::reconcile::run_selector(run.run_id);
    let steps = match run_steps(run.steps, run.timeout, run.outcome) {
        Ok(steps) => steps,
        Err(e) => return failed(&console, &e),
    };
    let listed = (selector.as_str(), steps.kinds());
    let started = match start(cluster, run.run_id, &listed, run.resume).await {
        Ok(started) => started,
        Err(e) => return failed(&console, &e),
    };
    let mut driven_run = PipelineRun::new(
        run.run_id,
        PipelineRunSpec {
            parallelism: u32::try_from(run.parallelism.max(1)).ok(),
            continue_on_failure: run.continue_on_failure,
            ..PipelineRunSpec::default()
        },
    );
    let kept = Kept {
        record: Record {
            saved: started.as_ref().map(|(_, json)| json.clone()).unwrap_or_default(),
            warned: false,
        },
        archive: run.archive.map(|archive| {
            (
                archive,
                KubeSecrets::new(cluster.client().clone(), cluster.namespace()),
            )
        }),
        last: started
            .as_ref()
            .map(|(status, _)| status.clone())
            .unwrap_or_default(),
    };
    driven_run.status = started.map(|(status, _)| status);
    let settings = Settings {
        default_parallelism: run.parallelism.max(1),
        poll: POLL,
        start_timeout: run.start_timeout,
        ..Settings::default()
    };
    console.note(&format!(
        "c8s: run {}: running {} steps in namespace {} (parallelism {}) through the controller's reconcile",
        run.run_id,
        steps.steps.len(),
        cluster.namespace(),
        run.parallelism.max(1)
    ));
    let values = masking_values(cluster, run.plans, &console).await;
    let mut follower = Follower::new(cluster.clone(), values.clone(), None, true, &console);
    let kept = tokio::sync::Mutex::new(kept);
    let (seen, kept_ref, console_ref, run_id, steps_ref) =
        (&mut follower, &kept, &console, run.run_id, &steps);
    let driven = drive_run(
        cluster,
        &driven_run,
        &steps,
        &settings,
        move |_, pass| {
            seen.see(&pass.status);
            let status = pass.status.clone();
            async move {
                let mut kept = kept_ref.lock().await;
                kept.pass(cluster, (run_id, steps_ref), status, console_ref).await;
            }
        },
        cancel,
    )
    .await;
    let kept = kept.into_inner();
    follower.finish().await;
    if let Ok(status) = &driven {
        // Read before the pods go.
        *outputs = put_versions(cluster, &run.puts, status, &values, &console).await;
    }
    let mut delete_errors = delete_objects(cluster, &listed).await;
    // The record goes last: a process killed before it resumes from the
    // run's end, not from a run whose pods vanished.
    if driven.is_ok()
        && let Err(e) = cluster.delete_record(run.run_id).await
    {
        delete_errors.push(format!("the run record: {e}"));
    }
    let mut status = match driven {
        Ok(status) => status,
        Err(e) => return failed(&console, &e.to_string()),
    };
    carry_archived(&kept.last, &mut status);
    for step in &status.steps {
        if let Some(error) = &step.log_archive_error {
            console.note(&format!("c8s: warning: {}: {error}", step.name));
        }
    }
    finish(&console, run.run_id, run.status_file, &status, &delete_errors)
}

/// The versions the succeeded put steps among `puts` (step → resource) of
/// the run that ended with `status` made: each read from its `main` log (a
/// resource's `out` response), masked with `values`. A version that cannot
/// be read is warned of, never guessed.
async fn put_versions(
    cluster: &KubeCluster,
    puts: &BTreeMap<String, String>,
    status: &PipelineRunStatus,
    values: &Result<Vec<Vec<u8>>, String>,
    console: &Console,
) -> Outputs {
    let mut outputs = Outputs::new();
    for step in &status.steps {
        let Some(resource) = puts.get(&step.name) else {
            continue;
        };
        let Some(pod) = step.pod.as_deref().filter(|_| step.phase == StepPhase::Succeeded) else {
            continue;
        };
        let log = match values {
            Err(reason) => Err(format!("the run's logs are withheld ({reason})")),
            Ok(values) => read_log(cluster, &ObjectRef::new(ObjectKind::Pod, pod), MAIN_CONTAINER)
                .await
                .map_err(|e| e.to_string())
                .and_then(|raw| {
                    let mut masker = SecretMasker::new(values.iter()).map_err(|e| e.to_string())?;
                    let mut masked = masker.feed(&raw);
                    masked.extend(masker.finish());
                    Ok(masked)
                }),
        };
        match log.and_then(|log| put_response(&String::from_utf8_lossy(&log))) {
            Ok(version) => {
                outputs.insert(resource.clone(), version);
            }
            Err(why) => console.note(&format!(
                "c8s: warning: the version put `{}` made to `{resource}` is not known: {why}",
                step.name
            )),
        }
    }
    outputs
}

/// Writes the status file of the run `run_id` that ended with `status`
/// (`delete_errors`: the deletes that failed) and says how it ended; the
/// exit code.
fn finish(
    console: &Console,
    run_id: &str,
    status_file: Option<&str>,
    status: &PipelineRunStatus,
    delete_errors: &[String],
) -> ExitCode {
    let mut record = run_status(run_id, status);
    if !delete_errors.is_empty() {
        record.message = format!(
            "{}; could not delete: {}",
            record.message,
            delete_errors.join("; ")
        )
        .trim_start_matches("; ")
        .to_owned();
    }
    if let Some(path) = status_file
        && let Err(e) = std::fs::write(path, record.to_json())
    {
        return failed(console, &format!("cannot write {path}: {e}"));
    }
    console.out(&format!("run {run_id}: {:?}\n", status.phase));
    if status.phase == RunPhase::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The values of the Secrets `plans` reference, that logs are masked with
/// (or why they cannot be read: logs are then withheld); a value too short
/// to mask is warned of, as `c8s run` always has.
async fn masking_values(
    cluster: &KubeCluster,
    plans: &[TaskPlan],
    console: &Console,
) -> Result<Vec<Vec<u8>>, String> {
    let refs = referenced_secrets(plans);
    read_secret_values(cluster.client(), cluster.namespace(), &refs)
        .await
        .map(|values| {
            if let Ok(masker) = SecretMasker::named(values.iter().map(|(name, value)| (name.clone(), value)))
            {
                for name in masker.short_values() {
                    console.note(&format!(
                        "c8s: warning: the value of {name} is too short to mask and may appear in logs"
                    ));
                }
            }
            values.into_iter().map(|(_, value)| value).collect()
        })
}

/// Where the run starts: `None` for a new run (refused when objects or a
/// record of `run_id` exist already: they are an earlier run's), the saved
/// status and its JSON for a resumed one whose record has it.
async fn start(
    cluster: &KubeCluster,
    run_id: &str,
    (selector, kinds): &(&str, Vec<ObjectKind>),
    resume: bool,
) -> Result<Option<(PipelineRunStatus, String)>, String> {
    let record = cluster.load_record(run_id).await.map_err(|e| e.to_string())?;
    if resume {
        let Some(record) = record else {
            // Killed before its first pass saved anything: its objects are taken up.
            return Ok(None);
        };
        let Some(json) = record.get(STATUS_KEY) else {
            return Err(format!(
                "the record of run {run_id} was written by c8s run's event loop; resume it with --event-loop"
            ));
        };
        let status = serde_json::from_str(json)
            .map_err(|e| format!("the record of run {run_id} cannot be read: {e}"))?;
        return Ok(Some((status, json.clone())));
    }
    let found = cluster
        .list_kinds(selector, kinds)
        .await
        .map_err(|e| e.to_string())?;
    if !found.is_empty() || record.is_some() {
        return Err(format!(
            "run {run_id} has objects in namespace {} already; choose another --run-id, or go on with it with --resume",
            cluster.namespace()
        ));
    }
    Ok(None)
}

/// What this process keeps of the run between passes: its record, and the
/// log archive with what it stored.
struct Kept {
    /// The run record.
    record: Record,
    /// The archive and the Secrets its logs are masked with.
    archive: Option<(Archive, KubeSecrets)>,
    /// The status the last pass returned, with what was archived.
    last: PipelineRunStatus,
}

impl Kept {
    /// After a pass that returned `status` (of run `run_id`, its `steps`):
    /// the logs of steps that ended are archived, as the controller
    /// archives them after its reconcile (once per step: what was stored is
    /// carried from pass to pass), then the status is saved in the record.
    async fn pass(
        &mut self,
        cluster: &KubeCluster,
        (run_id, steps): (&str, &RunSteps),
        mut status: PipelineRunStatus,
        console: &Console,
    ) {
        carry_archived(&self.last, &mut status);
        if let Some((archive, secrets)) = &self.archive {
            archive_ended_steps(
                cluster,
                secrets,
                archive,
                (cluster.namespace(), run_id),
                steps,
                &mut status,
            )
            .await;
        }
        self.record.save(cluster, run_id, &status, console).await;
        self.last = status;
    }
}

/// Copies into `to` what `from` says was archived of each step's same
/// attempt (the reconcile's status does not carry it: the archive is not
/// the reconcile's).
fn carry_archived(from: &PipelineRunStatus, to: &mut PipelineRunStatus) {
    for step in &mut to.steps {
        let archived = from.steps.iter().find(|s| {
            s.name == step.name
                && s.attempt == step.attempt
                && (!s.archived_logs.is_empty() || s.log_archive_error.is_some())
        });
        if let Some(archived) = archived
            && step.archived_logs.is_empty()
            && step.log_archive_error.is_none()
        {
            step.archived_logs = archived.archived_logs.clone();
            step.log_archive_error = archived.log_archive_error.clone();
        }
    }
}

/// The run's record as this process last saved it.
struct Record {
    /// The status saved last (JSON); empty before the first save.
    saved: String,
    /// Whether a failed save was reported already.
    warned: bool,
}

impl Record {
    /// Saves `status` as run `run_id`'s record when it changed. A save that
    /// failed is tried again after the next pass; the run goes on (only a
    /// resume would miss it), and the first failure is said.
    async fn save(
        &mut self,
        cluster: &KubeCluster,
        run_id: &str,
        status: &PipelineRunStatus,
        console: &Console,
    ) {
        let json = match serde_json::to_string(status) {
            Ok(json) if json != self.saved => json,
            _ => return,
        };
        let entries = BTreeMap::from([(STATUS_KEY.to_owned(), json.clone())]);
        match cluster.save_record(run_id, &entries).await {
            Ok(()) => self.saved = json,
            Err(e) if !self.warned => {
                self.warned = true;
                console.note(&format!(
                    "c8s: warning: could not save the run record (--resume would miss the latest changes): {e}"
                ));
            }
            Err(_) => {}
        }
    }
}

/// Says why the run could not go on; exit code 1, as `c8s run` fails.
fn failed(console: &Console, message: &str) -> ExitCode {
    console.note(&format!("error: {message}"));
    ExitCode::from(1)
}

/// The steps as the reconcile takes them: their graph, the run's deadline
/// and its success rule.
fn run_steps(steps: Vec<Step>, timeout: Duration, outcome: Option<Condition>) -> Result<RunSteps, String> {
    let dag =
        Dag::new(steps.iter().map(|s| (s.name.as_str(), s.depends_on.iter()))).map_err(|e| e.to_string())?;
    Ok(RunSteps {
        steps,
        dag,
        timeout: Some(timeout),
        peak_requests: Default::default(),
        skipped: Vec::new(),
        outcome,
    })
}

/// Deletes every object of the run (of `kinds`, labelled by `selector`)
/// without waiting for them to be gone, as `c8s run` does when a run ends;
/// the deletes that failed.
async fn delete_objects(cluster: &KubeCluster, (selector, kinds): &(&str, Vec<ObjectKind>)) -> Vec<String> {
    let listed = match cluster.list_kinds(selector, kinds).await {
        Ok(listed) => listed,
        Err(e) => return vec![e.to_string()],
    };
    let deletes = listed.iter().map(|o| cluster.start_delete(&o.object));
    futures::future::join_all(deletes)
        .await
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect()
}

/// The status record `c8s run` writes (`--status-file`), from the status
/// the reconcile kept.
pub(crate) fn run_status(run_id: &str, status: &PipelineRunStatus) -> RunStatus {
    let message = status
        .conditions
        .iter()
        .find(|c| c.type_ == c8s_controller::SUCCEEDED)
        .filter(|_| status.phase != RunPhase::Succeeded)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    RunStatus {
        run_id: run_id.to_owned(),
        state: match status.phase {
            RunPhase::Pending => RunState::Pending,
            RunPhase::Running => RunState::Running,
            RunPhase::Succeeded => RunState::Succeeded,
            RunPhase::Failed => RunState::Failed,
            RunPhase::Cancelled => RunState::Cancelled,
        },
        started_at: time(&status.start_time),
        finished_at: time(&status.completion_time),
        message,
        steps: status.steps.iter().map(step_status).collect(),
    }
}

/// One step's record, from its status in the run.
fn step_status(step: &StepRunStatus) -> StepStatus {
    let state = match step.phase {
        StepPhase::Pending => StepState::Pending,
        StepPhase::Running => StepState::Running,
        StepPhase::Succeeded => StepState::Succeeded,
        StepPhase::Failed => StepState::Failed,
        StepPhase::Skipped if step.reason == "Cancelled" => StepState::Cancelled,
        StepPhase::Skipped => StepState::Skipped,
    };
    let object = step.pod.clone().or_else(|| step.job.clone());
    let reason =
        serde_json::from_value::<TerminationReason>(serde_json::Value::String(step.reason.clone())).ok();
    let outcome = reason
        .filter(|_| matches!(step.phase, StepPhase::Succeeded | StepPhase::Failed))
        .map(|reason| StepOutcome {
            exit_code: step.exit_code,
            reason,
            message: step.message.clone(),
            started_at: time(&step.start_time),
            finished_at: time(&step.completion_time),
        });
    let spent = step.retries;
    StepStatus {
        name: step.name.clone(),
        state,
        attempts: if object.is_some() { step.attempt + 1 } else { 0 },
        retries: spent.user,
        runner_retries: spent.image_pulls + spent.disruptions,
        object,
        waiting_reason: None,
        started_at: time(&step.start_time),
        finished_at: time(&step.completion_time),
        message: if outcome.is_some() {
            String::new()
        } else {
            step.message.clone()
        },
        outcome,
        archived_logs: step
            .archived_logs
            .iter()
            .map(|log| ArchivedLogRef {
                attempt: log.attempt,
                container: log.container.clone(),
                key: log.key.clone(),
                url: log.url.clone(),
                bytes: log.bytes,
            })
            .collect(),
        log_archive_error: step.log_archive_error.clone(),
    }
}

fn time(t: &Option<String>) -> Option<Timestamp> {
    t.as_deref().and_then(|t| t.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use c8s_controller::crd::RetriesSpentStatus;

    fn step(name: &str, phase: StepPhase, reason: &str) -> StepRunStatus {
        StepRunStatus {
            name: name.into(),
            phase,
            reason: reason.into(),
            ..StepRunStatus::default()
        }
    }

    /// What was archived of a step's attempt stays with it from pass to
    /// pass (so it is stored once, a resumed run too); a new attempt's logs
    /// are its own.
    #[test]
    fn what_was_archived_is_carried_to_the_same_attempt_only() {
        let archived = |name: &str, attempt: u32| {
            let mut step = step(name, StepPhase::Succeeded, "Completed");
            step.attempt = attempt;
            step.archived_logs = vec![c8s_controller::crd::ArchivedLogStatus {
                attempt,
                container: "main".into(),
                key: format!("c8s/ci/r/{name}/{attempt}/main.log"),
                url: String::new(),
                bytes: 3,
            }];
            step
        };
        let mut errored = step("lint", StepPhase::Failed, "Error");
        errored.log_archive_error = Some("logs not archived: Secret x cannot be read".into());
        let before = PipelineRunStatus {
            steps: vec![archived("unit", 0), archived("build", 0), errored],
            ..PipelineRunStatus::default()
        };
        let mut retried = step("build", StepPhase::Running, "");
        retried.attempt = 1;
        let mut after = PipelineRunStatus {
            steps: vec![
                step("unit", StepPhase::Succeeded, "Completed"),
                retried,
                step("lint", StepPhase::Failed, "Error"),
            ],
            ..PipelineRunStatus::default()
        };
        carry_archived(&before, &mut after);
        assert_eq!(after.steps[0].archived_logs, before.steps[0].archived_logs);
        assert!(after.steps[1].archived_logs.is_empty(), "{:?}", after.steps[1]);
        assert_eq!(
            after.steps[2].log_archive_error,
            before.steps[2].log_archive_error
        );
    }

    #[test]
    fn the_status_file_says_what_the_reconcile_recorded_in_c8s_runs_words() {
        let mut failed = step("unit", StepPhase::Failed, "Error");
        failed.pod = Some("unit-a1".into());
        failed.attempt = 1;
        failed.exit_code = Some(3);
        failed.start_time = Some("2026-01-01T00:00:05Z".into());
        failed.completion_time = Some("2026-01-01T00:00:09Z".into());
        failed.retries = RetriesSpentStatus {
            image_pulls: 0,
            disruptions: 0,
            user: 1,
        };
        let mut status = PipelineRunStatus {
            phase: RunPhase::Failed,
            start_time: Some("2026-01-01T00:00:00Z".into()),
            completion_time: Some("2026-01-01T00:00:10Z".into()),
            steps: vec![
                failed,
                step("lint", StepPhase::Skipped, "Cancelled"),
                step("publish", StepPhase::Skipped, "Skipped"),
            ],
            ..PipelineRunStatus::default()
        };
        status.conditions.push(c8s_controller::crd::Condition {
            type_: c8s_controller::SUCCEEDED.into(),
            status: "False".into(),
            reason: "Failed".into(),
            message: "step unit failed".into(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH),
            observed_generation: None,
        });
        let record = run_status("shop-b7", &status);
        assert_eq!(record.state, RunState::Failed);
        assert_eq!(record.message, "step unit failed");
        assert_eq!(record.started_at, time(&Some("2026-01-01T00:00:00Z".into())));
        let unit = &record.steps[0];
        assert_eq!(
            (unit.state, unit.attempts, unit.retries),
            (StepState::Failed, 2, 1)
        );
        assert_eq!(unit.object.as_deref(), Some("unit-a1"));
        let outcome = unit.outcome.as_ref().expect("an outcome");
        assert_eq!(
            (outcome.exit_code, outcome.reason),
            (Some(3), TerminationReason::Error)
        );
        assert_eq!(record.steps[1].state, StepState::Cancelled);
        assert_eq!(record.steps[2].state, StepState::Skipped);
        assert_eq!(record.steps[2].attempts, 0);
    }
}

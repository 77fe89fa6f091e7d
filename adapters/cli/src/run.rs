//! `c8s run` and `c8s reap`: the kube adapter on the current kube context.
//!
//! `run` renders the file exactly as `c8s render` does, then starts each pod
//! as soon as its own dependencies (same matrix combination) succeeded. Logs of
//! failed steps are printed masked: the values of every Secret key the plans
//! reference are read from the cluster and registered with the masker; when
//! they cannot be read, logs are withheld rather than printed unmasked.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use c8s_kube::{
    ArchiveOptions, FailureMode, KubeCluster, LogMasker, LogOptions, LogSink, ReapOptions, RunOptions,
    RunState, RunStatus, Step, StepState, StepStatus,
};
use c8s_pipeline_model::Errors;
use c8s_pipeline_model::scheduler::Condition;
use c8s_pipeline_model::{SecretMasker, TaskPlan};
use clap::Args;

use crate::render::{self, RenderArgs};
use crate::secrets::{read_secret_values, referenced_secrets};

/// `c8s run` flags: the render flags plus scheduling.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// What to run and how to render it (as for `c8s render`).
    #[command(flatten)]
    pub render: RenderArgs,
    /// At most this many steps at once.
    #[arg(long, default_value_t = 4)]
    pub parallelism: usize,
    /// Keep running independent steps after a failure (dependents are skipped).
    #[arg(long)]
    pub continue_on_failure: bool,
    /// Whole-run deadline (`90s`, `30m`, `1h30m`); default: the pipeline's `timeout`, else 1h.
    #[arg(long)]
    pub timeout: Option<String>,
    /// Write the run status record (JSON) here when the run ends.
    #[arg(long)]
    pub status_file: Option<String>,
    /// How long to wait for the API server before giving up.
    #[arg(long, default_value = "10s")]
    pub connect_timeout: String,
    /// How long a scheduled step's `main` may take to start (image pulls,
    /// init containers, native sidecars becoming ready) before the step fails
    /// naming each waiting container.
    #[arg(long, default_value = "10m")]
    pub start_timeout: String,
    /// Continue the run of `--run-id` (required) where an earlier `c8s run`
    /// of it stopped (killed, or left with a second Ctrl-C): steps that ended
    /// are not run again, pods still running are followed.
    #[arg(long, requires = "run_id")]
    pub resume: bool,
    /// Create a PipelineRun for the in-cluster controller and follow it,
    /// instead of running the steps from here.
    #[arg(long)]
    pub in_cluster: bool,
    /// Drive the run with `c8s run`'s older event loop instead of the
    /// controller's own reconcile (the code that drives a PipelineRun in the
    /// cluster, and `c8s run`'s default). The event loop is what runs a
    /// Concourse job's hooks, puts and task files read at run time, and
    /// archives logs (`--log-archive-bucket`), until the reconcile does; a
    /// run is resumed by the driver that started it.
    #[arg(long, conflicts_with = "in_cluster")]
    pub event_loop: bool,
    /// Where each step's masked logs are archived when it ends.
    #[command(flatten)]
    pub archive: crate::archive::ArchiveArgs,
}

/// `c8s reap` flags.
#[derive(Debug, Args)]
pub struct ReapArgs {
    /// Namespace to clean (default: the kube context's).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Delete objects of unknown runs older than this.
    #[arg(long, default_value = "24h")]
    pub older_than: String,
    /// List what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `text` (the value of `--flag`) as a duration.
pub(crate) fn seconds(flag: &str, text: &str) -> Result<Duration, String> {
    c8s_pipeline_model::parse_duration(text)
        .map(Duration::from_secs)
        .map_err(|reason| format!("--{flag} {text:?}: {reason}"))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn fail(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {message}");
    ExitCode::from(1)
}

/// Runs `c8s run`: loads and renders the file, reads the flags' times,
/// then runs the steps on the current kube context ([`Run::run_in_cluster`],
/// after [`Run::fetch_task_files`] for a job whose task files are read then).
pub fn run(args: &RunArgs, report: fn(&str, &Errors) -> String) -> ExitCode {
    let prepared = match Prepared::new(args, report) {
        Ok(prepared) => prepared,
        Err(code) => return code,
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(message) => return fail(&message),
    };
    runtime.block_on(async {
        match connect(args, prepared.durations.connect).await {
            Ok(cluster) => prepared.run(&cluster, args, report, None).await.0,
            Err(code) => code,
        }
    })
}

/// `c8s run` of `args` on `cluster` (connected already): what [`run`] does
/// once connected, and the versions its Concourse puts made (by resource,
/// canonical JSON). `c8s watch` runs each build it starts this way, `stop`
/// cancelling it (as Ctrl-C does) when the watcher itself must stop.
pub(crate) async fn run_on(
    cluster: &KubeCluster,
    args: &RunArgs,
    report: fn(&str, &Errors) -> String,
    stop: Stop,
) -> (ExitCode, Outputs) {
    match Prepared::new(args, report) {
        Ok(prepared) => prepared.run(cluster, args, report, stop).await,
        Err(code) => (code, Outputs::new()),
    }
}

/// What cancels a run besides Ctrl-C or SIGTERM: the value becoming `true`
/// (`c8s watch` stopping on an error it cannot go on from).
pub(crate) type Stop = Option<tokio::sync::watch::Receiver<bool>>;

/// The versions a run's Concourse puts made, by resource (canonical JSON).
pub(crate) type Outputs = BTreeMap<String, String>;

/// The cluster of the current kube context, in `args`' namespace when given.
pub(crate) async fn connect(args: &RunArgs, timeout: Duration) -> Result<KubeCluster, ExitCode> {
    match KubeCluster::connect(timeout).await {
        Ok(cluster) if args.render.namespace.is_empty() => Ok(cluster),
        Ok(cluster) => Ok(cluster.with_namespace(args.render.namespace.clone())),
        Err(e) => Err(fail(&e.to_string())),
    }
}

/// A run loaded and rendered, before the cluster is asked anything.
struct Prepared {
    loaded: render::LoadedPlans,
    /// Its steps as rendered (run as they are when no file is read first).
    steps: Vec<Step>,
    ctx: c8s_pod_builder::RunContext,
    durations: Durations,
}

impl Prepared {
    /// Loads and renders `args`' file and reads the flags' times; what does
    /// not load or render is reported (the exit code is the error).
    fn new(args: &RunArgs, report: fn(&str, &Errors) -> String) -> Result<Self, ExitCode> {
        let file = args.render.file.as_str();
        let loaded = match load(args, &args.render.concourse) {
            Ok(loaded) => loaded,
            Err(errors) => {
                let _ = std::io::stderr().write_all(report(file, &errors).as_bytes());
                return Err(ExitCode::from(1));
            }
        };
        loaded.print_warnings();
        let ctx = run_context(args, &loaded);
        // What does not render fails before the cluster is asked anything.
        let rendered = steps(
            &loaded.plans,
            &loaded.depends_on,
            &loaded.conditions,
            &ctx,
            args.render.job,
        );
        match rendered.and_then(|steps| Ok((steps, durations(args, loaded.timeout_seconds)?))) {
            Ok((steps, durations)) => Ok(Self {
                loaded,
                steps,
                ctx,
                durations,
            }),
            Err(message) => Err(fail(&message)),
        }
    }

    /// Runs it on `cluster`: the parts that read task files first, then
    /// the rest; the exit code and the versions its puts made.
    async fn run(
        self,
        cluster: &KubeCluster,
        args: &RunArgs,
        report: fn(&str, &Errors) -> String,
        stop: Stop,
    ) -> (ExitCode, Outputs) {
        let run = Run {
            args,
            cluster,
            ctx: &self.ctx,
            durations: &self.durations,
            outputs: Mutex::new(Outputs::new()),
            stop,
        };
        let code = match run.fetch_task_files(self.loaded, report).await {
            // Nothing was read: the steps rendered already.
            Ok((loaded, Last::Whole)) => run.run_in_cluster(&loaded, Last::Whole, Some(self.steps)).await,
            Ok((loaded, how)) => run.run_in_cluster(&loaded, how, None).await,
            Err(code) => code,
        };
        (code, run.outputs.into_inner().unwrap_or_default())
    }
}

/// Runs `plan` (a resource check) on `cluster` as a run of its own, with
/// `args`' scheduling flags, and returns what its `main` printed: masked,
/// and whole (`Err` when it failed or its log is withheld or cut).
pub(crate) async fn run_printing(
    cluster: &KubeCluster,
    args: &RunArgs,
    plan: TaskPlan,
) -> Result<Vec<u8>, String> {
    let loaded = render::LoadedPlans::single(plan);
    let ctx = run_context(args, &loaded);
    let durations = durations(args, None)?;
    let steps = steps(
        &loaded.plans,
        &loaded.depends_on,
        &loaded.conditions,
        &ctx,
        args.render.job,
    )?;
    let masker = masker(cluster, &loaded.plans, &loaded.redact).await;
    let logs = Arc::new(CollectedLogs::default());
    let options = run_options(args, &ctx.run_id, &durations, steps.len(), &masker, &logs).resume(false);
    let status = c8s_kube::run_pipeline(cluster, steps, options, cancelled(None))
        .await
        .map_err(|e| e.to_string())?;
    if status.state != RunState::Succeeded {
        print_failed_logs(&status, &masker, &logs);
        return Err(format!("run {} ended {:?}", status.run_id, status.state));
    }
    let names = c8s_kube::object_names(&loaded.plans, &ctx);
    let object = names.values().next().cloned().unwrap_or_default();
    printed(&logs, &masker, &object)
}

/// One `c8s run` on the cluster: what every part of the run shares.
struct Run<'a> {
    args: &'a RunArgs,
    cluster: &'a KubeCluster,
    ctx: &'a c8s_pod_builder::RunContext,
    durations: &'a Durations,
    /// The versions the puts that ran made.
    outputs: Mutex<Outputs>,
    /// What cancels the run besides a signal.
    stop: Stop,
}

/// Why files were not read: the message, and the files whose readers found
/// them not in their artifacts.
type Unread = (String, Vec<c8s_pipeline_model::concourse::FetchFile>);

/// How the last part of a run starts.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Last {
    /// The whole run here (resumed with `--resume`).
    Whole,
    /// After the parts that read task files: resumed.
    Resumed,
    /// Resumed, and cancelled at once (the run was cancelled during a part).
    Cancelled,
    /// Resumed, with these steps (by plan step) errored without running,
    /// each with why: their task files could not be read.
    Errored(BTreeMap<String, String>),
}

impl Run<'_> {
    /// Runs the parts of a Concourse job that make the artifacts its deferred
    /// task files live in, reads the files and lowers the job again, until
    /// nothing is left to read (`crate::run_fetch`). The plans to run last and
    /// how; `Err` when the run ended here (its exit code).
    async fn fetch_task_files(
        &self,
        mut loaded: render::LoadedPlans,
        report: fn(&str, &Errors) -> String,
    ) -> Result<(render::LoadedPlans, Last), ExitCode> {
        let file = self.args.render.file.as_str();
        let mut concourse = self.args.render.concourse.clone();
        let tag = crate::run_fetch::tag();
        let mut parts = 0usize;
        while !loaded.fetch.is_empty() {
            let part = crate::run_fetch::part(&loaded, &self.ctx.helper_image, &format!("{tag}{parts}"));
            let resume = self.args.resume || parts > 0;
            parts += 1;
            let (status, files) = self.run_part(&part, &loaded.puts, resume).await?;
            let files = match (status.state, files) {
                (RunState::Succeeded, Ok(files)) => files,
                // A step the files wait for failed or timed out: the rest of
                // the job runs as it is known (its hooks, the build's end);
                // the deferred steps would not have run either.
                (RunState::Failed, Err(None)) => return Ok((loaded, Last::Resumed)),
                (RunState::Cancelled, _) => return Ok((loaded, Last::Cancelled)),
                // The steps ran and a task file is not in its artifact: the
                // task step errors, as Concourse's does, and the rest of the
                // job runs (its on_error and ensure hooks, the build's end).
                (_, Err(Some((why, failed)))) => {
                    if let Some(errored) = self.errored_tasks(&mut concourse, &failed, &why) {
                        return Ok(errored);
                    }
                    return Err(self.end_failed(status, &why).await);
                }
                (_, Err(None)) => {
                    return Err(self.end_failed(status, "a task file could not be read").await);
                }
                (_, Ok(_)) => return Err(self.end_failed(status, "the run ended early").await),
            };
            if files.keys().any(|f| concourse.fetched.contains_key(f)) {
                return Err(self.end_failed(status, "a task file was read twice").await);
            }
            concourse.fetched.extend(files);
            let before: BTreeSet<String> = loaded.warnings.iter().cloned().collect();
            loaded = match load(self.args, &concourse) {
                Ok(loaded) => loaded,
                Err(errors) => {
                    let _ = std::io::stderr().write_all(report(file, &errors).as_bytes());
                    let message =
                        "a file read from its artifact (a task file, a load_var value) does not fit the job";
                    return Err(self.end_failed(status, message).await);
                }
            };
            for warning in loaded.warnings.iter().filter(|w| !before.contains(*w)) {
                eprintln!("warning: {warning}");
            }
        }
        let last = if parts > 0 { Last::Resumed } else { Last::Whole };
        Ok((loaded, last))
    }

    /// The job with the task files `failed` (their readers found them not in
    /// their artifacts) standing as tasks that error without running
    /// (`run_fetch::UNREADABLE_TASK`), and a `load_var` file that was not
    /// found erroring the tasks that read its var (`FetchFile::UNREADABLE_VAR`
    /// in their params), and those steps with `why`; `None` when that does
    /// not make the whole job (a step after it needs what the task would
    /// have made, or more is left to read): then the run ends here.
    fn errored_tasks(
        &self,
        concourse: &mut crate::concourse::ConcourseArgs,
        failed: &[c8s_pipeline_model::concourse::FetchFile],
        why: &str,
    ) -> Option<(render::LoadedPlans, Last)> {
        use c8s_pipeline_model::concourse::FetchFile;
        if failed.is_empty() {
            return None;
        }
        for fetch in failed {
            let placeholder = if fetch.key.starts_with(FetchFile::VAR_PREFIX) {
                FetchFile::UNREADABLE_VAR
            } else {
                crate::run_fetch::UNREADABLE_TASK
            };
            concourse
                .fetched
                .insert(fetch.key.clone(), placeholder.as_bytes().to_vec());
        }
        let loaded = load(self.args, concourse).ok().filter(|l| l.fetch.is_empty())?;
        let errored: BTreeMap<String, String> = crate::run_fetch::unreadable_steps(&loaded.plans)
            .into_iter()
            .map(|step| (step, why.to_owned()))
            .collect();
        let _ = writeln!(
            std::io::stderr(),
            "c8s: {why}: the task errors, the rest of the job runs"
        );
        (!errored.is_empty()).then_some((loaded, Last::Errored(errored)))
    }

    /// Runs `part` as a part of the run (its record kept for the rest);
    /// its status, and the files its readers printed (`Err(None)`: a step
    /// before the readers did not succeed; `Err(Some((why, failed)))`: a
    /// file could not be read, `failed` the files whose readers failed).
    async fn run_part(
        &self,
        part: &crate::run_fetch::Part,
        puts: &BTreeMap<String, String>,
        resume: bool,
    ) -> Result<(RunStatus, Result<BTreeMap<String, Vec<u8>>, Option<Unread>>), ExitCode> {
        let steps = steps(
            &part.plans,
            &part.depends_on,
            &part.conditions,
            self.ctx,
            self.args.render.job,
        )
        .map_err(|m| fail(&m))?;
        let masker = masker(self.cluster, &part.plans, &part.redact).await;
        let logs = Arc::new(CollectedLogs::default());
        let options = self
            .options(steps.len(), &masker, &logs)?
            .resume(resume)
            .continued(true);
        let _ = writeln!(
            std::io::stderr(),
            "c8s: run {}: running {} steps to read {} file(s) (task files, load_var values) from the artifacts they make",
            self.ctx.run_id,
            steps.len(),
            part.readers.len()
        );
        let status = c8s_kube::run_pipeline(self.cluster, steps, options, cancelled(self.stop.clone()))
            .await
            .map_err(|e| fail(&e.to_string()))?;
        let names = c8s_kube::object_names(&part.plans, self.ctx);
        let readers_failed: Vec<_> = part
            .readers
            .iter()
            .filter(|(_, step)| {
                let object = names.get(step).map(String::as_str).unwrap_or_default();
                status.step(object).is_some_and(|s| s.state == StepState::Failed)
            })
            .map(|(fetch, _)| fetch.clone())
            .collect();
        let files = match (status.state, readers_failed.first()) {
            (RunState::Succeeded, _) => crate::run_fetch::read_files(
                part,
                |step| names.get(step).cloned(),
                |object| printed(&logs, &masker, object),
            )
            .map_err(|why| Some((why, Vec::new()))),
            (_, Some(fetch)) => Err(Some((
                crate::run_fetch::unreadable(fetch),
                readers_failed.clone(),
            ))),
            _ => Err(None),
        };
        print_failed_logs(&status, &masker, &logs);
        self.record_puts(puts, &part.plans, &status, &logs, &masker);
        Ok((status, files))
    }

    /// The run options of a run or part of `total` steps, logs masked by
    /// `masker` into `logs` and archived as the flags say.
    fn options(
        &self,
        total: usize,
        masker: &Result<SecretMasker, String>,
        logs: &Arc<CollectedLogs>,
    ) -> Result<RunOptions, ExitCode> {
        let archive = match self.args.archive.archive() {
            Ok(archive) => archive.map(|a| archive_options(a, self.cluster.namespace(), masker)),
            Err(e) => return Err(fail(&e)),
        };
        let options = run_options(self.args, &self.ctx.run_id, self.durations, total, masker, logs);
        Ok(options.archive(archive))
    }

    /// Keeps the version each succeeded put of `plans` made (`puts`: the
    /// put steps and their resources), read from its masked log; a put
    /// whose version cannot be read is said.
    fn record_puts(
        &self,
        puts: &BTreeMap<String, String>,
        plans: &[TaskPlan],
        status: &RunStatus,
        logs: &CollectedLogs,
        masker: &Result<SecretMasker, String>,
    ) {
        let names = c8s_kube::object_names(plans, self.ctx);
        let Ok(mut outputs) = self.outputs.lock() else {
            return;
        };
        for (step, resource) in puts {
            let Some(object) = names.get(step) else {
                continue;
            };
            if !status
                .step(object)
                .is_some_and(|s| s.state == StepState::Succeeded)
            {
                continue;
            }
            let version = printed(logs, masker, object).and_then(|log| {
                c8s_pipeline_model::concourse::triggers::put_response(&String::from_utf8_lossy(&log))
            });
            match version {
                Ok(version) => {
                    outputs.insert(resource.clone(), version);
                }
                // Seen in an earlier part of the run (followed, not run, here).
                Err(_) if outputs.contains_key(resource) => {}
                Err(why) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "c8s: warning: the version put `{step}` made to `{resource}` is not known: {why}"
                    );
                }
            }
        }
    }

    /// Ends a run that stopped between its parts: its record is deleted,
    /// `status` (the last part's) is written failed with `message`.
    async fn end_failed(&self, mut status: RunStatus, message: &str) -> ExitCode {
        use c8s_kube::Cluster as _;
        if let Err(e) = self.cluster.delete_record(&self.ctx.run_id).await {
            let _ = writeln!(
                std::io::stderr(),
                "c8s: warning: could not delete the run record: {e}"
            );
        }
        status.state = RunState::Failed;
        status.message = message.to_owned();
        let _ = writeln!(std::io::stderr(), "c8s: {message}");
        self.finish(&status)
    }

    /// Writes the status file and prints how the run ended; the exit code.
    fn finish(&self, status: &RunStatus) -> ExitCode {
        if let Some(path) = &self.args.status_file
            && let Err(e) = std::fs::write(path, status.to_json())
        {
            return fail(&format!("cannot write {path}: {e}"));
        }
        let _ = writeln!(std::io::stdout(), "run {}: {:?}", status.run_id, status.state);
        if status.state == RunState::Succeeded {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    }

    /// Runs `loaded`'s steps (`rendered`: as rendered already) as the run
    /// (or its last part, `last`), writes the status record, prints the
    /// masked logs of failed steps and the run's end.
    async fn run_in_cluster(
        &self,
        loaded: &render::LoadedPlans,
        last: Last,
        rendered: Option<Vec<Step>>,
    ) -> ExitCode {
        if !loaded.deferred.is_empty() && matches!(last, Last::Whole) {
            // Deferred with no file to read: refused when loaded.
            return fail("steps are deferred to run time and none can be read");
        }
        let (args, cluster) = (self.args, self.cluster);
        let rendered = rendered.map_or_else(
            || {
                steps(
                    &loaded.plans,
                    &loaded.depends_on,
                    &loaded.conditions,
                    self.ctx,
                    args.render.job,
                )
            },
            Ok,
        );
        let steps = match rendered {
            Ok(steps) => steps,
            Err(message) => return fail(&message),
        };
        if last == Last::Whole && reconciled(args, loaded) {
            let archive = match args.archive.archive() {
                Ok(archive) => archive,
                Err(e) => return fail(&e),
            };
            let run = crate::run_reconcile::Reconciled {
                run_id: &self.ctx.run_id,
                plans: &loaded.plans,
                steps,
                parallelism: args.parallelism,
                continue_on_failure: args.continue_on_failure,
                timeout: self.durations.run,
                start_timeout: self.durations.start,
                status_file: args.status_file.as_deref(),
                resume: args.resume,
                archive,
                outcome: outcome(loaded, self.ctx),
                puts: put_steps(&loaded.puts, &loaded.plans, self.ctx),
            };
            let (code, outputs) =
                crate::run_reconcile::run_reconciled(cluster, run, cancelled(self.stop.clone())).await;
            if let Ok(mut kept) = self.outputs.lock() {
                kept.extend(outputs);
            }
            return code;
        }
        let masker = masker(cluster, &loaded.plans, &loaded.redact).await;
        let logs = Arc::new(CollectedLogs::default());
        let options = match self.options(steps.len(), &masker, &logs) {
            Ok(options) => options,
            Err(code) => return code,
        };
        let mut options = options
            .resume(args.resume || last != Last::Whole)
            .outcome(outcome(loaded, self.ctx));
        if let Last::Errored(errored) = &last {
            let names = c8s_kube::object_names(&loaded.plans, self.ctx);
            for (step, why) in errored {
                options = options.unrunnable(names.get(step).cloned().unwrap_or_else(|| step.clone()), why);
            }
        }
        let _ = writeln!(
            std::io::stderr(),
            "c8s: run {}: running {} steps in namespace {} (parallelism {})",
            self.ctx.run_id,
            steps.len(),
            cluster.namespace(),
            args.parallelism.max(1)
        );
        let run = if last == Last::Cancelled {
            c8s_kube::run_pipeline(cluster, steps, options, std::future::ready(())).await
        } else {
            c8s_kube::run_pipeline(cluster, steps, options, cancelled(self.stop.clone())).await
        };
        let status = match run {
            Ok(status) => status,
            Err(e) => return fail(&e.to_string()),
        };
        print_failed_logs(&status, &masker, &logs);
        self.record_puts(&loaded.puts, &loaded.plans, &status, &logs, &masker);
        for step in &status.steps {
            if let Some(error) = &step.log_archive_error {
                let _ = writeln!(std::io::stderr(), "c8s: warning: {}: {error}", step.name);
            }
        }
        self.finish(&status)
    }
}

/// What the `main` container of `object`'s last attempt printed, whole:
/// `Err` when its log is withheld (the masker could not be built) or cut.
fn printed(
    logs: &CollectedLogs,
    masker: &Result<SecretMasker, String>,
    object: &str,
) -> Result<Vec<u8>, String> {
    if let Err(reason) = masker {
        return Err(format!("the run's logs are withheld ({reason})"));
    }
    let kept = logs.take(object);
    let Some(((_, _), main)) = kept.iter().rfind(|((_, c), _)| c == "main") else {
        return Err("its reader printed nothing".to_owned());
    };
    if main.dropped > 0 {
        return Err(format!("it is longer than {KEPT_LOG_BYTES} bytes"));
    }
    Ok(main.tail.clone())
}

/// The times `c8s run` keeps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Durations {
    /// The whole run's deadline.
    run: Duration,
    /// How long to wait for the API server.
    connect: Duration,
    /// How long a step's `main` may take to start.
    start: Duration,
}

/// The times of `args`: `--timeout`, else the pipeline's
/// (`pipeline_timeout`, in seconds), else an hour; `--connect-timeout` and
/// `--start-timeout`. The first flag that does not read as a duration is
/// the error.
fn durations(args: &RunArgs, pipeline_timeout: Option<u64>) -> Result<Durations, String> {
    let run = match (&args.timeout, pipeline_timeout) {
        (Some(flag), _) => seconds("timeout", flag),
        (None, Some(pipeline)) => Ok(Duration::from_secs(pipeline)),
        (None, None) => Ok(Duration::from_secs(3600)),
    };
    let (run, connect) = match (run, seconds("connect-timeout", &args.connect_timeout)) {
        (Ok(t), Ok(c)) => (t, c),
        (Err(m), _) | (_, Err(m)) => return Err(m),
    };
    let start = seconds("start-timeout", &args.start_timeout)?;
    Ok(Durations { run, connect, start })
}

/// The masker of every Secret value `plans` reference (warning on stderr of
/// each value too short to mask); the reason when they cannot be read.
async fn masker(
    cluster: &KubeCluster,
    plans: &[TaskPlan],
    redact: &[(String, String)],
) -> Result<SecretMasker, String> {
    let secrets = referenced_secrets(plans);
    let masker = read_secret_values(cluster.client(), cluster.namespace(), &secrets)
        .await
        .and_then(|values| {
            let redacted = redact
                .iter()
                .map(|(what, value)| (what.clone(), value.clone().into_bytes()));
            let named = values.into_iter().chain(redacted);
            SecretMasker::named(named).map_err(|e| e.to_string())
        });
    if let Ok(masker) = &masker {
        for name in masker.short_values() {
            let _ = writeln!(
                std::io::stderr(),
                "c8s: warning: the value of {name} is too short to mask and may appear in logs"
            );
        }
    }
    masker
}

/// The archive's options for a run in `namespace`: logs that `masker`
/// cannot mask (the Secrets could not be read, or a value is too short to
/// mask) are not archived.
fn archive_options(
    archive: c8s_kube::archive::Archive,
    namespace: &str,
    masker: &Result<SecretMasker, String>,
) -> ArchiveOptions {
    let options = ArchiveOptions::new(archive, namespace);
    match masker {
        Err(reason) => options.withheld(reason.clone()),
        Ok(masker) if !masker.short_values().is_empty() => options.withheld(format!(
            "the value of {} is too short to mask",
            masker.short_values().join(", ")
        )),
        Ok(_) => options,
    }
}

/// The run options of `args` for `total` steps: logs are collected through
/// `masker`, or withheld without one, never streamed unmasked.
fn run_options(
    args: &RunArgs,
    run_id: &str,
    durations: &Durations,
    total: usize,
    masker: &Result<SecretMasker, String>,
    logs: &Arc<CollectedLogs>,
) -> RunOptions {
    let options = RunOptions::new(run_id.to_owned())
        .resume(args.resume)
        .parallelism(args.parallelism.max(1))
        .timeout(durations.run)
        .start_timeout(durations.start)
        .failure_mode(if args.continue_on_failure {
            FailureMode::ContinueOnFailure
        } else {
            FailureMode::FailFast
        })
        .on_progress(progress_printer(total));
    match masker {
        Ok(masker) => {
            let masker = masker.clone();
            let factory = Arc::new(move |_: &str| -> Box<dyn LogMasker> { Box::new(masker.clone()) });
            options.logs(LogOptions::new(factory, logs.clone()))
        }
        Err(_) => options,
    }
}

/// Resolves at the first Ctrl-C or SIGTERM, or when `stop` turns `true`,
/// which cancels the run (its pods are deleted); after a signal, a second
/// Ctrl-C exits at once.
async fn cancelled(stop: Stop) {
    let stopped = async {
        let stopped = match stop {
            Some(mut stop) => stop.wait_for(|stop| *stop).await.is_ok(),
            None => false,
        };
        if !stopped {
            // No stop, or its sender is gone: only a signal cancels.
            std::future::pending::<()>().await;
        }
    };
    let signal = tokio::select! {
        signal = interrupted() => signal,
        () = stopped => {
            let _ = writeln!(std::io::stderr(), "c8s: the watch stops: cancelling, deleting the run's pods");
            return;
        }
    };
    let _ = writeln!(
        std::io::stderr(),
        "c8s: {signal}: cancelling, deleting the run's pods (Ctrl-C again to exit at once)"
    );
    // A second Ctrl-C leaves at once; the reaper cleans up what is left.
    tokio::spawn(async {
        let _ = tokio::signal::ctrl_c().await;
        let _ = writeln!(std::io::stderr(), "c8s: exiting without waiting for deletes");
        std::process::exit(130);
    });
}

/// On stderr, the kept logs of each failed step, or why they are withheld
/// (`masker`: the reason the Secrets could not be read).
fn print_failed_logs(status: &RunStatus, masker: &Result<SecretMasker, String>, logs: &CollectedLogs) {
    for step in status.steps.iter().filter(|s| s.state == StepState::Failed) {
        match masker {
            Ok(_) => {
                for ((attempt, container), kept) in logs.take(&step.name) {
                    let _ = writeln!(
                        std::io::stderr(),
                        "--- logs of failed step {}, attempt {}, container {container} ---",
                        step.name,
                        attempt + 1
                    );
                    if kept.dropped > 0 {
                        let _ = writeln!(std::io::stderr(), "(first {} bytes not kept)", kept.dropped);
                    }
                    let _ = std::io::stderr().write_all(&kept.tail);
                }
            }
            Err(reason) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "--- logs of failed step {} withheld: {reason} ---",
                    step.name
                );
            }
        }
    }
}

/// `puts` (plan step → resource) by the names the run's status gives the
/// steps (their objects').
fn put_steps(
    puts: &BTreeMap<String, String>,
    plans: &[TaskPlan],
    ctx: &c8s_pod_builder::RunContext,
) -> BTreeMap<String, String> {
    let names = c8s_kube::object_names(plans, ctx);
    puts.iter()
        .filter_map(|(step, resource)| names.get(step).map(|object| (object.clone(), resource.clone())))
        .collect()
}

/// Whether `loaded` runs through the controller's reconcile: unless
/// `--event-loop` says otherwise or it needs what only the event loop does
/// yet (a Concourse job's task files read at run time, and `load_var`
/// values kept out of logs).
fn reconciled(args: &RunArgs, loaded: &render::LoadedPlans) -> bool {
    let event_loop_only = !loaded.fetch.is_empty() || !loaded.redact.is_empty();
    !(args.event_loop || event_loop_only)
}

/// The plans of `args`' file, as `c8s render` loads them, with `concourse`'s
/// options (and the task files read so far).
fn load(args: &RunArgs, concourse: &crate::concourse::ConcourseArgs) -> Result<render::LoadedPlans, Errors> {
    let file = args.render.file.as_str();
    match std::fs::read(file) {
        Ok(bytes) => render::load_plans_for(
            file,
            &bytes,
            args.render.kind,
            args.render.branch.as_deref(),
            concourse,
        )
        .and_then(|loaded| {
            // Deferred steps whose task files are read while the job runs
            // are run then; others cannot be.
            if loaded.fetch.is_empty() {
                crate::concourse::refuse_deferred(file, &loaded.deferred)?;
            }
            Ok(loaded)
        }),
        Err(e) => Err(Errors::from(c8s_pipeline_model::Error::Read {
            file: file.to_owned(),
            reason: c8s_pipeline_model::sidecar::load::read_reason(&e),
        })),
    }
}

/// The run context of `c8s run` for `args` and the plans they load: without
/// `--run-id`, each run gets a new id ([`new_run_id`]), so a second run is
/// never mistaken for (or refused as) an earlier one.
fn run_context(args: &RunArgs, loaded: &render::LoadedPlans) -> c8s_pod_builder::RunContext {
    let mut ctx = render::context(&args.render, &loaded.repository);
    if args.render.run_id.is_none() {
        let pipeline = loaded.plans.first().map(|p| p.identity.pipeline.as_str());
        ctx.run_id = new_run_id(pipeline.unwrap_or_default(), args.render.build);
    }
    ctx
}

/// The characters of a new run id's suffix: those the API server picks a
/// `generateName` suffix from (no vowels, so no words).
const SUFFIX_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A new run id: `<pipeline>-b<build>-` and 5 random characters, the shape
/// of the PipelineRun names `c8s run --in-cluster` gets from the API server
/// (`generateName`); the pipeline part is cut to keep it a label value.
fn new_run_id(pipeline: &str, build: u64) -> String {
    let mut bits = crate::run_fetch::random_bits();
    let base = SUFFIX_CHARS.len() as u64;
    let suffix: String = (0..5)
        .map(|_| {
            let c = SUFFIX_CHARS[(bits % base) as usize];
            bits /= base;
            char::from(c)
        })
        .collect();
    let tail = format!("-b{build}-{suffix}");
    let mut head = c8s_pod_builder::names::sanitize_label(pipeline);
    head.truncate(63usize.saturating_sub(tail.len()));
    match head.trim_end_matches('-') {
        "" => format!("run{tail}"),
        head => format!("{head}{tail}"),
    }
}

/// One kube step per plan ([`c8s_kube::plan_steps_with`], as the controller
/// builds them), each under its condition (a Concourse job's hooks).
fn steps(
    plans: &[TaskPlan],
    depends_on: &BTreeMap<String, Vec<String>>,
    conditions: &BTreeMap<String, Condition>,
    ctx: &c8s_pod_builder::RunContext,
    job: bool,
) -> Result<Vec<Step>, String> {
    c8s_kube::plan_steps_with(plans, depends_on, conditions, ctx, job).map_err(|e| e.to_string())
}

/// The run's outcome condition (a Concourse build's result) over the steps'
/// object names; `None`: the run succeeds when every step does.
fn outcome(loaded: &render::LoadedPlans, ctx: &c8s_pod_builder::RunContext) -> Option<Condition> {
    let names = c8s_kube::object_names(&loaded.plans, ctx);
    loaded
        .outcome
        .as_ref()
        .map(|o| o.renamed(&|step| names.get(step).cloned().unwrap_or_else(|| step.to_owned())))
}

/// Waits for Ctrl-C or SIGTERM (what CI runners send to stop a job); names it.
pub(crate) async fn interrupted() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => "interrupted",
                _ = term.recv() => "terminated",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "interrupted"
}

/// Live progress on stderr: on a terminal, each change carries a running
/// `[done/total]` count and a coloured state; otherwise plain lines for logs.
fn progress_printer(total: usize) -> c8s_kube::ProgressFn {
    use std::io::IsTerminal;
    let terminal = std::io::stderr().is_terminal();
    let done = Arc::new(Mutex::new(std::collections::BTreeSet::<String>::new()));
    // What was printed last per step: an update that changes nothing shown
    // (the log archive's keys) prints nothing.
    let shown = Mutex::new(BTreeMap::<String, String>::new());
    Arc::new(move |status: &StepStatus| {
        let detail = match (&status.waiting_reason, &status.outcome) {
            (Some(reason), _) => format!(" (waiting for capacity: {reason})"),
            (None, Some(outcome)) => format!(" ({outcome})"),
            _ => String::new(),
        };
        // The step's own retries and the runner's, apart: a flaky test is not a flaky cluster.
        let detail = match (status.retries, status.runner_retries) {
            (0, 0) => detail,
            (user, 0) => format!(
                "{detail} [attempt {}, {user} retried by the step's retries]",
                status.attempts
            ),
            (0, runner) => format!(
                "{detail} [attempt {}, {runner} retried by c8s after transient faults]",
                status.attempts
            ),
            (user, runner) => format!(
                "{detail} [attempt {}, {user} retried by the step's retries, {runner} by c8s after transient faults]",
                status.attempts
            ),
        };
        let seen = format!("{:?}{detail}", status.state);
        if let Ok(mut shown) = shown.lock()
            && shown.insert(status.name.clone(), seen.clone()).as_ref() == Some(&seen)
        {
            return;
        }
        let line = if terminal {
            let finished = done
                .lock()
                .map(|mut done| {
                    if status.state.is_final() {
                        done.insert(status.name.clone());
                    }
                    done.len()
                })
                .unwrap_or(0);
            let colour = match status.state {
                StepState::Succeeded => "32",
                StepState::Failed => "31",
                StepState::Running => "36",
                StepState::WaitingForCapacity => "33",
                _ => "2",
            };
            let state = format!("{:?}", status.state);
            format!(
                "[{finished:>3}/{total}] \x1b[{colour}m{state:<18}\x1b[0m {}{detail}",
                status.name
            )
        } else {
            format!("{} {:?}{detail}", status.name, status.state)
        };
        let _ = writeln!(std::io::stderr(), "{line}");
    })
}

/// The most masked bytes kept per step, attempt and container: the tail,
/// which is where a failure shows, so a run's logs are never all in memory.
const KEPT_LOG_BYTES: usize = 256 * 1024;

/// The kept tail of one container's masked log.
#[derive(Default)]
struct KeptLog {
    tail: Vec<u8>,
    dropped: usize,
}

/// One step's kept logs by attempt and container.
type StepLogs = BTreeMap<(u32, String), KeptLog>;

/// Masked log tails per step, attempt and container, to print those of failed steps.
#[derive(Default)]
struct CollectedLogs(Mutex<BTreeMap<String, StepLogs>>);

impl CollectedLogs {
    fn take(&self, step: &str) -> StepLogs {
        self.0
            .lock()
            .map(|mut logs| logs.remove(step).unwrap_or_default())
            .unwrap_or_default()
    }
}

impl LogSink for CollectedLogs {
    fn write(&self, step: &str, attempt: u32, container: &str, masked: &[u8]) {
        if let Ok(mut logs) = self.0.lock() {
            let kept = logs
                .entry(step.to_owned())
                .or_default()
                .entry((attempt, container.to_owned()))
                .or_default();
            kept.tail.extend_from_slice(masked);
            let over = kept.tail.len().saturating_sub(KEPT_LOG_BYTES);
            if over > 0 {
                kept.tail.drain(..over);
                kept.dropped += over;
            }
        }
    }
}

/// Runs `c8s reap`.
pub fn reap(args: &ReapArgs) -> ExitCode {
    let older_than = match seconds("older-than", &args.older_than) {
        Ok(d) => d,
        Err(m) => return fail(&m),
    };
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(message) => return fail(&message),
    };
    runtime.block_on(async {
        let cluster = match KubeCluster::connect(Duration::from_secs(10)).await {
            Ok(cluster) => match &args.namespace {
                Some(ns) => cluster.with_namespace(ns.clone()),
                None => cluster,
            },
            Err(e) => return fail(&e.to_string()),
        };
        let options = ReapOptions::new(older_than).dry_run(args.dry_run);
        match c8s_kube::reap(&cluster, &options).await {
            Ok(report) => {
                let (out, code) = reap_output(&report);
                let _ = std::io::stdout().write_all(out.as_bytes());
                code
            }
            Err(e) => fail(&e.to_string()),
        }
    })
}

/// What `c8s reap` prints of `report`, and its exit code: non-zero when a
/// deletion it tried (an object's or a run record's) failed.
fn reap_output(report: &c8s_kube::ReapReport) -> (String, ExitCode) {
    let verb = if report.dry_run { "would delete" } else { "deleted" };
    let mut out = String::new();
    for (object, reason) in &report.deleted {
        out.push_str(&format!("{verb} {:?} {}: {reason}\n", object.kind, object.name));
    }
    for (object, error) in &report.failed {
        out.push_str(&format!("failed {:?} {}: {error}\n", object.kind, object.name));
    }
    for (run, reason) in &report.records_deleted {
        out.push_str(&format!("{verb} run record of {run}: {reason}\n"));
    }
    for (run, error) in &report.records_failed {
        out.push_str(&format!("failed run record of {run}: {error}\n"));
    }
    let code = if report.deletes_failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    };
    (out, code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reap_exits_non_zero_when_a_record_could_not_be_deleted() {
        let mut report = c8s_kube::ReapReport::default();
        assert_eq!(reap_output(&report).1, ExitCode::SUCCESS);
        report.records_failed.push(("r1".into(), "403 Forbidden".into()));
        let (out, code) = reap_output(&report);
        assert_eq!(code, ExitCode::from(1));
        assert!(out.contains("failed run record of r1: 403 Forbidden"), "{out}");
        let mut objects = c8s_kube::ReapReport::default();
        let pod = c8s_kube::ObjectRef::new(c8s_kube::ObjectKind::Pod, "p");
        objects.failed.push((pod, "500".into()));
        assert_eq!(reap_output(&objects).1, ExitCode::from(1));
    }

    const ORDERS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/pipelines/orders.c8s.yaml"
    );

    /// `c8s ARGV...` as `main` parses it: a `c8s run`'s flags.
    fn parsed(argv: &[&str]) -> Result<RunArgs, clap::Error> {
        use clap::Parser;
        let cli = crate::Cli::try_parse_from(std::iter::once("c8s").chain(argv.iter().copied()))?;
        match cli.command {
            crate::Command::Run(args) => Ok(*args),
            other => panic!("not a run: {other:?}"),
        }
    }

    /// The run id and the step names `c8s run` would use for `argv`.
    fn run_of(argv: &[&str]) -> (String, Vec<String>) {
        let args = parsed(argv).expect("valid flags");
        let loaded = load(&args, &args.render.concourse).expect("it loads");
        let ctx = run_context(&args, &loaded);
        let steps =
            steps(&loaded.plans, &loaded.depends_on, &loaded.conditions, &ctx, false).expect("it renders");
        (ctx.run_id, steps.into_iter().map(|s| s.name).collect())
    }

    /// Two `c8s run`s of one pipeline without `--run-id` are two runs: their
    /// ids (the run label, the run record) and their pods differ, so the
    /// second is neither refused as "run exists" nor mixed with the first.
    #[test]
    fn each_run_without_a_run_id_is_a_new_run() {
        let argv = ["run", ORDERS, "--branch", "main", "--build", "7"];
        let (first, first_pods) = run_of(&argv);
        let (second, second_pods) = run_of(&argv);
        assert_ne!(first, second);
        for id in [&first, &second] {
            assert!(id.starts_with("orders-service-b7-"), "{id}");
            assert_eq!(id.len(), "orders-service-b7-".len() + 5, "{id}");
            assert!(c8s_sidecar_core::names::label_value(id).is_ok(), "{id}");
        }
        assert!(
            first_pods.iter().all(|pod| !second_pods.contains(pod)),
            "{first_pods:?} {second_pods:?}"
        );
    }

    /// `--run-id` names the run; only a named run can be resumed.
    #[test]
    fn an_explicit_run_id_is_kept_and_resume_needs_one() {
        let argv = ["run", ORDERS, "--branch", "main", "--run-id", "ci-42"];
        let (first, first_pods) = run_of(&argv);
        let (second, second_pods) = run_of(&argv);
        assert_eq!((first.as_str(), second.as_str()), ("ci-42", "ci-42"));
        assert_eq!(first_pods, second_pods);
        assert!(parsed(&["run", ORDERS, "--run-id", "ci-42", "--resume"]).is_ok());
        let error = parsed(&["run", ORDERS, "--resume"]).expect_err("--resume without --run-id");
        assert_eq!(
            error.kind(),
            clap::error::ErrorKind::MissingRequiredArgument,
            "{error}"
        );
        assert!(error.to_string().contains("--run-id"), "{error}");
    }

    /// A pod created while the create's answer was lost (504; the retried
    /// create gets 409) is adopted, not reported Rejected and left running:
    /// the pods `c8s run` renders carry the pipeline's step name in
    /// `c8s.dev/step` (`unit`), while each step is named after its object
    /// (`orders-service-unit-<matrix id>-b7-<hash>`).
    #[tokio::test(start_paused = true)]
    async fn a_pod_whose_create_answer_was_lost_is_adopted() {
        use c8s_kube::sim::{SimCluster, StepScript};
        let args = parsed(&[
            "run", ORDERS, "--branch", "main", "--build", "7", "--run-id", "ci-42",
        ])
        .expect("valid flags");
        let loaded = load(&args, &args.render.concourse).expect("it loads");
        let ctx = run_context(&args, &loaded);
        let steps =
            steps(&loaded.plans, &loaded.depends_on, &loaded.conditions, &ctx, false).expect("it renders");
        let units = steps
            .iter()
            .filter(|s| s.object.label(c8s_kube::STEP_LABEL) == Some("unit"))
            .count();
        assert!(units > 1, "the matrix's unit steps");
        assert!(
            steps
                .iter()
                .all(|s| s.object.label(c8s_kube::STEP_LABEL) != Some(s.name.as_str())),
            "step names are object names"
        );
        let sim = SimCluster::new();
        sim.default_script(StepScript::new(Duration::from_secs(5)));
        sim.script(
            "unit",
            StepScript::new(Duration::from_secs(5)).lost_create_responses(1),
        );
        let options = RunOptions::new(ctx.run_id.clone()).parallelism(args.parallelism);
        let status = c8s_kube::run_pipeline(&sim, steps, options, std::future::pending())
            .await
            .expect("the run ends");
        assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
        assert!(
            status.steps.iter().all(|s| s.attempts == 1),
            "{}",
            status.to_json()
        );
        assert_eq!(
            sim.stats().creates.get("unit").copied(),
            u32::try_from(units).ok()
        );
        assert!(sim.live_objects().is_empty(), "{:?}", sim.live_objects());
    }

    /// A Concourse `across` step as `c8s run` loads and runs it (the flags,
    /// `load`, `steps`, `outcome`), on the simulated cluster: with the
    /// default `max_in_flight` (1) the copies run one after another, in the
    /// order of the values; with `fail_fast`, no copy starts after one
    /// failed, the across step's `on_failure` hook runs once and the run
    /// fails (<https://concourse-ci.org/across-step.html>).
    #[tokio::test(start_paused = true)]
    async fn an_across_step_runs_its_copies_in_order_and_stops_at_a_failure() {
        use c8s_kube::sim::{SimCluster, StepScript};
        let dir = std::env::temp_dir().join(format!("c8s-across-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let file = dir.join("across.yml");
        let vars = dir.join("vars.yml");
        std::fs::write(
            &file,
            "jobs:
- name: job
  plan:
  - task: test
    across:
    - var: v
      values: ((versions))
    fail_fast: true
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: alpine } }
      run: { path: echo, args: [((.:v))] }
    on_failure:
      task: alert
      config:
        platform: linux
        image_resource: { type: registry-image, source: { repository: alpine } }
        run: { path: echo, args: [failed] }
",
        )
        .expect("the pipeline");
        std::fs::write(&vars, "versions: [a, b, c]\n").expect("the vars");
        let (file, vars) = (file.to_string_lossy(), vars.to_string_lossy());
        let run = |fail: Option<usize>| {
            let args = parsed(&[
                "run",
                &file,
                "--concourse-job",
                "job",
                "--vars-file",
                &vars,
                "--run-id",
                "r1",
            ])
            .expect("valid flags");
            let loaded = load(&args, &args.render.concourse).expect("it loads");
            let ctx = run_context(&args, &loaded);
            let outcome = outcome(&loaded, &ctx);
            let steps = steps(&loaded.plans, &loaded.depends_on, &loaded.conditions, &ctx, false)
                .expect("it renders");
            let ids: Vec<String> = loaded.plans.iter().map(|p| p.identity.step.clone()).collect();
            let sim = SimCluster::new();
            sim.default_script(StepScript::new(Duration::from_secs(5)));
            if let Some(i) = fail {
                sim.script(&ids[i], StepScript::new(Duration::from_secs(5)).exit_code(1));
            }
            let options = RunOptions::new(ctx.run_id.clone())
                .parallelism(args.parallelism)
                .outcome(outcome);
            async move {
                let status = c8s_kube::run_pipeline(&sim, steps, options, std::future::pending())
                    .await
                    .expect("the run ends");
                let created: Vec<String> = sim
                    .created_objects()
                    .iter()
                    .filter_map(|o| o.label(c8s_kube::STEP_LABEL).map(str::to_owned))
                    .collect();
                (status, created, ids, sim.stats().max_running_total)
            }
        };
        let (status, created, ids, most) = run(None).await;
        assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
        assert_eq!(created, ids[..3], "the copies in order, no hook");
        assert!(
            ids[0].starts_with("job.test-a-") && ids[2].starts_with("job.test-c-"),
            "{ids:?}"
        );
        assert_eq!(most, 1, "one copy at a time");
        let (status, created, ids, _) = run(Some(1)).await;
        assert_eq!(status.state, RunState::Failed, "{}", status.to_json());
        assert_eq!(created, [ids[0].as_str(), &ids[1], "job.alert"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The nightly example as `c8s run` hands it to the runner: the finally
    /// steps marked, each watching the other steps' objects, retries carried.
    #[test]
    fn finally_steps_watch_the_objects_of_the_other_steps() {
        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/pipelines/nightly.c8s.yaml"
        );
        let bytes = std::fs::read(file).expect("the example");
        let loaded = render::load_plans_for(
            file,
            &bytes,
            None,
            Some("feature/x"),
            &crate::concourse::ConcourseArgs::default(),
        )
        .expect("it loads");
        let ctx = c8s_pod_builder::RunContext::new("run-1", 1);
        let steps =
            steps(&loaded.plans, &loaded.depends_on, &loaded.conditions, &ctx, false).expect("it renders");
        let by_step = |name: &str| {
            steps
                .iter()
                .find(|s| s.object.label(c8s_kube::STEP_LABEL) == Some(name))
                .unwrap_or_else(|| panic!("no step {name}"))
        };
        let (build, notify) = (by_step("build"), by_step("notify"));
        assert!(notify.finally && by_step("report").finally && !build.finally);
        assert!(notify.depends_on.is_empty());
        let watched: BTreeMap<&str, &str> = notify
            .outcome_env
            .iter()
            .map(|(var, step)| (var.as_str(), step.as_str()))
            .collect();
        assert_eq!(watched.get("C8S_STEP_BUILD_STATUS"), Some(&build.name.as_str()));
        // publish only runs on main: no object, so the runner reports it Skipped.
        assert_eq!(watched.get("C8S_STEP_PUBLISH_STATUS"), Some(&""));
        assert_eq!(by_step("integration").retries.as_ref().map(|r| r.limit), Some(2));
        assert_eq!(
            build.retries.as_ref().map(|r| r.limit),
            Some(1),
            "the pipeline's default"
        );
    }
}

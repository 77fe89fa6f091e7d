//! The in-cluster client commands: `c8s run --in-cluster`, `c8s get runs`
//! and `c8s logs`. Runs are `PipelineRun` resources that the
//! controller drives; these commands create and read them. Each command's
//! core takes a `kube::Client` and a [`Console`], so it is tested against
//! kube's mock service.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use c8s_controller::crd::{PipelineRun, PipelineRunSpec, RunPhase, StepPhase, StepRunStatus};
use c8s_kube::{KubeCluster, LogSink, MAIN_CONTAINER, ObjectKind, ObjectRef, stream_masked_logs};
use c8s_pipeline_model::SecretMasker;
use clap::Args;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, ResourceExt};

use crate::documents::DirSource;

#[cfg(test)]
mod tests;

/// `c8s get` objects.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum GetKind {
    /// PipelineRuns.
    Runs,
}

/// `c8s logs` flags.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The PipelineRun.
    pub run: String,
    /// Only this step (its name, or its object's name).
    #[arg(long)]
    pub step: Option<String>,
    /// Follow the run until it ends, printing each step's log as it runs.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// The namespace (default: the kube context's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
}

pub fn fail(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {message}");
    ExitCode::from(1)
}

pub fn block_on<F: std::future::Future<Output = ExitCode>>(f: F) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(f),
        Err(e) => fail(&format!("cannot start the async runtime: {e}")),
    }
}

/// Where the in-cluster commands print: stdout and stderr in the binary,
/// buffers in tests. Shared by the log streams of concurrent steps: log
/// lines are printed whole, each with its step's prefix, so lines of
/// different steps never mix.
#[derive(Clone)]
pub struct Console {
    out: Arc<Mutex<dyn Write + Send>>,
    err: Arc<Mutex<dyn Write + Send>>,
    partial: Arc<Mutex<BTreeMap<(String, u32, String), Vec<u8>>>>,
}

impl Console {
    /// The process's stdout and stderr.
    pub fn std() -> Self {
        Console {
            out: Arc::new(Mutex::new(std::io::stdout())),
            err: Arc::new(Mutex::new(std::io::stderr())),
            partial: Arc::default(),
        }
    }

    /// A console writing into `out` and `err`.
    #[cfg(test)]
    pub fn new(out: Arc<Mutex<dyn Write + Send>>, err: Arc<Mutex<dyn Write + Send>>) -> Self {
        Console {
            out,
            err,
            partial: Arc::default(),
        }
    }

    fn out(&self, text: &str) {
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(text.as_bytes());
        }
    }

    fn note(&self, line: &str) {
        if let Ok(mut err) = self.err.lock() {
            let _ = writeln!(err, "{line}");
        }
    }

    /// Prints what is left of a log that did not end with a newline.
    fn finish(&self, step: &str, attempt: u32, container: &str) {
        let key = (step.to_owned(), attempt, container.to_owned());
        let rest = self.partial.lock().ok().and_then(|mut p| p.remove(&key));
        if let (Some(mut rest), Ok(mut out)) = (rest, self.out.lock()) {
            rest.push(b'\n');
            let _ = write!(out, "[{step}#{attempt} {container}] ");
            let _ = out.write_all(&rest);
        }
    }
}

impl LogSink for Console {
    fn write(&self, step: &str, attempt: u32, container: &str, masked: &[u8]) {
        let key = (step.to_owned(), attempt, container.to_owned());
        let Ok(mut partial) = self.partial.lock() else {
            return;
        };
        let pending = partial.entry(key.clone()).or_default();
        pending.extend_from_slice(masked);
        let whole = pending.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let lines: Vec<u8> = pending.drain(..whole).collect();
        if pending.is_empty() {
            partial.remove(&key);
        }
        drop(partial);
        if let Ok(mut out) = self.out.lock() {
            for line in lines.split_inclusive(|b| *b == b'\n') {
                let _ = write!(out, "[{step}#{attempt} {container}] ");
                let _ = out.write_all(line);
            }
        }
    }
}

/// A run's exit code: 0 only if it succeeded.
pub fn exit_code(phase: RunPhase) -> ExitCode {
    if phase == RunPhase::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn connect() -> Result<Client, ExitCode> {
    Client::try_default()
        .await
        .map_err(|e| fail(&format!("no cluster: {e}")))
}

/// `c8s run --in-cluster`: creates a PipelineRun embedding the pipeline file
/// and follows its status and logs until it ends; exits 0 only if it succeeded.
pub fn run_in_cluster(
    file: &str,
    branch: &str,
    commit: &str,
    build: u64,
    run_id: &str,
    namespace: &str,
    parallelism: usize,
) -> ExitCode {
    let run = match pipeline_run(file, branch, commit, build, run_id, parallelism) {
        Ok(run) => run,
        Err(e) => return fail(&e),
    };
    let namespace = namespace.to_owned();
    block_on(async move {
        let client = match connect().await {
            Ok(client) => client,
            Err(code) => return code,
        };
        let ns = if namespace.is_empty() {
            client.default_namespace().to_owned()
        } else {
            namespace
        };
        match create_and_follow(client, run, &ns, &Console::std()).await {
            Ok(phase) => exit_code(phase),
            Err(e) => fail(&e),
        }
    })
}

/// The PipelineRun `c8s run --in-cluster` creates: the pipeline file
/// embedded (so the run does not change when the file does), named
/// `run_id` or `<pipeline>-b<build>`.
pub fn pipeline_run(
    file: &str,
    branch: &str,
    commit: &str,
    build: u64,
    run_id: &str,
    parallelism: usize,
) -> Result<PipelineRun, String> {
    let reader = DirSource::beside(file);
    let text = match std::fs::read(file) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return Err(format!("cannot read {file}: {e}")),
    };
    let pipeline = c8s_pipeline_model::parse_pipeline(file, &text, &reader).map_err(|e| e.to_string())?;
    let name = if run_id.is_empty() {
        format!("{}-b{build}", pipeline.name)
    } else {
        run_id.to_owned()
    };
    Ok(PipelineRun::new(
        &name,
        PipelineRunSpec {
            pipeline: Some(pipeline),
            branch: branch.to_owned(),
            commit: commit.to_owned(),
            build,
            triggered_by: format!("cli:{}", std::env::var("USER").unwrap_or_default()),
            parallelism: u32::try_from(parallelism).ok(),
            ..PipelineRunSpec::default()
        },
    ))
}

/// Creates `run` in `namespace` (an existing run of that name is followed
/// instead) and follows it to its end: [`follow_run`].
pub async fn create_and_follow(
    client: Client,
    mut run: PipelineRun,
    namespace: &str,
    console: &Console,
) -> Result<RunPhase, String> {
    let name = run.name_any();
    run.metadata.namespace = Some(namespace.to_owned());
    let api = Api::<PipelineRun>::namespaced(client.clone(), namespace);
    match api.create(&PostParams::default(), &run).await {
        Ok(_) => console.note(&format!("c8s: created pipelinerun/{name} in {namespace}")),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            console.note(&format!(
                "c8s: pipelinerun/{name} exists in {namespace}; following it"
            ));
        }
        Err(e) => return Err(format!("cannot create run {name}: {e}")),
    }
    follow_run(client, namespace, &name, None, true, console).await
}

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

fn step_wanted(step: &StepRunStatus, only: Option<&str>) -> bool {
    only.is_none_or(|s| step.name == s || step.name.contains(&format!("-{s}-")))
}

fn step_object(step: &StepRunStatus) -> Option<ObjectRef> {
    match (&step.pod, &step.job) {
        (Some(pod), _) => Some(ObjectRef::new(ObjectKind::Pod, pod.clone())),
        (None, Some(job)) => Some(ObjectRef::new(ObjectKind::Job, job.clone())),
        (None, None) => None,
    }
}

/// Streams one step's masked `main` log; waits (up to a minute) while its
/// container has not started (the API server answers 400 until it has).
async fn stream_step(
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

/// `c8s get runs`: a table of the namespace's runs.
pub fn get(kind: GetKind, namespace: Option<&str>) -> ExitCode {
    let GetKind::Runs = kind;
    let namespace = namespace.map(str::to_owned);
    block_on(async move {
        let client = match connect().await {
            Ok(client) => client,
            Err(code) => return code,
        };
        match list_runs(client, namespace.as_deref()).await {
            Ok(table) => {
                print!("{table}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        }
    })
}

/// The runs of `namespace` (the client's default when `None`) as a table.
pub async fn list_runs(client: Client, namespace: Option<&str>) -> Result<String, String> {
    let api = match namespace {
        Some(ns) => Api::<PipelineRun>::namespaced(client, ns),
        None => Api::<PipelineRun>::default_namespaced(client),
    };
    let runs = api
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("cannot list runs: {e}"))?;
    Ok(runs_table(&runs.items))
}

/// The `c8s get runs` table: name, pipeline, branch, build, phase, start.
pub fn runs_table(runs: &[PipelineRun]) -> String {
    let mut out = format!(
        "{:<40} {:<20} {:<20} {:>6} {:<10} {}\n",
        "NAME", "PIPELINE", "BRANCH", "BUILD", "PHASE", "STARTED"
    );
    for run in runs {
        let status = run.status.clone().unwrap_or_default();
        let pipeline = run
            .spec
            .pipeline_ref
            .clone()
            .or_else(|| run.spec.pipeline.as_ref().map(|p| p.name.clone()))
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<40} {:<20} {:<20} {:>6} {:<10} {}\n",
            run.name_any(),
            pipeline,
            run.spec.branch,
            run.spec.build,
            format!("{:?}", status.phase),
            status.start_time.unwrap_or_default()
        ));
    }
    out
}

/// `c8s logs RUN`: the masked `main` log of each step (or `--step`), read
/// from its pod; with `--follow`, until the run ends. Logs are withheld when
/// a referenced Secret cannot be read.
pub fn logs(args: &LogsArgs) -> ExitCode {
    block_on(async move {
        let client = match connect().await {
            Ok(client) => client,
            Err(code) => return code,
        };
        match print_logs(client, args, &Console::std()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        }
    })
}

/// The core of `c8s logs`.
pub async fn print_logs(client: Client, args: &LogsArgs, console: &Console) -> Result<(), String> {
    let ns = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    if args.follow {
        return follow_run(client, &ns, &args.run, args.step.as_deref(), false, console)
            .await
            .map(|_| ());
    }
    let api = Api::<PipelineRun>::namespaced(client.clone(), &ns);
    let run = api
        .get(&args.run)
        .await
        .map_err(|e| format!("cannot read run {}: {e}", args.run))?;
    let values = secret_values(&client, &ns, &run)
        .await
        .map_err(|reason| format!("logs withheld: {reason}"))?;
    let cluster = KubeCluster::new(client, ns);
    let status = run.status.unwrap_or_default();
    for step in status
        .steps
        .iter()
        .filter(|s| step_wanted(s, args.step.as_deref()))
    {
        let Some(object) = step_object(step) else {
            continue;
        };
        if step.phase == StepPhase::Running {
            console.note(&format!("{}: running (use --follow)", step.name));
            continue;
        }
        stream_step(&cluster, &object, step, &values, console).await;
    }
    Ok(())
}

/// The values of every Secret key the run's pipeline references.
async fn secret_values(client: &Client, namespace: &str, run: &PipelineRun) -> Result<Vec<Vec<u8>>, String> {
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
    let plans = pipeline.expand(branch).map_err(|e| e.to_string())?.plans;
    let mut refs: Vec<_> = plans
        .iter()
        .flat_map(|p| p.env.iter().chain(p.sidecars.iter().flat_map(|s| s.env.iter())))
        .filter_map(|env| env.secret_key_ref.clone())
        .collect();
    refs.sort();
    refs.dedup();
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut values = Vec::new();
    for r in refs {
        let secret = api
            .get(&r.name)
            .await
            .map_err(|e| format!("cannot read Secret {:?} to mask its values: {e}", r.name))?;
        if let Some(value) = secret.data.as_ref().and_then(|d| d.get(&r.key)) {
            values.push(value.0.clone());
        }
    }
    Ok(values)
}

//! The in-cluster client commands: `c8s run --in-cluster`, `c8s get runs`
//! and `c8s logs`. Runs are `PipelineRun` resources that the
//! controller drives; these commands create and read them. Each command's
//! core takes a `kube::Client` and a [`Console`], so it is tested against
//! kube's mock service.

use std::io::Write;
use std::process::ExitCode;

use c8s_controller::crd::{PipelineRun, PipelineRunSpec, RunPhase, StepPhase};
use c8s_kube::KubeCluster;
use clap::Args;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};

use crate::input::DirSource;
use crate::run::RunArgs;

#[cfg(test)]
mod tests;

pub use crate::follow::{Console, follow_run};
use crate::follow::{secret_values, step_object, step_wanted, stream_step};

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
    /// Read each ended step's log from the log archive even while its pod
    /// exists (without it, the archive is read only when the pod is gone).
    #[arg(long, requires = "log_archive_bucket")]
    pub archived: bool,
    /// The log archive the controller stores logs in, to read them from
    /// once the pods are gone.
    #[command(flatten)]
    pub archive: crate::archive::ArchiveArgs,
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
pub fn run_in_cluster(args: &RunArgs) -> ExitCode {
    let run = match new_run(args) {
        Ok(run) => run,
        Err(e) => return fail(&e),
    };
    let namespace = args.render.namespace.clone();
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

/// The PipelineRun `c8s run --in-cluster` creates for `args`: [`pipeline_run`].
pub fn new_run(args: &RunArgs) -> Result<PipelineRun, String> {
    pipeline_run(
        &args.render.file,
        args.render.branch.as_deref().unwrap_or_default(),
        &args.render.commit,
        args.render.build,
        args.render.run_id.as_deref(),
        args.parallelism,
    )
}

/// The PipelineRun `c8s run --in-cluster` creates: the pipeline file
/// embedded (so the run does not change when the file does), named `run_id`
/// or, without one, `<pipeline>-b<build>-` and a suffix the API server picks
/// (`generateName`): each run is a new PipelineRun.
pub fn pipeline_run(
    file: &str,
    branch: &str,
    commit: &str,
    build: u64,
    run_id: Option<&str>,
    parallelism: usize,
) -> Result<PipelineRun, String> {
    let reader = DirSource::beside(file);
    let text = match std::fs::read(file) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return Err(format!("cannot read {file}: {e}")),
    };
    let pipeline = c8s_pipeline_model::parse_pipeline(file, &text, &reader).map_err(|e| e.to_string())?;
    let generate_name = format!("{}-b{build}-", pipeline.name);
    let mut run = PipelineRun::new(
        run_id.unwrap_or_default(),
        PipelineRunSpec {
            pipeline: Some(pipeline),
            branch: branch.to_owned(),
            commit: commit.to_owned(),
            build,
            triggered_by: format!("cli:{}", std::env::var("USER").unwrap_or_default()),
            parallelism: u32::try_from(parallelism).ok(),
            ..PipelineRunSpec::default()
        },
    );
    if run_id.is_none() {
        run.metadata.name = None;
        run.metadata.generate_name = Some(generate_name);
    }
    Ok(run)
}

/// Creates `run` in `namespace` and follows it to its end: [`follow_run`].
/// A run named by `generateName` is followed under the name the API server
/// gave it; an existing run of `run`'s own name is followed instead of created.
pub async fn create_and_follow(
    client: Client,
    mut run: PipelineRun,
    namespace: &str,
    console: &Console,
) -> Result<RunPhase, String> {
    run.metadata.namespace = Some(namespace.to_owned());
    let api = Api::<PipelineRun>::namespaced(client.clone(), namespace);
    let name = match api.create(&PostParams::default(), &run).await {
        Ok(created) => {
            let name = created.name_any();
            console.note(&format!("c8s: created pipelinerun/{name} in {namespace}"));
            name
        }
        Err(kube::Error::Api(s)) if s.code == 409 && run.metadata.name.is_some() => {
            let name = run.name_any();
            console.note(&format!(
                "c8s: pipelinerun/{name} exists in {namespace}; following it"
            ));
            name
        }
        Err(e) => return Err(format!("cannot create run {}: {e}", run.name_any())),
    };
    follow_run(client, namespace, &name, None, true, console).await
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
    let archive = args.archive.archive()?;
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), &ns);
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
        let from_archive = !step.archived_logs.is_empty()
            && (args.archived || matches!(pods.get_opt(&object.name).await, Ok(None)));
        if from_archive {
            print_archived(archive.as_ref(), step, &values, console).await;
        } else {
            stream_step(&cluster, &object, step, &values, console).await;
        }
    }
    Ok(())
}

/// Prints step `step`'s archived `main` log, masked again with `values`
/// (the archive holds masked logs; a value added since is masked too).
async fn print_archived(
    archive: Option<&c8s_kube::archive::Archive>,
    step: &c8s_controller::crd::StepRunStatus,
    values: &[Vec<u8>],
    console: &Console,
) {
    use c8s_kube::LogSink;
    let Some(log) = step
        .archived_logs
        .iter()
        .find(|l| l.container == c8s_kube::MAIN_CONTAINER)
    else {
        return console.note(&format!("{}: no archived log of main", step.name));
    };
    let Some(archive) = archive else {
        return console.note(&format!(
            "{}: its pod is gone; its log is archived at {} (pass --log-archive-bucket and the archive's credentials to read it)",
            step.name, log.url
        ));
    };
    let bytes = match archive.fetch(&log.key).await {
        Ok(bytes) => bytes,
        Err(e) => return console.note(&format!("{}: {e}", step.name)),
    };
    let mut masker = match c8s_pipeline_model::SecretMasker::new(values.iter()) {
        Ok(masker) => masker,
        Err(e) => return console.note(&format!("{}: logs withheld: {e}", step.name)),
    };
    let mut masked = masker.feed(&bytes);
    masker.finish_into(&mut masked);
    console.write(&step.name, log.attempt, &log.container, &masked);
    console.finish(&step.name, log.attempt, &log.container);
}

//! The in-cluster client commands: `c8s run --in-cluster`, `c8s get runs`
//! and `c8s logs`. Runs are `PipelineRun` resources that the
//! controller drives; these commands create and read them.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use c8s_controller::crd::{PipelineRun, PipelineRunSpec, RunPhase, StepPhase};
use c8s_kube::{KubeCluster, LogSink, MAIN_CONTAINER, ObjectKind, ObjectRef, stream_masked_logs};
use c8s_pipeline_model::SecretMasker;
use clap::Args;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};

use crate::documents::DirSource;

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
    /// Follow running steps until they end.
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

/// `c8s run --in-cluster`: creates a PipelineRun embedding the pipeline file
/// and follows its status until it ends; exits 0 only if it succeeded.
pub fn run_in_cluster(
    file: &str,
    branch: &str,
    commit: &str,
    build: u64,
    run_id: &str,
    namespace: &str,
    parallelism: usize,
) -> ExitCode {
    let reader = DirSource::beside(file);
    let text = match std::fs::read(file) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return fail(&format!("cannot read {file}: {e}")),
    };
    let pipeline = match c8s_pipeline_model::parse_pipeline(file, &text, &reader) {
        Ok(p) => p,
        Err(e) => return fail(&e.to_string()),
    };
    let name = if run_id.is_empty() {
        format!("{}-b{build}", pipeline.name)
    } else {
        run_id.to_owned()
    };
    let mut run = PipelineRun::new(
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
    );
    let namespace = namespace.to_owned();
    block_on(async move {
        let client = match Client::try_default().await {
            Ok(client) => client,
            Err(e) => return fail(&format!("no cluster: {e}")),
        };
        let ns = if namespace.is_empty() {
            client.default_namespace().to_owned()
        } else {
            namespace
        };
        run.metadata.namespace = Some(ns.clone());
        let api = Api::<PipelineRun>::namespaced(client, &ns);
        match api.create(&PostParams::default(), &run).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let _ = writeln!(std::io::stderr(), "c8s: run {name} exists; following it");
            }
            Err(e) => return fail(&format!("cannot create run {name}: {e}")),
        }
        let _ = writeln!(std::io::stderr(), "c8s: created pipelinerun/{name} in {ns}");
        follow(&api, &name).await
    })
}

/// Prints each phase change of run `name` and its steps until it ends.
async fn follow(api: &Api<PipelineRun>, name: &str) -> ExitCode {
    let mut printed: Vec<String> = Vec::new();
    loop {
        let run = match api.get(name).await {
            Ok(run) => run,
            Err(e) => return fail(&format!("cannot read run {name}: {e}")),
        };
        let status = run.status.unwrap_or_default();
        for step in &status.steps {
            let line = format!("{}: {:?} {}", step.name, step.phase, step.message);
            if !printed.contains(&line) {
                let _ = writeln!(std::io::stderr(), "{}", line.trim_end());
                printed.push(line);
            }
        }
        if status.phase.is_finished() {
            let _ = writeln!(std::io::stdout(), "run {name}: {:?}", status.phase);
            return if status.phase == RunPhase::Succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            };
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// `c8s get runs`: a table of the namespace's runs.
pub fn get(kind: GetKind, namespace: Option<&str>) -> ExitCode {
    let GetKind::Runs = kind;
    let namespace = namespace.map(str::to_owned);
    block_on(async move {
        let client = match Client::try_default().await {
            Ok(client) => client,
            Err(e) => return fail(&format!("no cluster: {e}")),
        };
        let api = match &namespace {
            Some(ns) => Api::<PipelineRun>::namespaced(client, ns),
            None => Api::<PipelineRun>::default_namespaced(client),
        };
        let runs = match api.list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(e) => return fail(&format!("cannot list runs: {e}")),
        };
        print!("{}", runs_table(&runs));
        ExitCode::SUCCESS
    })
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

struct Stdout;

impl LogSink for Stdout {
    fn write(&self, step: &str, attempt: u32, container: &str, masked: &[u8]) {
        let mut out = std::io::stdout().lock();
        for line in masked.split_inclusive(|b| *b == b'\n') {
            let _ = write!(out, "[{step}#{attempt} {container}] ");
            let _ = out.write_all(line);
        }
    }
}

/// `c8s logs RUN`: the masked `main` log of each step (or `--step`), read
/// from its pod. Logs are withheld when a referenced Secret cannot be read.
pub fn logs(args: &LogsArgs) -> ExitCode {
    block_on(async move {
        let client = match Client::try_default().await {
            Ok(client) => client,
            Err(e) => return fail(&format!("no cluster: {e}")),
        };
        let ns = args
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        let api = Api::<PipelineRun>::namespaced(client.clone(), &ns);
        let run = match api.get(&args.run).await {
            Ok(run) => run,
            Err(e) => return fail(&format!("cannot read run {}: {e}", args.run)),
        };
        let values = match secret_values(&client, &ns, &run).await {
            Ok(values) => values,
            Err(reason) => return fail(&format!("logs withheld: {reason}")),
        };
        let cluster = KubeCluster::new(client, ns);
        let status = run.status.unwrap_or_default();
        for step in &status.steps {
            let wanted = args
                .step
                .as_deref()
                .is_none_or(|s| step.name == s || step.name.contains(&format!("-{s}-")));
            let Some(pod) = step.pod.clone().filter(|_| wanted) else {
                continue;
            };
            if step.phase == StepPhase::Running && !args.follow {
                let _ = writeln!(std::io::stderr(), "{}: running (use --follow)", step.name);
                continue;
            }
            let mut masker = match SecretMasker::new(values.iter()) {
                Ok(masker) => masker,
                Err(e) => return fail(&format!("logs withheld: {e}")),
            };
            let object = ObjectRef::new(ObjectKind::Pod, pod);
            if let Err(e) = stream_masked_logs(
                &cluster,
                &object,
                MAIN_CONTAINER,
                &mut masker,
                &Stdout,
                &step.name,
                step.attempt,
            )
            .await
            {
                let _ = writeln!(std::io::stderr(), "{}: {e}", step.name);
            }
        }
        ExitCode::SUCCESS
    })
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

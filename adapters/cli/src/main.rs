//! `c8s`: validate, plan and render CI sidecar, task and pipeline files as
//! Kubernetes pods, and run them on a cluster.
//!
//! Exit codes: 0 success, 1 invalid input, 2 usage error.

mod alloc;
mod archive;
mod concourse;
mod documents;
mod follow;
mod helm;
mod incluster;
mod input;
mod plan;
mod pod_flags;
mod render;
mod run;
mod run_fetch;
mod run_reconcile;
mod secrets;
mod serve;
mod watch;

use std::io::Write;
use std::process::ExitCode;

use c8s_pipeline_model::Errors;
use c8s_sidecar_core::SourceReader;
use clap::{Parser, Subcommand, ValueEnum};

/// Turn CI task definitions into Kubernetes pods, deterministically.
#[derive(Debug, Parser)]
#[command(name = "c8s", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check files and report every problem with its file:line:column.
    Validate {
        /// Sidecar files, Concourse task configs or `.c8s.yaml` pipelines.
        #[arg(required = true)]
        files: Vec<String>,
        /// What the files are; detected from each file's content when absent
        /// (a list: sidecars; a mapping with `steps`: a pipeline; with `run`,
        /// `image_resource` or `platform`: a task config).
        #[arg(long, value_enum)]
        kind: Option<documents::Kind>,
        /// Concourse options (vars, versions, artifacts).
        #[command(flatten)]
        concourse: concourse::ConcourseArgs,
    },
    /// Show what a pipeline run will do: matrix combinations, layers, skipped
    /// steps, the critical path and resources. Sidecar files are read
    /// relative to the pipeline's directory.
    Plan {
        /// The pipeline file.
        pipeline: String,
        /// The branch of the run (evaluates `branches` and `conditional`).
        #[arg(long)]
        branch: Option<String>,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
        output: plan::Format,
        /// Concourse options; with `--concourse-job` (or `--job`), that job's step DAG.
        #[command(flatten)]
        concourse: concourse::ConcourseArgs,
        /// A Concourse pipeline's job: show its step DAG.
        #[arg(long = "job", value_name = "NAME")]
        plan_job: Option<String>,
    },
    /// Render a pipeline (every matrix combination), a task config or a
    /// sidecar file as Pods or Jobs: YAML for `kubectl apply -f -`.
    Render(Box<render::RenderArgs>),
    /// Write Helm charts: sidecar injection, or a pipeline run's pods.
    #[command(subcommand)]
    Helm(helm::HelmCommand),
    /// Run a pipeline (or task) on the current kube context: each step starts
    /// as soon as its dependencies succeeded; exits 0 only if the run succeeded.
    Run(Box<run::RunArgs>),
    /// Check a Concourse pipeline's resources in the cluster (each every
    /// `check_every`) and run each build their new versions trigger, as
    /// Concourse's scheduler does (`trigger: true`, `passed:`); what was
    /// seen and started is kept in a ConfigMap, so each version triggers a
    /// job once.
    Watch(Box<watch::WatchArgs>),
    /// Delete pods and jobs left behind by finished or crashed runs.
    Reap(run::ReapArgs),
    /// Run the in-cluster controller that drives PipelineRuns (one acting
    /// replica at a time, chosen by a Lease).
    Controller(serve::ControllerArgs),
    /// List runs in the cluster.
    Get {
        /// What to list.
        #[arg(value_enum)]
        kind: incluster::GetKind,
        /// The namespace (default: the kube context's).
        #[arg(long, short = 'n')]
        namespace: Option<String>,
    },
    /// Print the masked logs of a PipelineRun's steps.
    Logs(incluster::LogsArgs),
    /// Serve a read-only web dashboard of the cluster's runs (their DAGs,
    /// steps and masked logs, kept current live), with the kube context's
    /// credentials.
    Dashboard(serve::DashboardArgs),
    /// Serve push webhooks (`/hooks/github`, `/hooks/gitlab`,
    /// `/hooks/bitbucket`) that create PipelineRuns, and with
    /// `--tls-cert-file` the validating admission webhook (`/validate`).
    Webhook(serve::WebhookArgs),
    /// Print the CustomResourceDefinitions of `Pipeline`, `PipelineRun` and
    /// `RepositoryConnection` (for `kubectl apply -f -`).
    Crd,
    /// Print a JSON Schema, for editors.
    Schema {
        /// Which format.
        kind: SchemaKind,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SchemaKind {
    /// A `.c8s.yaml` pipeline.
    Pipeline,
    /// A Concourse task config (with inline sidecars).
    Task,
    /// A sidecar file.
    Sidecars,
}

/// Reads files from the local file system.
struct FsSource;

impl SourceReader for FsSource {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Validate {
            files,
            kind,
            concourse,
        } => validate(&files, kind, &concourse),
        Command::Plan {
            pipeline,
            branch,
            output,
            mut concourse,
            plan_job,
        } => {
            concourse.concourse_job = concourse.concourse_job.or(plan_job);
            plan_command(&pipeline, branch.as_deref(), output, &concourse)
        }
        Command::Render(args) => render::run(&args, report_errors, print_stdout),
        Command::Helm(command) => helm::run(&command, report_errors, print_stdout),
        Command::Run(args) if args.in_cluster => incluster::run_in_cluster(&args),
        Command::Run(args) => run::run(&args, report_errors),
        Command::Watch(args) => watch::watch(&args, report_errors),
        Command::Controller(args) => {
            serve::log_to_stderr(args.log_format);
            alloc::purge_in_background();
            serve::controller(&args)
        }
        Command::Get { kind, namespace } => incluster::get(kind, namespace.as_deref()),
        Command::Logs(args) => incluster::logs(&args),
        Command::Dashboard(args) => {
            alloc::purge_in_background();
            serve::dashboard(&args)
        }
        Command::Webhook(args) => {
            serve::log_to_stderr(args.log_format);
            alloc::purge_in_background();
            serve::webhook(&args)
        }
        Command::Reap(args) => run::reap(&args),
        Command::Crd => match c8s_controller::crd::crd_yaml() {
            Ok(text) => print_stdout(&text),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Command::Schema { kind } => {
            let schema = match kind {
                SchemaKind::Pipeline => c8s_pipeline_model::schema::pipeline_file_schema(),
                SchemaKind::Task => c8s_pipeline_model::schema::task_file_schema(),
                SchemaKind::Sidecars => c8s_pipeline_model::schema::sidecar_file_schema(),
            };
            let text = serde_json::to_string_pretty(&schema).unwrap_or_default();
            print_stdout(&format!("{text}\n"))
        }
    }
}

fn validate(
    files: &[String],
    kind: Option<documents::Kind>,
    concourse: &concourse::ConcourseArgs,
) -> ExitCode {
    let mut failed = false;
    let mut out = String::new();
    let mut err = String::new();
    for file in files {
        let result = FsSource
            .read(file)
            .map_err(|e| {
                Errors::from(c8s_pipeline_model::Error::Read {
                    file: file.clone(),
                    reason: c8s_sidecar_core::load::read_reason(&e),
                })
            })
            .and_then(|bytes| {
                documents::validate_with(file, &bytes, kind, concourse)
                    .map(|(kind, warnings)| (kind, warnings, bytes))
            });
        match result {
            Ok((kind, warnings, bytes)) => {
                for warning in warnings {
                    err.push_str(&format!("warning: {warning}\n"));
                }
                out.push_str(&format!("ok: {file}\n"));
                err.push_str(&sidecar_warnings(file, &bytes, kind, concourse));
            }
            Err(errors) => {
                failed = true;
                err.push_str(&report_errors(file, &errors));
            }
        }
    }
    let _ = std::io::stderr().write_all(err.as_bytes());
    let code = print_stdout(&out);
    if failed { ExitCode::from(1) } else { code }
}

/// What c8s cannot check about the sidecars of a valid `file`, one
/// `warning:` line each (once per sidecar, not per matrix combination).
fn sidecar_warnings(
    file: &str,
    bytes: &[u8],
    kind: documents::Kind,
    concourse: &concourse::ConcourseArgs,
) -> String {
    // The load's own warnings were said by `validate_with`.
    let Ok(loaded) = render::load_plans_for(file, bytes, Some(kind), None, concourse) else {
        return String::new();
    };
    let mut lines = std::collections::BTreeSet::new();
    for sidecar in loaded.plans.iter().flat_map(|plan| &plan.sidecars) {
        for warning in c8s_pod_builder::services::warnings(sidecar) {
            lines.insert(format!(
                "warning: {file}: sidecar {:?}: {warning}\n",
                sidecar.name
            ));
        }
    }
    lines.into_iter().collect()
}

/// Every error of `file` with the offending line under it.
fn report_errors(file: &str, errors: &Errors) -> String {
    errors.render_with_sources(|error_file| documents::source_of(file, error_file))
}

fn plan_command(
    file: &str,
    branch: Option<&str>,
    format: plan::Format,
    concourse: &concourse::ConcourseArgs,
) -> ExitCode {
    let result = FsSource
        .read(file)
        .map_err(|e| {
            Errors::from(c8s_pipeline_model::Error::Read {
                file: file.to_owned(),
                reason: c8s_sidecar_core::load::read_reason(&e),
            })
        })
        .and_then(|bytes| {
            let text =
                c8s_sidecar_core::yaml::as_utf8(file, &bytes).map_err(c8s_pipeline_model::Error::document)?;
            if documents::detect_kind(file, text) == Some(documents::Kind::Concourse) {
                return concourse::plan(file, text, concourse, format);
            }
            plan::plan(file, &bytes, branch).map(|report| plan::render(&report, format))
        });
    match result {
        Ok(text) => print_stdout(&text),
        Err(errors) => {
            let _ = std::io::stderr().write_all(report_errors(file, &errors).as_bytes());
            ExitCode::from(1)
        }
    }
}

/// Writes to stdout; a closed pipe (`c8s ... | head`) is not an error.
fn print_stdout(text: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(1),
    }
}

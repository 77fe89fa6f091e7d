//! `c8s helm`: write Helm charts.
//!
//! - `c8s helm sidecars FILE... --out DIR [--name CHART]`: a chart whose named
//!   templates inject the sidecars of FILE... into any workload
//!   (`{{ include "<chart>.sidecars" . | nindent 8 }}`).
//! - `c8s helm pipeline FILE --out DIR [--name CHART] [render flags]`: a chart
//!   whose `helm template` prints, with default values, exactly what
//!   `c8s render FILE [render flags]` prints (compared as parsed YAML).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use c8s_pipeline_model::Errors;
use c8s_sidecar_core::SourceReader;
use clap::{Args, Subcommand};

use crate::render::{self, RenderArgs};

/// `c8s helm` subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process; boxing buys nothing
pub enum HelmCommand {
    /// Write a sidecar injection chart from sidecar files.
    Sidecars(SidecarsArgs),
    /// Write a chart that renders a pipeline run's (or a task's) Pods or Jobs.
    Pipeline(Box<PipelineArgs>),
}

/// Options of `c8s helm sidecars`.
#[derive(Debug, Args)]
pub struct SidecarsArgs {
    /// Sidecar files; their sidecars are checked together, as one pod's.
    #[arg(required = true)]
    pub files: Vec<String>,
    /// The chart directory to write (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// The chart's name (a DNS-1123 label); default: the first file's stem.
    #[arg(long)]
    pub name: Option<String>,
}

/// Options of `c8s helm pipeline`: those of `c8s render`, plus where to write.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// The chart directory to write (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// The chart's name (a DNS-1123 label); default: the pipeline's name.
    #[arg(long)]
    pub name: Option<String>,
    /// What to render, as for `c8s render` (`-o` is ignored).
    #[command(flatten)]
    pub render: RenderArgs,
}

/// Reads files from the local file system, relative to the working directory.
struct Fs;

impl SourceReader for Fs {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

/// Runs `c8s helm`: input errors go through `report` (file:line:column and a
/// snippet); a summary line goes through `print`. Exit code 1 on any error.
pub fn run(
    command: &HelmCommand,
    report: fn(&str, &Errors) -> String,
    print: fn(&str) -> ExitCode,
) -> ExitCode {
    let result = match command {
        HelmCommand::Sidecars(args) => sidecars(args, report),
        HelmCommand::Pipeline(args) => pipeline(args, report),
    };
    match result {
        Ok(summary) => print(&summary),
        Err(message) => {
            eprint!("{message}");
            ExitCode::from(1)
        }
    }
}

fn sidecars(args: &SidecarsArgs, report: fn(&str, &Errors) -> String) -> Result<String, String> {
    let sidecars = c8s_sidecar_core::load_sidecar_files(&Fs, &args.files).map_err(|errors| {
        // Each error shows the line of its own file.
        errors
            .iter()
            .map(|e| report(&e.position().file, &Errors::new(vec![e.clone().into()])))
            .collect::<String>()
    })?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => stem(args.files.first().map(String::as_str).unwrap_or("sidecars")),
    };
    let chart =
        c8s_helm::sidecar_chart(&name, &sidecars).map_err(|e| format!("error: {e}{}\n", name_hint(&e)))?;
    write(&chart, &args.out)
}

fn pipeline(args: &PipelineArgs, report: fn(&str, &Errors) -> String) -> Result<String, String> {
    let render_args = &args.render;
    let file = render_args.file.as_str();
    let loaded = std::fs::read(file)
        .map_err(|e| {
            Errors::from(c8s_pipeline_model::Error::Read {
                file: file.to_owned(),
                reason: c8s_sidecar_core::load::read_reason(&e),
            })
        })
        .and_then(|bytes| {
            render::load_plans_for(
                file,
                &bytes,
                render_args.kind,
                render_args.branch.as_deref(),
                &render_args.concourse,
            )
        })
        .and_then(|loaded| {
            // A chart installs every pod at once: a step rendered only when the job runs cannot be in it.
            crate::concourse::refuse_deferred(file, &loaded.deferred)?;
            Ok(loaded)
        })
        .map_err(|errors| report(file, &errors))?;
    loaded.print_warnings();
    let ctx = render::context(render_args, &loaded.repository);
    let name = match (&args.name, loaded.plans.first()) {
        (Some(name), _) => name.clone(),
        (None, Some(plan)) => plan.identity.pipeline.clone(),
        (None, None) => stem(file),
    };
    // A chart installs every pod at once: finally steps need the runner's ordering.
    let (finally, plans): (Vec<_>, Vec<_>) = loaded.plans.into_iter().partition(|p| p.finally);
    for plan in &finally {
        eprintln!(
            "warning: finally step {:?} is left out of the chart (only `c8s run` runs finally steps)",
            plan.identity.step
        );
    }
    let chart = c8s_helm::pipeline_chart(&name, &plans, &ctx, render_args.job)
        .map_err(|e| format!("error: {file}: {e}{}\n", name_hint(&e)))?;
    write(&chart, &args.out)
}

fn write(chart: &c8s_helm::Chart, out: &Path) -> Result<String, String> {
    chart.write_to(out).map_err(|e| format!("error: {e}\n"))?;
    Ok(format!("wrote chart {} to {}\n", chart.name(), out.display()))
}

/// A file's stem without `.c8s`: the default chart name.
fn stem(file: &str) -> String {
    Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .map(|s| s.trim_end_matches(".c8s"))
        .filter(|s| !s.is_empty())
        .unwrap_or("c8s")
        .to_owned()
}

fn name_hint(error: &c8s_helm::Error) -> &'static str {
    match error {
        c8s_helm::Error::InvalidChartName { .. } => " (choose one with --name)",
        _ => "",
    }
}

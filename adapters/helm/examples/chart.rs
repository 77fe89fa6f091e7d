//! Writes a chart from files, for trying the charts by hand and for
//! `scripts/bench-helm.sh` (until `c8s helm` is wired into the CLI):
//!
//! ```text
//! cargo run -p c8s-helm --example chart -- sidecars OUT NAME FILE...
//! cargo run -p c8s-helm --example chart -- pipeline OUT FILE [--job]
//! ```
//!
//! A pipeline is rendered as `c8s render FILE --commit "" --build 1 --run-id local` would.

use std::path::Path;
use std::process::ExitCode;

use c8s_helm::pod_builder::RunContext;
use c8s_helm::pod_builder::model::parse_pipeline;
use c8s_helm::pod_builder::model::sidecar::{SourceReader, load_sidecar_files};

struct Beside(std::path::PathBuf);

impl SourceReader for Beside {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.0.join(path))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    match args {
        [kind, out, name, files @ ..] if kind == "sidecars" => {
            let sidecars = load_sidecar_files(&Beside(".".into()), files)?;
            c8s_helm::sidecar_chart(name, &sidecars)?.write_to(Path::new(out))?;
        }
        [kind, out, file, rest @ ..] if kind == "pipeline" => {
            let text = std::fs::read_to_string(file)?;
            let dir = Path::new(file).parent().unwrap_or(Path::new(".")).to_path_buf();
            let pipeline = parse_pipeline(file, &text, &Beside(dir))?;
            let run = pipeline.expand(None)?;
            let ctx = RunContext::new("local", 1).with_repository(pipeline.repository.clone());
            let job = rest.iter().any(|a| a == "--job");
            c8s_helm::pipeline_chart(&pipeline.name, &run.plans, &ctx, job)?.write_to(Path::new(out))?;
        }
        _ => return Err("usage: chart sidecars OUT NAME FILE... | chart pipeline OUT FILE [--job]".into()),
    }
    Ok(())
}

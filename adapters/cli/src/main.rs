//! `c8s`: validate CI sidecar, task and pipeline files, and (later) render them
//! as Kubernetes pods.
//!
//! Exit codes: 0 success, 1 invalid input, 2 usage error.

mod snippet;

use std::io::Write;
use std::process::ExitCode;

use c8s_sidecar_core::{Errors, SourceReader};
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
        /// Sidecar files (YAML lists of sidecars).
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Print a JSON Schema, for editors.
    Schema {
        /// Which format.
        kind: SchemaKind,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SchemaKind {
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
        Command::Validate { files } => validate(&files),
        Command::Schema {
            kind: SchemaKind::Sidecars,
        } => {
            let schema = c8s_sidecar_core::sidecar_file_schema();
            let text = serde_json::to_string_pretty(&schema).unwrap_or_default();
            print_stdout(&format!("{text}\n"))
        }
    }
}

fn validate(files: &[String]) -> ExitCode {
    let mut failed = false;
    let mut out = String::new();
    let mut err = String::new();
    for file in files {
        let result = FsSource
            .read(file)
            .map_err(|e| {
                Errors::from(c8s_sidecar_core::Error::Read {
                    file: file.clone(),
                    reason: c8s_sidecar_core::load::read_reason(&e),
                })
            })
            .and_then(|bytes| c8s_sidecar_core::parse_sidecars_bytes(file, &bytes).map(|_| bytes));
        match result {
            Ok(_) => out.push_str(&format!("ok: {file}\n")),
            Err(errors) => {
                failed = true;
                let source = std::fs::read(file).ok();
                for error in errors.iter() {
                    err.push_str(&format!("error: {error}\n"));
                    if let Some(bytes) = &source {
                        err.push_str(&snippet::render(bytes, &error.position()));
                    }
                }
            }
        }
    }
    let _ = std::io::stderr().write_all(err.as_bytes());
    let code = print_stdout(&out);
    if failed { ExitCode::from(1) } else { code }
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

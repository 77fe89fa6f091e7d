//! What a file given to `c8s` holds ([`Kind`]) and where the files it names
//! are read from ([`DirSource`]): the layer below the readers of each kind
//! (`documents`, `concourse`, `plan`).

use std::path::{Path, PathBuf};

use c8s_sidecar_core::SourceReader;
use clap::ValueEnum;

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// A YAML list of sidecars.
    Sidecars,
    /// A Concourse task config (with optional inline sidecars).
    Task,
    /// A `.c8s.yaml` pipeline.
    Pipeline,
    /// A Concourse task step (`task:` with `config:` or `file:`).
    TaskStep,
    /// A Concourse pipeline (`jobs:` with plans).
    Concourse,
}

/// Reads files relative to a directory: a pipeline's `sidecarFiles` are
/// resolved relative to the pipeline file's own directory, so a pipeline
/// validates the same from wherever `c8s` is run.
pub struct DirSource {
    dir: PathBuf,
}

impl DirSource {
    /// Paths relative to the directory holding `file`.
    pub fn beside(file: &str) -> Self {
        let dir = Path::new(file)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Self { dir }
    }

    /// The path `path` (as written in the pipeline) refers to.
    pub fn resolve(&self, path: &str) -> PathBuf {
        self.dir.join(path)
    }
}

impl SourceReader for DirSource {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.resolve(path))
    }
}

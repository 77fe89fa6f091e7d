//! Sidecars a step loads from files (through a [`SourceReader`]) next to its
//! inline ones: each file is parsed and checked once, and names and ports
//! must be unique across everything one pod gets.

use crate::subject::Finding;
use c8s_sidecar_core::validate::{self, Placed};
use c8s_sidecar_core::{FieldPath, SidecarConfig, SourceReader, yaml};

use crate::error::Error;

/// A sidecar file that was read and parsed: its name, text, document index
/// in the [`Locator`](validate::Locator), and sidecars.
pub(crate) struct LoadedFile {
    pub path: String,
    pub text: String,
    pub doc: usize,
    pub sidecars: Vec<SidecarConfig>,
}

/// Reads and parses each distinct path once, in first-use order. Read and
/// syntax errors go to `errors`; `doc` numbers the files from `first_doc`.
pub(crate) fn read_all<'p>(
    reader: &dyn SourceReader,
    paths: impl Iterator<Item = &'p String>,
    first_doc: usize,
    errors: &mut Vec<Error>,
) -> Vec<LoadedFile> {
    let mut seen: Vec<&str> = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        if seen.contains(&path.as_str()) {
            continue;
        }
        seen.push(path);
        let bytes = match reader.read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                errors.push(Error::Read {
                    file: path.clone(),
                    reason: c8s_sidecar_core::load::read_reason(&e),
                });
                continue;
            }
        };
        let parsed = yaml::as_utf8(path, &bytes).and_then(|text| {
            let sidecars = if text.trim().is_empty() {
                Vec::new()
            } else {
                yaml::from_str(path, text)?
            };
            Ok((text.to_owned(), sidecars))
        });
        match parsed {
            Ok((text, sidecars)) => files.push(LoadedFile {
                path: path.clone(),
                text,
                doc: first_doc + files.len(),
                sidecars,
            }),
            Err(e) => errors.push(Error::Sidecar(e)),
        }
    }
    files
}

/// Checks every sidecar of every file on its own.
pub(crate) fn check_files(files: &[LoadedFile], findings: &mut Vec<Finding>) {
    for file in files {
        for (i, sidecar) in file.sidecars.iter().enumerate() {
            let path = FieldPath::root().index(i);
            validate::check_sidecar(
                Placed {
                    sidecar,
                    doc: file.doc,
                    path: &path,
                },
                findings,
            );
        }
    }
}

/// The sidecars of one step's pod: the inline ones at `base.sidecars[i]` in
/// document `doc`, then those of its files. Checks names and ports across
/// all of them and returns the file sidecars, in order.
pub(crate) fn check_step(
    doc: usize,
    base: &FieldPath,
    inline: &[SidecarConfig],
    paths: &[String],
    files: &[LoadedFile],
    findings: &mut Vec<Finding>,
) -> Vec<SidecarConfig> {
    let inline_paths: Vec<FieldPath> = (0..inline.len()).map(|i| base.key("sidecars").index(i)).collect();
    let used: Vec<&LoadedFile> = paths
        .iter()
        .filter_map(|p| files.iter().find(|f| &f.path == p))
        .collect();
    let file_paths: Vec<Vec<FieldPath>> = used
        .iter()
        .map(|f| {
            (0..f.sidecars.len())
                .map(|i| FieldPath::root().index(i))
                .collect()
        })
        .collect();
    let mut placed: Vec<Placed<'_>> = inline
        .iter()
        .zip(&inline_paths)
        .map(|(sidecar, path)| Placed { sidecar, doc, path })
        .collect();
    for (file, paths) in used.iter().zip(&file_paths) {
        for (sidecar, path) in file.sidecars.iter().zip(paths) {
            placed.push(Placed {
                sidecar,
                doc: file.doc,
                path,
            });
        }
    }
    validate::check_pod_sidecars(&placed, findings);
    used.iter().flat_map(|f| f.sidecars.iter().cloned()).collect()
}

/// Removes repeated findings (a file shared by two steps, a rule broken in
/// every matrix combination), keeping the first of each.
pub(crate) fn dedup(findings: Vec<Finding>) -> Vec<Finding> {
    let mut unique: Vec<Finding> = Vec::with_capacity(findings.len());
    for finding in findings {
        if !unique.contains(&finding) {
            unique.push(finding);
        }
    }
    unique
}

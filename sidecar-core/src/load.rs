//! Parsing sidecar files, alone or several at once through a [`SourceReader`].

use std::collections::BTreeMap;

use crate::error::{Error, Errors};
use crate::path::FieldPath;
use crate::types::SidecarConfig;
use crate::validate::{self, Locator, Placed};
use crate::yaml;

/// Reads a file's bytes by path. The core never touches the file system: the
/// CLI passes one that does, tests pass a [`MemorySource`].
pub trait SourceReader {
    /// The bytes of `path`, or why they cannot be had.
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>>;
}

/// An in-memory [`SourceReader`]: a map from path to bytes.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    files: BTreeMap<String, Vec<u8>>,
}

impl MemorySource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a file.
    pub fn with(mut self, path: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        self.files.insert(path.into(), bytes.into());
        self
    }
}

impl SourceReader for MemorySource {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"))
    }
}

/// Parses and validates one sidecar file (a YAML list of sidecars).
///
/// ```
/// let text = "- name: postgres\n  image: postgres:16\n  ports: [{containerPort: 5432}]\n";
/// let sidecars = c8s_sidecar_core::parse_sidecars("ci/pg.yml", text).unwrap();
/// assert_eq!(sidecars[0].name, "postgres");
///
/// let err = c8s_sidecar_core::parse_sidecars("ci/pg.yml", "- name: Postgres\n  image: postgres:16\n");
/// assert!(err.unwrap_err().to_string().starts_with("ci/pg.yml:1:3: sidecar \"Postgres\": name:"));
/// ```
pub fn parse_sidecars(file: &str, text: &str) -> Result<Vec<SidecarConfig>, Errors> {
    let sidecars: Vec<SidecarConfig> = parse_list(file, text)?;
    let mut locator = Locator::new();
    let doc = locator.add(file, text);
    let findings = validate::check_list(&sidecars, doc, &FieldPath::root());
    if findings.is_empty() {
        Ok(sidecars)
    } else {
        Err(locator.locate(findings))
    }
}

/// Like [`parse_sidecars`], from raw bytes (which must be UTF-8).
pub fn parse_sidecars_bytes(file: &str, bytes: &[u8]) -> Result<Vec<SidecarConfig>, Errors> {
    let text = yaml::as_utf8(file, bytes)?;
    parse_sidecars(file, text)
}

fn parse_list(file: &str, text: &str) -> Result<Vec<SidecarConfig>, Error> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    yaml::from_str(file, text)
}

/// Loads several sidecar files for one pod: each is parsed and validated, and
/// names and ports must also be unique across files. Reports every problem of
/// every file; a duplicate names both files.
pub fn load_sidecar_files<S: AsRef<str>>(
    reader: &dyn SourceReader,
    files: &[S],
) -> Result<Vec<SidecarConfig>, Errors> {
    let mut errors = Vec::new();
    let mut texts: Vec<(String, String, Vec<SidecarConfig>)> = Vec::new();
    for file in files {
        let file = file.as_ref();
        let bytes = match reader.read(file) {
            Ok(bytes) => bytes,
            Err(e) => {
                errors.push(Error::Read {
                    file: file.to_owned(),
                    reason: read_reason(&e),
                });
                continue;
            }
        };
        let parsed =
            yaml::as_utf8(file, &bytes).and_then(|text| Ok((text.to_owned(), parse_list(file, text)?)));
        match parsed {
            Ok((text, sidecars)) => texts.push((file.to_owned(), text, sidecars)),
            Err(e) => errors.push(e),
        }
    }
    let mut locator = Locator::new();
    let mut paths = Vec::new();
    for (file, text, sidecars) in &texts {
        let doc = locator.add(file, text);
        paths.push((
            doc,
            (0..sidecars.len())
                .map(|i| FieldPath::root().index(i))
                .collect::<Vec<_>>(),
        ));
    }
    let mut placed = Vec::new();
    for ((_, _, sidecars), (doc, doc_paths)) in texts.iter().zip(&paths) {
        for (sidecar, path) in sidecars.iter().zip(doc_paths) {
            placed.push(Placed {
                sidecar,
                doc: *doc,
                path,
            });
        }
    }
    let mut findings = Vec::new();
    for p in &placed {
        validate::check_sidecar(*p, &mut findings);
    }
    validate::check_pod_sidecars(&placed, &mut findings);
    errors.extend(locator.locate(findings));
    if errors.is_empty() {
        Ok(texts.into_iter().flat_map(|(_, _, sidecars)| sidecars).collect())
    } else {
        Err(Errors::new(errors))
    }
}

/// A short, stable reason for a read failure.
pub fn read_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "file not found".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}

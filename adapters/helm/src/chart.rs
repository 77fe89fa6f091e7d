//! `Chart`: an in-memory chart directory, written with [`Chart::write_to`].

use std::collections::BTreeMap;
use std::path::Path;

use crate::Error;

/// A Helm chart in memory: file contents by path relative to the chart
/// directory (`Chart.yaml`, `values.yaml`, `templates/...`), in sorted order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    name: String,
    files: BTreeMap<String, String>,
}

impl Chart {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            files: BTreeMap::new(),
        }
    }

    pub(crate) fn add(&mut self, path: &str, contents: String) {
        self.files.insert(path.to_owned(), contents);
    }

    /// The chart's name (`name` in `Chart.yaml`, prefix of its named templates).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every file as (relative path, contents), sorted by path.
    pub fn files(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files.iter().map(|(p, c)| (p.as_str(), c.as_str()))
    }

    /// The contents of the file at `path` (relative, `/`-separated).
    pub fn file(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(String::as_str)
    }

    /// Writes every file under `dir` (created if missing), replacing files of
    /// the same name; other files in `dir` are left alone.
    pub fn write_to(&self, dir: &Path) -> Result<(), Error> {
        for (path, contents) in &self.files {
            let target = path.split('/').fold(dir.to_path_buf(), |p, part| p.join(part));
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|source| Error::Write {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            std::fs::write(&target, contents).map_err(|source| Error::Write { path: target, source })?;
        }
        Ok(())
    }
}

/// Checks that `name` can be a chart name and a template-name prefix.
pub(crate) fn check_chart_name(name: &str) -> Result<(), Error> {
    c8s_pod_builder::model::sidecar::names::dns1123_label(name).map_err(|reason| Error::InvalidChartName {
        name: name.to_owned(),
        reason,
    })
}

/// `Chart.yaml` (apiVersion v2). `name` is a checked DNS-1123 label and
/// `description` is quoted, so the text is well-formed YAML.
pub(crate) fn chart_yaml(name: &str, description: &str) -> String {
    let description = serde_json::Value::String(description.to_owned());
    format!(
        "apiVersion: v2\n\
         name: {name}\n\
         description: {description}\n\
         type: application\n\
         version: 0.1.0\n\
         appVersion: \"{}\"\n\
         annotations:\n  \
           c8s.dev/generator: \"c8s {}\"\n",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION"),
    )
}

//! [`parse_pipeline`]: strict parsing, loading of `sidecarFiles`, every rule;
//! and [`Pipeline::validate`] for pipelines built in code. Types live in
//! `pipeline.rs`, rules in `check.rs`: this module only calls them.

use std::sync::Arc;

use c8s_sidecar_core::validate::{Locator, Placed};
use c8s_sidecar_core::{FieldPath, SourceReader};

use crate::error::{Error, Errors, Problem};

use crate::check;
use crate::pipeline::{Pipeline, PipelineDoc, PipelineOptions, Source};
use crate::sidecar_files;

impl Pipeline {
    /// A locator whose document 0 is the file the pipeline was read from
    /// (`<input>`, with no lines, for a pipeline built in code).
    pub(crate) fn locator(&self) -> Locator<'_> {
        let mut locator = Locator::new();
        match &self.source.0 {
            Some(source) => locator.add(&source.0, &source.1),
            None => locator.add("<input>", ""),
        };
        locator
    }

    /// `problem` at `path`, about step number `i` of [`Pipeline::all_steps`]
    /// (`None`: about the pipeline itself), located in the pipeline's file.
    pub(crate) fn error_at(&self, step: Option<usize>, path: FieldPath, problem: Problem) -> Errors {
        let locator = self.locator();
        let subject = step.map(|i| {
            let name = self.all_steps().nth(i).map_or("", |s| s.name.as_str());
            let base = crate::subject::step_path(self, i);
            (format!("step {}", c8s_sidecar_core::error::quoted(name)), base)
        });
        let subject = subject.as_ref().map(|(label, base)| (label.clone(), base));
        Errors::from(Error::at(&locator, path, subject, problem))
    }

    /// Checks the pipeline against every rule. A pipeline built in code has
    /// no file: its errors name `<input>` and a field path, no line.
    pub fn validate(&self, options: &PipelineOptions) -> Result<(), Errors> {
        let locator = self.locator();
        let doc = 0;
        let mut findings = check::pipeline(self, doc, options);
        for (i, step) in self.all_steps().enumerate() {
            let base = crate::subject::step_path(self, i);
            let loaded: Vec<FieldPath> = (0..step.loaded_sidecars.len())
                .map(|j| base.key("loadedSidecars").index(j))
                .collect();
            let mut placed: Vec<Placed<'_>> = Vec::new();
            let inline: Vec<FieldPath> = (0..step.sidecars.len())
                .map(|j| base.key("sidecars").index(j))
                .collect();
            for (sidecar, path) in step.sidecars.iter().zip(&inline) {
                placed.push(Placed { sidecar, doc, path });
            }
            for (sidecar, path) in step.loaded_sidecars.iter().zip(&loaded) {
                let here = Placed { sidecar, doc, path };
                c8s_sidecar_core::validate::check_sidecar(here, &mut findings);
                placed.push(here);
            }
            c8s_sidecar_core::validate::check_pod_sidecars(&placed, &mut findings);
        }
        let findings = sidecar_files::dedup(findings);
        if findings.is_empty() {
            Ok(())
        } else {
            Err(Errors::new(crate::error::locate(&locator, findings, doc)))
        }
    }
}

/// Parses and validates a `.c8s.yaml` pipeline; `sidecarFiles` are read
/// through `reader` with the paths as written. Reports every problem.
///
/// ```
/// use c8s_pipeline_model::{parse_pipeline, MemorySource};
/// let text = "\
/// name: demo
/// repository: https://example.com/demo.git
/// steps:
///   - name: test
///     image: alpine:3
///     dependsOn: [lint]
///   - name: lint
///     image: alpine:3
///     dependsOn: [test]
/// ";
/// let errors = parse_pipeline(".c8s.yaml", text, &MemorySource::new()).unwrap_err();
/// assert_eq!(
///     errors.to_string(),
///     ".c8s.yaml:9:5: step \"lint\": dependsOn: dependency cycle: lint -> test -> lint"
/// );
/// ```
pub fn parse_pipeline(file: &str, text: &str, reader: &dyn SourceReader) -> Result<Pipeline, Errors> {
    parse_pipeline_with(file, text, reader, &PipelineOptions::default())
}

/// Like [`parse_pipeline`], with options (the matrix cap).
pub fn parse_pipeline_with(
    file: &str,
    text: &str,
    reader: &dyn SourceReader,
    options: &PipelineOptions,
) -> Result<Pipeline, Errors> {
    let doc: PipelineDoc = c8s_sidecar_core::yaml::from_str(file, text).map_err(Error::document)?;
    let mut pipeline = Pipeline::from(doc);
    let mut locator = Locator::new();
    let main = locator.add(file, text);
    let mut findings = check::pipeline(&pipeline, main, options);
    let mut errors = Vec::new();
    let files = sidecar_files::read_all(
        reader,
        pipeline.all_steps().flat_map(|s| s.sidecar_files.iter()),
        main + 1,
        &mut errors,
    );
    for loaded in &files {
        locator.add(&loaded.path, &loaded.text);
    }
    sidecar_files::check_files(&files, &mut findings);
    let paths: Vec<FieldPath> = (0..pipeline.all_steps().count())
        .map(|i| crate::subject::step_path(&pipeline, i))
        .collect();
    for (step, base) in pipeline
        .steps
        .iter_mut()
        .chain(pipeline.finally.iter_mut())
        .zip(paths)
    {
        step.loaded_sidecars = sidecar_files::check_step(
            main,
            &base,
            &step.sidecars,
            &step.sidecar_files,
            &files,
            &mut findings,
        );
    }
    let findings = sidecar_files::dedup(findings);
    errors.extend(crate::error::locate(&locator, findings, main));
    if errors.is_empty() {
        pipeline.source = Source(Some(Arc::new((file.to_owned(), text.to_owned()))));
        Ok(pipeline)
    } else {
        Err(Errors::new(errors))
    }
}

/// The words YAML 1.1 reads as booleans, in every spelling it accepts
/// (<https://yaml.org/type/bool.html>).
const YAML11_BOOLEANS: [&str; 22] = [
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false", "False",
    "FALSE", "on", "On", "ON", "off", "Off", "OFF",
];

/// A warning for each mapping key of the first document of `text` that a
/// YAML 1.1 reader — kubectl and Go's `sigs.k8s.io/yaml`, PyYAML — would read
/// as a boolean, so that a pipeline applied through `kubectl apply` would
/// lose it: `file:line:column: ...`, in document order. c8s reads YAML 1.2,
/// where these are plain strings; `retries.on` is the old name of
/// `retries.when` and is still read.
///
/// ```
/// let text = "name: p\nretries: { limit: 1, on: [infrastructure] }\nsteps: []\n";
/// let warnings = c8s_pipeline_model::yaml11_key_warnings("p.c8s.yaml", text);
/// assert_eq!(warnings.len(), 1);
/// assert!(warnings[0].starts_with("p.c8s.yaml:2:22: `retries.on`"), "{}", warnings[0]);
/// ```
pub fn yaml11_key_warnings(file: &str, text: &str) -> Vec<String> {
    let map = c8s_sidecar_core::yaml::SourceMap::build(file, text);
    let mut found: Vec<(u32, u32, String)> = map
        .entries()
        .filter_map(|(path, at)| {
            let Some(c8s_sidecar_core::path::Segment::Key(key)) = path.segments().last() else {
                return None;
            };
            let word = key.as_str();
            let boolean = YAML11_BOOLEANS.contains(&word);
            if !boolean {
                return None;
            }
            let advice = if word == "on"
                && path
                    .parent()
                    .and_then(|p| p.segments().last().cloned())
                    .is_some_and(|s| s == c8s_sidecar_core::path::Segment::Key("retries".into()))
            {
                "is the old name of `when`: write `when`".to_owned()
            } else {
                "is not a key kubectl keeps: quote it or rename it".to_owned()
            };
            Some((
                at.line,
                at.column,
                format!(
                    "{at}: `{path}` {advice} (YAML 1.1 readers such as kubectl and PyYAML read the key `{word}` as a boolean)"
                ),
            ))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, _, warning)| warning).collect()
}

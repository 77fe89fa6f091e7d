//! [`parse_pipeline`]: strict parsing, loading of `sidecarFiles`, every rule;
//! and [`Pipeline::validate`] for pipelines built in code. Types live in
//! `pipeline.rs`, rules in `check.rs`: this module only calls them.

use c8s_sidecar_core::validate::Placed;
use c8s_sidecar_core::{Errors, FieldPath, SourceReader};

use crate::check;
use crate::pipeline::{Pipeline, PipelineDoc, PipelineOptions};
use crate::sidecar_files;

impl Pipeline {
    /// Checks a pipeline built in code against every rule (errors have no
    /// line numbers: there is no file).
    pub fn validate(&self, options: &PipelineOptions) -> Result<(), Errors> {
        let mut locator = c8s_sidecar_core::validate::Locator::new();
        let doc = locator.add("<input>", "");
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
            Err(locator.locate(findings))
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
    let doc: PipelineDoc = c8s_sidecar_core::yaml::from_str(file, text)?;
    let mut pipeline = Pipeline::from(doc);
    let mut locator = c8s_sidecar_core::validate::Locator::new();
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
    errors.extend(locator.locate(findings));
    if errors.is_empty() {
        Ok(pipeline)
    } else {
        Err(Errors::new(errors))
    }
}

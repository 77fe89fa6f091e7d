//! The pipeline rules, as functions that push [`Finding`]s: a
//! problem at a field path, located later only if there is one.

use crate::error::Problem;
use c8s_sidecar_core::Problem as Rule;
use std::collections::BTreeMap;

use crate::subject::Finding;
use c8s_sidecar_core::validate::{self, Placed};
use c8s_sidecar_core::{FieldPath, names, rules};

use crate::links;
use crate::matrix::{self, Matrix, known_dimensions};
use crate::ordered::OrderedMap;
use crate::pipeline::{Pipeline, PipelineOptions, Step};
// Re-exported for the task-config rules in task.rs.
pub(crate) use crate::subject::Subject;
use crate::subject::{step_path, step_subject};
use crate::substitute::substitute_sidecar;

/// Every finding about `pipeline` (except its sidecar files, checked where
/// they are read) in document `doc`.
pub(crate) fn pipeline(pipeline: &Pipeline, doc: usize, options: &PipelineOptions) -> Vec<Finding> {
    let mut findings = Vec::new();
    let root = FieldPath::root();
    let mut top = Subject::at(&mut findings, doc, root.clone(), None);
    if let Err(reason) = names::dns1123_label(&pipeline.name) {
        top.problem(
            root.key("name"),
            Rule::InvalidName {
                value: pipeline.name.clone(),
                reason,
            },
        );
    }
    if pipeline.repository.trim().is_empty() {
        top.problem(root.key("repository"), Rule::Empty);
    }
    globs(&mut top, &pipeline.branches, &root.key("branches"));
    crate::pod::check::pod_overrides(&mut top, &pipeline.pod, &root);
    if let Some(timeout) = &pipeline.timeout {
        duration(&mut top, timeout, root.key("timeout"));
    }
    if pipeline.steps.is_empty() {
        top.problem(root.key("steps"), Rule::Empty);
    }
    let combinations = match &pipeline.matrix {
        Some(m) => check_matrix(&mut top, m, options),
        None => vec![OrderedMap::new()],
    };
    let dimensions: Vec<&str> = pipeline
        .matrix
        .as_ref()
        .map(|m| m.dimensions.keys().collect())
        .unwrap_or_default();

    let mut first_by_name: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, step) in pipeline.all_steps().enumerate() {
        match first_by_name.get(step.name.as_str()) {
            Some(&first) => step_subject(&mut findings, doc, pipeline, i).duplicate(
                step_path(pipeline, i).key("name"),
                "step",
                &step.name,
                step_path(pipeline, first).key("name"),
            ),
            None => {
                first_by_name.insert(&step.name, i);
            }
        }
    }
    retries(
        &mut top_again(&mut findings, doc),
        pipeline.retries.as_ref(),
        root.key("retries"),
    );
    let dag = links::step_graph(pipeline, &first_by_name, doc, &mut findings);
    for (i, step) in pipeline.all_steps().enumerate() {
        let mut subject = step_subject(&mut findings, doc, pipeline, i);
        check_step(&mut subject, step, &dimensions, &combinations);
        let at = subject.path().clone();
        crate::pod::check::pod_overrides(&mut subject, &step.pod, &at);
        retries(&mut subject, step.retries.as_ref(), at.key("retries"));
        links::check_links(&mut subject, pipeline, step, &first_by_name, dag.as_ref());
    }
    findings
}

fn top_again(findings: &mut Vec<Finding>, doc: usize) -> Subject<'_> {
    Subject::at(findings, doc, FieldPath::root(), None)
}

/// A retry limit beyond [`crate::MAX_RETRIES`] hides a broken step.
fn retries(subject: &mut Subject<'_>, retries: Option<&crate::Retries>, at: FieldPath) {
    if let Some(r) = retries.filter(|r| r.limit > crate::MAX_RETRIES) {
        subject.problem(
            at,
            Rule::TooLarge {
                value: i64::from(r.limit),
                max: i64::from(crate::MAX_RETRIES),
            },
        );
    }
}

fn globs(subject: &mut Subject<'_>, globs: &[String], at: &FieldPath) {
    for (i, glob) in globs.iter().enumerate() {
        if glob.trim().is_empty() {
            subject.problem(at.index(i), Rule::Empty);
        }
    }
}

fn duration(subject: &mut Subject<'_>, value: &str, at: FieldPath) {
    match crate::parse_duration(value) {
        Err(reason) => subject.problem(
            at,
            Problem::InvalidDuration {
                value: value.to_owned(),
                reason,
            },
        ),
        // A timeout becomes activeDeadlineSeconds, which the API server bounds to int32.
        Ok(seconds) if seconds > validate::MAX_INT32 as u64 => subject.problem(
            at,
            Rule::TooLarge {
                value: i64::try_from(seconds).unwrap_or(i64::MAX),
                max: validate::MAX_INT32,
            },
        ),
        Ok(_) => {}
    }
}

/// Checks the matrix and returns the value sets to check steps with (none
/// when the matrix is too large to expand).
fn check_matrix(top: &mut Subject<'_>, m: &Matrix, options: &PipelineOptions) -> Vec<OrderedMap<String>> {
    let at = FieldPath::root().key("matrix");
    if m.dimensions.is_empty() {
        top.problem(at.key("dimensions"), Rule::Empty);
    }
    for (name, values) in m.dimensions.iter() {
        let here = at.key("dimensions").key(name);
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            top.problem(
                here.clone(),
                Rule::InvalidName {
                    value: name.to_owned(),
                    reason: "a dimension name may contain only letters, digits, '_' and '-'".to_owned(),
                },
            );
        }
        if values.is_empty() {
            top.problem(here, Rule::Empty);
        }
    }
    let known = || known_dimensions(m.dimensions.keys());
    for (section, entries) in [("exclude", &m.exclude), ("include", &m.include)] {
        for (i, entry) in entries.iter().enumerate() {
            let here = at.key(section).index(i);
            for name in entry.keys().filter(|k| !m.dimensions.contains_key(k)) {
                top.problem(
                    here.key(name),
                    Problem::UnknownDimension {
                        name: name.to_owned(),
                        known: known(),
                    },
                );
            }
            if section == "include" {
                for name in m.dimensions.keys().filter(|k| !entry.contains_key(k)) {
                    top.problem(
                        here.clone(),
                        Problem::MissingDimension {
                            name: name.to_owned(),
                        },
                    );
                }
            }
        }
    }
    match m.combinations(options.max_combinations) {
        Ok(combinations) => combinations.into_iter().map(|c| c.values).collect(),
        Err(problem) => {
            top.problem(at, problem);
            Vec::new()
        }
    }
}

/// The fields of `step` that may use `${{ matrix.X }}`, with their paths.
fn templated_fields<'s>(step: &'s Step, at: &FieldPath) -> Vec<(FieldPath, &'s str)> {
    let mut fields = vec![(at.key("image"), step.image.as_str())];
    for (i, c) in step.commands.iter().enumerate() {
        fields.push((at.key("commands").index(i), c));
    }
    for (k, v) in step.env.iter() {
        // A step-result reference is checked with the links between steps.
        if crate::results::result_reference(v).is_none() {
            fields.push((at.key("env").key(k), v));
        }
    }
    for (j, s) in step.sidecars.iter().enumerate() {
        let here = at.key("sidecars").index(j);
        fields.push((here.key("image"), &s.image));
        for (i, c) in s.command.iter().enumerate() {
            fields.push((here.key("command").index(i), c));
        }
        for (i, a) in s.args.iter().enumerate() {
            fields.push((here.key("args").index(i), a));
        }
        for (i, e) in s.env.iter().enumerate() {
            if let Some(v) = &e.value {
                fields.push((here.key("env").index(i).key("value"), v));
            }
        }
    }
    fields
}

fn check_step(s: &mut Subject<'_>, step: &Step, dimensions: &[&str], combinations: &[OrderedMap<String>]) {
    let at = s.path().clone();
    if let Err(reason) = names::dns1123_label(&step.name) {
        s.problem(
            at.key("name"),
            Rule::InvalidName {
                value: step.name.clone(),
                reason,
            },
        );
    }
    let mut templates_ok = true;
    for (path, text) in templated_fields(step, &at) {
        match matrix::referenced_dimensions(text) {
            Ok(used) => {
                for name in used.iter().filter(|n| !dimensions.contains(&n.as_str())) {
                    templates_ok = false;
                    let known = known_dimensions(dimensions.iter().copied());
                    s.problem(
                        path.clone(),
                        Problem::UnknownDimension {
                            name: name.clone(),
                            known,
                        },
                    );
                }
            }
            Err(problem) => {
                templates_ok = false;
                s.problem(path, problem);
            }
        }
    }
    if step.image.trim().is_empty() {
        s.problem(at.key("image"), Rule::Empty);
    } else if templates_ok {
        check_substituted(s, step, combinations);
    }
    rules::resources(&step.resources, &at.key("resources"), s);
    if let Some(timeout) = &step.timeout {
        duration(s, timeout, at.key("timeout"));
    }
    relative_paths(s, &step.caches, &at.key("caches"), "cache");
    relative_paths(s, &step.outputs, &at.key("outputs"), "output");
    result_names(s, &step.results, &at.key("results"));
    environment(s, step, &at);
    if let Some(c) = &step.conditional {
        if c.branches.is_empty() {
            s.problem(at.key("conditional").key("branches"), Rule::Empty);
        }
        globs(s, &c.branches, &at.key("conditional").key("branches"));
    }
    rules::run_as_user(step.run_as_user, step.run_as_root, &at.key("runAsUser"), s);
}

/// Rules that hold only after `${{ matrix.X }}` substitution, for every
/// combination: the image reference and the inline sidecars.
fn check_substituted(s: &mut Subject<'_>, step: &Step, combinations: &[OrderedMap<String>]) {
    let at = s.path().clone();
    let paths: Vec<FieldPath> = (0..step.sidecars.len())
        .map(|j| at.key("sidecars").index(j))
        .collect();
    for values in combinations {
        if let Ok(image) = matrix::substitute(&step.image, values)
            && let Err(reason) = names::image_reference(&image)
        {
            s.problem(at.key("image"), Rule::InvalidImage { value: image, reason });
        }
        let sidecars: Vec<_> = step
            .sidecars
            .iter()
            .filter_map(|sc| substitute_sidecar(sc, values).ok())
            .collect();
        for (sidecar, path) in sidecars.iter().zip(&paths) {
            let placed = Placed {
                sidecar,
                doc: s.doc(),
                path,
            };
            validate::check_sidecar(placed, s.findings());
        }
    }
}

/// Whether `path` is relative and stays inside the workspace.
fn relative_paths(s: &mut Subject<'_>, paths: &[String], at: &FieldPath, kind: &'static str) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, path) in paths.iter().enumerate() {
        if let Err(reason) = c8s_sidecar_core::paths::workspace_relative(path) {
            let value = path.clone();
            s.problem(at.index(i), Problem::InvalidRelativePath { value, reason });
        } else if let Some(&first) = seen.get(path.as_str()) {
            s.duplicate(at.index(i), kind, path, at.index(first));
        } else {
            seen.insert(path, i);
        }
    }
}

fn result_names(s: &mut Subject<'_>, results: &[String], at: &FieldPath) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, name) in results.iter().enumerate() {
        if let Err(reason) = crate::results::check_result_name(name) {
            let value = name.clone();
            s.problem(at.index(i), Rule::InvalidName { value, reason });
        } else if let Some(&first) = seen.get(name.as_str()) {
            s.duplicate(at.index(i), "result", name, at.index(first));
        } else {
            seen.insert(name, i);
        }
    }
}

fn environment(s: &mut Subject<'_>, step: &Step, at: &FieldPath) {
    let mut seen: BTreeMap<&str, FieldPath> = BTreeMap::new();
    for (name, _) in step.env.iter() {
        let here = at.key("env").key(name);
        if let Err(reason) = names::env_var_name(name) {
            s.problem(
                here.clone(),
                Rule::InvalidEnvName {
                    value: name.to_owned(),
                    reason,
                },
            );
        }
        seen.insert(name, here);
    }
    for (i, secret) in step.secrets.iter().enumerate() {
        let here = at.key("secrets").index(i);
        if let Err(reason) = names::dns1123_subdomain(&secret.secret_ref) {
            let value = secret.secret_ref.clone();
            s.problem(here.key("secretRef"), Rule::InvalidSecretName { value, reason });
        }
        if let Err(reason) = names::config_key(&secret.key) {
            let value = secret.key.clone();
            s.problem(here.key("key"), Rule::InvalidSecretKey { value, reason });
        }
        if let Err(reason) = names::env_var_name(&secret.env_var) {
            let value = secret.env_var.clone();
            s.problem(here.key("envVar"), Rule::InvalidEnvName { value, reason });
        }
        match seen.get(secret.env_var.as_str()) {
            Some(first) => s.duplicate(here.key("envVar"), "env var", &secret.env_var, first.clone()),
            None => {
                seen.insert(&secret.env_var, here.key("envVar"));
            }
        }
    }
}

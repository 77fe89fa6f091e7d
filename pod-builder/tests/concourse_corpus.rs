//! The Concourse compatibility corpus: every real task config and pipeline
//! in the corpus (`C8S_CONCOURSE_CORPUS`, by default `concourse/` in the
//! `shared/` folder beside the workspace) either renders to pods that pass
//! `kubernetes-validate --strict` and the Pod Security check, or is rejected
//! with located errors naming the reason. Prints the counts by category.

#[path = "common/tools.rs"]
mod tools;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use c8s_pod_builder::model::Errors;
use c8s_pod_builder::model::concourse::ConcoursePipeline;
use c8s_pod_builder::model::concourse::node::Report;
use c8s_pod_builder::model::concourse::resource::check_plan;
use c8s_pod_builder::model::concourse::triggers::checked_resources;
use c8s_pod_builder::model::{PlanIdentity, TaskPlan, TaskStep, Vars, parse_task_config_with, visit_task};
use c8s_pod_builder::{RunContext, SecurityProfile, pod_security_level, render_pod, to_canonical_yaml};

fn corpus() -> PathBuf {
    tools::concourse_corpus()
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus().join(dir))
        .unwrap_or_else(|e| panic!("the corpus {} is needed: {e}", corpus().join(dir).display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    files
}

/// Every error names its file and a line: no unlocated rejection.
fn assert_located(file: &str, errors: &Errors) {
    assert!(!errors.is_empty(), "{file}: rejected without an error");
    for error in errors.iter() {
        let at = error.position();
        assert!(
            at.file == file || !at.file.is_empty(),
            "{file}: error names no file: {error}"
        );
        assert!(at.line > 0, "{file}: error has no line: {error}");
    }
}

/// The variable names an error list says are missing.
fn missing_vars(errors: &Errors) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for error in errors.iter() {
        let text = error.to_string();
        let start = text.find("var ((")? + 6;
        let end = text[start..].find(")) has no value")? + start;
        names.push(text[start..end].to_owned());
    }
    Some(names)
}

/// The reason category of a rejection, from its first error.
fn category(errors: &Errors) -> &'static str {
    let text = errors.to_string();
    let reasons = [
        ("spruce", "spruce template"),
        ("ytt template", "ytt template"),
        ("{{param}}", "old {{param}} template"),
        ("platform", "platform not linux"),
        ("numeric UID", "run.user is a name"),
        ("image type", "image type is not a registry type"),
        ("cannot read task file", "task file not in the corpus"),
        ("unknown field", "unknown field"),
        ("is required", "required field missing"),
        ("local var", "uses load_var/across values"),
        ("load_var", "uses load_var/across values"),
        ("`across`", "across"),
        ("is not defined", "names something not defined (a fragment)"),
    ];
    reasons
        .iter()
        .find(|(needle, _)| text.contains(needle))
        .map_or("other", |(_, name)| name)
}

/// A Concourse `((var))` left in rendered text; shell arithmetic `$((…))` in
/// c8s's own scripts is not one, nor a load_var placeholder of the plan (the
/// pod replaces it when the step runs).
fn has_unresolved_var(text: &str, plan: &TaskPlan) -> bool {
    let mut placeholders: Vec<String> = plan.local_vars.iter().map(|v| v.placeholder()).collect();
    if !plan.local_vars.is_empty() {
        // The load_var wrapper's own script builds each placeholder it replaces.
        placeholders.push("((.:$c8s_name))".to_owned());
    }
    text.match_indices("((").any(|(i, _)| {
        !text[..i].ends_with('$') && !placeholders.iter().any(|p| text[i..].starts_with(p.as_str()))
    })
}

fn ctx() -> RunContext {
    RunContext::new("run-1", 1).with_namespace("ci")
}

/// Renders `plan`, checks its Pod Security level, writes it for kubernetes-validate.
fn render(plan: &TaskPlan, out: &Path, name: &str, written: &mut Vec<PathBuf>) {
    let pod = render_pod(plan, &ctx()).unwrap_or_else(|e| panic!("{name}: render failed: {e}"));
    let spec = pod.spec.as_ref().expect("spec");
    let expected = if plan.privileged {
        None
    } else if plan.run_as_root {
        Some(SecurityProfile::Baseline)
    } else {
        Some(SecurityProfile::Restricted)
    };
    assert_eq!(pod_security_level(spec), expected, "{name}: Pod Security level");
    let path = out.join(format!("{}.yaml", written.len()));
    std::fs::write(&path, to_canonical_yaml(&pod).expect("yaml")).expect("write");
    written.push(path);
}

#[test]
#[ignore = "needs kubernetes-validate and the Concourse corpus (C8S_CONCOURSE_CORPUS)"]
fn every_task_config_renders_or_is_rejected_with_a_located_reason() {
    let out = std::env::temp_dir().join(format!("c8s-concourse-tasks-{}", std::process::id()));
    std::fs::create_dir_all(&out).expect("temp dir");
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut written = Vec::new();
    let all = files("tasks");
    assert_eq!(all.len(), 241, "the task corpus changed");
    for path in &all {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_owned();
        let text = std::fs::read_to_string(path).expect("read");
        let mut vars = Vars::new();
        let mut with_vars = false;
        let config = match parse_task_config_with(&name, &text, &vars) {
            Ok(config) => config,
            Err(errors) => {
                assert_located(&name, &errors);
                // Missing vars: every one is named; given with -v, the file renders.
                match missing_vars(&errors) {
                    Some(missing) => {
                        for var in &missing {
                            assert!(!text.contains(&format!("(({var}))")) || !var.is_empty());
                            vars.set(
                                var.clone(),
                                format!("value-of-{}", var.replace(['.', ':', '/'], "-")),
                            );
                        }
                        with_vars = true;
                        match parse_task_config_with(&name, &text, &vars) {
                            Ok(config) => config,
                            Err(errors) => {
                                assert_located(&name, &errors);
                                *counts
                                    .entry(format!("rejected: {}", category(&errors)))
                                    .or_default() += 1;
                                continue;
                            }
                        }
                    }
                    None => {
                        *counts
                            .entry(format!("rejected: {}", category(&errors)))
                            .or_default() += 1;
                        continue;
                    }
                }
            }
        };
        let mut step = TaskStep::new("task", config);
        let kind = if step.config.image().is_none() {
            // The config leaves the image to its step (`image:` in the pipeline).
            step.image = Some("registry.example.com/step-image:1.0".to_owned());
            "rendered, image from the step"
        } else if with_vars {
            "rendered after -v for its vars"
        } else {
            "rendered as written"
        };
        let plan = visit_task("corpus", &step, &c8s_pod_builder::model::MemorySource::new())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            !has_unresolved_var(
                &to_canonical_yaml(&render_pod(&plan, &ctx()).expect("pod")).expect("yaml"),
                &plan
            ),
            "{name}: a var left in the pod"
        );
        render(&plan, &out, &name, &mut written);
        *counts.entry(kind.to_owned()).or_default() += 1;
    }
    println!("Concourse task configs ({}):", all.len());
    for (kind, n) in &counts {
        println!("  {n:4}  {kind}");
    }
    assert_eq!(counts.values().sum::<usize>(), all.len());
    tools::kubernetes_validate("1.33.0", &written);
    let _ = std::fs::remove_dir_all(&out);
    let _ = PlanIdentity::new("", "");
}

/// Reads `ARTIFACT/path` as the corpus file of `repo` at `path` (the task
/// files a pipeline's `file:` names, as its repository has them).
struct CorpusReader {
    by_path: BTreeMap<String, PathBuf>,
}

impl c8s_pod_builder::model::SourceReader for CorpusReader {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        let rest = path.split_once('/').map_or(path, |(_, rest)| rest);
        match self.by_path.get(rest) {
            Some(file) => std::fs::read(file),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not in the corpus",
            )),
        }
    }
}

/// SOURCES.tsv: repository of each corpus file, and path in it.
fn sources() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(corpus().join("SOURCES.tsv")).expect("SOURCES.tsv");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols.len() >= 4).then(|| (cols[0].to_owned(), cols[1].to_owned(), cols[3].to_owned()))
        })
        .collect()
}

#[test]
#[ignore = "needs kubernetes-validate and the Concourse corpus (C8S_CONCOURSE_CORPUS)"]
fn every_pipeline_renders_or_is_rejected_with_a_located_reason() {
    let out = std::env::temp_dir().join(format!("c8s-concourse-pipelines-{}", std::process::id()));
    std::fs::create_dir_all(&out).expect("temp dir");
    let sources = sources();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut written = Vec::new();
    let mut rejected = Vec::new();
    let (mut jobs, mut pods, mut deferred_steps, mut readers, mut checks) = (0, 0, 0, 0, 0);
    let all = files("pipelines");
    assert_eq!(all.len(), 53, "the pipeline corpus changed");
    for path in &all {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_owned();
        let text = std::fs::read_to_string(path).expect("read");
        let repo = sources
            .iter()
            .find(|(_, _, file)| file == &format!("pipelines/{name}"))
            .map(|(repo, _, _)| repo.clone())
            .expect("in SOURCES.tsv");
        let by_path = sources
            .iter()
            .filter(|(r, _, file)| r == &repo && file.starts_with("tasks/"))
            .map(|(_, p, file)| (p.clone(), corpus().join(file)))
            .collect();
        let reader = CorpusReader { by_path };
        let mut vars = Vars::new();
        let mut outcome = lower_all(&name, &text, &vars, &reader);
        let mut with_vars = false;
        if let Err(errors) = &outcome
            && let Some(missing) = missing_vars(errors)
        {
            // Every missing var is named; given with -v, the pipeline is read again.
            for var in missing {
                vars.set(
                    var.clone(),
                    format!("value-of-{}", var.replace(['.', ':', '/'], "-")),
                );
            }
            with_vars = true;
            outcome = lower_all(&name, &text, &vars, &reader);
        }
        match outcome {
            Ok((pipeline, plans)) => {
                jobs += plans.len();
                // The check pod `c8s watch` runs for each resource a job
                // gets, asking from a version it knows.
                for resource in checked_resources(&pipeline) {
                    let identity = PlanIdentity::new(&pipeline.name, format!("check-{}", resource.name));
                    let mut report = Report::new(&name);
                    let check = check_plan(
                        &pipeline,
                        identity,
                        resource,
                        Some(r#"{"ref":"abc"}"#.to_owned()),
                        &mut Vec::new(),
                        &mut report,
                    )
                    .unwrap_or_else(|| panic!("{name}: resource {} has no check", resource.name));
                    render(&check, &out, &name, &mut written);
                    checks += 1;
                }
                for plan in &plans {
                    for step in &plan.steps {
                        let yaml =
                            to_canonical_yaml(&render_pod(&step.plan, &ctx()).expect("pod")).expect("yaml");
                        assert!(
                            !has_unresolved_var(&yaml, &step.plan),
                            "{name}: a var left in a pod:\n{yaml}"
                        );
                        render(&step.plan, &out, &name, &mut written);
                        pods += 1;
                    }
                }
                // The reader pod `c8s run` adds for each task file it can
                // read when the job runs: after a step of the job, restricted.
                for plan in &plans {
                    for fetch in &plan.fetch {
                        let producer = plan
                            .steps
                            .iter()
                            .find(|s| s.plan.identity.step == fetch.producer)
                            .unwrap_or_else(|| {
                                panic!("{name}: no step {} makes {}", fetch.producer, fetch.file)
                            });
                        let pipeline = &producer.plan.identity.pipeline;
                        let reader = fetch.reader_plan(pipeline, &ctx().helper_image, "corpus");
                        render(&reader, &out, &name, &mut written);
                        readers += 1;
                    }
                }
                let deferred: usize = plans.iter().map(|p| p.deferred.len()).sum();
                let kind = match (with_vars, deferred > 0) {
                    (false, false) => "rendered: every job",
                    (true, false) => "rendered: every job, after -v for its vars",
                    (false, true) => "rendered: every job, some steps deferred to run time",
                    (true, true) => "rendered: every job, after -v, some steps deferred to run time",
                };
                deferred_steps += deferred;
                *counts.entry(kind.to_owned()).or_default() += 1;
            }
            Err(errors) => {
                assert_located(&name, &errors);
                *counts
                    .entry(format!("rejected: {}", category(&errors)))
                    .or_default() += 1;
                rejected.push(format!("{name}: {}", category(&errors)));
            }
        }
    }
    println!(
        "Concourse pipelines ({}): {jobs} jobs lowered, {pods} pods rendered, {deferred_steps} steps deferred to run time, {readers} files (task files, load_var values) read then by a reader pod, {checks} resource check pods (rendered too)",
        all.len()
    );
    for (kind, n) in &counts {
        println!("  {n:4}  {kind}");
    }
    println!("Rejected, each with its first reason:");
    for line in &rejected {
        println!("  {line}");
    }
    assert_eq!(counts.values().sum::<usize>(), all.len());
    tools::kubernetes_validate("1.33.0", &written);
    let _ = std::fs::remove_dir_all(&out);
}

/// Reads a pipeline and lowers every job.
fn lower_all(
    name: &str,
    text: &str,
    vars: &Vars,
    reader: &CorpusReader,
) -> Result<(ConcoursePipeline, Vec<c8s_pod_builder::model::concourse::JobPlan>), Errors> {
    use c8s_pod_builder::model::concourse::{lower_job, parse_concourse_pipeline};
    let pipeline = parse_concourse_pipeline(name, text, vars, reader)?;
    let plans = pipeline
        .jobs
        .iter()
        .map(|job| lower_job(&pipeline, &job.name, reader, &BTreeMap::new(), name))
        .collect::<Result<_, _>>()?;
    Ok((pipeline, plans))
}

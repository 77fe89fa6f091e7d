//! The rules between steps: `dependsOn` names existing steps, no self-loops
//! or cycles, and `inputs` come from (transitive) dependencies' declared outputs.

use crate::error::Problem;
use std::collections::{BTreeMap, BTreeSet};

use crate::subject::Finding;

use crate::dag::{Dag, DagError};
use crate::pipeline::{Pipeline, Step};
use crate::subject::{Subject, step_path, step_subject};

/// Builds the DAG from the valid `dependsOn` edges, reporting a cycle at the
/// `dependsOn` of its first step. `None` when there is a cycle.
pub(crate) fn step_graph(
    pipeline: &Pipeline,
    first_by_name: &BTreeMap<&str, usize>,
    doc: usize,
    findings: &mut Vec<Finding>,
) -> Option<Dag> {
    let all: Vec<&Step> = pipeline.all_steps().collect();
    // Edges to or from a finally step are errors of their own, never a cycle.
    let regular = |name: &str| first_by_name.get(name).is_some_and(|&i| i < pipeline.steps.len());
    let edges = first_by_name.iter().map(|(&name, &i)| {
        let deps: BTreeSet<&str> = all[i]
            .depends_on
            .iter()
            .map(String::as_str)
            .filter(|d| *d != name && regular(d) && regular(name))
            .collect();
        (name, deps)
    });
    match Dag::new(edges) {
        Ok(dag) => Some(dag),
        Err(DagError::Cycle { path }) => {
            let first = path.first().and_then(|n| first_by_name.get(n.as_str()).copied());
            if let Some(i) = first {
                let at = step_path(pipeline, i).key("dependsOn");
                step_subject(findings, doc, pipeline, i).problem(at, Problem::Cycle { path });
            }
            None
        }
        Err(_) => None,
    }
}

/// `dependsOn` and `inputs`: steps that exist, no self-loops, inputs only
/// from (transitive) dependencies and only declared outputs.
pub(crate) fn check_links(
    s: &mut Subject<'_>,
    pipeline: &Pipeline,
    step: &Step,
    first_by_name: &BTreeMap<&str, usize>,
    dag: Option<&Dag>,
) {
    let at = s.path().clone();
    let is_finally = |name: &str| {
        first_by_name
            .get(name)
            .is_some_and(|&i| i >= pipeline.steps.len())
    };
    let finally = is_finally(&step.name);
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (j, dep) in step.depends_on.iter().enumerate() {
        let here = at.key("dependsOn").index(j);
        if finally {
            s.problem(
                here,
                Problem::Unsupported {
                    value: dep.clone(),
                    expected: "no dependsOn in a finally step: it starts once every other step has finished"
                        .into(),
                },
            );
        } else if is_finally(dep) {
            s.problem(
                here,
                Problem::Unsupported {
                    value: dep.clone(),
                    expected: "a step outside finally (finally steps run last)".into(),
                },
            );
        } else if *dep == step.name {
            s.problem(here, Problem::SelfDependency);
        } else if !first_by_name.contains_key(dep.as_str()) {
            s.problem(here, Problem::UnknownStep { name: dep.clone() });
        } else if let Some(&first) = seen.get(dep.as_str()) {
            s.duplicate(here, "dependency", dep, at.key("dependsOn").index(first));
        } else {
            seen.insert(dep, j);
        }
    }
    for (j, input) in step.inputs.iter().enumerate() {
        let here = at.key("inputs").index(j);
        let Some(&producer) = first_by_name.get(input.step.as_str()) else {
            s.problem(
                here.key("step"),
                Problem::UnknownStep {
                    name: input.step.clone(),
                },
            );
            continue;
        };
        let direct = step.depends_on.contains(&input.step) && input.step != step.name;
        let transitive = || dag.is_some_and(|d| d.ancestors(&step.name).contains(input.step.as_str()));
        if finally {
            // A finally step may read what any other step left: it runs after all of them.
            if is_finally(&input.step) {
                s.problem(
                    here.key("step"),
                    Problem::Unsupported {
                        value: input.step.clone(),
                        expected: "a step outside finally (finally steps run side by side)".into(),
                    },
                );
            }
        } else if !direct && (dag.is_some() || input.step == step.name) && !transitive() {
            s.problem(
                here.key("step"),
                Problem::InputNotFromDependency {
                    step: input.step.clone(),
                },
            );
        }
        if !pipeline
            .all_steps()
            .nth(producer)
            .is_some_and(|p| p.outputs.contains(&input.output))
        {
            s.problem(
                here.key("output"),
                Problem::UnknownOutput {
                    step: input.step.clone(),
                    output: input.output.clone(),
                },
            );
        }
    }
    check_result_env(s, pipeline, step, first_by_name, dag);
}

/// `NAME: "${{ steps.S.results.R }}"`: S exists, is a (transitive)
/// dependency, and declares R.
fn check_result_env(
    s: &mut Subject<'_>,
    pipeline: &Pipeline,
    step: &Step,
    first_by_name: &BTreeMap<&str, usize>,
    dag: Option<&Dag>,
) {
    let at = s.path().clone();
    for (name, value) in step.env.iter() {
        let here = at.key("env").key(name);
        let (producer, result) = match crate::results::result_reference(value) {
            None => continue,
            Some(Err(reason)) => {
                let expression = value.clone();
                s.problem(here, Problem::InvalidExpression { expression, reason });
                continue;
            }
            Some(Ok(reference)) => reference,
        };
        let Some(&index) = first_by_name.get(producer.as_str()) else {
            s.problem(here, Problem::UnknownStep { name: producer });
            continue;
        };
        let direct = step.depends_on.contains(&producer) && producer != step.name;
        let transitive = || dag.is_some_and(|d| d.ancestors(&step.name).contains(producer.as_str()));
        if !direct && (dag.is_some() || producer == step.name) && !transitive() {
            s.problem(
                here.clone(),
                Problem::InputNotFromDependency {
                    step: producer.clone(),
                },
            );
        }
        let declared = &pipeline.steps[index].results;
        if !declared.contains(&result) {
            let known = if declared.is_empty() {
                "it declares no results".to_owned()
            } else {
                format!("it declares {}", declared.join(", "))
            };
            s.problem(
                here,
                Problem::InvalidExpression {
                    expression: value.clone(),
                    reason: format!(
                        "step {producer:?} declares no result {result:?} ({known}; add it to its `results`)"
                    ),
                },
            );
        }
    }
}

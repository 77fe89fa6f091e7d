//! Expansion: a validated pipeline and a branch become a [`RunPlan`] — the
//! matrix combinations, the layers, the skipped steps and one [`TaskPlan`]
//! per step that runs per combination.

use std::collections::BTreeMap;

use c8s_sidecar_core::{EnvVar, FieldPath};
use serde_derive::{Deserialize, Serialize};

use crate::dag::{Dag, DagError};
use crate::error::{Errors, Problem};
use crate::finally::{ATTEMPT_ENV, RUN_STATUS_ENV, UNKNOWN, step_status_env};
use crate::matrix::Combination;
use crate::ordered::OrderedMap;
use crate::pipeline::{Pipeline, PipelineOptions, Step};
use crate::plan::{PlanIdentity, PlanInput, TaskPlan};
use crate::schedule::SkipReason;
use crate::substitute::{substitute_all, substitute_sidecar};

/// Everything one run of a pipeline will do, decided before anything starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RunPlan {
    /// The pipeline's name.
    pub pipeline: String,
    /// The Git repository every step clones.
    #[serde(default)]
    pub repository: String,
    /// The whole-run deadline in seconds (the pipeline's `timeout`), if set; a
    /// step without its own `timeout` gets it as its pod's deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// The branch the run is for; `None`: conditions were not evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The matrix combinations in order (empty without a matrix).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub combinations: Vec<Combination>,
    /// Step names in topological layers, sorted within a layer (all steps,
    /// skipped ones included).
    pub layers: Vec<Vec<String>>,
    /// The steps that do not run, and why.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped: BTreeMap<String, SkipReason>,
    /// One plan per running step per combination: combinations in order,
    /// then steps in layer order.
    pub plans: Vec<TaskPlan>,
    /// One plan per running `finally` step per combination, in the order
    /// written: they start once every plan in `plans` has finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finally: Vec<TaskPlan>,
}

impl Pipeline {
    /// The step graph, built from `dependsOn`.
    pub fn dag(&self) -> Result<Dag, crate::DagError> {
        Dag::new(self.steps.iter().map(|s| (&s.name, &s.depends_on)))
    }

    /// The steps that do not run on `branch`: every step when the pipeline's
    /// `branches` do not match, otherwise the steps whose `conditional` does
    /// not match, and everything that depends on them.
    pub fn skipped_on(&self, dag: &Dag, branch: &str) -> BTreeMap<String, SkipReason> {
        let pipeline_runs =
            self.branches.is_empty() || self.branches.iter().any(|g| crate::branch_matches(g, branch));
        if !pipeline_runs {
            return dag
                .steps()
                .chain(self.finally.iter().map(|s| s.name.as_str()))
                .map(|s| (s.to_owned(), SkipReason::PipelineBranches))
                .collect();
        }
        let roots = self
            .steps
            .iter()
            .filter(|s| !s.runs_on(branch))
            .map(|s| s.name.as_str());
        let mut skipped = dag.propagate_skips(roots);
        for step in self.finally.iter().filter(|s| !s.runs_on(branch)) {
            skipped.insert(step.name.clone(), SkipReason::Condition);
        }
        skipped
    }

    /// Validates the pipeline, then expands it for a run on `branch` (`None`:
    /// every step runs) with the default options.
    ///
    /// ```
    /// use c8s_pipeline_model::{Conditional, Pipeline, Step};
    /// let mut publish = Step::new("publish", "alpine:3").depends_on(["test"]);
    /// publish.conditional = Some(Conditional::branches(["main"]));
    /// let pipeline = Pipeline::new(
    ///     "demo",
    ///     "https://example.com/demo.git",
    ///     vec![publish, Step::new("test", "alpine:3").with_commands(["make test"])],
    /// );
    /// let run = pipeline.expand(Some("feature/x")).unwrap();
    /// assert_eq!(run.layers, [vec!["test"], vec!["publish"]]);
    /// assert!(run.skipped.contains_key("publish"));
    /// assert_eq!(run.plans.len(), 1);
    /// assert_eq!(run.plans[0].args, ["make test"]);
    /// ```
    pub fn expand(&self, branch: Option<&str>) -> Result<RunPlan, Errors> {
        self.expand_with(branch, &PipelineOptions::default())
    }

    /// Like [`Pipeline::expand`], with options.
    pub fn expand_with(&self, branch: Option<&str>, options: &PipelineOptions) -> Result<RunPlan, Errors> {
        self.validate(options)?;
        let dag = self.dag().map_err(|e| self.dag_error(e))?;
        let combinations = match &self.matrix {
            Some(m) => m
                .combinations(options.max_combinations)
                .map_err(|p| self.error_at(None, FieldPath::root().key("matrix"), p))?,
            None => Vec::new(),
        };
        let skipped = branch.map(|b| self.skipped_on(&dag, b)).unwrap_or_default();
        let layers: Vec<Vec<String>> = dag
            .layers()
            .into_iter()
            .map(|l| l.into_iter().map(str::to_owned).collect())
            .collect();
        let run_timeout = self
            .timeout
            .as_deref()
            .and_then(|t| crate::parse_duration(t).ok());
        let by_name: BTreeMap<&str, &Step> = self.steps.iter().map(|s| (s.name.as_str(), s)).collect();
        let mut plans = Vec::new();
        let mut finally = Vec::new();
        let runs: Vec<Option<&Combination>> = if combinations.is_empty() {
            vec![None]
        } else {
            combinations.iter().map(Some).collect()
        };
        for combination in runs {
            for name in layers.iter().flatten() {
                if skipped.contains_key(name) {
                    continue;
                }
                if let Some(step) = by_name.get(name.as_str()) {
                    plans.push(self.plan_of(step, combination, run_timeout)?);
                }
            }
            for step in self.finally.iter().filter(|s| !skipped.contains_key(&s.name)) {
                let mut plan = self.plan_of(step, combination, run_timeout)?;
                plan.finally = true;
                // What the other steps left may be missing: they may have failed.
                for input in &mut plan.inputs {
                    input.optional = true;
                }
                plan.env.push(EnvVar::value(RUN_STATUS_ENV, UNKNOWN));
                for other in &self.steps {
                    let known = if skipped.contains_key(&other.name) {
                        "Skipped"
                    } else {
                        UNKNOWN
                    };
                    plan.env.push(EnvVar::value(step_status_env(&other.name), known));
                }
                finally.push(plan);
            }
        }
        Ok(RunPlan {
            pipeline: self.name.clone(),
            repository: self.repository.clone(),
            timeout_seconds: run_timeout,
            branch: branch.map(str::to_owned),
            combinations,
            layers,
            skipped,
            plans,
            finally,
        })
    }

    /// One step's plan for one combination, with the pipeline's pod
    /// overrides, retries and timeout applied.
    fn plan_of(
        &self,
        step: &Step,
        combination: Option<&Combination>,
        run_timeout: Option<u64>,
    ) -> Result<TaskPlan, Errors> {
        let mut plan = step_plan(&self.name, step, combination).map_err(|p| {
            let i = self.all_steps().position(|s| std::ptr::eq(s, step)).unwrap_or(0);
            self.error_at(Some(i), crate::subject::step_path(self, i), p)
        })?;
        plan.pod = self.pod.overlay(&plan.pod);
        if plan.retries.is_none() {
            plan.retries = self.retries.clone();
        }
        if plan.retries.as_ref().is_some_and(|r| r.limit > 0) {
            plan.env.push(EnvVar::value(ATTEMPT_ENV, "1"));
        }
        // No pod outlives the whole run: the pipeline's timeout caps each step's.
        plan.timeout_seconds = match (plan.timeout_seconds, run_timeout) {
            (Some(step), Some(run)) => Some(step.min(run)),
            (step, run) => step.or(run),
        };
        Ok(plan)
    }
}

impl RunPlan {
    /// What the run asks of the cluster: per layer, the effective requests of
    /// every pod in it (all combinations run side by side); the run's `peak`
    /// is its largest layer, `total` every pod together.
    pub fn resources(&self) -> crate::RunResources {
        let layer_of: BTreeMap<&str, usize> = self
            .layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| l.iter().map(move |s| (s.as_str(), i)))
            .collect();
        let mut by_layer: Vec<Vec<crate::EffectiveResources>> = vec![Vec::new(); self.layers.len()];
        for plan in &self.plans {
            if let Some(&layer) = layer_of.get(plan.identity.step.as_str()) {
                by_layer[layer].push(crate::plan_effective_resources(plan));
            }
        }
        crate::run_resources(&by_layer)
    }
}

impl Pipeline {
    /// A DAG failure as an error at the `dependsOn` of the step it is about.
    fn dag_error(&self, error: DagError) -> Errors {
        let index = |name: &str| self.steps.iter().position(|s| s.name == name);
        let depends_on = |i: usize| crate::subject::step_path(self, i).key("dependsOn");
        let dependency = |i: usize, name: &str| {
            let at = self
                .steps
                .get(i)
                .and_then(|s| s.depends_on.iter().position(|d| d == name));
            at.map_or_else(|| depends_on(i), |k| depends_on(i).index(k))
        };
        match error {
            DagError::Cycle { path } => {
                let i = path.first().and_then(|n| index(n)).unwrap_or(0);
                self.error_at(Some(i), depends_on(i), Problem::Cycle { path })
            }
            DagError::UnknownStep {
                step,
                dependency: name,
            } => {
                let i = index(&step).unwrap_or(0);
                self.error_at(Some(i), dependency(i, &name), Problem::UnknownStep { name })
            }
            DagError::SelfDependency { step } => {
                let i = index(&step).unwrap_or(0);
                self.error_at(Some(i), dependency(i, &step), Problem::SelfDependency)
            }
            DagError::DuplicateStep { step } => {
                let i = self.steps.iter().rposition(|s| s.name == step).unwrap_or(0);
                let first = index(&step).unwrap_or(0);
                let at = crate::subject::step_path(self, first).key("name");
                let problem = c8s_sidecar_core::Problem::Duplicate {
                    kind: "step",
                    name: step,
                    first: self.locator().position(0, &at),
                };
                let here = crate::subject::step_path(self, i).key("name");
                self.error_at(Some(i), here, problem.into())
            }
        }
    }
}

/// The plan of one step for one combination (`None`: no matrix): matrix
/// values substituted, commands joined under `sh -ec`, secrets as references.
pub fn step_plan(
    pipeline: &str,
    step: &Step,
    combination: Option<&Combination>,
) -> Result<TaskPlan, Problem> {
    let empty = OrderedMap::new();
    let values = combination.map_or(&empty, |c| &c.values);
    let mut identity = PlanIdentity::new(pipeline, &step.name);
    if let Some(c) = combination {
        identity.matrix_id = Some(c.id.clone());
        identity.matrix = c.to_map();
    }
    let mut plan = TaskPlan::new(identity, crate::matrix::substitute(&step.image, values)?);
    if !step.commands.is_empty() {
        plan.command = vec!["sh".to_owned(), "-ec".to_owned()];
        plan.args = vec![substitute_all(&step.commands, values)?.join("\n")];
    }
    for (name, value) in step.env.iter() {
        if let Some(Ok((producer, result))) = crate::results::result_reference(value) {
            plan.result_env
                .push(crate::results::ResultEnv::new(name, producer, result));
            continue;
        }
        plan.env
            .push(EnvVar::value(name, crate::matrix::substitute(value, values)?));
    }
    for secret in &step.secrets {
        plan.env
            .push(EnvVar::secret(&secret.env_var, &secret.secret_ref, &secret.key));
    }
    plan.inputs = step
        .inputs
        .iter()
        .map(|i| PlanInput::new(&i.step, &i.output))
        .collect();
    plan.outputs = step.outputs.clone();
    plan.results = step.results.clone();
    plan.caches = step.caches.clone();
    for sidecar in &step.sidecars {
        plan.sidecars.push(substitute_sidecar(sidecar, values)?);
    }
    plan.sidecars.extend(step.loaded_sidecars.iter().cloned());
    plan.resources = step.resources.clone();
    plan.timeout_seconds = step.timeout_seconds();
    plan.run_as_user = step.run_as_user;
    plan.run_as_root = step.run_as_root;
    plan.pod = step.pod.clone();
    plan.retries = step.retries.clone();
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dag_failures_point_at_the_step_they_are_about() {
        let text = "name: shop\nrepository: https://example.com/shop.git\nsteps:\n  - name: a\n    image: alpine:3\n  - name: b\n    image: alpine:3\n    dependsOn: [a]\n";
        let mut pipeline =
            crate::parse_pipeline(".c8s.yaml", text, &crate::MemorySource::new()).expect("valid");
        pipeline.steps[1].depends_on.push("x".into());
        let unknown = DagError::UnknownStep {
            step: "b".into(),
            dependency: "x".into(),
        };
        assert_eq!(
            pipeline.dag_error(unknown).to_string(),
            ".c8s.yaml:8:5: step \"b\": dependsOn[1]: step \"x\" is not defined"
        );
        let cycle = DagError::Cycle {
            path: vec!["b".into(), "a".into(), "b".into()],
        };
        assert_eq!(
            pipeline.dag_error(cycle).to_string(),
            ".c8s.yaml:8:5: step \"b\": dependsOn: dependency cycle: b -> a -> b"
        );
        let twice = DagError::DuplicateStep { step: "a".into() };
        assert_eq!(
            pipeline.dag_error(twice).to_string(),
            ".c8s.yaml:4:5: step \"a\": name: step \"a\" is already defined at .c8s.yaml:4:5"
        );
    }
}

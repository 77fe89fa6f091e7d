//! The rules `c8s run` ([`crate::run_pipeline`]) and the controller share,
//! written once: how a run's plans become steps ([`plan_steps`]) and the
//! scheduler's [`Policy`] for them ([`policy`]). The success rule is
//! [`crate::StepOutcome::succeeded`], the retry rule [`crate::retry_after`],
//! the `finally` env `c8s_pipeline_model::finally::outcome_env`.

use std::collections::BTreeMap;
use std::time::Duration;

use c8s_pipeline_model::TaskPlan;
use c8s_pipeline_model::finally::step_status_env;
use c8s_pipeline_model::scheduler::{Condition, Policy};
use c8s_pod_builder::RunContext;

use crate::cluster::StepObject;
use crate::options::Step;

/// One step per plan, rendered by pod-builder (as Jobs with `job`), named
/// after its object and depending on the objects of its `dependsOn` steps in
/// the same matrix combination (`depends_on`: each step of the pipeline, by
/// name, with the steps it depends on). A `finally` plan watches every step
/// of `depends_on` in its combination; a watched step without a plan (a
/// branch condition left it out) is watched under no object and reads
/// `Skipped`.
///
/// # Errors
/// A plan pod-builder cannot render.
pub fn plan_steps(
    plans: &[TaskPlan],
    depends_on: &BTreeMap<String, Vec<String>>,
    ctx: &RunContext,
    job: bool,
) -> Result<Vec<Step>, c8s_pod_builder::Error> {
    plan_steps_with(plans, depends_on, &BTreeMap::new(), ctx, job)
}

/// [`plan_steps`], each step also under its condition of `conditions` (by
/// step name, as a Concourse job's hooks run), the steps it names turned
/// into their objects' names as its dependencies are.
///
/// # Errors
/// A plan pod-builder cannot render.
pub fn plan_steps_with(
    plans: &[TaskPlan],
    depends_on: &BTreeMap<String, Vec<String>>,
    conditions: &BTreeMap<String, Condition>,
    ctx: &RunContext,
    job: bool,
) -> Result<Vec<Step>, c8s_pod_builder::Error> {
    let mut names: BTreeMap<(String, Option<String>), String> = BTreeMap::new();
    let mut objects = Vec::new();
    for plan in plans {
        let object = if job {
            StepObject::Job(Box::new(c8s_pod_builder::render_job(plan, ctx)?))
        } else {
            StepObject::Pod(Box::new(c8s_pod_builder::render_pod(plan, ctx)?))
        };
        let name = c8s_pod_builder::object_name(plan, ctx);
        names.insert(
            (plan.identity.step.clone(), plan.identity.matrix_id.clone()),
            name.clone(),
        );
        objects.push((plan, name, object));
    }
    let object_of = |step: &str, plan: &TaskPlan| {
        names
            .get(&(step.to_owned(), plan.identity.matrix_id.clone()))
            .cloned()
    };
    Ok(objects
        .into_iter()
        .map(|(plan, name, object)| {
            // A dependency without a plan was skipped; its dependents were skipped with it.
            let after: Vec<String> = depends_on
                .get(&plan.identity.step)
                .into_iter()
                .flatten()
                .filter_map(|dep| object_of(dep, plan))
                .collect();
            let mut step = Step::new(name, object).after(after);
            if let Some(seconds) = plan.timeout_seconds {
                step = step.with_timeout(Duration::from_secs(seconds));
            }
            if let Some(retries) = &plan.retries {
                step = step.with_retries(retries.clone());
            }
            if let Some(condition) = conditions.get(&plan.identity.step) {
                // A step without a plan is named as it is: it never runs.
                step = step.with_condition(
                    condition.renamed(&|other| object_of(other, plan).unwrap_or_else(|| other.to_owned())),
                );
            }
            if plan.finally {
                step = step.finally(Vec::<String>::new());
                step.outcome_env = depends_on
                    .keys()
                    .map(|other| (step_status_env(other), object_of(other, plan).unwrap_or_default()))
                    .collect();
            }
            step
        })
        .collect())
}

/// What a run's [`Policy`] takes besides its steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySettings {
    /// Steps at once (0: no limit).
    pub parallelism: usize,
    /// Stop the run at its first failure for good (else the independent
    /// steps go on).
    pub fail_fast: bool,
    /// Attempts per step before the user's retries: 1 plus the runner's own
    /// retries of infrastructure faults ([`crate::RetryPolicy`]).
    pub max_attempts: u32,
    /// The run's whole timeout, counted from when it started.
    pub run_timeout: Option<Duration>,
    /// How long ago the run started (a resumed or reconciled run keeps its
    /// first start's deadline): the deadline is `run_timeout - elapsed`
    /// from the policy's time origin.
    pub elapsed: Duration,
    /// The run was cancelled.
    pub cancelled: bool,
    /// When the run succeeded, over the steps' (object) names; `None`:
    /// when every step did.
    pub outcome: Option<Condition>,
}

impl PolicySettings {
    /// The settings of a run with `retry`'s budgets, all else default:
    /// fail-fast, no parallelism limit, no timeout.
    pub fn new(retry: &crate::RetryPolicy) -> Self {
        PolicySettings {
            parallelism: 0,
            fail_fast: true,
            max_attempts: 1 + retry.image_pull_retries + retry.disruption_retries,
            run_timeout: None,
            elapsed: Duration::ZERO,
            cancelled: false,
            outcome: None,
        }
    }
}

/// The scheduler's policy for `steps`: each step's timeout (also its
/// estimate for the critical path), `finally` steps and user retries.
pub fn policy(steps: &[Step], settings: &PolicySettings) -> Policy {
    let mut policy = Policy::default()
        .parallelism(settings.parallelism)
        .fail_fast(settings.fail_fast)
        .max_attempts(settings.max_attempts);
    if let Some(timeout) = settings.run_timeout {
        policy = policy.run_deadline(millis(timeout.saturating_sub(settings.elapsed)));
    }
    for step in steps {
        if let Some(timeout) = step.timeout {
            policy = policy
                .step_timeout_for(step.name.clone(), millis(timeout))
                .estimate(step.name.clone(), millis(timeout));
        }
        if step.finally {
            policy = policy.finally_step(step.name.clone());
        }
        if let Some(retries) = &step.retries {
            policy = policy.retries_for(step.name.clone(), retries.limit);
        }
        if let Some(condition) = &step.condition {
            policy = policy.condition(step.name.clone(), condition.clone());
        }
    }
    if let Some(outcome) = &settings.outcome {
        policy = policy.outcome(outcome.clone());
    }
    if settings.cancelled {
        policy = policy.cancelled();
    }
    policy
}

/// The object name of each plan's step (the first matrix combination's),
/// by step name: how a condition over step names reads over objects.
pub fn object_names(plans: &[TaskPlan], ctx: &RunContext) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for plan in plans {
        names
            .entry(plan.identity.step.clone())
            .or_insert_with(|| c8s_pod_builder::object_name(plan, ctx));
    }
    names
}

/// `d` in whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

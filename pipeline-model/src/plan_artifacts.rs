//! What a plan's artifact helper moves besides the plan's own inputs and
//! outputs: the results directory of the plan (saved after `main`), those
//! of the steps whose results `main` reads, and the file of each Concourse
//! local var `main`'s env uses (both unpacked before it).

use std::borrow::Cow;

use crate::local_vars::{LOCAL_VARS_DIR, LocalVar};
use crate::plan::{PlanInput, TaskPlan};
use crate::results::{RESULTS_DIR, RESULTS_OF_DIR};

impl TaskPlan {
    /// The artifacts unpacked before `main`: the plan's inputs, then the
    /// results directory of each step whose results `main` reads, then the
    /// file of each local var `main`'s env uses.
    pub fn artifact_inputs(&self) -> Cow<'_, [PlanInput]> {
        if self.result_env.is_empty() && self.local_vars.is_empty() {
            return Cow::Borrowed(&self.inputs);
        }
        let mut inputs = self.inputs.clone();
        for producer in self.result_producers() {
            let mut input = PlanInput::new(producer, RESULTS_DIR);
            input.path = format!("{RESULTS_OF_DIR}/{producer}");
            inputs.push(input);
        }
        inputs.extend(self.local_vars.iter().map(LocalVar::input));
        Cow::Owned(inputs)
    }

    /// The directories saved after `main`: the plan's outputs, then the
    /// results directory when the step declares results.
    pub fn saved_outputs(&self) -> Cow<'_, [String]> {
        if self.results.is_empty() {
            return Cow::Borrowed(&self.outputs);
        }
        let mut outputs = self.outputs.clone();
        outputs.push(RESULTS_DIR.to_owned());
        Cow::Owned(outputs)
    }

    /// The steps whose results `main` reads, each once, in the order first named.
    pub fn result_producers(&self) -> Vec<&str> {
        let mut producers: Vec<&str> = Vec::new();
        for env in &self.result_env {
            if !producers.contains(&env.step.as_str()) {
                producers.push(&env.step);
            }
        }
        producers
    }
}

impl LocalVar {
    /// The input that unpacks the var's one file before `main`, under
    /// [`LOCAL_VARS_DIR`]`/NAME`.
    pub fn input(&self) -> PlanInput {
        let mut input = PlanInput::new(&self.step, &self.output);
        input.path = format!("{LOCAL_VARS_DIR}/{}", self.name);
        input.member = Some(self.file.clone());
        input
    }
}

impl TaskPlan {
    /// The env vars of `main` whose values hold a local var's placeholder,
    /// in env order.
    pub fn local_var_env(&self) -> Vec<&str> {
        if self.local_vars.is_empty() {
            return Vec::new();
        }
        self.env
            .iter()
            .filter(|env| {
                env.value.as_deref().is_some_and(|value| {
                    self.local_vars
                        .iter()
                        .any(|var| value.contains(&var.placeholder()))
                })
            })
            .map(|env| env.name.as_str())
            .collect()
    }
}

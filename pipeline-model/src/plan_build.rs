//! Building a [`TaskPlan`] in code (chained `with_*` setters) and
//! [`TaskPlan::validate`], the rules a plan must meet however it was made.
//!
//! ```
//! use c8s_pipeline_model::TaskPlan;
//! use c8s_pipeline_model::sidecar::{Problem, SidecarConfig};
//!
//! let plan = TaskPlan::for_step("orders", "integration", "golang:1.23")
//!     .with_command(["sh", "-ec", "go test ./..."])
//!     .with_sidecar(SidecarConfig::new("postgres", "postgres:16").with_port(5432))
//!     .with_sidecar(SidecarConfig::new("replica", "postgres:16").with_port(5432));
//! let errors = plan.validate().unwrap_err();
//! assert!(matches!(errors.as_slice()[0].rule(), Some(Problem::PortConflict { port: 5432, .. })));
//! ```

use std::time::Duration;

use c8s_sidecar_core::Problem as Rule;
use c8s_sidecar_core::validate::{self, Locator, check_list};
use c8s_sidecar_core::{FieldPath, SidecarConfig, names, rules};

use crate::error::Errors;
use crate::plan::{PlanIdentity, PlanInput, TaskPlan};

/// Findings about this plan, before they are located.
type Finding = validate::Finding<crate::Problem>;
/// Who findings are about (`step "unit"`) and where.
type Sink<'f> = validate::Sink<'f, crate::Problem>;

c8s_sidecar_core::container_setters!(TaskPlan, "`main`'s");

impl TaskPlan {
    /// Makes input `name` (by the step it comes from) the clone of the run's
    /// repository instead of an artifact, as `fly execute` uploads a local
    /// directory for one input; returns whether the plan had that input.
    pub fn checkout_input(&mut self, name: &str) -> bool {
        let Some(i) = self.inputs.iter().position(|input| input.step == name) else {
            return false;
        };
        let input = self.inputs.remove(i);
        self.checkout = Some(input.path);
        self.skip_checkout = false;
        true
    }

    /// A plan for step `step` of pipeline `pipeline`, outside any matrix, running `image`.
    pub fn for_step(pipeline: impl Into<String>, step: impl Into<String>, image: impl Into<String>) -> Self {
        Self::new(PlanIdentity::new(pipeline, step), image)
    }

    /// Clones the repository into this workspace-relative directory.
    pub fn with_checkout(mut self, dir: impl Into<String>) -> Self {
        self.checkout = Some(dir.into());
        self
    }

    /// Adds an artifact of an earlier step to unpack before `main` starts.
    pub fn with_input(mut self, input: PlanInput) -> Self {
        self.inputs.push(input);
        self
    }

    /// Adds workspace-relative directories to save as artifacts.
    pub fn with_outputs<S: Into<String>>(mut self, outputs: impl IntoIterator<Item = S>) -> Self {
        self.outputs.extend(outputs.into_iter().map(Into::into));
        self
    }

    /// Adds results `main` publishes (it writes each to `$C8S_RESULTS/<name>`).
    pub fn with_results<S: Into<String>>(mut self, results: impl IntoIterator<Item = S>) -> Self {
        self.results.extend(results.into_iter().map(Into::into));
        self
    }

    /// Sets env var `name` of `main` to result `result` of step `step`.
    pub fn with_result_env(
        mut self,
        name: impl Into<String>,
        step: impl Into<String>,
        result: impl Into<String>,
    ) -> Self {
        self.result_env
            .push(crate::results::ResultEnv::new(name, step, result));
        self
    }

    /// Adds workspace-relative directories kept between runs.
    pub fn with_caches<S: Into<String>>(mut self, caches: impl IntoIterator<Item = S>) -> Self {
        self.caches.extend(caches.into_iter().map(Into::into));
        self
    }

    /// Adds a sidecar service.
    pub fn with_sidecar(mut self, sidecar: SidecarConfig) -> Self {
        self.sidecars.push(sidecar);
        self
    }

    /// Sets the step's deadline (whole seconds; becomes `activeDeadlineSeconds`).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout_seconds = Some(timeout.as_secs());
        self
    }

    /// Checks every rule a plan must meet, whether parsed or built in code:
    /// the sidecar rules (reserved names, port conflicts, probes, ...), and
    /// `main`'s image, env, resources, UID and deadline. Every problem is
    /// reported, typed, at its field path (file `<input>`). `render_pod` runs
    /// it first; workspace paths are checked there too (`Error::InvalidPath`).
    pub fn validate(&self) -> Result<(), Errors> {
        let mut locator = Locator::new();
        let doc = locator.add("<input>", "");
        let root = FieldPath::root();
        let mut findings: Vec<Finding> = check_list(&self.sidecars, doc, &root.key("sidecars"));
        let subject = format!("step {}", c8s_sidecar_core::error::quoted(&self.identity.step));
        let mut sink = Sink::at(&mut findings, doc, root.clone(), Some(subject));
        if self.image.is_empty() {
            sink.problem(root.key("image"), Rule::Empty);
        } else if let Err(reason) = names::image_reference(&self.image) {
            let value = self.image.clone();
            sink.problem(root.key("image"), Rule::InvalidImage { value, reason });
        }
        rules::env_list(&self.env, &root.key("env"), &mut sink);
        rules::resources(&self.resources, &root.key("resources"), &mut sink);
        rules::run_as_user(
            self.run_as_user,
            self.run_as_root,
            &root.key("runAsUser"),
            &mut sink,
        );
        for (i, name) in self.results.iter().enumerate() {
            if let Err(reason) = crate::results::check_result_name(name) {
                let value = name.clone();
                sink.problem(root.key("results").index(i), Rule::InvalidName { value, reason });
            }
        }
        for (i, env) in self.result_env.iter().enumerate() {
            let at = root.key("resultEnv").index(i);
            if let Err(reason) = names::env_var_name(&env.name) {
                let value = env.name.clone();
                sink.problem(at.key("name"), Rule::InvalidEnvName { value, reason });
            }
            if let Err(reason) = names::dns1123_label(&env.step) {
                let value = env.step.clone();
                sink.problem(at.key("step"), Rule::InvalidName { value, reason });
            }
            if let Err(reason) = crate::results::check_result_name(&env.result) {
                let value = env.result.clone();
                sink.problem(at.key("result"), Rule::InvalidName { value, reason });
            }
        }
        for (i, var) in self.local_vars.iter().enumerate() {
            let at = root.key("localVars").index(i);
            if let Err(reason) = crate::local_vars::check_local_var_name(&var.name) {
                let value = var.name.clone();
                sink.problem(at.key("name"), Rule::InvalidName { value, reason });
            }
            if let Err(reason) = crate::local_vars::check_local_var_file(&var.file) {
                let value = var.file.clone();
                sink.problem(at.key("file"), Rule::InvalidName { value, reason });
            }
        }
        for (i, env) in self.env.iter().enumerate() {
            let holds_var = env.value.as_deref().is_some_and(|value| {
                self.local_vars
                    .iter()
                    .any(|var| value.contains(&var.placeholder()))
            });
            if holds_var && let Err(reason) = crate::local_vars::check_shell_name(&env.name) {
                let value = env.name.clone();
                sink.problem(
                    root.key("env").index(i).key("name"),
                    Rule::InvalidEnvName { value, reason },
                );
            }
        }
        if self.timeout_seconds == Some(0) {
            sink.problem(root.key("timeoutSeconds"), Rule::NotPositive { value: 0 });
        }
        if findings.is_empty() {
            Ok(())
        } else {
            Err(Errors::new(crate::error::locate(&locator, findings, doc)))
        }
    }
}

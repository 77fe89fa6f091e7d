//! Concourse, read as Concourse users write it: task configs, task steps and
//! pipelines, with `((vars))`, lowered into [`TaskPlan`](crate::TaskPlan)s —
//! one pod per task, get and put step.
//!
//! The rules follow Concourse's own parser (`atc/task.go`, `atc/steps.go`,
//! `atc/configvalidate` in github.com/concourse/concourse); where a pod
//! cannot do what Concourse does, the file is rejected with a located error
//! that says why, never silently changed.

pub mod across;
pub mod fields;
pub mod image;
pub mod keys;
mod load_var;
pub mod lower;
pub mod node;
mod params;
pub mod pipeline;
mod read_task;
pub mod report;
pub mod resource;
pub mod runtime;
pub mod step;
pub mod steps;
pub mod task;
pub mod triggers;
pub mod vars;

pub use image::{ImageResource, ImageSource};
pub use lower::{FetchFile, JobPlan, JobStep, When, lower_job};
pub use pipeline::{ConcoursePipeline, Job, Resource, is_pipeline, parse_concourse_pipeline};
pub use resource::SecretNeed;
pub use step::{
    ArtifactSource, SameName, TaskStep, is_task_step, parse_task_config, parse_task_config_with,
    parse_task_step, read_task_step, visit_task, visit_task_with,
};
pub use steps::{LoadVar, LoadVarFormat, Step, StepKind};
pub use task::{ContainerLimits, TaskCache, TaskConfig, TaskInput, TaskOutput, TaskRun, task_plan};
pub use vars::Vars;

//! Read access to rendered pods for tests and tools: a container by name,
//! wherever c8s placed it (init containers or regular ones).
//!
//! ```
//! use c8s_pod_builder::prelude::*;
//! use c8s_pod_builder::inspect::{container, env_value};
//!
//! let plan = TaskPlan::for_step("shop", "unit", "golang:1.23").with_env("GOFLAGS", "-mod=mod");
//! let pod = render_pod(&plan, &RunContext::new("run-1", 1))?;
//! let main = container(&pod, "main").expect("main is always there");
//! assert_eq!(env_value(main, "GOFLAGS"), Some("-mod=mod"));
//! assert!(container(&pod, "git-clone").is_some());
//! # Ok::<(), c8s_pod_builder::Error>(())
//! ```

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};

/// The pod spec of a Pod, or of a Job's template.
fn spec(pod: &Pod) -> Option<&PodSpec> {
    pod.spec.as_ref()
}

/// The container named `name` in `pod`, init containers first.
pub fn container<'p>(pod: &'p Pod, name: &str) -> Option<&'p Container> {
    spec(pod).and_then(|s| container_in(s, name))
}

/// The container named `name` in a pod spec (e.g. a Job's template), init containers first.
pub fn container_in<'s>(spec: &'s PodSpec, name: &str) -> Option<&'s Container> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .find(|c| c.name == name)
}

/// The names of every container in start order: init containers, then regular ones.
pub fn container_names(pod: &Pod) -> Vec<&str> {
    spec(pod)
        .map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(&s.containers)
                .map(|c| c.name.as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// The literal value of env var `name` in `container` (`None` for a Secret reference or no such var).
pub fn env_value<'c>(container: &'c Container, name: &str) -> Option<&'c str> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

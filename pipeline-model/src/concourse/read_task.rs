//! Reading a task config from a [`Node`] tree with Concourse's rules
//! (`atc/task.go` `TaskConfig.Validate`): `platform` and `run.path` are
//! required, params with no value are `""`, input and output names are
//! required and unique. c8s adds what a pod needs: linux only, paths that
//! stay inside the workspace, env names Kubernetes accepts, a numeric user.

use c8s_sidecar_core::validate::{Locator, check_list};
use c8s_sidecar_core::{FieldPath, SidecarConfig, names, yaml};

use super::fields::{Fields, scalar};
use super::image::ImageResource;
use super::node::{Node, Report};
use super::task::{ContainerLimits, TaskCache, TaskConfig, TaskInput, TaskOutput, TaskRun};
use crate::ordered::OrderedMap;

const CONFIG_KEYS: [&str; 11] = [
    "platform",
    "image_resource",
    "rootfs_uri",
    "inputs",
    "outputs",
    "caches",
    "params",
    "run",
    "container_limits",
    "sidecars",
    "image",
];

/// Reads the task config at `path` of the document `text` (the original text,
/// for locating sidecar findings).
pub fn read_config(node: &Node, path: &FieldPath, text: &str, report: &mut Report<'_>) -> Option<TaskConfig> {
    let fields = Fields::new(node, path.clone(), &CONFIG_KEYS[..10], report)?;
    let platform = fields.required("platform", report).unwrap_or_default();
    if !platform.is_empty() && platform != "linux" {
        let at = fields.key_at("platform");
        report.error(
            at,
            &fields.at("platform"),
            format!("platform `{platform}` cannot run here: Kubernetes pods run linux containers (use `platform: linux`)"),
        );
    }
    let image_resource = fields
        .get("image_resource")
        .and_then(|n| ImageResource::read(n, &fields.at("image_resource"), report));
    if let Some(image) = &image_resource
        && let reference = image.reference()
        && !reference.contains("((")
        && let Err(reason) = names::image_reference(&reference)
    {
        let at = fields.key_at("image_resource");
        let path = fields.at("image_resource").key("source").key("repository");
        report.error(
            at,
            &path,
            format!("{reference:?} is not a valid image reference: {reason}"),
        );
    }
    let rootfs_uri = fields.string("rootfs_uri", report);
    if let Some(uri) = &rootfs_uri
        && !uri.starts_with("docker:///")
    {
        let at = fields.key_at("rootfs_uri");
        report.error(
            at,
            &fields.at("rootfs_uri"),
            format!("{uri:?}: only `docker:///repository#tag` names an image a pod can pull"),
        );
    }
    let mut config = TaskConfig {
        platform,
        image_resource,
        rootfs_uri,
        inputs: read_inputs(&fields, report),
        outputs: read_outputs(&fields, report),
        caches: read_caches(&fields, report),
        params: read_params(&fields, report),
        run: read_run(&fields, report),
        container_limits: read_limits(&fields, report),
        sidecars: Vec::new(),
    };
    if let Some(sidecars) = fields.get("sidecars") {
        config.sidecars = read_sidecars(sidecars, &fields.at("sidecars"), text, report);
    }
    check_paths(&fields, &config, report);
    Some(config)
}

fn read_inputs(fields: &Fields<'_>, report: &mut Report<'_>) -> Vec<TaskInput> {
    let mut inputs: Vec<TaskInput> = Vec::new();
    let path = fields.at("inputs");
    for (i, node) in fields.list("inputs", report).iter().enumerate() {
        let at = path.index(i);
        let Some(f) = Fields::new(node, at.clone(), &["name", "path", "optional"], report) else {
            continue;
        };
        let Some(name) = f.required("name", report) else {
            continue;
        };
        if inputs.iter().any(|x| x.name == name) {
            report.error(
                node.at,
                &at.key("name"),
                format!("input `{name}` is listed twice"),
            );
        }
        let path = f.string("path", report);
        let optional = f.flag("optional", report);
        inputs.push(TaskInput { name, path, optional });
    }
    inputs
}

fn read_outputs(fields: &Fields<'_>, report: &mut Report<'_>) -> Vec<TaskOutput> {
    let mut outputs: Vec<TaskOutput> = Vec::new();
    let path = fields.at("outputs");
    for (i, node) in fields.list("outputs", report).iter().enumerate() {
        let at = path.index(i);
        let Some(f) = Fields::new(node, at.clone(), &["name", "path"], report) else {
            continue;
        };
        let Some(name) = f.required("name", report) else {
            continue;
        };
        if outputs.iter().any(|x| x.name == name) {
            report.error(
                node.at,
                &at.key("name"),
                format!("output `{name}` is listed twice"),
            );
        }
        let path = f.string("path", report);
        outputs.push(TaskOutput { name, path });
    }
    outputs
}

fn read_caches(fields: &Fields<'_>, report: &mut Report<'_>) -> Vec<TaskCache> {
    let path = fields.at("caches");
    let mut caches = Vec::new();
    for (i, node) in fields.list("caches", report).iter().enumerate() {
        let Some(f) = Fields::new(node, path.index(i), &["path"], report) else {
            continue;
        };
        if let Some(path) = f.required("path", report) {
            caches.push(TaskCache { path });
        }
    }
    caches
}

fn read_params(fields: &Fields<'_>, report: &mut Report<'_>) -> OrderedMap<String> {
    let mut params = OrderedMap::new();
    let path = fields.at("params");
    for (name, value) in fields.string_map("params", report) {
        if let Err(reason) = names::env_var_name(&name) {
            let at = fields
                .get("params")
                .and_then(|p| p.entries())
                .and_then(|e| e.iter().find(|e| e.key == name))
                .map_or((0, 0), |e| e.at);
            report.error(
                at,
                &path.key(&name),
                format!("{name:?} is not an environment variable name Kubernetes accepts: {reason}"),
            );
        }
        params.insert(name, value);
    }
    params
}

fn read_run(fields: &Fields<'_>, report: &mut Report<'_>) -> TaskRun {
    let mut run = TaskRun {
        path: String::new(),
        args: Vec::new(),
        dir: None,
        user: None,
    };
    let Some(node) = fields.get("run") else {
        report.error(
            fields.node.at,
            &fields.at("run"),
            "`run` is required (the command the task runs)",
        );
        return run;
    };
    let Some(f) = Fields::new(node, fields.at("run"), &["path", "args", "dir", "user"], report) else {
        return run;
    };
    run.path = f.required("path", report).unwrap_or_default();
    if f.get("path").is_some_and(|p| p.scalar() == Some("")) {
        report.error(node.at, &f.at("path"), "must not be empty");
    }
    let args_path = f.at("args");
    run.args = f
        .list("args", report)
        .iter()
        .enumerate()
        .filter_map(|(i, n)| scalar(n, &args_path.index(i), report))
        .collect();
    run.dir = f.string("dir", report);
    run.user = f.string("user", report);
    if let Some(user) = &run.user
        && user != "root"
        && user.parse::<u32>().is_err()
    {
        let at = f.key_at("user");
        report.error(
            at,
            &f.at("user"),
            format!("user {user:?}: give `root` or a numeric UID (Kubernetes runs containers by UID, it cannot look up user names)"),
        );
    }
    run
}

fn read_limits(fields: &Fields<'_>, report: &mut Report<'_>) -> Option<ContainerLimits> {
    let node = fields.get("container_limits")?;
    let f = Fields::new(node, fields.at("container_limits"), &["cpu", "memory"], report)?;
    Some(ContainerLimits {
        cpu: f.number("cpu", report),
        memory: f.number("memory", report),
    })
}

/// Inline sidecars: read with the sidecar file schema, checked with its rules,
/// located in the original text.
pub fn read_sidecars(
    node: &Node,
    path: &FieldPath,
    text: &str,
    report: &mut Report<'_>,
) -> Vec<SidecarConfig> {
    let file = report.file();
    let sidecars: Vec<SidecarConfig> = match yaml::from_str(file, &node.to_json()) {
        Ok(s) => s,
        Err(e) => {
            let message = match e {
                c8s_sidecar_core::Error::Syntax { message, .. } => message,
                other => other.to_string(),
            };
            report.error(node.at, path, message);
            return Vec::new();
        }
    };
    let mut locator = Locator::new();
    let doc = locator.add(file, text);
    let findings: Vec<c8s_sidecar_core::validate::Finding> = check_list(&sidecars, doc, path);
    if !findings.is_empty() {
        report.extend(locator.locate(findings).convert());
    }
    sidecars
}

fn check_paths(fields: &Fields<'_>, config: &TaskConfig, report: &mut Report<'_>) {
    let mut dirs: Vec<(FieldPath, &str)> = Vec::new();
    for (i, input) in config.inputs.iter().enumerate() {
        dirs.push((
            fields.at("inputs").index(i),
            input.path.as_deref().unwrap_or(&input.name),
        ));
    }
    for (i, output) in config.outputs.iter().enumerate() {
        dirs.push((
            fields.at("outputs").index(i),
            output.path.as_deref().unwrap_or(&output.name),
        ));
    }
    for (i, cache) in config.caches.iter().enumerate() {
        dirs.push((fields.at("caches").index(i).key("path"), &cache.path));
    }
    if let Some(dir) = &config.run.dir {
        dirs.push((fields.at("run").key("dir"), dir));
    }
    for (at, dir) in dirs {
        let dir = dir.trim_start_matches("./");
        if c8s_sidecar_core::paths::workspace_relative(dir).is_err() {
            report.error(
                position(fields.node, &at, fields),
                &at,
                format!(
                    "{dir:?} must be a relative path inside the task's directory (no leading /, no `..`)"
                ),
            );
        }
    }
}

/// Where `path` (below `fields`) is written, or the nearest written ancestor.
fn position(root: &Node, path: &FieldPath, fields: &Fields<'_>) -> (u32, u32) {
    let relative = path.strip_prefix(&fields.path).unwrap_or_else(|| path.clone());
    let mut node = root;
    let mut at = root.at;
    for segment in relative.segments() {
        let next = match segment {
            c8s_sidecar_core::path::Segment::Key(k) => node
                .entries()
                .and_then(|e| e.iter().find(|e| &e.key == k))
                .map(|e| (e.at, &e.node)),
            c8s_sidecar_core::path::Segment::Index(i) => match &node.value {
                super::node::Value::Seq(items) => items.get(*i).map(|n| (n.at, n)),
                _ => None,
            },
        };
        match next {
            Some((a, n)) => {
                at = a;
                node = n;
            }
            None => break,
        }
    }
    at
}

//! `get` and `put` steps as pods speaking Concourse's resource protocol
//! (concourse-ci.org/implementing-resource-types.html): the resource type's
//! image runs `/opt/resource/check`, `in` or `out` with a JSON request on
//! stdin (`source`, `version`, `params`) and the artifact directory as its
//! argument; the JSON response goes to stdout (the log). Credentials in
//! `source` or `params` (anything written with `((vars))`) reach the
//! container from a Secret c8s names, never as text in the pod.

use c8s_sidecar_core::{EnvVar, FieldPath};

pub use super::image::builtin_image;
use super::image::{ImageResource, secret_suffix};
use super::node::{Node, Report, Value};
use super::pipeline::{ConcoursePipeline, Resource};
use crate::plan::{PlanIdentity, TaskPlan};

/// `get`: check for the newest version when none is given, then `in` into
/// `/workspace/$1`, printing its response; when `$2` is set, the version
/// `in` answered is also written to `/workspace/$2/`[`VERSION_FILE`] (the
/// get's local var, [`version_dir`]).
pub const GET_SCRIPT: &str = r#"dir="/workspace/$1"; mkdir -p "$dir"
version="$C8S_VERSION"
if [ -z "$version" ]; then
  versions="$(printf '{"source":%s,"version":null}' "$C8S_SOURCE" | /opt/resource/check)"
  case "$versions" in *'{'*) ;; *) echo "c8s: check found no version of $1" >&2; exit 1 ;; esac
  last="${versions##*\{}"; version="{${last%%\}*}}"
fi
echo "c8s: fetching $1 at $version" >&2
response="$(printf '{"source":%s,"version":%s,"params":%s}' "$C8S_SOURCE" "$version" "$C8S_PARAMS" | /opt/resource/in "$dir")" || exit $?
printf '%s\n' "$response"
if [ -n "$2" ]; then
  case "$response" in *'"version"'*) ;; *) echo "c8s: in answered no version for $1" >&2; exit 1 ;; esac
  rest="${response#*\"version\"}"; rest="${rest#*\{}"
  mkdir -p "/workspace/$2" && printf '{%s}\n' "${rest%%\}*}" > "/workspace/$2/version.json"
fi
"#;

/// The file, in [`version_dir`], that holds the version a get fetched.
pub const VERSION_FILE: &str = "version.json";

/// Where get `name` saves the version it fetched when a later step reads
/// it as a local var (an output of its own, apart from the artifact).
pub fn version_dir(name: &str) -> String {
    format!(".c8s-version/{name}")
}

/// `put`: `out` from the workspace, then (when `$1` is set) `in` of the
/// version it made; last, the response between [`PUT_MARKER`] and
/// [`PUT_END`] (`in` logs too, so the response is marked and printed last).
/// A failing `out` or `in` fails the pod.
pub const PUT_SCRIPT: &str = r#"response="$(printf '{"source":%s,"params":%s}' "$C8S_SOURCE" "$C8S_PARAMS" | /opt/resource/out /workspace)" || exit $?
if [ -n "$1" ]; then
  rest="${response#*\"version\"}"; rest="${rest#*\{}"; version="{${rest%%\}*}}"
  mkdir -p "/workspace/$1"
  printf '{"source":%s,"version":%s,"params":%s}' "$C8S_SOURCE" "$version" "$C8S_GET_PARAMS" | /opt/resource/in "/workspace/$1" >&2 || exit $?
fi
printf '\nc8s-put-response: %s\nc8s-put-end\n' "$response"
"#;

/// What precedes a put's response in its log.
pub const PUT_MARKER: &str = "c8s-put-response: ";

/// The line that follows a put's response in its log.
pub const PUT_END: &str = "c8s-put-end";

/// `check`: ask for the versions from `$C8S_VERSION` on (`null`: the
/// newest), then print the response after [`CHECK_MARKER`] (the check's own
/// stderr shares the log, so the response is marked and printed last).
pub const CHECK_SCRIPT: &str = r#"response="$(printf '{"source":%s,"version":%s}' "$C8S_SOURCE" "${C8S_VERSION:-null}" | /opt/resource/check)" || exit $?
printf 'c8s-versions: %s\n' "$response"
"#;

/// What precedes a check's response in its log.
pub const CHECK_MARKER: &str = "c8s-versions: ";

/// A Secret c8s needs and does not have: its name, key, and what to put in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde_derive::Serialize)]
#[non_exhaustive]
pub struct SecretNeed {
    /// The Secret's name.
    pub name: String,
    /// The key.
    pub key: String,
    /// What the value is (a JSON template with `((vars))` to fill in, or a var name).
    pub value: String,
}

impl SecretNeed {
    /// The `kubectl` command that creates it.
    pub fn how(&self) -> String {
        format!(
            "kubectl create secret generic {} --from-literal={}='<{}>'",
            self.name, self.key, self.value
        )
    }
}

/// The image and pull secret of resource type `kind`.
pub fn type_image(
    pipeline: &ConcoursePipeline,
    kind: &str,
    report: &mut Report<'_>,
    at: (u32, u32),
) -> Option<(String, Option<String>, bool)> {
    if let Some(custom) = pipeline.resource_types.iter().find(|t| t.name == kind) {
        let path = FieldPath::root().key("resource_types");
        let image = ImageResource::from_parts(&custom.kind, Some(&custom.source), None, &path, report)?;
        if image.reference().contains("((") {
            report.error(
                custom.at,
                &path,
                format!("resource type `{kind}`: its image is written with vars that have no value"),
            );
            return None;
        }
        return Some((image.reference(), image.pull_secret(), custom.privileged));
    }
    match builtin_image(kind) {
        Some(image) => Some((image, None, false)),
        None => {
            report.error(
                at,
                &FieldPath::root(),
                format!("resource type `{kind}` is not defined"),
            );
            None
        }
    }
}

/// An env var carrying JSON `node`: literal when it holds no vars, else
/// from key `key` of the pipeline's Secret for `resource`.
fn json_env(
    name: &str,
    node: Option<&Node>,
    pipeline: &str,
    resource: &str,
    key: &str,
    needs: &mut Vec<SecretNeed>,
) -> EnvVar {
    let json = node.map_or_else(
        || "{}".to_owned(),
        |n| if n.is_null() { "{}".to_owned() } else { n.to_json() },
    );
    if json.contains("((") {
        let secret = resource_secret(pipeline, resource);
        needs.push(SecretNeed {
            name: secret.clone(),
            key: key.to_owned(),
            value: json,
        });
        EnvVar::secret(name, secret, key)
    } else {
        EnvVar::value(name, json)
    }
}

/// The Secret c8s names for a resource's credentials.
pub fn resource_secret(pipeline: &str, resource: &str) -> String {
    let mut name = format!("c8s-{}-{}", secret_suffix(pipeline), secret_suffix(resource));
    name.truncate(63);
    name.trim_end_matches('-').to_owned()
}

/// The plan of a get of `resource` into artifact `name`.
#[allow(clippy::too_many_arguments)]
pub fn get_plan(
    pipeline: &ConcoursePipeline,
    identity: PlanIdentity,
    name: &str,
    resource: &Resource,
    params: Option<&Node>,
    version: Option<String>,
    needs: &mut Vec<SecretNeed>,
    report: &mut Report<'_>,
) -> Option<TaskPlan> {
    let (image, secret, privileged) = type_image(pipeline, &resource.kind, report, resource.at)?;
    let mut plan = resource_plan(identity, image, secret, privileged);
    plan.command = vec![
        "sh".into(),
        "-c".into(),
        GET_SCRIPT.into(),
        "c8s-get".into(),
        name.into(),
    ];
    plan.env = vec![
        source_env(pipeline, resource, needs),
        json_env(
            "C8S_PARAMS",
            params,
            &pipeline.name,
            &resource.name,
            &format!("params-get-{}", secret_suffix(name)),
            needs,
        ),
        EnvVar::value("C8S_VERSION", version.unwrap_or_default()),
    ];
    plan.outputs = vec![name.to_owned()];
    Some(plan)
}

/// Makes get `plan` (of artifact `name`) save the version it fetched in
/// [`version_dir`], an output a reader can fetch when the job runs.
pub fn save_version(plan: &mut TaskPlan, name: &str) {
    let dir = version_dir(name);
    plan.command.push(dir.clone());
    plan.outputs.push(dir);
}

/// The plan of a check of `resource` for the versions from `from` on (a
/// version as JSON; `None`: only the newest), as Concourse's checker runs
/// it (`atc/lidar` and `atc/exec/check_step.go`: `source` and the last
/// version known on stdin, the versions since on stdout, oldest first).
pub fn check_plan(
    pipeline: &ConcoursePipeline,
    identity: PlanIdentity,
    resource: &Resource,
    from: Option<String>,
    needs: &mut Vec<SecretNeed>,
    report: &mut Report<'_>,
) -> Option<TaskPlan> {
    let (image, secret, privileged) = type_image(pipeline, &resource.kind, report, resource.at)?;
    let mut plan = resource_plan(identity, image, secret, privileged);
    plan.command = vec!["sh".into(), "-c".into(), CHECK_SCRIPT.into()];
    plan.env = vec![
        source_env(pipeline, resource, needs),
        EnvVar::value("C8S_VERSION", from.unwrap_or_default()),
    ];
    Some(plan)
}

/// The plan of a put to `resource`; its implicit get lands in `.c8s-get/<name>`.
#[allow(clippy::too_many_arguments)]
pub fn put_plan(
    pipeline: &ConcoursePipeline,
    identity: PlanIdentity,
    name: &str,
    resource: &Resource,
    params: Option<&Node>,
    get_params: Option<&Node>,
    no_get: bool,
    needs: &mut Vec<SecretNeed>,
    report: &mut Report<'_>,
) -> Option<TaskPlan> {
    let (image, secret, privileged) = type_image(pipeline, &resource.kind, report, resource.at)?;
    let mut plan = resource_plan(identity, image, secret, privileged);
    let target = if no_get {
        String::new()
    } else {
        implicit_get_dir(name)
    };
    plan.command = vec![
        "sh".into(),
        "-c".into(),
        PUT_SCRIPT.into(),
        "c8s-put".into(),
        target.clone(),
    ];
    let suffix = secret_suffix(name);
    plan.env = vec![
        source_env(pipeline, resource, needs),
        json_env(
            "C8S_PARAMS",
            params,
            &pipeline.name,
            &resource.name,
            &format!("params-put-{suffix}"),
            needs,
        ),
        json_env(
            "C8S_GET_PARAMS",
            get_params,
            &pipeline.name,
            &resource.name,
            &format!("params-get-{suffix}"),
            needs,
        ),
    ];
    if !no_get {
        plan.outputs = vec![target];
    }
    Some(plan)
}

/// `C8S_SOURCE`: the resource's `source` as JSON (from a Secret when it has vars).
fn source_env(pipeline: &ConcoursePipeline, resource: &Resource, needs: &mut Vec<SecretNeed>) -> EnvVar {
    json_env(
        "C8S_SOURCE",
        Some(&resource.source),
        &pipeline.name,
        &resource.name,
        "source",
        needs,
    )
}

/// Where a put's implicit get is saved (apart from the put's inputs).
pub fn implicit_get_dir(name: &str) -> String {
    format!(".c8s-get/{name}")
}

fn resource_plan(
    identity: PlanIdentity,
    image: String,
    secret: Option<String>,
    privileged: bool,
) -> TaskPlan {
    let mut plan = TaskPlan::new(identity, image);
    plan.skip_checkout = true;
    // Concourse runs a resource container as its image's user (root for
    // most), inside a user namespace. c8s runs it as every other container:
    // UID 1000 under restricted Pod Security, with a writable HOME. The
    // stock resources write only to `$HOME`, `$TMPDIR` and the destination
    // directory (concourse/git-resource `assets/common.sh`: ~/.ssh,
    // ~/.netrc, `git config --global`), so they run unchanged; and what a
    // get saves is owned by the UID the tasks after it run as, so a task can
    // change its inputs (a root-owned checkout would be read-only to it).
    // A resource type declared `privileged: true` keeps Concourse's root.
    plan.run_as_root = privileged;
    plan.privileged = privileged;
    plan.image_pull_secrets = secret.into_iter().collect();
    plan
}

/// A version given as JSON text (`--version RESOURCE=JSON`) or a pinned mapping.
pub fn version_json(node: Option<&Node>) -> Option<String> {
    let node = node?;
    match &node.value {
        Value::Map(_) => Some(node.to_json()),
        _ => None,
    }
}

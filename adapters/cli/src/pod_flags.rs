//! The pod override flags shared by `render`, `run` and `helm pipeline`:
//! they fill the run context, which wins over the file's own overrides.

use c8s_pod_builder::RunContext;
use clap::Args;
use k8s_openapi::api::core::v1::Toleration;

/// `--node-selector`, `--toleration`, `--image-pull-secret`,
/// `--service-account`, `--runtime-class`, `--priority-class`, `--patch`.
#[derive(Debug, Clone, Default, Args)]
pub struct PodFlags {
    /// A node label the pods must run on, `KEY=VALUE` (repeatable).
    #[arg(long = "node-selector", value_name = "KEY=VALUE", value_parser = node_selector)]
    pub node_selector: Vec<(String, String)>,
    /// A taint the pods tolerate, as `kubectl taint` writes it:
    /// `KEY[=VALUE][:EFFECT]`; without a value it tolerates any (repeatable).
    #[arg(long = "toleration", value_name = "KEY[=VALUE][:EFFECT]", value_parser = toleration)]
    pub tolerations: Vec<Toleration>,
    /// A Secret to pull images with (repeatable).
    #[arg(long = "image-pull-secret", value_name = "NAME")]
    pub image_pull_secrets: Vec<String>,
    /// The pods' service account; its API token is then mounted.
    #[arg(long = "service-account", value_name = "NAME")]
    pub service_account: Option<String>,
    /// The pods' RuntimeClass.
    #[arg(long = "runtime-class", value_name = "NAME")]
    pub runtime_class: Option<String>,
    /// The pods' PriorityClass.
    #[arg(long = "priority-class", value_name = "NAME")]
    pub priority_class: Option<String>,
    /// A YAML or JSON file patched into every pod's `spec` after the file's
    /// own `podSpecPatch` (JSON merge patch; named lists merge by `name`).
    #[arg(long = "patch", value_name = "FILE", value_parser = patch_file)]
    pub patch: Option<serde_json::Value>,
}

impl PodFlags {
    /// `ctx` with the flags set.
    pub fn apply(&self, mut ctx: RunContext) -> RunContext {
        for (key, value) in &self.node_selector {
            ctx = ctx.with_node_selector(key, value);
        }
        for t in &self.tolerations {
            ctx = ctx.with_toleration(t.clone());
        }
        for s in &self.image_pull_secrets {
            ctx = ctx.with_image_pull_secret(s);
        }
        if let Some(account) = &self.service_account {
            ctx = ctx.with_service_account(account);
        }
        if let Some(class) = &self.runtime_class {
            ctx = ctx.with_runtime_class(class);
        }
        if let Some(class) = &self.priority_class {
            ctx = ctx.with_priority_class(class);
        }
        if let Some(patch) = &self.patch {
            ctx = ctx.with_pod_spec_patch(patch.clone());
        }
        ctx
    }
}

fn node_selector(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected KEY=VALUE"))?;
    c8s_sidecar_core::names::label_key(key).map_err(|e| format!("{key:?}: {e}"))?;
    c8s_sidecar_core::names::label_value(value).map_err(|e| format!("{value:?}: {e}"))?;
    Ok((key.to_owned(), value.to_owned()))
}

fn toleration(text: &str) -> Result<Toleration, String> {
    let (rest, effect) = match text.rsplit_once(':') {
        Some((rest, effect)) => (rest, Some(effect)),
        None => (text, None),
    };
    if let Some(effect) = effect
        && !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute")
    {
        return Err(format!(
            "{effect:?} is not an effect: expected NoSchedule, PreferNoSchedule or NoExecute"
        ));
    }
    let (key, value) = match rest.split_once('=') {
        Some((key, value)) => (key, Some(value)),
        None => (rest, None),
    };
    c8s_sidecar_core::names::label_key(key).map_err(|e| format!("{key:?}: {e}"))?;
    Ok(Toleration {
        key: Some(key.to_owned()),
        operator: Some(if value.is_some() { "Equal" } else { "Exists" }.to_owned()),
        value: value.map(str::to_owned),
        effect: effect.map(str::to_owned),
        toleration_seconds: None,
    })
}

/// Reads a patch file strictly (located syntax errors) as a mapping.
fn patch_file(path: &str) -> Result<serde_json::Value, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("{path}: {}", c8s_sidecar_core::load::read_reason(&e)))?;
    let text = c8s_sidecar_core::yaml::as_utf8(path, &bytes).map_err(|e| e.to_string())?;
    let value: serde_json::Value = c8s_sidecar_core::yaml::from_str(path, text).map_err(|e| e.to_string())?;
    if !value.is_object() {
        return Err(format!("{path}: a patch must be a mapping of PodSpec fields"));
    }
    Ok(value)
}

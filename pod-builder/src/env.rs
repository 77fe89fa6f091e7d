//! What every container c8s creates gets from c8s: a writable `HOME`, git's
//! permission to use the checkout, and text the kubelet passes on literally.

use c8s_sidecar_core::EnvVar;
use k8s_openapi::api::core::v1 as core;

use crate::scripts;

/// Escapes `text` for a command, args, env value or exec probe: the kubelet
/// expands `$(VAR)` and turns `$$` into `$` there
/// (`third_party/forked/golang/expansion`), so `$` before `(` or `$` is doubled.
///
/// ```
/// use c8s_pod_builder::env::literal_text;
/// // `$$` becomes `$$$`: the kubelet reads `$$` as `$`, then `$ ` as it is.
/// assert_eq!(literal_text("echo $$ $(pwd) $HOME $"), "echo $$$ $$(pwd) $HOME $");
/// ```
pub fn literal_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$' && matches!(chars.peek(), Some('$' | '(')) {
            out.push('$');
        }
    }
    out
}

/// [`literal_text`] on each element.
pub fn literal_list(list: &[String]) -> Vec<String> {
    list.iter().map(|s| literal_text(s)).collect()
}

fn var(name: &str, value: &str) -> core::EnvVar {
    core::EnvVar {
        name: name.to_owned(),
        value: Some(literal_text(value)),
        ..Default::default()
    }
}

/// The container's env: c8s's variables first (`HOME`, `XDG_CACHE_HOME`, git's
/// `safe.directory` for `checkout`, then `extra`), each left out when the user
/// sets it, then the user's `vars` in order (literals escaped, secrets as refs).
pub fn container_env(vars: &[EnvVar], checkout: &str, extra: &[(&str, &str)]) -> Option<Vec<core::EnvVar>> {
    let user_sets = |name: &str| vars.iter().any(|v| v.name == name);
    let mut out = Vec::new();
    for (name, value) in [("HOME", scripts::HOME), ("XDG_CACHE_HOME", "/c8s/home/.cache")] {
        if !user_sets(name) {
            out.push(var(name, value));
        }
    }
    // git refuses a repository another UID owns ("dubious ownership") unless
    // `safe.directory` names it in protected config; GIT_CONFIG_COUNT/KEY/VALUE
    // is command scope, which counts (git-config(1), "safe.directory"; git >= 2.31).
    if !user_sets("GIT_CONFIG_COUNT") {
        out.push(var("GIT_CONFIG_COUNT", "1"));
        out.push(var("GIT_CONFIG_KEY_0", "safe.directory"));
        out.push(var("GIT_CONFIG_VALUE_0", checkout));
    }
    for (name, value) in extra {
        if !user_sets(name) {
            out.push(var(name, value));
        }
    }
    out.extend(vars.iter().map(|v| core::EnvVar {
        name: v.name.clone(),
        value: v.value.as_deref().map(literal_text),
        value_from: v.secret_key_ref.as_ref().map(|secret| core::EnvVarSource {
            secret_key_ref: Some(core::SecretKeySelector {
                name: secret.name.clone(),
                key: secret.key.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }));
    (!out.is_empty()).then_some(out)
}

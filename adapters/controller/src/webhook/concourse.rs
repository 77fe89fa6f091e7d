//! Concourse's resource webhook (`webhook_token`,
//! <https://concourse-ci.org/resources.html#schema.resource.webhook_token>):
//! `POST /api/v1/teams/TEAM/pipelines/PIPELINE/resources/RESOURCE/check/webhook?webhook_token=TOKEN`
//! asks for a check of `RESOURCE` now, instead of at its next `check_every`.
//!
//! In c8s the team is the namespace where `c8s watch` keeps the pipeline's
//! history, the ConfigMap [`history_name`]. The watcher writes there the
//! SHA-256 of each resource's token ([`WEBHOOKS_KEY`]; never the token);
//! a request whose token's digest matches (compared in constant time)
//! counts one more request of that resource in [`CHECK_REQUESTS_KEY`], by
//! read-modify-replace with the ConfigMap's `resourceVersion` as the
//! precondition; the running watcher sees the count rise and checks the
//! resource at once. An unknown namespace, pipeline or resource and a wrong
//! token get the same answer.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::triggers::{TriggerError, Triggers};

/// The ConfigMap key of the pipeline's version history (`c8s watch`'s).
pub const HISTORY_KEY: &str = "history.json";
/// The ConfigMap key of the token digests: a JSON object, resource →
/// lowercase hex SHA-256 of its `webhook_token`.
pub const WEBHOOKS_KEY: &str = "webhooks.json";
/// The ConfigMap key of the check requests: a JSON object, resource → how
/// many requests were counted (only ever rises).
pub const CHECK_REQUESTS_KEY: &str = "check-requests.json";
/// How often a request is counted again when the ConfigMap changed between
/// its read and its write.
const TRIES: usize = 10;

/// The ConfigMap that holds `pipeline`'s history: `c8s-versions-`, the
/// name as a label (at most 40 characters), and a hash of it (two names
/// that read alike stay apart).
pub fn history_name(pipeline: &str) -> String {
    let mut head = c8s_pod_builder::names::sanitize_label(pipeline);
    head.truncate(40);
    let head = head.trim_end_matches('-');
    let hash = c8s_pod_builder::names::short_hash(&[pipeline]);
    if head.is_empty() {
        format!("c8s-versions-{hash}")
    } else {
        format!("c8s-versions-{head}-{hash}")
    }
}

/// The lowercase hex SHA-256 of `token`: what [`WEBHOOKS_KEY`] holds.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The JSON object at `key` of `map` (empty when absent or unreadable).
fn json_object<V: serde::de::DeserializeOwned>(map: &ConfigMap, key: &str) -> BTreeMap<String, V> {
    map.data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

/// The token digests in `map`, by resource.
pub fn webhook_digests(map: &ConfigMap) -> BTreeMap<String, String> {
    json_object(map, WEBHOOKS_KEY)
}

/// The check requests counted in `map`, by resource.
pub fn check_requests(map: &ConfigMap) -> BTreeMap<String, u64> {
    json_object(map, CHECK_REQUESTS_KEY)
}

/// What a check request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckRequest {
    /// Counted: the watcher checks the resource.
    Counted,
    /// No such pipeline history or resource webhook here, or a wrong token.
    Unauthenticated,
}

/// Counts a request to check `resource` of `pipeline` in `namespace` with
/// `token` (see the module documentation).
pub async fn request_check<T: Triggers>(
    triggers: &T,
    namespace: &str,
    pipeline: &str,
    resource: &str,
    token: &str,
) -> Result<CheckRequest, TriggerError> {
    let name = history_name(pipeline);
    for _ in 0..TRIES {
        let Some(mut map) = triggers.config_map(namespace, &name).await? else {
            return Ok(CheckRequest::Unauthenticated);
        };
        let Some(expected) = webhook_digests(&map).remove(resource) else {
            return Ok(CheckRequest::Unauthenticated);
        };
        let matches = bool::from(token_digest(token).as_bytes().ct_eq(expected.as_bytes()));
        if token.is_empty() || !matches {
            return Ok(CheckRequest::Unauthenticated);
        }
        let mut counts = check_requests(&map);
        *counts.entry(resource.to_owned()).or_default() += 1;
        let text = serde_json::to_string(&counts).unwrap_or_default();
        map.data
            .get_or_insert_with(BTreeMap::new)
            .insert(CHECK_REQUESTS_KEY.to_owned(), text);
        if triggers.replace_config_map(namespace, map).await? {
            return Ok(CheckRequest::Counted);
        }
    }
    Err(TriggerError::Cluster {
        operation: format!("update configmap {namespace}/{name}"),
        detail: format!("it changed under every one of {TRIES} writes"),
    })
}

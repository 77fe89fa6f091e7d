//! What a push delivery says, read from each provider's payload: the
//! repository, the branch, the commit and the delivery id. Anything that is
//! not a push to a branch is `None` (acknowledged, ignored).
//! Payload formats: GitHub `push` (`X-GitHub-Event: push`, `X-GitHub-Delivery`),
//! GitLab `Push Hook` (`X-Gitlab-Event`, `X-Gitlab-Event-UUID`), Bitbucket
//! Cloud `repo:push` (`X-Event-Key`, `X-Request-UUID`).

use axum::http::HeaderMap;
use serde_json::Value;

use crate::crd::Provider;

/// A push to a branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push {
    /// The provider's delivery id: the same for a redelivery.
    pub delivery: String,
    /// Repository names the push is known by (`owner/name` and clone URLs).
    pub repositories: Vec<String>,
    /// The branch, without `refs/heads/`.
    pub branch: String,
    /// The commit pushed.
    pub commit: String,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn text(value: &Value, pointer: &str) -> Option<String> {
    value.pointer(pointer).and_then(Value::as_str).map(str::to_owned)
}

/// The provider's delivery id header.
pub fn delivery_id(provider: Provider, headers: &HeaderMap) -> String {
    let name = match provider {
        Provider::Github => "x-github-delivery",
        Provider::Gitlab => "x-gitlab-event-uuid",
        Provider::Bitbucket => "x-request-uuid",
    };
    header(headers, name).to_owned()
}

/// The push in a verified delivery, or `None` for any other event (or a
/// branch deletion / tag push, which has nothing to build).
pub fn read_push(provider: Provider, headers: &HeaderMap, body: &[u8]) -> Option<Push> {
    let payload: Value = serde_json::from_slice(body).ok()?;
    let delivery = delivery_id(provider, headers);
    let (repositories, branch, commit) = match provider {
        Provider::Github => {
            if header(headers, "x-github-event") != "push" {
                return None;
            }
            let branch = text(&payload, "/ref")?.strip_prefix("refs/heads/")?.to_owned();
            let repos = [
                "/repository/full_name",
                "/repository/clone_url",
                "/repository/html_url",
                "/repository/ssh_url",
            ];
            let names = repos.iter().filter_map(|p| text(&payload, p)).collect();
            (names, branch, text(&payload, "/after")?)
        }
        Provider::Gitlab => {
            if header(headers, "x-gitlab-event") != "Push Hook" {
                return None;
            }
            let branch = text(&payload, "/ref")?.strip_prefix("refs/heads/")?.to_owned();
            let repos = [
                "/project/path_with_namespace",
                "/project/git_http_url",
                "/project/web_url",
                "/project/git_ssh_url",
            ];
            let names = repos.iter().filter_map(|p| text(&payload, p)).collect();
            let commit = text(&payload, "/checkout_sha").or_else(|| text(&payload, "/after"))?;
            (names, branch, commit)
        }
        Provider::Bitbucket => {
            if header(headers, "x-event-key") != "repo:push" {
                return None;
            }
            let change = payload
                .pointer("/push/changes")?
                .as_array()?
                .iter()
                .find_map(|c| c.get("new").filter(|n| !n.is_null()))?;
            if change.get("type").and_then(Value::as_str) != Some("branch") {
                return None;
            }
            let names = ["/repository/full_name", "/repository/links/html/href"]
                .iter()
                .filter_map(|p| text(&payload, p))
                .collect();
            (names, text(change, "/name")?, text(change, "/target/hash")?)
        }
    };
    // A deleted branch has an all-zero commit: nothing to build.
    if commit.is_empty() || commit.bytes().all(|b| b == b'0') || delivery.is_empty() {
        return None;
    }
    Some(Push {
        delivery,
        repositories,
        branch,
        commit,
    })
}

/// Whether `wanted` (as a Pipeline names it) is one of the push's names:
/// exact, or equal ignoring a trailing `.git` and `/`, case-insensitively.
pub fn repository_matches(wanted: &str, push: &Push) -> bool {
    let norm = |s: &str| {
        s.trim_end_matches('/')
            .trim_end_matches(".git")
            .to_ascii_lowercase()
    };
    let wanted = norm(wanted);
    push.repositories.iter().any(|r| {
        let r = norm(r);
        r == wanted || wanted.ends_with(&format!("/{r}")) || r.ends_with(&format!("/{wanted}"))
    })
}

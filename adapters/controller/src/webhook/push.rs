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

/// The names a delivery's payload gives its repository (`owner/name` and
/// its URLs), whatever the event: what the webhook resolves the connection
/// from before it checks the signature. Empty when the payload names none.
pub fn repository_names(provider: Provider, payload: &Value) -> Vec<String> {
    let pointers: &[&str] = match provider {
        Provider::Github => &[
            "/repository/full_name",
            "/repository/clone_url",
            "/repository/html_url",
            "/repository/ssh_url",
        ],
        Provider::Gitlab => &[
            "/project/path_with_namespace",
            "/project/git_http_url",
            "/project/web_url",
            "/project/git_ssh_url",
        ],
        Provider::Bitbucket => &["/repository/full_name", "/repository/links/html/href"],
    };
    pointers
        .iter()
        .filter_map(|p| text(payload, p))
        .filter(|name| !name.trim().is_empty())
        .collect()
}

/// The push in a verified delivery, or `None` for any other event (or a
/// branch deletion / tag push, which has nothing to build).
pub fn read_push(provider: Provider, headers: &HeaderMap, body: &[u8]) -> Option<Push> {
    let payload: Value = serde_json::from_slice(body).ok()?;
    push_in(provider, headers, &payload)
}

/// [`read_push`] of a payload already parsed.
pub fn push_in(provider: Provider, headers: &HeaderMap, payload: &Value) -> Option<Push> {
    let delivery = delivery_id(provider, headers);
    let (branch, commit) = match provider {
        Provider::Github => {
            if header(headers, "x-github-event") != "push" {
                return None;
            }
            let branch = text(payload, "/ref")?.strip_prefix("refs/heads/")?.to_owned();
            (branch, text(payload, "/after")?)
        }
        Provider::Gitlab => {
            if header(headers, "x-gitlab-event") != "Push Hook" {
                return None;
            }
            let branch = text(payload, "/ref")?.strip_prefix("refs/heads/")?.to_owned();
            let commit = text(payload, "/checkout_sha").or_else(|| text(payload, "/after"))?;
            (branch, commit)
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
            (text(change, "/name")?, text(change, "/target/hash")?)
        }
    };
    // A deleted branch has an all-zero commit: nothing to build.
    if commit.is_empty() || commit.bytes().all(|b| b == b'0') || delivery.is_empty() {
        return None;
    }
    Some(Push {
        delivery,
        repositories: repository_names(provider, payload),
        branch,
        commit,
    })
}

/// Whether `wanted` (as a Pipeline names it: `owner/name`, an https clone URL
/// or `git@host:owner/name`) is one of the push's names. The repository paths
/// must be equal — every path segment, case-insensitively, ignoring a
/// trailing `.git` and `/` — and so must the host, when the Pipeline names
/// one and the push's URLs say theirs: a push
/// from `x/org/app` (a GitLab subgroup) never matches `org/app`.
pub fn repository_matches(wanted: &str, push: &Push) -> bool {
    repository_named(wanted, &push.repositories)
}

/// [`repository_matches`] against the names of a delivery (from
/// [`repository_names`]), before it is known to be a push.
pub fn repository_named(wanted: &str, names: &[String]) -> bool {
    let wanted = RepositoryName::parse(wanted);
    let names: Vec<RepositoryName> = names.iter().map(|r| RepositoryName::parse(r)).collect();
    let path_matches = !wanted.path.is_empty() && names.iter().any(|r| r.path == wanted.path);
    // The push's hosts come from its URLs; its `owner/name` carries none.
    let mut hosts = names.iter().filter_map(|r| r.host.as_deref()).peekable();
    let host_matches = match wanted.host.as_deref() {
        Some(host) if hosts.peek().is_some() => hosts.any(|h| h == host),
        _ => true,
    };
    path_matches && host_matches
}

/// A repository name cut into its host (when it has one) and its path.
struct RepositoryName {
    host: Option<String>,
    path: String,
}

impl RepositoryName {
    fn parse(name: &str) -> Self {
        let name = name.trim().to_ascii_lowercase();
        let name = name.trim_end_matches('/');
        let name = name.strip_suffix(".git").unwrap_or(name);
        let (host, path) = if let Some((_, rest)) = name.split_once("://") {
            // https://[user@]host[:port]/path
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let host = host.split_once(':').map_or(host, |(h, _)| h);
            (Some(host.to_owned()), path)
        } else if let Some((user_host, path)) = name.split_once(':')
            && user_host.contains('@')
        {
            // git@host:path
            (user_host.rsplit_once('@').map(|(_, h)| h.to_owned()), path)
        } else {
            (None, name)
        };
        RepositoryName {
            host,
            path: path.trim_matches('/').to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push_from(names: &[&str]) -> Push {
        Push {
            delivery: "d".into(),
            repositories: names.iter().map(|n| (*n).to_owned()).collect(),
            branch: "main".into(),
            commit: "0123abcd".into(),
        }
    }

    #[test]
    fn a_repository_matches_by_its_whole_path_in_any_spelling() {
        let push = push_from(&["octo-org/shop", "https://github.com/octo-org/shop"]);
        for wanted in [
            "octo-org/shop",
            "Octo-Org/Shop",
            "https://github.com/octo-org/shop.git",
            "https://github.com/octo-org/shop/",
            "git@github.com:octo-org/shop.git",
        ] {
            assert!(repository_matches(wanted, &push), "{wanted}");
        }
    }

    #[test]
    fn a_longer_or_shorter_path_or_another_host_never_matches() {
        // A subgroup push must not start the pipelines of a shorter path, nor the reverse.
        let subgroup = push_from(&["x/org/app", "https://gitlab.com/x/org/app"]);
        assert!(!repository_matches("org/app", &subgroup));
        assert!(!repository_matches("https://gitlab.com/org/app", &subgroup));
        let plain = push_from(&["org/app", "https://gitlab.com/org/app"]);
        assert!(!repository_matches("https://gitlab.com/x/org/app", &plain));
        assert!(!repository_matches("https://evil.example/org/app", &plain));
        assert!(!repository_matches("app", &plain));
        assert!(!repository_matches("", &push_from(&[""])));
    }
}

//! What c8s hands to git is checked before anything renders: commits are full
//! object names, branches follow `git check-ref-format --branch`, repository
//! URLs carry no credentials (those come from a Secret).

use crate::Error;

/// Whether `commit` is a full hex object name: 40 (SHA-1) or 64 (SHA-256) digits.
pub fn is_full_object_name(commit: &str) -> bool {
    matches!(commit.len(), 40 | 64) && commit.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Why `branch` is not a valid branch name, following git-check-ref-format(1)
/// (rules 1, 3-10) and `--branch` (no leading `-`, not `HEAD`).
pub fn branch_problem(branch: &str) -> Option<&'static str> {
    if branch.is_empty() {
        return Some("must not be empty");
    }
    if branch.starts_with('-') {
        return Some("must not start with `-`");
    }
    if branch == "HEAD" || branch == "@" {
        return Some("must not be `HEAD` or `@`");
    }
    if branch.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Some("must not contain control characters");
    }
    if branch
        .chars()
        .any(|c| matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
    {
        return Some("must not contain space, ~, ^, :, ?, *, [ or \\");
    }
    if branch.contains("..") || branch.contains("@{") {
        return Some("must not contain `..` or `@{`");
    }
    if branch.starts_with('/') || branch.ends_with('/') || branch.contains("//") {
        return Some("must not start or end with `/` or contain `//`");
    }
    if branch.ends_with('.') {
        return Some("must not end with `.`");
    }
    if branch
        .split('/')
        .any(|part| part.starts_with('.') || part.ends_with(".lock"))
    {
        return Some("no `/`-separated part may start with `.` or end with `.lock`");
    }
    None
}

/// `url` without its user information, for messages.
pub fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// Whether `url` embeds a credential: any user information in an HTTP(S) URL
/// (a token as user name counts), or a password in any other URL
/// (`ssh://git@host/...` names a user, not a secret).
pub fn embeds_credentials(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let Some((user_info, _)) = authority.rsplit_once('@') else {
        return false;
    };
    let http = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    http || user_info.contains(':')
}

/// Checks the git facts of a run context.
pub(crate) fn check(commit: &str, branch: &str, repository: &str, secret: Option<&str>) -> Result<(), Error> {
    if !commit.is_empty() && !is_full_object_name(commit) {
        return Err(Error::InvalidCommit {
            commit: commit.to_owned(),
        });
    }
    if !branch.is_empty()
        && let Some(reason) = branch_problem(branch)
    {
        return Err(Error::InvalidBranch {
            branch: branch.to_owned(),
            reason,
        });
    }
    if embeds_credentials(repository) {
        return Err(Error::CredentialsInUrl {
            repository: redacted(repository),
        });
    }
    if repository.starts_with('-') {
        return Err(Error::InvalidRepository {
            repository: repository.to_owned(),
        });
    }
    if let Some(secret) = secret
        && let Err(reason) = c8s_sidecar_core::names::dns1123_subdomain(secret)
    {
        return Err(Error::InvalidSetting {
            field: "gitSecret",
            reason: format!("{secret:?}: {reason}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_are_full_hex_names() {
        assert!(is_full_object_name(&"a".repeat(40)));
        assert!(is_full_object_name(&"0F".repeat(32)));
        for bad in [
            "abc1234",
            "--upload-pack=touch /tmp/x",
            &"g".repeat(40),
            &"a".repeat(41),
        ] {
            assert!(!is_full_object_name(bad), "{bad}");
        }
    }

    #[test]
    fn branches_follow_check_ref_format() {
        for ok in ["main", "release/1.2", "feature/x-y_z", "v1.0"] {
            assert_eq!(branch_problem(ok), None, "{ok}");
        }
        for bad in [
            "-x",
            "--upload-pack=x",
            "a..b",
            "a b",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[",
            "a\\b",
            "/a",
            "a/",
            "a//b",
            "a.",
            ".a",
            "a/.b",
            "a.lock",
            "a/b.lock/c",
            "a@{1}",
            "@",
            "HEAD",
            "a\u{7}",
        ] {
            assert!(branch_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn credentials_in_urls_are_found_and_never_shown() {
        let url = "https://bot:s3cret@github.com/org/repo.git";
        assert!(embeds_credentials(url));
        assert!(embeds_credentials("https://ghp_token@github.com/org/repo.git"));
        assert!(!embeds_credentials("ssh://git@github.com/org/repo.git"));
        assert!(!embeds_credentials("git@github.com:org/repo.git"));
        assert!(!embeds_credentials("https://github.com/org/repo.git"));
        assert_eq!(redacted(url), "https://github.com/org/repo.git");
        let message = check("", "", url, None).expect_err("refused").to_string();
        assert!(
            !message.contains("s3cret") && !message.contains("bot"),
            "{message}"
        );
    }
}

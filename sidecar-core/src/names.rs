//! Syntax rules the Kubernetes API server enforces on names and references
//! (`pkg/apis/core/validation`, `apimachinery/pkg/util/validation`).
//! Each returns `Err(reason)` with a sentence a person can act on.

/// A DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
/// Container names, volume names, namespaces and step names are labels.
pub fn dns1123_label(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > 63 {
        return Err(format!("must be at most 63 characters (is {})", value.len()));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("may contain only lowercase letters, digits and '-'".into());
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters
/// (Secret names, object names).
pub fn dns1123_subdomain(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > 253 {
        return Err(format!("must be at most 253 characters (is {})", value.len()));
    }
    for part in value.split('.') {
        if part.is_empty()
            || !part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || part.starts_with('-')
            || part.ends_with('-')
        {
            return Err("must be lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit".into());
        }
    }
    Ok(())
}

/// A label value: empty, or at most 63 characters of `[A-Za-z0-9_.-]`,
/// starting and ending with a letter or digit.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 {
        return Err(format!("must be at most 63 characters (is {})", value.len()));
    }
    qualified_name_part(value)
}

fn qualified_name_part(value: &str) -> Result<(), String> {
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("may contain only letters, digits, '-', '_' and '.'".into());
    }
    let ends_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if !ends_ok(value.as_bytes().first()) || !ends_ok(value.as_bytes().last()) {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}

/// A label (or annotation) key: optional DNS-subdomain prefix and `/`, then a
/// name of at most 63 characters.
pub fn label_key(value: &str) -> Result<(), String> {
    let (prefix, name) = match value.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, value),
    };
    if let Some(prefix) = prefix {
        dns1123_subdomain(prefix).map_err(|reason| format!("prefix {prefix:?} {reason}"))?;
    }
    if name.is_empty() || name.len() > 63 {
        return Err("name part must be 1 to 63 characters".into());
    }
    qualified_name_part(name)
}

/// An environment variable name, with the strict rule (before Kubernetes 1.34):
/// `[-._a-zA-Z][-._a-zA-Z0-9]*`, and not `.`, `..` or starting with `..`.
pub fn env_var_name(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    let first_ok = value
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b'-' | b'.' | b'_'));
    if !first_ok
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err("must consist of letters, digits, '_', '-' and '.', and not start with a digit".into());
    }
    if value == "." || value.starts_with("..") {
        return Err("must not be '.' or start with '..'".into());
    }
    Ok(())
}

/// A key within a Secret or ConfigMap: `[-._a-zA-Z0-9]+`, at most 253, not `.`/`..`.
pub fn config_key(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > 253 {
        return Err(format!("must be at most 253 characters (is {})", value.len()));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err("may contain only letters, digits, '-', '_' and '.'".into());
    }
    if value == "." || value == ".." || value.starts_with("..") {
        return Err("must not be '.' or start with '..'".into());
    }
    Ok(())
}

/// An IANA service name (port names): at most 15 characters of `[-a-z0-9]`,
/// at least one letter, no `--`, no leading or trailing `-`.
pub fn port_name(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 15 {
        return Err("must be 1 to 15 characters".into());
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("may contain only lowercase letters, digits and '-'".into());
    }
    if !value.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err("must contain at least one letter".into());
    }
    if value.contains("--") || value.starts_with('-') || value.ends_with('-') {
        return Err("must not contain '--' or start or end with '-'".into());
    }
    Ok(())
}

/// A compute resource name: `cpu`, `memory`, `ephemeral-storage`,
/// `hugepages-*`, or a domain-prefixed extended resource (`nvidia.com/gpu`).
pub fn resource_name(value: &str) -> bool {
    match value {
        "cpu" | "memory" | "ephemeral-storage" => true,
        v if v.starts_with("hugepages-") => true,
        v => v.contains('/') && label_key(v).is_ok(),
    }
}

/// An image reference, following the distribution reference grammar:
/// `[host[:port]/]path[:tag][@algorithm:hex]`, lowercase path components,
/// total name at most 255 characters.
pub fn image_reference(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.trim() != value || value.contains(char::is_whitespace) {
        return Err("must not contain whitespace".into());
    }
    let (name_and_tag, digest) = match value.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (value, None),
    };
    if let Some(digest) = digest {
        check_digest(digest)?;
    }
    // A ':' after the last '/' starts the tag; one before it is a registry port.
    let last_slash = name_and_tag.rfind('/');
    let (name, tag) = match name_and_tag.rfind(':') {
        Some(colon) if last_slash.is_none_or(|slash| colon > slash) => {
            (&name_and_tag[..colon], Some(&name_and_tag[colon + 1..]))
        }
        _ => (name_and_tag, None),
    };
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    if name.len() > 255 {
        return Err("repository name must be at most 255 characters".into());
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 && looks_like_host(parts[0]) {
        check_host(parts[0])?;
        parts.remove(0);
    }
    for part in parts {
        check_path_component(part)?;
    }
    Ok(())
}

fn looks_like_host(first: &str) -> bool {
    first.contains('.')
        || first.contains(':')
        || first == "localhost"
        || first.starts_with('[')
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

fn check_host(host: &str) -> Result<(), String> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or("unclosed '[' in registry host")?;
        if ip.is_empty() || !ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(format!("registry host [{ip}] is not an IPv6 address"));
        }
        (None, after.strip_prefix(':'))
    } else {
        match host.split_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("registry port {port:?} is not a number"));
    }
    if let Some(name) = name {
        for label in name.split('.') {
            let ok = !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(format!("registry host {name:?} is not a valid host name"));
            }
        }
    }
    Ok(())
}

fn check_path_component(part: &str) -> Result<(), String> {
    let err = || {
        format!(
            "path component {part:?} must be lowercase letters and digits, separated by '.', '_', '__' or '-'"
        )
    };
    if part.is_empty() {
        return Err("empty path component (check for '//' or a trailing '/')".into());
    }
    let bytes = part.as_bytes();
    if !bytes[0].is_ascii_lowercase() && !bytes[0].is_ascii_digit() {
        return Err(err());
    }
    let last = bytes[bytes.len() - 1];
    if !last.is_ascii_lowercase() && !last.is_ascii_digit() {
        return Err(err());
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__', or one or more '-'.
        let start = i;
        while i < bytes.len() && matches!(bytes[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &part[start..i];
        // An empty run means a byte that is neither allowed nor a separator (`,`, `!`, ...).
        let ok =
            sep == "." || sep == "_" || sep == "__" || (!sep.is_empty() && sep.bytes().all(|b| b == b'-'));
        if !ok {
            return Err(err());
        }
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag {tag:?} must be 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'"
        ))
    }
}

fn check_digest(digest: &str) -> Result<(), String> {
    let (algorithm, hex) = digest
        .split_once(':')
        .ok_or_else(|| format!("digest {digest:?} must look like sha256:<hex>"))?;
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && algorithm
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'.'));
    let hex_ok = hex.len() >= 32
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if algorithm_ok && hex_ok {
        Ok(())
    } else {
        Err(format!(
            "digest {digest:?} must look like sha256:<at least 32 lowercase hex digits>"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(dns1123_label("postgres").is_ok());
        assert!(dns1123_label("pg-16").is_ok());
        for bad in ["", "Postgres", "-pg", "pg-", "pg_db", "pg.db", &"a".repeat(64)] {
            assert!(dns1123_label(bad).is_err(), "{bad}");
        }
        assert!(dns1123_subdomain("ci-secrets.team").is_ok());
        assert!(dns1123_subdomain("ci..secrets").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("release_1.2-x").is_ok());
        assert!(label_value("-x").is_err());
        assert!(label_key("app.kubernetes.io/name").is_ok());
        assert!(label_key("c8s.dev/").is_err());
    }

    #[test]
    fn env_and_keys() {
        assert!(env_var_name("POSTGRES_PASSWORD").is_ok());
        assert!(env_var_name("my.var-1").is_ok());
        for bad in ["", "1ABC", "A B", "A=B", ".", "..x", "é"] {
            assert!(env_var_name(bad).is_err(), "{bad}");
        }
        assert!(config_key("api-token").is_ok());
        assert!(config_key("a/b").is_err());
        assert!(config_key("..").is_err());
    }

    #[test]
    fn port_names() {
        assert!(port_name("pg").is_ok());
        assert!(port_name("http-alt").is_ok());
        for bad in ["", "80", "a--b", "-a", "a-", "UPPER", "sixteen-chars-xx"] {
            assert!(port_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn images() {
        for good in [
            "postgres:16",
            "postgres",
            "golang:1.23",
            "library/redis:7-alpine",
            "gcr.io/go-containerregistry/crane:debug",
            "localhost:5000/app:dev",
            "registry.example.com:443/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "[::1]:5000/app",
            "my__image",
            "a--b",
        ] {
            assert!(
                image_reference(good).is_ok(),
                "{good}: {:?}",
                image_reference(good)
            );
        }
        for bad in [
            "",
            "Postgres:16",
            "postgres:",
            "postgres:16 ",
            "postgres::16",
            "pg/",
            "pg@sha256:abc",
            "pg:-x",
            "a...b",
            "host:port/app",
            // Found by the fuzzer: a byte outside the grammar once looped forever.
            "al,ine:3",
            "a!b",
            "ab,",
        ] {
            assert!(image_reference(bad).is_err(), "{bad}");
        }
    }
}

//! Go-style durations (`90s`, `30m`, `1h30m`) as whole seconds, and branch globs.

/// Parses a Go-style duration into whole seconds: one or more `<number><unit>`
/// parts with units `h`, `m`, `s`, each unit at most once, largest first.
///
/// ```
/// use c8s_pipeline_model::parse_duration;
/// assert_eq!(parse_duration("1h30m"), Ok(5400));
/// assert_eq!(parse_duration("90s"), Ok(90));
/// assert!(parse_duration("90").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<u64, String> {
    if text.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    let mut last_rank = usize::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err("expected a number followed by h, m or s (e.g. 90s, 30m, 1h30m)".to_owned());
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| "the number is too large".to_owned())?;
        let unit = rest[digits..].chars().next();
        let (rank, factor) = match unit {
            Some('h') => (0, 3600),
            Some('m') => (1, 60),
            Some('s') => (2, 1),
            None => {
                return Err(format!(
                    "{number} has no unit: write {number}s, {number}m or {number}h"
                ));
            }
            Some(other) => return Err(format!("unknown unit {other:?}: use h, m or s")),
        };
        if last_rank != usize::MAX && rank <= last_rank {
            return Err("units must go from largest to smallest, each once (e.g. 1h30m)".to_owned());
        }
        last_rank = rank;
        total = number
            .checked_mul(factor)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| "the duration is too long".to_owned())?;
        rest = &rest[digits + 1..];
    }
    if total == 0 {
        return Err("must be longer than 0s".to_owned());
    }
    Ok(total)
}

/// Whether `branch` matches `glob`: `*` matches any run of characters except
/// `/`, `**` any run including `/`, `?` one character except `/`.
///
/// ```
/// use c8s_pipeline_model::branch_matches;
/// assert!(branch_matches("release/*", "release/1.2"));
/// assert!(!branch_matches("release/*", "release/1.2/hotfix"));
/// assert!(branch_matches("**", "feature/a/b"));
/// ```
// Hand-written rather than `globset`: globset agrees on the tests here, but
// gives `[`, `{` and `\` a meaning (`feat-[x]` no longer matches itself and
// `feature/[` becomes an error where pipelines written for this matcher
// match it literally), treats `**` differently (`a/**/b` matches `a/b`,
// `rel**` does not match `release/x`), and would add globset, bstr, log,
// regex-automata and regex-syntax to this library for 30 lines.
pub fn branch_matches(glob: &str, branch: &str) -> bool {
    let pattern: Vec<char> = glob.chars().collect();
    let text: Vec<char> = branch.chars().collect();
    // matched[j]: the pattern so far matches text[..j]. Dynamic programming keeps
    // hostile patterns (`*a*a*a*…`) linear in pattern × branch length.
    let mut matched = vec![false; text.len() + 1];
    matched[0] = true;
    let mut i = 0;
    while i < pattern.len() {
        let mut next = vec![false; text.len() + 1];
        match pattern[i] {
            '*' => {
                let any = pattern.get(i + 1) == Some(&'*');
                for j in 0..=text.len() {
                    next[j] = matched[j] || (j > 0 && next[j - 1] && (any || text[j - 1] != '/'));
                }
                if any {
                    i += 1;
                }
            }
            '?' => {
                for j in 1..=text.len() {
                    next[j] = matched[j - 1] && text[j - 1] != '/';
                }
            }
            c => {
                for j in 1..=text.len() {
                    next[j] = matched[j - 1] && text[j - 1] == c;
                }
            }
        }
        matched = next;
        i += 1;
    }
    matched[text.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("2h0m5s"), Ok(7205));
        for bad in [
            "",
            "1",
            "m",
            "1d",
            "30m1h",
            "1h1h",
            "0s",
            "1.5h",
            " 1h",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn globs() {
        assert!(branch_matches("main", "main"));
        assert!(!branch_matches("main", "main2"));
        assert!(branch_matches("feat-?", "feat-a"));
        assert!(branch_matches("*", "anything"));
        assert!(!branch_matches("*", "a/b"));
        assert!(branch_matches("release/**", "release/a/b"));
    }

    #[test]
    fn globs_know_only_star_and_question_mark() {
        assert!(branch_matches("feat-[x]", "feat-[x]"));
        assert!(branch_matches("feature/[", "feature/["));
        assert!(branch_matches("release-{a,b}", "release-{a,b}"));
        assert!(branch_matches("rel**", "release/x"));
        assert!(!branch_matches("a/**/b", "a/b"));
    }
}

//! Values from the cluster made safe for a page: as HTML text or a quoted
//! attribute ([`escape`]), and as one URL path segment ([`segment`]).

use std::fmt::Write as _;

/// `text` with `& < > " '` replaced by entities: safe as element text and
/// as a quoted attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `part` as one path segment of a URL (everything but unreserved
/// characters percent-encoded).
pub fn segment(part: &str) -> String {
    let mut out = String::new();
    for b in part.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

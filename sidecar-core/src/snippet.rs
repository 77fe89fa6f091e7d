//! Errors for people: each message followed by the offending source line with
//! a caret under the column, as `c8s validate` prints them.
//!
//! ```
//! use c8s_sidecar_core::parse_sidecars;
//!
//! let text = "- name: main\n  image: redis:7\n";
//! let errors = parse_sidecars("ci/redis.yml", text).unwrap_err();
//! assert_eq!(
//!     errors.render_with_source("ci/redis.yml", text),
//!     "error: ci/redis.yml:1:3: sidecar \"main\": name: \"main\" is reserved \
//!      (main, artifact-helper, git-clone and c8s-* are used by c8s)\n  |\n1 | - name: main\n  |   ^\n"
//! );
//! ```

use crate::error::{Error, ErrorList, Position};

/// The source line at `at` with a caret under its column, or nothing when the
/// position has no line or the line is not there.
pub fn snippet(source: &[u8], at: &Position) -> String {
    if at.line == 0 {
        return String::new();
    }
    let text = String::from_utf8_lossy(source);
    let Some(line) = text.lines().nth(at.line as usize - 1) else {
        return String::new();
    };
    // Long lines (minified or hostile input) are cut so the caret stays readable.
    let shown: String = line.chars().take(200).collect();
    let number = at.line.to_string();
    let pad = " ".repeat(number.len());
    let caret_at = (at.column.max(1) as usize - 1).min(shown.chars().count());
    let indent: String = shown
        .chars()
        .take(caret_at)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    format!("{pad} |\n{number} | {shown}\n{pad} | {indent}^\n")
}

/// An error that knows where it points: what [`render_with_sources`] needs.
/// Implemented by this crate's [`Error`] and by the errors of crates built on
/// it (pipeline-model's), so every crate prints the same snippets.
pub trait Positioned: std::fmt::Display {
    /// The file, line and column the error is about.
    fn position(&self) -> Position;
}

impl Positioned for Error {
    fn position(&self) -> Position {
        Error::position(self)
    }
}

/// Every error as `error: <message>`, each followed by its source line with
/// a caret; `source_of(file)` gives the bytes of the file an error points
/// into, if the caller has them.
pub fn render_with_sources<'e, E: Positioned + 'e>(
    errors: impl IntoIterator<Item = &'e E>,
    mut source_of: impl FnMut(&str) -> Option<Vec<u8>>,
) -> String {
    let mut out = String::new();
    for error in errors {
        out.push_str(&format!("error: {error}\n"));
        let at = error.position();
        if at.line > 0
            && let Some(bytes) = source_of(&at.file)
        {
            out.push_str(&snippet(&bytes, &at));
        }
    }
    out
}

impl<E: Positioned> ErrorList<E> {
    /// Every error as `error: <message>`, each followed by its line of `text`
    /// with a caret when the error is in `file` (errors in other files, such as
    /// a pipeline's sidecar files, get the message alone).
    pub fn render_with_source(&self, file: &str, text: impl AsRef<[u8]>) -> String {
        let text = text.as_ref();
        self.render_with_sources(|name| (name == file).then(|| text.to_vec()))
    }

    /// Every error as `error: <message>`, each followed by its source line
    /// with a caret; `source_of(file)` gives the bytes of the file an error
    /// points into, if the caller has them.
    pub fn render_with_sources(&self, source_of: impl FnMut(&str) -> Option<Vec<u8>>) -> String {
        render_with_sources(self.iter(), source_of)
    }
}

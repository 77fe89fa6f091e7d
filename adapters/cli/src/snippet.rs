//! Shows the offending line under an error, with a caret at the column.

use c8s_sidecar_core::Position;

/// The source line at `at` with a caret under its column, or nothing when the
/// position has no line or the line is not there.
pub fn render(source: &[u8], at: &Position) -> String {
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

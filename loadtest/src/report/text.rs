//! Escaping and number formatting shared by the report formats, so the same figure reads the
//! same in Markdown, HTML and JUnit.

use std::fmt::Write;

/// Escapes text for HTML and SVG content and attribute values.
pub(crate) fn html(text: &str) -> String {
    xml(text)
}

/// Escapes text for XML content and attribute values, and drops the control characters XML 1.0
/// cannot carry at all (a NUL in a scenario name must not make junit.xml unparseable).
pub(super) fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Makes text safe inside one Markdown table cell or list item: no column breaks, no line
/// breaks, no HTML tags. A `<` is escaped only where it could open a tag (before a letter,
/// `/`, `!` or `?`): `lost 0 <= 0` and `p99 3 > 0` must read well where Markdown is read raw.
pub(crate) fn md_cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '|' => out.push_str("\\|"),
            '\n' | '\r' => out.push(' '),
            '<' if chars.peek().is_some_and(|n| n.is_alphabetic() || matches!(n, '/' | '!' | '?')) => {
                out.push_str("&lt;")
            }
            '`' => out.push('\''),
            c => out.push(c),
        }
    }
    out
}

/// Microseconds as milliseconds with 2 decimals.
pub fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// `part / whole` as a percentage with 1 decimal; `-` when `whole` is 0.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 { "-".to_string() } else { format!("{:.1}", part as f64 * 100.0 / whole as f64) }
}

/// Seconds as `12.5 s`, without trailing zeros.
pub(super) fn seconds(s: f64) -> String {
    let mut out = String::new();
    let _ = write!(out, "{}", (s * 1000.0).round() / 1000.0);
    out.push_str(" s");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_control_characters_are_neutralised() {
        assert_eq!(xml("<a href=\"x\">&'\u{0}"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;\u{FFFD}");
        assert_eq!(md_cell("a|b\n<c>`"), "a\\|b &lt;c>'");
        assert_eq!(md_cell("lost 0 <= 0, </x>, <!--"), "lost 0 <= 0, &lt;/x>, &lt;!--");
    }

    #[test]
    fn numbers_read_the_same_everywhere() {
        assert_eq!(ms(12_340), "12.34");
        assert_eq!(ms(1_500_000), "1500.00");
        assert_eq!(ms(0), "0.00");
        assert_eq!(percent(2, 3), "66.7");
        assert_eq!(percent(0, 0), "-");
        assert_eq!(seconds(30.0), "30 s");
        assert_eq!(seconds(2.5), "2.5 s");
    }
}

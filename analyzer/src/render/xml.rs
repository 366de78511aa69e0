//! The one escaper for text placed in XML or HTML (SVG text, element content, attribute values).

/// Escapes `s` for XML/HTML element content and quoted attribute values: `& < > " '`.
///
/// ```
/// use tidemark_analyzer::render::xml::escape;
/// assert_eq!(escape(r#"<a href="x">Tom's & co</a>"#), "&lt;a href=&quot;x&quot;&gt;Tom&#39;s &amp; co&lt;/a&gt;");
/// ```
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

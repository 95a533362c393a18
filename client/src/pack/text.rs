//! Making untrusted text safe for the two outputs. Everything a pack shows may come from a sealed
//! payload another agency wrote (names, notes, plans) or from the hub (codes, reasons), so every
//! piece of text goes through here before it reaches Markdown or HTML: control characters and
//! bidirectional overrides are dropped, and the characters that mean something to the format are
//! escaped.

/// Whether `c` reorders text on screen or on paper (bidirectional embeddings, overrides and
/// isolates): a "Trojan Source" note could make a printed plan read differently from what it says.
fn is_bidi_control(c: char) -> bool {
    matches!(u32::from(c), 0x202A..=0x202E | 0x2066..=0x2069 | 0x200E | 0x200F | 0x061C)
}

/// Text with its line breaks normalised to `\n`, tabs as spaces, and every other control
/// character and bidirectional control dropped. Trailing spaces of each line and empty lines at
/// either end go too.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\n' => out.push('\n'),
            '\t' => out.push(' '),
            c if c.is_control() || is_bidi_control(c) => {}
            c => out.push(c),
        }
    }
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    let first = lines.iter().position(|l| !l.trim().is_empty());
    let last = lines.iter().rposition(|l| !l.trim().is_empty());
    match (first, last) {
        (Some(first), Some(last)) => lines[first..=last].join("\n"),
        _ => String::new(),
    }
}

/// One line of text: [`clean`], with line breaks as spaces.
pub fn one_line(text: &str) -> String {
    clean(text)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Escapes text for HTML element content and attribute values (double- or single-quoted):
/// `& < > " '` become character references. Control and bidirectional characters are dropped as
/// in [`clean`]; line breaks stay (the page shows them with `white-space: pre-wrap`).
pub fn escape_html(text: &str) -> String {
    let cleaned = clean(text);
    let mut out = String::with_capacity(cleaned.len() + 16);
    for c in cleaned.chars() {
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

/// The ASCII punctuation that starts Markdown syntax anywhere in a line (emphasis, code, links,
/// raw HTML, entities, table cells, headings, strikethrough). CommonMark lets any ASCII
/// punctuation be escaped with a backslash.
const MARKDOWN_INLINE: &[char] = &[
    '\\', '`', '*', '_', '[', ']', '<', '>', '|', '#', '~', '&', '!',
];

/// Escapes one line of text for Markdown so that it shows literally: the inline syntax
/// characters get a backslash, and so does what would start a block at the beginning of a line
/// (a list bullet, a numbered item, a setext underline). Line breaks become spaces.
pub fn escape_markdown(text: &str) -> String {
    let line = one_line(text);
    let mut out = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        if MARKDOWN_INLINE.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    escape_line_start(&out)
}

/// A backslash before what would make the start of a line a list item or a setext underline.
fn escape_line_start(line: &str) -> String {
    if line.starts_with(['-', '+', '=']) {
        return format!("\\{line}");
    }
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    if digits > 0 {
        let rest = &line[digits..];
        if rest.starts_with(['.', ')']) {
            return format!("{}\\{rest}", &line[..digits]);
        }
    }
    line.to_owned()
}

/// Multi-line text as a Markdown block quote, each line escaped ([`escape_markdown`]) and
/// prefixed by `prefix` then `> `; blank lines stay as an empty quote line.
pub fn markdown_quote(text: &str, prefix: &str) -> String {
    let mut out = String::new();
    for line in clean(text).lines() {
        let line = line.trim();
        out.push_str(prefix);
        if line.is_empty() {
            out.push_str(">\n");
        } else {
            out.push_str("> ");
            out.push_str(&escape_markdown(line));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_tag_and_quotes_are_escaped_for_html() {
        assert_eq!(
            escape_html(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn an_attribute_cannot_be_closed_from_inside() {
        let value = escape_html(r#"" onmouseover="alert(1)"#);
        assert!(!value.contains('"'), "{value}");
        let value = escape_html("' onload='x");
        assert!(!value.contains('\''), "{value}");
    }

    #[test]
    fn japanese_text_passes_through_html_unchanged() {
        assert_eq!(
            escape_html("青葉 花子（キーパーソン：祖母）"),
            "青葉 花子（キーパーソン：祖母）"
        );
    }

    #[test]
    fn character_references_in_the_input_are_escaped_not_decoded() {
        assert_eq!(escape_html("&lt;b&gt;"), "&amp;lt;b&amp;gt;");
    }

    #[test]
    fn control_and_bidirectional_characters_are_dropped() {
        assert_eq!(
            escape_html("a\u{1b}[31mb\u{202e}c\u{2066}d\u{0}"),
            "a[31mbcd"
        );
        assert_eq!(
            clean("一行目\r\n二行目\r三行目\t終"),
            "一行目\n二行目\n三行目 終"
        );
    }

    #[test]
    fn blank_lines_at_either_end_are_trimmed_and_inner_ones_kept() {
        assert_eq!(clean("\n\n  a  \n\nb\n\n"), "  a\n\nb");
        assert_eq!(clean(" \n \t\n"), "");
    }

    #[test]
    fn markdown_syntax_in_text_shows_literally() {
        assert_eq!(
            escape_markdown("<script>alert('x')</script>"),
            "\\<script\\>alert('x')\\</script\\>"
        );
        assert_eq!(
            escape_markdown("**太字** [link](http://x) `code` a|b"),
            "\\*\\*太字\\*\\* \\[link\\](http://x) \\`code\\` a\\|b"
        );
        assert_eq!(escape_markdown("# 見出し"), "\\# 見出し");
        assert_eq!(escape_markdown("&amp;"), "\\&amp;");
    }

    #[test]
    fn what_would_start_a_markdown_block_is_escaped_at_the_start_of_a_line() {
        assert_eq!(escape_markdown("- 箇条書き"), "\\- 箇条書き");
        assert_eq!(escape_markdown("1. 番号"), "1\\. 番号");
        assert_eq!(escape_markdown("2026-04-01"), "2026-04-01");
        assert_eq!(escape_markdown("==="), "\\===");
    }

    #[test]
    fn a_line_break_cannot_escape_a_markdown_table_cell_or_list_item() {
        assert_eq!(
            escape_markdown("一行目\n| 表 |\n# 見出し"),
            "一行目 \\| 表 \\| \\# 見出し"
        );
    }

    #[test]
    fn a_markdown_quote_keeps_the_lines_of_a_note() {
        assert_eq!(
            markdown_quote("訪問しました。\n\n- 母は元気\n<b>", "  "),
            "  > 訪問しました。\n  >\n  > \\- 母は元気\n  > \\<b\\>\n"
        );
    }
}

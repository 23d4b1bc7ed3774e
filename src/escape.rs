//! Escaping of text svcacct did not write itself (descriptions, names, paths, messages from a
//! server) before it reaches a terminal, a pull-request comment or a JSON reader. Anyone who
//! can edit the config or call the API sets a description: raw, an `ESC [8m` in it hides the
//! lines after it (an `admin: false → true` included), OSC 52 writes the reader's clipboard,
//! and a bidi override makes text read other than it is. One function per output format;
//! every place that format writes such text goes through it.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether a character must not reach output raw: C0 and C1 controls, DEL, and the bidi
/// embeddings, overrides and isolates.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` cut to `max` characters (and an ellipsis): echoed input in a message stays short.
pub fn shorten(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((end, _)) => Cow::Owned(format!("{}…", &s[..end])),
    }
}

/// Text for a terminal, as one line: each unsafe character (newlines too) written visibly,
/// as `\u{1b}`, the way Rust's `{:?}` writes it.
pub fn terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_unsafe(c) {
            let _ = write!(out, "{}", c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Text for a terminal that may span lines (an error with its config snippet): each line
/// escaped as by [`terminal`], the newlines between them kept.
pub fn terminal_lines(s: &str) -> String {
    s.split('\n').map(terminal).collect::<Vec<_>>().join("\n")
}

/// Text for Markdown, such as a table cell of a pull-request comment: unsafe characters as
/// by [`terminal`], then every ASCII punctuation character that can start markup escaped with
/// a backslash, so a value never opens a link, an image, HTML, emphasis, a code span or a
/// new table cell.
pub fn markdown(s: &str) -> String {
    let text = terminal(s);
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '`'
                | '*'
                | '_'
                | '{'
                | '}'
                | '['
                | ']'
                | '('
                | ')'
                | '#'
                | '+'
                | '-'
                | '.'
                | '!'
                | '|'
                | '<'
                | '>'
                | '~'
                | '&'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// JSON text made safe to print: serde_json already writes C0 controls in strings as
/// `\u001b` (those outside strings are its own whitespace); this writes DEL, C1 and bidi
/// characters as `\uXXXX` too. They can only occur inside strings, so the result is the same
/// JSON value.
pub fn json(text: &str) -> Cow<'_, str> {
    let unsafe_in_string = |c: char| c >= ' ' && is_unsafe(c);
    if !text.chars().any(unsafe_in_string) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_in_string(c) {
            // All of them are in the Basic Multilingual Plane: one `\uXXXX` each.
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_cuts_at_a_character_not_a_byte() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("abcd", 3), "abc…");
        assert_eq!(shorten("ééééé", 2), "éé…");
        assert!(matches!(shorten("short", 80), Cow::Borrowed(_)));
    }

    const NASTY: &str = "a\u{1b}[8mb\u{1b}]52;c;aGk=\u{7}\rc\u{202e}d\u{7f}\u{9b}e\u{2066}";

    fn raw_free(s: &str) -> bool {
        !s.chars().any(is_unsafe)
    }

    #[test]
    fn terminal_writes_every_unsafe_character_visibly() {
        assert_eq!(
            terminal(NASTY),
            "a\\u{1b}[8mb\\u{1b}]52;c;aGk=\\u{7}\\u{d}c\\u{202e}d\\u{7f}\\u{9b}e\\u{2066}"
        );
        assert_eq!(terminal("plain — text ✓"), "plain — text ✓");
        assert_eq!(terminal("a\nb"), "a\\u{a}b");
        assert_eq!(terminal_lines("a\u{1b}\nb\tc"), "a\\u{1b}\nb\\u{9}c");
    }

    #[test]
    fn markdown_leaves_no_markup_and_no_control() {
        let md = markdown("[click](http://evil) ![x](http://evil/i.png) <b>|`*_~#&");
        assert_eq!(
            md,
            "\\[click\\]\\(http://evil\\) \\!\\[x\\]\\(http://evil/i\\.png\\) \\<b\\>\\|\\`\\*\\_\\~\\#\\&"
        );
        assert!(raw_free(&markdown(NASTY)));
        assert!(!markdown("a\nb").contains('\n'));
    }

    #[test]
    fn json_stays_the_same_value() {
        let v = serde_json::json!({ "d": NASTY });
        let text = serde_json::to_string_pretty(&v).unwrap();
        let safe = json(&text);
        assert!(raw_free(&safe.replace('\n', "")), "{safe}");
        assert!(safe.contains("\\u202e") && safe.contains("\\u009b") && safe.contains("\\u007f"));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&safe).unwrap(), v);
    }
}

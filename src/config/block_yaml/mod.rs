//! A fast reader for the plain block YAML that large configs are written in.
//!
//! The YAML parsers of the Rust ecosystem read 14 to 26 MB/s on this project's machines, so an
//! organization of 100,000 accounts (46 MB of YAML) would spend seconds parsing before a plan
//! could start. Generated and hand-written configs alike use a small part of YAML: block
//! mappings and sequences, one-line scalars, and flow collections within one line. This
//! module reads exactly that part into the same serde types with the same lines and columns
//! ([`super::raw::Loc`]); `validate` of 10,000 accounts went from 0.43 s to 0.10 s with it.
//!
//! It is an optimisation only. Anything outside that part (block scalars, multi-line plain
//! scalars, escapes, anchors, tags, duplicate keys, a null where a string is asked for, a
//! value of the wrong type) is [`Unsupported`], and the caller parses the text with
//! `serde_saphyr`, which gives the answer, or the error with its location, as always. So this
//! reader never has to say why a config is wrong, only to recognise the YAML it is sure of.
//! The tests hold it to the full parser, value for value and place for place.

use std::collections::HashSet;
use std::fmt;

mod de_node;
#[cfg(test)]
mod tests;

use de_node::De;

use serde::de;

/// The text uses YAML this reader leaves to the full parser (or is not valid at all).
#[derive(Debug)]
pub struct Unsupported(String);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unsupported {}

impl de::Error for Unsupported {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Unsupported(msg.to_string())
    }
}

fn unsupported<T>(what: &str, line: u32) -> Result<T, Unsupported> {
    Err(Unsupported(format!("{what} at line {line}")))
}

/// Reads `text` as a `T`, or says it is not the YAML this reader handles.
pub fn from_str<'de, T: de::Deserialize<'de>>(text: &str) -> Result<T, Unsupported> {
    from_str_at(text, 1)
}

/// [`from_str`] of a part of a file that starts at line `first_line` (1-based), so that every
/// place is the file's own. The part is one block mapping or sequence, at any indentation.
pub fn from_str_at<'de, T: de::Deserialize<'de>>(
    text: &str,
    first_line: usize,
) -> Result<T, Unsupported> {
    let node = parse(text, first_line as u32)?;
    T::deserialize(De(&node))
}

/// A node with the place (1-based line and column) the full parser gives it.
#[derive(Debug)]
enum Node<'a> {
    Map(Vec<(Node<'a>, Node<'a>)>, Place),
    Seq(Vec<Node<'a>>, Place),
    Scalar(Scalar<'a>),
}

#[derive(Debug, Clone, Copy)]
struct Place {
    line: u32,
    column: u32,
}

#[derive(Debug)]
struct Scalar<'a> {
    text: &'a str,
    /// Quoted scalars are strings whatever they say; plain ones may be null, true or 25.
    quoted: bool,
    place: Place,
}

impl Node<'_> {
    fn place(&self) -> Place {
        match self {
            Node::Map(_, p) | Node::Seq(_, p) => *p,
            Node::Scalar(s) => s.place,
        }
    }
}

/// Every line of `text` (without its line break) with the offset it starts at; a text ending
/// in a line break has an empty last line. Line ends are found with `memchr`, several times
/// faster than the standard library's search on 46 MB of config.
pub(super) fn lines_of(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', text.as_bytes())
        .chain([text.len()])
        .map(move |end| {
            let line = (start, &text[start..end]);
            start = end + 1;
            line
        })
}

/// One line that holds content: its number, indentation and text after the indentation.
struct Line<'a> {
    number: u32,
    indent: usize,
    text: &'a str,
}

fn parse(text: &str, first_line: u32) -> Result<Node<'_>, Unsupported> {
    // Sized once: growing a vector of a piece's 100,000 lines copies it, into fresh pages.
    let mut lines = Vec::with_capacity(memchr::memchr_iter(b'\n', text.as_bytes()).count() + 1);
    for (i, (_, raw)) in lines_of(text).enumerate() {
        let number = first_line + i as u32;
        // Tabs and carriage returns, and what YAML does not allow in a stream at all; most
        // lines are printable ASCII, told in one pass.
        let printable_ascii = raw.bytes().all(|b| (0x20..0x7f).contains(&b));
        if !printable_ascii
            && (raw.bytes().any(|b| b < 0x20 || b == 0x7f) || !raw.chars().all(printable))
        {
            return unsupported("a tab, carriage return or control character", number);
        }
        // Spaces are found byte by byte: every line of a 46 MB config comes through here.
        let bytes = raw.as_bytes();
        let indent = bytes.iter().position(|&b| b != b' ').unwrap_or(raw.len());
        if indent == raw.len() || bytes[indent] == b'#' {
            continue;
        }
        if raw.starts_with("---") || raw.starts_with("...") || raw.starts_with('%') {
            return unsupported("a document marker or directive", number);
        }
        let end = bytes
            .iter()
            .rposition(|&b| b != b' ')
            .map_or(indent, |i| i + 1);
        lines.push(Line {
            number,
            indent,
            text: &raw[indent..end],
        });
    }
    let Some(first) = lines.first() else {
        return unsupported("an empty document", first_line);
    };
    let indent = first.indent;
    let mut reader = Reader { lines, at: 0 };
    let node = reader.block(indent)?;
    match reader.lines.get(reader.at) {
        Some(l) => unsupported("content after the document's mapping", l.number),
        None => Ok(node),
    }
}

struct Reader<'a> {
    lines: Vec<Line<'a>>,
    at: usize,
}

/// What YAML allows in a stream, but for the ASCII controls checked before, and for what
/// some YAML versions read as a line break or a byte order mark.
fn printable(c: char) -> bool {
    !matches!(
        c,
        '\u{80}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
    )
}

/// The keys of one mapping so far, to refuse a duplicate: most mappings have a handful, looked
/// through in a list; a big one (the accounts) gets a hash set.
#[derive(Default)]
struct Keys<'a> {
    few: Vec<&'a str>,
    many: HashSet<&'a str>,
}

impl<'a> Keys<'a> {
    /// Adds `key`; false if it was there.
    fn insert(&mut self, key: &'a str) -> bool {
        const FEW: usize = 16;
        if self.few.len() < FEW {
            if self.few.contains(&key) {
                return false;
            }
            self.few.push(key);
            return true;
        }
        if self.many.is_empty() {
            self.many.extend(self.few.iter().copied());
        }
        self.many.insert(key)
    }
}

/// A sequence entry: `-` then a space, or `-` alone.
fn is_entry(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

impl<'a> Reader<'a> {
    /// The block collection whose first line is the current one, at `indent`.
    fn block(&mut self, indent: usize) -> Result<Node<'a>, Unsupported> {
        let line = &self.lines[self.at];
        if line.indent != indent {
            return unsupported("unexpected indentation", line.number);
        }
        if is_entry(line.text) {
            self.sequence(indent)
        } else {
            self.mapping(indent)
        }
    }

    fn mapping(&mut self, indent: usize) -> Result<Node<'a>, Unsupported> {
        let first = &self.lines[self.at];
        let place = Place {
            line: first.number,
            column: indent as u32 + 1,
        };
        let mut entries = Vec::new();
        let mut seen = Keys::default();
        while let Some(line) = self.lines.get(self.at) {
            if line.indent < indent || (line.indent == indent && is_entry(line.text)) {
                break;
            }
            if line.indent > indent {
                // A continuation of a plain scalar, or a mapping nested under a value.
                return unsupported("unexpected indentation", line.number);
            }
            let (number, text) = (line.number, line.text);
            let Some((key, rest)) = split_key(text) else {
                return unsupported("a line that is not `key: value`", number);
            };
            if !seen.insert(key) {
                return unsupported("a duplicate key", number);
            }
            let key = Node::Scalar(Scalar {
                text: key,
                quoted: false,
                place: Place {
                    line: number,
                    column: indent as u32 + 1,
                },
            });
            self.at += 1;
            let value = if rest.is_empty() {
                self.nested(indent, number)?
            } else {
                let column = (indent + text.len() - rest.len()) as u32 + 1;
                inline(rest, number, column)?
            };
            entries.push((key, value));
        }
        Ok(Node::Map(entries, place))
    }

    /// The value of a key written alone on its line: the block below it.
    fn nested(&mut self, indent: usize, number: u32) -> Result<Node<'a>, Unsupported> {
        match self.lines.get(self.at) {
            Some(next) if next.indent > indent => self.block(next.indent),
            // A sequence may sit at its key's own indentation.
            Some(next) if next.indent == indent && is_entry(next.text) => self.sequence(indent),
            _ => unsupported("an empty value", number),
        }
    }

    fn sequence(&mut self, indent: usize) -> Result<Node<'a>, Unsupported> {
        let first = &self.lines[self.at];
        let place = Place {
            line: first.number,
            column: indent as u32 + 1,
        };
        let mut items = Vec::new();
        while let Some(line) = self.lines.get(self.at) {
            if line.indent != indent || !is_entry(line.text) {
                if line.indent > indent {
                    return unsupported("unexpected indentation", line.number);
                }
                break;
            }
            let number = line.number;
            let item = line.text[1..].trim_start_matches(' ');
            if item.is_empty() {
                return unsupported("an entry on the lines below its dash", number);
            }
            let item_indent = indent + line.text.len() - item.len();
            if split_key(item).is_some() {
                // `- key: value`: a mapping whose first line starts after the dash.
                self.lines[self.at] = Line {
                    number,
                    indent: item_indent,
                    text: item,
                };
                items.push(self.mapping(item_indent)?);
            } else {
                self.at += 1;
                items.push(inline(item, number, item_indent as u32 + 1)?);
            }
        }
        Ok(Node::Seq(items, place))
    }
}

/// `key: rest` or `key:` (rest empty) with a plain key; `None` for anything else.
fn split_key(text: &str) -> Option<(&str, &str)> {
    let colon = memchr::memchr(b':', text.as_bytes())?;
    let (key, after) = (&text[..colon], &text[colon + 1..]);
    if !(after.is_empty() || after.starts_with(' ')) || !plain_key(key) {
        return None;
    }
    let rest = after.trim_start_matches(' ');
    if rest.starts_with('#') {
        return Some((key, ""));
    }
    Some((key, rest))
}

/// A key this reader is sure of: a name, a field or a slug.
fn plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
        && !key.starts_with(['-', '.'])
}

/// What may follow a value on its line: nothing, or a comment after a space.
fn only_comment(rest: &str) -> bool {
    rest.is_empty() || (rest.starts_with(' ') && rest.trim_start_matches(' ').starts_with('#'))
}

/// A value written after its key or dash, at `column` of line `number`.
fn inline(text: &str, number: u32, column: u32) -> Result<Node<'_>, Unsupported> {
    let place = Place {
        line: number,
        column,
    };
    let (node, rest) = match text.as_bytes()[0] {
        b'[' => flow_sequence(text, place)?,
        b'{' => flow_mapping(text, place)?,
        b'"' | b'\'' => quoted(text, place)?,
        _ => {
            let end = comment_start(text).unwrap_or(text.len());
            let value = text[..end].trim_end_matches(' ');
            if !plain_scalar(value, false) {
                return unsupported("a scalar to leave to the full parser", number);
            }
            let node = Node::Scalar(Scalar {
                text: value,
                quoted: false,
                place,
            });
            (node, &text[end..])
        }
    };
    if !only_comment(rest) {
        return unsupported("text after a value", number);
    }
    Ok(node)
}

/// Where a comment starts in a value's text: at a `#` after a space. (`memchr` rather than a
/// substring search, which sets up a searcher for every value of the config.)
fn comment_start(text: &str) -> Option<usize> {
    memchr::memchr_iter(b'#', text.as_bytes())
        .find(|&i| i > 0 && text.as_bytes()[i - 1] == b' ')
        .map(|i| i - 1)
}

/// Whether `text` holds the two bytes `pair`.
fn has(text: &str, pair: &[u8; 2]) -> bool {
    memchr::memchr_iter(pair[0], text.as_bytes())
        .any(|i| text.as_bytes().get(i + 1) == Some(&pair[1]))
}

/// A plain scalar this reader is sure of: no indicator first, nothing that could make it a
/// mapping, a comment or (in a flow collection) an entry's end.
fn plain_scalar(value: &str, in_flow: bool) -> bool {
    let Some(&first) = value.as_bytes().first() else {
        return false;
    };
    if b"-?:,[]{}#&*!|>'\"%@`\\".contains(&first) || value.ends_with(':') || has(value, b": ") {
        return false;
    }
    !in_flow || !value.contains([',', '[', ']', '{', '}', '#'])
}

/// A one-line quoted scalar without escapes, and what follows it.
fn quoted(text: &str, place: Place) -> Result<(Node<'_>, &str), Unsupported> {
    let quote = text.as_bytes()[0] as char;
    let Some(end) = text[1..].find(quote).map(|i| i + 1) else {
        return unsupported("a quoted scalar over several lines", place.line);
    };
    let value = &text[1..end];
    let rest = &text[end + 1..];
    if value.contains('\\') || rest.starts_with(quote) {
        return unsupported("an escape in a quoted scalar", place.line);
    }
    let node = Node::Scalar(Scalar {
        text: value,
        quoted: true,
        place,
    });
    Ok((node, rest))
}

/// One value of a flow collection starting at `text` (a scalar, or a collection within the
/// line), and what follows it.
fn flow_value(text: &str, place: Place) -> Result<(Node<'_>, &str), Unsupported> {
    match text.as_bytes().first() {
        Some(b'"' | b'\'') => return quoted(text, place),
        Some(b'[') => return flow_sequence(text, place),
        Some(b'{') => return flow_mapping(text, place),
        _ => {}
    }
    let end = text.find([',', ']', '}']).unwrap_or(text.len());
    let value = text[..end].trim_end_matches(' ');
    if !plain_scalar(value, true) {
        return unsupported("a flow scalar to leave to the full parser", place.line);
    }
    let node = Node::Scalar(Scalar {
        text: value,
        quoted: false,
        place,
    });
    Ok((node, &text[value.len()..]))
}

/// Skips spaces; returns the text left and how far in it starts.
fn skip_spaces(text: &str, column: u32) -> (&str, u32) {
    let rest = text.trim_start_matches(' ');
    (rest, column + (text.len() - rest.len()) as u32)
}

/// Reads the entries of a one-line flow collection after its opening bracket, each with
/// `entry`, up to `close`; returns what follows the closing bracket.
fn flow_entries<'a>(
    text: &'a str,
    place: Place,
    close: char,
    mut entry: impl FnMut(&'a str, Place) -> Result<&'a str, Unsupported>,
) -> Result<&'a str, Unsupported> {
    let (mut rest, mut column) = skip_spaces(&text[1..], place.column + 1);
    if let Some(after) = rest.strip_prefix(close) {
        return Ok(after);
    }
    loop {
        let at = Place {
            line: place.line,
            column,
        };
        let after = entry(rest, at)?;
        // Columns count characters, as the full parser's do.
        column += rest[..rest.len() - after.len()].chars().count() as u32;
        (rest, column) = skip_spaces(after, column);
        if let Some(after) = rest.strip_prefix(close) {
            return Ok(after);
        }
        let Some(after) = rest.strip_prefix(',') else {
            return unsupported("a flow collection over several lines", place.line);
        };
        (rest, column) = skip_spaces(after, column + 1);
        if rest.starts_with(close) {
            return unsupported("a trailing comma", place.line);
        }
    }
}

fn flow_sequence(text: &str, place: Place) -> Result<(Node<'_>, &str), Unsupported> {
    let mut items = Vec::new();
    let rest = flow_entries(text, place, ']', |t, at| {
        let (item, rest) = flow_value(t, at)?;
        items.push(item);
        Ok(rest)
    })?;
    Ok((Node::Seq(items, place), rest))
}

fn flow_mapping(text: &str, place: Place) -> Result<(Node<'_>, &str), Unsupported> {
    let mut entries = Vec::new();
    let mut seen = Keys::default();
    let rest = flow_entries(text, place, '}', |t, at| {
        let Some((key, value)) = t.split_once(": ") else {
            return unsupported("a flow entry that is not `key: value`", place.line);
        };
        if !plain_key(key) || !seen.insert(key) {
            return unsupported("a flow key to leave to the full parser", place.line);
        }
        let (value_text, column) = skip_spaces(value, at.column + key.len() as u32 + 2);
        let value_place = Place {
            line: place.line,
            column,
        };
        let (value, rest) = flow_value(value_text, value_place)?;
        let key = Node::Scalar(Scalar {
            text: key,
            quoted: false,
            place: at,
        });
        entries.push((key, value));
        Ok(rest)
    })?;
    Ok((Node::Map(entries, place), rest))
}

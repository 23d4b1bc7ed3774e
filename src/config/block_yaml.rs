//! A fast reader for the plain block YAML that large configs are written in.
//!
//! The YAML parsers of the Rust ecosystem read 14 to 26 MB/s on this project's machines, so an
//! organization of 100,000 accounts (46 MB of YAML) would spend seconds parsing before a plan
//! could start. Generated and hand-written configs alike use a small part of YAML: block
//! mappings and sequences, one-line scalars, and one-line flow collections of scalars. This
//! module reads exactly that part, about ten times faster, into the same serde types with the
//! same lines and columns ([`super::raw::Loc`]).
//!
//! It is an optimisation only. Anything outside that part (block scalars, multi-line plain
//! scalars, escapes, anchors, tags, duplicate keys, a null where a string is asked for, a
//! value of the wrong type) is [`Unsupported`], and the caller parses the text with
//! `serde_saphyr`, which gives the answer, or the error with its location, as always. So this
//! reader never has to say why a config is wrong, only to recognise the YAML it is sure of.
//! The tests hold it to the full parser, value for value and place for place.

use std::collections::HashSet;
use std::fmt;

use serde::de::value::{BoolDeserializer, MapDeserializer, StrDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, Visitor};

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

/// One line that holds content: its number, indentation and text after the indentation.
struct Line<'a> {
    number: u32,
    indent: usize,
    text: &'a str,
}

fn parse(text: &str, first_line: u32) -> Result<Node<'_>, Unsupported> {
    let mut lines = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let number = first_line + i as u32;
        // Tabs and carriage returns, and what YAML does not allow in a stream at all.
        if raw.bytes().any(|b| b < 0x20 || b == 0x7f)
            || !(raw.is_ascii() || raw.chars().all(printable))
        {
            return unsupported("a tab, carriage return or control character", number);
        }
        let body = raw.trim_start_matches(' ');
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        if raw.starts_with("---") || raw.starts_with("...") || raw.starts_with('%') {
            return unsupported("a document marker or directive", number);
        }
        lines.push(Line {
            number,
            indent: raw.len() - body.len(),
            text: body.trim_end_matches(' '),
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
    let colon = text.find(':')?;
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
            let end = text.find(" #").unwrap_or(text.len());
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

/// A plain scalar this reader is sure of: no indicator first, nothing that could make it a
/// mapping, a comment or (in a flow collection) an entry's end.
fn plain_scalar(value: &str, in_flow: bool) -> bool {
    let Some(first) = value.chars().next() else {
        return false;
    };
    if "-?:,[]{}#&*!|>'\"%@`\\".contains(first) || value.contains(": ") || value.ends_with(':') {
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

// ---- serde -------------------------------------------------------------------------------

/// How `serde_saphyr::Spanned` (inside [`super::raw::Loc`]) asks for a value with its place.
const SPANNED: &str = "__yaml_spanned";
/// The first key of the map `Spanned` expects, which tells it the map is the place's.
const SPANNED_MARKER: &str = "__serde_saphyr_private_spanned";

struct De<'n, 'a>(&'n Node<'a>);

impl<'n, 'a> De<'n, 'a> {
    fn scalar(&self) -> Result<&'n Scalar<'a>, Unsupported> {
        match self.0 {
            Node::Scalar(s) => Ok(s),
            other => unsupported(
                "a collection where a scalar is expected",
                other.place().line,
            ),
        }
    }

    /// The text of a scalar that is a string for certain.
    fn string(&self) -> Result<&'n str, Unsupported> {
        let s = self.scalar()?;
        if !s.quoted && is_null(s.text) {
            return unsupported("a null where a string is expected", s.place.line);
        }
        Ok(s.text)
    }

    fn is_null(&self) -> bool {
        matches!(self.0, Node::Scalar(s) if !s.quoted && is_null(s.text))
    }

    fn integer(&self) -> Result<u64, Unsupported> {
        let s = self.scalar()?;
        match s.text.parse::<u64>() {
            Ok(n) if !s.quoted && s.text.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
            _ => unsupported("a scalar that is not a plain number", s.place.line),
        }
    }
}

/// A plain scalar that no YAML schema reads as anything but a string: it cannot be a number
/// and is not one of the words some schemas read as booleans.
fn surely_string(text: &str) -> bool {
    const WORDS: [&str; 8] = ["true", "false", "yes", "no", "on", "off", "y", "n"];
    let numeric = text.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.'))
        && (text.contains(|c: char| c.is_ascii_digit())
            || [".inf", "+.inf", "-.inf", ".nan"].contains(&text.to_ascii_lowercase().as_str()));
    !numeric && !WORDS.iter().any(|w| text.eq_ignore_ascii_case(w))
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// Integers: plain digits only; anything else goes to the full parser.
macro_rules! integers {
    ($($method:ident => $visit:ident: $ty:ty),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsupported> {
            let n = self.integer()?;
            let line = self.0.place().line;
            let n = <$ty>::try_from(n)
                .map_err(|_| Unsupported(format!("a number out of range at line {line}")))?;
            visitor.$visit(n)
        }
    )*};
}

impl<'de> Deserializer<'de> for De<'_, '_> {
    type Error = Unsupported;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsupported> {
        match self.0 {
            Node::Map(..) => self.deserialize_map(visitor),
            Node::Seq(..) => self.deserialize_seq(visitor),
            Node::Scalar(s) if s.quoted => visitor.visit_str(s.text),
            Node::Scalar(s) if is_null(s.text) => visitor.visit_unit(),
            Node::Scalar(s) if surely_string(s.text) => visitor.visit_str(s.text),
            // What else a plain scalar is, untyped, is the full parser's to say (`yes`, `0x1f`).
            Node::Scalar(s) => unsupported("an untyped plain scalar", s.place.line),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsupported> {
        let s = self.scalar()?;
        match (s.quoted, s.text) {
            (false, "true") => visitor.visit_bool(true),
            (false, "false") => visitor.visit_bool(false),
            _ => unsupported("a boolean other than true or false", s.place.line),
        }
    }

    integers!(
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64
    );

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsupported> {
        visitor.visit_str(self.string()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsupported> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsupported> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsupported> {
        if self.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsupported> {
        if self.is_null() {
            visitor.visit_unit()
        } else {
            unsupported("a value where null is expected", self.0.place().line)
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsupported> {
        match self.0 {
            Node::Seq(items, _) => {
                visitor.visit_seq(de::value::SeqDeserializer::new(items.iter().map(De)))
            }
            other => unsupported("not a sequence", other.place().line),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsupported> {
        match self.0 {
            Node::Map(entries, _) => visitor.visit_map(MapDeserializer::new(
                entries.iter().map(|(k, v)| (De(k), De(v))),
            )),
            other => unsupported("not a mapping", other.place().line),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Unsupported> {
        self.deserialize_map(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Unsupported> {
        if name == SPANNED {
            visitor.visit_newtype_struct(Spanned(self.0))
        } else {
            visitor.visit_newtype_struct(self)
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Unsupported> {
        match self.0 {
            Node::Map(entries, _) if entries.len() == 1 => {
                visitor.visit_enum(Variant(&entries[0].0, &entries[0].1))
            }
            Node::Scalar(_) => visitor.visit_enum(self.string()?.into_deserializer()),
            other => unsupported("an enum of another shape", other.place().line),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsupported> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        f32 f64 char bytes byte_buf unit_struct tuple tuple_struct
    }
}

impl<'de> IntoDeserializer<'de, Unsupported> for De<'_, '_> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// The map `serde_saphyr::Spanned` reads: its marker, the value, and where it was written.
struct Spanned<'n, 'a>(&'n Node<'a>);

impl<'de> Deserializer<'de> for Spanned<'_, '_> {
    type Error = Unsupported;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsupported> {
        let place = self.0.place();
        let location = || {
            MapDeserializer::new(
                [("line", place.line as u64), ("column", place.column as u64)].into_iter(),
            )
        };
        visitor.visit_map(SpannedMap {
            node: self.0,
            location: &location,
            field: 0,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

type LocationMap =
    MapDeserializer<'static, std::array::IntoIter<(&'static str, u64), 2>, Unsupported>;

struct SpannedMap<'n, 'a, 'f> {
    node: &'n Node<'a>,
    location: &'f dyn Fn() -> LocationMap,
    field: usize,
}

const SPANNED_FIELDS: [&str; 4] = [SPANNED_MARKER, "value", "referenced", "defined"];

impl<'de> de::MapAccess<'de> for SpannedMap<'_, '_, '_> {
    type Error = Unsupported;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Unsupported> {
        match SPANNED_FIELDS.get(self.field) {
            Some(name) => seed
                .deserialize(StrDeserializer::<Unsupported>::new(name))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Unsupported> {
        self.field += 1;
        match self.field {
            1 => seed.deserialize(BoolDeserializer::<Unsupported>::new(true)),
            2 => seed.deserialize(De(self.node)),
            _ => seed.deserialize(de::value::MapAccessDeserializer::new((self.location)())),
        }
    }
}

/// An externally tagged enum written as a one-entry mapping.
struct Variant<'n, 'a>(&'n Node<'a>, &'n Node<'a>);

impl<'de> de::EnumAccess<'de> for Variant<'_, '_> {
    type Error = Unsupported;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self), Unsupported> {
        Ok((seed.deserialize(De(self.0))?, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, '_> {
    type Error = Unsupported;

    fn unit_variant(self) -> Result<(), Unsupported> {
        de::Deserialize::deserialize(De(self.1))
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<S::Value, Unsupported> {
        seed.deserialize(De(self.1))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Unsupported> {
        De(self.1).deserialize_seq(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Unsupported> {
        De(self.1).deserialize_map(visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::RawConfig;

    /// The full parser's reading, as text that shows every value with its line and column.
    fn full(text: &str) -> Option<String> {
        serde_saphyr::from_str::<RawConfig>(text)
            .ok()
            .map(|c| format!("{c:?}"))
    }

    fn fast(text: &str) -> Option<String> {
        from_str::<RawConfig>(text).ok().map(|c| format!("{c:?}"))
    }

    /// YAML of every shape this reader takes: flow and block collections, quotes, comments,
    /// sequences at their key's indentation and below it, enums, numbers and booleans.
    const SAMPLE: &str = r#"# a comment
organization: acme   # trailing comment
backend:
  type: local
  path: state/acme.db
secrets:
  dir: secrets
  recipients: ["age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"]
policy:
  max_delete_percent: 30
  rules:
    - key_max_lifetime: 90d
    - no_wildcard_permissions: { allow: ["*:read", 'flows:*'] }
    - name: no-full-access
      forbid_permission: ["*:*", 'secrets:*']
      severity: warn
      match: { name: "ci-*", team: platform }
      except:
      - match: {name: legacy}
        reason: retired in Q3 (OPS-12)
roles:
  deployer:
    description: Deploys things, #1 of them
    permissions:
      - "flows:read"
      - 'deployments:run'
    protect: true
teams:
  platform: {}
  data:
    description: "Data team: pipelines"
service_accounts:
  ci-bot:
    description: Runs CI
    owner: platform
    teams: {platform: deployer, data: viewer}
    admin: false
    keys:
      main:
        expires_in: 90d
        rotate_every: 30d
        overlap: 1d
        scopes: [flows:read]
        verify_traffic: true
        deliver:
          - github_actions: { repository: acme/app, secret: SVCACCT_KEY }
          - file:
              path: /etc/acme/key
      spare: { description: spare key, expires_in: 10d }

  etl-bot:
    teams:
      data: member
    keys:
      k: {}
"#;

    #[test]
    fn the_sample_reads_as_the_full_parser_reads_it() {
        let expected = full(SAMPLE).expect("the sample is valid");
        assert_eq!(fast(SAMPLE).as_deref(), Some(expected.as_str()));
    }

    #[test]
    fn the_examples_read_as_the_full_parser_reads_them() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut read = 0;
        for sub in ["small", "realistic"] {
            for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
                let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
                if let Some(got) = fast(&text) {
                    assert_eq!(Some(got), full(&text));
                    read += 1;
                }
            }
        }
        assert!(read >= 3, "the examples are plain block YAML: {read} read");
    }

    #[test]
    fn yaml_it_does_not_take_is_left_to_the_full_parser() {
        let takes = |yaml: &str| from_str::<RawConfig>(yaml).is_ok();
        let base = "organization: acme\nteams:\n  a:\n    description: ";
        assert!(takes(&format!("{base}plain\n")));
        for value in [
            "|\n      block",
            "multi\n      line",
            "\"esc\\\"aped\"",
            "'it''s'",
            "&anchor x",
            "*alias",
            "!tag x",
            "null",
            "~",
            "a: b",
            "\"unterminated",
            "[a, b,]",
            "x #",
            "\"bell\u{7}\"",
            "esc\u{1b}[8m",
            "c1\u{85}x\u{9b}",
        ] {
            if value == "x #" {
                // `x #` is `x` and a comment: taken, and read as the full parser reads it.
                let text = format!("{base}{value}\n");
                assert_eq!(fast(&text), full(&text));
                continue;
            }
            assert!(!takes(&format!("{base}{value}\n")), "{value:?}");
        }
        assert!(
            !takes("organization: acme\norganization: again\n"),
            "duplicate"
        );
        assert!(!takes("teams:\n  a: {}\n  a: {}\n"), "duplicate name");
        assert!(!takes("teams:\n\ta: {}\n"), "tab");
        assert!(!takes("---\norganization: acme\n"), "document marker");
        assert!(!takes("organization: acme\n  bad: indent\n"), "indentation");
        assert!(
            !takes("organization: acme\nnot_a_field: 1\n"),
            "unknown field"
        );
        assert!(
            !takes("policy:\n  max_delete_percent: 0x1f\n"),
            "a number the full parser must read"
        );
    }

    /// Every one-character change of the sample, at every place: whatever this reader takes,
    /// the full parser must take too, and read the same, place for place. Most changes make
    /// invalid YAML or an invalid config, which this reader must turn down.
    #[test]
    fn every_small_change_reads_as_the_full_parser_reads_it_or_is_left_to_it() {
        let (mut taken, mut refused) = (0, 0);
        let chars = [
            " ", ":", "-", "#", "\"", "'", "[", "]", "{", "}", ",", "\n", "  ", "x", "1", "&", "*",
            "|", ">", "!", "?", "%", "~", "\u{7}", "\u{9b}", "é",
        ];
        let positions: Vec<usize> = SAMPLE.char_indices().map(|(i, _)| i).collect();
        for (n, &at) in positions.iter().enumerate() {
            let c = chars[n % chars.len()];
            let d = chars[(n * 7 + 3) % chars.len()];
            let next = positions.get(n + 1).copied().unwrap_or(SAMPLE.len());
            for text in [
                format!("{}{c}{}", &SAMPLE[..at], &SAMPLE[at..]),
                format!("{}{d}{}", &SAMPLE[..at], &SAMPLE[next..]),
                format!("{}{}", &SAMPLE[..at], &SAMPLE[next..]),
            ] {
                match fast(&text) {
                    Some(got) => {
                        assert_eq!(Some(got), full(&text), "taken differently:\n{text}");
                        taken += 1;
                    }
                    None => refused += 1,
                }
            }
        }
        eprintln!("{taken} taken, {refused} refused");
        assert!(
            taken > 100 && refused > 100,
            "{taken} taken, {refused} refused"
        );
    }
}

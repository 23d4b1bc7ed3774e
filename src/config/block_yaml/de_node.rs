//! The parsed nodes as a serde `Deserializer`, with the places [`crate::config::raw::Loc`] asks
//! for, so the same types read from either parser.

use serde::de::value::{MapDeserializer, U64Deserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, Visitor};

use super::{Node, Scalar, Unsupported, unsupported};
use crate::config::raw::LOC;

pub(super) struct De<'n, 'a>(pub(super) &'n Node<'a>);

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
        if name == LOC {
            visitor.visit_seq(Placed {
                node: self.0,
                field: 0,
            })
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

/// A value with its place, as [`crate::config::raw::Loc`] asks for it: line, column, value.
struct Placed<'n, 'a> {
    node: &'n Node<'a>,
    field: u8,
}

impl<'de> de::SeqAccess<'de> for Placed<'_, '_> {
    type Error = Unsupported;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Unsupported> {
        let place = self.node.place();
        self.field += 1;
        let number = match self.field {
            1 => place.line,
            2 => place.column,
            3 => return seed.deserialize(De(self.node)).map(Some),
            _ => return Ok(None),
        };
        seed.deserialize(U64Deserializer::<Unsupported>::new(number.into()))
            .map(Some)
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

//! Durations as people write them in configs: `30m`, `24h`, `90d`, `2w`.

use std::fmt;
use std::str::FromStr;

/// A whole number of seconds, written with the largest unit that divides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub u64);

const UNITS: [(char, u64); 5] = [
    ('w', 7 * 86_400),
    ('d', 86_400),
    ('h', 3_600),
    ('m', 60),
    ('s', 1),
];

impl Duration {
    /// The duration in seconds.
    pub fn seconds(self) -> u64 {
        self.0
    }

    /// As a `time` duration, for date arithmetic.
    pub fn to_time(self) -> time::Duration {
        time::Duration::seconds(self.0 as i64)
    }
}

/// How a duration that does not parse is reported: the server tells a bad value (422) from a
/// bad body (400) by this prefix of serde's message, the one thing that survives its errors.
pub const INVALID: &str = "invalid duration `";

impl FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "{INVALID}{s}`: expected a number and a unit (s, m, h, d, w), such as 30m, 24h or 90d"
            )
        };
        let unit = s.chars().last().ok_or_else(bad)?;
        let factor = UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(bad)?.1;
        let number = &s[..s.len() - 1];
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u64 = number.parse().map_err(|_| bad())?;
        // Ten years is far beyond any key lifetime and keeps date arithmetic in range.
        n.checked_mul(factor)
            .filter(|s| *s <= 3_650 * 86_400)
            .map(Duration)
            .ok_or_else(|| format!("duration `{s}` is too long: at most 3650d"))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unit, factor) = UNITS
            .iter()
            .find(|(_, factor)| self.0.is_multiple_of(*factor) && self.0 > 0)
            .copied()
            .unwrap_or(('s', 1));
        write!(f, "{}{}", self.0 / factor, unit)
    }
}

impl serde::Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Parsed from the text in place: a big config has three durations a key.
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Duration, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Text)
    }
}

impl schemars::JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]+[smhdw]$",
            "description": "A duration: a number and a unit (s, m, h, d, w), such as 30m, 24h or 90d."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_canonically() {
        assert_eq!("90d".parse::<Duration>().unwrap().seconds(), 90 * 86_400);
        assert_eq!("48h".parse::<Duration>().unwrap().to_string(), "2d");
        assert_eq!("90m".parse::<Duration>().unwrap().to_string(), "90m");
        assert!("".parse::<Duration>().is_err());
        assert!("d".parse::<Duration>().is_err());
        assert!("-3d".parse::<Duration>().is_err());
        assert!("3 days".parse::<Duration>().is_err());
        assert!("99999999999999w".parse::<Duration>().is_err());
    }
}

//! How values sit in columns, both ways, for both engines. A stored value that does not
//! decode is an error, never a default: an empty scope set read from a garbled column would
//! give a key its account's every permission, and a missing expiry date would make an
//! account work forever.

use std::collections::BTreeSet;

use time::{Date, OffsetDateTime};

use super::StoreError;
use super::sql::Row;
use crate::duration::Duration;

pub(super) fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// A failed decode of a column.
pub(super) fn undecodable(what: &'static str, value: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what,
        value: value.to_string(),
    }
}

/// A Unix timestamp column.
pub(super) fn col_ts(r: &Row<'_>, i: usize) -> Result<OffsetDateTime, StoreError> {
    timestamp(r.get(i)?)
}

/// A nullable Unix timestamp column.
pub(super) fn col_ts_opt(r: &Row<'_>, i: usize) -> Result<Option<OffsetDateTime>, StoreError> {
    match r.get::<Option<i64>>(i)? {
        None => Ok(None),
        Some(s) => timestamp(s).map(Some),
    }
}

/// A Unix timestamp as stored, decoded (the column is read once, not again to decode it).
fn timestamp(s: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(s).map_err(|_| undecodable("timestamp", s))
}

/// A nullable duration column, in seconds.
pub(super) fn col_dur(r: &Row<'_>, i: usize) -> Result<Option<Duration>, StoreError> {
    match r.get::<Option<i64>>(i)? {
        None => Ok(None),
        Some(s) => u64::try_from(s)
            .map(|s| Some(Duration(s)))
            .map_err(|_| undecodable("duration", s)),
    }
}

/// A JSON array of strings: permissions or scopes.
pub(super) fn col_set(r: &Row<'_>, i: usize) -> Result<BTreeSet<String>, StoreError> {
    r.with_str(i, |s| {
        if s == "[]" {
            return Ok(BTreeSet::new());
        }
        serde_json::from_str(s).map_err(|_| undecodable("permission list", s))
    })?
}

/// A nullable `YYYY-MM-DD` column.
pub(super) fn col_date(r: &Row<'_>, i: usize) -> Result<Option<Date>, StoreError> {
    match r.get::<Option<String>>(i)? {
        None => Ok(None),
        Some(s) => parse_date(&s)
            .map(Some)
            .ok_or_else(|| undecodable("date", s)),
    }
}

pub(super) fn dur(d: Option<Duration>) -> Option<i64> {
    d.map(|d| d.seconds() as i64)
}

pub(super) fn json_set(set: &BTreeSet<String>) -> String {
    serde_json::to_string(set).expect("strings serialize")
}

pub(super) fn date_text(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
}

pub(super) fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

//! The ownership record: what svcacct made in a Prefect account, and the settings Prefect has
//! no field for, kept as JSON Prefect Variables in one workspace (see the module doc of
//! `prefect` for why). Records are spread over [`BUCKETS`] variables by object id, so a
//! change rewrites one small variable and no variable grows past Prefect's value size.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::duration::Duration;

/// How many variables the record is spread over: ≤ one filter page (200).
pub const BUCKETS: usize = 128;
/// The record's format; a variable of another version is not read (fail safe).
const VERSION: u32 = 1;

fn is_false(b: &bool) -> bool {
    !b
}

/// A bot's record. `created` is set only for a bot svcacct created: with the id it is the
/// proof of ownership (a bot made by hand and declared later has settings here, no proof).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotRecord {
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub created: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub protect: bool,
    /// The bot's key as svcacct issued it; `None` on a bot of ours means svcacct holds its
    /// key unissued (the secret of the create was discarded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyRecord>,
    /// Keys svcacct rotated out that still work until their overlap ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retiring: Vec<RetiringRecord>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_every: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetiringRecord {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub retires_at: OffsetDateTime,
}

/// A custom workspace role's record: the proof of ownership, `protect`, and the scopes as
/// declared (Prefect answers them expanded with what they imply).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleRecord {
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub created: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub protect: bool,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub scopes: BTreeSet<String>,
}

/// One variable's content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bucket {
    v: u32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    bots: BTreeMap<String, BotRecord>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    roles: BTreeMap<String, RoleRecord>,
}

/// The whole record, as read, with which buckets changed since.
#[derive(Debug, Default)]
pub struct Ledger {
    pub bots: BTreeMap<String, BotRecord>,
    pub roles: BTreeMap<String, RoleRecord>,
    /// Buckets that exist as variables.
    pub existing: BTreeSet<usize>,
    dirty: BTreeSet<usize>,
    /// Variables that could not be read as a record: their records count for nothing.
    pub unreadable: Vec<String>,
}

/// The bucket of an object id (a UUID: its first byte).
pub fn bucket_of(id: &str) -> usize {
    usize::from_str_radix(id.get(..2).unwrap_or("00"), 16).unwrap_or(0) % BUCKETS
}

/// The prefix of the organization's variable names (Prefect allows lowercase letters,
/// digits and underscores in them).
pub fn prefix(organization: &str) -> String {
    format!("svcacct_{}_", organization.replace('-', "_"))
}

pub fn variable_name(organization: &str, bucket: usize) -> String {
    format!("{}{bucket:03}", prefix(organization))
}

impl Ledger {
    /// Reads the variables of `organization`; one that is not a record of this version is
    /// left out and named in `unreadable`.
    pub fn read(organization: &str, variables: Vec<(String, serde_json::Value)>) -> Ledger {
        let prefix = prefix(organization);
        let mut ledger = Ledger::default();
        for (name, value) in variables {
            let Some(bucket) = name
                .strip_prefix(&prefix)
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|b| *b < BUCKETS)
            else {
                continue;
            };
            ledger.existing.insert(bucket);
            match serde_json::from_value::<Bucket>(value) {
                Ok(b) if b.v == VERSION => {
                    // A record filed under the wrong bucket was not written by svcacct.
                    ledger
                        .bots
                        .extend(b.bots.into_iter().filter(|(id, _)| bucket_of(id) == bucket));
                    ledger.roles.extend(
                        b.roles
                            .into_iter()
                            .filter(|(id, _)| bucket_of(id) == bucket),
                    );
                }
                _ => ledger.unreadable.push(name),
            }
        }
        ledger
    }

    pub fn set_bot(&mut self, id: &str, record: Option<BotRecord>) {
        let old = match record {
            Some(r) => self
                .bots
                .insert(id.to_string(), r.clone())
                .filter(|o| *o == r),
            None if self.bots.remove(id).is_none() => return,
            None => None,
        };
        if old.is_none() {
            self.dirty.insert(bucket_of(id));
        }
    }

    pub fn set_role(&mut self, id: &str, record: Option<RoleRecord>) {
        let old = match record {
            Some(r) => self
                .roles
                .insert(id.to_string(), r.clone())
                .filter(|o| *o == r),
            None if self.roles.remove(id).is_none() => return,
            None => None,
        };
        if old.is_none() {
            self.dirty.insert(bucket_of(id));
        }
    }

    /// The buckets changed since the last [`Ledger::written`], with their new content
    /// (`None`: the bucket is empty now).
    pub fn changes(&self) -> Vec<(usize, Option<serde_json::Value>)> {
        self.dirty
            .iter()
            .map(|&b| {
                let bucket = Bucket {
                    v: VERSION,
                    bots: self
                        .bots
                        .iter()
                        .filter(|(id, _)| bucket_of(id) == b)
                        .map(|(id, r)| (id.clone(), r.clone()))
                        .collect(),
                    roles: self
                        .roles
                        .iter()
                        .filter(|(id, _)| bucket_of(id) == b)
                        .map(|(id, r)| (id.clone(), r.clone()))
                        .collect(),
                };
                let empty = bucket.bots.is_empty() && bucket.roles.is_empty();
                (
                    b,
                    (!empty).then(|| serde_json::to_value(&bucket).expect("serializable")),
                )
            })
            .collect()
    }

    /// Marks a bucket as written (it now exists, or not).
    pub fn written(&mut self, bucket: usize, exists: bool) {
        self.dirty.remove(&bucket);
        if exists {
            self.existing.insert(bucket);
        } else {
            self.existing.remove(&bucket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_filed_under_another_bucket_or_version_counts_for_nothing() {
        let id = "ab000000-0000-4000-8000-000000000000";
        let bucket = bucket_of(id);
        let record = serde_json::json!({"v": 1, "bots": {id: {"created": "2026-01-01T00:00:00Z"}}});
        let read = Ledger::read(
            "acme",
            vec![(variable_name("acme", bucket), record.clone())],
        );
        assert!(read.bots.contains_key(id));
        let elsewhere = Ledger::read(
            "acme",
            vec![(variable_name("acme", (bucket + 1) % BUCKETS), record)],
        );
        assert!(elsewhere.bots.is_empty());
        let newer = Ledger::read(
            "acme",
            vec![(
                variable_name("acme", bucket),
                serde_json::json!({"v": 2, "bots": {}}),
            )],
        );
        assert!(newer.bots.is_empty());
        assert_eq!(newer.unreadable, [variable_name("acme", bucket)]);
    }

    #[test]
    fn only_a_changed_record_dirties_its_bucket() {
        let id = "ab000000-0000-4000-8000-000000000000";
        let mut l = Ledger::default();
        l.set_bot(id, Some(BotRecord::default()));
        assert_eq!(l.changes().len(), 1);
        l.written(bucket_of(id), true);
        l.set_bot(id, Some(BotRecord::default()));
        assert!(l.changes().is_empty());
        l.set_bot(id, None);
        assert_eq!(l.changes(), vec![(bucket_of(id), None)]);
    }
}

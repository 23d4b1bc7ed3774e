//! The record of what each delivery target acknowledged, kept in the key's metadata.

use std::path::Path;

use time::OffsetDateTime;

use crate::config::delivery::Target;
use crate::secrets::{Delivered, find_meta, rewrite_meta};

/// The key id its metadata says the key file holds, and the deliveries recorded for it.
pub fn read_delivered(dir: &Path, account: &str, key: &str) -> (Option<String>, Vec<Delivered>) {
    match find_meta(dir, account, key) {
        Some(m) => (m.key_id, m.delivered),
        None => (None, Vec::new()),
    }
}

/// Names of the targets that hold `key_id`, per the metadata.
pub fn delivered_ids<'a>(delivered: &'a [Delivered], key_id: &str) -> Vec<&'a str> {
    delivered
        .iter()
        .filter(|d| d.key_id == key_id)
        .map(|d| d.target.as_str())
        .collect()
}

/// Records, durably, that `target` acknowledged `key_id`, replacing what was recorded for
/// that target before. Refuses when the metadata no longer describes `key_id` (the key file
/// moved on meanwhile).
pub fn record_delivery(
    dir: &Path,
    account: &str,
    key: &str,
    target: &Target,
    key_id: &str,
    at: OffsetDateTime,
) -> std::io::Result<()> {
    let Some(mut meta) = find_meta(dir, account, key) else {
        return Err(std::io::Error::other("the key's metadata is missing"));
    };
    if meta.key_id.as_deref() != Some(key_id) {
        return Err(std::io::Error::other(
            "the key's file now holds another key",
        ));
    }
    let name = target.to_string();
    meta.delivered.retain(|d| d.target != name);
    meta.delivered.push(Delivered {
        target: name,
        key_id: key_id.to_string(),
        at,
    });
    rewrite_meta(dir, account, key, &meta)
}

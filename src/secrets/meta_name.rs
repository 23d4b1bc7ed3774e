//! The name of a key's metadata file says what a plan needs of it:
//! `<key>.<key id>.<recipients>.meta.json`, the key id percent-encoded (empty for a key whose
//! secret never arrived) and the recipients as the hex of their fingerprint (empty for none).
//!
//! So one listing of an account's directory tells which key each file holds and to whom it is
//! encrypted, with no file opened: a plan of 10,000 accounts spent a third of its one-change
//! apply stamping or reading 30,000 metadata files. The file still holds the whole
//! [`KeyMeta`](super::KeyMeta) (creation, expiry, deliveries), which only commands that need
//! those read.
//!
//! Earlier versions named it `<key>.meta.json`, which tells nothing without reading it. Such
//! files are still read, and `svcacct apply` renames them (one atomic rename each: the file
//! is under one name or the other, never lost). A name the layout cannot carry (a key id so
//! long the name would pass the file system's 255 bytes) keeps the old form.
//!
//! Names of keys and accounts are `[a-z0-9-]`, so the first dot ends the key, and encoding
//! every byte but `[A-Za-z0-9_-]` keeps dots out of the id.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

const SUFFIX: &str = ".meta.json";

/// What a fingerprint looks like: [`super::recipients_fingerprint`]'s prefix and hex.
const SHA256: &str = "sha256:";

/// Bytes an id keeps as they are; everything else (the dot above all) is encoded.
const ENCODED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'-');

/// The longest file name Linux file systems take.
const NAME_MAX: usize = 255;

/// What a metadata file's name says.
#[derive(Debug, PartialEq, Eq)]
pub enum MetaName<'a> {
    /// `<key>.meta.json`: only the file's content tells.
    Old { key: &'a str },
    /// `<key>.<id>.<recipients>.meta.json`.
    Named {
        key: &'a str,
        key_id: Option<String>,
        /// As [`super::recipients_fingerprint`] gives it, or empty.
        recipients: String,
    },
}

impl<'a> MetaName<'a> {
    pub fn key(&self) -> &'a str {
        match self {
            MetaName::Old { key } | MetaName::Named { key, .. } => key,
        }
    }
}

/// The name of `key`'s metadata for the key `key_id`, encrypted to the recipients of the
/// fingerprint `recipients`; the old form when the new one cannot carry them.
pub fn meta_name(key: &str, key_id: Option<&str>, recipients: &str) -> String {
    let hex = if recipients.is_empty() {
        Some("")
    } else {
        recipients
            .strip_prefix(SHA256)
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    let Some(hex) = hex else {
        return old_name(key);
    };
    let id = key_id.map(|id| utf8_percent_encode(id, ENCODED).to_string());
    // An empty id would read back as none.
    if id.as_deref() == Some("") {
        return old_name(key);
    }
    let name = format!("{key}.{}.{hex}{SUFFIX}", id.unwrap_or_default());
    if name.len() > NAME_MAX {
        return old_name(key);
    }
    name
}

/// `<key>.meta.json`.
pub fn old_name(key: &str) -> String {
    format!("{key}{SUFFIX}")
}

/// What the file name `name` says, if it is a key's metadata (not a pending one).
pub fn parse(name: &str) -> Option<MetaName<'_>> {
    let rest = name.strip_suffix(SUFFIX)?;
    let mut parts = rest.split('.');
    let key = parts.next().filter(|k| !k.is_empty())?;
    let Some(id) = parts.next() else {
        return Some(MetaName::Old { key });
    };
    let hex = parts.next()?;
    if parts.next().is_some() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let key_id = match id {
        "" => None,
        id => Some(percent_decode_str(id).decode_utf8().ok()?.into_owned()),
    };
    let recipients = if hex.is_empty() {
        String::new()
    } else {
        format!("{SHA256}{hex}")
    };
    Some(MetaName::Named {
        key,
        key_id,
        recipients,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "sha256:00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff";

    #[test]
    fn a_name_says_the_key_id_and_recipients_and_reads_back() {
        for id in [
            Some("key_1"),
            Some("0b1c9f3e-4f7a-4c61-9d55-2d1a0f3c5e77"),
            Some("a.b/c%d e\u{e9}"),
            None,
        ] {
            for fp in [FP, ""] {
                let name = meta_name("ci-bot", id, fp);
                assert_eq!(name.matches('.').count(), 4, "{name}");
                let parsed = parse(&name).unwrap();
                assert_eq!(
                    parsed,
                    MetaName::Named {
                        key: "ci-bot",
                        key_id: id.map(str::to_string),
                        recipients: fp.to_string(),
                    }
                );
                assert_eq!(parsed.key(), "ci-bot");
            }
        }
        assert_eq!(
            meta_name("k", Some("key_1"), FP),
            format!("k.key_1.{}.meta.json", &FP[7..])
        );
    }

    #[test]
    fn what_the_layout_cannot_carry_keeps_the_old_name_and_other_names_are_not_metadata() {
        assert_eq!(meta_name("k", Some(&"x".repeat(250)), FP), "k.meta.json");
        assert_eq!(meta_name("k", Some(""), FP), "k.meta.json");
        assert_eq!(meta_name("k", Some("id"), "md5:abc"), "k.meta.json");
        assert_eq!(parse("k.meta.json"), Some(MetaName::Old { key: "k" }));
        for other in [
            "k.age",
            "k.meta.json.pending-key_1",
            ".meta.json",
            "k.id.nothex.meta.json",
            "k.id.ab.cd.meta.json",
            "k.%ff.ab.meta.json",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
    }
}

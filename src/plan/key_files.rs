//! What the plan knows of the key files. The diff asks this trait instead of the disk, so it
//! is a pure function of its inputs and can be tested without one; [`SecretsDir`] answers from
//! a secrets directory.
//!
//! It answers from the files' metadata (`<key>.meta.json`), never by decrypting: a plan runs
//! with no identity, in CI as well as on a laptop.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::secrets::{KeyMeta, Recipient, key_file_path, recipients_fingerprint};

/// What the file of one live key holds, as far as can be told without decrypting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// Neither a file nor metadata: svcacct never held this key's secret (a key made by hand
    /// and adopted, say). Nothing to replace; `svcacct rotate` brings it under svcacct.
    NotHeld,
    /// Metadata says svcacct held a key here, but the file is gone (deleted, not checked out,
    /// or a secret a backend minted that never arrived).
    Missing,
    /// A file whose metadata is missing or says nothing of its key (written before svcacct
    /// kept metadata): taken to hold the live key, as svcacct wrote it.
    Unrecorded,
    /// A file whose metadata names the key it holds.
    Holds {
        key_id: String,
        /// Whether it is encrypted to another recipient set than the config's.
        stale_recipients: bool,
    },
}

/// The key files' state, as the diff needs it.
pub trait KeyFiles {
    /// Whether the files can be checked here at all (a CI job that did not check out the
    /// secrets directory cannot, and must not read that as "every file is missing").
    fn available(&self) -> bool;
    /// What the file of `account`/`key` holds, for the live key `id`. A pending file of that
    /// id counts as holding it: the next apply moves it into place.
    fn held(&self, account: &str, key: &str, id: &str) -> Held;
    /// Every `(account, key)` that has a key file, in order (orphans are found among them).
    fn files(&self) -> Vec<(String, String)>;
    /// How messages name where the files are.
    fn describe(&self) -> String;
    /// How messages name one key's file.
    fn describe_file(&self, account: &str, key: &str) -> String;
}

/// What one key's directory entries are.
#[derive(Debug, Default)]
struct Entry {
    file: bool,
    meta: Option<KeyMeta>,
    meta_present: bool,
    /// Ids of pending key files, and of pending metadata with what it says.
    pending: Vec<String>,
    pending_meta: Vec<(String, Option<KeyMeta>)>,
}

/// The key files of a secrets directory on disk, read once: one directory listing per
/// account and one small read per metadata file, spread over the machine's cores.
pub struct SecretsDir {
    dir: PathBuf,
    available: bool,
    fingerprint: String,
    entries: HashMap<(String, String), Entry>,
}

impl SecretsDir {
    /// Reads what `dir` holds; `recipients` are the config's, to tell stale files.
    pub fn scan(dir: &Path, recipients: &[Recipient]) -> SecretsDir {
        let mut s = SecretsDir {
            dir: dir.to_path_buf(),
            available: dir.is_dir(),
            fingerprint: recipients_fingerprint(recipients),
            entries: HashMap::new(),
        };
        if !s.available {
            return s;
        }
        let Ok(accounts) = fs::read_dir(dir) else {
            return s;
        };
        // Metadata files to read: (account, key, pending id, path).
        let mut to_read: Vec<(String, String, Option<String>, PathBuf)> = Vec::new();
        for account in accounts.filter_map(Result::ok) {
            // A link is never followed (the apply refuses one outright).
            if !account.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = account.file_name().to_string_lossy().into_owned();
            let Ok(files) = fs::read_dir(account.path()) else {
                continue;
            };
            for f in files.filter_map(Result::ok) {
                let file = f.file_name().to_string_lossy().into_owned();
                if file.starts_with('.') {
                    continue;
                }
                let entry = |key: &str| (name.clone(), key.to_string());
                if let Some((key, id)) = file.split_once(".age.pending-") {
                    s.entries
                        .entry(entry(key))
                        .or_default()
                        .pending
                        .push(id.to_string());
                } else if let Some((key, id)) = file.split_once(".meta.json.pending-") {
                    to_read.push((name.clone(), key.into(), Some(id.into()), f.path()));
                } else if let Some(key) = file.strip_suffix(".meta.json") {
                    s.entries.entry(entry(key)).or_default().meta_present = true;
                    to_read.push((name.clone(), key.into(), None, f.path()));
                } else if let Some(key) = file.strip_suffix(".age") {
                    s.entries.entry(entry(key)).or_default().file = true;
                }
            }
        }
        for (account, key, pending, meta) in read_all(to_read) {
            let e = s.entries.entry((account, key)).or_default();
            match pending {
                Some(id) => e.pending_meta.push((id, meta)),
                None => e.meta = meta,
            }
        }
        s
    }
}

/// Reads metadata files on every core: thirty thousand small reads are most of a big plan's
/// file checks.
fn read_all(
    files: Vec<(String, String, Option<String>, PathBuf)>,
) -> Vec<(String, String, Option<String>, Option<KeyMeta>)> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let chunk = files.len().div_ceil(threads).max(1);
    let mut chunks: Vec<Vec<_>> = Vec::new();
    let mut files = files.into_iter().peekable();
    while files.peek().is_some() {
        chunks.push(files.by_ref().take(chunk).collect());
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|c| {
                s.spawn(move || {
                    c.into_iter()
                        .map(|(a, k, p, path)| (a, k, p, crate::secrets::read_meta(&path)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("reading metadata does not panic"))
            .collect()
    })
}

impl KeyFiles for SecretsDir {
    fn available(&self) -> bool {
        self.available
    }

    fn held(&self, account: &str, key: &str, id: &str) -> Held {
        let Some(e) = self.entries.get(&(account.to_string(), key.to_string())) else {
            return Held::NotHeld;
        };
        let holds = |meta: &KeyMeta| match &meta.key_id {
            Some(k) => Held::Holds {
                key_id: k.clone(),
                stale_recipients: meta.recipients != self.fingerprint,
            },
            None => Held::Unrecorded,
        };
        // Newest first: a pending file of the live key, or the metadata an interrupted apply
        // left pending after promoting the file.
        if e.pending.iter().any(|p| p == id) || e.file {
            if let Some((_, meta)) = e.pending_meta.iter().find(|(p, _)| p == id) {
                return meta.as_ref().map_or(Held::Unrecorded, holds);
            }
            if e.pending.iter().any(|p| p == id) {
                return Held::Unrecorded;
            }
        }
        match (e.file, &e.meta, e.meta_present) {
            (true, Some(meta), _) => holds(meta),
            (true, None, _) => Held::Unrecorded,
            (false, _, true) => Held::Missing,
            (false, _, false) => Held::NotHeld,
        }
    }

    fn files(&self) -> Vec<(String, String)> {
        let mut files: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, e)| e.file)
            .map(|(k, _)| k.clone())
            .collect();
        files.sort();
        files
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn describe_file(&self, account: &str, key: &str) -> String {
        key_file_path(&self.dir, account, key).display().to_string()
    }
}

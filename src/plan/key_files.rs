//! What the plan knows of the key files. The diff asks this trait instead of the disk, so it
//! is a pure function of its inputs and can be tested without one; [`SecretsDir`] answers from
//! a secrets directory.
//!
//! It answers from the files' metadata (`<key>.meta.json`), never by decrypting: a plan runs
//! with no identity, in CI as well as on a laptop.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Dir, Mode, OFlags};

use crate::secrets::{KeyMeta, Recipient, key_file_path, read_meta_in, recipients_fingerprint};

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

/// The entries of one account's directory, by key.
type Account = HashMap<String, Entry>;

/// The key files of a secrets directory on disk, read once: one directory listing per
/// account and one small read per metadata file, spread over the machine's cores.
pub struct SecretsDir {
    dir: PathBuf,
    available: bool,
    fingerprint: String,
    accounts: HashMap<String, Account>,
}

impl SecretsDir {
    /// Reads what `dir` holds; `recipients` are the config's, to tell stale files.
    pub fn scan(dir: &Path, recipients: &[Recipient]) -> SecretsDir {
        let mut s = SecretsDir {
            dir: dir.to_path_buf(),
            available: dir.is_dir(),
            fingerprint: recipients_fingerprint(recipients),
            accounts: HashMap::new(),
        };
        if !s.available {
            return s;
        }
        // The secrets directory itself may be a link (to a checkout elsewhere, say); nothing
        // under it is followed.
        let top = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        );
        let Ok((top, names)) = top.and_then(list) else {
            return s;
        };
        let Ok(top) = top.fd() else {
            return s;
        };
        s.accounts = scan_accounts(top, names);
        s
    }
}

/// Opens the directory `name` in `at`; a symbolic link is never followed (the apply refuses
/// one outright), and anything but a directory is an error.
fn open_dir(at: impl AsFd, name: &CStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        at,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// The names in a directory but `.` and `..`, with the directory kept open to read them by.
fn list(fd: OwnedFd) -> rustix::io::Result<(Dir, Vec<CString>)> {
    let mut dir = Dir::new(fd)?;
    let mut names = Vec::new();
    for entry in dir.by_ref() {
        let name = entry?.file_name().to_owned();
        if ![&b"."[..], b".."].contains(&name.as_bytes()) {
            names.push(name);
        }
    }
    Ok((dir, names))
}

/// Reads every account directory among `names`, on every core: thirty thousand small reads
/// and ten thousand listings are most of a big plan's file checks.
fn scan_accounts(top: BorrowedFd<'_>, names: Vec<CString>) -> HashMap<String, Account> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let chunk = names.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = names
            .chunks(chunk)
            .map(|names| {
                s.spawn(move || {
                    names
                        .iter()
                        .filter_map(|name| {
                            let account = open_dir(top, name).ok()?;
                            Some((lossy(name), scan_account(account)?))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("reading key files does not panic"))
            .collect()
    })
}

/// What one account's directory holds, its metadata read relative to the directory.
fn scan_account(fd: OwnedFd) -> Option<Account> {
    let (dir, names) = list(fd).ok()?;
    let dir = dir.fd().ok()?;
    let mut keys = Account::new();
    for name in names {
        let file = lossy(&name);
        if file.starts_with('.') {
            continue;
        }
        if let Some((key, id)) = file.split_once(".age.pending-") {
            entry(&mut keys, key).pending.push(id.to_string());
        } else if let Some((key, id)) = file.split_once(".meta.json.pending-") {
            let meta = read_meta_in(dir, &name);
            entry(&mut keys, key)
                .pending_meta
                .push((id.to_string(), meta));
        } else if let Some(key) = file.strip_suffix(".meta.json") {
            let e = entry(&mut keys, key);
            e.meta_present = true;
            e.meta = read_meta_in(dir, &name);
        } else if let Some(key) = file.strip_suffix(".age") {
            entry(&mut keys, key).file = true;
        }
    }
    Some(keys)
}

/// The entry of `key`, made if new.
fn entry<'a>(keys: &'a mut Account, key: &str) -> &'a mut Entry {
    keys.entry(key.to_string()).or_default()
}

fn lossy(name: &CStr) -> String {
    name.to_string_lossy().into_owned()
}

impl KeyFiles for SecretsDir {
    fn available(&self) -> bool {
        self.available
    }

    fn held(&self, account: &str, key: &str, id: &str) -> Held {
        let Some(e) = self.accounts.get(account).and_then(|keys| keys.get(key)) else {
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
            .accounts
            .iter()
            .flat_map(|(account, keys)| {
                keys.iter()
                    .filter(|(_, e)| e.file)
                    .map(|(key, _)| (account.clone(), key.clone()))
            })
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

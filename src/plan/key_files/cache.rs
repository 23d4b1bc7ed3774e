//! The scan cache: what each account directory held when last scanned, with the stamps
//! (inode, size, modification and change times) of the directory and of any metadata files of
//! the old layout, whose names do not say what they hold, so the next scan lists only
//! directories where something changed since.
//!
//! A plan of 100,000 accounts spent three seconds opening 100,000 directories and 300,000
//! metadata files and parsing them, on a machine where each system call costs microseconds; a
//! stamp is one `statx`. Adding, deleting or renaming a file changes its directory's times
//! (svcacct writes every file to a temporary one and renames it into place, and git checks
//! files out as new ones), and writing a metadata file in place (`cp` over it) changes that
//! file's change time, which nothing but the kernel sets. The key files themselves are not
//! stamped: a plan reads only whether they exist, and that is the directory's; nor is
//! metadata whose name says what it holds (`crate::secrets::meta_name`), for the same reason.
//! With that layout an unchanged account costs one `statx`.
//!
//! Safety of a stamp against a change within the file system's clock tick comes from how
//! recent it is: a directory or metadata file changed less than [`SETTLED`] before the scan
//! started is not cached, so the next scan reads it again. Directories with pending files (an
//! apply in flight, or one to recover) are never cached. The cache is only ever an optimisation:
//! anything wrong with it (missing, another version, another secrets directory, unreadable)
//! means a full scan, and failing to write it is not an error.
//!
//! It lives outside the repository, in `$SVCACCT_CACHE_DIR`, `$XDG_CACHE_HOME/svcacct` or
//! `~/.cache/svcacct`, one file per secrets directory; it holds names and key ids (what the
//! metadata files hold), never a secret.

use std::collections::HashMap;
use std::ffi::CStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fd::BorrowedFd;
use rustix::fs::{AtFlags, FileType};
use serde::{Deserialize, Serialize};

use super::{Account, Entry, Facts};

/// Bumped whenever what is cached, or how, changes.
const VERSION: u32 = 4;

/// How long a directory or metadata file must have been left alone before its stamp is
/// trusted.
pub(super) const SETTLED: Duration = Duration::from_secs(2);

/// An account directory's identity and times: any change to its entries changes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Stamp {
    inode: u64,
    modified: (i64, u32),
    changed: (i64, u32),
}

/// The status of `name` in `at` if it is of type `kind` (a symbolic link is not followed).
fn stat_of(at: BorrowedFd<'_>, name: &CStr, kind: FileType) -> Option<rustix::fs::Stat> {
    let st = rustix::fs::statat(at, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    (FileType::from_raw_mode(st.st_mode) == kind).then_some(st)
}

impl Stamp {
    /// The stamp of the directory `name` in `top`; `None` when it is not a directory (a
    /// symbolic link is not followed, and not scanned).
    pub(super) fn of(top: BorrowedFd<'_>, name: &CStr) -> Option<Stamp> {
        let st = stat_of(top, name, FileType::Directory)?;
        Some(Stamp {
            inode: st.st_ino,
            modified: (st.st_mtime, st.st_mtime_nsec as u32),
            changed: (st.st_ctime, st.st_ctime_nsec as u32),
        })
    }
}

/// A metadata file's identity, size and times: writing it in any way changes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct FileStamp {
    inode: u64,
    size: u64,
    modified: (i64, u32),
    changed: (i64, u32),
}

impl FileStamp {
    /// The stamp of the regular file `name` in `dir` (not following a link).
    pub(super) fn of(dir: BorrowedFd<'_>, name: &CStr) -> Option<FileStamp> {
        let st = stat_of(dir, name, FileType::RegularFile)?;
        Some(FileStamp {
            inode: st.st_ino,
            size: st.st_size as u64,
            modified: (st.st_mtime, st.st_mtime_nsec as u32),
            changed: (st.st_ctime, st.st_ctime_nsec as u32),
        })
    }
}

/// Whether nothing was stamped in the `settle` before `started` ([`SETTLED`] but in tests): a
/// later change then gives a later time, whatever the clock's tick. (Change times are part of
/// the stamps, so a modification time set back by hand is seen too.)
fn settled(stamp: &Stamp, keys: &Account, started: (i64, u32), settle: Duration) -> bool {
    let cutoff = if settle.is_zero() {
        (i64::MAX, 0)
    } else {
        (started.0 - settle.as_secs() as i64, started.1)
    };
    stamp.modified < cutoff
        && keys
            .iter()
            .filter_map(|(_, e)| e.meta_stamp.as_deref())
            .all(|m| m.changed < cutoff)
}

/// One account directory as a scan found it, with its stamp (and its entries with theirs).
pub(super) struct Cached {
    pub(super) stamp: Stamp,
    pub(super) account: Account,
}

impl Cached {
    /// Whether the account directory `name` in `top`, now stamped `stamp`, and its metadata
    /// files are as they were.
    pub(super) fn unchanged(&self, top: BorrowedFd<'_>, name: &str, stamp: Stamp) -> bool {
        if self.stamp != stamp {
            return false;
        }
        // One buffer for the account's metadata paths: this runs for every file of a plan.
        let mut path = Vec::with_capacity(name.len() + 64);
        let metas = self
            .account
            .iter()
            .filter_map(|(k, e)| Some((k, *e.meta_stamp.as_deref()?)));
        metas.into_iter().all(|(key, was)| {
            path.clear();
            path.extend_from_slice(name.as_bytes());
            path.push(b'/');
            path.extend_from_slice(key.as_bytes());
            path.extend_from_slice(b".meta.json\0");
            // A name with a NUL in it is not a file's.
            CStr::from_bytes_with_nul(&path).is_ok_and(|p| FileStamp::of(top, p) == Some(was))
        })
    }
}

/// The accounts of the last scan, by name.
pub(super) type Known = HashMap<String, Cached>;

/// The cache as stored. Fingerprints are kept once, and referred to by index: most keys share
/// one.
#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    /// The secrets directory's device and inode: a new checkout at the same path is another.
    top: (u64, u64),
    fingerprints: Vec<String>,
    accounts: Vec<StoredAccount>,
}

/// One account directory: its name, its stamp when scanned, and its keys' entries.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    name: String,
    stamp: Stamp,
    keys: Vec<(String, StoredEntry)>,
}

/// An [`Entry`] without pending files (a directory with any is not cached).
#[derive(Serialize, Deserialize)]
struct StoredEntry {
    file: bool,
    meta_present: bool,
    /// The key id, and the index of the recipients' fingerprint.
    meta: Option<(Option<String>, u32)>,
    meta_stamp: Option<FileStamp>,
}

/// The current time, as a stamp's times are kept.
pub(super) fn now() -> (i64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, d.subsec_nanos())
}

/// Where the cache of the secrets directory `dir` is kept; `None` when there is nowhere, or
/// `SVCACCT_CACHE_DIR` is set empty.
pub(super) fn location(dir: &Path) -> Option<PathBuf> {
    use sha2::{Digest, Sha256};
    let base = match std::env::var_os("SVCACCT_CACHE_DIR") {
        Some(d) if d.is_empty() => return None,
        Some(d) => PathBuf::from(d),
        None => match std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d).join("svcacct"),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/svcacct"),
        },
    };
    let dir = std::fs::canonicalize(dir).ok()?;
    let digest = Sha256::digest(dir.as_os_str().as_encoded_bytes());
    Some(base.join(format!("key-files-{}.bin", hex::encode(&digest[..12]))))
}

/// The device and inode of the open directory `top`.
fn identity(top: BorrowedFd<'_>) -> Option<(u64, u64)> {
    let st = rustix::fs::fstat(top).ok()?;
    Some((st.st_dev, st.st_ino))
}

/// The accounts the cache at `path` holds for the secrets directory `top`; none when there
/// is no usable cache.
pub(super) fn load(path: &Path, top: BorrowedFd<'_>) -> Known {
    let Ok(bytes) = std::fs::read(path) else {
        return Known::new();
    };
    let Ok(stored) = postcard::from_bytes::<Stored>(&bytes) else {
        return Known::new();
    };
    // Its strings are copies: the file's bytes (17 MB at 100,000 accounts) go before the map
    // is built, not after.
    drop(bytes);
    if stored.version != VERSION || Some(stored.top) != identity(top) {
        return Known::new();
    }
    let fingerprints: Vec<Arc<str>> = stored.fingerprints.into_iter().map(Arc::from).collect();
    let fingerprint = |i: u32| fingerprints.get(i as usize).cloned();
    let mut known = Known::with_capacity(stored.accounts.len());
    for StoredAccount { name, stamp, keys } in stored.accounts {
        let mut account = Account::with_capacity(keys.len());
        for (key, e) in keys {
            let meta = match e.meta {
                None => None,
                Some((key_id, i)) => match fingerprint(i) {
                    Some(recipients) => Some(Facts { key_id, recipients }),
                    None => return Known::new(),
                },
            };
            let entry = Entry {
                file: e.file,
                meta,
                meta_present: e.meta_present,
                meta_stamp: e.meta_stamp.map(Box::new),
                pending: None,
            };
            account.push((key, entry));
        }
        let cached = Cached { stamp, account };
        known.insert(name, cached);
    }
    known
}

/// Writes the cache at `path`: every account whose directory has settled and holds no pending
/// file. Best effort: a cache that cannot be written is simply not there next time.
pub(super) fn store(
    path: &Path,
    top: BorrowedFd<'_>,
    started: (i64, u32),
    settle: Duration,
    accounts: &Known,
) {
    let Some(top) = identity(top) else {
        return;
    };
    let mut fingerprints: Vec<String> = Vec::new();
    let mut index = |fp: &str| match fingerprints.iter().position(|f| f == fp) {
        Some(i) => i as u32,
        None => {
            fingerprints.push(fp.to_string());
            fingerprints.len() as u32 - 1
        }
    };
    let mut stored_accounts = Vec::with_capacity(accounts.len());
    for (name, cached) in accounts {
        let (stamp, keys) = (&cached.stamp, &cached.account);
        if !settled(stamp, keys, started, settle) {
            continue;
        }
        if keys.iter().any(|(_, e)| e.pending.is_some()) {
            continue;
        }
        let keys = keys
            .iter()
            .map(|(key, e)| {
                let meta = e
                    .meta
                    .as_ref()
                    .map(|m| (m.key_id.clone(), index(&m.recipients)));
                let entry = StoredEntry {
                    file: e.file,
                    meta_present: e.meta_present,
                    meta,
                    meta_stamp: e.meta_stamp.as_deref().copied(),
                };
                (key.clone(), entry)
            })
            .collect();
        stored_accounts.push(StoredAccount {
            name: name.clone(),
            stamp: *stamp,
            keys,
        });
    }
    let stored = Stored {
        version: VERSION,
        top,
        fingerprints,
        accounts: stored_accounts,
    };
    let _ = write(path, &stored);
}

/// Replaces the file at `path` (a temporary file renamed over it: a reader sees the old cache
/// or the new one, never half of one).
fn write(path: &Path, stored: &Stored) -> std::io::Result<()> {
    let bytes = postcard::to_stdvec(stored).map_err(std::io::Error::other)?;
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let mut tmp = tempfile::NamedTempFile::new_in(parent)?;
    tmp.write_all(&bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

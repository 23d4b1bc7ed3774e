//! Key files: `<dir>/<account>/<key>.age`, armored age encrypted to every recipient.
//!
//! A new key is first written durably (temp file, fsync, rename, fsync the directory) to a
//! pending file named after its key id, `<key>.age.pending-<id>`; only once the backend has
//! registered the key is that file renamed over `<key>.age`. So `<key>.age` always holds a
//! key the backend knows — during a rotation, the old one until the new one is registered —
//! and whatever moment the process dies at, [`recover`] finishes the job on the next apply:
//! a pending file whose id is live is promoted, any other is deleted.
//!
//! An apply that issues many keys makes a chunk of them durable at once instead of file by
//! file: [`write_key_files`] and [`promote_key_files`] write and rename without an fsync each,
//! and the caller then calls [`sync_batch`], one `syncfs` of the file system, before any of
//! them is registered or reported written. At 0.7 ms an fsync, a first apply of 300,000 keys
//! spent most of its time in 700,000 fsyncs; one journal commit per chunk makes the same
//! promise. Such a pending file is created under its pending name directly, with no temporary
//! file: its key is registered only after the batch is durable, so a torn one is of a key no
//! backend knows, and recovery deletes it.
//!
//! Next to each key file, a metadata file holds non-secret facts about the key it holds
//! ([`KeyMeta`]: key id, created, expires, a fingerprint of the recipients), and its name
//! says the key id and recipients ([`super::meta_name`]), so a plan can tell, with no identity
//! and no file opened, which key a file holds and to whom it is encrypted. It travels with its
//! key file: written pending beside it (`<key>.meta.json.pending-<id>`), renamed to its name
//! right after the key file is promoted, and only then is the metadata of the key it replaces
//! removed. A crash between the two renames leaves a pending metadata file of a live key,
//! which [`recover`] promotes (until then the plan reads the pending one); a crash before the
//! removal leaves two. Of two metadata files of one key, the one changed last describes the
//! key file, whatever their names say: a promotion renames the new one into place after the
//! key file, and a backup copied back over a key's files is newer than what it replaces. The
//! plan believes that one, and [`recover`] removes the others.
//!
//! Nothing here follows a symbolic link under the secrets directory: an account directory
//! that is a link (committed by anyone who can open a pull request) would send keys, and
//! recovery's deletions, wherever it points. Such a link is refused before anything is
//! written or deleted, and files and directories are opened with `O_NOFOLLOW`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::Recipient;
use super::meta_name::{meta_name, old_name, parse as parse_meta_name};

/// What a key file decrypts to.
#[derive(Serialize)]
pub struct KeyFile<'a> {
    pub organization: &'a str,
    pub service_account: &'a str,
    pub key: &'a str,
    pub key_id: &'a str,
    pub secret: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// Non-secret facts about the key a key file holds, kept beside it ([`meta_file_path`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMeta {
    /// The key the file holds. `None` only for a key a backend was asked to mint whose secret
    /// never arrived: svcacct meant to hold it, so a missing file is a lost secret.
    pub key_id: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// [`super::recipients_fingerprint`] of the recipients the file is encrypted to.
    #[serde(default)]
    pub recipients: String,
    /// The delivery targets that acknowledged a key, and which key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivered: Vec<Delivered>,
}

/// Where the metadata `meta` of a key lives: a name that says what it holds.
pub fn meta_file_path(dir: &Path, account: &str, key: &str, meta: &KeyMeta) -> PathBuf {
    let name = meta_name(key, meta.key_id.as_deref(), &meta.recipients);
    dir.join(account).join(name)
}

/// Where a key's metadata waits with its pending key file.
pub fn pending_meta_file_path(dir: &Path, account: &str, key: &str, id: &str) -> PathBuf {
    dir.join(account)
        .join(format!("{key}.meta.json.pending-{id}"))
}

/// Where a key's file lives.
pub fn key_file_path(dir: &Path, account: &str, key: &str) -> PathBuf {
    dir.join(account).join(format!("{key}.age"))
}

/// Where a key's file waits until the backend has registered the key.
pub fn pending_key_file_path(dir: &Path, account: &str, key: &str, id: &str) -> PathBuf {
    dir.join(account).join(format!("{key}.age.pending-{id}"))
}

/// Encrypts `payload` to `recipients` into its pending file, durably; returns the path.
pub fn write_key_file(
    dir: &Path,
    recipients: &[Recipient],
    payload: &KeyFile<'_>,
) -> std::io::Result<PathBuf> {
    let parent = account_dir(dir, payload.service_account)?;
    let path = write_pending(dir, &parent, recipients, payload, Fsync::EachFile)?;
    open_dir(&parent)?.sync_all()?;
    Ok(path)
}

/// Whether a file is fsynced as it is written, or later with its whole batch.
#[derive(Clone, Copy, PartialEq)]
enum Fsync {
    EachFile,
    WithBatch,
}

impl Fsync {
    fn file(self, f: &File) -> io::Result<()> {
        match self {
            Fsync::EachFile => f.sync_all(),
            Fsync::WithBatch => Ok(()),
        }
    }
}

/// Makes everything written or renamed under `dir` since the last call durable: one `syncfs`
/// of its file system, which writes back every file and directory and commits the journal.
/// [`write_key_files`] and [`promote_key_files`] promise nothing until it returns.
pub fn sync_batch(dir: &Path) -> io::Result<()> {
    rustix::fs::syncfs(open_dir(dir)?).map_err(io::Error::from)
}

/// [`write_key_file`] for several keys of one account, not yet durable: the caller makes its
/// whole batch durable with [`sync_batch`] before any key may be registered.
pub fn write_key_files(
    dir: &Path,
    recipients: &[Recipient],
    account: &str,
    payloads: &[KeyFile<'_>],
) -> Vec<io::Result<PathBuf>> {
    let parent = match account_dir(dir, account) {
        Ok(p) => p,
        Err(e) => return payloads.iter().map(|_| Err(copy_error(&e))).collect(),
    };
    payloads
        .iter()
        .map(|p| {
            debug_assert_eq!(p.service_account, account);
            write_pending(dir, &parent, recipients, p, Fsync::WithBatch)
        })
        .collect()
}

/// The same error again, for each of the files it fails.
fn copy_error(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

/// Writes `payload`'s pending key file and pending metadata in `parent`, each fsynced if
/// `fsync` says so; the caller fsyncs `parent` (or the batch) before the key may be registered.
fn write_pending(
    dir: &Path,
    parent: &Path,
    recipients: &[Recipient],
    payload: &KeyFile<'_>,
    fsync: Fsync,
) -> io::Result<PathBuf> {
    let path = pending_key_file_path(dir, payload.service_account, payload.key, payload.key_id);
    let plaintext = zeroizing_json(payload);
    let encryptor = age::Encryptor::with_recipients(recipients.iter().map(|r| r.as_age()))
        .map_err(std::io::Error::other)?;
    // Encrypted in memory and written with one call: the armor's writer would otherwise make
    // a system call per line.
    let mut armored = Vec::with_capacity(1024);
    {
        let armor =
            age::armor::ArmoredWriter::wrap_output(&mut armored, age::armor::Format::AsciiArmor)?;
        let mut writer = encryptor.wrap_output(armor)?;
        writer.write_all(&plaintext)?;
        writer.finish()?.finish()?;
    }
    write_new(parent, &path, &armored, fsync)?;
    let meta = KeyMeta {
        key_id: Some(payload.key_id.to_string()),
        created_at: Some(payload.created_at),
        expires_at: payload.expires_at,
        recipients: super::recipients_fingerprint(recipients),
        delivered: Vec::new(),
    };
    write_meta(
        parent,
        &pending_meta_file_path(dir, payload.service_account, payload.key, payload.key_id),
        &meta,
        fsync,
    )?;
    Ok(path)
}

/// Writes metadata to `path` in `parent` durably but for the directory's fsync, which the
/// caller does once for everything it wrote there.
fn write_meta(parent: &Path, path: &Path, meta: &KeyMeta, fsync: Fsync) -> io::Result<()> {
    // One write: serde_json writes to a file token by token.
    let json = serde_json::to_vec_pretty(meta).map_err(io::Error::other)?;
    write_new(parent, path, &json, fsync)
}

/// Writes `bytes` as the file `path` in `parent`.
///
/// A file written on its own (`EachFile`) may be of a key that is live already (a backend
/// minted it, or metadata replaced in place), so it goes through a temporary file, fsynced and
/// renamed over `path`: no crash leaves half of it under its name. A batch's pending file
/// (`WithBatch`) is created in place, as the module's documentation says why: a rename and a
/// random name less per file.
fn write_new(parent: &Path, path: &Path, bytes: &[u8], fsync: Fsync) -> io::Result<()> {
    if fsync == Fsync::WithBatch {
        // `create_new` refuses an existing name, a symbolic link included.
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        return f.write_all(bytes);
    }
    let tmp = tempfile::Builder::new()
        .prefix(".svcacct.")
        .suffix(".tmp")
        .tempfile_in(parent)?;
    tmp.as_file().write_all(bytes)?;
    fsync.file(tmp.as_file())?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Replaces a key's metadata durably (temporary file, fsync, rename, fsync of the directory),
/// and removes any other metadata file of the key.
pub fn rewrite_meta(dir: &Path, account: &str, key: &str, meta: &KeyMeta) -> io::Result<()> {
    let parent = real_dir(&dir.join(account))?;
    let path = meta_file_path(dir, account, key, meta);
    write_meta(&parent, &path, meta, Fsync::EachFile)?;
    remove_other_metas(&parent, &names_in(&parent)?, key, &path)?;
    open_dir(&parent)?.sync_all()
}

/// Records, before a backend is asked to mint `account`/`key`, that svcacct means to hold its
/// secret: if the secret never arrives, the plan reads a lost file, not a key made elsewhere.
/// Metadata already there (a rotation) says the same and is kept.
pub fn expect_key(dir: &Path, account: &str, key: &str) -> io::Result<()> {
    let parent = account_dir(dir, account)?;
    if metas_of(&names_in(&parent)?, key).next().is_some() {
        return Ok(());
    }
    let meta = KeyMeta {
        key_id: None,
        created_at: None,
        expires_at: None,
        recipients: String::new(),
        delivered: Vec::new(),
    };
    let path = meta_file_path(dir, account, key, &meta);
    write_meta(&parent, &path, &meta, Fsync::EachFile)?;
    open_dir(&parent)?.sync_all()
}

/// The metadata of `key`, read: for commands that need what its name does not say
/// (deliveries, dates). Of several files, the one changed last, as the plan takes it.
pub fn find_meta(dir: &Path, account: &str, key: &str) -> Option<KeyMeta> {
    let parent = dir.join(account);
    let names = names_in(&parent).ok()?;
    read_meta(&parent.join(believed_meta(&parent, &names, key)?))
}

/// Of `key`'s metadata files among `names`, the names in its account directory `parent`, the
/// one that describes its key file: the one whose inode changed last (by name when two changed
/// at once). The plan's scan, `deliver`, `reencrypt` and recovery all ask this, so they agree.
pub fn believed_meta<'a>(parent: &Path, names: &'a [String], key: &str) -> Option<&'a String> {
    use std::os::unix::fs::MetadataExt;
    let changed = |name: &String| {
        let m = fs::symlink_metadata(parent.join(name)).ok();
        m.map(|m| (m.ctime(), m.ctime_nsec()))
    };
    metas_of(names, key).max_by_key(|n| (changed(n), *n))
}

/// Renames the metadata of `key` from the layout that named only the key (`<key>.meta.json`)
/// to the one that says what it holds: one atomic rename, so the file is under one name or the
/// other whenever the process stops. Whether it was renamed (not when there is none, it does
/// not parse, or its key id is too long for a name).
pub fn migrate_meta(dir: &Path, account: &str, key: &str) -> io::Result<bool> {
    let parent = real_dir(&dir.join(account))?;
    let old = parent.join(old_name(key));
    let Some(meta) = read_meta(&old) else {
        return Ok(false);
    };
    let new = meta_file_path(dir, account, key, &meta);
    if new == old {
        return Ok(false);
    }
    fs::rename(&old, &new)?;
    Ok(true)
}

/// Renames `from` to `to`, the metadata of `key` in the same directory, and removes the
/// metadata it replaces.
pub(super) fn replace_meta(from: &Path, to: &Path, key: &str) -> io::Result<()> {
    let parent = to.parent().unwrap_or(Path::new("."));
    let names = names_in(parent)?;
    fs::rename(from, to)?;
    remove_other_metas(parent, &names, key, to)
}

/// The names in the directory `parent`.
fn names_in(parent: &Path) -> io::Result<Vec<String>> {
    Ok(fs::read_dir(parent)?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect())
}

/// The names among `names` of `key`'s metadata files, in either layout (not pending ones).
fn metas_of<'a>(names: &'a [String], key: &str) -> impl Iterator<Item = &'a String> {
    names
        .iter()
        .filter(move |n| parse_meta_name(n).is_some_and(|m| m.key() == key))
}

/// Removes each of `key`'s metadata files among `names` in `parent` but `keep`: what the
/// metadata `keep` replaces. Called once `keep` is in place, so the key always has one.
fn remove_other_metas(parent: &Path, names: &[String], key: &str, keep: &Path) -> io::Result<()> {
    for name in metas_of(names, key) {
        let path = parent.join(name);
        if path != keep {
            remove_if_there(&path)?;
        }
    }
    Ok(())
}

/// Reads a key's metadata file; `None` when there is none or it does not parse.
pub fn read_meta(path: &Path) -> Option<KeyMeta> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    parse_meta(f.into())
}

/// [`read_meta`] of the file `name` in the directory `dir` is open on. A plan reads one per
/// key, so this is one `openat` relative to the account's directory (no walk of the whole
/// path), one read, close: no `stat` for a size hint, no second read for the end of a file
/// that fits the buffer.
pub fn read_meta_in(dir: impl rustix::fd::AsFd, name: &std::ffi::CStr) -> Option<KeyMeta> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .ok()?;
    parse_meta(fd)
}

fn parse_meta(fd: rustix::fd::OwnedFd) -> Option<KeyMeta> {
    use std::io::Read;
    let mut f = File::from(fd);
    let mut buf = [0u8; 2048];
    let n = f.read(&mut buf).ok()?;
    if n < buf.len() {
        return serde_json::from_slice(&buf[..n]).ok();
    }
    let mut bytes = buf.to_vec();
    f.read_to_end(&mut bytes).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Moves a registered key's pending file over `<key>.age`, then its metadata into place,
/// durably. `recipients` is the fingerprint of the recipients it was written for.
pub fn promote_key_file(
    dir: &Path,
    account: &str,
    key: &str,
    id: &str,
    recipients: &str,
) -> std::io::Result<()> {
    promote_key_files(dir, account, &[(key, id)], recipients)
        .pop()
        .expect("one result per key")?;
    open_dir(&dir.join(account))?.sync_all()
}

/// [`promote_key_file`] for several registered keys of one account, `(key, id)`, each moved
/// into place but not yet durable: the caller makes its whole batch durable with
/// [`sync_batch`] (recovery finishes whatever did not last).
pub fn promote_key_files(
    dir: &Path,
    account: &str,
    keys: &[(&str, &str)],
    recipients: &str,
) -> Vec<io::Result<()>> {
    // One listing for the account: the metadata the promoted keys' replaces.
    let names = real_dir(&dir.join(account)).and_then(|parent| names_in(&parent));
    let names = match names {
        Ok(names) => names,
        Err(e) => return keys.iter().map(|_| Err(copy_error(&e))).collect(),
    };
    keys.iter()
        .map(|(key, id)| {
            fs::rename(
                pending_key_file_path(dir, account, key, id),
                key_file_path(dir, account, key),
            )?;
            super::faults::between_renames();
            promote_meta(dir, account, key, id, recipients, &names)
        })
        .collect()
}

/// Moves the pending metadata of `key`'s key `id` to its name, then removes the metadata it
/// replaces (among `names`, the account directory's). None (a file from before metadata) is
/// not an error.
fn promote_meta(
    dir: &Path,
    account: &str,
    key: &str,
    id: &str,
    recipients: &str,
    names: &[String],
) -> io::Result<()> {
    let to = dir.join(account).join(meta_name(key, Some(id), recipients));
    match fs::rename(pending_meta_file_path(dir, account, key, id), &to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    }
    super::faults::before_removing_replaced();
    remove_other_metas(&dir.join(account), names, key, &to)
}

/// Removes a file that may already be gone.
fn remove_if_there(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Opens a directory to fsync it, refusing a symbolic link.
fn open_dir(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY)
        .open(path)
}

fn symlink_refused(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is a symbolic link; key files are written only to real directories under the secrets directory (replace the link with a directory)",
            path.display()
        ),
    )
}

/// `path` if it is a directory and not a symbolic link.
fn real_dir(path: &Path) -> io::Result<PathBuf> {
    let m = fs::symlink_metadata(path)?;
    if m.file_type().is_symlink() {
        Err(symlink_refused(path))
    } else if !m.is_dir() {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a directory", path.display()),
        ))
    } else {
        Ok(path.to_path_buf())
    }
}

/// `<dir>/<account>`, created if missing, refused if it is a symbolic link.
fn account_dir(dir: &Path, account: &str) -> io::Result<PathBuf> {
    let path = dir.join(account);
    match fs::symlink_metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir)?;
            match fs::create_dir(&path) {
                // Another thread writing a key of the same account made it first.
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
            real_dir(&path)
        }
        Err(e) => Err(e),
        Ok(_) => real_dir(&path),
    }
}

/// Refuses a secrets directory with a symbolic link among its entries (an account directory,
/// or the marker file), before anything is written to it or deleted from it.
pub fn check_secrets_dir(dir: &Path) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_symlink() {
            return Err(symlink_refused(&entry.path()));
        }
    }
    Ok(())
}

/// Present while an apply issues keys: its absence lets [`recover`] skip the scan of every
/// account directory, so an apply that was not interrupted pays nothing for recovery.
const ISSUING_MARKER: &str = ".issuing";

/// Notes, durably, that pending key files may appear in `dir`.
pub fn begin_issuing(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(ISSUING_MARKER))?
        .sync_all()?;
    open_dir(dir)?.sync_all()
}

/// Whether an apply that issued keys in `dir` may have left pending files behind: only then
/// has [`recover`] anything to do.
pub fn issuing(dir: &Path) -> bool {
    dir.join(ISSUING_MARKER).exists()
}

/// Notes that every pending key file in `dir` was promoted or discarded.
pub fn end_issuing(dir: &Path) -> std::io::Result<()> {
    match fs::remove_file(dir.join(ISSUING_MARKER)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// What [`recover`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Pending files of registered keys, moved into place.
    pub promoted: usize,
    /// Pending files of keys never registered, and temporary files, deleted.
    pub discarded: usize,
}

/// Finishes what an interrupted apply left: promotes the pending file of every key whose id
/// `is_live(account, key, id)`, deletes other pending files and temporary files, and of a
/// key with two metadata files, the older.
pub fn recover(
    dir: &Path,
    is_live: impl Fn(&str, &str, &str) -> bool,
) -> std::io::Result<Recovered> {
    let mut done = Recovered::default();
    if !issuing(dir) {
        return Ok(done);
    }
    // Every link is refused before the first deletion, not when the scan reaches it.
    check_secrets_dir(dir)?;
    let Ok(accounts) = fs::read_dir(dir) else {
        return Ok(done);
    };
    for account_dir in accounts
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
    {
        let account = account_dir.file_name().to_string_lossy().to_string();
        let mut names = names_in(&account_dir.path())?;
        // Key files before metadata: promoting a key file moves its metadata too.
        names.sort_by_key(|n| !n.contains(".age.pending-"));
        // The recipients the pending metadata of `key`'s key `id` was written for.
        let recipients = |key: &str, id: &str| {
            read_meta(&pending_meta_file_path(dir, &account, key, id))
                .map(|m| m.recipients)
                .unwrap_or_default()
        };
        for name in &names {
            let path = account_dir.path().join(name);
            if let Some((key, id)) = name.split_once(".age.pending-") {
                if is_live(&account, key, id) {
                    promote_key_file(dir, &account, key, id, &recipients(key, id))?;
                    done.promoted += 1;
                } else {
                    fs::remove_file(&path)?;
                    remove_if_there(&pending_meta_file_path(dir, &account, key, id))?;
                    done.discarded += 1;
                }
            } else if let Some((key, id)) = name.split_once(".meta.json.pending-") {
                // Its key file was promoted before the process died (or discarded above).
                if !path.exists() {
                    continue;
                }
                if is_live(&account, key, id) {
                    let fingerprint = recipients(key, id);
                    promote_meta(dir, &account, key, id, &fingerprint, &names)?;
                    open_dir(&account_dir.path())?.sync_all()?;
                    done.promoted += 1;
                } else {
                    fs::remove_file(&path)?;
                    done.discarded += 1;
                }
            } else if name.starts_with('.') && name.ends_with(".tmp") {
                remove_if_there(&path)?;
                done.discarded += 1;
            }
        }
        done.discarded += remove_replaced(&account_dir.path())?;
    }
    end_issuing(dir)?;
    Ok(done)
}

/// Of each key in the account directory `parent` with more than one metadata file (a
/// promotion that died before removing what it replaced), removes all but the one changed
/// last, which is what the plan believes; how many.
fn remove_replaced(parent: &Path) -> io::Result<usize> {
    let names = names_in(parent)?;
    let mut metas: Vec<(&str, &String)> = names
        .iter()
        .filter_map(|n| Some((parse_meta_name(n)?.key(), n)))
        .collect();
    metas.sort();
    let mut removed = 0;
    for same_key in metas.chunk_by(|a, b| a.0 == b.0).filter(|m| m.len() > 1) {
        let keep = believed_meta(parent, &names, same_key[0].0);
        for (_, name) in same_key.iter().filter(|(_, n)| Some(*n) != keep) {
            remove_if_there(&parent.join(name))?;
            removed += 1;
        }
    }
    if removed > 0 {
        open_dir(parent)?.sync_all()?;
    }
    Ok(removed)
}

/// The JSON payload, in a buffer that is wiped when dropped.
fn zeroizing_json(payload: &KeyFile<'_>) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(serde_json::to_vec_pretty(payload).expect("a key file serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload<'a>(account: &'a str, key: &'a str, id: &'a str) -> KeyFile<'a> {
        KeyFile {
            organization: "acme",
            service_account: account,
            key,
            key_id: id,
            secret: "not-a-real-secret",
            created_at: OffsetDateTime::UNIX_EPOCH,
            expires_at: None,
        }
    }

    #[test]
    fn an_accounts_keys_are_written_and_promoted_together_each_with_its_metadata() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("secrets");
        let recipients = [super::super::parse_recipient(
            &age::x25519::Identity::generate().to_public().to_string(),
        )
        .unwrap()];
        let keys = [("k0", "key_0"), ("k1", "key_1"), ("k2", "key_2")];
        let payloads: Vec<_> = keys.iter().map(|(k, id)| payload("a", k, id)).collect();
        let written = write_key_files(&dir, &recipients, "a", &payloads);
        for ((key, id), w) in keys.iter().zip(&written) {
            assert_eq!(
                w.as_ref().unwrap(),
                &pending_key_file_path(&dir, "a", key, id)
            );
            assert!(pending_meta_file_path(&dir, "a", key, id).exists());
        }
        let fp = super::super::recipients_fingerprint(&recipients);
        let moved = promote_key_files(&dir, "a", &keys, &fp);
        assert!(moved.iter().all(Result::is_ok), "{moved:?}");
        let meta_path = |key, id| dir.join("a").join(meta_name(key, Some(id), &fp));
        for (key, id) in keys {
            // Written in place under their pending names, still readable by the owner only.
            for file in [key_file_path(&dir, "a", key), meta_path(key, id)] {
                use std::os::unix::fs::PermissionsExt;
                let mode = fs::metadata(&file).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{}", file.display());
            }
            let meta = read_meta(&meta_path(key, id)).unwrap();
            assert_eq!(meta.key_id.as_deref(), Some(id));
            assert_eq!(meta_path(key, id), meta_file_path(&dir, "a", key, &meta));
        }
        // A rotation's promotion leaves the key one metadata file, the new key's, and so does
        // a rewrite.
        let rotated = write_key_files(&dir, &recipients, "a", &[payload("a", "k0", "key_9")]);
        assert!(rotated[0].is_ok());
        let moved = promote_key_files(&dir, "a", &[("k0", "key_9")], &fp);
        assert!(moved[0].is_ok(), "{moved:?}");
        let k0_metas = || {
            let names = names_in(&dir.join("a")).unwrap();
            let mut metas: Vec<String> = metas_of(&names, "k0").cloned().collect();
            metas.sort();
            metas
        };
        assert_eq!(k0_metas(), [meta_name("k0", Some("key_9"), &fp)]);
        let mut meta = find_meta(&dir, "a", "k0").unwrap();
        meta.recipients = "sha256:abcd".into();
        rewrite_meta(&dir, "a", "k0", &meta).unwrap();
        assert_eq!(k0_metas(), ["k0.key_9.abcd.meta.json"]);
        let left: Vec<_> = fs::read_dir(dir.join("a"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains("pending") || n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");

        // An account directory that is a link fails every key of it, and nothing is written
        // where it points.
        let outside = root.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("linked")).unwrap();
        let payloads: Vec<_> = keys
            .iter()
            .map(|(k, id)| payload("linked", k, id))
            .collect();
        let written = write_key_files(&dir, &recipients, "linked", &payloads);
        assert_eq!(written.len(), 3);
        for w in written {
            assert!(w.unwrap_err().to_string().contains("symbolic link"));
        }
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        let moved = promote_key_files(&dir, "linked", &keys, &fp);
        assert!(moved.iter().all(Result::is_err), "{moved:?}");
    }

    #[test]
    fn recovery_refuses_a_symlinked_account_directory_and_deletes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let (dir, outside) = (root.path().join("secrets"), root.path().join("outside"));
        fs::create_dir_all(dir.join("real")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(dir.join("real/k.age.pending-key_1"), "x").unwrap();
        fs::write(outside.join("k.age.pending-key_2"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("linked")).unwrap();
        begin_issuing(&dir).unwrap();
        let e = recover(&dir, |_, _, _| false).expect_err("a link is refused");
        assert!(e.to_string().contains("linked"), "{e}");
        assert!(outside.join("k.age.pending-key_2").exists());
        assert!(
            dir.join("real/k.age.pending-key_1").exists(),
            "nothing deleted"
        );
        let e = account_dir(&dir, "linked").expect_err("no key is written through a link");
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }
}

/// One acknowledged delivery, as the key's metadata keeps it: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    /// The target's name, as plans show it (`github_actions:acme/deploy:KEY`).
    pub target: String,
    pub key_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

//! Key files: `<dir>/<account>/<key>.age`, armored age encrypted to every recipient.
//!
//! A new key is first written durably (temp file, fsync, rename, fsync the directory) to a
//! pending file named after its key id, `<key>.age.pending-<id>`; only once the backend has
//! registered the key is that file renamed over `<key>.age`. So `<key>.age` always holds a
//! key the backend knows — during a rotation, the old one until the new one is registered —
//! and whatever moment the process dies at, [`recover`] finishes the job on the next apply:
//! a pending file whose id is live is promoted, any other is deleted.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::Recipient;

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
    let path = pending_key_file_path(dir, payload.service_account, payload.key, payload.key_id);
    let parent = path.parent().expect("key files live in a directory");
    fs::create_dir_all(parent)?;
    let plaintext = zeroizing_json(payload);
    let encryptor = age::Encryptor::with_recipients(recipients.iter().map(|r| r.as_age()))
        .map_err(std::io::Error::other)?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", payload.key))
        .suffix(".tmp")
        .tempfile_in(parent)?;
    {
        let armor =
            age::armor::ArmoredWriter::wrap_output(tmp.as_file(), age::armor::Format::AsciiArmor)?;
        let mut writer = encryptor.wrap_output(armor)?;
        writer.write_all(&plaintext)?;
        writer.finish()?.finish()?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(&path).map_err(|e| e.error)?;
    fs::File::open(parent)?.sync_all()?;
    Ok(path)
}

/// Moves a registered key's pending file over `<key>.age`, durably.
pub fn promote_key_file(dir: &Path, account: &str, key: &str, id: &str) -> std::io::Result<()> {
    let to = key_file_path(dir, account, key);
    fs::rename(pending_key_file_path(dir, account, key, id), &to)?;
    fs::File::open(to.parent().expect("key files live in a directory"))?.sync_all()
}

/// Present while an apply issues keys: its absence lets [`recover`] skip the scan of every
/// account directory, so an apply that was not interrupted pays nothing for recovery.
const ISSUING_MARKER: &str = ".issuing";

/// Notes, durably, that pending key files may appear in `dir`.
pub fn begin_issuing(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::File::create(dir.join(ISSUING_MARKER))?.sync_all()?;
    fs::File::open(dir)?.sync_all()
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
/// `is_live(account, key, id)`, deletes other pending files and temporary files.
pub fn recover(
    dir: &Path,
    is_live: impl Fn(&str, &str, &str) -> bool,
) -> std::io::Result<Recovered> {
    let mut done = Recovered::default();
    if !dir.join(ISSUING_MARKER).exists() {
        return Ok(done);
    }
    let Ok(accounts) = fs::read_dir(dir) else {
        return Ok(done);
    };
    for account_dir in accounts
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
    {
        let account = account_dir.file_name().to_string_lossy().to_string();
        for entry in fs::read_dir(account_dir.path())?.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some((key, id)) = name.split_once(".age.pending-") {
                if is_live(&account, key, id) {
                    promote_key_file(dir, &account, key, id)?;
                    done.promoted += 1;
                } else {
                    fs::remove_file(entry.path())?;
                    done.discarded += 1;
                }
            } else if name.starts_with('.') && name.ends_with(".tmp") {
                fs::remove_file(entry.path())?;
                done.discarded += 1;
            }
        }
    }
    end_issuing(dir)?;
    Ok(done)
}

/// The JSON payload, in a buffer that is wiped when dropped.
fn zeroizing_json(payload: &KeyFile<'_>) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(serde_json::to_vec_pretty(payload).expect("a key file serializes"))
}

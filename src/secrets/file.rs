//! Key files: `<dir>/<account>/<key>.age`, armored age encrypted to every recipient, written
//! durably (temp file, fsync, rename, fsync the directory) so that a key a backend knows
//! always has a file on disk, whatever moment the process dies at.

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

/// Encrypts `payload` to `recipients` and puts it at its path durably; returns the path.
pub fn write_key_file(
    dir: &Path,
    recipients: &[Recipient],
    payload: &KeyFile<'_>,
) -> std::io::Result<PathBuf> {
    let path = key_file_path(dir, payload.service_account, payload.key);
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

/// The JSON payload, in a buffer that is wiped when dropped.
fn zeroizing_json(payload: &KeyFile<'_>) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(serde_json::to_vec_pretty(payload).expect("a key file serializes"))
}

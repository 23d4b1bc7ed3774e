//! Reading key files with a person's identity: one secret shown on purpose, and every file
//! encrypted to an older recipient set re-encrypted to the config's. Re-encryption is all or
//! none: every new file is staged durably first, and only then is each renamed into place, so
//! an interrupted run leaves every file whole and decryptable (old or new), and a failure
//! before the renames (a file the identity cannot open) changes nothing.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::Recipient;
use super::file::{
    Delivered, KeyMeta, believed_meta, check_secrets_dir, key_file_path, read_meta, replace_meta,
};

/// Identities that decrypt key files.
pub type Identities = Vec<Box<dyn age::Identity + Send + Sync>>;

/// Staged files of a re-encryption start with this; a run deletes those an earlier one left.
const STAGED: &str = ".reencrypt-";

/// Reads an age identity file, or an unencrypted SSH private key.
pub fn load_identities(path: &Path) -> Result<Identities, String> {
    let bytes = Zeroizing::new(
        fs::read(path).map_err(|e| format!("cannot read identity {}: {e}", path.display()))?,
    );
    if bytes.starts_with(b"-----BEGIN OPENSSH PRIVATE KEY-----")
        || bytes.starts_with(b"-----BEGIN RSA PRIVATE KEY-----")
    {
        let name = path.display().to_string();
        return match age::ssh::Identity::from_buffer(&bytes[..], Some(name.clone())) {
            Ok(id @ age::ssh::Identity::Unencrypted(_)) => Ok(vec![Box::new(id)]),
            Ok(age::ssh::Identity::Encrypted(_)) => Err(format!(
                "the SSH key {name} is protected by a passphrase, which svcacct cannot ask for; use `age -d -i {name}` instead"
            )),
            Ok(age::ssh::Identity::Unsupported(_)) | Err(_) => {
                Err(format!("{name} is not an SSH key age can use"))
            }
        };
    }
    let file = age::IdentityFile::from_buffer(&bytes[..])
        .map_err(|e| format!("cannot read identity {}: {e}", path.display()))?;
    let ids = file
        .into_identities()
        .map_err(|e| format!("cannot use identity {}: {e}", path.display()))?;
    if ids.is_empty() {
        return Err(format!("{} holds no identity", path.display()));
    }
    Ok(ids)
}

/// Decrypts a key file; the plaintext is wiped when dropped.
pub fn decrypt_file(path: &Path, identities: &Identities) -> Result<Zeroizing<Vec<u8>>, String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let decryptor = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(&bytes[..]))
        .map_err(|e| format!("{} is not an age file: {e}", path.display()))?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| format!("cannot decrypt {}: {e}", path.display()))?;
    let mut plain = Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut plain)
        .map_err(|e| format!("cannot decrypt {}: {e}", path.display()))?;
    Ok(plain)
}

/// One file to re-encrypt: whose it is, where it is, its staged replacements, and the
/// deliveries its metadata recorded.
struct Staged {
    account: String,
    key: String,
    account_dir: PathBuf,
    file: PathBuf,
    staged_file: PathBuf,
    staged_meta: PathBuf,
    delivered: Vec<Delivered>,
}

/// Re-encrypts to `recipients` every key file whose metadata names another recipient set (or
/// that has none), all or none. Returns the files re-encrypted.
pub fn reencrypt(
    dir: &Path,
    recipients: &[Recipient],
    identities: &Identities,
) -> Result<Vec<PathBuf>, String> {
    let io = |what: &Path, e: io::Error| format!("{}: {e}", what.display());
    check_secrets_dir(dir).map_err(|e| io(dir, e))?;
    let fingerprint = super::recipients_fingerprint(recipients);
    let todo = to_reencrypt(dir, &fingerprint)?;
    // Stage everything; on any failure, remove what was staged and change nothing.
    let mut metas = Vec::with_capacity(todo.len());
    for (i, t) in todo.iter().enumerate() {
        match stage(dir, t, recipients, &fingerprint, identities) {
            Ok(meta) => metas.push(meta),
            Err(e) => {
                for s in &todo[..=i] {
                    let _ = fs::remove_file(&s.staged_file);
                    let _ = fs::remove_file(&s.staged_meta);
                }
                return Err(format!("{e}; nothing was re-encrypted"));
            }
        }
    }
    let mut dirs: Vec<&Path> = todo.iter().map(|t| t.account_dir.as_path()).collect();
    dirs.dedup();
    for d in &dirs {
        sync_dir(d).map_err(|e| io(d, e))?;
    }
    for (t, meta) in todo.iter().zip(&metas) {
        fs::rename(&t.staged_file, &t.file).map_err(|e| io(&t.file, e))?;
        // Its name says the new recipients: the metadata it replaces goes once it is in place.
        replace_meta(&t.staged_meta, meta, &t.key).map_err(|e| io(meta, e))?;
        super::faults::reencrypt_renamed();
    }
    for d in &dirs {
        sync_dir(d).map_err(|e| io(d, e))?;
    }
    Ok(todo.into_iter().map(|t| t.file).collect())
}

/// The key files not encrypted to the recipients of `fingerprint` (or without metadata that
/// says so), staged names chosen; leftovers of an interrupted re-encryption are removed.
fn to_reencrypt(dir: &Path, fingerprint: &str) -> Result<Vec<Staged>, String> {
    let io = |what: &Path, e: io::Error| format!("{}: {e}", what.display());
    let mut todo = Vec::new();
    let accounts = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(todo),
        other => other.map_err(|e| io(dir, e))?,
    };
    let mut accounts: Vec<_> = accounts
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .collect();
    accounts.sort_by_key(|e| e.file_name());
    for account in accounts {
        let account_name = account.file_name().to_string_lossy().into_owned();
        let mut names: Vec<String> = fs::read_dir(account.path())
            .map_err(|e| io(&account.path(), e))?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in &names {
            if name.starts_with(STAGED) {
                fs::remove_file(account.path().join(name)).map_err(|e| io(&account.path(), e))?;
            }
        }
        for key in names
            .iter()
            .filter(|n| !n.starts_with('.'))
            .filter_map(|n| n.strip_suffix(".age"))
        {
            // From this listing: the metadata the plan believes.
            let meta = believed_meta(&account.path(), &names, key)
                .and_then(|name| read_meta(&account.path().join(name)));
            let current = meta
                .as_ref()
                .is_some_and(|m| m.key_id.is_some() && m.recipients == fingerprint);
            if !current {
                todo.push(Staged {
                    account: account_name.clone(),
                    key: key.to_string(),
                    account_dir: account.path(),
                    file: key_file_path(dir, &account_name, key),
                    staged_file: account.path().join(format!("{STAGED}{key}.age")),
                    staged_meta: account.path().join(format!("{STAGED}{key}.meta.json")),
                    delivered: meta.map(|m| m.delivered).unwrap_or_default(),
                });
            }
        }
    }
    Ok(todo)
}

/// Decrypts one file and writes its re-encrypted copy and metadata, durably, beside it;
/// returns where the metadata goes.
fn stage(
    dir: &Path,
    t: &Staged,
    recipients: &[Recipient],
    fingerprint: &str,
    identities: &Identities,
) -> Result<PathBuf, String> {
    let plain = decrypt_file(&t.file, identities)?;
    // The payload names its key; the metadata is rebuilt from it (files from before svcacct
    // kept metadata get theirs here).
    #[derive(serde::Deserialize)]
    struct Facts {
        key_id: String,
        #[serde(with = "time::serde::rfc3339")]
        created_at: time::OffsetDateTime,
        #[serde(default, with = "time::serde::rfc3339::option")]
        expires_at: Option<time::OffsetDateTime>,
    }
    let facts: Facts = serde_json::from_slice(&plain)
        .map_err(|_| format!("{} does not hold a svcacct key", t.file.display()))?;
    let err = |e: io::Error| format!("cannot stage {}: {e}", t.staged_file.display());
    let encryptor = age::Encryptor::with_recipients(recipients.iter().map(|r| r.as_age()))
        .map_err(|e| format!("cannot encrypt: {e}"))?;
    let out = create_new(&t.staged_file).map_err(err)?;
    {
        let armor = age::armor::ArmoredWriter::wrap_output(&out, age::armor::Format::AsciiArmor)
            .map_err(err)?;
        let mut w = encryptor.wrap_output(armor).map_err(err)?;
        w.write_all(&plain).map_err(err)?;
        w.finish().and_then(|a| a.finish()).map_err(err)?;
    }
    out.sync_all().map_err(err)?;
    // The same key: what its delivery targets acknowledged still holds.
    let delivered = t
        .delivered
        .iter()
        .filter(|d| d.key_id == facts.key_id)
        .cloned()
        .collect();
    let meta = KeyMeta {
        key_id: Some(facts.key_id),
        created_at: Some(facts.created_at),
        expires_at: facts.expires_at,
        recipients: fingerprint.to_string(),
        delivered,
    };
    let m = create_new(&t.staged_meta).map_err(err)?;
    serde_json::to_writer_pretty(&m, &meta).map_err(|e| err(io::Error::other(e)))?;
    m.sync_all().map_err(err)?;
    Ok(super::meta_file_path(dir, &t.account, &t.key, &meta))
}

fn create_new(path: &Path) -> io::Result<fs::File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

fn sync_dir(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY)
        .open(path)?
        .sync_all()
}

//! File targets: the secret written atomically (temporary file with the configured mode,
//! fsync, rename, fsync of the directory), so a reader never sees half a secret.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes `secret` to `path` with `mode`, atomically and durably.
pub fn write_secret(path: &Path, mode: u32, secret: &[u8]) -> Result<(), String> {
    let parent = path
        .parent()
        .ok_or_else(|| format!("{} has no directory", path.display()))?;
    let err = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let tmp = tempfile::Builder::new()
        .prefix(".svcacct-deliver.")
        .tempfile_in(parent)
        .map_err(err)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(err)?;
    tmp.as_file().write_all(secret).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    std::fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(err)
}

//! Deleting the key files of keys that no longer exist, all or none.
//!
//! Nothing else ever deletes a key file: a removed key's file stays, and the plan lists it as
//! an orphan. Pruning moves every orphan into a staging directory inside the secrets
//! directory (`.prune-<random>/<account>/<file>`, a rename, so nothing crosses a file system
//! or leaves the tree), fsyncs, and only then deletes. If any move fails, every file moved so
//! far is moved back and nothing is deleted. A `committed` marker written once every move
//! has lasted splits an interrupted run in two: without it, the next run moves the files back
//! (the interrupted prune deleted nothing); with it, the next run finishes the deletion.
//!
//! What is never touched: pending files and temporary files (the key-file protocol's, see
//! `file.rs`), dot-files, anything of a live key, and anything that is not a regular file
//! directly in a real account directory (a symbolic link anywhere refuses the whole prune).

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Staging directories start with this.
const STAGING: &str = ".prune-";

/// Present in a staging directory once every file is in it: the prune is then to be finished.
const COMMITTED: &str = "committed";

/// One file to delete: `<dir>/<account>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OrphanFile {
    pub account: String,
    /// The key the file belongs to.
    pub key: String,
    /// The file's name in the account directory (`<key>.age`, or its metadata's).
    pub name: String,
}

impl OrphanFile {
    /// Where the file is.
    pub fn path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.account).join(&self.name)
    }
}

/// Why nothing (or not everything) was pruned.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// A symbolic link or another non-regular entry where key files live.
    #[error(
        "{path} is {what}; svcacct secrets prune deletes only regular key files and follows no link, so it deletes nothing while it is there"
    )]
    Unsafe { path: PathBuf, what: &'static str },
    /// Reading the secrets directory failed.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file could not be moved aside; every file moved before it was moved back.
    #[error("cannot move {path} aside: {source}; nothing was deleted")]
    RolledBack {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file could not be moved aside, and moving the others back failed too.
    #[error(
        "cannot move {path} aside: {source}; moving the files back failed too ({rollback}): the files not back in place are under {staging}, and the next `svcacct secrets prune` moves them back"
    )]
    RollbackFailed {
        path: PathBuf,
        #[source]
        source: io::Error,
        rollback: String,
        staging: PathBuf,
    },
    /// Every file was moved aside, but deleting them failed.
    #[error(
        "every orphaned file was moved to {staging} but deleting them failed: {source}; the next `svcacct secrets prune` finishes the deletion"
    )]
    Unfinished {
        staging: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An interrupted prune left a file whose place is taken by a newer file.
    #[error(
        "an interrupted prune left {staged}, but {path} exists again; move or delete one of them by hand"
    )]
    Conflict { staged: PathBuf, path: PathBuf },
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> PruneError + '_ {
    move |source| PruneError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// What [`finish_interrupted`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Interrupted {
    /// Files an interrupted prune had moved aside, moved back.
    pub restored: usize,
    /// Files of an interrupted prune that had committed, deleted.
    pub deleted: usize,
}

/// Settles what an interrupted prune left: moves its files back if it had not committed,
/// finishes deleting them if it had.
pub fn finish_interrupted(dir: &Path) -> Result<Interrupted, PruneError> {
    let mut done = Interrupted::default();
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(done),
        other => other.map_err(read_err(dir))?,
    };
    let mut staging: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(read_err(dir))?;
        if entry.file_name().to_string_lossy().starts_with(STAGING) {
            staging.push(entry.path());
        }
    }
    staging.sort();
    for stage in staging {
        let meta = fs::symlink_metadata(&stage).map_err(read_err(&stage))?;
        if !meta.is_dir() {
            return Err(PruneError::Unsafe {
                path: stage,
                what: "not a directory",
            });
        }
        let committed = stage.join(COMMITTED).exists();
        let files = staged_files(&stage)?;
        if committed {
            done.deleted += files.len();
            delete_staged(dir, &stage, &files).map_err(|source| PruneError::Unfinished {
                staging: stage.clone(),
                source,
            })?;
            continue;
        }
        for f in &files {
            let back = f.path(dir);
            if fs::symlink_metadata(&back).is_ok() {
                return Err(PruneError::Conflict {
                    staged: f.path(&stage),
                    path: back,
                });
            }
        }
        for f in &files {
            fs::rename(f.path(&stage), f.path(dir)).map_err(read_err(&stage))?;
            done.restored += 1;
        }
        for account in accounts_of(&files) {
            sync_dir(&dir.join(account)).map_err(read_err(dir))?;
        }
        remove_staging(&stage).map_err(read_err(&stage))?;
        sync_dir(dir).map_err(read_err(dir))?;
    }
    Ok(done)
}

/// The files in a staging directory, as where they came from.
fn staged_files(stage: &Path) -> Result<Vec<OrphanFile>, PruneError> {
    let mut files = Vec::new();
    for account in fs::read_dir(stage).map_err(read_err(stage))? {
        let account = account.map_err(read_err(stage))?;
        let kind = account.file_type().map_err(read_err(stage))?;
        if !kind.is_dir() {
            continue; // the marker
        }
        let account_name = account.file_name().to_string_lossy().into_owned();
        for file in fs::read_dir(account.path()).map_err(read_err(stage))? {
            let file = file.map_err(read_err(stage))?;
            if !file.file_type().map_err(read_err(stage))?.is_file() {
                return Err(PruneError::Unsafe {
                    path: file.path(),
                    what: "not a regular file",
                });
            }
            let name = file.file_name().to_string_lossy().into_owned();
            files.push(OrphanFile {
                account: account_name.clone(),
                key: key_of(&name).unwrap_or(&name).to_string(),
                name,
            });
        }
    }
    files.sort();
    Ok(files)
}

/// The key a key file or its metadata belongs to; `None` for any other name (pending and
/// temporary files among them).
fn key_of(name: &str) -> Option<&str> {
    if name.starts_with('.') || name.contains(".pending-") {
        return None;
    }
    name.strip_suffix(".age")
        .filter(|k| !k.is_empty())
        .or_else(|| super::meta_name::parse(name).map(|m| m.key()))
}

/// Every key file and metadata file under `dir` whose key is not `is_live(account, key)`,
/// in order. Refuses a symbolic link, or anything but a regular file, where one would be.
pub fn find_orphans(
    dir: &Path,
    is_live: impl Fn(&str, &str) -> bool,
) -> Result<Vec<OrphanFile>, PruneError> {
    let mut orphans = Vec::new();
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(orphans),
        other => other.map_err(read_err(dir))?,
    };
    // Every link among the accounts is refused before anything is decided, as apply does.
    let mut accounts = Vec::new();
    for entry in entries {
        let entry = entry.map_err(read_err(dir))?;
        let kind = entry.file_type().map_err(read_err(dir))?;
        if kind.is_symlink() {
            return Err(PruneError::Unsafe {
                path: entry.path(),
                what: "a symbolic link",
            });
        }
        accounts.push((entry, kind));
    }
    for (account, kind) in accounts {
        let account_name = account.file_name().to_string_lossy().into_owned();
        if account_name.starts_with('.') || !kind.is_dir() {
            continue;
        }
        for file in fs::read_dir(account.path()).map_err(read_err(&account.path()))? {
            let file = file.map_err(read_err(&account.path()))?;
            let name = file.file_name().to_string_lossy().into_owned();
            let Some(key) = key_of(&name) else {
                continue;
            };
            if is_live(&account_name, key) {
                continue;
            }
            let kind = file.file_type().map_err(read_err(&file.path()))?;
            if kind.is_symlink() {
                return Err(PruneError::Unsafe {
                    path: file.path(),
                    what: "a symbolic link",
                });
            }
            if !kind.is_file() {
                return Err(PruneError::Unsafe {
                    path: file.path(),
                    what: "not a regular file",
                });
            }
            orphans.push(OrphanFile {
                account: account_name.clone(),
                key: key.to_string(),
                name,
            });
        }
    }
    orphans.sort();
    Ok(orphans)
}

/// Deletes `orphans` (found by [`find_orphans`] under the same lock), all or none.
/// `account_is_live(account)` says which emptied account directories stay.
pub fn prune(
    dir: &Path,
    orphans: &[OrphanFile],
    account_is_live: impl Fn(&str) -> bool,
) -> Result<(), PruneError> {
    if orphans.is_empty() {
        return Ok(());
    }
    let stage = make_staging(dir).map_err(read_err(dir))?;
    let mut moved: Vec<&OrphanFile> = Vec::new();
    let mut failure = None;
    for f in orphans {
        let step = fs::create_dir_all(stage.join(&f.account))
            .and_then(|()| super::faults::prune_move())
            .and_then(|()| fs::rename(f.path(dir), f.path(&stage)));
        match step {
            Ok(()) => moved.push(f),
            Err(e) => {
                failure = Some((f.path(dir), e));
                break;
            }
        }
    }
    // The moves last before anything is deleted: a crash from here on leaves every file
    // either in place or in the staging directory, never half-gone.
    let synced = || -> io::Result<()> {
        for account in accounts_of(orphans) {
            sync_dir(&dir.join(account))?;
            sync_dir(&stage.join(account))?;
        }
        sync_dir(&stage)
    };
    if failure.is_none()
        && let Err(e) = synced()
    {
        failure = Some((stage.clone(), e));
    }
    if let Some((path, source)) = failure {
        return Err(roll_back(dir, &stage, &moved, path, source));
    }
    // The commit point: from here on, an interrupted prune is finished, not undone.
    write_committed(&stage)
        .map_err(|source| roll_back(dir, &stage, &moved, stage.clone(), source))?;
    super::faults::prune_committed();
    delete_staged(dir, &stage, orphans).map_err(|source| PruneError::Unfinished {
        staging: stage.clone(),
        source,
    })?;
    // An account directory left empty by an account that no longer exists goes too; one of
    // a live account stays (its next key goes there). Failing to remove one is harmless.
    for account in accounts_of(orphans) {
        if !account_is_live(account) && fs::remove_dir(dir.join(account)).is_ok() {
            let _ = sync_dir(dir);
        }
    }
    Ok(())
}

/// Moves every moved file back, and removes the staging directory.
fn roll_back(
    dir: &Path,
    stage: &Path,
    moved: &[&OrphanFile],
    path: PathBuf,
    source: io::Error,
) -> PruneError {
    let mut failed = None;
    for f in moved.iter().rev() {
        if let Err(e) = fs::rename(f.path(stage), f.path(dir)) {
            failed.get_or_insert_with(|| format!("{}: {e}", f.path(stage).display()));
        }
    }
    let back: Vec<OrphanFile> = moved.iter().map(|f| (*f).clone()).collect();
    let settled = accounts_of(&back)
        .into_iter()
        .try_for_each(|a| sync_dir(&dir.join(a)));
    if let Err(e) = settled {
        failed.get_or_insert_with(|| format!("{}: {e}", dir.display()));
    }
    match failed {
        None => {
            let _ = remove_staging(stage);
            let _ = sync_dir(dir);
            PruneError::RolledBack { path, source }
        }
        Some(rollback) => PruneError::RollbackFailed {
            path,
            source,
            rollback,
            staging: stage.to_path_buf(),
        },
    }
}

/// Deletes the staged files, then the staging directory, durably.
fn delete_staged(dir: &Path, stage: &Path, files: &[OrphanFile]) -> io::Result<()> {
    for f in files {
        match fs::remove_file(f.path(stage)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    remove_staging(stage)?;
    sync_dir(dir)
}

/// Removes the (now empty) staging directory: its account directories and its marker.
fn remove_staging(stage: &Path) -> io::Result<()> {
    for entry in fs::read_dir(stage)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            fs::remove_dir(entry.path())?;
        } else if entry.file_name() == COMMITTED {
            fs::remove_file(entry.path())?;
        }
    }
    fs::remove_dir(stage)
}

fn make_staging(dir: &Path) -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    loop {
        let path = dir.join(format!("{STAGING}{:016x}", rand::random::<u64>()));
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
            Ok(()) => {
                sync_dir(dir)?;
                return Ok(path);
            }
        }
    }
}

fn write_committed(stage: &Path) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(stage.join(COMMITTED))?
        .sync_all()?;
    sync_dir(stage)
}

/// The accounts of `files`, each once.
fn accounts_of(files: &[OrphanFile]) -> Vec<&str> {
    let mut accounts: Vec<&str> = files.iter().map(|f| f.account.as_str()).collect();
    accounts.sort_unstable();
    accounts.dedup();
    accounts
}

fn sync_dir(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY)
        .open(path)?
        .sync_all()
}

//! Reading the files a config names without trusting them to be files: a FIFO would hang the
//! run, a device would read forever, and a path out of the config's tree could be a token file
//! a CI job keeps next to the checkout.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The largest recipients file read; a real one is a few lines.
pub const MAX_RECIPIENTS_FILE: u64 = 64 * 1024;

/// What the entry at a path is, in words, when it is not a regular file.
fn not_regular(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading only if it is a regular file. The open never blocks (a FIFO
/// with no writer would), and the type is checked on the opened file, so nothing can swap
/// the path between the check and the read. `follow` says whether a final symbolic link is
/// followed.
pub fn open_regular(path: &Path, follow: bool) -> io::Result<File> {
    let mut flags = libc::O_NONBLOCK;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| explain_open_error(path, e))?;
    let t = file.metadata()?.file_type();
    if !t.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is {}, not a regular file", not_regular(t)),
        ));
    }
    Ok(file)
}

/// The open error, saying so when the path is a symbolic link whose target is missing.
fn explain_open_error(path: &Path, e: io::Error) -> io::Error {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is_link && e.kind() == io::ErrorKind::NotFound {
        io::Error::new(
            e.kind(),
            "it is a symbolic link to a file that does not exist",
        )
    } else {
        e
    }
}

/// Reads a regular file whole (following a symbolic link to one).
pub fn read_regular(path: &Path) -> io::Result<String> {
    let mut text = String::new();
    open_regular(path, true)?.read_to_string(&mut text)?;
    Ok(text)
}

/// Why a file a config names may not be read. None of these quotes the file's content.
#[derive(Debug, thiserror::Error)]
pub enum ConfinedError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "{} is outside the config's directory tree {}; it must be a file under it",
        path.display(),
        root.display()
    )]
    Outside { path: PathBuf, root: PathBuf },
    #[error("{} is larger than {} KiB", path.display(), limit / 1024)]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{} is not UTF-8 text", path.display())]
    NotText { path: PathBuf },
}

/// The directory tree a config may name files in: the working directory when the config is
/// under it (a repository checkout, with a recipients file shared by several configs), else
/// the config's own directory. Symbolic links are resolved, so neither `..` nor a link can
/// lead out of it.
pub fn config_tree(base_dir: &Path) -> io::Result<PathBuf> {
    let base = base_dir.canonicalize()?;
    Ok(
        match std::env::current_dir().and_then(|d| d.canonicalize()) {
            Ok(cwd) if base.starts_with(&cwd) => cwd,
            _ => base,
        },
    )
}

/// Reads `rel` (relative to `base_dir`) as text, if it is a regular file of at most `limit`
/// bytes inside [`config_tree`].
pub fn read_confined(base_dir: &Path, rel: &str, limit: u64) -> Result<String, ConfinedError> {
    let path = base_dir.join(rel);
    let read = |source| ConfinedError::Read {
        path: path.clone(),
        source,
    };
    let root = config_tree(base_dir).map_err(read)?;
    let real = path.canonicalize().map_err(read)?;
    if !real.starts_with(&root) {
        return Err(ConfinedError::Outside {
            path: path.clone(),
            root,
        });
    }
    // `real` has no links left; refusing one at the open closes the race with a swap.
    let file = open_regular(&real, false).map_err(read)?;
    if file.metadata().map_err(read)?.len() > limit {
        return Err(ConfinedError::TooLarge { path, limit });
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(read)?;
    if bytes.len() as u64 > limit {
        return Err(ConfinedError::TooLarge { path, limit });
    }
    String::from_utf8(bytes).map_err(|_| ConfinedError::NotText { path })
}

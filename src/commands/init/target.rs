//! The directory init writes into: new or empty (init never overwrites a file), and the
//! staged repository moved into it once everything validated.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// DIR must be new or empty: init never overwrites a file.
pub(super) fn check_target(dir: &Path, files: &[(String, String)], config: &str) -> Result<()> {
    let meta = match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        Ok(m) => m,
    };
    if !meta.is_dir() {
        bail!(
            "{} exists and is not a directory; nothing was written",
            dir.display()
        );
    }
    let mut present: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    if present.is_empty() {
        return Ok(());
    }
    let ours: Vec<&str> = files
        .iter()
        .map(|(n, _)| n.as_str())
        .chain([config])
        .collect();
    let clash: Vec<&str> = present
        .iter()
        .map(String::as_str)
        .filter(|p| ours.contains(p))
        .collect();
    if !clash.is_empty() {
        bail!(
            "{} already holds {}; init does not overwrite files; nothing was written",
            dir.display(),
            clash.join(", ")
        );
    }
    let shown: Vec<&str> = present.iter().take(5).map(String::as_str).collect();
    bail!(
        "{} is not empty (it holds {}{}); init writes only into a new or empty directory; \
         nothing was written",
        dir.display(),
        shown.join(", "),
        if present.len() > 5 { ", …" } else { "" }
    )
}

/// The directories init creates for DIR, removed again if it fails.
pub(super) struct Target {
    created: Vec<PathBuf>,
}

impl Target {
    pub(super) fn prepare(dir: &Path) -> Result<Target> {
        let mut created = Vec::new();
        let mut p = Some(dir);
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            created.push(d.to_path_buf());
            p = d.parent();
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Target { created })
    }

    pub(super) fn undo(self) {
        // Innermost first; `remove_dir` removes only what is still empty.
        for d in &self.created {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Moves each staged file into DIR without replacing anything: a hard link fails when the
/// name exists, so a file that appeared meanwhile is kept, and the move is reported failed
/// (what was moved is taken back, newest first).
pub(super) fn move_into_place(staging: &Path, dir: &Path) -> Result<()> {
    let mut moved = Vec::new();
    let result = move_tree(staging, dir, &mut moved);
    if result.is_err() {
        for m in moved.iter().rev() {
            let _ = std::fs::remove_file(m).or_else(|_| std::fs::remove_dir(m));
        }
    }
    result
}

/// Links the files of `from` into `to`, making its directories; records each new path.
pub(super) fn move_tree(from: &Path, to: &Path, moved: &mut Vec<std::path::PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            std::fs::create_dir(&target)
                .with_context(|| format!("cannot write {}", target.display()))?;
            moved.push(target.clone());
            move_tree(&e.path(), &target, moved)?;
        } else {
            std::fs::hard_link(e.path(), &target)
                .with_context(|| format!("cannot write {}", target.display()))?;
            moved.push(target);
        }
    }
    Ok(())
}

//! `svcacct secrets prune`: deletes the key files of keys that no longer exist live, which
//! the plan lists as orphans and nothing else ever deletes. It decides against the live
//! organization read under the organization's apply lock, so no apply can issue a key of
//! that name between the decision and the deletion; the deletion itself is all or none
//! (see `secrets::prune`).

use anyhow::{Context, Result, bail};

use super::execute::{ask, refuse_unconfirmed};
use super::{Output, exit, load_config};
use crate::cli::PruneArgs;
use crate::config::Config;
use crate::escape;
use crate::model::LiveOrganization;
use crate::reconcile::{self, LockSettings};
use crate::secrets::{self, OrphanFile};

/// Deletes orphaned key files, after confirmation unless `--yes`.
pub fn prune(
    args: &PruneArgs,
    out: Output,
    credentials: &crate::config::CredentialPolicy,
) -> Result<u8> {
    let config = load_config(&args.config.config, out, credentials)?;
    // The same rule as apply: nobody to ask means no deletion without --yes.
    refuse_unconfirmed(args.yes, ("delete key files", "delete"))?;
    let dir = &config.secrets.dir;
    let shown_dir = escape::terminal(&dir.display().to_string()).into_owned();
    refuse_pending(dir, &shown_dir)?;

    // A first look without the lock, and without creating anything: most runs have nothing
    // to do, and a config pointing at the wrong organization is refused here.
    let live = config
        .backend
        .open(&config.desired.name, false)?
        .snapshot()
        .context("cannot read the organization")?;
    let orphans = orphans_of(&config, &live)?;
    if orphans.is_empty() && !staging_left(dir) {
        if !out.quiet {
            println!("No key files to prune under {shown_dir}.");
        }
        return Ok(exit::OK);
    }

    // Under the lock, decide again: an apply may have issued a key of one of these names.
    // The lock is apply's own, taken the way apply takes it.
    let lock = LockSettings {
        command: "secrets prune",
        timeout: args.lock_timeout,
        requests_per_minute: crate::cli::DEFAULT_REQUESTS_PER_MINUTE,
    };
    let mut backend = reconcile::open_and_lock(&config, lock)?;
    // Again under the lock: an apply may have started issuing keys since we first looked;
    // by now it has finished (and removed the marker) or died (and left it).
    refuse_pending(dir, &shown_dir)?;
    let live = reconcile::read_locked(backend.as_mut(), &config, || {})?.live;
    let settled = secrets::finish_interrupted(dir)?;
    if !out.quiet && settled != secrets::Interrupted::default() {
        println!(
            "An interrupted prune was settled: {} file(s) moved back, {} deleted.",
            settled.restored, settled.deleted
        );
    }
    let orphans = orphans_of(&config, &live)?;
    if orphans.is_empty() {
        if !out.quiet {
            println!("No key files to prune under {shown_dir}.");
        }
        return Ok(exit::OK);
    }

    delete(&config, &orphans, &live, args.yes)
}

/// Lists the orphans, asks unless `yes`, and deletes them all or none.
fn delete(
    config: &Config,
    orphans: &[OrphanFile],
    live: &LiveOrganization,
    yes: bool,
) -> Result<u8> {
    let dir = &config.secrets.dir;
    let shown_dir = escape::terminal(&dir.display().to_string()).into_owned();
    // Paths only: a key file's name is its account and key, never its secret.
    println!(
        "{} file{} of keys that no longer exist in organization {}:",
        orphans.len(),
        if orphans.len() == 1 { "" } else { "s" },
        escape::terminal(&config.desired.name)
    );
    for f in orphans {
        println!(
            "  - {}",
            escape::terminal(&f.path(dir).display().to_string())
        );
    }
    if !yes && !ask("\nDelete these files? Type `yes` to delete: ")? {
        println!("Prune cancelled; nothing was deleted.");
        return Ok(exit::ERROR);
    }
    secrets::prune(dir, orphans, |account| {
        live.service_accounts.contains_key(account)
    })
    .with_context(|| format!("cannot prune {shown_dir}"))?;
    println!(
        "Deleted {} file{} under {shown_dir}.",
        orphans.len(),
        if orphans.len() == 1 { "" } else { "s" }
    );
    Ok(exit::OK)
}

/// The key files and metadata of keys `live` does not have. An organization with no service
/// account at all is refused when there are files: that is what a config pointing at the
/// wrong (or a new) organization looks like, and every file would go.
fn orphans_of(config: &Config, live: &LiveOrganization) -> Result<Vec<OrphanFile>> {
    let orphans = secrets::find_orphans(&config.secrets.dir, |account, key| {
        live.service_accounts
            .get(account)
            .is_some_and(|a| a.keys.contains_key(key))
    })?;
    if !orphans.is_empty() && live.service_accounts.is_empty() {
        bail!(
            "organization {} has no service accounts at {}, so every key file under {} would be deleted; refusing (check the config's backend; to delete them all, remove the directory yourself)",
            escape::terminal(&config.desired.name),
            escape::terminal(&config.backend.identity()),
            escape::terminal(&config.secrets.dir.display().to_string())
        );
    }
    Ok(orphans)
}

/// Refuses while an interrupted apply's pending key files are there: they are that apply's
/// to finish (the next `svcacct apply` recovers them), never prune's to delete.
fn refuse_pending(dir: &std::path::Path, shown_dir: &str) -> Result<()> {
    if secrets::issuing(dir) {
        bail!(
            "an interrupted apply left pending key files in {shown_dir}; run `svcacct apply` first (it moves them into place or discards them), then prune"
        );
    }
    Ok(())
}

/// Whether an interrupted prune left a staging directory to settle.
fn staging_left(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with(".prune-"))
    })
}

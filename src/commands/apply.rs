//! `svcacct apply`: plan under the organization's lock, confirm, execute, summarise; or
//! apply a saved plan exactly, under the same lock, once it is checked to be still true.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::plan::{compute, read_saved, snapshot_while, warn_partial};
use super::{Output, exit, load_config};
use crate::apply::{ApplyOptions, KeyOutput, Outcome, Progress, execute};
use crate::backend::Backend;
use crate::cli::ApplyArgs;
use crate::clock;
use crate::config::Config;
use crate::config::config_digest;
use crate::escape;
use crate::model::LiveOrganization;
use crate::plan::Plan;
use crate::plan::SecretsDir;
use crate::plan::render_text;
use crate::secrets;

/// Applies the config.
pub fn apply(
    args: &ApplyArgs,
    out: Output,
    credentials: &crate::config::CredentialPolicy,
) -> Result<u8> {
    let config = load_config(&args.config.config, out, credentials)?;
    // Before any backend is opened: a config that breaks a policy rule changes nothing.
    super::policy::check(&config, out)?;
    if let Some(path) = &args.plan {
        return apply_saved(path, args, &config, out);
    }
    refuse_unconfirmed(args.yes)?;
    let (mut backend, live, files) = open_locked_with_files(
        &config,
        args.lock_timeout,
        args.max_requests_per_minute,
        out,
    )?;
    warn_partial(&args.slice, out);
    let plan = compute(
        &config,
        &live,
        &files,
        args.allow_mass_delete,
        &args.slice,
        backend.as_mut(),
        !args.yes || out.verbose > 0,
    )?;
    confirm_and_execute(
        &plan,
        &config,
        backend.as_mut(),
        args.yes,
        args.parallelism,
        out,
    )
}

/// Applies a saved plan exactly, with no prompt (it was reviewed), or refuses it, changing
/// nothing, when it no longer describes what it would do: edited, made by another version,
/// for another backend, organization or config, or the organization moved since.
fn apply_saved(
    path: &std::path::Path,
    args: &ApplyArgs,
    config: &Config,
    out: Output,
) -> Result<u8> {
    let saved = read_saved(path)?;
    saved.check_config(
        &config.backend.identity(),
        &config.desired.name,
        &config_digest(&args.config.config)?,
    )?;
    let mut backend = open_and_lock(config, args.lock_timeout, args.max_requests_per_minute)?;
    // Without a revision, only the objects the plan changes are read, unless an interrupted
    // apply left key files to recover (that needs every key) or the backend cannot.
    if !saved.backend_has_revision
        && !secrets::issuing(&config.secrets.dir)
        && let Some(objects) = backend
            .snapshot_of(&saved.plan.changes)
            .with_context(|| format!("cannot read {}", backend.describe()))?
    {
        saved.check_objects(&objects)?;
    } else {
        check_whole(&saved, config, backend.as_mut(), out)?;
    }
    confirm_and_execute(
        &saved.plan,
        config,
        backend.as_mut(),
        true,
        args.parallelism,
        out,
    )
}

/// Reads the whole organization under the lock and refuses the saved plan unless it still
/// holds: the same revision, or (without one) the same plan made again now.
fn check_whole(
    saved: &crate::plan::SavedPlan,
    config: &Config,
    backend: &mut dyn Backend,
    out: Output,
) -> Result<()> {
    let (live, files) = read_live(backend, config, out, || {
        SecretsDir::scan(&config.secrets.dir, &config.secrets.parsed)
    })?;
    // Under the lock: nothing can move the organization between this check and the apply.
    let fresh = if saved.backend_has_revision {
        None
    } else {
        Some(compute(
            config,
            &live,
            &files,
            true,
            &crate::cli::SliceArgs::default(),
            backend,
            // Compared with the saved plan, which was made to be read.
            true,
        )?)
    };
    // A plan made before the organization existed stays true while it is still empty:
    // opening it for writing (creating it) may have moved its revision.
    let still_new = saved.revision == 0 && {
        let mut l = live.clone();
        l.revision = 0;
        l == LiveOrganization::new(&config.desired.name)
    };
    let revision = if still_new { 0 } else { live.revision };
    saved.check_live(revision, fresh.as_ref().unwrap_or(&saved.plan))?;
    Ok(())
}

/// Refuses to go on without `--yes` when nobody can be asked.
pub(super) fn refuse_unconfirmed(yes: bool) -> Result<()> {
    if !yes && !std::io::stdin().is_terminal() {
        bail!(
            "refusing to apply without confirmation: standard input is not a terminal; pass --yes to apply"
        );
    }
    Ok(())
}

/// [`open_locked`], and the key files as they are once it has recovered them.
fn open_locked_with_files(
    config: &Config,
    lock_timeout: u64,
    requests_per_minute: u32,
    out: Output,
) -> Result<(Box<dyn Backend>, LiveOrganization, SecretsDir)> {
    let mut backend = open_and_lock(config, lock_timeout, requests_per_minute)?;
    let (live, files) = read_live(backend.as_mut(), config, out, || {
        SecretsDir::scan(&config.secrets.dir, &config.secrets.parsed)
    })?;
    Ok((backend, live, files))
}

/// Opens the organization for writing, takes its lock, reads it, and finishes what an
/// interrupted apply left in the secrets directory. Whatever is planned against the returned
/// organization is applied under the same lock.
pub(super) fn open_locked(
    config: &Config,
    lock_timeout: u64,
    requests_per_minute: u32,
    out: Output,
) -> Result<(Box<dyn Backend>, LiveOrganization)> {
    let mut backend = open_and_lock(config, lock_timeout, requests_per_minute)?;
    let (live, ()) = read_live(backend.as_mut(), config, out, || {})?;
    Ok((backend, live))
}

/// Reads the whole organization and finishes what an interrupted apply left in the secrets
/// directory; then `read` (of the secrets directory), which runs while the backend answers
/// when there is nothing to recover, and after recovery otherwise.
fn read_live<T: Send>(
    backend: &mut dyn Backend,
    config: &Config,
    out: Output,
    read: impl FnOnce() -> T + Send,
) -> Result<(LiveOrganization, T)> {
    if !secrets::issuing(&config.secrets.dir) {
        return snapshot_while(backend, read);
    }
    let live = backend
        .snapshot()
        .with_context(|| format!("cannot read {}", backend.describe()))?;
    // Finish what an interrupted apply left: pending files of registered keys go into place.
    let recovered = secrets::recover(&config.secrets.dir, |account, key, id| {
        live.service_accounts
            .get(account)
            .and_then(|a| a.keys.get(key))
            .is_some_and(|k| k.issued.id == id)
    })
    .with_context(|| {
        format!(
            "cannot recover pending key files in {}",
            config.secrets.dir.display()
        )
    })?;
    if recovered.promoted > 0 && !out.quiet {
        println!(
            "Moved {} key file(s) that an interrupted apply left pending into place.",
            recovered.promoted
        );
    }
    Ok((live, read()))
}

/// Opens the organization for writing and takes its lock. The plan is computed under the
/// lock, so no other apply can move the organization between what we show and what we do.
fn open_and_lock(
    config: &Config,
    lock_timeout: u64,
    requests_per_minute: u32,
) -> Result<Box<dyn Backend>> {
    // Before the backend is opened (which may create it) and before recovery deletes
    // anything: no key goes through a symbolic link out of the secrets directory.
    secrets::check_secrets_dir(&config.secrets.dir).with_context(|| {
        format!(
            "refusing to apply: unsafe secrets directory {}",
            config.secrets.dir.display()
        )
    })?;
    let mut backend = config.backend.open(&config.desired.name, true)?;
    backend.set_request_budget(requests_per_minute);
    let owner = format!("svcacct apply by {}", crate::actor::local_user());
    backend.lock(&owner, Duration::from_secs(lock_timeout))?;
    Ok(backend)
}

/// Shows the plan, asks unless `yes`, executes it and prints the summary.
pub(super) fn confirm_and_execute(
    plan: &Plan,
    config: &Config,
    backend: &mut dyn Backend,
    yes: bool,
    parallelism: u16,
    out: Output,
) -> Result<u8> {
    if !plan.has_changes() {
        if !out.quiet {
            print!("{}", render_text(plan, out.color));
        }
        return Ok(exit::OK);
    }
    if !confirmed(plan, yes, out)? {
        println!("Apply cancelled; nothing was changed.");
        return Ok(exit::ERROR);
    }
    let progress = if out.quiet {
        Progress::Quiet
    } else if std::io::stderr().is_terminal() {
        Progress::Bar
    } else {
        Progress::Lines
    };
    let now = clock::now();
    let outcome = execute(
        plan,
        backend,
        &ApplyOptions {
            parallelism: parallelism.into(),
            progress,
            keys: KeyOutput {
                organization: &config.desired.name,
                dir: &config.secrets.dir,
                recipients: &config.secrets.parsed,
                minting: config.backend.capabilities().minting,
            },
        },
        now,
    );
    if !out.quiet || !outcome.failed.is_empty() {
        print_outcome(&outcome, config);
    }
    if out.verbose > 0
        && let Some(n) = backend.requests()
    {
        eprintln!("{} made {n} requests", backend.describe());
    }
    Ok(if outcome.failed.is_empty() && outcome.skipped.is_empty() {
        exit::OK
    } else {
        exit::ERROR
    })
}

/// Shows the plan and asks, unless `yes` (which shows it only when verbose); whether the
/// answer was `yes`.
fn confirmed(plan: &Plan, yes: bool, out: Output) -> Result<bool> {
    if yes {
        if out.verbose > 0 {
            print!("{}", render_text(plan, out.color));
        }
        return Ok(true);
    }
    print!("{}", render_text(plan, out.color));
    print!(
        "\nApply these changes to organization {}? Type `yes` to apply: ",
        escape::terminal(&plan.organization)
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

/// The apply's summary: counts, each failed and skipped change, and where key files went.
fn print_outcome(outcome: &Outcome, config: &Config) {
    println!(
        "\nApply {}: {} applied, {} failed, {} skipped.",
        if outcome.failed.is_empty() && outcome.skipped.is_empty() {
            "complete"
        } else {
            "incomplete"
        },
        outcome.applied.len(),
        outcome.failed.len(),
        outcome.skipped.len()
    );
    for (address, error) in &outcome.failed {
        println!("  failed  {}: {}", address, escape::terminal(error));
    }
    for address in &outcome.skipped {
        println!("  skipped {}", address);
    }
    if !outcome.key_files.is_empty() {
        println!(
            "{} key file{} written under {} (age-encrypted; decrypt with `age -d -i <identity> <file>`).",
            outcome.key_files.len(),
            if outcome.key_files.len() == 1 {
                ""
            } else {
                "s"
            },
            escape::terminal(&config.secrets.dir.display().to_string())
        );
    }
}

//! Reconciliation: how a plan is made against a live organization, in one place for every
//! command that makes or checks one (`plan`, `apply`, `rotate`, saved-plan applies).
//!
//! It sits between the commands, which talk to people, and the pure parts it joins: the
//! config, the backend, the key files and the diff. Reading live under the organization's
//! lock, finishing what an interrupted apply left, projecting the config through what the
//! backend can keep, diffing and adding what a reviewer needs all happen here, so two
//! commands cannot come to different plans of the same config.

use std::borrow::Cow;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::backend::Backend;
use crate::clock;
use crate::config::Config;
use crate::escape;
use crate::model::LiveOrganization;
use crate::plan::{
    Plan, PlanOptions, SavedPlan, SecretsDir, Slice, destroyed_key_uses, diff, drifted,
};
use crate::secrets;

/// What a plan is asked to be.
pub struct Request<'a> {
    /// Limits the plan to part of the organization (`--target`, `--exclude`).
    pub slice: &'a Slice,
    pub allow_mass_delete: bool,
    /// Whether someone will read it: a plan that is shown carries the access it changes and,
    /// where the backend keeps an audit log, who last changed each drifted object; one nobody
    /// reads (`apply --yes` without `-v`) skips both, and with them a request to the audit log.
    pub shown: bool,
}

/// How an organization is opened for writing.
#[derive(Debug, Clone, Copy)]
pub struct LockSettings {
    /// The command that holds the lock, as another writer waiting for it is told
    /// (`locked by svcacct apply by alice …`).
    pub command: &'static str,
    /// Seconds to wait for another writer's lock.
    pub timeout: u64,
    /// Paces a SaaS backend.
    pub requests_per_minute: u32,
}

/// The organization as read for a plan: live, the key files, and how many pending key files
/// an interrupted apply left that were moved into place first.
pub struct Read<T> {
    pub live: LiveOrganization,
    pub files: T,
    pub recovered: usize,
}

/// A plan made by [`plan`], with the backend (for what the caller reports of it) and what was
/// read to make it (for the caller to free, or leave to the process's exit).
pub struct Planned {
    pub plan: Plan,
    pub backend: Box<dyn Backend>,
    pub live: LiveOrganization,
    pub files: SecretsDir,
}

/// Reads the organization without its lock (`svcacct plan`, which writes nothing) and plans
/// `config` against it.
pub fn plan(config: &Config, request: &Request<'_>) -> Result<Planned> {
    let mut backend = config.backend.open(&config.desired.name, false)?;
    let (live, files) = snapshot_while(backend.as_mut(), || scan(config))?;
    let plan = compute(config, &live, &files, request, backend.as_mut())?;
    Ok(Planned {
        plan,
        backend,
        live,
        files,
    })
}

/// Computes the plan of `config` against the live organization the backend holds.
pub fn compute(
    config: &Config,
    live: &LiveOrganization,
    key_files: &SecretsDir,
    request: &Request<'_>,
    backend: &mut dyn Backend,
) -> Result<Plan> {
    let opts = PlanOptions {
        policy: config.policy,
        now: clock::now(),
        key_files,
        allow_mass_delete: request.allow_mass_delete,
    };
    let live = &*as_the_backend_keeps_it(config, live)?;
    let slice = request.slice;
    let (desired, mut plan) = if slice.is_whole() {
        (
            Cow::Borrowed(&config.desired),
            diff(&config.desired, live, &opts)?,
        )
    } else {
        let (desired, pulled) = slice.narrow(&config.desired, live)?;
        let mut plan = diff(&desired, live, &opts)?;
        slice.limit(&mut plan, &pulled);
        (Cow::Owned(desired), plan)
    };
    crate::deliver::verify_traffic(&mut plan, &desired, live, &config.delivery, opts.now);
    crate::deliver::add_deliveries(
        &mut plan,
        &desired,
        live,
        &config.delivery,
        (&config.secrets.dir, opts.now),
    );
    if !request.shown {
        return Ok(plan);
    }
    plan.review(&desired, live);
    let drifted = drifted(&plan);
    if !drifted.is_empty()
        && let Some(found) = backend
            .last_changes(&drifted)
            .with_context(|| format!("cannot read the audit log of {}", backend.describe()))?
    {
        plan.last_changed = found;
    }
    plan.key_uses = destroyed_key_uses(&plan, live, config.backend.capabilities().records_key_use);
    plan.policy = crate::policy::evaluate(&config.rules, &config.desired);
    crate::policy::attach_causes(&mut plan.policy, &plan.changes);
    Ok(plan)
}

/// The live organization, and what `read` returns, read at the same time: the tens of
/// thousands of small reads of a big secrets directory need not wait for the backend.
pub fn snapshot_while<T: Send>(
    backend: &mut dyn Backend,
    read: impl FnOnce() -> T + Send,
) -> Result<(LiveOrganization, T)> {
    let (live, other) = std::thread::scope(|s| {
        let other = s.spawn(read);
        let live = backend.snapshot();
        (
            live,
            other.join().expect("reading key files does not panic"),
        )
    });
    let live = live.with_context(|| format!("cannot read {}", backend.describe()))?;
    Ok((live, other))
}

/// The key files of the config's secrets directory, as a plan checks them.
pub fn scan(config: &Config) -> SecretsDir {
    SecretsDir::scan(&config.secrets.dir, &config.secrets.parsed)
}

/// Renames the metadata files of the old layout that `files` found to names that say which
/// key they hold, so later plans need not open them; how many. Under the organization's lock,
/// after an apply that succeeded. A file not renamed is read as before, so a failure is only
/// reported.
pub fn migrate_key_files(config: &Config, files: &SecretsDir) -> (usize, Vec<String>) {
    let mut renamed = 0;
    let mut failed = Vec::new();
    for (account, key) in files.old_layout() {
        match secrets::migrate_meta(&config.secrets.dir, account, key) {
            Ok(true) => renamed += 1,
            Ok(false) => {}
            Err(e) => failed.push(format!("{account}/{key}: {e}")),
        }
    }
    (renamed, failed)
}

/// The live organization as the diff must see it under the backend's capabilities: teams
/// made outside svcacct are only named (a missing one is an error, an undeclared one is not
/// svcacct's business), and where ownership lives in a record beside the objects, a declared
/// object is the config's whatever made it.
/// A backend that needs neither gets its organization back as it is, not a copy of it.
fn as_the_backend_keeps_it<'a>(
    config: &Config,
    live: &'a LiveOrganization,
) -> Result<Cow<'a, LiveOrganization>> {
    let caps = config.backend.capabilities();
    let desired = &config.desired;
    if !caps.fixed_teams && !caps.ownership_record {
        return Ok(Cow::Borrowed(live));
    }
    let mut live = live.clone();
    if caps.fixed_teams {
        if let Some(team) = desired.teams.keys().find(|t| !live.teams.contains_key(*t)) {
            let help = crate::suggest::closest(team, live.teams.keys().map(String::as_str))
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            bail!(
                "team `{}` does not exist in {}: the {} backend names existing teams and never creates one{}",
                escape::terminal(team),
                escape::terminal(&config.desired.name),
                caps.name,
                escape::terminal(&help)
            );
        }
        live.teams.retain(|t, _| desired.teams.contains_key(t));
    }
    if caps.ownership_record {
        for (name, role) in live.roles.iter_mut() {
            role.managed |= desired.roles.contains_key(name) && !role.builtin;
        }
        for (name, team) in live.teams.iter_mut() {
            team.managed |= desired.teams.contains_key(name);
        }
        for (name, account) in live.service_accounts.iter_mut() {
            let Some(want) = desired.service_accounts.get(name) else {
                continue;
            };
            account.managed = true;
            for (key, live_key) in account.keys.iter_mut() {
                live_key.settings.managed |= want.keys.contains_key(key);
            }
        }
    }
    Ok(Cow::Owned(live))
}

/// Opens the organization for writing and takes its lock. Whatever is planned against what
/// is then read is applied under the same lock, so no other apply can move the organization
/// between what is shown and what is done.
pub fn open_and_lock(config: &Config, settings: LockSettings) -> Result<Box<dyn Backend>> {
    // Before the backend is opened (which may create it) and before recovery deletes
    // anything: no key goes through a symbolic link out of the secrets directory.
    secrets::check_secrets_dir(&config.secrets.dir).with_context(|| {
        format!(
            "refusing to apply: unsafe secrets directory {}",
            config.secrets.dir.display()
        )
    })?;
    let mut backend = config.backend.open(&config.desired.name, true)?;
    backend.set_request_budget(settings.requests_per_minute);
    let owner = format!(
        "svcacct {} by {}",
        settings.command,
        crate::actor::local_user()
    );
    backend.lock(&owner, Duration::from_secs(settings.timeout))?;
    Ok(backend)
}

/// Reads the whole organization (under the lock the caller holds) and finishes what an
/// interrupted apply left in the secrets directory; then `read` (of the secrets directory),
/// which runs while the backend answers when there is nothing to recover, and after recovery
/// otherwise.
pub fn read_locked<T: Send>(
    backend: &mut dyn Backend,
    config: &Config,
    read: impl FnOnce() -> T + Send,
) -> Result<Read<T>> {
    if !secrets::issuing(&config.secrets.dir) {
        let (live, files) = snapshot_while(backend, read)?;
        return Ok(Read {
            live,
            files,
            recovered: 0,
        });
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
    Ok(Read {
        live,
        files: read(),
        recovered: recovered.promoted,
    })
}

/// Checks, under the lock the caller holds, that a saved plan still describes what applying
/// it would do, and refuses it otherwise. Returns how many pending key files were recovered
/// on the way.
pub fn check_saved(saved: &SavedPlan, config: &Config, backend: &mut dyn Backend) -> Result<usize> {
    // Without a revision, only the objects the plan changes are read, unless an interrupted
    // apply left key files to recover (that needs every key) or the backend cannot.
    if !saved.backend_has_revision
        && !secrets::issuing(&config.secrets.dir)
        && let Some(objects) = backend
            .snapshot_of(&saved.plan.changes)
            .with_context(|| format!("cannot read {}", backend.describe()))?
    {
        saved.check_objects(&objects)?;
        return Ok(0);
    }
    check_whole(saved, config, backend)
}

/// Reads the whole organization under the lock and refuses the saved plan unless it still
/// holds: the same revision, or (without one) the same plan made again now.
fn check_whole(saved: &SavedPlan, config: &Config, backend: &mut dyn Backend) -> Result<usize> {
    let read = read_locked(backend, config, || scan(config))?;
    // Under the lock: nothing can move the organization between this check and the apply.
    let fresh = if saved.backend_has_revision {
        None
    } else {
        let request = Request {
            slice: &Slice::default(),
            allow_mass_delete: true,
            // Compared with the saved plan, which was made to be read.
            shown: true,
        };
        Some(compute(config, &read.live, &read.files, &request, backend)?)
    };
    // A plan made before the organization existed stays true while it is still empty:
    // opening it for writing (creating it) may have moved its revision.
    let still_new = saved.revision == 0 && {
        let mut l = read.live.clone();
        l.revision = 0;
        l == LiveOrganization::new(&config.desired.name)
    };
    let revision = if still_new { 0 } else { read.live.revision };
    saved.check_live(revision, fresh.as_ref().unwrap_or(&saved.plan))?;
    Ok(read.recovered)
}

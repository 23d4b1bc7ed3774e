//! `svcacct apply`: plan under the organization's lock, confirm, execute, summarise; or
//! apply a saved plan exactly, under the same lock, once it is checked to be still true.

use anyhow::Result;

use super::execute::{
    DeliveryInputs, confirm_and_execute, refuse_unconfirmed, report_recovered, warn_partial,
};
use super::{Output, load_config, slice_of};
use crate::cli::ApplyArgs;
use crate::config::{Config, config_digest};
use crate::plan::SavedPlan;
use crate::reconcile::{self, LockSettings, Request};

/// Applies the config.
pub fn apply(
    args: &ApplyArgs,
    out: Output,
    credentials: &crate::config::CredentialPolicy,
) -> Result<u8> {
    let config = load_config(&args.config.config, out, credentials)?;
    let lock = LockSettings {
        command: "apply",
        timeout: args.lock_timeout,
        requests_per_minute: args.max_requests_per_minute,
    };
    // Before any backend is opened: a config that breaks a policy rule changes nothing.
    super::check_policy(&config, out)?;
    if let Some(path) = &args.plan {
        let delivery = DeliveryInputs {
            identities: &args.identity.identities,
            pins: &credentials.deliver,
        };
        return apply_saved(path, args, &config, (lock, &delivery), out);
    }
    refuse_unconfirmed(args.yes, ("apply", "apply"))?;
    let mut backend = reconcile::open_and_lock(&config, lock)?;
    let read = reconcile::read_locked(backend.as_mut(), &config, || reconcile::scan(&config))?;
    report_recovered(read.recovered, out);
    let slice = slice_of(&args.slice);
    warn_partial(&slice, out);
    let request = Request {
        slice: &slice,
        allow_mass_delete: args.allow_mass_delete,
        shown: !args.yes || out.verbose > 0,
    };
    let plan = reconcile::compute(&config, &read.live, &read.files, &request, backend.as_mut())?;
    let delivery = DeliveryInputs {
        identities: &args.identity.identities,
        pins: &credentials.deliver,
    };
    let code = confirm_and_execute(
        &plan,
        &config,
        backend.as_mut(),
        (args.yes, args.parallelism),
        &delivery,
        out,
    )?;
    if code == super::exit::OK {
        migrate(&config, &read.files, out);
    }
    super::leave_to_exit((plan, read, config));
    Ok(code)
}

/// Renames key metadata of an earlier version's layout, and says so: a one-time change the
/// secrets directory's history shows.
fn migrate(config: &Config, files: &crate::plan::SecretsDir, out: super::Output) {
    let (renamed, failed) = reconcile::migrate_key_files(config, files);
    if renamed > 0 && !out.quiet {
        println!(
            "Renamed {renamed} key metadata file(s) to names that say which key they hold (a one-time change of layout)."
        );
    }
    for f in failed {
        eprintln!("warning: cannot rename the key metadata of {f}; it is read as before");
    }
}

/// Applies a saved plan exactly, with no prompt (it was reviewed), or refuses it, changing
/// nothing, when it no longer describes what it would do: edited, made by another version,
/// for another backend, organization or config, or the organization moved since.
fn apply_saved(
    path: &std::path::Path,
    args: &ApplyArgs,
    config: &Config,
    (lock, delivery): (LockSettings, &DeliveryInputs<'_>),
    out: Output,
) -> Result<u8> {
    let saved = SavedPlan::read(path)?;
    saved.check_config(
        &config.backend.identity(),
        &config.desired.name,
        &config_digest(&args.config.config)?,
    )?;
    let mut backend = reconcile::open_and_lock(config, lock)?;
    let recovered = reconcile::check_saved(&saved, config, backend.as_mut())?;
    report_recovered(recovered, out);
    confirm_and_execute(
        &saved.plan,
        config,
        backend.as_mut(),
        (true, args.parallelism),
        delivery,
        out,
    )
}

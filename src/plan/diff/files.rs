//! The key files beside the keys: a live key whose file svcacct held and lost is re-issued,
//! one whose file is encrypted to an older recipient set is noted, and files of keys that no
//! longer exist are listed.

use super::{Builder, PlanOptions, list};
use crate::address::Address;
use crate::model::LiveOrganization;
use crate::plan::Held;

/// What the key files showed while the keys were planned, for the plan's notes.
#[derive(Default)]
pub(super) struct FileCheck {
    /// Whether the key files could not be checked here at all.
    skipped: bool,
    /// Live keys whose file is encrypted to an older recipient set.
    stale: Vec<Address>,
}

impl FileCheck {
    /// Adds what another slice of the accounts showed.
    pub(super) fn join(&mut self, other: FileCheck) {
        self.skipped |= other.skipped;
        self.stale.extend(other.stale);
    }
}

/// What the key files hold for a live key, and why the secret svcacct held for it is not the
/// live one, if so.
pub(super) fn check_file(
    files: &mut FileCheck,
    opts: &PlanOptions<'_>,
    address: &dyn Fn() -> Address,
    (name, key): (&str, &str),
    id: &str,
) -> (Held, Option<String>) {
    let held = if opts.key_files.available() {
        opts.key_files.held(name, key, id)
    } else {
        files.skipped = true;
        Held::Unrecorded
    };
    let lost = match &held {
        Held::Missing => Some("its secret file is missing".to_string()),
        Held::Holds { key_id, .. } if key_id != id => Some(format!(
            "its file holds key {key_id}, not the live key {id} (rotated outside svcacct?)"
        )),
        Held::Holds {
            stale_recipients: true,
            ..
        } => {
            files.stale.push(address());
            None
        }
        _ => None,
    };
    (held, lost)
}

/// Notes on the key files: stale recipients, orphans, and files that could not be checked.
pub(super) fn notes(
    b: &mut Builder,
    files: FileCheck,
    live: &LiveOrganization,
    opts: &PlanOptions<'_>,
) {
    let FileCheck {
        skipped: skipped_file_check,
        stale,
    } = files;
    let key_files_available = opts.key_files.available();
    if !stale.is_empty() {
        b.notes.push(format!(
            "{} key file{} encrypted to recipients the config no longer lists ({}); run `svcacct secrets reencrypt -i IDENTITY` to re-encrypt {} to the current ones, and rotate the keys if a removed recipient should no longer read them",
            stale.len(),
            if stale.len() == 1 { " is" } else { "s are" },
            list(&stale),
            if stale.len() == 1 { "it" } else { "them" },
        ));
    }
    if key_files_available {
        let orphans: Vec<String> = opts
            .key_files
            .orphans(live)
            .into_iter()
            .map(|(a, k)| opts.key_files.describe_file(&a, &k))
            .collect();
        if !orphans.is_empty() {
            b.notes.push(format!(
                "{} key file{} of keys that no longer exist: {}; `svcacct secrets prune` deletes {}",
                orphans.len(),
                if orphans.len() == 1 { "" } else { "s" },
                list(&orphans),
                if orphans.len() == 1 { "it" } else { "them" },
            ));
        }
    }
    if skipped_file_check {
        b.notes.push(format!(
            "the secrets directory {} does not exist here, so key files were not checked",
            opts.key_files.describe()
        ));
    }
}

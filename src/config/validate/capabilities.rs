//! What the configured backend can store, held against the config: limits, fields it has no
//! place for, its built-in roles; and the desired organization projected onto what it keeps.

use crate::backend::Capabilities;
use crate::config::diagnostic::Severity;
use crate::config::load::Merged;
use crate::config::raw::{Loc, RawServiceAccount};
use crate::model::Organization;
use crate::suggest::closest;

use super::backend::backend_place;
use super::findings::{Findings, at};

/// Refuses, at the place it is written, what the backend cannot store: more keys than it
/// keeps per account, a longer overlap than it allows, fields it has no place for.
pub(super) fn check_capabilities(f: &mut Findings<'_>, merged: &Merged) {
    let caps = f.caps;
    let backend = caps.name;
    let cannot = |what: &str| format!("the {backend} backend cannot store {what}");
    for d in &merged.roles {
        if d.item.value.1.protect && !caps.persists.protect {
            f.error(d.file, at(&d.item), cannot("`protect` on a role"));
        }
    }
    for d in &merged.teams {
        let (name, raw) = &d.item.value;
        if raw.protect && (!caps.persists.protect || caps.fixed_teams) {
            f.error(d.file, at(&d.item), cannot("`protect` on a team"));
        }
        if !raw.description.is_empty() && caps.fixed_teams {
            f.error(
                d.file,
                at(&d.item),
                format!("the {backend} backend cannot store a description on team `{name}`: its teams are made outside svcacct, which only names them"),
            );
        }
    }
    for d in &merged.service_accounts {
        account_capabilities(f, d.file, &d.item);
    }
}

/// What the backend cannot store of one service account and its keys.
fn account_capabilities(
    f: &mut Findings<'_>,
    file: usize,
    item: &Loc<(String, RawServiceAccount)>,
) {
    let caps = f.caps;
    let backend = caps.name;
    let cannot = |what: &str| format!("the {backend} backend cannot store {what}");
    let (name, raw) = &item.value;
    let place = at(item);
    if raw.protect && !caps.persists.protect {
        f.error(file, place, cannot("`protect` on a service account"));
    }
    if raw.disabled && !caps.persists.disabled {
        f.error(
            file,
            place,
            cannot("`disabled` (a disabled service account)"),
        );
    }
    if let Some(e) = raw.expires.as_ref().filter(|e| e.value != "never")
        && !caps.persists.account_expiry
    {
        f.error(
            file,
            at(e),
            cannot("an account's `expires`; use `expires_in` on its key"),
        );
    }
    if let Some((k, _)) = raw.keys.0.get(caps.max_keys_per_account) {
        let n = caps.max_keys_per_account;
        f.error(
            file,
            at(k),
            format!(
                "service account `{name}` declares {} keys; the {backend} backend keeps at most {n} {} per account",
                raw.keys.0.len(),
                if n == 1 { "key" } else { "keys" }
            ),
        );
    }
    for (key, k) in &raw.keys.0 {
        if let Some(s) = k.scopes.first()
            && !caps.persists.scopes
        {
            f.error(
                file,
                at(s),
                cannot("key `scopes`; narrow the account's roles instead"),
            );
        }
        if let (Some(overlap), Some(max)) = (k.overlap, caps.max_overlap)
            && overlap > max
        {
            f.error(
                file,
                at(key),
                format!("key `{}` has overlap {overlap}; the {backend} backend keeps a rotated-out key at most {max}", key.value),
            );
        }
    }
}

/// Clears what the backend does not keep, with a warning (see `Capabilities::project`).
pub(super) fn project(f: &mut Findings<'_>, merged: &Merged, desired: &mut Organization) {
    let cleared = f.caps.project(desired);
    if !cleared.is_empty() {
        let (file, place) = backend_place(merged);
        f.push(
            Severity::Warning,
            file,
            place,
            format!(
                "the {} backend does not keep {}; they stay in the config only and are not planned",
                f.caps.name,
                cleared.join(", ")
            ),
            None,
        );
    }
}

/// Why a role name another backend keeps built in is refused here.
pub(super) fn reserved_role(caps: &Capabilities, name: &str) -> String {
    format!(
        "`{name}` is a built-in role of svcacct's own store, not of the {} backend",
        caps.name
    )
}

/// The backend's own built-in roles, the closest first.
pub(super) fn builtin_help(caps: &Capabilities, name: &str) -> String {
    let lower: Vec<String> = caps
        .builtin_roles
        .iter()
        .map(|r| r.to_lowercase())
        .collect();
    let all = caps.builtin_roles.join(", ");
    match closest(&name.to_lowercase(), lower.iter().map(String::as_str))
        .and_then(|c| lower.iter().position(|l| l == c))
    {
        Some(i) => format!(
            "did you mean `{}`? The {} backend's built-in roles are {all}",
            caps.builtin_roles[i], caps.name
        ),
        None => format!("the {} backend's built-in roles are {all}", caps.name),
    }
}

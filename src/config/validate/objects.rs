//! Roles, teams, service accounts, their memberships and keys, as the desired organization.

use std::sync::Mutex;

use crate::config::diagnostic::Severity;
use crate::config::load::{Defined, Merged};
use crate::config::raw::{Loc, RawServiceAccount};
use crate::model::{ApiKey, Organization, Role, ServiceAccount, Team};
use crate::suggest::closest;

use super::capabilities::{builtin_help, reserved_role};
use super::findings::{Findings, at, parse_expiry};

/// Custom roles: not a built-in's name, a slug, permissions of the backend's vocabulary.
pub(super) fn roles(f: &mut Findings<'_>, merged: &Merged, desired: &mut Organization) {
    for d in &merged.roles {
        let (name, raw) = &d.item.value;
        if f.caps.reserved_roles.contains(&name.as_str()) {
            let message = reserved_role(f.caps, name);
            let help = builtin_help(f.caps, name);
            f.push(Severity::Error, d.file, at(&d.item), message, Some(help));
            continue;
        }
        if f.caps.builtin_roles.contains(&name.as_str()) {
            f.push(
                Severity::Error,
                d.file,
                at(&d.item),
                format!("built-in role `{name}` cannot be changed"),
                Some("define a custom role with another name".into()),
            );
            continue;
        }
        f.check_name(d.file, at(&d.item), "role", name);
        let permissions = f.permissions(
            d.file,
            &raw.permissions,
            "permission",
            "permissions look like `flows:read`; `*` matches any resource or action",
        );
        desired.roles.insert(
            name.clone(),
            Role {
                description: raw.description.clone(),
                permissions,
                builtin: false,
                managed: true,
                protect: raw.protect,
            },
        );
    }
}

/// Teams: slugs.
pub(super) fn teams(f: &mut Findings<'_>, merged: &Merged, desired: &mut Organization) {
    for d in &merged.teams {
        let (name, raw) = &d.item.value;
        f.check_name(d.file, at(&d.item), "team", name);
        desired.teams.insert(
            name.clone(),
            Team {
                description: raw.description.clone(),
                managed: true,
                protect: raw.protect,
            },
        );
    }
}

/// An account's memberships (team → role); each must name a defined team and a role that is
/// defined (or built in) and not reserved by another backend. `names` are the defined teams
/// and roles, for a did-you-mean.
pub(super) fn memberships(
    f: &mut Findings<'_>,
    (file, name): (usize, &str),
    raw: &[(Loc<String>, Loc<String>)],
    desired: &Organization,
    (team_names, role_names): (&[&str], &[&str]),
) -> crate::model::Memberships {
    let mut teams = crate::model::Memberships::with_capacity(raw.len());
    for (team, role) in raw {
        if !desired.teams.contains_key(&team.value) {
            let help = closest(&team.value, team_names.iter().copied())
                .map(|c| format!("did you mean `{c}`?"));
            f.push(
                Severity::Error,
                file,
                at(team),
                format!(
                    "undefined team `{}` in service account `{name}`",
                    team.value
                ),
                help.or(Some("define it under `teams:`".into())),
            );
        }
        if f.caps.reserved_roles.contains(&role.value.as_str()) {
            let message = reserved_role(f.caps, &role.value);
            let help = builtin_help(f.caps, &role.value);
            f.push(Severity::Error, file, at(role), message, Some(help));
        } else if !desired.roles.contains_key(&role.value) {
            let help = closest(&role.value, role_names.iter().copied())
                .map(|c| format!("did you mean `{c}`?"));
            f.push(
                Severity::Error,
                file,
                at(role),
                format!(
                    "undefined role `{}` in service account `{name}`",
                    role.value
                ),
                help.or(Some(format!(
                    "define it under `roles:` or use {}",
                    f.caps.builtin_roles.join(", ")
                ))),
            );
        }
        teams.insert(team.value.clone(), role.value.clone());
    }
    teams
}

/// Service accounts and their keys; memberships must name defined teams and roles. Returns
/// where the first key is declared (keys need recipients). Descriptions move into the model
/// rather than being copied: nothing after this reads them from the YAML.
///
/// Accounts are checked on every core, a slice of the file each (a tenth of a 100,000-account
/// validate on one), and join the model and the findings in file order.
pub(super) fn service_accounts(
    f: &mut Findings<'_>,
    accounts: &mut [Defined<(String, RawServiceAccount)>],
    desired: &mut Organization,
) -> Option<(usize, (u64, u64))> {
    let team_names: Vec<&str> = desired.teams.keys().map(String::as_str).collect();
    let role_names: Vec<&str> = desired.roles.keys().map(String::as_str).collect();
    let names = (team_names.as_slice(), role_names.as_slice());
    let total = accounts.len();
    let threads = crate::parallel::threads();
    let per_slice = total.div_ceil(threads * 4).max(512);
    let slices: Vec<_> = accounts
        .chunks_mut(per_slice)
        .map(|c| Mutex::new((c, Checked::default())))
        .collect();
    let (sources, caps, org) = (f.sources, f.caps, &*desired);
    crate::parallel::on_threads(threads, &slices, |slice| {
        let mut slice = slice.lock().expect("no thread panics");
        let (accounts, checked) = &mut *slice;
        let mut f = Findings {
            sources,
            all: Vec::new(),
            caps,
        };
        for d in accounts.iter_mut() {
            let account = service_account(&mut f, d, org, names, &mut checked.first_key);
            checked.accounts.push(account);
        }
        checked.findings = f.all;
    });
    let mut first_key = None;
    let mut checked = Vec::with_capacity(total);
    for slice in slices {
        let (_, c) = slice.into_inner().expect("no thread panics");
        f.all.extend(c.findings);
        first_key = first_key.or(c.first_key);
        checked.extend(c.accounts);
    }
    // Built at once from the sorted list rather than by 100,000 inserts (a later account of
    // the same name wins either way; duplicates are refused when the files are merged).
    desired
        .service_accounts
        .append(&mut checked.into_iter().collect());
    first_key
}

/// What one slice of the accounts gave.
#[derive(Default)]
struct Checked {
    accounts: Vec<(String, ServiceAccount)>,
    findings: Vec<crate::config::diagnostic::Diagnostic>,
    first_key: Option<(usize, (u64, u64))>,
}

/// One service account as the model has it, its problems found on the way.
fn service_account(
    f: &mut Findings<'_>,
    d: &mut Defined<(String, RawServiceAccount)>,
    desired: &Organization,
    names: (&[&str], &[&str]),
    first_key: &mut Option<(usize, (u64, u64))>,
) -> (String, ServiceAccount) {
    let place = at(&d.item);
    let (name, raw) = &mut d.item.value;
    f.check_name(d.file, place, "service account", name);
    let teams = memberships(f, (d.file, name), &raw.teams.0, desired, names);
    if teams.is_empty() && !raw.admin {
        f.push(
            Severity::Warning,
            d.file,
            place,
            format!(
                "service account `{name}` has no team membership, so its keys grant no permission"
            ),
            Some("add `teams: { <team>: <role> }`".into()),
        );
    }
    let expires = raw
        .expires
        .as_ref()
        .and_then(|e| parse_expiry(f, d.file, e));
    let mut account = ServiceAccount {
        description: std::mem::take(&mut raw.description),
        teams,
        admin: raw.admin,
        expires,
        disabled: raw.disabled,
        protect: raw.protect,
        managed: true,
        keys: crate::model::SmallMap::with_capacity(raw.keys.0.len()),
    };
    for (key, k) in &mut raw.keys.0 {
        first_key.get_or_insert((d.file, at(key)));
        f.check_name(d.file, at(key), "key", &key.value);
        let scopes = f.permissions(
            d.file,
            &k.scopes,
            "scope",
            "scopes are permissions such as `flows:read` or `*:read`",
        );
        account.keys.insert(
            key.value.clone(),
            ApiKey {
                description: std::mem::take(&mut k.description),
                scopes,
                expires_in: k.expires_in.as_ref().map(|d| d.value),
                rotate_every: k.rotate_every.as_ref().map(|d| d.value),
                overlap: k.overlap,
                managed: true,
            },
        );
    }
    (name.clone(), account)
}

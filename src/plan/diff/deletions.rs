//! Deletions of what the config no longer has, with what depends on them, and the checks that
//! refuse a plan deleting a protected object or too much of the organization.

use super::{Builder, PlanOptions};
use crate::address::Address;
use crate::join::outer_join;
use crate::model::{LiveAccount, LiveOrganization, Organization};
use crate::operation::Operation;
use crate::plan::{Action, PlanError, Snapshot};

/// Deletions last, with what depends on them.
pub(super) fn deletions(b: &mut Builder, desired: &Organization, live: &LiveOrganization) {
    let accounts = outer_join(&desired.service_accounts, &live.service_accounts);
    for (name, have) in accounts.filter_map(|(n, want, have)| want.is_none().then_some((n, have?)))
    {
        let work = Operation::DeleteServiceAccount { name: name.clone() };
        let address = Address::account(name);
        if let Some(i) = b.remove(
            address,
            have.managed,
            have.protect,
            Snapshot::account(have),
            work,
        ) {
            account_revokes(b, i, live, name, have);
        }
    }
    for (name, have) in live
        .teams
        .iter()
        .filter(|(n, _)| !desired.teams.contains_key(*n))
    {
        let work = Operation::DeleteTeam { name: name.clone() };
        if let Some(i) = b.remove(
            Address::team(name),
            have.managed,
            have.protect,
            Snapshot::Team(have.clone()),
            work,
        ) {
            b.changes[i].depends_on = users_of(live, b, |a| a.teams.contains_key(name));
        }
    }
    for (name, have) in live
        .roles
        .iter()
        .filter(|(n, r)| !r.builtin && !desired.roles.contains_key(*n))
    {
        let work = Operation::DeleteRole { name: name.clone() };
        if let Some(i) = b.remove(
            Address::role(name),
            have.managed,
            have.protect,
            Snapshot::Role(have.clone()),
            work,
        ) {
            b.changes[i].depends_on = users_of(live, b, |a| a.teams.values().any(|r| r == name));
        }
    }
}

/// What deleting an account (change `i`) revokes: its keys and its rotated-out secrets, counted
/// towards the mass-delete share, said in the reason and listed.
fn account_revokes(
    b: &mut Builder,
    i: usize,
    live: &LiveOrganization,
    name: &str,
    have: &LiveAccount,
) {
    b.deletes += have.keys.len();
    let retired: Vec<&str> = live
        .retiring_keys
        .iter()
        .filter(|r| r.service_account == *name)
        .map(|r| r.id.as_str())
        .collect();
    let (n, m) = (have.keys.len(), retired.len());
    let mut reason = Vec::new();
    if n > 0 {
        reason.push(format!(
            "revokes its {n} key{}",
            if n == 1 { "" } else { "s" }
        ));
    }
    if m > 0 {
        reason.push(format!(
            "{} {m} rotated-out secret{} still inside {} overlap",
            if n > 0 { "and" } else { "revokes" },
            if m == 1 { "" } else { "s" },
            if m == 1 { "its" } else { "their" }
        ));
    }
    if !reason.is_empty() {
        b.changes[i].reason = Some(reason.join(" "));
    }
    b.changes[i].revokes = have
        .keys
        .values()
        .map(|k| k.issued.id.clone())
        .chain(retired.into_iter().map(str::to_string))
        .collect();
}

/// Refuses a plan that deletes a protected object, or more of the managed ones than the
/// policy allows.
pub(super) fn check_safety(
    b: &mut Builder,
    live: &LiveOrganization,
    opts: &PlanOptions<'_>,
) -> Result<(), PlanError> {
    let (protected, mut deletes) = (std::mem::take(&mut b.protected), b.deletes);
    if !protected.is_empty() {
        return Err(PlanError::Protected(protected));
    }
    deletes += b
        .changes
        .iter()
        .filter(|c| c.action == Action::Delete && c.address.is_key())
        .count();
    let managed = managed_count(live);
    let limit = opts.policy.max_delete_percent;
    if !opts.allow_mass_delete && managed >= 10 && deletes * 100 > managed * limit as usize {
        return Err(PlanError::MassDelete {
            deletes,
            managed,
            percent: deletes * 100 / managed,
            limit,
        });
    }

    Ok(())
}

/// Changes of accounts that currently use a team or role: they must run before its deletion.
fn users_of(
    live: &LiveOrganization,
    b: &Builder,
    uses: impl Fn(&LiveAccount) -> bool,
) -> Vec<usize> {
    live.service_accounts
        .iter()
        .filter(|(_, a)| uses(a))
        .filter_map(|(n, _)| b.dep(&Address::account(n)))
        .collect()
}

/// Managed objects of an organization, the base of the mass-delete share.
fn managed_count(live: &LiveOrganization) -> usize {
    live.roles.values().filter(|r| r.managed).count()
        + live.teams.values().filter(|t| t.managed).count()
        + live
            .service_accounts
            .values()
            .map(|a| {
                usize::from(a.managed) + a.keys.values().filter(|k| k.settings.managed).count()
            })
            .sum::<usize>()
}

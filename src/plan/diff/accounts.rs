//! An account's own settings and memberships.

use super::{Builder, change};
use crate::address::Address;
use crate::model::{LiveAccount, ServiceAccount};
use crate::operation::Operation;
use crate::plan::{Action, Snapshot};

/// An account's own settings and memberships; returns the change's index, if any, which its
/// keys' changes depend on.
pub(super) fn account(
    b: &mut Builder,
    name: &str,
    want: &ServiceAccount,
    have: Option<&LiveAccount>,
) -> Option<usize> {
    let address = Address::account(name);
    let mut work = Vec::new();
    if have.is_none_or(|h| !h.same_settings(want)) {
        work.push(Operation::PutServiceAccount {
            name: name.to_string(),
            account: want.clone(),
        });
    }
    let live_teams = have.map(|h| &h.teams);
    if live_teams.map_or(!want.teams.is_empty(), |t| *t != want.teams) {
        work.push(Operation::SetMemberships {
            account: name.to_string(),
            teams: want.teams.clone(),
        });
    }
    if work.is_empty() {
        None
    } else {
        let action = if have.is_some() {
            Action::Update
        } else {
            Action::Create
        };
        let mut c = change(
            address.clone(),
            action,
            have.map(Snapshot::account),
            Some(Snapshot::account(want)),
            work,
        );
        c.depends_on = want
            .teams
            .iter()
            .flat_map(|(t, r)| [b.dep(&Address::team(t)), b.dep(&Address::role(r))])
            .flatten()
            .collect();
        Some(b.push(c))
    }
}

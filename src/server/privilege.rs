//! The rule that keeps a managing key from handing out more than it holds: a key with
//! `svcacct:manage` may not create, promote, change or issue keys for an account whose
//! permissions (as they stand after the write) go beyond the key's own. Otherwise any managing
//! key could mint a key for a global admin and read its `*:*` secret. The operator may do
//! anything.
//!
//! The check works out the accounts a write reaches and their permissions after it, from the
//! stored state and the operations, before anything is written: an account written or given
//! a key directly, and every holder of a role whose permissions change. Deleting an account
//! or revoking a key takes power away and is not checked.

use std::collections::BTreeSet;

use super::error::ApiError;
use crate::model::{LiveAccount, LiveOrganization, pattern_covers};
use crate::operation::Operation;
use crate::store::Store;

/// Refuses (403) operations that would leave an account holding a permission that no
/// pattern of `grants` covers.
pub fn check(
    store: &Store,
    org: &str,
    grants: &[String],
    ops: &[Operation],
) -> Result<(), ApiError> {
    let (state, reached) = after_writes(store, org, ops)?;
    for name in &reached {
        let account: &LiveAccount = &state.service_accounts[name];
        let beyond = state
            .permissions_of(account)
            .into_iter()
            .find(|p| !grants.iter().any(|g| pattern_covers(g, p)));
        if let Some(p) = beyond {
            return Err(ApiError::forbidden(format!(
                "service_account.{name} would hold {p}, which this key does not: a key may create, change or issue keys only for accounts with no more permissions than its own"
            )));
        }
    }
    Ok(())
}

/// The accounts the writes reach, as they would be after them (their admin flag and
/// memberships, and every role as written), with the roles they hold.
fn after_writes(
    store: &Store,
    org: &str,
    ops: &[Operation],
) -> Result<(LiveOrganization, BTreeSet<String>), ApiError> {
    let mut state = LiveOrganization {
        name: org.to_string(),
        roles: store.roles(org)?,
        ..Default::default()
    };
    let mut reached = BTreeSet::new();
    let load = |state: &mut LiveOrganization, name: &str| -> Result<(), ApiError> {
        if !state.service_accounts.contains_key(name) {
            let account = store.service_account(org, name)?.unwrap_or_default();
            state.service_accounts.insert(name.to_string(), account);
        }
        Ok(())
    };
    for op in ops {
        match op {
            Operation::PutServiceAccount { name, account } => {
                load(&mut state, name)?;
                let a = state.service_accounts.get_mut(name).expect("loaded");
                // Memberships ride along but are written by SetMemberships only.
                a.admin = account.admin;
                reached.insert(name.clone());
            }
            Operation::SetMemberships { account, teams } => {
                load(&mut state, account)?;
                let a = state.service_accounts.get_mut(account).expect("loaded");
                a.teams = teams.clone();
                reached.insert(account.clone());
            }
            Operation::RegisterKey { account, .. }
            | Operation::IssueKey { account, .. }
            | Operation::UpdateKey { account, .. } => {
                load(&mut state, account)?;
                reached.insert(account.clone());
            }
            Operation::PutRole { name, role } => {
                state.roles.insert(name.clone(), role.clone());
                for holder in store.accounts_with_role(org, name)? {
                    load(&mut state, &holder)?;
                    reached.insert(holder);
                }
            }
            Operation::DeleteRole { .. }
            | Operation::PutTeam { .. }
            | Operation::DeleteTeam { .. }
            | Operation::DeleteServiceAccount { .. }
            | Operation::RevokeKey { .. } => {}
        }
    }
    Ok((state, reached))
}

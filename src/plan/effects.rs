//! Who gains what: the effective permissions of each account before and after a plan. A
//! reviewer of an access change cares less that `teams.platform` got a new role than that an
//! account can now write the warehouse, and a role edit reaches every account holding the
//! role. Computed from the desired and live organizations as wholes, after the diff, so the
//! diff stays about objects and this stays about access.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Action, Change};
use crate::address::Address;
use crate::join::outer_join;
use crate::model::{
    LiveAccount, LiveOrganization, Organization, Role, ServiceAccount, pattern_covers,
    pattern_intersection,
};

/// The access a plan changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Effects {
    /// Accounts whose effective permissions change, by name.
    pub accounts: Vec<AccountEffect>,
    /// Each changed role with the accounts it reaches.
    pub roles: Vec<RoleReach>,
}

/// One account's gained and lost permissions (patterns such as `flows:*`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountEffect {
    pub account: String,
    pub gained: Vec<String>,
    pub lost: Vec<String>,
    /// Keys whose scopes change what they may do.
    pub keys: Vec<KeyEffect>,
}

/// A key's gained and lost permissions through a change of its scopes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyEffect {
    pub key: String,
    pub gained: Vec<String>,
    pub lost: Vec<String>,
}

/// A role the plan creates, edits or deletes, and the accounts holding it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoleReach {
    pub role: String,
    pub accounts: Vec<String>,
}

impl AccountEffect {
    /// Whether the account or one of its keys may do more than before.
    pub fn widening(&self) -> bool {
        !self.gained.is_empty() || self.keys.iter().any(|k| !k.gained.is_empty())
    }
}

impl Effects {
    /// The accounts a role reaches, if the plan changes the role.
    pub fn reach_of(&self, role: &str) -> Option<&[String]> {
        self.roles
            .iter()
            .find(|r| r.role == role)
            .map(|r| r.accounts.as_slice())
    }

    /// The effect on an account, if any.
    pub fn of_account(&self, account: &str) -> Option<&AccountEffect> {
        self.accounts.iter().find(|a| a.account == account)
    }
}

/// What an account may do: nothing while disabled, else what its memberships grant.
fn effective<K>(org: &Organization<K>, account: &ServiceAccount<K>) -> BTreeSet<String> {
    if account.disabled {
        return BTreeSet::new();
    }
    org.permissions_of(account)
}

/// What a key may do: its account's permissions, narrowed by its scopes when it has any.
fn key_effective(account: &BTreeSet<String>, scopes: &BTreeSet<String>) -> BTreeSet<String> {
    if scopes.is_empty() {
        return account.clone();
    }
    account
        .iter()
        .flat_map(|p| scopes.iter().filter_map(|s| pattern_intersection(p, s)))
        .collect()
}

/// Patterns of `new` that no pattern of `old` already covers, and the reverse.
fn gained_lost(old: &BTreeSet<String>, new: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    let uncovered = |from: &BTreeSet<String>, by: &BTreeSet<String>| {
        from.iter()
            .filter(|p| !by.iter().any(|q| pattern_covers(q, p)))
            .cloned()
            .collect::<Vec<_>>()
    };
    (uncovered(new, old), uncovered(old, new))
}

/// Roles whose permissions differ between the two organizations (made or removed included).
fn changed_roles<'a>(desired: &'a Organization, live: &'a LiveOrganization) -> BTreeSet<&'a str> {
    let permissions =
        |roles: &'a BTreeMap<String, Role>, role: &str| roles.get(role).map(|r| &r.permissions);
    desired
        .roles
        .keys()
        .chain(live.roles.keys())
        .filter(|r| permissions(&desired.roles, r) != permissions(&live.roles, r))
        .map(String::as_str)
        .collect()
}

/// Whether everything an account's access and its keys' derive from is the same on both
/// sides: then neither can gain or lose anything, and the sets need not be built. Most
/// accounts of a big plan are such, and building and comparing their sets was most of it.
fn same_access(want: &ServiceAccount, have: &LiveAccount, changed: &BTreeSet<&str>) -> bool {
    want.admin == have.admin
        && want.disabled == have.disabled
        && want.teams == have.teams
        && !want.teams.values().any(|r| changed.contains(r.as_str()))
        && want.keys.iter().all(|(k, wk)| {
            have.keys
                .get(k)
                .is_none_or(|hk| hk.settings.scopes == wk.scopes)
        })
}

/// The access `changes` (the plan of `desired` against `live`) changes.
/// What each key whose scopes change gains and loses, within its account's access before
/// (`old`) and after (`new`).
fn key_effects(
    want: &ServiceAccount,
    have: &LiveAccount,
    old: &BTreeSet<String>,
    new: &BTreeSet<String>,
) -> Vec<KeyEffect> {
    let mut keys = Vec::new();
    for (key, wk) in &want.keys {
        let Some(hk) = have.keys.get(key) else {
            continue;
        };
        if wk.scopes == hk.settings.scopes {
            continue;
        }
        let (kg, kl) = gained_lost(
            &key_effective(old, &hk.settings.scopes),
            &key_effective(new, &wk.scopes),
        );
        if !kg.is_empty() || !kl.is_empty() {
            keys.push(KeyEffect {
                key: key.clone(),
                gained: kg,
                lost: kl,
            });
        }
    }
    keys
}

pub fn compute(desired: &Organization, live: &LiveOrganization, changes: &[Change]) -> Effects {
    let changed = changed_roles(desired, live);
    let deleted_set: BTreeSet<&Address> = changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .map(|c| &c.address)
        .collect();
    let deleted = |a: &Address| deleted_set.contains(a);
    let mut accounts = Vec::new();
    for (name, want, have) in outer_join(&desired.service_accounts, &live.service_accounts) {
        if let (Some(w), Some(h)) = (want, have)
            && same_access(w, h, &changed)
        {
            continue;
        }
        // A live account the config does not have is only affected when the plan deletes it.
        if want.is_none() && !deleted(&Address::account(name)) {
            continue;
        }
        let new = want.map_or_else(BTreeSet::new, |a| effective(desired, a));
        let old = have.map_or_else(BTreeSet::new, |a| effective(live, a));
        let (gained, lost) = gained_lost(&old, &new);
        let keys = match (want, have) {
            (Some(want), Some(have)) => key_effects(want, have, &old, &new),
            _ => Vec::new(),
        };
        if !gained.is_empty() || !lost.is_empty() || !keys.is_empty() {
            accounts.push(AccountEffect {
                account: name.clone(),
                gained,
                lost,
                keys,
            });
        }
    }
    let roles = role_reaches(desired, live, changes);
    Effects { accounts, roles }
}

/// The accounts each changed role reaches: whoever holds a deleted role now, whoever will
/// hold any other.
fn role_reaches(
    desired: &Organization,
    live: &LiveOrganization,
    changes: &[Change],
) -> Vec<RoleReach> {
    changes
        .iter()
        .filter_map(|c| match &c.address {
            Address::Role(role) => Some((role, c.action)),
            _ => None,
        })
        .map(|(role, action)| {
            // A deleted role reaches whoever holds it now; any other, whoever will.
            let accounts = if action == Action::Delete {
                holders(live, role)
            } else {
                holders(desired, role)
            };
            RoleReach {
                role: role.clone(),
                accounts,
            }
        })
        .collect()
}

/// The accounts that hold `role` through a membership.
fn holders<K>(org: &Organization<K>, role: &str) -> Vec<String> {
    org.service_accounts
        .iter()
        .filter(|(_, a)| a.teams.values().any(|r| r == role))
        .map(|(n, _)| n.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{IssuedKey, LiveKey, Role};

    fn org<K>(roles: &[(&str, &[&str])], accounts: &[(&str, &[(&str, &str)])]) -> Organization<K> {
        let mut o = Organization::new("acme");
        for (name, perms) in roles {
            o.roles.insert(
                name.to_string(),
                Role {
                    permissions: perms.iter().map(|p| p.to_string()).collect(),
                    managed: true,
                    ..Default::default()
                },
            );
        }
        for (name, teams) in accounts {
            o.service_accounts.insert(
                name.to_string(),
                ServiceAccount {
                    managed: true,
                    teams: teams
                        .iter()
                        .map(|(t, r)| (t.to_string(), r.to_string()))
                        .collect(),
                    ..Default::default()
                },
            );
        }
        o
    }

    fn role_change(name: &str, action: Action) -> Change {
        Change {
            address: Address::role(name),
            action,
            reason: None,
            before: None,
            after: None,
            work: Vec::new(),
            revokes: Vec::new(),
            depends_on: Vec::new(),
        }
    }

    #[test]
    fn a_role_edit_reaches_every_account_holding_it() {
        let live: LiveOrganization = org(
            &[("wh", &["warehouse:read"])],
            &[("a", &[("t", "wh")]), ("b", &[("u", "wh")]), ("c", &[])],
        );
        let desired = org(
            &[("wh", &["warehouse:*"])],
            &[("a", &[("t", "wh")]), ("b", &[("u", "wh")]), ("c", &[])],
        );
        let e = compute(&desired, &live, &[role_change("wh", Action::Update)]);
        assert_eq!(e.reach_of("wh"), Some(&["a".to_string(), "b".into()][..]));
        let a = e.of_account("a").unwrap();
        assert_eq!(a.gained, ["warehouse:*"]);
        // `warehouse:read` is still covered by `warehouse:*`: nothing is lost.
        assert!(a.lost.is_empty());
        assert!(a.widening());
        assert!(e.of_account("c").is_none());
    }

    #[test]
    fn a_changed_role_reaches_accounts_that_did_not_change_and_no_other() {
        let live: LiveOrganization = org(
            &[("wh", &["warehouse:read"]), ("ops", &["ops:read"])],
            &[("a", &[("t", "wh")]), ("b", &[("t", "ops")]), ("c", &[])],
        );
        // `wh` is removed: `a` holds it still, and loses what it granted.
        let mut desired = live.as_desired();
        desired.roles.remove("wh");
        let e = compute(&desired, &live, &[role_change("wh", Action::Delete)]);
        assert_eq!(e.of_account("a").unwrap().lost, ["warehouse:read"]);
        assert!(e.of_account("b").is_none() && e.of_account("c").is_none());
        assert_eq!(e.accounts.len(), 1);

        // A role nobody holds changes nobody's access; a new membership does.
        let mut desired = live.as_desired();
        desired.roles.get_mut("ops").unwrap().permissions.clear();
        desired.service_accounts.get_mut("b").unwrap().teams.clear();
        desired
            .service_accounts
            .get_mut("c")
            .unwrap()
            .teams
            .insert("t".into(), "wh".into());
        let e = compute(&desired, &live, &[]);
        assert_eq!(e.of_account("c").unwrap().gained, ["warehouse:read"]);
        assert_eq!(e.of_account("b").unwrap().lost, ["ops:read"]);
        assert!(e.of_account("a").is_none());
    }

    #[test]
    fn admin_disable_and_scopes_change_access() {
        let live: LiveOrganization =
            org(&[], &[("a", &[("t", "viewer")]), ("b", &[("t", "member")])]);
        let mut desired = live.as_desired();
        desired.service_accounts.get_mut("a").unwrap().admin = true;
        desired.service_accounts.get_mut("b").unwrap().disabled = true;
        let e = compute(&desired, &live, &[]);
        assert_eq!(e.of_account("a").unwrap().gained, ["*:*"]);
        assert!(e.of_account("a").unwrap().lost.is_empty());
        let b = e.of_account("b").unwrap();
        assert!(b.gained.is_empty() && !b.widening());
        assert_eq!(b.lost, ["*:execute", "*:read", "*:write"]);

        let mut live: LiveOrganization = org(&[], &[("k", &[("t", "member")])]);
        let scoped = LiveKey {
            settings: crate::model::ApiKey {
                scopes: BTreeSet::from(["flows:read".to_string()]),
                ..Default::default()
            },
            issued: IssuedKey {
                id: "k1".into(),
                created_at: time::OffsetDateTime::UNIX_EPOCH,
                expires_at: None,
                last_used_at: None,
            },
        };
        live.service_accounts.get_mut("k").unwrap().keys =
            crate::model::SmallMap::from_iter([("ci".to_string(), scoped)]);
        let mut desired = live.as_desired();
        desired
            .service_accounts
            .get_mut("k")
            .unwrap()
            .keys
            .get_mut("ci")
            .unwrap()
            .scopes = BTreeSet::from(["flows:*".to_string()]);
        let e = compute(&desired, &live, &[]);
        let k = &e.of_account("k").unwrap().keys[0];
        assert_eq!(
            (k.key.as_str(), k.gained.clone()),
            (
                "ci",
                vec!["flows:execute".to_string(), "flows:write".into()]
            )
        );
        assert!(e.of_account("k").unwrap().widening());
    }
}

//! `--target` and `--exclude`: planning a slice of the organization. The diff itself knows
//! nothing of slices: the desired organization is narrowed first (an object outside the slice
//! is wanted as it is live, so the diff leaves it alone), objects a targeted one needs and
//! that do not exist yet are pulled in, and what the diff still finds outside the slice
//! (rotations and retirements that are due by time) is dropped afterwards.

use std::collections::{BTreeMap, BTreeSet};

use super::Plan;
use crate::address::Address;
use crate::model::{LiveAccount, LiveOrganization, Organization, ServiceAccount, SmallMap};

/// The addresses a plan is limited to: prefixes, as `service_account.ci-bot` (which covers
/// the account's keys) or `key.ci-bot.prod`.
#[derive(Debug, Clone, Default)]
pub struct Slice {
    pub targets: Vec<String>,
    pub excludes: Vec<String>,
}

/// Why a slice cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum SliceError {
    #[error(
        "`{flag} {prefix}` is not an address prefix: expected role.NAME, team.NAME, service_account.NAME or key.ACCOUNT.KEY (or the start of one)"
    )]
    BadPrefix { flag: &'static str, prefix: String },
    #[error("`{flag} {prefix}` matches nothing in the config or the organization")]
    MatchesNothing { flag: &'static str, prefix: String },
    #[error(
        "{needs} needs {dependency}, which does not exist yet and which --exclude leaves out; target it too or drop the --exclude"
    )]
    ExcludedDependency { needs: Address, dependency: Address },
}

impl Slice {
    /// Whether the slice is the whole organization.
    pub fn is_whole(&self) -> bool {
        self.targets.is_empty() && self.excludes.is_empty()
    }

    /// Whether an address is in the slice.
    pub fn selects(&self, a: &Address) -> bool {
        (self.targets.is_empty() || self.targets.iter().any(|t| a.starts_with(t)))
            && !self.excludes.iter().any(|e| a.starts_with(e))
    }

    /// How the flags read, for the partial-plan warning.
    pub fn describe(&self) -> String {
        self.targets
            .iter()
            .map(|t| format!("--target {t}"))
            .chain(self.excludes.iter().map(|e| format!("--exclude {e}")))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Checks every prefix names a kind of object and matches one in `desired` or `live`:
    /// a typo in `--exclude` must not quietly leave the object in.
    fn check(&self, desired: &Organization, live: &LiveOrganization) -> Result<(), SliceError> {
        let all: Vec<Address> = addresses(desired)
            .into_iter()
            .chain(addresses(live))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let kinds = ["role.", "team.", "service_account.", "key."];
        for (flag, list) in [("--target", &self.targets), ("--exclude", &self.excludes)] {
            for prefix in list {
                if !kinds
                    .iter()
                    .any(|k| prefix.starts_with(k) && prefix.len() > k.len())
                    || prefix.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(SliceError::BadPrefix {
                        flag,
                        prefix: crate::escape::terminal(prefix).into_owned(),
                    });
                }
                if !all.iter().any(|a| a.starts_with(prefix)) {
                    return Err(SliceError::MatchesNothing {
                        flag,
                        prefix: prefix.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The desired organization narrowed to the slice, and the objects outside it pulled in
    /// because a targeted object needs them and they do not exist yet.
    pub fn narrow(
        &self,
        desired: &Organization,
        live: &LiveOrganization,
    ) -> Result<(Organization, BTreeSet<Address>), SliceError> {
        self.check(desired, live)?;
        let mut pulled = BTreeSet::new();
        let mut out = Organization {
            name: desired.name.clone(),
            revision: desired.revision,
            retiring_keys: desired.retiring_keys.clone(),
            ..Default::default()
        };
        fn pick<T: Clone>(
            sel: bool,
            want: &BTreeMap<String, T>,
            have: &BTreeMap<String, T>,
            name: &str,
        ) -> Option<T> {
            if sel { want.get(name) } else { have.get(name) }.cloned()
        }
        for name in union(&desired.roles, &live.roles) {
            let sel = self.selects(&Address::role(name));
            if let Some(r) = pick(sel, &desired.roles, &live.roles, name) {
                out.roles.insert(name.clone(), r);
            }
        }
        for name in union(&desired.teams, &live.teams) {
            let sel = self.selects(&Address::team(name));
            if let Some(t) = pick(sel, &desired.teams, &live.teams, name) {
                out.teams.insert(name.clone(), t);
            }
        }
        for name in union(&desired.service_accounts, &live.service_accounts) {
            let (want, have) = (
                desired.service_accounts.get(name),
                live.service_accounts.get(name),
            );
            if let Some(account) = self.account(name, want, have, &mut pulled) {
                out.service_accounts.insert(name.clone(), account);
            }
        }
        self.pull_dependencies(desired, &mut out, &mut pulled)?;
        Ok((out, pulled))
    }

    /// One account of the narrowed organization: as desired where the slice selects it, as
    /// live elsewhere (and so each of its keys), or `None` where it is wanted nowhere.
    fn account(
        &self,
        name: &str,
        want: Option<&ServiceAccount>,
        have: Option<&LiveAccount>,
        pulled: &mut BTreeSet<Address>,
    ) -> Option<ServiceAccount> {
        let address = Address::account(name);
        let (no_want, no_have) = (SmallMap::new(), SmallMap::new());
        let (want_keys, have_keys) = (
            want.map_or(&no_want, |a| &a.keys),
            have.map_or(&no_have, |a| &a.keys),
        );
        let mut keys = SmallMap::new();
        let names: BTreeSet<&String> = want_keys.keys().chain(have_keys.keys()).collect();
        for key in names {
            let k = if self.selects(&Address::key(name, key)) {
                want_keys.get(key).cloned()
            } else {
                have_keys.get(key).map(|k| k.settings.clone())
            };
            if let Some(k) = k {
                keys.insert(key.clone(), k);
            }
        }
        match (self.selects(&address), want, have) {
            (true, w, _) => w.map(|w| w.with_keys(keys)),
            (false, _, Some(h)) => Some(h.with_keys(keys)),
            // A targeted key of an account that does not exist yet needs the account.
            (false, Some(w), None) if !keys.is_empty() && !self.excludes_all(&address) => {
                pulled.insert(address);
                Some(w.with_keys(keys))
            }
            (false, _, None) => None,
        }
    }

    /// Pulls in the teams and roles a targeted account joins and that do not exist yet.
    fn pull_dependencies(
        &self,
        desired: &Organization,
        out: &mut Organization,
        pulled: &mut BTreeSet<Address>,
    ) -> Result<(), SliceError> {
        let mut needed = Vec::new();
        for (name, account) in &out.service_accounts {
            for (team, role) in &account.teams {
                if !out.teams.contains_key(team) {
                    needed.push((Address::account(name), Address::team(team)));
                }
                if !out.roles.contains_key(role) {
                    needed.push((Address::account(name), Address::role(role)));
                }
            }
        }
        for (needs, dependency) in needed {
            let found = match &dependency {
                Address::Team(t) => desired.teams.get(t).map(|x| {
                    out.teams.insert(t.clone(), x.clone());
                }),
                Address::Role(r) => desired.roles.get(r).map(|x| {
                    out.roles.insert(r.clone(), x.clone());
                }),
                _ => None,
            };
            if found.is_some() {
                if self.excludes.iter().any(|e| dependency.starts_with(e)) {
                    return Err(SliceError::ExcludedDependency { needs, dependency });
                }
                pulled.insert(dependency);
            }
        }
        Ok(())
    }

    fn excludes_all(&self, a: &Address) -> bool {
        self.excludes.iter().any(|e| a.starts_with(e))
    }

    /// Drops what the diff found outside the slice, keeps what was pulled in, and says the
    /// plan is partial.
    pub fn limit(&self, plan: &mut Plan, pulled: &BTreeSet<Address>) {
        let keep: Vec<bool> = plan
            .changes
            .iter()
            .map(|c| self.selects(&c.address) || pulled.contains(&c.address))
            .collect();
        let mut new_index = vec![None; keep.len()];
        let mut n = 0;
        for (i, k) in keep.iter().enumerate() {
            if *k {
                new_index[i] = Some(n);
                n += 1;
            }
        }
        let changes = std::mem::take(&mut plan.changes);
        plan.changes = changes
            .into_iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(mut c, _)| {
                c.depends_on = c.depends_on.iter().filter_map(|d| new_index[*d]).collect();
                c
            })
            .collect();
        plan.unmanaged.retain(|a| self.selects(a));
        let mut note = format!(
            "this plan is partial ({}): changes outside the slice are not shown and will not be applied",
            self.describe()
        );
        if !pulled.is_empty() {
            note.push_str(&format!(
                "; pulled in because targeted objects need them: {}",
                pulled
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        plan.notes.push(crate::escape::terminal(&note).into_owned());
    }
}

fn union<'a, T, U>(a: &'a BTreeMap<String, T>, b: &'a BTreeMap<String, U>) -> BTreeSet<&'a String> {
    a.keys().chain(b.keys()).collect()
}

/// Every address of an organization's objects.
fn addresses<K>(org: &Organization<K>) -> Vec<Address> {
    let mut out: Vec<Address> = org.roles.keys().map(|r| Address::role(r)).collect();
    out.extend(org.teams.keys().map(|t| Address::team(t)));
    for (name, a) in &org.service_accounts {
        out.push(Address::account(name));
        out.extend(a.keys.keys().map(|k| Address::key(name, k)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Role, Team};

    fn slice(targets: &[&str], excludes: &[&str]) -> Slice {
        Slice {
            targets: targets.iter().map(|s| s.to_string()).collect(),
            excludes: excludes.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Live: nothing but the built-ins. Desired: bot in team t with role r, and other.
    fn orgs() -> (Organization, LiveOrganization) {
        let live = LiveOrganization::new("acme");
        let mut desired = live.as_desired();
        desired.roles.insert("r".into(), Role::default());
        desired.teams.insert("t".into(), Team::default());
        for name in ["bot", "other"] {
            desired.service_accounts.insert(
                name.into(),
                ServiceAccount {
                    teams: SmallMap::from_iter([("t".to_string(), "r".to_string())]),
                    ..Default::default()
                },
            );
        }
        (desired, live)
    }

    #[test]
    fn a_targeted_account_pulls_in_what_it_joins_and_nothing_else() {
        let (desired, live) = orgs();
        let (out, pulled) = slice(&["service_account.bot"], &[])
            .narrow(&desired, &live)
            .unwrap();
        assert!(out.service_accounts.contains_key("bot"));
        assert!(!out.service_accounts.contains_key("other"));
        assert_eq!(
            pulled,
            BTreeSet::from([Address::role("r"), Address::team("t")])
        );
    }

    #[test]
    fn bad_prefixes_and_excluded_needs_are_refused() {
        let (desired, live) = orgs();
        let err = |s: Slice| s.narrow(&desired, &live).unwrap_err().to_string();
        assert!(err(slice(&["bot"], &[])).contains("not an address prefix"));
        assert!(err(slice(&["team."], &[])).contains("not an address prefix"));
        assert!(err(slice(&[], &["team.nope"])).contains("matches nothing"));
        assert_eq!(
            err(slice(&["service_account.bot"], &["team.t"])),
            "service_account.bot needs team.t, which does not exist yet and which --exclude leaves out; target it too or drop the --exclude"
        );
    }
}

//! The diff: desired against live, object by object, without a state file. Ownership comes
//! from the `managed` mark on live objects; protection from their `protect` flag.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;
use time::OffsetDateTime;

use super::json::{account_json, key_json, live_key_json, role_json, team_json};
use super::{Action, Change, Plan, PlanError, Work};
use crate::config::{Policy, UnmanagedPolicy};
use crate::duration::Duration;
use crate::model::{ApiKey, Organization, RetiringKey, ServiceAccount};
use crate::secrets::{key_file_path, pending_key_file_path};

/// What the diff needs besides the two organizations.
pub struct PlanOptions<'a> {
    pub policy: Policy,
    pub now: OffsetDateTime,
    /// Where key files live; a live key without one is re-issued.
    pub secrets_dir: &'a Path,
    pub allow_mass_delete: bool,
}

struct Builder {
    changes: Vec<Change>,
    index: HashMap<String, usize>,
    unmanaged: Vec<String>,
    notes: Vec<String>,
    /// Whether live objects svcacct did not create are deleted too.
    delete_unmanaged: bool,
    /// Protected objects the plan would delete: an error.
    protected: Vec<String>,
    /// Objects the plan deletes, for the mass-delete check.
    deletes: usize,
}

impl Builder {
    fn push(&mut self, change: Change) -> usize {
        let i = self.changes.len();
        self.index.entry(change.address.clone()).or_insert(i);
        self.changes.push(change);
        i
    }
    fn dep(&self, address: &str) -> Option<usize> {
        self.index.get(address).copied()
    }

    /// Plans a create, or an update when the live object differs from the wanted one.
    fn put<T: PartialEq>(
        &mut self,
        address: String,
        want: &T,
        have: Option<&T>,
        json: fn(&T) -> Value,
        work: Work,
    ) {
        let (action, before) = match have {
            None => (Action::Create, None),
            Some(h) if h != want => (Action::Update, Some(json(h))),
            Some(_) => return,
        };
        self.push(change(
            address,
            action,
            before,
            Some(json(want)),
            vec![work],
        ));
    }

    /// Plans the deletion of a live object the config no longer has and returns its index;
    /// an object svcacct did not create is only listed, unless the policy says otherwise.
    fn remove(
        &mut self,
        address: String,
        managed: bool,
        protect: bool,
        before: Value,
        work: Work,
    ) -> Option<usize> {
        if !(managed || self.delete_unmanaged) {
            self.unmanaged.push(address);
            return None;
        }
        if protect {
            self.protected.push(address.clone());
        }
        self.deletes += 1;
        Some(self.push(change(
            address,
            Action::Delete,
            Some(before),
            None,
            vec![work],
        )))
    }
}

fn change(
    address: String,
    action: Action,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    work: Vec<Work>,
) -> Change {
    Change {
        address,
        action,
        reason: None,
        before,
        after,
        work,
        revokes: Vec::new(),
        depends_on: Vec::new(),
    }
}

/// Revokes every live secret of a key at once: its current one and the rotated-out ones
/// still inside their overlap, so removing a key (the answer to a leak) leaves none working.
fn revoke_all(change: &mut Change, account: &str, key: &str, ids: Vec<String>) {
    let n = ids.len();
    change.reason = Some(format!(
        "revokes {n} secret{}: key id{} {}",
        if n == 1 { "" } else { "s" },
        if n == 1 { "" } else { "s" },
        ids.join(", ")
    ));
    change.work = ids
        .iter()
        .map(|id| Work::RevokeKey {
            account: account.to_string(),
            name: key.to_string(),
            id: id.clone(),
        })
        .collect();
    change.revokes = ids;
}

/// Computes the plan that turns `live` into `desired`.
pub fn diff(
    desired: &Organization,
    live: &Organization,
    opts: &PlanOptions<'_>,
) -> Result<Plan, PlanError> {
    let delete_unmanaged = opts.policy.unmanaged == UnmanagedPolicy::Delete;
    let mut b = Builder {
        changes: Vec::new(),
        index: HashMap::new(),
        unmanaged: Vec::new(),
        notes: Vec::new(),
        delete_unmanaged,
        protected: Vec::new(),
        deletes: 0,
    };

    // Roles and teams first: accounts depend on them.
    for (name, want) in desired.roles.iter().filter(|(_, r)| !r.builtin) {
        let work = Work::PutRole(name.clone(), want.clone());
        b.put(
            format!("role.{name}"),
            want,
            live.roles.get(name),
            role_json,
            work,
        );
    }
    for (name, want) in &desired.teams {
        let work = Work::PutTeam(name.clone(), want.clone());
        b.put(
            format!("team.{name}"),
            want,
            live.teams.get(name),
            team_json,
            work,
        );
    }

    // Live rotated-out keys by account and name, in id order.
    let mut retiring: BTreeMap<(&str, &str), Vec<&RetiringKey>> = BTreeMap::new();
    for r in &live.retiring_keys {
        retiring
            .entry((r.service_account.as_str(), r.key.as_str()))
            .or_default()
            .push(r);
    }

    let secrets_dir_exists = opts.secrets_dir.is_dir();
    let mut skipped_file_check = false;

    for (name, want) in &desired.service_accounts {
        let address = format!("service_account.{name}");
        let have = live.service_accounts.get(name);
        let mut work = Vec::new();
        if have.is_none_or(|h| !h.same_settings(want)) {
            work.push(Work::PutServiceAccount(name.clone(), want.clone()));
        }
        let live_teams = have.map(|h| &h.teams);
        if live_teams.map_or(!want.teams.is_empty(), |t| *t != want.teams) {
            work.push(Work::SetMemberships(name.clone(), want.teams.clone()));
        }
        let account_change = if work.is_empty() {
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
                have.map(account_json),
                Some(account_json(want)),
                work,
            );
            c.depends_on = want
                .teams
                .iter()
                .flat_map(|(t, r)| [b.dep(&format!("team.{t}")), b.dep(&format!("role.{r}"))])
                .flatten()
                .collect();
            Some(b.push(c))
        };

        let empty = BTreeMap::new();
        let live_keys = have.map_or(&empty, |h| &h.keys);
        for (key, want_key) in &want.keys {
            let address = format!("key.{name}.{key}");
            let issue = |replaces| Work::IssueKey {
                account: name.clone(),
                name: key.clone(),
                settings: want_key.clone(),
                replaces,
            };
            let mut c = match live_keys.get(key) {
                None => change(
                    address,
                    Action::Create,
                    None,
                    Some(key_json(want_key)),
                    vec![issue(None)],
                ),
                Some(have_key) => {
                    let issued = have_key.issued.as_ref().expect("live keys are issued");
                    let overlap = want_key.overlap.unwrap_or(Duration(0));
                    let replaces = Some((issued.id.clone(), overlap));
                    let file_missing = if !secrets_dir_exists {
                        skipped_file_check = true;
                        false
                    } else {
                        // A pending file of the live key is as good: apply promotes it.
                        !key_file_path(opts.secrets_dir, name, key).exists()
                            && !pending_key_file_path(opts.secrets_dir, name, key, &issued.id)
                                .exists()
                    };
                    let rotation = rotation_reason(have_key, want_key, opts.now);
                    if file_missing {
                        let mut c = change(
                            address,
                            Action::Replace,
                            Some(live_key_json(have_key)),
                            Some(key_json(want_key)),
                            vec![issue(replaces)],
                        );
                        c.reason = Some("its secret file is missing".into());
                        c
                    } else if let Some(reason) = rotation {
                        let mut c = change(
                            address,
                            Action::Rotate,
                            Some(live_key_json(have_key)),
                            Some(key_json(want_key)),
                            vec![issue(replaces)],
                        );
                        c.reason = Some(if overlap.seconds() > 0 {
                            format!("{reason}; the old key keeps working for {overlap}")
                        } else {
                            reason
                        });
                        c
                    } else if !have_key.same_settings(want_key) {
                        change(
                            address,
                            Action::Update,
                            Some(live_key_json(have_key)),
                            Some(key_json(want_key)),
                            vec![Work::UpdateKey {
                                account: name.clone(),
                                name: key.clone(),
                                settings: want_key.clone(),
                            }],
                        )
                    } else {
                        continue;
                    }
                }
            };
            c.depends_on.extend(account_change);
            b.push(c);
        }
        for (key, have_key) in live_keys
            .iter()
            .filter(|(k, _)| !want.keys.contains_key(*k))
        {
            let address = format!("key.{name}.{key}");
            if have_key.managed || delete_unmanaged {
                let id = have_key
                    .issued
                    .as_ref()
                    .expect("live keys are issued")
                    .id
                    .clone();
                let mut ids = vec![id];
                ids.extend(
                    retiring
                        .get(&(name.as_str(), key.as_str()))
                        .into_iter()
                        .flatten()
                        .map(|r| r.id.clone()),
                );
                let mut c = change(
                    address,
                    Action::Delete,
                    Some(live_key_json(have_key)),
                    None,
                    Vec::new(),
                );
                revoke_all(&mut c, name, key, ids);
                c.depends_on.extend(account_change);
                b.push(c);
            } else {
                b.unmanaged.push(address);
            }
        }
    }
    if skipped_file_check {
        b.notes.push(format!(
            "the secrets directory {} does not exist here, so key files were not checked",
            opts.secrets_dir.display()
        ));
    }

    for ((account, key), keys) in &retiring {
        // An account the config removed is deleted below, which revokes all its keys.
        let Some(want) = desired.service_accounts.get(*account) else {
            continue;
        };
        let address = format!("key.{account}.{key}");
        if !want.keys.contains_key(*key) {
            match live
                .service_accounts
                .get(*account)
                .and_then(|a| a.keys.get(*key))
            {
                // Its deletion above revokes these too.
                Some(current) if current.managed || delete_unmanaged => continue,
                // An unmanaged key that stays: only its ended overlaps are retired, below.
                Some(_) => {}
                None => {
                    // The key is gone from the config and its current secret already revoked,
                    // say by an apply cut short: the predecessors must not outlive it.
                    let ids: Vec<String> = keys
                        .iter()
                        .filter(|r| r.managed || delete_unmanaged)
                        .map(|r| r.id.clone())
                        .collect();
                    if ids.is_empty() {
                        b.unmanaged.push(address);
                        continue;
                    }
                    let mut c = change(
                        address,
                        Action::Delete,
                        Some(serde_json::json!({ "key_ids": ids })),
                        None,
                        Vec::new(),
                    );
                    revoke_all(&mut c, account, key, ids);
                    b.push(c);
                    continue;
                }
            }
        }
        // Rotated-out keys whose overlap has ended.
        for r in keys.iter().filter(|r| r.retires_at <= opts.now) {
            let mut c = change(
                address.clone(),
                Action::Retire,
                Some(
                    serde_json::json!({ "key_id": r.id, "retires_at": crate::clock::rfc3339(r.retires_at) }),
                ),
                None,
                vec![Work::RevokeKey {
                    account: r.service_account.clone(),
                    name: r.key.clone(),
                    id: r.id.clone(),
                }],
            );
            c.reason = Some("rotated out and its overlap has ended".into());
            c.revokes = vec![r.id.clone()];
            b.push(c);
        }
    }

    // Deletions last, with what depends on them.
    for (name, have) in live
        .service_accounts
        .iter()
        .filter(|(n, _)| !desired.service_accounts.contains_key(*n))
    {
        let work = Work::DeleteServiceAccount(name.clone());
        let address = format!("service_account.{name}");
        if let Some(i) = b.remove(
            address,
            have.managed,
            have.protect,
            account_json(have),
            work,
        ) {
            // Deleting an account revokes its keys: they count towards the mass-delete share.
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
                .filter_map(|k| k.issued.as_ref().map(|i| i.id.clone()))
                .chain(retired.into_iter().map(str::to_string))
                .collect();
        }
    }
    for (name, have) in live
        .teams
        .iter()
        .filter(|(n, _)| !desired.teams.contains_key(*n))
    {
        let work = Work::DeleteTeam(name.clone());
        if let Some(i) = b.remove(
            format!("team.{name}"),
            have.managed,
            have.protect,
            team_json(have),
            work,
        ) {
            b.changes[i].depends_on = users_of(live, &b, |a| a.teams.contains_key(name));
        }
    }
    for (name, have) in live
        .roles
        .iter()
        .filter(|(n, r)| !r.builtin && !desired.roles.contains_key(*n))
    {
        let work = Work::DeleteRole(name.clone());
        if let Some(i) = b.remove(
            format!("role.{name}"),
            have.managed,
            have.protect,
            role_json(have),
            work,
        ) {
            b.changes[i].depends_on = users_of(live, &b, |a| a.teams.values().any(|r| r == name));
        }
    }
    let (protected, mut deletes) = (std::mem::take(&mut b.protected), b.deletes);
    if !protected.is_empty() {
        return Err(PlanError::Protected(protected));
    }
    deletes += b
        .changes
        .iter()
        .filter(|c| c.action == Action::Delete && c.address.starts_with("key."))
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

    // Within a stage the apply runs changes in this order; keep it stable and readable.
    Ok(Plan {
        organization: desired.name.clone(),
        revision: live.revision,
        changes: b.changes,
        unmanaged: b.unmanaged,
        notes: b.notes,
    })
}

/// Changes of accounts that currently use a team or role: they must run before its deletion.
fn users_of(
    live: &Organization,
    b: &Builder,
    uses: impl Fn(&ServiceAccount) -> bool,
) -> Vec<usize> {
    live.service_accounts
        .iter()
        .filter(|(_, a)| uses(a))
        .filter_map(|(n, _)| b.dep(&format!("service_account.{n}")))
        .collect()
}

/// Why a live key is due for rotation, if it is.
fn rotation_reason(have: &ApiKey, want: &ApiKey, now: OffsetDateTime) -> Option<String> {
    let issued = have.issued.as_ref()?;
    if issued.expires_at.is_some_and(|e| e <= now) {
        return Some("it has expired".into());
    }
    let every = want.rotate_every?;
    let age = now - issued.created_at;
    (age >= every.to_time()).then(|| format!("it is older than rotate_every {every}"))
}

/// Managed objects of an organization, the base of the mass-delete share.
fn managed_count(live: &Organization) -> usize {
    live.roles.values().filter(|r| r.managed).count()
        + live.teams.values().filter(|t| t.managed).count()
        + live
            .service_accounts
            .values()
            .map(|a| usize::from(a.managed) + a.keys.values().filter(|k| k.managed).count())
            .sum::<usize>()
}

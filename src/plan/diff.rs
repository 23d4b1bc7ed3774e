//! The diff: desired against live, object by object, without a state file. Ownership comes
//! from the `managed` mark on live objects; protection from their `protect` flag.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use time::OffsetDateTime;

use super::json::{account_json, key_json, live_key_json, role_json, team_json};
use super::{Action, Change, Held, KeyFiles, Plan, PlanError};
use crate::address::Address;
use crate::duration::Duration;
use crate::model::{
    ApiKey, LiveAccount, LiveKey, LiveOrganization, Organization, Policy, RetiringKey,
    ServiceAccount, UnmanagedPolicy,
};
use crate::operation::{KeyIssue, Operation, Rotation};

/// What the diff needs besides the two organizations.
pub struct PlanOptions<'a> {
    pub policy: Policy,
    pub now: OffsetDateTime,
    /// The key files: a live key whose file svcacct held and lost is re-issued; one whose
    /// secret svcacct never held is listed and left working.
    pub key_files: &'a dyn KeyFiles,
    pub allow_mass_delete: bool,
}

struct Builder {
    changes: Vec<Change>,
    index: HashMap<Address, usize>,
    unmanaged: Vec<Address>,
    not_held: Vec<Address>,
    notes: Vec<String>,
    /// Whether live objects svcacct did not create are deleted too.
    delete_unmanaged: bool,
    /// Protected objects the plan would delete: an error.
    protected: Vec<Address>,
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
    fn dep(&self, address: &Address) -> Option<usize> {
        self.index.get(address).copied()
    }

    /// Plans a create, or an update when the live object differs from the wanted one.
    fn put<T: PartialEq>(
        &mut self,
        address: Address,
        want: &T,
        have: Option<&T>,
        json: fn(&T) -> Value,
        work: Operation,
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
        address: Address,
        managed: bool,
        protect: bool,
        before: Value,
        work: Operation,
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
    address: Address,
    action: Action,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    work: Vec<Operation>,
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
        .map(|id| Operation::RevokeKey {
            account: account.to_string(),
            name: key.to_string(),
            id: id.clone(),
        })
        .collect();
    change.revokes = ids;
}

/// Key ids of rotated-out keys still live, by account and key name, in id order.
type Retiring<'a> = BTreeMap<(&'a str, &'a str), Vec<&'a RetiringKey>>;

/// What the key files showed while the keys were planned, for the plan's notes.
#[derive(Default)]
struct FileCheck {
    /// Whether the key files could not be checked here at all.
    skipped: bool,
    /// Live keys whose file is encrypted to an older recipient set.
    stale: Vec<Address>,
}

/// Computes the plan that turns `live` into `desired`.
pub fn diff(
    desired: &Organization,
    live: &LiveOrganization,
    opts: &PlanOptions<'_>,
) -> Result<Plan, PlanError> {
    let mut b = Builder {
        changes: Vec::new(),
        index: HashMap::new(),
        unmanaged: Vec::new(),
        not_held: Vec::new(),
        notes: Vec::new(),
        delete_unmanaged: opts.policy.unmanaged == UnmanagedPolicy::Delete,
        protected: Vec::new(),
        deletes: 0,
    };
    roles_and_teams(&mut b, desired, live);
    // Live rotated-out keys by account and name, in id order.
    let mut retiring: BTreeMap<(&str, &str), Vec<&RetiringKey>> = BTreeMap::new();
    for r in &live.retiring_keys {
        retiring
            .entry((r.service_account.as_str(), r.key.as_str()))
            .or_default()
            .push(r);
    }

    let mut files = FileCheck::default();
    for (name, want) in &desired.service_accounts {
        let have = live.service_accounts.get(name);
        let account_change = account(&mut b, name, want, have);
        keys(
            &mut b,
            &mut files,
            opts,
            name,
            want,
            have,
            account_change,
            &retiring,
        );
    }
    file_notes(&mut b, files, live, opts);
    retiring_keys(&mut b, desired, live, &retiring, opts.now);
    deletions(&mut b, desired, live);
    check_safety(&mut b, live, opts)?;
    // Within a stage the apply runs changes in this order; keep it stable and readable.
    Ok(Plan {
        organization: desired.name.clone(),
        revision: live.revision,
        changes: b.changes,
        unmanaged: b.unmanaged,
        secrets_not_held: b.not_held,
        notes: b.notes,
        effects: Default::default(),
        last_changed: Default::default(),
        key_uses: Default::default(),
        policy: Vec::new(),
    })
}

/// Roles and teams first: accounts depend on them.
fn roles_and_teams(b: &mut Builder, desired: &Organization, live: &LiveOrganization) {
    for (name, want) in desired.roles.iter().filter(|(_, r)| !r.builtin) {
        let work = Operation::PutRole {
            name: name.clone(),
            role: want.clone(),
        };
        b.put(
            Address::role(name),
            want,
            live.roles.get(name),
            role_json,
            work,
        );
    }
    for (name, want) in &desired.teams {
        let work = Operation::PutTeam {
            name: name.clone(),
            team: want.clone(),
        };
        b.put(
            Address::team(name),
            want,
            live.teams.get(name),
            team_json,
            work,
        );
    }
}

/// An account's own settings and memberships; returns the change's index, if any, which its
/// keys' changes depend on.
fn account(
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
            have.map(account_json),
            Some(account_json(want)),
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

/// An account's keys: issue, replace, rotate, update, and the removed ones revoked.
#[allow(clippy::too_many_arguments)]
fn keys(
    b: &mut Builder,
    files: &mut FileCheck,
    opts: &PlanOptions<'_>,
    name: &str,
    want: &ServiceAccount,
    have: Option<&LiveAccount>,
    account_change: Option<usize>,
    retiring: &Retiring<'_>,
) {
    let empty = BTreeMap::new();
    let live_keys = have.map_or(&empty, |h| &h.keys);
    for (key, want_key) in &want.keys {
        let address = Address::key(name, key);
        let issue = |replaces| Operation::IssueKey {
            account: name.to_string(),
            name: key.clone(),
            key: KeyIssue {
                settings: want_key.clone(),
                replaces,
            },
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
                let Some(c) = live_key(
                    b,
                    files,
                    opts,
                    address,
                    (name, key),
                    (want_key, have_key),
                    &issue,
                ) else {
                    continue;
                };
                c
            }
        };
        c.depends_on.extend(account_change);
        b.push(c);
    }
    let delete_unmanaged = b.delete_unmanaged;
    for (key, have_key) in live_keys
        .iter()
        .filter(|(k, _)| !want.keys.contains_key(*k))
    {
        let address = Address::key(name, key);
        if have_key.settings.managed || delete_unmanaged {
            let mut ids = vec![have_key.issued.id.clone()];
            ids.extend(
                retiring
                    .get(&(name, key.as_str()))
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

/// The change a declared key that is live needs, if any: replaced when its secret was lost,
/// rotated when due, updated when its settings moved.
#[allow(clippy::too_many_arguments)]
fn live_key(
    b: &mut Builder,
    files: &mut FileCheck,
    opts: &PlanOptions<'_>,
    address: Address,
    (name, key): (&str, &str),
    (want_key, have_key): (&ApiKey, &LiveKey),
    issue: &dyn Fn(Option<Rotation>) -> Operation,
) -> Option<Change> {
    let overlap = want_key.overlap.unwrap_or(Duration(0));
    let replaces = Some(Rotation {
        id: have_key.issued.id.clone(),
        overlap,
    });
    let (held, lost) = check_file(files, opts, &address, (name, key), &have_key.issued.id);
    let rotation = rotation_reason(have_key, want_key, opts.now);
    if rotation.is_none() && held == Held::NotHeld {
        b.not_held.push(address.clone());
    }
    if let Some(reason) = lost {
        let mut c = change(
            address,
            Action::Replace,
            Some(live_key_json(have_key)),
            Some(key_json(want_key)),
            vec![issue(replaces)],
        );
        c.reason = Some(format!("{reason}; {}", old_key_works(overlap)));
        Some(c)
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
        Some(c)
    } else if have_key.settings != *want_key {
        Some(change(
            address,
            Action::Update,
            Some(live_key_json(have_key)),
            Some(key_json(want_key)),
            vec![Operation::UpdateKey {
                account: name.to_string(),
                name: key.to_string(),
                key: want_key.clone(),
            }],
        ))
    } else {
        None
    }
}

/// What the key files hold for a live key, and why the secret svcacct held for it is not the
/// live one, if so.
fn check_file(
    files: &mut FileCheck,
    opts: &PlanOptions<'_>,
    address: &Address,
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
            files.stale.push(address.clone());
            None
        }
        _ => None,
    };
    (held, lost)
}

/// Notes on the key files: stale recipients, orphans, and files that could not be checked.
fn file_notes(b: &mut Builder, files: FileCheck, live: &LiveOrganization, opts: &PlanOptions<'_>) {
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
            .files()
            .into_iter()
            .filter(|(a, k)| {
                live.service_accounts
                    .get(a)
                    .is_none_or(|acct| !acct.keys.contains_key(k))
            })
            .map(|(a, k)| opts.key_files.describe_file(&a, &k))
            .collect();
        if !orphans.is_empty() {
            b.notes.push(format!(
                "{} key file{} of keys that no longer exist: {}",
                orphans.len(),
                if orphans.len() == 1 { "" } else { "s" },
                list(&orphans),
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

/// Rotated-out keys: those of a removed key are revoked with it; those whose overlap ended
/// are retired.
fn retiring_keys(
    b: &mut Builder,
    desired: &Organization,
    live: &LiveOrganization,
    retiring: &Retiring<'_>,
    now: OffsetDateTime,
) {
    let delete_unmanaged = b.delete_unmanaged;
    for ((account, key), keys) in retiring {
        // An account the config removed is deleted below, which revokes all its keys.
        let Some(want) = desired.service_accounts.get(*account) else {
            continue;
        };
        let address = Address::key(account, key);
        if !want.keys.contains_key(*key) {
            match live
                .service_accounts
                .get(*account)
                .and_then(|a| a.keys.get(*key))
            {
                // Its deletion above revokes these too.
                Some(current) if current.settings.managed || delete_unmanaged => continue,
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
        for r in keys.iter().filter(|r| r.retires_at <= now) {
            let mut c = change(
                address.clone(),
                Action::Retire,
                Some(
                    serde_json::json!({ "key_id": r.id, "retires_at": crate::clock::rfc3339(r.retires_at) }),
                ),
                None,
                vec![Operation::RevokeKey {
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
}

/// Deletions last, with what depends on them.
fn deletions(b: &mut Builder, desired: &Organization, live: &LiveOrganization) {
    for (name, have) in live
        .service_accounts
        .iter()
        .filter(|(n, _)| !desired.service_accounts.contains_key(*n))
    {
        let work = Operation::DeleteServiceAccount { name: name.clone() };
        let address = Address::account(name);
        if let Some(i) = b.remove(
            address,
            have.managed,
            have.protect,
            account_json(have),
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
            team_json(have),
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
            role_json(have),
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
fn check_safety(
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

/// The plan of rotating one key now, on request (`svcacct rotate`): a new secret that svcacct
/// holds, with the configured overlap for the old one. It is how a key whose secret svcacct
/// never held comes under it. The error is a sentence for the user.
pub fn rotate_now(
    desired: &Organization,
    live: &LiveOrganization,
    account: &str,
    key: &str,
) -> Result<Plan, String> {
    let address = Address::key(account, key);
    let want = desired
        .service_accounts
        .get(account)
        .and_then(|a| a.keys.get(key))
        .ok_or_else(|| {
            format!("{address} is not in the config; only a key the config declares can be rotated")
        })?;
    let have = live
        .service_accounts
        .get(account)
        .and_then(|a| a.keys.get(key))
        .ok_or_else(|| format!("{address} is not live yet; `svcacct apply` issues it"))?;
    let issued = &have.issued;
    let overlap = want.overlap.unwrap_or(Duration(0));
    let mut c = change(
        address,
        Action::Rotate,
        Some(live_key_json(have)),
        Some(key_json(want)),
        vec![Operation::IssueKey {
            account: account.to_string(),
            name: key.to_string(),
            key: KeyIssue {
                settings: want.clone(),
                replaces: Some(Rotation {
                    id: issued.id.clone(),
                    overlap,
                }),
            },
        }],
    );
    c.reason = Some(format!("rotated on request; {}", old_key_works(overlap)));
    Ok(Plan {
        organization: desired.name.clone(),
        revision: live.revision,
        changes: vec![c],
        unmanaged: Vec::new(),
        secrets_not_held: Vec::new(),
        notes: Vec::new(),
        effects: Default::default(),
        last_changed: Default::default(),
        key_uses: Default::default(),
        policy: Vec::new(),
    })
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

/// How long the key a rotation replaces keeps working, as plans say it.
fn old_key_works(overlap: Duration) -> String {
    if overlap.seconds() > 0 {
        format!("the old key keeps working for {overlap}")
    } else {
        "the old key stops working at once".into()
    }
}

/// Up to ten items of a list, and how many more.
fn list(items: &[impl std::fmt::Display]) -> String {
    let mut out: Vec<String> = items.iter().take(10).map(ToString::to_string).collect();
    if items.len() > 10 {
        out.push(format!("and {} more", items.len() - 10));
    }
    out.join(", ")
}

/// Why a live key is due for rotation, if it is.
fn rotation_reason(have: &LiveKey, want: &ApiKey, now: OffsetDateTime) -> Option<String> {
    let issued = &have.issued;
    if issued.expires_at.is_some_and(|e| e <= now) {
        return Some("it has expired".into());
    }
    let every = want.rotate_every?;
    let age = now - issued.created_at;
    (age >= every.to_time()).then(|| format!("it is older than rotate_every {every}"))
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use time::macros::datetime;

    use super::*;
    use crate::model::{IssuedKey, RetiringKey};

    const NOW: OffsetDateTime = datetime!(2026-01-10 00:00 UTC);

    /// Key files as a set of (account, key, id) that have one, or none checkable at all.
    struct Files(Option<BTreeSet<(String, String, String)>>);

    impl KeyFiles for Files {
        fn available(&self) -> bool {
            self.0.is_some()
        }
        /// A key in the set holds its live key; any other lost its file.
        fn held(&self, account: &str, key: &str, id: &str) -> Held {
            if self
                .0
                .as_ref()
                .is_some_and(|s| s.contains(&(account.into(), key.into(), id.into())))
            {
                Held::Holds {
                    key_id: id.into(),
                    stale_recipients: false,
                }
            } else {
                Held::Missing
            }
        }
        fn files(&self) -> Vec<(String, String)> {
            self.0
                .iter()
                .flatten()
                .map(|(a, k, _)| (a.clone(), k.clone()))
                .collect()
        }
        fn describe(&self) -> String {
            "the test's key files".into()
        }
        fn describe_file(&self, account: &str, key: &str) -> String {
            format!("{account}/{key}")
        }
    }

    fn files(of: &[(&str, &str, &str)]) -> Files {
        Files(Some(
            of.iter()
                .map(|(a, k, i)| (a.to_string(), k.to_string(), i.to_string()))
                .collect(),
        ))
    }

    /// One account `bot` with one key `main` (overlap 1d), as the config wants it.
    fn desired() -> Organization {
        let mut org = Organization::new("acme");
        let key = ApiKey {
            overlap: Some(Duration(86_400)),
            managed: true,
            ..Default::default()
        };
        org.service_accounts.insert(
            "bot".into(),
            ServiceAccount {
                managed: true,
                keys: BTreeMap::from([("main".into(), key)]),
                ..Default::default()
            },
        );
        org
    }

    /// `desired` as it is live: the key issued as `k1` two days ago.
    fn live() -> LiveOrganization {
        let want = desired();
        let issued = |settings: &ApiKey| LiveKey {
            settings: settings.clone(),
            issued: IssuedKey {
                id: "k1".into(),
                created_at: NOW - time::Duration::days(2),
                expires_at: None,
                last_used_at: None,
            },
        };
        LiveOrganization {
            name: want.name,
            revision: 7,
            roles: want.roles,
            teams: want.teams,
            service_accounts: want
                .service_accounts
                .iter()
                .map(|(n, a)| {
                    let keys = a.keys.iter().map(|(k, s)| (k.clone(), issued(s))).collect();
                    (n.clone(), a.with_keys(keys))
                })
                .collect(),
            retiring_keys: want.retiring_keys,
        }
    }

    fn plan(desired: &Organization, live: &LiveOrganization, files: &Files) -> Plan {
        diff(
            desired,
            live,
            &PlanOptions {
                policy: Policy::default(),
                now: NOW,
                key_files: files,
                allow_mass_delete: false,
            },
        )
        .expect("a plan")
    }

    #[test]
    fn a_converged_organization_plans_nothing() {
        let p = plan(&desired(), &live(), &files(&[("bot", "main", "k1")]));
        assert!(!p.has_changes(), "{:?}", p.changes);
        assert_eq!(p.revision, 7);
    }

    #[test]
    fn a_live_key_without_its_file_is_replaced_with_its_overlap() {
        let p = plan(&desired(), &live(), &files(&[]));
        assert_eq!(p.changes.len(), 1);
        let c = &p.changes[0];
        assert_eq!(
            (c.address.clone(), c.action),
            (Address::key("bot", "main"), Action::Replace)
        );
        let Operation::IssueKey { key, .. } = &c.work[0] else {
            panic!("a key issue: {:?}", c.work);
        };
        assert_eq!(
            key.replaces,
            Some(Rotation {
                id: "k1".into(),
                overlap: Duration(86_400)
            })
        );
    }

    #[test]
    fn key_files_that_cannot_be_checked_are_not_read_as_missing() {
        let p = plan(&desired(), &live(), &Files(None));
        assert!(!p.has_changes());
        assert_eq!(
            p.notes,
            [
                "the secrets directory the test's key files does not exist here, so key files were not checked"
            ]
        );
    }

    #[test]
    fn removing_a_key_revokes_it_and_its_rotated_out_predecessor() {
        let mut live = live();
        live.retiring_keys.push(RetiringKey {
            id: "k0".into(),
            service_account: "bot".into(),
            key: "main".into(),
            retires_at: NOW + time::Duration::days(1),
            managed: true,
            last_used_at: None,
        });
        let mut want = desired();
        want.service_accounts.get_mut("bot").unwrap().keys.clear();
        let p = plan(&want, &live, &files(&[("bot", "main", "k1")]));
        assert_eq!(p.changes.len(), 1);
        let c = &p.changes[0];
        assert_eq!(c.action, Action::Delete);
        assert_eq!(c.revokes, ["k1", "k0"]);
        let revoked: Vec<&str> = c
            .work
            .iter()
            .map(|op| match op {
                Operation::RevokeKey { id, .. } => id.as_str(),
                other => panic!("a revocation: {other:?}"),
            })
            .collect();
        assert_eq!(revoked, ["k1", "k0"]);
    }

    #[test]
    fn an_old_key_rotates_and_keeps_working_for_its_overlap() {
        let mut want = desired();
        let key = want
            .service_accounts
            .get_mut("bot")
            .and_then(|a| a.keys.get_mut("main"))
            .unwrap();
        key.rotate_every = Some(Duration(86_400));
        let mut live = live();
        live.service_accounts
            .get_mut("bot")
            .unwrap()
            .keys
            .get_mut("main")
            .unwrap()
            .settings
            .rotate_every = Some(Duration(86_400));
        let p = plan(&want, &live, &files(&[("bot", "main", "k1")]));
        assert_eq!(p.changes.len(), 1);
        assert_eq!(p.changes[0].action, Action::Rotate);
        assert_eq!(
            p.changes[0].reason.as_deref(),
            Some("it is older than rotate_every 1d; the old key keeps working for 1d")
        );
    }
}

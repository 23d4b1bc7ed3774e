//! The diff: desired against live, object by object, without a state file. Ownership comes
//! from the `managed` mark on live objects; protection from their `protect` flag. One file per
//! thing compared: an account's own settings, its keys and their files, rotated-out secrets,
//! and the deletions with the safety checks that guard them.

mod accounts;
mod deletions;
mod files;
mod keys;
mod retiring;

use std::collections::{BTreeMap, HashMap};

use time::OffsetDateTime;

use super::{Action, Change, KeyFiles, Plan, PlanError, Snapshot};
use crate::address::Address;
use crate::join::outer_join;
use crate::model::{
    LiveAccount, LiveOrganization, Organization, Policy, RetiringKey, ServiceAccount,
    UnmanagedPolicy,
};
use crate::operation::Operation;

pub use keys::rotate_now;

/// What the diff needs besides the two organizations.
pub struct PlanOptions<'a> {
    pub policy: Policy,
    pub now: OffsetDateTime,
    /// The key files: a live key whose file svcacct held and lost is re-issued; one whose
    /// secret svcacct never held is listed and left working.
    pub key_files: &'a (dyn KeyFiles + Sync),
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
    /// The plan's index of this builder's first change: a part's changes are numbered as if
    /// they came right after the roles and teams, and renumbered when it is joined.
    offset: usize,
}

impl Builder {
    /// An empty builder for some accounts' changes, which may depend on the changes so far.
    fn part(&self) -> Builder {
        Builder {
            changes: Vec::new(),
            index: self.index.clone(),
            unmanaged: Vec::new(),
            not_held: Vec::new(),
            notes: Vec::new(),
            delete_unmanaged: self.delete_unmanaged,
            protected: Vec::new(),
            deletes: 0,
            offset: self.offset + self.changes.len(),
        }
    }

    /// Appends a [`Builder::part`] made from this builder as it is now, renumbering the
    /// part's own changes.
    fn join(&mut self, part: Builder) {
        let start = self.offset + self.changes.len();
        let renumber = |i: usize| {
            if i >= part.offset {
                i - part.offset + start
            } else {
                i
            }
        };
        for mut c in part.changes {
            c.depends_on.iter_mut().for_each(|d| *d = renumber(*d));
            self.changes.push(c);
        }
        for (address, i) in part.index.into_iter().filter(|(_, i)| *i >= part.offset) {
            self.index.entry(address).or_insert(renumber(i));
        }
        self.unmanaged.extend(part.unmanaged);
        self.not_held.extend(part.not_held);
        self.notes.extend(part.notes);
        self.protected.extend(part.protected);
        self.deletes += part.deletes;
    }

    fn push(&mut self, change: Change) -> usize {
        let i = self.offset + self.changes.len();
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
        snapshot: fn(&T) -> Snapshot,
        work: Operation,
    ) {
        let (action, before) = match have {
            None => (Action::Create, None),
            Some(h) if h != want => (Action::Update, Some(snapshot(h))),
            Some(_) => return,
        };
        self.push(change(
            address,
            action,
            before,
            Some(snapshot(want)),
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
        before: Snapshot,
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
    before: Option<Snapshot>,
    after: Option<Snapshot>,
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

/// An account as the config wants it and as it is live, if it is.
type Compared<'a> = (&'a String, &'a ServiceAccount, Option<&'a LiveAccount>);

/// Key ids of rotated-out keys still live, by account and key name, in id order.
type Retiring<'a> = BTreeMap<(&'a str, &'a str), Vec<&'a RetiringKey>>;

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
        offset: 0,
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

    let accounts: Vec<_> = outer_join(&desired.service_accounts, &live.service_accounts)
        .filter_map(|(name, want, have)| Some((name, want?, have)))
        .collect();
    let compare = |b: &mut Builder, files: &mut files::FileCheck, slice: &[Compared<'_>]| {
        for &(name, want, have) in slice {
            let account_change = accounts::account(b, name, want, have);
            keys::keys(b, files, opts, name, want, have, account_change, &retiring);
        }
    };
    let mut files = files::FileCheck::default();
    // Accounts are compared on every core, a slice each, and their changes joined in order:
    // at 100,000 accounts this loop was a tenth of a plan on one core. Not when most accounts
    // are new (a first apply): the slices would hold 400,000 changes until they are joined,
    // 100 MB more at the peak, for a plan whose apply takes minutes.
    let threads = crate::parallel::threads();
    let new = accounts
        .iter()
        .filter(|(_, _, have)| have.is_none())
        .count();
    if threads < 2 || new * 2 > accounts.len() {
        compare(&mut b, &mut files, &accounts);
    } else {
        let parts = crate::parallel::map_slices(threads, &accounts, (4, 1024), |slice| {
            let (mut part, mut files) = (b.part(), files::FileCheck::default());
            compare(&mut part, &mut files, slice);
            (part, files)
        });
        b.changes
            .reserve(parts.iter().map(|(part, _)| part.changes.len()).sum());
        for (part, part_files) in parts {
            b.join(part);
            files.join(part_files);
        }
    }
    files::notes(&mut b, files, live, opts);
    retiring::retiring_keys(&mut b, desired, live, &retiring, opts.now);
    deletions::deletions(&mut b, desired, live);
    deletions::check_safety(&mut b, live, opts)?;
    // Within a stage the apply runs changes in this order; keep it stable and readable.
    Ok(Plan {
        organization: desired.name.clone(),
        revision: live.revision,
        changes: b.changes,
        unmanaged: b.unmanaged,
        secrets_not_held: b.not_held,
        notes: b.notes,
        warnings: Vec::new(),
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
            |r| Snapshot::Role(r.clone()),
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
            |t| Snapshot::Team(t.clone()),
            work,
        );
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use time::macros::datetime;

    use super::*;
    use crate::duration::Duration;
    use crate::model::{ApiKey, IssuedKey, LiveKey, ServiceAccount};
    use crate::operation::Rotation;
    use crate::plan::Held;

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
        fn orphans(&self, live: &LiveOrganization) -> Vec<(String, String)> {
            let is_live = |a: &str, k: &str| {
                live.service_accounts
                    .get(a)
                    .is_some_and(|acct| acct.keys.contains_key(k))
            };
            self.0
                .iter()
                .flatten()
                .filter(|(a, k, _)| !is_live(a, k))
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
                keys: crate::model::SmallMap::from_iter([("main".into(), key)]),
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
    fn many_accounts_compared_in_slices_keep_their_order_and_dependencies() {
        // Enough accounts for several slices: each slice's changes are numbered on their own
        // and renumbered when joined.
        let mut want = desired();
        want.teams.insert("crew".into(), Default::default());
        want.roles.insert("reader".into(), Default::default());
        let mut have = live();
        let bot = want.service_accounts["bot"].clone();
        let mut live_bot = have.service_accounts["bot"].clone();
        live_bot.keys = Default::default();
        for i in 0..5000 {
            // Live already, without its membership and its key: accounts that exist are
            // compared on several threads.
            let mut account = bot.clone();
            account.teams.insert("crew".into(), "reader".into());
            want.service_accounts
                .insert(format!("acct-{i:04}"), account);
            have.service_accounts
                .insert(format!("acct-{i:04}"), live_bot.clone());
        }
        let p = plan(&want, &have, &files(&[("bot", "main", "k1")]));
        assert_eq!(p.changes.len(), 2 + 2 * 5000);
        let at = |a: &Address| p.changes.iter().position(|c| &c.address == a).unwrap();
        let (team, role) = (at(&Address::team("crew")), at(&Address::role("reader")));
        for i in 0..5000 {
            let name = format!("acct-{i:04}");
            let account = at(&Address::account(&name));
            // In name order, each account followed by its key.
            assert_eq!(account, 2 + 2 * i, "{name}");
            let mut deps = p.changes[account].depends_on.clone();
            deps.sort();
            let mut expected = vec![team, role];
            expected.sort();
            assert_eq!(deps, expected, "{name}");
            let key = &p.changes[account + 1];
            assert_eq!(key.address, Address::key(&name, "main"));
            assert_eq!(key.depends_on, [account], "{name}");
        }
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

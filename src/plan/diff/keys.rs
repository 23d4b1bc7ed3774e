//! An account's keys: issued, replaced when svcacct lost the secret it held, rotated when
//! due, updated when their settings moved, revoked (every live secret of the name) when removed.

use time::OffsetDateTime;

use super::files::{FileCheck, check_file};
use super::{Builder, PlanOptions, Retiring, change};
use crate::address::Address;
use crate::duration::Duration;
use crate::model::{
    ApiKey, LiveAccount, LiveKey, LiveOrganization, Organization, ServiceAccount, SmallMap,
};
use crate::operation::{KeyIssue, Operation, Rotation};
use crate::plan::{Action, Change, Held, Plan, Snapshot};

/// An account's keys: issue, replace, rotate, update, and the removed ones revoked.
#[allow(clippy::too_many_arguments)]
pub(super) fn keys(
    b: &mut Builder,
    files: &mut FileCheck,
    opts: &PlanOptions<'_>,
    name: &str,
    want: &ServiceAccount,
    have: Option<&LiveAccount>,
    account_change: Option<usize>,
    retiring: &Retiring<'_>,
) {
    let empty = SmallMap::new();
    let live_keys = have.map_or(&empty, |h| &h.keys);
    for (key, want_key) in &want.keys {
        let address = || Address::key(name, key);
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
                address(),
                Action::Create,
                None,
                Some(Snapshot::Key(want_key.clone())),
                vec![issue(None)],
            ),
            Some(have_key) => {
                let Some(c) = live_key(
                    b,
                    files,
                    opts,
                    &address,
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
    removed(b, name, want, live_keys, account_change, retiring);
}

/// The account's live keys the config removed: every live secret of each revoked (its
/// rotated-out ones included), or, for one svcacct did not create, only listed.
fn removed(
    b: &mut Builder,
    name: &str,
    want: &ServiceAccount,
    live_keys: &SmallMap<String, LiveKey>,
    account_change: Option<usize>,
    retiring: &Retiring<'_>,
) {
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
                Some(Snapshot::live_key(have_key)),
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
    address: &dyn Fn() -> Address,
    (name, key): (&str, &str),
    (want_key, have_key): (&ApiKey, &LiveKey),
    issue: &dyn Fn(Option<Rotation>) -> Operation,
) -> Option<Change> {
    // Most keys need no change: nothing is allocated for one until it does.
    let overlap = want_key.overlap.unwrap_or(Duration(0));
    let replaces = || {
        Some(Rotation {
            id: have_key.issued.id.clone(),
            overlap,
        })
    };
    let (held, lost) = check_file(files, opts, address, (name, key), &have_key.issued.id);
    let rotation = rotation_reason(have_key, want_key, opts.now);
    if rotation.is_none() && held == Held::NotHeld {
        b.not_held.push(address());
    }
    if let Some(reason) = lost {
        let mut c = change(
            address(),
            Action::Replace,
            Some(Snapshot::live_key(have_key)),
            Some(Snapshot::Key(want_key.clone())),
            vec![issue(replaces())],
        );
        c.reason = Some(format!("{reason}; {}", old_key_works(overlap)));
        Some(c)
    } else if let Some(reason) = rotation {
        let mut c = change(
            address(),
            Action::Rotate,
            Some(Snapshot::live_key(have_key)),
            Some(Snapshot::Key(want_key.clone())),
            vec![issue(replaces())],
        );
        c.reason = Some(if overlap.seconds() > 0 {
            format!("{reason}; the old key keeps working for {overlap}")
        } else {
            reason
        });
        Some(c)
    } else if have_key.settings != *want_key {
        Some(change(
            address(),
            Action::Update,
            Some(Snapshot::live_key(have_key)),
            Some(Snapshot::Key(want_key.clone())),
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

/// Revokes every live secret of a key at once: its current one and the rotated-out ones
/// still inside their overlap, so removing a key (the answer to a leak) leaves none working.
pub(super) fn revoke_all(change: &mut Change, account: &str, key: &str, ids: Vec<String>) {
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
        Some(Snapshot::live_key(have)),
        Some(Snapshot::Key(want.clone())),
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
        warnings: Vec::new(),
        effects: Default::default(),
        last_changed: Default::default(),
        key_uses: Default::default(),
        policy: Vec::new(),
    })
}

/// How long the key a rotation replaces keeps working, as plans say it.
fn old_key_works(overlap: Duration) -> String {
    if overlap.seconds() > 0 {
        format!("the old key keeps working for {overlap}")
    } else {
        "the old key stops working at once".into()
    }
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

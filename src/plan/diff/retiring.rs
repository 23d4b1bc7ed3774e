//! Rotated-out secrets: those of a removed key are revoked with it, those whose overlap ended
//! are retired.

use time::OffsetDateTime;

use super::keys::revoke_all;
use super::{Builder, Retiring, change};
use crate::address::Address;
use crate::model::{LiveOrganization, Organization, RetiringKey};
use crate::operation::Operation;
use crate::plan::{Action, Snapshot};

/// Rotated-out keys: those of a removed key are revoked with it; those whose overlap ended
/// are retired.
pub(super) fn retiring_keys(
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
                    orphaned(b, (account, key), keys);
                    continue;
                }
            }
        }
        // Rotated-out keys whose overlap has ended.
        for r in keys.iter().filter(|r| r.retires_at <= now) {
            let mut c = change(
                address.clone(),
                Action::Retire,
                Some(Snapshot::RotatedOut {
                    key_id: r.id.clone(),
                    retires_at: r.retires_at,
                }),
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

/// Rotated-out secrets of a key that is gone from the config and whose current secret is
/// already revoked, say by an apply cut short: the predecessors must not outlive it.
fn orphaned(b: &mut Builder, (account, key): (&str, &str), keys: &[&RetiringKey]) {
    let address = Address::key(account, key);
    let ids: Vec<String> = keys
        .iter()
        .filter(|r| r.managed || b.delete_unmanaged)
        .map(|r| r.id.clone())
        .collect();
    if ids.is_empty() {
        b.unmanaged.push(address);
        return;
    }
    let mut c = change(
        address,
        Action::Delete,
        Some(Snapshot::Secrets {
            key_ids: ids.clone(),
        }),
        None,
        Vec::new(),
    );
    revoke_all(&mut c, account, key, ids);
    b.push(c);
}

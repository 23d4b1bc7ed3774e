//! Reading a whole organization's accounts, memberships and keys for [`Store::snapshot`]:
//! three queries, whatever the number of accounts, inside the snapshot's read transaction.

use std::collections::BTreeMap;

use super::StoreError;
use super::columns::{col_date, col_dur, col_set, col_ts, col_ts_opt};
use super::sql::Conn;
use crate::model::{ApiKey, IssuedKey, LiveAccount, LiveKey, LiveOrganization, RetiringKey};

/// Every account's own settings, without memberships and keys.
pub(super) fn read_accounts(
    conn: &Conn,
    org: &str,
) -> Result<BTreeMap<String, LiveAccount>, StoreError> {
    let rows = conn.query("SELECT name, description, admin, expires, disabled, protect, managed FROM service_accounts WHERE org = ?1", &[&org], |r| {
        Ok((
            r.get::<String>(0)?,
            LiveAccount {
                description: r.get(1)?,
                admin: r.get(2)?,
                expires: col_date(r, 3)?,
                disabled: r.get(4)?,
                protect: r.get(5)?,
                managed: r.get(6)?,
                ..Default::default()
            },
        ))
    })?;
    Ok(rows.into_iter().collect())
}

/// Adds every membership to its account.
pub(super) fn read_memberships(
    conn: &Conn,
    org: &str,
    accounts: &mut BTreeMap<String, LiveAccount>,
) -> Result<(), StoreError> {
    conn.query(
        "SELECT account, team, role FROM memberships WHERE org = ?1",
        &[&org],
        |r| {
            r.with_str(0, |account| {
                if let Some(a) = accounts.get_mut(account) {
                    a.teams.insert(r.get(1)?, r.get(2)?);
                }
                Ok(())
            })?
        },
    )?;
    Ok(())
}

/// Adds every live key: a current one to its account, one a rotation replaced to the
/// retiring keys.
pub(super) fn read_keys(
    conn: &Conn,
    org: &str,
    o: &mut LiveOrganization,
) -> Result<(), StoreError> {
    conn.query(
        "SELECT id, account, name, description, scopes, created_at, expires_at, retires_at, expires_in, rotate_every, overlap, managed, last_used_at
         FROM api_keys WHERE org = ?1 AND revoked_at IS NULL",
        &[&org],
        |r| {
        let id: String = r.get(0)?;
        let name: String = r.get(2)?;
        if let Some(retires_at) = col_ts_opt(r, 7)? {
            o.retiring_keys.push(RetiringKey {
                id,
                service_account: r.get(1)?,
                key: name,
                retires_at,
                managed: r.get(11)?,
                last_used_at: col_ts_opt(r, 12)?,
            });
            return Ok(());
        }
        let key = LiveKey {
            settings: ApiKey {
                description: r.get(3)?,
                scopes: col_set(r, 4)?,
                expires_in: col_dur(r, 8)?,
                rotate_every: col_dur(r, 9)?,
                overlap: col_dur(r, 10)?,
                managed: r.get(11)?,
            },
            issued: IssuedKey {
                id,
                created_at: col_ts(r, 5)?,
                expires_at: col_ts_opt(r, 6)?,
                last_used_at: col_ts_opt(r, 12)?,
            },
        };
        // The account is looked up by its name in place, not copied for every key.
        r.with_str(1, |account| {
            if let Some(a) = o.service_accounts.get_mut(account) {
                a.keys.insert(name, key);
            }
        })
    })?;
    o.retiring_keys.sort_by(|a, b| {
        (&a.service_account, &a.key, &a.id).cmp(&(&b.service_account, &b.key, &b.id))
    });
    Ok(())
}

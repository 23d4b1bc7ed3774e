//! Key verification: who a key belongs to and what it may do, right now. The shape check
//! runs before any lookup, so garbage never reaches the database.

use std::collections::BTreeSet;

use time::{Date, OffsetDateTime};

use super::columns::{col_date, col_set, col_ts_opt};
use super::sql::{Begin, Conn};
use super::{Store, StoreError};
use crate::model::{Organization, ServiceAccount, Verification, pattern_intersection};
use crate::secrets::{hash_secret, looks_like_key};

/// A key as verification reads it, with its account's state (`None` when the account is gone).
struct KeyRow {
    id: String,
    org: String,
    account: String,
    name: String,
    scopes: BTreeSet<String>,
    expires_at: Option<OffsetDateTime>,
    retires_at: Option<i64>,
    revoked_at: Option<i64>,
    admin: Option<bool>,
    disabled: Option<bool>,
    expires: Option<Date>,
}

impl Store {
    /// Verifies a presented secret at `now`.
    pub fn verify(&self, secret: &str, now: OffsetDateTime) -> Result<Verification, StoreError> {
        if !looks_like_key(secret) {
            return Ok(Verification::refused("malformed"));
        }
        // The lookup is by SHA-256 of the secret: an index probe on a hash reveals nothing
        // about the secret through timing, unlike comparing secrets byte by byte.
        let hash = hash_secret(secret);
        // One read transaction: the key and its account's memberships come from the same
        // snapshot, so a delete between the two reads cannot turn into a missing row.
        let tx = self.conn.begin(Begin::Read, None)?;
        let Some(key) = key_row(&tx, &hash)? else {
            return Ok(Verification::refused("unknown"));
        };
        let refusal = refusal(
            now,
            (key.revoked_at.is_some(), key.admin.is_none()),
            key.retires_at,
            key.expires_at,
            key.disabled,
            key.expires,
        );
        if let Some(reason) = refusal {
            return Ok(Verification::refused(reason));
        }
        let org_state = snapshot_account(&tx, &key.org, &key.account)?;
        let granted = org_state.permissions_of(&org_state.service_accounts[&key.account]);
        let permissions: Vec<String> = if key.scopes.is_empty() {
            granted.into_iter().collect()
        } else {
            narrow(&granted, &key.scopes)
        };
        Ok(Verification {
            valid: true,
            reason: None,
            organization: Some(key.org),
            service_account: Some(key.account),
            key: Some(key.name),
            key_id: Some(key.id),
            permissions,
            scopes: key.scopes.into_iter().collect(),
            expires_at: key.expires_at,
        })
    }
}

/// The key whose hash is `hash`, joined with its account, if any key has it.
fn key_row(conn: &Conn, hash: &str) -> Result<Option<KeyRow>, StoreError> {
    conn.query_opt(
        "SELECT k.id, k.org, k.account, k.name, k.scopes, k.expires_at, k.retires_at, k.revoked_at,
                a.admin, a.disabled, a.expires
         FROM api_keys k LEFT JOIN service_accounts a ON a.org = k.org AND a.name = k.account
         WHERE k.hash = ?1",
        &[&hash],
        |r| {
            Ok(KeyRow {
                id: r.get::<String>(0)?,
                org: r.get::<String>(1)?,
                account: r.get::<String>(2)?,
                name: r.get::<String>(3)?,
                scopes: col_set(r, 4)?,
                expires_at: col_ts_opt(r, 5)?,
                retires_at: r.get::<Option<i64>>(6)?,
                revoked_at: r.get::<Option<i64>>(7)?,
                admin: r.get::<Option<bool>>(8)?,
                disabled: r.get::<Option<bool>>(9)?,
                expires: col_date(r, 10)?,
            })
        },
    )
}

/// Just enough of an organization to compute one account's permissions.
fn snapshot_account(conn: &Conn, org: &str, account: &str) -> Result<Organization, StoreError> {
    let mut o = Organization::new(org);
    let admin: bool = conn
        .query_opt(
            "SELECT admin FROM service_accounts WHERE org = ?1 AND name = ?2",
            &[&org, &account],
            |r| r.get(0),
        )?
        .ok_or_else(|| StoreError::NotFound {
            target: format!("service_account.{account}"),
        })?;
    let mut sa = ServiceAccount {
        admin,
        ..Default::default()
    };
    let rows = conn.query(
            "SELECT m.team, m.role, r.permissions FROM memberships m JOIN roles r ON r.org = m.org AND r.name = m.role
             WHERE m.org = ?1 AND m.account = ?2",
        &[&org, &account],
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?, col_set(r, 2)?)),
    )?;
    for (team, role, permissions) in rows {
        o.roles.entry(role.clone()).or_default().permissions = permissions;
        sa.teams.insert(team, role);
    }
    o.service_accounts.insert(account.to_string(), sa);
    Ok(o)
}

/// The permissions both the account grants and the key's scopes allow.
pub(super) fn narrow(
    granted: &std::collections::BTreeSet<String>,
    scopes: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    for s in scopes {
        for g in granted {
            out.extend(pattern_intersection(g, s));
        }
    }
    out.into_iter().collect()
}

/// Why a key is refused at `now`, if it is: revoked (or its account gone), retired after a
/// rotation's overlap, expired, its account disabled or past its `expires` date.
fn refusal(
    now: OffsetDateTime,
    (revoked, account_gone): (bool, bool),
    retires_at: Option<i64>,
    expires_at: Option<OffsetDateTime>,
    disabled: Option<bool>,
    account_expires: Option<time::Date>,
) -> Option<&'static str> {
    if revoked || account_gone {
        Some("revoked")
    } else if retires_at.is_some_and(|t| t <= now.unix_timestamp()) {
        Some("retired")
    } else if expires_at.is_some_and(|t| t <= now) {
        Some("expired")
    } else if disabled == Some(true) {
        Some("account_disabled")
    } else if account_expires.is_some_and(|d| now.date() > d) {
        Some("account_expired")
    } else {
        None
    }
}

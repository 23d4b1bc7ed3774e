//! Key verification: who a key belongs to and what it may do, right now. The shape check
//! runs before any lookup, so garbage never reaches the database.

use time::OffsetDateTime;

use super::StoreError;
use super::sql::{Begin, Conn};
use super::{Store, col_date, col_set, col_ts_opt};
use crate::model::{Organization, ServiceAccount, Verification, pattern_intersection};
use crate::secrets::{hash_secret, looks_like_key};

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
        let row = tx
            .query_opt(
                "SELECT k.id, k.org, k.account, k.name, k.scopes, k.expires_at, k.retires_at, k.revoked_at,
                        a.admin, a.disabled, a.expires
                 FROM api_keys k LEFT JOIN service_accounts a ON a.org = k.org AND a.name = k.account
                 WHERE k.hash = ?1",
                &[&hash],
                |r| {
                    Ok((
                        r.get::<String>(0)?,
                        r.get::<String>(1)?,
                        r.get::<String>(2)?,
                        r.get::<String>(3)?,
                        col_set(r, 4)?,
                        col_ts_opt(r, 5)?,
                        r.get::<Option<i64>>(6)?,
                        r.get::<Option<i64>>(7)?,
                        r.get::<Option<bool>>(8)?,
                        r.get::<Option<bool>>(9)?,
                        col_date(r, 10)?,
                    ))
                },
            )?;
        let Some((
            id,
            org,
            account,
            name,
            scopes,
            expires_at,
            retires_at,
            revoked_at,
            admin,
            disabled,
            expires,
        )) = row
        else {
            return Ok(Verification::refused("unknown"));
        };
        let refusal = refusal(
            now,
            (revoked_at.is_some(), admin.is_none()),
            retires_at,
            expires_at,
            disabled,
            expires,
        );
        if let Some(reason) = refusal {
            return Ok(Verification::refused(reason));
        }
        let org_state = snapshot_account(&tx, &org, &account)?;
        let granted = org_state.permissions_of(&org_state.service_accounts[&account]);
        let permissions: Vec<String> = if scopes.is_empty() {
            granted.into_iter().collect()
        } else {
            narrow(&granted, &scopes)
        };
        Ok(Verification {
            valid: true,
            reason: None,
            organization: Some(org),
            service_account: Some(account),
            key: Some(name),
            key_id: Some(id),
            permissions,
            scopes: scopes.into_iter().collect(),
            expires_at,
        })
    }
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

//! Key verification: who a key belongs to and what it may do, right now. The shape check
//! runs before any lookup, so garbage never reaches the database.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Store, from_json_set, from_ts, parse_date};
use crate::backend::BackendError;
use crate::model::{Organization, ServiceAccount, pattern_intersection};
use crate::secrets::{hash_secret, looks_like_key};

/// The answer to "is this key good, and for what?".
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Verification {
    pub valid: bool,
    /// Why an invalid key is refused (malformed, unknown, revoked, expired, retired,
    /// account_disabled, account_expired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The permissions the key grants: the account's, narrowed by the key's scopes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
}

impl Verification {
    fn refused(reason: &str) -> Self {
        Verification {
            valid: false,
            reason: Some(reason.to_string()),
            organization: None,
            service_account: None,
            key: None,
            key_id: None,
            permissions: Vec::new(),
            scopes: Vec::new(),
            expires_at: None,
        }
    }
}

impl Store {
    /// Verifies a presented secret at `now`.
    pub fn verify(&self, secret: &str, now: OffsetDateTime) -> Result<Verification, BackendError> {
        if !looks_like_key(secret) {
            return Ok(Verification::refused("malformed"));
        }
        // The lookup is by SHA-256 of the secret: an index probe on a hash reveals nothing
        // about the secret through timing, unlike comparing secrets byte by byte.
        let hash = hash_secret(secret);
        let row = self
            .conn
            .query_row(
                "SELECT k.id, k.org, k.account, k.name, k.scopes, k.expires_at, k.retires_at, k.revoked_at,
                        a.admin, a.disabled, a.expires
                 FROM api_keys k LEFT JOIN service_accounts a ON a.org = k.org AND a.name = k.account
                 WHERE k.hash = ?1",
                params![hash],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                        r.get::<_, Option<i64>>(6)?,
                        r.get::<_, Option<i64>>(7)?,
                        r.get::<_, Option<bool>>(8)?,
                        r.get::<_, Option<bool>>(9)?,
                        r.get::<_, Option<String>>(10)?,
                    ))
                },
            )
            .optional()?;
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
        let now_ts = now.unix_timestamp();
        let refusal = if revoked_at.is_some() || admin.is_none() {
            Some("revoked")
        } else if retires_at.is_some_and(|t| t <= now_ts) {
            Some("retired")
        } else if expires_at.is_some_and(|t| t <= now_ts) {
            Some("expired")
        } else if disabled == Some(true) {
            Some("account_disabled")
        } else if expires
            .as_deref()
            .and_then(parse_date)
            .is_some_and(|d| now.date() > d)
        {
            Some("account_expired")
        } else {
            None
        };
        if let Some(reason) = refusal {
            return Ok(Verification::refused(reason));
        }
        let org_state = self.snapshot_account(&org, &account)?;
        let scopes = from_json_set(&scopes);
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
            expires_at: expires_at.map(from_ts),
        })
    }

    /// Just enough of an organization to compute one account's permissions.
    fn snapshot_account(&self, org: &str, account: &str) -> Result<Organization, BackendError> {
        let mut o = Organization::new(org);
        let admin: bool = self.conn.query_row(
            "SELECT admin FROM service_accounts WHERE org = ?1 AND name = ?2",
            params![org, account],
            |r| r.get(0),
        )?;
        let mut sa = ServiceAccount {
            admin,
            ..Default::default()
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.team, m.role, r.permissions FROM memberships m JOIN roles r ON r.org = m.org AND r.name = m.role
             WHERE m.org = ?1 AND m.account = ?2",
        )?;
        let rows = stmt.query_map(params![org, account], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (team, role, permissions) = row?;
            o.roles.entry(role.clone()).or_default().permissions = from_json_set(&permissions);
            sa.teams.insert(team, role);
        }
        o.service_accounts.insert(account.to_string(), sa);
        Ok(o)
    }
}

/// The permissions both the account grants and the key's scopes allow.
fn narrow(
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

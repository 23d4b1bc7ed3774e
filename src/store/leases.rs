//! Apply leases: the organization's lock, over HTTP for the server's clients and on the file
//! for `local` applies. Every writer checks it ([`check_lease`]) inside its write
//! transaction, so a lease holder's writes are the only ones while it lives.

use serde::Serialize;
use time::OffsetDateTime;

use super::columns::{col_ts, ts};
use super::sql::{Begin, Conn};
use super::{Store, StoreError};

/// Lease ids begin with who took them: a server (for an HTTP apply) or a `local` apply.
const SERVED_LEASE: &str = "lease_";
const LOCAL_LEASE: &str = "local_";

/// An apply lease: the organization's lock over HTTP.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Lease {
    pub lease_id: String,
    pub owner: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// The outcome of asking for a lease.
#[derive(Debug, Clone)]
pub enum Acquired {
    Granted(Lease),
    /// Another unexpired lease holds the organization.
    Held(Lease),
}

impl Store {
    /// The unexpired lease on an organization, if any.
    pub fn active_lease(
        &self,
        org: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Lease>, StoreError> {
        live_lease(&self.conn, org, now)
    }

    /// Takes the organization's lease unless an unexpired one exists.
    pub fn acquire_lease(
        &mut self,
        org: &str,
        owner: &str,
        ttl_seconds: u64,
        now: OffsetDateTime,
    ) -> Result<Acquired, StoreError> {
        self.take_lease(org, owner, ttl_seconds, now, SERVED_LEASE)
    }

    /// Takes the organization's lease for a `local` apply on this file. The caller holds the
    /// file's advisory lock, which every local holder keeps while its lease lives: so a live
    /// local lease found here belongs to a process that died (the kernel dropped its file
    /// lock), and is taken over at once rather than left to expire. A server's lease is
    /// never taken over.
    pub fn acquire_local_lease(
        &mut self,
        org: &str,
        owner: &str,
        ttl_seconds: u64,
        now: OffsetDateTime,
    ) -> Result<Acquired, StoreError> {
        self.take_lease(org, owner, ttl_seconds, now, LOCAL_LEASE)
    }

    fn take_lease(
        &mut self,
        org: &str,
        owner: &str,
        ttl_seconds: u64,
        now: OffsetDateTime,
        kind: &str,
    ) -> Result<Acquired, StoreError> {
        // A write transaction: two writers of the store (processes, replicas) cannot both
        // find the lease free.
        let tx = self.conn.begin(Begin::Write, Some(org))?;
        let held = live_lease(&tx, org, now)?;
        if let Some(lease) = held
            && !(kind == LOCAL_LEASE && lease.lease_id.starts_with(LOCAL_LEASE))
        {
            return Ok(Acquired::Held(lease));
        }
        let lease = Lease {
            lease_id: format!("{kind}{}", random_hex()),
            owner: owner.to_string(),
            expires_at: now + time::Duration::seconds(ttl_seconds as i64),
        };
        tx.exec(
            "INSERT INTO leases (org, lease_id, owner, expires_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (org) DO UPDATE SET lease_id = excluded.lease_id, owner = excluded.owner,
             expires_at = excluded.expires_at",
            &[&org, &lease.lease_id, &lease.owner, &ts(lease.expires_at)],
        )?;
        tx.commit()?;
        Ok(Acquired::Granted(lease))
    }

    /// Extends an unexpired lease; `None` when it is unknown or has expired.
    pub fn renew_lease(
        &mut self,
        org: &str,
        lease_id: &str,
        ttl_seconds: u64,
        now: OffsetDateTime,
    ) -> Result<Option<Lease>, StoreError> {
        let expires_at = now + time::Duration::seconds(ttl_seconds as i64);
        let tx = self.conn.begin(Begin::Write, Some(org))?;
        let n = tx.exec(
            "UPDATE leases SET expires_at = ?4 WHERE org = ?1 AND lease_id = ?2 AND expires_at > ?3",
            &[&org, &lease_id, &ts(now), &ts(expires_at)],
        )?;
        if n == 0 {
            return Ok(None);
        }
        let lease = live_lease(&tx, org, now)?;
        tx.commit()?;
        Ok(lease)
    }

    /// Ends an unexpired lease; `false` when it is unknown or has expired.
    pub fn release_lease(
        &mut self,
        org: &str,
        lease_id: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let tx = self.conn.begin(Begin::Write, Some(org))?;
        let live = tx.exec(
            "DELETE FROM leases WHERE org = ?1 AND lease_id = ?2 AND expires_at > ?3",
            &[&org, &lease_id, &ts(now)],
        )?;
        // An expired lease of this id is gone either way.
        tx.exec(
            "DELETE FROM leases WHERE org = ?1 AND lease_id = ?2",
            &[&org, &lease_id],
        )?;
        tx.commit()?;
        Ok(live > 0)
    }
}

fn live_lease(conn: &Conn, org: &str, now: OffsetDateTime) -> Result<Option<Lease>, StoreError> {
    conn.query_opt(
        "SELECT lease_id, owner, expires_at FROM leases WHERE org = ?1 AND expires_at > ?2",
        &[&org, &ts(now)],
        |r| {
            Ok(Lease {
                lease_id: r.get(0)?,
                owner: r.get(1)?,
                expires_at: col_ts(r, 2)?,
            })
        },
    )
}

/// Refuses a write when a live lease other than `mine` holds the organization: the rule every
/// writer follows, the server's requests and `local` applies alike.
pub(super) fn check_lease(
    conn: &Conn,
    org: &str,
    mine: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    match live_lease(conn, org, now)? {
        Some(lease) if mine != Some(lease.lease_id.as_str()) => Err(StoreError::Locked {
            owner: lease.owner,
            until: lease.expires_at,
        }),
        _ => Ok(()),
    }
}

fn random_hex() -> String {
    let bytes: [u8; 8] = rand::random();
    hex::encode(bytes)
}

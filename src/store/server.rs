//! What the server needs beyond the `local` backend's store: one-object reads (a GET of one
//! account must not build the whole organization), apply leases, stored responses for
//! idempotent retries, and a filtered, paged audit log. Writes still go through
//! [`Store::apply`], so revisions and the audit trail stay uniform.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

use super::StoreError;
use super::sql::{Begin, Conn, Row};
use super::{Store, apply_one, audit, col_date, col_dur, col_set, col_ts, col_ts_opt, ts};
use crate::model::{ApiKey, IssuedKey, LiveAccount, LiveKey, Role, Team};
use crate::operation::Operation;

/// Lease ids begin with who took them: a server (for an HTTP apply) or a `local` apply.
const SERVED_LEASE: &str = "lease_";
const LOCAL_LEASE: &str = "local_";

/// How long a stored response can be replayed.
const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;

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

/// A response stored under an idempotency key.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    /// What the original request was, so a key reused for another request is refused.
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
}

/// One live key of an account as the API lists it: settings and issue facts, never the hash.
#[derive(Debug, Clone, Serialize)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    pub description: String,
    pub scopes: Vec<String>,
    pub display_prefix: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Set on a key replaced by a rotation: it works until then.
    #[serde(with = "time::serde::rfc3339::option")]
    pub retires_at: Option<OffsetDateTime>,
    pub expires_in: Option<crate::duration::Duration>,
    pub rotate_every: Option<crate::duration::Duration>,
    pub overlap: Option<crate::duration::Duration>,
    pub managed: bool,
    /// When it last verified, as recorded (see the server's `last_use`: up to a second
    /// behind); `None` when never.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

impl KeyRecord {
    /// The declared settings, as an `UpdateKey` or a rotation carries them.
    pub fn settings(&self) -> ApiKey {
        ApiKey {
            description: self.description.clone(),
            scopes: self.scopes.iter().cloned().collect(),
            expires_in: self.expires_in,
            rotate_every: self.rotate_every,
            overlap: self.overlap,
            managed: self.managed,
        }
    }
}

/// One audit-log entry with its id, for paging.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// Which audit entries to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub actor: Option<String>,
    pub target: Option<String>,
    /// Entries with an id greater than this.
    pub after: Option<i64>,
    pub limit: u32,
}

impl Store {
    /// Opens a store file for the server's writer (its tables are part of the one schema).
    pub fn open_for_server(path: &std::path::Path) -> Result<Store, StoreError> {
        Store::open(path)
    }

    /// Creates an organization with its built-in roles; `false` when it already exists.
    pub fn create_organization(
        &mut self,
        org: &str,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.create_organization_as(org, actor, now)
    }

    /// Applies operations all or nothing: one request of the API is one change, so a failed
    /// part (a membership naming an unknown team, say) leaves no trace of the others. Each
    /// operation is audited and bumps the revision exactly as in [`Store::apply`].
    pub fn apply_all(
        &mut self,
        org: &str,
        actor: &str,
        ops: &[Operation],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let tx = self.conn.begin(Begin::Write, Some(org))?;
        for op in ops {
            let detail = apply_one(&tx, org, op, now)?;
            audit(
                &tx,
                org,
                now,
                actor,
                op.action(),
                &op.target().to_string(),
                &detail,
            )?;
        }
        if !ops.is_empty() {
            tx.exec(
                "UPDATE organizations SET revision = revision + ?2 WHERE name = ?1",
                &[&org, &(ops.len() as i64)],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Runs `f` in one write transaction, exclusive for `org` (or for creating one), committed
    /// when `f` succeeds and rolled back when it fails: the server's checks (`If-Match`, the
    /// lease, a stored response) and its change then see and write one state, whichever
    /// replica runs them. The store calls inside `f` nest in it.
    pub fn exclusive<T, E: From<StoreError>>(
        &mut self,
        org: &str,
        f: impl FnOnce(&mut Store) -> Result<T, E>,
    ) -> Result<T, E> {
        let depth = self.conn.open(Begin::Write, Some(org))?;
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)));
        match done {
            Ok(Ok(value)) => {
                self.conn.close(depth, true)?;
                Ok(value)
            }
            Ok(Err(e)) => {
                let _ = self.conn.close(depth, false);
                Err(e)
            }
            Err(panic) => {
                let _ = self.conn.close(depth, false);
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// An organization's revision, or `None` if it does not exist.
    pub fn revision(&self, org: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .conn
            .query_opt(
                "SELECT revision FROM organizations WHERE name = ?1",
                &[&org],
                |r| r.get::<i64>(0),
            )?
            .map(|r| r as u64))
    }

    /// Every role of an organization.
    pub fn roles(&self, org: &str) -> Result<BTreeMap<String, Role>, StoreError> {
        self.roles_where(org, None)
    }

    /// One role.
    pub fn role(&self, org: &str, name: &str) -> Result<Option<Role>, StoreError> {
        Ok(self.roles_where(org, Some(name))?.into_values().next())
    }

    fn roles_where(
        &self,
        org: &str,
        name: Option<&str>,
    ) -> Result<BTreeMap<String, Role>, StoreError> {
        let rows = self.conn.query(
            "SELECT name, description, permissions, builtin, managed, protect FROM roles
             WHERE org = ?1 AND (CAST(?2 AS TEXT) IS NULL OR name = ?2)",
            &[&org, &name],
            |r| {
                Ok((
                    r.get::<String>(0)?,
                    Role {
                        description: r.get(1)?,
                        permissions: col_set(r, 2)?,
                        builtin: r.get(3)?,
                        managed: r.get(4)?,
                        protect: r.get(5)?,
                    },
                ))
            },
        )?;
        Ok(rows.into_iter().collect())
    }

    /// Every team of an organization.
    pub fn teams(&self, org: &str) -> Result<BTreeMap<String, Team>, StoreError> {
        self.teams_where(org, None)
    }

    /// One team.
    pub fn team(&self, org: &str, name: &str) -> Result<Option<Team>, StoreError> {
        Ok(self.teams_where(org, Some(name))?.into_values().next())
    }

    fn teams_where(
        &self,
        org: &str,
        name: Option<&str>,
    ) -> Result<BTreeMap<String, Team>, StoreError> {
        let rows = self.conn.query(
            "SELECT name, description, managed, protect FROM teams
             WHERE org = ?1 AND (CAST(?2 AS TEXT) IS NULL OR name = ?2)",
            &[&org, &name],
            |r| {
                Ok((
                    r.get::<String>(0)?,
                    Team {
                        description: r.get(1)?,
                        managed: r.get(2)?,
                        protect: r.get(3)?,
                    },
                ))
            },
        )?;
        Ok(rows.into_iter().collect())
    }

    /// One service account with its memberships and current (not retiring) keys.
    pub fn service_account(
        &self,
        org: &str,
        name: &str,
    ) -> Result<Option<LiveAccount>, StoreError> {
        let account = self.conn.query_opt(
            "SELECT description, admin, expires, disabled, protect, managed
                 FROM service_accounts WHERE org = ?1 AND name = ?2",
            &[&org, &name],
            |r| {
                Ok(LiveAccount {
                    description: r.get(0)?,
                    admin: r.get(1)?,
                    expires: col_date(r, 2)?,
                    disabled: r.get(3)?,
                    protect: r.get(4)?,
                    managed: r.get(5)?,
                    ..Default::default()
                })
            },
        )?;
        let Some(mut account) = account else {
            return Ok(None);
        };
        account.teams = self
            .conn
            .query(
                "SELECT team, role FROM memberships WHERE org = ?1 AND account = ?2",
                &[&org, &name],
                |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
            )?
            .into_iter()
            .collect();
        for k in self.keys(org, name)? {
            if k.retires_at.is_some() {
                continue;
            }
            let key = LiveKey {
                settings: k.settings(),
                issued: IssuedKey {
                    id: k.id.clone(),
                    created_at: k.created_at,
                    expires_at: k.expires_at,
                    last_used_at: k.last_used_at,
                },
            };
            account.keys.insert(k.name, key);
        }
        Ok(Some(account))
    }

    /// The accounts that hold `role` through a membership.
    pub fn accounts_with_role(&self, org: &str, role: &str) -> Result<Vec<String>, StoreError> {
        self.conn.query(
            "SELECT DISTINCT account FROM memberships WHERE org = ?1 AND role = ?2",
            &[&org, &role],
            |r| r.get::<String>(0),
        )
    }

    /// The live (not revoked) keys of an account, retiring ones included, by name then age.
    pub fn keys(&self, org: &str, account: &str) -> Result<Vec<KeyRecord>, StoreError> {
        self.conn.query(
            "SELECT id, name, description, scopes, display_prefix, created_at, expires_at, retires_at,
                    expires_in, rotate_every, overlap, managed, last_used_at
             FROM api_keys WHERE org = ?1 AND account = ?2 AND revoked_at IS NULL
             ORDER BY name, created_at, id",
            &[&org, &account],
            |r| {
            Ok(KeyRecord {
                id: r.get(0)?,
                name: r.get(1)?,
                description: r.get(2)?,
                scopes: col_set(r, 3)?.into_iter().collect(),
                display_prefix: r.get(4)?,
                created_at: col_ts(r, 5)?,
                expires_at: col_ts_opt(r, 6)?,
                retires_at: col_ts_opt(r, 7)?,
                expires_in: col_dur(r, 8)?,
                rotate_every: col_dur(r, 9)?,
                overlap: col_dur(r, 10)?,
                managed: r.get(11)?,
                last_used_at: col_ts_opt(r, 12)?,
            })
        })
    }

    /// Records when keys were last used (id, Unix seconds), in one transaction; a time older
    /// than the one stored is ignored. Not a change to any organization: no revision, no audit.
    pub fn record_last_use(&mut self, uses: &[(String, i64)]) -> Result<(), StoreError> {
        let tx = self.conn.begin(Begin::Write, None)?;
        // In one order, so two replicas writing the same keys cannot deadlock.
        let mut uses: Vec<_> = uses.iter().collect();
        uses.sort();
        for (id, at) in uses {
            tx.exec(
                "UPDATE api_keys SET last_used_at = ?2
                 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
                &[id, at],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Whether a key with this id or this hash was ever registered (revoked ones included).
    pub fn key_exists(&self, id: &str, hash: &str) -> Result<bool, StoreError> {
        self.conn.exists(
            "SELECT 1 FROM api_keys WHERE id = ?1 OR hash = ?2",
            &[&id, &hash],
        )
    }

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

    /// The response stored under an idempotency key, if it is recent enough to replay.
    pub fn stored_response(
        &self,
        org: &str,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<StoredResponse>, StoreError> {
        self.conn.query_opt(
            "SELECT fingerprint, status, body FROM idempotency
             WHERE org = ?1 AND key = ?2 AND created_at > ?3",
            &[&org, &key, &(ts(now) - IDEMPOTENCY_TTL_SECS)],
            |r| {
                Ok(StoredResponse {
                    fingerprint: r.get(0)?,
                    status: r.get::<i32>(1)? as u16,
                    body: r.get(2)?,
                })
            },
        )
    }

    /// Stores a response for replay, forgetting the ones too old to replay.
    pub fn store_response(
        &mut self,
        org: &str,
        key: &str,
        response: &StoredResponse,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let tx = self.conn.begin(Begin::Write, Some(org))?;
        tx.exec(
            "DELETE FROM idempotency WHERE created_at <= ?1",
            &[&(ts(now) - IDEMPOTENCY_TTL_SECS)],
        )?;
        tx.exec(
            "INSERT INTO idempotency (org, key, fingerprint, status, body, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (org, key) DO UPDATE SET fingerprint = excluded.fingerprint,
             status = excluded.status, body = excluded.body, created_at = excluded.created_at",
            &[
                &org,
                &key,
                &response.fingerprint,
                &i32::from(response.status),
                &response.body,
                &ts(now),
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The newest audit entry of each target of an organization, in one pass over its log.
    pub fn last_changes(&self, org: &str) -> Result<Vec<AuditRecord>, StoreError> {
        self.conn.query(
            "SELECT a.id, a.time, a.actor, a.action, a.target, a.detail FROM audit_log a
             JOIN (SELECT max(id) AS id FROM audit_log WHERE org = ?1 GROUP BY target) l
               ON a.id = l.id
             ORDER BY a.id",
            &[&org],
            audit_record,
        )
    }

    /// A page of an organization's audit log, oldest first, and the id to continue after
    /// when there is more.
    pub fn audit_page(
        &self,
        org: &str,
        filter: &AuditFilter,
    ) -> Result<(Vec<AuditRecord>, Option<i64>), StoreError> {
        let limit = filter.limit.max(1) as i64;
        let mut entries = self.conn.query(
            "SELECT id, time, actor, action, target, detail FROM audit_log
             WHERE org = ?1 AND id > ?2
               AND (CAST(?3 AS BIGINT) IS NULL OR time >= ?3) AND (CAST(?4 AS BIGINT) IS NULL OR time <= ?4)
               AND (CAST(?5 AS TEXT) IS NULL OR actor = ?5) AND (CAST(?6 AS TEXT) IS NULL OR target = ?6)
             ORDER BY id LIMIT ?7",
            &[
                &org,
                &filter.after.unwrap_or(0),
                &filter.since.map(ts),
                &filter.until.map(ts),
                &filter.actor,
                &filter.target,
                &(limit + 1),
            ],
            audit_record,
        )?;
        let next = if entries.len() as i64 > limit {
            entries.truncate(limit as usize);
            entries.last().map(|e| e.id)
        } else {
            None
        };
        Ok((entries, next))
    }
}

fn audit_record(r: &Row<'_>) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        id: r.get(0)?,
        time: col_ts(r, 1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        target: r.get(4)?,
        detail: r.get(5)?,
    })
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

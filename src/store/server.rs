//! What the server needs beyond the `local` backend's store: one-object reads (a GET of one
//! account must not build the whole organization) and all-or-nothing applies. Writes still go
//! through the store's operations (`write.rs`), so revisions and the audit trail stay
//! uniform. The server's other tables have files of their own: apply leases (`leases.rs`),
//! stored responses for idempotent retries (`idempotency.rs`), the audit log (`audit_log.rs`).

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

use super::columns::{col_date, col_dur, col_set, col_ts, col_ts_opt};
use super::sql::Begin;
use super::write::{apply_one, audit};
use super::{Store, StoreError};
use crate::model::{ApiKey, IssuedKey, LiveAccount, LiveKey, Role, Team};
use crate::operation::Operation;

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
}

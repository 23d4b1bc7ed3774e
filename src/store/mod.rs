//! The store: organizations, their roles, teams, service accounts, memberships, key hashes
//! and audit log, in a SQLite file or a PostgreSQL database. The `local` backend and the
//! server share it as it is; its queries are written once for both engines (see [`sql`]).
//!
//! `read` holds the snapshot's queries, `write` the operations' writes, `columns` how values
//! sit in columns; `server`, `leases`, `idempotency` and `audit_log` what only the server needs.

mod audit_log;
mod columns;
mod error;
mod idempotency;
mod key_grants;
mod leases;
mod location;
pub mod migrations;
pub mod postgres;
mod read;
mod server;
mod sql;
#[cfg(test)]
mod tests;
mod verify;
mod write;

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use time::OffsetDateTime;

pub use audit_log::{AuditFilter, AuditRecord};
pub use error::StoreError;
pub use idempotency::StoredResponse;
pub use key_grants::{ChangeStamp, KeyGrant};
pub use leases::{Acquired, Lease};
pub use location::Database;
pub use server::KeyRecord;

use crate::model::{BUILTIN_ROLES, LiveOrganization, builtin_role};
use crate::operation::Operation;
use columns::{json_set, ts};
use read::{read_accounts, read_keys, read_memberships};
use sql::{Begin, Conn};
use write::{apply_one, audit};

/// How long a SQLite connection waits for another one's lock before it gives up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Turns the file to WAL (a no-op when it is already).
///
/// On a new file this asks for the write lock while holding a read lock, and SQLite answers
/// "database is locked" at once, without the busy timeout, when another connection holds the
/// write lock then (waiting could deadlock the two): two first applies meet there. So this
/// waits here instead, for as long as the busy timeout, letting the other connection finish.
fn use_wal(conn: &Connection) -> Result<(), StoreError> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            r => return Ok(r?),
        }
    }
}

/// An open store: a SQLite file or a PostgreSQL database.
pub struct Store {
    conn: Conn,
}

impl Store {
    /// Opens (creating if need be) a store file for reading and writing.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_migrating(path).map(|(store, _)| store)
    }

    /// [`Store::open`], also returning the schema version the file was at before.
    pub fn open_migrating(path: &Path) -> Result<(Store, u32), StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Io {
                action: "create",
                path: dir.to_path_buf(),
                source: e.into(),
            })?;
        }
        let mut conn = Connection::open(path)?;
        let was = Self::init(&mut conn, true)?;
        Ok((
            Store {
                conn: Conn::sqlite(conn),
            },
            was,
        ))
    }

    /// Opens an existing store file without ever writing to it; `None` when there is none.
    pub fn open_read_only(path: &Path) -> Result<Option<Store>, StoreError> {
        if !path.exists() {
            return Ok(None);
        }
        match Self::read_only(path) {
            // A writer killed mid-write can leave a WAL index only a writable connection may
            // rebuild (SQLITE_READONLY_RECOVERY). Opening the file writable once runs SQLite's
            // own recovery; nothing else is written.
            Err(StoreError::Sqlite(e))
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly) =>
            {
                Connection::open(path)?.query_row("PRAGMA schema_version", [], |_| Ok(()))?;
                Self::read_only(path).map(Some)
            }
            r => r.map(Some),
        }
    }

    fn read_only(path: &Path) -> Result<Store, StoreError> {
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        Self::init(&mut conn, false)?;
        Ok(Store {
            conn: Conn::sqlite(conn),
        })
    }

    /// Connects to a PostgreSQL database, migrating it to the latest schema when `migrate`
    /// (a server's first connection) and otherwise refusing one at another version.
    pub fn open_postgres(url: &str, migrate: bool) -> Result<Store, StoreError> {
        let mut pg = sql::Pg::connect(url)?;
        if migrate {
            postgres::migrate(pg.client())?;
        } else {
            postgres::check_version(pg.client())?;
        }
        Ok(Store {
            conn: Conn::postgres(pg),
        })
    }

    /// Sets the connection up; a writable one is migrated to the latest schema, a read-only
    /// one refused unless it is there. Returns the version the file was at.
    fn init(conn: &mut Connection, writable: bool) -> Result<u32, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        if writable {
            // WAL lets readers (plans, the server's verifications) run while an apply writes.
            use_wal(conn)?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            migrations::migrate(conn)
        } else {
            migrations::check_readable(conn)?;
            migrations::version(conn)
        }
    }

    /// The schema version, when it is the one this binary knows; an error (newer, older or
    /// unreadable) otherwise. A server's readiness.
    pub fn schema_ready(&self) -> Result<u32, StoreError> {
        let found = match self.conn.as_sqlite() {
            Some(conn) => {
                let found = migrations::version(conn)?;
                if found != migrations::LATEST {
                    migrations::check_readable(conn)?;
                }
                found
            }
            None => postgres::known_version(
                self.conn
                    .query_opt("SELECT version FROM svcacct_schema", &[], |r| {
                        r.get::<i32>(0)
                    })?
                    .unwrap_or(0),
            )?,
        };
        if found != migrations::LATEST {
            return Err(StoreError::SchemaOutdated {
                found,
                latest: migrations::LATEST,
            });
        }
        // A read of a table, not just of the header.
        self.conn
            .query("SELECT count(*) FROM organizations", &[], |r| {
                r.get::<i64>(0)
            })?;
        Ok(found)
    }

    /// Creates an organization with its built-in roles if it does not exist yet.
    pub fn ensure_organization(
        &mut self,
        org: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.create_organization_as(org, "svcacct", now)
    }

    fn create_organization_as(
        &mut self,
        org: &str,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let tx = self.conn.begin(Begin::Write, Some(org))?;
        let exists = tx.exists("SELECT 1 FROM organizations WHERE name = ?1", &[&org])?;
        if !exists {
            tx.exec(
                "INSERT INTO organizations (name, revision, created_at) VALUES (?1, 1, ?2)",
                &[&org, &ts(now)],
            )?;
            for name in BUILTIN_ROLES {
                let role = builtin_role(name).expect("built-in");
                tx.exec(
                    "INSERT INTO roles (org, name, description, permissions, builtin, managed, protect) VALUES (?1, ?2, ?3, ?4, TRUE, FALSE, TRUE)",
                    &[&org, &name, &role.description, &json_set(&role.permissions)],
                )?;
            }
            audit(
                &tx,
                org,
                now,
                actor,
                "create_organization",
                &format!("organization.{org}"),
                "",
            )?;
        }
        tx.commit()?;
        Ok(!exists)
    }

    /// The whole organization as it is now, or `None` if it does not exist.
    pub fn snapshot(&self, org: &str) -> Result<Option<LiveOrganization>, StoreError> {
        let tx = self.conn.begin(Begin::Read, None)?;
        // A file the first apply has only just created has no tables yet: no organization.
        // (A PostgreSQL database is migrated before anything reads it.)
        let initialized = self.conn.as_sqlite().is_none()
            || tx.exists(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'organizations'",
                &[],
            )?;
        if !initialized {
            return Ok(None);
        }
        let Some(revision) = tx.query_opt(
            "SELECT revision FROM organizations WHERE name = ?1",
            &[&org],
            |r| r.get::<i64>(0),
        )?
        else {
            return Ok(None);
        };
        let mut o = LiveOrganization {
            name: org.to_string(),
            revision: revision as u64,
            ..Default::default()
        };
        // Inside the read transaction above, so the whole snapshot is one revision.
        o.roles = self.roles(org)?;
        o.teams = self.teams(org)?;
        o.service_accounts = read_accounts(&tx, org)?;
        read_memberships(&tx, org, &mut o.service_accounts)?;
        read_keys(&tx, org, &mut o)?;
        Ok(Some(o))
    }

    /// Applies operations in one transaction, each in a savepoint of its own so that a failed
    /// one leaves no trace and does not stop the rest. Returns one result per operation.
    pub fn apply(
        &mut self,
        org: &str,
        actor: &str,
        ops: &[Operation],
        now: OffsetDateTime,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        self.apply_checked(org, actor, ops, now, None)
    }

    /// [`Store::apply`] for a writer that holds (or should hold) the organization's lease
    /// `lease_id`: refused with [`StoreError::Locked`] when another writer's lease is live,
    /// checked in the same transaction as the change so no lease can slip in between.
    pub fn apply_leased(
        &mut self,
        org: &str,
        actor: &str,
        ops: &[Operation],
        now: OffsetDateTime,
        lease_id: Option<&str>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        self.apply_checked(org, actor, ops, now, Some(lease_id))
    }

    fn apply_checked(
        &mut self,
        org: &str,
        actor: &str,
        ops: &[Operation],
        now: OffsetDateTime,
        lease: Option<Option<&str>>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        // A write transaction: the write lock is taken first, so a check read here still holds
        // when the change is written, whoever else writes the store.
        let tx = self.conn.begin(Begin::Write, Some(org))?;
        if let Some(mine) = lease {
            leases::check_lease(&tx, org, mine, OffsetDateTime::now_utc())?;
        }
        let mut results = Vec::with_capacity(ops.len());
        let mut applied = 0i64;
        for op in ops {
            let sp = tx.begin(Begin::Write, None)?;
            match apply_one(&sp, org, op, now).and_then(|detail| {
                audit(
                    &sp,
                    org,
                    now,
                    actor,
                    op.action(),
                    &op.target().to_string(),
                    &detail,
                )
            }) {
                Ok(()) => {
                    sp.commit()?;
                    applied += 1;
                    results.push(Ok(()));
                }
                Err(e) => {
                    drop(sp); // rolls the savepoint back
                    results.push(Err(e));
                }
            }
        }
        if applied > 0 {
            tx.exec(
                "UPDATE organizations SET revision = revision + ?2 WHERE name = ?1",
                &[&org, &applied],
            )?;
        }
        tx.commit()?;
        Ok(results)
    }
}

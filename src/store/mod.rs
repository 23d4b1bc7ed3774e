//! The store: organizations, their roles, teams, service accounts, memberships, key hashes
//! and audit log, in a SQLite file or a PostgreSQL database. The `local` backend and the
//! server share it as it is; its queries are written once for both engines (see [`sql`]).

mod error;
mod key_grants;
mod location;
pub mod migrations;
pub mod postgres;
mod server;
mod sql;
#[cfg(test)]
mod tests;
mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use time::{Date, OffsetDateTime};

pub use error::StoreError;
pub use key_grants::{ChangeStamp, KeyGrant};
pub use location::Database;
pub use server::{Acquired, AuditFilter, AuditRecord, KeyRecord, Lease, StoredResponse};
use sql::{Begin, Conn, Row};

use crate::duration::Duration;
use crate::model::{
    ApiKey, BUILTIN_ROLES, IssuedKey, LiveAccount, LiveKey, LiveOrganization, RetiringKey, Role,
    ServiceAccount, Team, builtin_role,
};
use crate::operation::{NewKey, Operation, Replaces};

/// An open store: a SQLite file or a PostgreSQL database.
pub struct Store {
    conn: Conn,
}

fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

// Column decoders. A stored value that does not decode is an error, never a default: an
// empty scope set read from a garbled column would give a key its account's every permission,
// and a missing expiry date would make an account work forever.

/// A failed decode of a column.
fn undecodable(what: &'static str, value: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what,
        value: value.to_string(),
    }
}

/// A Unix timestamp column.
fn col_ts(r: &Row<'_>, i: usize) -> Result<OffsetDateTime, StoreError> {
    let s: i64 = r.get(i)?;
    OffsetDateTime::from_unix_timestamp(s).map_err(|_| undecodable("timestamp", s))
}

/// A nullable Unix timestamp column.
fn col_ts_opt(r: &Row<'_>, i: usize) -> Result<Option<OffsetDateTime>, StoreError> {
    match r.get::<Option<i64>>(i)? {
        None => Ok(None),
        Some(_) => col_ts(r, i).map(Some),
    }
}

/// A nullable duration column, in seconds.
fn col_dur(r: &Row<'_>, i: usize) -> Result<Option<Duration>, StoreError> {
    match r.get::<Option<i64>>(i)? {
        None => Ok(None),
        Some(s) => u64::try_from(s)
            .map(|s| Some(Duration(s)))
            .map_err(|_| undecodable("duration", s)),
    }
}

/// A JSON array of strings: permissions or scopes.
fn col_set(r: &Row<'_>, i: usize) -> Result<BTreeSet<String>, StoreError> {
    let s: String = r.get(i)?;
    serde_json::from_str(&s).map_err(|_| undecodable("permission list", s))
}

/// A nullable `YYYY-MM-DD` column.
fn col_date(r: &Row<'_>, i: usize) -> Result<Option<Date>, StoreError> {
    match r.get::<Option<String>>(i)? {
        None => Ok(None),
        Some(s) => parse_date(&s)
            .map(Some)
            .ok_or_else(|| undecodable("date", s)),
    }
}

fn dur(d: Option<Duration>) -> Option<i64> {
    d.map(|d| d.seconds() as i64)
}

fn json_set(set: &BTreeSet<String>) -> String {
    serde_json::to_string(set).expect("strings serialize")
}

fn date_text(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
}

fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()
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
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        if writable {
            // WAL lets readers (plans, the server's verifications) run while an apply writes.
            conn.pragma_update(None, "journal_mode", "WAL")?;
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
            server::check_lease(&tx, org, mine, OffsetDateTime::now_utc())?;
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

/// Every account's own settings, without memberships and keys.
fn read_accounts(conn: &Conn, org: &str) -> Result<BTreeMap<String, LiveAccount>, StoreError> {
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
fn read_memberships(
    conn: &Conn,
    org: &str,
    accounts: &mut BTreeMap<String, LiveAccount>,
) -> Result<(), StoreError> {
    conn.query(
        "SELECT account, team, role FROM memberships WHERE org = ?1",
        &[&org],
        |r| {
            let account = r.get::<String>(0)?;
            if let Some(a) = accounts.get_mut(&account) {
                a.teams.insert(r.get(1)?, r.get(2)?);
            }
            Ok(())
        },
    )?;
    Ok(())
}

/// Adds every live key: a current one to its account, one a rotation replaced to the
/// retiring keys.
fn read_keys(conn: &Conn, org: &str, o: &mut LiveOrganization) -> Result<(), StoreError> {
    conn.query(
        "SELECT id, account, name, description, scopes, created_at, expires_at, retires_at, expires_in, rotate_every, overlap, managed, last_used_at
         FROM api_keys WHERE org = ?1 AND revoked_at IS NULL",
        &[&org],
        |r| {
        let id: String = r.get(0)?;
        let account: String = r.get(1)?;
        let name: String = r.get(2)?;
        if let Some(retires_at) = col_ts_opt(r, 7)? {
            o.retiring_keys.push(RetiringKey {
                id,
                service_account: account,
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
        if let Some(a) = o.service_accounts.get_mut(&account) {
            a.keys.insert(name, key);
        }
        Ok(())
    })?;
    o.retiring_keys.sort_by(|a, b| {
        (&a.service_account, &a.key, &a.id).cmp(&(&b.service_account, &b.key, &b.id))
    });
    Ok(())
}

fn audit(
    tx: &Conn,
    org: &str,
    now: OffsetDateTime,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), StoreError> {
    tx.exec("INSERT INTO audit_log (org, time, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        &[&org, &ts(now), &actor, &action, &target, &detail])?;
    Ok(())
}

fn protected(
    tx: &Conn,
    table: &str,
    org: &str,
    name: &str,
    target: String,
) -> Result<(), StoreError> {
    let protect: Option<bool> = tx.query_opt(
        &format!("SELECT protect FROM {table} WHERE org = ?1 AND name = ?2"),
        &[&org, &name],
        |r| r.get(0),
    )?;
    match protect {
        None => Err(StoreError::NotFound { target }),
        Some(true) => Err(StoreError::Protected { target }),
        Some(false) => Ok(()),
    }
}

/// Applies one operation; returns the audit detail (never key material).
fn apply_one(
    tx: &Conn,
    org: &str,
    op: &Operation,
    now: OffsetDateTime,
) -> Result<String, StoreError> {
    let target = op.target().to_string();
    match op {
        // svcacct's store keeps hashes of keys the client minted; it mints none itself.
        Operation::IssueKey { .. } => Err(StoreError::Conflict {
            target,
            message: "this store registers keys by hash; the client mints them".into(),
        }),
        Operation::PutRole { name, role } => put_role(tx, org, name, role, target),
        Operation::PutTeam { name, team } => put_team(tx, org, name, team),
        Operation::PutServiceAccount { name, account } => {
            put_service_account(tx, org, name, account)
        }
        Operation::SetMemberships { account, teams } => {
            set_memberships(tx, org, account, teams, &target)
        }
        Operation::RegisterKey { account, name, key } => {
            exists(
                tx,
                "service_accounts",
                org,
                account,
                &format!("service_account.{account}"),
            )?;
            register_key(tx, org, account, name, key, now)?;
            Ok(format!("id={}", key.id))
        }
        Operation::UpdateKey { account, name, key } => {
            update_key(tx, org, account, name, key, target)
        }
        Operation::RevokeKey { account, id, .. } => revoke_key(tx, org, account, id, now, target),
        Operation::DeleteServiceAccount { name } => delete_account(tx, org, name, now, target),
        Operation::DeleteTeam { name } => delete_unused(tx, "teams", "team", org, name, target),
        Operation::DeleteRole { name } => delete_unused(tx, "roles", "role", org, name, target),
    }
}

fn put_role(
    tx: &Conn,
    org: &str,
    name: &str,
    role: &Role,
    target: String,
) -> Result<String, StoreError> {
    if BUILTIN_ROLES.contains(&name) {
        return Err(StoreError::Conflict {
            target,
            message: "built-in roles cannot be changed".into(),
        });
    }
    tx.exec(
        "INSERT INTO roles (org, name, description, permissions, builtin, managed, protect) VALUES (?1, ?2, ?3, ?4, FALSE, ?5, ?6)
         ON CONFLICT (org, name) DO UPDATE SET description = excluded.description, permissions = excluded.permissions,
         managed = excluded.managed, protect = excluded.protect",
    &[&org, &name, &role.description, &json_set(&role.permissions), &role.managed, &role.protect])?;
    Ok(String::new())
}

fn put_team(tx: &Conn, org: &str, name: &str, team: &Team) -> Result<String, StoreError> {
    tx.exec(
        "INSERT INTO teams (org, name, description, managed, protect) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (org, name) DO UPDATE SET description = excluded.description, managed = excluded.managed, protect = excluded.protect",
    &[&org, &name, &team.description, &team.managed, &team.protect])?;
    Ok(String::new())
}

/// An account's own settings; its memberships and keys are written by their own operations.
fn put_service_account(
    tx: &Conn,
    org: &str,
    name: &str,
    a: &ServiceAccount,
) -> Result<String, StoreError> {
    tx.exec(
        "INSERT INTO service_accounts (org, name, description, admin, expires, disabled, protect, managed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (org, name) DO UPDATE SET description = excluded.description, admin = excluded.admin, expires = excluded.expires,
         disabled = excluded.disabled, protect = excluded.protect, managed = excluded.managed",
    &[&org, &name, &a.description, &a.admin, &a.expires.map(date_text), &a.disabled, &a.protect, &a.managed])?;
    Ok(if a.disabled {
        "disabled".into()
    } else {
        String::new()
    })
}

fn set_memberships(
    tx: &Conn,
    org: &str,
    account: &str,
    teams: &BTreeMap<String, String>,
    target: &str,
) -> Result<String, StoreError> {
    exists(tx, "service_accounts", org, account, target)?;
    tx.exec(
        "DELETE FROM memberships WHERE org = ?1 AND account = ?2",
        &[&org, &account],
    )?;
    for (team, role) in teams {
        exists(tx, "teams", org, team, &format!("team.{team}"))?;
        exists(tx, "roles", org, role, &format!("role.{role}"))?;
        tx.exec(
            "INSERT INTO memberships (org, account, team, role) VALUES (?1, ?2, ?3, ?4)",
            &[&org, &account, team, role],
        )?;
    }
    Ok(teams
        .iter()
        .map(|(t, r)| format!("{t}={r}"))
        .collect::<Vec<_>>()
        .join(","))
}

/// A current key's declared settings (a retiring or revoked one is not updated).
fn update_key(
    tx: &Conn,
    org: &str,
    account: &str,
    name: &str,
    key: &ApiKey,
    target: String,
) -> Result<String, StoreError> {
    let n = tx.exec(
            "UPDATE api_keys SET description = ?4, scopes = ?5, expires_in = ?6, rotate_every = ?7, overlap = ?8, managed = ?9
             WHERE org = ?1 AND account = ?2 AND name = ?3 AND revoked_at IS NULL AND retires_at IS NULL",
        &[&org, &account, &name, &key.description, &json_set(&key.scopes), &dur(key.expires_in), &dur(key.rotate_every), &dur(key.overlap), &key.managed])?;
    if n == 0 {
        return Err(StoreError::NotFound { target });
    }
    Ok(String::new())
}

fn revoke_key(
    tx: &Conn,
    org: &str,
    account: &str,
    id: &str,
    now: OffsetDateTime,
    target: String,
) -> Result<String, StoreError> {
    let n = tx.exec("UPDATE api_keys SET revoked_at = ?4 WHERE org = ?1 AND account = ?2 AND id = ?3 AND revoked_at IS NULL",
        &[&org, &account, &id, &ts(now)])?;
    if n == 0 {
        return Err(StoreError::NotFound { target });
    }
    Ok(format!("id={id}"))
}

/// Deletes an account, revoking every key it holds.
fn delete_account(
    tx: &Conn,
    org: &str,
    name: &str,
    now: OffsetDateTime,
    target: String,
) -> Result<String, StoreError> {
    protected(tx, "service_accounts", org, name, target)?;
    let revoked = tx.exec("UPDATE api_keys SET revoked_at = ?3 WHERE org = ?1 AND account = ?2 AND revoked_at IS NULL",
        &[&org, &name, &ts(now)])?;
    tx.exec(
        "DELETE FROM service_accounts WHERE org = ?1 AND name = ?2",
        &[&org, &name],
    )?;
    Ok(format!("revoked {revoked} keys"))
}

/// Deletes a team or a role (`column` in the memberships table) that no membership names.
fn delete_unused(
    tx: &Conn,
    table: &str,
    column: &str,
    org: &str,
    name: &str,
    target: String,
) -> Result<String, StoreError> {
    protected(tx, table, org, name, target.clone())?;
    in_use(
        tx,
        &format!("SELECT account FROM memberships WHERE org = ?1 AND {column} = ?2"),
        org,
        name,
        &target,
    )?;
    tx.exec(
        &format!("DELETE FROM {table} WHERE org = ?1 AND name = ?2"),
        &[&org, &name],
    )?;
    Ok(String::new())
}

fn exists(tx: &Conn, table: &str, org: &str, name: &str, target: &str) -> Result<(), StoreError> {
    let found = tx.exists(
        &format!("SELECT 1 FROM {table} WHERE org = ?1 AND name = ?2"),
        &[&org, &name],
    )?;
    if found {
        Ok(())
    } else {
        Err(StoreError::NotFound {
            target: target.to_string(),
        })
    }
}

fn in_use(tx: &Conn, sql: &str, org: &str, name: &str, target: &str) -> Result<(), StoreError> {
    let users: Vec<String> = tx.query(sql, &[&org, &name], |r| r.get(0))?;
    if users.is_empty() {
        return Ok(());
    }
    Err(StoreError::Conflict {
        target: target.to_string(),
        message: format!("still used by service account {}", users.join(", ")),
    })
}

fn register_key(
    tx: &Conn,
    org: &str,
    account: &str,
    name: &str,
    key: &NewKey,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let live: Vec<String> = tx.query("SELECT id FROM api_keys WHERE org = ?1 AND account = ?2 AND name = ?3 AND revoked_at IS NULL AND retires_at IS NULL",
        &[&org, &account, &name], |r| r.get(0))?;
    match (&key.replaces, live.as_slice()) {
        (None, []) => {}
        (
            Some(Replaces {
                id: old,
                retires_at,
            }),
            [current],
        ) if current == old => {
            if *retires_at <= now {
                tx.exec(
                    "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1",
                    &[old, &ts(now)],
                )?;
            } else {
                tx.exec(
                    "UPDATE api_keys SET retires_at = ?2 WHERE id = ?1",
                    &[old, &ts(*retires_at)],
                )?;
            }
        }
        _ => {
            return Err(StoreError::Conflict {
                target: format!("key.{account}.{name}"),
                message: "the live key changed since the plan; run plan again".into(),
            });
        }
    }
    let active: i64 = tx
        .query_opt("SELECT count(*) FROM api_keys WHERE org = ?1 AND account = ?2 AND revoked_at IS NULL AND retires_at IS NULL",
            &[&org, &account], |r| r.get(0))?
        .unwrap_or(0);
    if active as usize >= crate::model::MAX_KEYS_PER_ACCOUNT {
        return Err(StoreError::Conflict {
            target: format!("key.{account}.{name}"),
            message: format!(
                "service account {account} already has {active} active keys, the most allowed"
            ),
        });
    }
    let s = &key.settings;
    tx.exec(
        "INSERT INTO api_keys (id, org, account, name, description, scopes, display_prefix, hash, created_at, expires_at, expires_in, rotate_every, overlap, managed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    &[
        &key.id, &org, &account, &name, &s.description, &json_set(&s.scopes), &key.display_prefix, &key.hash,
        &ts(key.created_at), &key.expires_at.map(ts), &dur(s.expires_in), &dur(s.rotate_every), &dur(s.overlap), &s.managed
    ])?;
    Ok(())
}

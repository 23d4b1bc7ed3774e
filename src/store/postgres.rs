//! The PostgreSQL engine's schema: the same versions as the SQLite schema (one list of
//! migrations per engine, numbered alike), kept in a `svcacct_schema` row and brought forward
//! under a transaction-scoped advisory lock, so replicas starting at once migrate the database
//! once. The store's queries are shared with SQLite (see `sql.rs`).
//!
//! Every statement that moves the store's change stamp (an organization created, deleted, or
//! its revision bumped) fires a trigger that sends `NOTIFY` on [`CHANGES_CHANNEL`]; PostgreSQL
//! delivers it only when the transaction commits, so replicas listening there learn of a
//! write as soon as it can be read. A trigger rather than a `NOTIFY` in the store's code, so
//! no write path, present or future, can forget it. It is installed at every migration rather
//! than as a schema version: it changes no data, a binary without it works on a database with
//! it, and a version would make older binaries refuse the database (and SQLite need an empty
//! migration of its own).

use postgres::{Client, NoTls};

use super::StoreError;
use super::migrations::LATEST;

/// Migration `i` moves a database from version `i` to `i + 1`, as on SQLite.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres/0001_baseline.sql"),
    include_str!("migrations/postgres/0002_key_last_used.sql"),
];
const _: () = assert!(
    MIGRATIONS.len() as u32 == LATEST,
    "one migration list per engine"
);

/// The advisory lock key migrations hold (`svcacct` in ASCII).
const MIGRATION_LOCK: i64 = 0x0073_7663_6163_6374;

/// The channel every committed change to an organization is announced on.
pub const CHANGES_CHANNEL: &str = "svcacct_changes";

/// The announcing trigger (see the module doc): per statement, as one `NOTIFY` per
/// transaction is all a listener needs (PostgreSQL folds identical ones anyway).
const CHANGES_TRIGGER: &str = "
CREATE OR REPLACE FUNCTION svcacct_announce_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{channel}', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER svcacct_announce_change
    AFTER INSERT OR DELETE OR UPDATE OF revision ON organizations
    FOR EACH STATEMENT EXECUTE FUNCTION svcacct_announce_change();
";

/// Connects to the database at `url`.
pub fn connect(url: &str) -> Result<Client, StoreError> {
    Ok(Client::connect(url, NoTls)?)
}

/// The version the database is at, refused when this binary does not know it.
pub fn check_version(client: &mut Client) -> Result<u32, StoreError> {
    let found = client
        .query_opt("SELECT version FROM svcacct_schema", &[])?
        .map(|r| r.get::<_, i32>(0))
        .unwrap_or(0);
    known_version(found)
}

/// A stored version, refused when this binary does not know it.
pub(super) fn known_version(found: i32) -> Result<u32, StoreError> {
    let found = u32::try_from(found).map_err(|_| StoreError::Corrupt {
        what: "schema version",
        value: found.to_string(),
    })?;
    if found > LATEST {
        return Err(StoreError::SchemaTooNew {
            found,
            latest: LATEST,
        });
    }
    Ok(found)
}

/// Brings the database to [`LATEST`]; returns the version it was at.
pub fn migrate(client: &mut Client) -> Result<u32, StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS svcacct_schema (version INTEGER NOT NULL)")?;
    let found = tx
        .query_opt("SELECT version FROM svcacct_schema", &[])?
        .map(|r| r.get::<_, i32>(0))
        .unwrap_or(0);
    let found = known_version(found)?;
    for sql in &MIGRATIONS[found as usize..] {
        tx.batch_execute(sql)?;
    }
    // Created only when missing: replacing it would lock `organizations` against writes at
    // every replica's start.
    let announced = tx
        .query_opt(
            "SELECT 1 FROM pg_trigger WHERE tgname = 'svcacct_announce_change'",
            &[],
        )?
        .is_some();
    if !announced {
        tx.batch_execute(&CHANGES_TRIGGER.replace("{channel}", CHANGES_CHANNEL))?;
    }
    if found == 0 {
        tx.execute(
            "INSERT INTO svcacct_schema (version) VALUES ($1)",
            &[&(LATEST as i32)],
        )?;
    } else {
        tx.execute(
            "UPDATE svcacct_schema SET version = $1",
            &[&(LATEST as i32)],
        )?;
    }
    tx.commit()?;
    Ok(found)
}

//! The schema's versions. A store file records the version it is at in `PRAGMA user_version`
//! (0 for a file written before versions were kept); a writable open brings it forward by
//! running the migrations it lacks, all in one `IMMEDIATE` transaction, so two processes
//! opening one file at once migrate it once and nobody reads a half-migrated file. A file at a
//! version newer than this binary knows is refused: an older svcacct would misread (or drop)
//! what the newer one keeps.
//!
//! Migrations are only ever appended: a released one is never edited, because files in the
//! field already ran it. Hand-written rather than `rusqlite_migration`, whose releases pin an
//! older rusqlite than ours (two `libsqlite3-sys` cannot link into one binary).

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// Migration `i` moves a file from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_baseline.sql"),
    include_str!("migrations/0002_key_last_used.sql"),
];

/// The version this binary writes and reads.
pub const LATEST: u32 = MIGRATIONS.len() as u32;

/// The version a file is at.
pub fn version(conn: &Connection) -> Result<u32, StoreError> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get::<_, u32>(0))?)
}

/// Brings a writable file to [`LATEST`]; returns the version it was at.
pub fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    // Cheap check first: an up-to-date file takes no write lock.
    let found = version(conn)?;
    if found == LATEST {
        return Ok(found);
    }
    refuse_newer(found)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Read again under the write lock: another process may have migrated meanwhile.
    let found = version(&tx)?;
    refuse_newer(found)?;
    for sql in &MIGRATIONS[found as usize..] {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", LATEST)?;
    tx.commit()?;
    Ok(found)
}

/// Refuses a file a read-only open cannot use: one newer than this binary, or an older one
/// that has tables (an empty file, which a first apply has only just created, reads as empty).
pub fn check_readable(conn: &Connection) -> Result<(), StoreError> {
    // One read transaction: the version and the tables from the same moment, not from either
    // side of a migration another process commits in between.
    let tx = conn.unchecked_transaction()?;
    let found = version(&tx)?;
    refuse_newer(found)?;
    if found < LATEST {
        let has_tables = tx
            .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table'")?
            .exists([])?;
        if has_tables {
            return Err(StoreError::SchemaOutdated {
                found,
                latest: LATEST,
            });
        }
    }
    Ok(())
}

fn refuse_newer(found: u32) -> Result<(), StoreError> {
    if found > LATEST {
        return Err(StoreError::SchemaTooNew {
            found,
            latest: LATEST,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_gets_every_migration_and_a_second_open_none() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), 0);
        assert_eq!(version(&conn).unwrap(), LATEST);
        assert_eq!(migrate(&mut conn).unwrap(), LATEST);
        check_readable(&conn).unwrap();
    }

    #[test]
    fn a_newer_file_is_refused_and_left_alone() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", LATEST + 1)
            .unwrap();
        let e = migrate(&mut conn).unwrap_err();
        assert!(matches!(e, StoreError::SchemaTooNew { .. }), "{e}");
        assert!(e.to_string().contains("newer"), "{e}");
        assert!(check_readable(&conn).is_err());
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 0, "nothing was created");
    }
}

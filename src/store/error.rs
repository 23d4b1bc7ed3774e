//! Why a store call failed. The refusals (protected, missing, conflicting) are the caller's
//! to explain to a user; the storage failures keep their SQLite or I/O cause as the error's
//! source, so the server can tell a constraint violation from a broken disk by its code
//! rather than by its text.

use std::path::PathBuf;
use std::sync::Arc;

/// A failed store read or write.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{target} is protected; set `protect: false` on it and apply before deleting it")]
    Protected { target: String },
    #[error("{target} does not exist")]
    NotFound { target: String },
    #[error("{target}: {message}")]
    Conflict { target: String, message: String },
    /// A unique constraint refused the write: a key id or hash registered twice.
    #[error("a key with this id or hash already exists")]
    Duplicate(#[source] Arc<dyn std::error::Error + Send + Sync>),
    #[error("SQLite failed")]
    Sqlite(#[source] Arc<rusqlite::Error>),
    #[error("PostgreSQL failed")]
    Postgres(#[source] Arc<postgres::Error>),
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A stored value that does not decode. Never read as a default: a default scope set
    /// would widen what a key may do.
    #[error("the store holds an unreadable {what} `{value}`")]
    Corrupt { what: &'static str, value: String },
    /// Another writer's lease holds the organization.
    #[error("locked by {owner} until {}", crate::clock::rfc3339(*until))]
    Locked {
        owner: String,
        until: time::OffsetDateTime,
    },
    #[error("the store was opened read-only")]
    ReadOnly,
    #[error(
        "the organization database is at schema version {found}, newer than this svcacct \
         knows (up to {latest}); upgrade svcacct to use it"
    )]
    SchemaTooNew { found: u32, latest: u32 },
    #[error(
        "the organization database is at schema version {found}; this svcacct needs {latest}. \
         Upgrade it with `svcacct serve --migrate --db FILE` (or any `svcacct apply`), then retry"
    )]
    SchemaOutdated { found: u32, latest: u32 },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::Duplicate(Arc::new(e)),
            _ => StoreError::Sqlite(Arc::new(e)),
        }
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        use postgres::error::SqlState;
        // The constraints SQLite reports as one code, so both engines answer alike.
        let constraint = [
            SqlState::UNIQUE_VIOLATION,
            SqlState::FOREIGN_KEY_VIOLATION,
            SqlState::NOT_NULL_VIOLATION,
            SqlState::CHECK_VIOLATION,
        ];
        match e.code() {
            Some(code) if constraint.contains(code) => StoreError::Duplicate(Arc::new(e)),
            _ => StoreError::Postgres(Arc::new(e)),
        }
    }
}

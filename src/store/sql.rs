//! One connection over either engine, so the store's queries are written once. The SQL is the
//! common dialect of SQLite and PostgreSQL with SQLite's `?N` placeholders (rewritten to `$N`
//! for PostgreSQL when a statement is first prepared); values go in as [`Param`]s and come out
//! of a [`Row`] as [`Column`]s, which both drivers convert natively, so the SQLite path keeps
//! its cached statements and pays for no intermediate value type.
//!
//! Transactions are SQL too (`BEGIN`, or a `SAVEPOINT` inside one), so a store call that opens
//! one inside another caller's — each write inside the server's check-and-write transaction —
//! nests instead of failing. A write transaction names its organization: on PostgreSQL that
//! takes a transaction-scoped advisory lock on it, which is how replicas exclude each other
//! (SQLite's `BEGIN IMMEDIATE` already takes the file's one write lock).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::StoreError;

/// A value a statement can take on either engine.
pub trait Param {
    fn lite(&self) -> &dyn rusqlite::ToSql;
    fn pg(&self) -> &(dyn postgres::types::ToSql + Sync);
}

impl<T: rusqlite::ToSql + postgres::types::ToSql + Sync> Param for T {
    fn lite(&self) -> &dyn rusqlite::ToSql {
        self
    }
    fn pg(&self) -> &(dyn postgres::types::ToSql + Sync) {
        self
    }
}

/// A value a column can be read as on either engine.
pub trait Column: rusqlite::types::FromSql + postgres::types::FromSqlOwned {}
impl<T: rusqlite::types::FromSql + postgres::types::FromSqlOwned> Column for T {}

/// One result row.
pub enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a postgres::Row),
}

impl Row<'_> {
    /// Column `i`.
    pub fn get<T: Column>(&self, i: usize) -> Result<T, StoreError> {
        match self {
            Row::Sqlite(r) => Ok(r.get(i)?),
            Row::Postgres(r) => Ok(r.try_get(i)?),
        }
    }

    /// `f` of text column `i`, read in place: a snapshot reads hundreds of thousands of names
    /// and scope lists only to look them up or see that they are empty.
    pub fn with_str<T>(&self, i: usize, f: impl FnOnce(&str) -> T) -> Result<T, StoreError> {
        match self {
            Row::Sqlite(r) => {
                let text = r.get_ref(i)?.as_str().map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        i,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })?;
                Ok(f(text))
            }
            Row::Postgres(r) => Ok(f(r.try_get::<_, &str>(i)?)),
        }
    }
}

/// What a transaction is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// A consistent read: every query sees the same moment.
    Read,
    /// A write, exclusive for its organization (and, on SQLite, for the whole file).
    Write,
}

/// How long a PostgreSQL session may sit idle inside a transaction before the database ends
/// it (and with it the transaction's locks).
pub const IDLE_IN_TRANSACTION: std::time::Duration = std::time::Duration::from_secs(30);

/// A PostgreSQL connection with its prepared statements.
pub struct Pg {
    url: String,
    /// Always `Some` but while being dropped (see [`Drop`]).
    client: Option<postgres::Client>,
    statements: HashMap<String, postgres::Statement>,
}

impl Drop for Pg {
    fn drop(&mut self) {
        // The synchronous client runs a runtime of its own, which cannot be dropped on an
        // async runtime's thread (the server's state is dropped on one): close it on a plain
        // thread of its own.
        if let Some(client) = self.client.take() {
            let _ = std::thread::Builder::new()
                .name("svcacct-pg-close".into())
                .spawn(move || drop(client));
        }
    }
}

impl Pg {
    /// Connects to the database at `url`.
    pub fn connect(url: &str) -> Result<Pg, StoreError> {
        let mut client = postgres::Client::connect(url, postgres::NoTls)?;
        // A replica that stops mid-transaction without closing its connection (frozen, or its
        // host gone) holds its organization's lock until the database ends the session: at
        // most this long. A killed process closes its socket, which ends it at once.
        client.batch_execute(&format!(
            "SET idle_in_transaction_session_timeout = '{}s'",
            IDLE_IN_TRANSACTION.as_secs()
        ))?;
        Ok(Pg {
            url: url.to_string(),
            client: Some(client),
            statements: HashMap::new(),
        })
    }

    pub fn client(&mut self) -> &mut postgres::Client {
        self.client.as_mut().expect("only taken when dropped")
    }

    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client().prepare(&dollar_placeholders(sql))?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

/// The engine a store runs on.
enum Engine {
    Sqlite(rusqlite::Connection),
    // Boxed: a client with its runtime is large, and a SQLite store should not carry it.
    Postgres(Box<RefCell<Pg>>),
}

/// A connection to either engine.
pub struct Conn {
    engine: Engine,
    /// Transactions open on it: 0 outside any, 1 in a `BEGIN`, more in savepoints.
    depth: Cell<u32>,
}

impl Conn {
    pub fn sqlite(conn: rusqlite::Connection) -> Conn {
        Conn {
            engine: Engine::Sqlite(conn),
            depth: Cell::new(0),
        }
    }

    pub fn postgres(pg: Pg) -> Conn {
        Conn {
            engine: Engine::Postgres(Box::new(RefCell::new(pg))),
            depth: Cell::new(0),
        }
    }

    /// The SQLite connection, for what only SQLite has (pragmas, its schema version).
    pub fn as_sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.engine {
            Engine::Sqlite(c) => Some(c),
            Engine::Postgres(_) => None,
        }
    }

    /// Runs `f` on the PostgreSQL connection. Outside a transaction (its `BEGIN` included), a
    /// connection the database dropped — a restart or a failover — is replaced and `f` run
    /// again, so the next request after one succeeds; inside a transaction the error stands,
    /// and the caller's transaction fails whole.
    fn on_pg<T>(&self, f: impl Fn(&mut Pg) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let Engine::Postgres(cell) = &self.engine else {
            unreachable!("only called on PostgreSQL");
        };
        let mut pg = cell.borrow_mut();
        let outside = self.depth.get() == 0;
        if outside && pg.client().is_closed() {
            *pg = Pg::connect(&pg.url)?;
        }
        match f(&mut pg) {
            Err(StoreError::Postgres(e)) if outside && dropped(&e) => {
                *pg = Pg::connect(&pg.url)?;
                f(&mut pg)
            }
            done => done,
        }
    }

    /// Runs a statement; returns how many rows it changed.
    pub fn exec(&self, sql: &str, params: &[&dyn Param]) -> Result<usize, StoreError> {
        match &self.engine {
            Engine::Sqlite(c) => {
                let params: Vec<&dyn rusqlite::ToSql> = params.iter().map(|p| p.lite()).collect();
                Ok(c.prepare_cached(sql)?.execute(&*params)?)
            }
            Engine::Postgres(_) => self.on_pg(|pg| {
                let stmt = pg.statement(sql)?;
                let params: Vec<_> = params.iter().map(|p| p.pg()).collect();
                Ok(pg.client().execute(&stmt, &params)? as usize)
            }),
        }
    }

    /// Runs a query, turning each row into a `T`.
    pub fn query<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut f: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        match &self.engine {
            Engine::Sqlite(c) => {
                let params: Vec<&dyn rusqlite::ToSql> = params.iter().map(|p| p.lite()).collect();
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(&*params)?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    out.push(f(&Row::Sqlite(r))?);
                }
                Ok(out)
            }
            Engine::Postgres(_) => {
                let rows = self.on_pg(|pg| {
                    let stmt = pg.statement(sql)?;
                    let params: Vec<_> = params.iter().map(|p| p.pg()).collect();
                    Ok(pg.client().query(&stmt, &params)?)
                })?;
                rows.iter().map(|r| f(&Row::Postgres(r))).collect()
            }
        }
    }

    /// The first row of a query, if any.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut f = Some(f);
        let mut first = None;
        // Every row is read (the queries here ask for one), and only the first decoded.
        self.query(sql, params, |r| {
            if let Some(f) = f.take() {
                first = Some(f(r)?);
            }
            Ok(())
        })?;
        Ok(first)
    }

    /// Whether a query returns any row.
    pub fn exists(&self, sql: &str, params: &[&dyn Param]) -> Result<bool, StoreError> {
        Ok(self.query_opt(sql, params, |_| Ok(()))?.is_some())
    }

    /// Runs statements without parameters.
    pub fn batch(&self, sql: &str) -> Result<(), StoreError> {
        match &self.engine {
            Engine::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Engine::Postgres(_) => self.on_pg(|pg| Ok(pg.client().batch_execute(sql)?)),
        }
    }

    /// Opens a transaction (a savepoint inside an open one); it rolls back unless committed.
    pub fn begin(&self, kind: Begin, org: Option<&str>) -> Result<Tx<'_>, StoreError> {
        let depth = self.open(kind, org)?;
        Ok(Tx {
            conn: self,
            depth,
            done: false,
        })
    }

    /// The `BEGIN` (or `SAVEPOINT`) of a transaction; returns its depth for [`Conn::close`].
    pub fn open(&self, kind: Begin, org: Option<&str>) -> Result<u32, StoreError> {
        let depth = self.depth.get();
        let postgres = matches!(self.engine, Engine::Postgres(_));
        let sql = match (depth, kind, postgres) {
            (0, Begin::Read, false) => "BEGIN".to_string(),
            (0, Begin::Write, false) => "BEGIN IMMEDIATE".to_string(),
            // One snapshot for every query of a read, as SQLite's read transaction gives.
            (0, Begin::Read, true) => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY".into(),
            (0, Begin::Write, true) => "BEGIN".to_string(),
            (d, _, _) => format!("SAVEPOINT svcacct_{d}"),
        };
        self.batch(&sql)?;
        self.depth.set(depth + 1);
        if postgres
            && kind == Begin::Write
            && let Some(org) = org
        {
            // Held until the outermost transaction ends, whoever else takes it again inside.
            if let Err(e) = self.exec("SELECT pg_advisory_xact_lock(?1)", &[&org_lock(org)]) {
                let _ = self.close(depth, false);
                return Err(e);
            }
        }
        Ok(depth)
    }

    /// Commits (or rolls back) the transaction [`Conn::open`] opened at `depth`.
    pub fn close(&self, depth: u32, commit: bool) -> Result<(), StoreError> {
        // Run while still counted as inside the transaction: a `COMMIT` on a dropped
        // connection must fail, never be retried on a new one (where it would succeed at
        // committing nothing).
        self.depth.set(depth + 1);
        let sql = match (depth, commit) {
            (0, true) => "COMMIT".to_string(),
            (0, false) => "ROLLBACK".to_string(),
            (d, true) => format!("RELEASE SAVEPOINT svcacct_{d}"),
            (d, false) => {
                format!("ROLLBACK TO SAVEPOINT svcacct_{d}; RELEASE SAVEPOINT svcacct_{d}")
            }
        };
        let done = self.batch(&sql);
        if done.is_err() && commit {
            // A failed COMMIT leaves the transaction for a ROLLBACK to end.
            let _ = self.close(depth, false);
        }
        self.depth.set(depth);
        done
    }
}

/// Whether an error says the database ended the connection: closed, broken (an I/O error),
/// or shutting down.
fn dropped(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    use std::error::Error;
    e.is_closed()
        || e.source().is_some_and(|s| s.is::<std::io::Error>())
        || e.code().is_some_and(|c| {
            [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CONNECTION_FAILURE,
            ]
            .contains(c)
        })
}

/// The advisory lock key of an organization: the first 8 bytes of a SHA-256 of its name, the
/// same in every replica and release.
fn org_lock(org: &str) -> i64 {
    let digest = Sha256::digest(format!("svcacct organization {org}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// An open transaction or savepoint; rolled back when dropped uncommitted.
pub struct Tx<'a> {
    conn: &'a Conn,
    depth: u32,
    done: bool,
}

impl Tx<'_> {
    pub fn commit(mut self) -> Result<(), StoreError> {
        self.done = true;
        self.conn.close(self.depth, true)
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.close(self.depth, false);
        }
    }
}

/// SQLite's `?N` placeholders as PostgreSQL's `$N`. The store's SQL has no `?` anywhere else.
fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_alike() {
        assert_eq!(
            dollar_placeholders("SELECT a FROM t WHERE b = ?1 AND (?2 IS NULL OR c = ?12)"),
            "SELECT a FROM t WHERE b = $1 AND ($2 IS NULL OR c = $12)"
        );
    }

    #[test]
    fn a_nested_transaction_is_a_savepoint_that_rolls_back_alone() {
        let conn = Conn::sqlite(rusqlite::Connection::open_in_memory().unwrap());
        conn.batch("CREATE TABLE t (v INTEGER)").unwrap();
        let outer = conn.begin(Begin::Write, None).unwrap();
        outer.exec("INSERT INTO t VALUES (1)", &[]).unwrap();
        {
            let inner = outer.begin(Begin::Write, None).unwrap();
            inner.exec("INSERT INTO t VALUES (2)", &[]).unwrap();
            // Dropped uncommitted: only its own row goes.
        }
        outer.commit().unwrap();
        let rows = conn
            .query("SELECT v FROM t", &[], |r| r.get::<i64>(0))
            .unwrap();
        assert_eq!(rows, [1]);
        assert_eq!(conn.depth.get(), 0);
    }
}

//! The server's connections to its store: one writer behind a mutex (SQLite has one writer at
//! a time anyway) and a few readers, so that verifications and snapshots never queue behind an
//! apply. Every call runs on tokio's blocking pool. On PostgreSQL the same shape is the
//! server's connection pool — five connections, each with its own prepared statements, and no
//! pool crate needed for a fixed set that lives as long as the process — while exclusion
//! between replicas comes from the database (see the store's write transactions), never from
//! this process's mutex. On PostgreSQL one more connection listens for other replicas'
//! writes (see [`super::change_listener`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::error::ApiError;
use super::verify_index::{Reader, VerifyIndex};
use crate::store::{Database, Store, StoreError};

/// How many read-only connections the server keeps.
const READERS: usize = 4;

/// The store, shared by every request.
#[derive(Clone)]
pub struct Db {
    writer: Arc<Mutex<Store>>,
    readers: Arc<Vec<Mutex<Store>>>,
    next: Arc<AtomicUsize>,
    /// Verification from memory, kept current by [`Db::write`].
    index: Arc<VerifyIndex>,
}

fn lock(m: &Mutex<Store>) -> MutexGuard<'_, Store> {
    // A panic while holding a connection leaves no half-done transaction behind (SQLite
    // rolls back on drop), so the connection is still good.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Db {
    /// Opens (creating if need be) the file, or connects to the database, migrating it.
    pub fn open(db: &Database) -> Result<Db, StoreError> {
        let writer = match db {
            Database::Sqlite(path) => Store::open_for_server(path)?,
            Database::Postgres(url) => Store::open_postgres(url, true)?,
        };
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let reader = match db {
                Database::Sqlite(path) => {
                    Store::open_read_only(path)?.ok_or_else(|| StoreError::Io {
                        action: "open",
                        path: path.to_path_buf(),
                        source: std::io::Error::from(std::io::ErrorKind::NotFound).into(),
                    })?
                }
                Database::Postgres(url) => Store::open_postgres(url, false)?,
            };
            readers.push(Mutex::new(reader));
        }
        let index = Arc::new(VerifyIndex::new());
        if let Database::Postgres(url) = db {
            super::change_listener::spawn(url.clone(), Arc::downgrade(&index));
        }
        Ok(Db {
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(readers),
            next: Arc::new(AtomicUsize::new(0)),
            index,
        })
    }

    /// Runs `f` on a read-only connection: a free one if there is one.
    pub async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
    {
        let readers = self.readers.clone();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        blocking(move || {
            for i in 0..readers.len() {
                if let Ok(store) = readers[(start + i) % readers.len()].try_lock() {
                    return f(&store);
                }
            }
            f(&lock(&readers[start % readers.len()]))
        })
        .await
    }

    /// Runs `f` with the writer, alone. Every write of the server passes here, so this is
    /// where the verify index learns of them: before the write's answer is sent.
    pub async fn write<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
    {
        let writer = self.writer.clone();
        let index = self.index.clone();
        blocking(move || {
            let mut store = lock(&writer);
            let result = f(&mut store);
            index.after_write(&store);
            result
        })
        .await
    }

    /// Verifies a presented secret at `now`, from memory.
    pub async fn verify(
        &self,
        secret: &str,
        now: time::OffsetDateTime,
    ) -> Result<crate::model::Verification, ApiError> {
        self.index.verify(self, secret, now).await
    }

    /// The in-memory verification index over this store.
    pub fn verify_index(&self) -> &VerifyIndex {
        &self.index
    }
}

async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "a database task failed");
        Err(ApiError::internal("the request failed inside the server"))
    })
}

impl Reader for Db {
    fn read<T, F>(&self, f: F) -> impl std::future::Future<Output = Result<T, ApiError>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
    {
        Db::read(self, f)
    }
}

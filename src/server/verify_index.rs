//! Key verification from memory. Every service that checks a key asks the server, so a
//! verification must not cost a database lookup: the server keeps every key's answer (see
//! [`crate::store::KeyGrant`]) in one immutable table, keyed by the SHA-256 of the secret and
//! shared by all requests through an atomic pointer, and checks only the clock-dependent
//! parts (expiry, retirement) per request.
//!
//! The table is never trusted past a change to the store:
//!
//! - **This process's writes.** Every write goes through [`super::db::Db::write`], which reads
//!   the store's [`ChangeStamp`] after the write; when it moved, [`VerifyIndex::store_changed`]
//!   marks the table stale *before the write's response is sent*, so the very next
//!   verification rebuilds it (one build at a time; the others wait for it) and a revocation is
//!   refused at once. A write that changes no organization (a key's last use, a lease) keeps it.
//! - **Other processes' writes** to the same database (a `local` apply on the server's SQLite
//!   file; another replica): a table is used for at most [`CONFIRM_EVERY`] after its stamp was
//!   last read; then the next verification reads the stamp again (one small query) and either
//!   keeps the table or rebuilds it. So a write committed elsewhere is seen by every
//!   verification that starts more than [`CONFIRM_EVERY`] after its commit.
//! - **Anything else that learns of a change** calls [`VerifyIndex::store_changed`]: that is
//!   the one hook. On PostgreSQL, every replica hears every committed change through
//!   `LISTEN/NOTIFY` (see [`super::change_listener`]), usually before the writing replica's
//!   response reaches its client; the bound above is then only the fallback.
//!
//! A table marked stale is checked against the stamp first and rebuilt only when the stamp
//! moved, so news of a write this process already rebuilt for costs one small query.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::error::ApiError;
use crate::model::Verification;
use crate::secrets::looks_like_key;
use crate::store::{ChangeStamp, KeyGrant, Store};

/// How the index reads the store: on a connection of the server's, off the async threads.
/// The server's `Db` is the one reader; the index needs nothing else of it.
pub trait Reader: Sync {
    fn read<T, F>(&self, f: F) -> impl std::future::Future<Output = Result<T, ApiError>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, ApiError> + Send + 'static;
}

/// How long a table is used without reading the store's stamp again: the bound on how late a
/// write made by another process is seen.
pub const CONFIRM_EVERY: Duration = Duration::from_millis(100);

/// Every key's grant, by the SHA-256 of its secret.
struct Table {
    slots: HashMap<[u8; 32], u32>,
    grants: Vec<KeyGrant>,
}

impl Table {
    fn build(grants: Vec<(String, KeyGrant)>) -> Table {
        let mut slots = HashMap::with_capacity(grants.len());
        let mut kept = Vec::with_capacity(grants.len());
        for (hash, grant) in grants {
            let mut bytes = [0u8; 32];
            // Only the lowercase hex the store writes matches a lookup by hash, as in SQL.
            if hex::decode_to_slice(&hash, &mut bytes).is_err() || hex::encode(bytes) != hash {
                continue;
            }
            slots.insert(bytes, kept.len() as u32);
            kept.push(grant);
        }
        let unreadable = kept
            .iter()
            .filter(|g| matches!(g, KeyGrant::Unreadable))
            .count();
        if unreadable > 0 {
            tracing::error!(
                keys = unreadable,
                "stored rows of some keys (or of their accounts or roles) do not decode; verifying them fails"
            );
        }
        Table {
            slots,
            grants: kept,
        }
    }

    fn get(&self, hash: &[u8; 32]) -> Option<&KeyGrant> {
        self.slots.get(hash).map(|&i| &self.grants[i as usize])
    }

    /// Roughly what the table holds in memory.
    fn bytes(&self) -> usize {
        let slot = std::mem::size_of::<([u8; 32], u32)>() + 1;
        self.slots.capacity() * slot + self.grants.iter().map(KeyGrant::bytes).sum::<usize>()
    }
}

/// One built table and what it was built from.
struct Built {
    /// The value of [`VerifyIndex::generation`] read before the store was.
    generation: u64,
    stamp: ChangeStamp,
    /// When the stamp was last found unchanged (taken before reading it).
    confirmed: Instant,
    table: Arc<Table>,
}

/// The shared index; see the module doc.
pub struct VerifyIndex {
    built: ArcSwapOption<Built>,
    /// Bumped by every change this process learns of; a table of an older one is stale.
    generation: AtomicU64,
    /// One rebuild or stamp check at a time.
    refresh: tokio::sync::Mutex<()>,
    builds: prometheus::IntCounter,
    keys: prometheus::IntGauge,
    bytes: prometheus::IntGauge,
}

impl VerifyIndex {
    pub fn new() -> VerifyIndex {
        let builds = prometheus::IntCounter::new(
            "svcacct_verify_index_builds_total",
            "Times the in-memory key verification index was built from the store",
        )
        .expect("a valid metric");
        let keys = prometheus::IntGauge::new(
            "svcacct_verify_index_keys",
            "Keys in the in-memory verification index",
        )
        .expect("a valid metric");
        let bytes = prometheus::IntGauge::new(
            "svcacct_verify_index_bytes",
            "Approximate memory the verification index holds",
        )
        .expect("a valid metric");
        VerifyIndex {
            built: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            refresh: tokio::sync::Mutex::new(()),
            builds,
            keys,
            bytes,
        }
    }

    /// The index's metrics, for the server's registry.
    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.builds.clone()),
            Box::new(self.keys.clone()),
            Box::new(self.bytes.clone()),
        ]
    }

    /// The store changed: the next verification rebuilds the table.
    pub fn store_changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Called with the writer after every write: marks the table stale when the write moved
    /// the stamp (or the stamp cannot be read).
    pub fn after_write(&self, store: &Store) {
        let built = self.built.load();
        match (store.change_stamp(), built.as_deref()) {
            (Ok(now), Some(b)) if now == b.stamp => {}
            _ => self.store_changed(),
        }
    }

    /// Verifies a presented secret at `now`.
    pub async fn verify(
        &self,
        db: &impl Reader,
        secret: &str,
        now: OffsetDateTime,
    ) -> Result<Verification, ApiError> {
        if !looks_like_key(secret) {
            return Ok(Verification::refused("malformed"));
        }
        let hash: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let built = self.current(db).await?;
        match built.table.get(&hash) {
            None => Ok(Verification::refused("unknown")),
            Some(grant) => grant.verification(now).ok_or_else(|| {
                ApiError::internal("a stored row of this key does not decode; see the server log")
            }),
        }
    }

    /// Builds the table now (at start), so the first verification does not wait for it.
    pub async fn prepare(&self, db: &impl Reader) -> Result<(), ApiError> {
        self.current(db).await.map(drop)
    }

    /// A table that may answer now: the current one, or one built or confirmed for this call.
    async fn current(&self, db: &impl Reader) -> Result<Arc<Built>, ApiError> {
        if let Some(b) = self.usable() {
            return Ok(b);
        }
        let _turn = self.refresh.lock().await;
        // Whoever held the turn before may have done the work.
        if let Some(b) = self.usable() {
            return Ok(b);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let started = Instant::now();
        // Even after news of a change, the stamp decides: news may be of this process's own
        // write (already rebuilt for), or of a write that changed no organization.
        if let Some(b) = self.built.load_full() {
            let stamp = db.read(|store| Ok(store.change_stamp()?)).await?;
            if stamp == b.stamp {
                let confirmed = Arc::new(Built {
                    generation,
                    stamp,
                    confirmed: started,
                    table: b.table.clone(),
                });
                self.built.store(Some(confirmed.clone()));
                return Ok(confirmed);
            }
        }
        let (stamp, table) = db
            .read(|store| {
                let (stamp, grants) = store.key_grants()?;
                Ok((stamp, Table::build(grants)))
            })
            .await?;
        self.builds.inc();
        self.keys.set(table.grants.len() as i64);
        self.bytes.set(table.bytes() as i64);
        tracing::debug!(
            keys = table.grants.len(),
            bytes = table.bytes(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "verify index built"
        );
        let built = Arc::new(Built {
            generation,
            stamp,
            confirmed: started,
            table: Arc::new(table),
        });
        self.built.store(Some(built.clone()));
        Ok(built)
    }

    fn usable(&self) -> Option<Arc<Built>> {
        let b = self.built.load_full()?;
        (b.generation == self.generation.load(Ordering::SeqCst)
            && b.confirmed.elapsed() < CONFIRM_EVERY)
            .then_some(b)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// The store read in place, as the server's `Db` reads it on its blocking pool.
    struct Direct(Mutex<Store>);

    impl Reader for Direct {
        async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
        where
            T: Send + 'static,
            F: FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
        {
            f(&self.0.lock().unwrap())
        }
    }

    #[tokio::test]
    async fn news_of_no_change_costs_a_stamp_check_not_a_build() {
        let dir = tempfile::tempdir().unwrap();
        let db = Direct(Mutex::new(Store::open(&dir.path().join("o.db")).unwrap()));
        let index = VerifyIndex::new();
        index.prepare(&db).await.unwrap();
        assert_eq!(index.builds.get(), 1);
        // As when a replica hears the `NOTIFY` of its own write, already rebuilt for.
        index.store_changed();
        index.prepare(&db).await.unwrap();
        assert_eq!(index.builds.get(), 1, "rebuilt with the stamp unchanged");

        // As when a replica hears of another's write.
        db.0.lock()
            .unwrap()
            .ensure_organization("acme", OffsetDateTime::now_utc())
            .unwrap();
        index.store_changed();
        index.prepare(&db).await.unwrap();
        assert_eq!(index.builds.get(), 2, "a change is rebuilt for");
    }
}

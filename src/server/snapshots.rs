//! Whole-organization snapshots, cached per revision. A plan of 10,000 accounts is one
//! snapshot request, and many pipelines plan the same organization; building its JSON means
//! reading every row and serializing megabytes, so each organization's latest snapshot is kept
//! and served while its revision stands. When an apply releases its lease the snapshot is
//! rebuilt at once, off the request path, so the next plan after an apply finds it ready.
//!
//! A snapshot also carries when each key was last used, which changes without a revision
//! (see `last_use.rs`). A kept snapshot built before uses were last written is still served
//! for [`USE_LAG`] after it was built, so keys in constant use do not rebuild it on every
//! plan; a plan's "last used" is at most that (plus the write interval) behind.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;

use super::db::Db;
use super::error::ApiError;
use crate::api::wire;

/// How long a kept snapshot is served after key uses it does not show were written.
pub const USE_LAG: Duration = Duration::from_secs(10);

/// A kept snapshot: its revision, the [`Snapshots::uses_written`] count it was built after,
/// when it was built, and its JSON.
struct Kept {
    revision: u64,
    uses: u64,
    built: Instant,
    body: Bytes,
}

/// The latest snapshot JSON of each organization, with its revision.
pub struct Snapshots {
    latest: Mutex<HashMap<String, Kept>>,
    /// How many times key uses were written: a snapshot built before the latest may show
    /// older last uses.
    uses_written: AtomicU64,
    /// Requests served from the cache (`hit`) or built (`miss`).
    counted: prometheus::IntCounterVec,
}

impl Snapshots {
    pub fn new(counted: prometheus::IntCounterVec) -> Snapshots {
        Snapshots {
            latest: Mutex::default(),
            uses_written: AtomicU64::new(0),
            counted,
        }
    }

    /// The snapshot of `org` at its current revision: from the cache, or built and cached.
    pub async fn get(&self, db: &Db, org: &str) -> Result<(u64, Bytes), ApiError> {
        let name = org.to_string();
        let revision = db
            .read(move |store| {
                store.revision(&name)?.ok_or_else(|| {
                    ApiError::not_found(format!("organization {name} does not exist"))
                })
            })
            .await?;
        let uses = self.uses_written.load(Ordering::Acquire);
        if let Some(kept) = self
            .latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(org)
            && kept.revision == revision
            && (kept.uses == uses || kept.built.elapsed() < USE_LAG)
        {
            self.counted.with_label_values(&["hit"]).inc();
            return Ok((revision, kept.body.clone()));
        }
        self.counted.with_label_values(&["miss"]).inc();
        self.build(db, org).await
    }

    /// Builds the snapshot of `org` now and keeps it, unless a newer one is kept already.
    pub async fn build(&self, db: &Db, org: &str) -> Result<(u64, Bytes), ApiError> {
        let name = org.to_string();
        let (uses, built) = (self.uses_written.load(Ordering::Acquire), Instant::now());
        let (revision, body) = db
            .read(move |store| {
                let o = store.snapshot(&name)?.ok_or_else(|| {
                    ApiError::not_found(format!("organization {name} does not exist"))
                })?;
                let revision = o.revision;
                let body = serde_json::to_vec(&wire::Organization::from(o)).map_err(|e| {
                    ApiError::internal(format!("cannot serialize the snapshot: {e}"))
                })?;
                Ok((revision, Bytes::from(body)))
            })
            .await?;
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        match latest.get(org) {
            Some(kept) if kept.revision > revision => {}
            _ => {
                let kept = Kept {
                    revision,
                    uses,
                    built,
                    body: body.clone(),
                };
                latest.insert(org.to_string(), kept);
            }
        }
        Ok((revision, body))
    }

    /// Notes that key uses were written: kept snapshots no longer show the latest.
    pub fn uses_written(&self) {
        self.uses_written.fetch_add(1, Ordering::AcqRel);
    }
}

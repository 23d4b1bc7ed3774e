//! Whole-organization snapshots, cached per revision. A plan of 10,000 accounts is one
//! snapshot request, and many pipelines plan the same organization; building its JSON means
//! reading every row and serializing megabytes, so each organization's latest snapshot is kept
//! and served while its revision stands. When an apply releases its lease the snapshot is
//! rebuilt at once, off the request path, so the next plan after an apply finds it ready.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;

use super::db::Db;
use super::error::ApiError;
use crate::api::wire;

/// The latest snapshot JSON of each organization, with its revision.
pub struct Snapshots {
    latest: Mutex<HashMap<String, (u64, Bytes)>>,
    /// Requests served from the cache (`hit`) or built (`miss`).
    counted: prometheus::IntCounterVec,
}

impl Snapshots {
    pub fn new(counted: prometheus::IntCounterVec) -> Snapshots {
        Snapshots {
            latest: Mutex::default(),
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
        if let Some((rev, body)) = self
            .latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(org)
            && *rev == revision
        {
            self.counted.with_label_values(&["hit"]).inc();
            return Ok((revision, body.clone()));
        }
        self.counted.with_label_values(&["miss"]).inc();
        self.build(db, org).await
    }

    /// Builds the snapshot of `org` now and keeps it, unless a newer one is kept already.
    pub async fn build(&self, db: &Db, org: &str) -> Result<(u64, Bytes), ApiError> {
        let name = org.to_string();
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
            Some((kept, _)) if *kept > revision => {}
            _ => {
                latest.insert(org.to_string(), (revision, body.clone()));
            }
        }
        Ok((revision, body))
    }
}

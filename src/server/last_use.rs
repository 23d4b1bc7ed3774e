//! When each key was last used. A verification (of a key presented to `/v1/keys/verify`, or
//! as a caller's own credentials) only notes the time in memory; a background task writes the
//! notes in one transaction every [`FLUSH_EVERY`], so verification never waits on a write and
//! a key verified a thousand times a second costs one row update a second. The stored time is
//! therefore at most [`FLUSH_EVERY`] (plus one write) behind, and a server killed with SIGKILL
//! loses at most that much; a graceful stop writes what it holds first. Recording is not a
//! change to the organization: no revision, no audit entry, no lease needed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use super::AppState;

/// How often noted uses are written: the bound on how stale `last_used_at` is.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Uses noted since the last write: key id to its latest use, in Unix seconds.
#[derive(Default)]
pub struct LastUse {
    pending: Mutex<HashMap<String, i64>>,
}

impl LastUse {
    /// Notes a use of key `id` at `at`.
    pub fn note(&self, id: &str, at: OffsetDateTime) {
        let at = at.unix_timestamp();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let slot = pending.entry(id.to_string()).or_insert(at);
        *slot = (*slot).max(at);
    }

    fn take(&self) -> Vec<(String, i64)> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.drain().collect()
    }
}

/// Writes what is noted; on failure the uses are noted again for the next round.
pub async fn flush(state: &Arc<AppState>) {
    let uses = state.last_use.take();
    if uses.is_empty() {
        return;
    }
    let retry = uses.clone();
    let written = state
        .db
        .write(move |store| Ok(store.record_last_use(&uses)?))
        .await;
    if written.is_ok() {
        state.snapshots.uses_written();
    } else {
        tracing::warn!("cannot record when keys were last used; retrying");
        for (id, at) in retry {
            if let Ok(at) = OffsetDateTime::from_unix_timestamp(at) {
                state.last_use.note(&id, at);
            }
        }
    }
}

/// Writes noted uses every [`FLUSH_EVERY`] for as long as the server runs.
pub fn spawn_flusher(state: Arc<AppState>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(FLUSH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            flush(&state).await;
        }
    });
}

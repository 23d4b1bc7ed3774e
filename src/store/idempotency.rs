//! Stored responses for idempotent retries: a write answered once is answered the same way
//! when its request comes again under the same `Idempotency-Key`, for a day, instead of
//! running twice.

use time::OffsetDateTime;

use super::columns::ts;
use super::sql::Begin;
use super::{Store, StoreError};

/// How long a stored response can be replayed.
const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;

/// A response stored under an idempotency key.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    /// What the original request was, so a key reused for another request is refused.
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
}

impl Store {
    /// The response stored under an idempotency key, if it is recent enough to replay.
    pub fn stored_response(
        &self,
        org: &str,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<StoredResponse>, StoreError> {
        self.conn.query_opt(
            "SELECT fingerprint, status, body FROM idempotency
             WHERE org = ?1 AND key = ?2 AND created_at > ?3",
            &[&org, &key, &(ts(now) - IDEMPOTENCY_TTL_SECS)],
            |r| {
                Ok(StoredResponse {
                    fingerprint: r.get(0)?,
                    status: r.get::<i32>(1)? as u16,
                    body: r.get(2)?,
                })
            },
        )
    }

    /// Stores a response for replay, forgetting the ones too old to replay.
    pub fn store_response(
        &mut self,
        org: &str,
        key: &str,
        response: &StoredResponse,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let tx = self.conn.begin(Begin::Write, Some(org))?;
        tx.exec(
            "DELETE FROM idempotency WHERE created_at <= ?1",
            &[&(ts(now) - IDEMPOTENCY_TTL_SECS)],
        )?;
        tx.exec(
            "INSERT INTO idempotency (org, key, fingerprint, status, body, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (org, key) DO UPDATE SET fingerprint = excluded.fingerprint,
             status = excluded.status, body = excluded.body, created_at = excluded.created_at",
            &[
                &org,
                &key,
                &response.fingerprint,
                &i32::from(response.status),
                &response.body,
                &ts(now),
            ],
        )?;
        tx.commit()?;
        Ok(())
    }
}

//! Reading the audit log: a filtered page of it for the API, and the newest entry of each
//! target for a plan's attribution of drift. The log is written with every change, by
//! [`Store::apply`].

use serde::Serialize;
use time::OffsetDateTime;

use super::columns::{col_ts, ts};
use super::sql::Row;
use super::{Store, StoreError};

/// One audit-log entry with its id, for paging.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// Which audit entries to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub actor: Option<String>,
    pub target: Option<String>,
    /// Entries with an id greater than this.
    pub after: Option<i64>,
    pub limit: u32,
}

impl Store {
    /// The newest audit entry of each target of an organization, in one pass over its log.
    pub fn last_changes(&self, org: &str) -> Result<Vec<AuditRecord>, StoreError> {
        self.conn.query(
            "SELECT a.id, a.time, a.actor, a.action, a.target, a.detail FROM audit_log a
             JOIN (SELECT max(id) AS id FROM audit_log WHERE org = ?1 GROUP BY target) l
               ON a.id = l.id
             ORDER BY a.id",
            &[&org],
            audit_record,
        )
    }

    /// A page of an organization's audit log, oldest first, and the id to continue after
    /// when there is more.
    pub fn audit_page(
        &self,
        org: &str,
        filter: &AuditFilter,
    ) -> Result<(Vec<AuditRecord>, Option<i64>), StoreError> {
        let limit = filter.limit.max(1) as i64;
        let mut entries = self.conn.query(
            "SELECT id, time, actor, action, target, detail FROM audit_log
             WHERE org = ?1 AND id > ?2
               AND (CAST(?3 AS BIGINT) IS NULL OR time >= ?3) AND (CAST(?4 AS BIGINT) IS NULL OR time <= ?4)
               AND (CAST(?5 AS TEXT) IS NULL OR actor = ?5) AND (CAST(?6 AS TEXT) IS NULL OR target = ?6)
             ORDER BY id LIMIT ?7",
            &[
                &org,
                &filter.after.unwrap_or(0),
                &filter.since.map(ts),
                &filter.until.map(ts),
                &filter.actor,
                &filter.target,
                &(limit + 1),
            ],
            audit_record,
        )?;
        let next = if entries.len() as i64 > limit {
            entries.truncate(limit as usize);
            entries.last().map(|e| e.id)
        } else {
            None
        };
        Ok((entries, next))
    }
}

fn audit_record(r: &Row<'_>) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        id: r.get(0)?,
        time: col_ts(r, 1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        target: r.get(4)?,
        detail: r.get(5)?,
    })
}

//! Who last changed each drifted object, from the server's audit log: a plan shows it next to
//! the drift. A token that may plan but not read the log gets no attribution, not an error.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::HttpBackend;
use super::request::protocol;
use crate::address::Address;
use crate::backend::{BackendError, LastChange};

/// Up to this many drifted objects, the audit log is read per object; past it, whole.
const AUDIT_PER_TARGET: usize = 20;

#[derive(Deserialize)]
struct Page {
    entries: Vec<Entry>,
    next: Option<i64>,
}

#[derive(Deserialize)]
struct Entry {
    time: String,
    actor: String,
    action: String,
    target: String,
}

/// What one read of the log answered.
enum AuditRead {
    Page(Page),
    /// The token may not read the log.
    Forbidden,
    /// The organization does not exist yet: nothing has changed.
    NoOrganization,
}

impl HttpBackend {
    /// The newest entry of each object in `objects`, or `None` when the log is not readable.
    pub(super) fn read_last_changes(
        &self,
        objects: &[Address],
    ) -> Result<Option<BTreeMap<Address, LastChange>>, BackendError> {
        let wanted: BTreeSet<String> = objects.iter().map(ToString::to_string).collect();
        // A few objects: their own entries; many: one pass over the whole log, fewer requests.
        let filters: Vec<Option<&String>> = if wanted.len() <= AUDIT_PER_TARGET {
            wanted.iter().map(Some).collect()
        } else {
            vec![None]
        };
        let mut found = BTreeMap::new();
        for target in filters {
            let mut after = 0i64;
            loop {
                let page = match self.audit_page(target, after)? {
                    AuditRead::Page(page) => page,
                    // A token that may plan but not read the audit log: no attribution.
                    AuditRead::Forbidden => return Ok(None),
                    AuditRead::NoOrganization => return Ok(Some(BTreeMap::new())),
                };
                for e in page.entries {
                    if !wanted.contains(&e.target) {
                        continue;
                    }
                    if let Ok(address) = e.target.parse() {
                        // Oldest first: the last one seen is the newest.
                        found.insert(
                            address,
                            LastChange {
                                time: e.time,
                                actor: e.actor,
                                action: e.action,
                            },
                        );
                    }
                }
                match page.next {
                    Some(n) if n > after => after = n,
                    _ => break,
                }
            }
        }
        Ok(Some(found))
    }

    /// One page of the log after entry `after`: one object's entries, or everyone's.
    fn audit_page(&self, target: Option<&String>, after: i64) -> Result<AuditRead, BackendError> {
        let mut path = self.org_path(&format!("/audit?limit=1000&after={after}"));
        if let Some(t) = target {
            path.push_str(&format!("&target={t}"));
        }
        let resp = self.send(Method::GET, &path, None, &[])?;
        match resp.status() {
            StatusCode::FORBIDDEN => return Ok(AuditRead::Forbidden),
            StatusCode::NOT_FOUND => return Ok(AuditRead::NoOrganization),
            s if !s.is_success() => return Err(Self::error_of(resp, "audit log")),
            _ => {}
        }
        let page = resp.json().map_err(|e| protocol("audit log", e))?;
        Ok(AuditRead::Page(page))
    }
}

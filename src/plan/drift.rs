//! Who changed a drifted object live, and when: a plan that updates or deletes an object the
//! config did not just change is undoing someone's hand edit, and the reviewer should know
//! whose. Read from the backend's audit log where it keeps one
//! ([`crate::backend::Backend::last_changes`]); backends without one show nothing.

use serde::{Deserialize, Serialize};

use super::{Action, Plan};
use crate::address::Address;

/// The last write to an object, as the backend's audit log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastChange {
    /// RFC 3339.
    pub time: String,
    /// Who, as the backend names them (a token's name, `svcacct:<user>` for a local apply).
    pub actor: String,
    /// The audit log's action name (`put_team`, `rotate_key`, …).
    pub action: String,
}

/// The objects of a plan that exist live and differ from the config: the ones whose last
/// live change is worth showing.
pub fn drifted(plan: &Plan) -> Vec<Address> {
    let mut out: Vec<Address> = plan
        .changes
        .iter()
        .filter(|c| matches!(c.action, Action::Update | Action::Delete) && c.before.is_some())
        .map(|c| c.address.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

//! Which change of a plan brings each violation in, so a reviewer sees what to push back on.

use std::collections::HashMap;

use crate::address::Address;
use crate::plan::{Change, Finding};

/// Names, on each finding, the plan's change that brings it in: a change of the role the
/// offending permission comes through, else a change of the object itself, else of the
/// account at fault (a key's, or a team's member). A finding no change causes is already live.
pub fn attach_causes(findings: &mut [Finding], changes: &[Change]) {
    if findings.is_empty() || changes.is_empty() {
        return;
    }
    let by_address: HashMap<&Address, &Change> = changes.iter().map(|c| (&c.address, c)).collect();
    let describe = |c: &Change| format!("{} ({})", c.address, c.action.name());
    for f in findings.iter_mut() {
        let role = f.via_role.as_deref().map(Address::role);
        let owner = match &f.object {
            Address::Key { account, .. } => Some(Address::account(account)),
            _ => f.account.as_deref().map(Address::account),
        };
        f.cause = role
            .as_ref()
            .and_then(|r| by_address.get(r))
            .or_else(|| by_address.get(&f.object))
            .or_else(|| owner.as_ref().and_then(|o| by_address.get(o)))
            .map(|c| describe(c));
    }
}

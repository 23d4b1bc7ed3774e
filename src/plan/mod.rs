//! Plans: the changes that would bring a live organization to the desired one, each with its
//! address, action, fields before and after, and the work the apply does for it.

mod diff;
mod drift;
mod effects;
mod key_files;
mod last_use;
mod policy;
mod render;
mod saved;
mod slice;
mod snapshot;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use diff::{PlanOptions, diff, rotate_now};
pub use drift::{LastChange, drifted};
pub use effects::{AccountEffect, Effects, KeyEffect, RoleReach};
pub use key_files::{Held, KeyFiles, SecretsDir};
pub use last_use::{KeyUse, destroyed_key_uses};
pub use policy::{Finding, RuleSeverity, blocking, counts};
pub use render::{render_markdown, render_text, to_json};
pub use saved::{SavedPlan, SavedPlanError};
pub use slice::Slice;
pub use snapshot::{Field, FieldValue, Snapshot};

use crate::address::Address;
use crate::operation::Operation;

/// What happens to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Create,
    Update,
    Replace,
    Rotate,
    /// A rotated-out key whose overlap has ended is revoked.
    Retire,
    Delete,
    /// A key's secret goes to delivery targets that lack its live key id (no backend write).
    Deliver,
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        [
            Action::Create,
            Action::Update,
            Action::Replace,
            Action::Rotate,
            Action::Retire,
            Action::Delete,
            Action::Deliver,
        ]
        .into_iter()
        .find(|a| a.name() == name)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown action `{name}`")))
    }
}

impl Action {
    /// The action's one name: in JSON plans, summaries and the markdown table.
    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Rotate => "rotate",
            Action::Retire => "retire",
            Action::Delete => "delete",
            Action::Deliver => "deliver",
        }
    }

    /// The one-glyph marker plans print.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Rotate => "↻",
            Action::Retire => "-",
            Action::Delete => "-",
            Action::Deliver => "→",
        }
    }
}

/// The apply stage a piece of work runs in, in dependency order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    RolesAndTeams,
    ServiceAccounts,
    Memberships,
    KeyIssue,
    KeyRevocation,
    AccountDeletion,
    TeamAndRoleDeletion,
}

impl Stage {
    /// Every stage, in the order the apply runs them.
    pub const ALL: [Stage; 7] = [
        Stage::RolesAndTeams,
        Stage::ServiceAccounts,
        Stage::Memberships,
        Stage::KeyIssue,
        Stage::KeyRevocation,
        Stage::AccountDeletion,
        Stage::TeamAndRoleDeletion,
    ];

    /// When in the apply an operation runs.
    pub fn of(op: &Operation) -> Stage {
        match op {
            Operation::PutRole { .. } | Operation::PutTeam { .. } => Stage::RolesAndTeams,
            Operation::PutServiceAccount { .. } => Stage::ServiceAccounts,
            Operation::SetMemberships { .. } => Stage::Memberships,
            Operation::IssueKey { .. }
            | Operation::RegisterKey { .. }
            | Operation::UpdateKey { .. } => Stage::KeyIssue,
            Operation::RevokeKey { .. } => Stage::KeyRevocation,
            Operation::DeleteServiceAccount { .. } => Stage::AccountDeletion,
            Operation::DeleteTeam { .. } | Operation::DeleteRole { .. } => {
                Stage::TeamAndRoleDeletion
            }
        }
    }
}

/// One planned change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub address: Address,
    pub action: Action,
    /// Why, when the action is not obvious from the config (rotation, retirement, …).
    pub reason: Option<String>,
    pub before: Option<Snapshot>,
    pub after: Option<Snapshot>,
    /// The backend writes the apply makes for it.
    pub work: Vec<Operation>,
    /// Ids of the key secrets this change revokes, for people to check (never a secret).
    pub revokes: Vec<String>,
    /// Indexes of changes that must succeed before this one may run.
    pub depends_on: Vec<usize>,
}

impl Change {
    /// The fields whose value differs between before and after.
    pub fn changed_fields(&self) -> Vec<Field> {
        match (&self.before, &self.after) {
            (Some(b), Some(a)) => {
                let before = b.fields();
                a.fields()
                    .into_iter()
                    .filter(|(f, v)| !before.iter().any(|(g, w)| g == f && w == v))
                    .map(|(f, _)| f)
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}

/// A computed plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub organization: String,
    /// The live revision the plan was computed at.
    pub revision: u64,
    pub changes: Vec<Change>,
    /// Live objects svcacct did not create, left alone.
    pub unmanaged: Vec<Address>,
    /// Live keys whose secret svcacct never held (made outside it and adopted): left working;
    /// `svcacct rotate` brings one under svcacct.
    pub secrets_not_held: Vec<Address>,
    /// Things worth knowing that change nothing.
    pub notes: Vec<String>,
    /// Things a reviewer must not miss (a consumer that never switched to a rotated key).
    /// Left out of plans saved before it existed.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Who gains and loses what ([`Plan::review`] fills it in).
    pub effects: Effects,
    /// For objects that drifted from the config, their last live change, where the backend
    /// keeps an audit log.
    pub last_changed: BTreeMap<Address, LastChange>,
    /// When each live secret the plan destroys was last used, by key id, where the backend
    /// records uses. Left out of plans saved before it existed.
    #[serde(default)]
    pub key_uses: BTreeMap<String, KeyUse>,
    /// Violations of the config's policy rules, excepted ones included, each with the change
    /// that causes it where one does.
    #[serde(default)]
    pub policy: Vec<Finding>,
}

impl Plan {
    /// Adds what a reviewer needs besides the changes: the access they change.
    pub fn review(
        &mut self,
        desired: &crate::model::Organization,
        live: &crate::model::LiveOrganization,
    ) {
        self.effects = effects::compute(desired, live, &self.changes);
    }

    /// Whether applying would change anything.
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// How many changes of each action.
    pub fn counts(&self) -> BTreeMap<Action, usize> {
        let mut counts = BTreeMap::new();
        for c in &self.changes {
            *counts.entry(c.action).or_insert(0) += 1;
        }
        counts
    }

    /// "2 to create, 1 to update" or "no changes".
    pub fn summary(&self) -> String {
        if self.changes.is_empty() {
            return "no changes".into();
        }
        self.counts()
            .iter()
            .map(|(a, n)| format!("{n} to {}", a.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot delete protected {}: {}; set `protect: false` on it in the config and apply before removing it", if .0.len() == 1 { "object" } else { "objects" }, .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Protected(Vec<Address>),
    #[error(
        "the plan deletes {deletes} of {managed} managed objects ({percent}%), more than the {limit}% allowed; pass --allow-mass-delete if that is intended"
    )]
    MassDelete {
        deletes: usize,
        managed: usize,
        percent: usize,
        limit: u32,
    },
}

//! Policy as part of the config: rules such as "no key without an expiry" or "no account may
//! gain `secrets:*`", written under `policy.rules` (or in `policy/*.yaml` of a config
//! directory) and checked by `validate`, `plan` and `apply` against the desired organization.
//!
//! Teams bolt a generic policy engine onto other tools; svcacct knows the domain, so a rule
//! here can speak of keys, rotation, owners and effective permissions directly, and each
//! violation points at the YAML node to change. The flow: [`compile`] checks the rules as
//! written (config errors with places), [`evaluate`] judges the desired organization (every
//! violation at once, exceptions kept with their reason), [`attach_causes`] names the plan's
//! change that brings a violation in, and [`render`] shows them in every plan format;
//! [`explain`] answers "which rules apply to this object, and does it pass?".

pub mod compile;
pub mod effective;
pub mod evaluate;
pub mod explain;
pub mod matching;
pub mod render;
pub mod rule;
pub mod spans;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub use compile::compile;
pub use evaluate::evaluate;
pub use rule::{RawRule, Rule, RuleSeverity};

use crate::address::Address;
use evaluate::Breach;
use rule::Exception;
use spans::Spans;

/// The config's checked rules, with what they need besides the desired organization.
#[derive(Debug, Default)]
pub struct Rules {
    pub rules: Vec<Rule>,
    /// Accounts' `owner:` teams (kept with the rules: no backend stores them).
    pub owners: HashMap<String, String>,
    /// Where each object is written, for violations' places.
    pub spans: Spans,
}

/// One violation of a rule by one object, as every output shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The rule's name.
    pub rule: String,
    /// The rule's kind (`key_max_lifetime`, …).
    pub kind: String,
    pub severity: RuleSeverity,
    /// The object that breaks the rule.
    pub object: Address,
    pub message: String,
    pub help: String,
    /// Where to fix it.
    pub file: String,
    pub line: u64,
    pub column: u64,
    /// When an exception of the rule lets this through: its reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excepted: Option<String>,
    /// In a plan: the change that brings the violation in, such as `role.wh (update)`; none
    /// when the violation is already live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// The role a permission comes through, to find the cause.
    #[serde(skip)]
    pub via_role: Option<String>,
    /// The account whose membership is at fault when the object is a team.
    #[serde(skip)]
    pub account: Option<String>,
}

impl Finding {
    fn new(
        rules: &Rules,
        rule: &Rule,
        object: &Address,
        b: Breach,
        excepted: Option<&Exception>,
    ) -> Finding {
        Finding {
            rule: rule.name.clone(),
            kind: rule.kind.name().into(),
            severity: rule.severity,
            object: object.clone(),
            message: b.message,
            help: b.help,
            file: rules.spans.file(b.at),
            line: b.at.line,
            column: b.at.column,
            excepted: excepted.map(|e| e.reason.clone()),
            cause: None,
            via_role: b.via_role,
            account: b.account,
        }
    }

    /// Whether it blocks validate, plan and apply: an error no exception lets through.
    pub fn blocks(&self) -> bool {
        self.severity == RuleSeverity::Error && self.excepted.is_none()
    }

    /// `file:line:column`.
    pub fn place(&self) -> String {
        format!("{}:{}:{}", self.file, self.line, self.column)
    }
}

/// How many findings block.
pub fn blocking(findings: &[Finding]) -> usize {
    findings.iter().filter(|f| f.blocks()).count()
}

/// Names, on each finding, the plan's change that brings it in: a change of the role the
/// offending permission comes through, else a change of the object itself, else of the
/// account at fault (a key's, or a team's member). A finding no change causes is already live.
pub fn attach_causes(findings: &mut [Finding], changes: &[crate::plan::Change]) {
    if findings.is_empty() || changes.is_empty() {
        return;
    }
    let by_address: HashMap<&Address, &crate::plan::Change> =
        changes.iter().map(|c| (&c.address, c)).collect();
    let describe = |c: &crate::plan::Change| format!("{} ({})", c.address, c.action.name());
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

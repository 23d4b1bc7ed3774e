//! Policy findings as plans carry them: each violation of a config's policy rule by one
//! object, with its place, and the exception that lets it through if one does. The rules and
//! their judging live above (`crate::policy`); a plan only holds and shows what they found.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::address::Address;

/// How bad a violation is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleSeverity {
    /// Blocks `validate`, `plan` and `apply`.
    #[default]
    Error,
    /// Reported, and nothing is blocked.
    Warn,
}

impl RuleSeverity {
    /// The word violations are labelled with.
    pub fn label(self) -> &'static str {
        match self {
            RuleSeverity::Error => "error",
            RuleSeverity::Warn => "warning",
        }
    }
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

/// "2 errors, 1 warning, 1 excepted".
pub fn counts(findings: &[Finding]) -> String {
    let errors = blocking(findings);
    let warnings = findings
        .iter()
        .filter(|f| f.severity == RuleSeverity::Warn && f.excepted.is_none())
        .count();
    let excepted = findings.iter().filter(|f| f.excepted.is_some()).count();
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    [
        plural(errors, "error", "errors"),
        plural(warnings, "warning", "warnings"),
        format!("{excepted} excepted"),
    ]
    .join(", ")
}

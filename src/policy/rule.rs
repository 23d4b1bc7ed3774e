//! Rules as written under `policy.rules` and as checked. A rule is a mapping with exactly one
//! rule kind (`key_max_lifetime: 90d`) beside the settings every kind shares (`name`,
//! `severity`, `match`, `except`), so a misspelled kind is an unknown field, found by the
//! parser with its place and the closest field suggested, like any other typo in the config.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::raw::Loc;
use crate::duration::Duration;

use super::matching::Match;

/// One policy rule: exactly one rule kind, and how it is applied.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// What violations and `svcacct policy explain` call the rule. Default: its kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Loc<String>>,
    /// `error` (the default) blocks validate, plan and apply; `warn` is reported only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Loc<RuleSeverity>>,
    /// Which objects the rule applies to. Default: every object of its kind. Example:
    /// `match: { name: "ci-*", team: platform }` (both must hold).
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub matches: Option<Loc<RawMatch>>,
    /// Objects the rule does not apply to, each with the reason reviewers see in every plan.
    /// Example: `except: [{ match: { name: legacy-bot }, reason: "retired in Q3 (OPS-12)" }]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<Loc<RawException>>,

    /// Keys: every key needs an `expires_in` of at most this. Example:
    /// `key_max_lifetime: 90d`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_max_lifetime: Option<Loc<Duration>>,
    /// Keys: every key needs a `rotate_every` of at most this. Example:
    /// `rotation_required: 30d`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_required: Option<Loc<Duration>>,
    /// Service accounts: an account that holds every permission (`admin: true`, or a role
    /// granting `*:*`) must be `protect: true`. Example: `admin_requires_protect: true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_requires_protect: Option<Loc<bool>>,
    /// Roles, key scopes and the built-in roles accounts hold: no permission with a `*` unless
    /// it is in `allow`. Example: `no_wildcard_permissions: { allow: ["*:read"] }`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_wildcard_permissions: Option<Loc<RawWildcards>>,
    /// Service accounts: each names its owning team, by `owner: <team>` or by a team's name in
    /// its description. Example: `account_requires_owner: true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_requires_owner: Option<Loc<bool>>,
    /// Service accounts: at most this many keys. Example: `max_keys_per_account: 3`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_keys_per_account: Option<Loc<u32>>,
    /// Service accounts: none may hold any of these permissions through any path (admin, any
    /// membership's role), judged on the effective permissions after the change, so a role
    /// edit that widens many accounts is caught. A permission is held when a granted pattern
    /// covers it: `*:*` holds `secrets:*`, `secrets:read` does not. Example:
    /// `forbid_permission: ["*:*", "secrets:*"]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forbid_permission: Option<Loc<Vec<Loc<String>>>>,
    /// Keys: every key narrows its account's permissions with `scopes`. Example:
    /// `require_scopes: true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_scopes: Option<Loc<bool>>,
    /// Teams: the highest role a team may hand out; every membership in a matched team must
    /// grant a role whose permissions this role covers. Example:
    /// `{ team_role_ceiling: deployer, match: { team: data } }`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_role_ceiling: Option<Loc<String>>,
}

/// The rule kinds, in the order they are documented.
pub const KINDS: [&str; 9] = [
    "key_max_lifetime",
    "rotation_required",
    "admin_requires_protect",
    "no_wildcard_permissions",
    "account_requires_owner",
    "max_keys_per_account",
    "forbid_permission",
    "require_scopes",
    "team_role_ceiling",
];

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

/// Which objects a rule (or an exception) applies to; every given condition must hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    /// A glob over the object's name (`*` any run of characters, `?` one character). A key
    /// matches by its account's name or by `account.key`. Example: `name: "ci-*"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Loc<String>>,
    /// A team: accounts that are members of it or name it as `owner`, their keys, and the team
    /// itself. Example: `team: platform`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<Loc<String>>,
}

/// An exception to a rule: objects it does not apply to, and why.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawException {
    /// The objects excepted.
    #[serde(rename = "match")]
    pub matches: Option<Loc<RawMatch>>,
    /// Why, for reviewers: required, and shown in every plan.
    pub reason: Option<Loc<String>>,
}

/// The settings of `no_wildcard_permissions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWildcards {
    /// Wildcard permissions that are allowed anyway, exactly as written (`*:read`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Loc<String>>,
}

/// Where something is written: a file of the config (by index) and a line and column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Place {
    pub file: usize,
    pub line: u64,
    pub column: u64,
}

impl Place {
    /// The place of a located value in `file`.
    pub fn of<T>(file: usize, l: &Loc<T>) -> Place {
        Place {
            file,
            line: l.line.max(1),
            column: l.column.max(1),
        }
    }
}

/// A checked rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub kind: Kind,
    pub severity: RuleSeverity,
    pub matches: Match,
    pub exceptions: Vec<Exception>,
    /// Where the rule's kind is written.
    pub at: Place,
}

/// What a rule requires, with its parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    KeyMaxLifetime(Duration),
    RotationRequired(Duration),
    AdminRequiresProtect,
    NoWildcardPermissions { allow: Vec<String> },
    AccountRequiresOwner,
    MaxKeysPerAccount(usize),
    ForbidPermission(Vec<String>),
    RequireScopes,
    TeamRoleCeiling(String),
}

/// The kinds of object a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Role,
    Team,
    Account,
    Key,
}

impl Kind {
    /// The kind's name, as written.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::KeyMaxLifetime(_) => "key_max_lifetime",
            Kind::RotationRequired(_) => "rotation_required",
            Kind::AdminRequiresProtect => "admin_requires_protect",
            Kind::NoWildcardPermissions { .. } => "no_wildcard_permissions",
            Kind::AccountRequiresOwner => "account_requires_owner",
            Kind::MaxKeysPerAccount(_) => "max_keys_per_account",
            Kind::ForbidPermission(_) => "forbid_permission",
            Kind::RequireScopes => "require_scopes",
            Kind::TeamRoleCeiling(_) => "team_role_ceiling",
        }
    }

    /// The objects the kind judges.
    pub fn targets(&self) -> &'static [Target] {
        match self {
            Kind::KeyMaxLifetime(_) | Kind::RotationRequired(_) | Kind::RequireScopes => {
                &[Target::Key]
            }
            Kind::AdminRequiresProtect
            | Kind::AccountRequiresOwner
            | Kind::MaxKeysPerAccount(_)
            | Kind::ForbidPermission(_) => &[Target::Account],
            Kind::NoWildcardPermissions { .. } => &[Target::Role, Target::Account, Target::Key],
            Kind::TeamRoleCeiling(_) => &[Target::Team],
        }
    }

    /// What the rule requires, in a sentence for `policy explain`.
    pub fn requirement(&self) -> String {
        match self {
            Kind::KeyMaxLifetime(d) => format!("every key expires within {d}"),
            Kind::RotationRequired(d) => format!("every key rotates at least every {d}"),
            Kind::AdminRequiresProtect => "an account holding every permission is protected".into(),
            Kind::NoWildcardPermissions { allow } if allow.is_empty() => {
                "no permission with a `*`".into()
            }
            Kind::NoWildcardPermissions { allow } => format!(
                "no permission with a `*` except {}",
                allow
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Kind::AccountRequiresOwner => "every account names its owning team".into(),
            Kind::MaxKeysPerAccount(n) => format!("at most {n} keys per account"),
            Kind::ForbidPermission(p) => format!(
                "no account may gain {}",
                p.iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Kind::RequireScopes => "every key narrows its account's permissions with scopes".into(),
            Kind::TeamRoleCeiling(r) => format!("a team hands out no role above `{r}`"),
        }
    }
}

/// An exception of a rule.
#[derive(Debug, Clone)]
pub struct Exception {
    pub matches: Match,
    pub reason: String,
    pub at: Place,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Editors show the schema's descriptions: every kind says what it does, with an example.
    #[test]
    fn every_rule_kind_is_documented_with_an_example_in_the_schema() {
        let schema = serde_json::to_value(schemars::schema_for!(RawRule)).unwrap();
        for kind in KINDS {
            let d = schema["properties"][kind]["description"]
                .as_str()
                .unwrap_or_else(|| panic!("{kind} has a description"));
            assert!(d.contains("Example:") && d.contains(kind), "{kind}: {d}");
        }
    }
}

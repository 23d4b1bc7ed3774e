//! Rules as checked: what each rule requires, which objects it applies to, its exceptions,
//! and where it is written. Rules as written are in `config::raw` (`RawRule`): a rule is a
//! mapping with exactly one rule kind beside the settings every kind shares, so a misspelled
//! kind is an unknown field, found by the parser with its place like any other typo.

use std::collections::HashMap;

use super::matching::Match;
use super::spans::{Place, Spans};
use crate::duration::Duration;
use crate::plan::RuleSeverity;

/// The config's checked rules, with what they need besides the desired organization.
#[derive(Debug, Default)]
pub struct Rules {
    pub rules: Vec<Rule>,
    /// Accounts' `owner:` teams (kept with the rules: no backend stores them).
    pub owners: HashMap<String, String>,
    /// Where each object is written, for violations' places.
    pub spans: Spans,
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
    use crate::config::raw::{KINDS, RawRule};

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

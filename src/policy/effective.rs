//! Effective-permission rules: what an account may do through every path — `admin: true`
//! and each membership's role — judged on the desired organization as a whole. A rule such as
//! "no account may gain `secrets:*`" is about access, not YAML lines: a one-line role edit that
//! widens forty accounts breaks it forty times, and each violation names the path.

use std::collections::BTreeSet;

use crate::config::rules::{Place, Spans};
use crate::model::{Organization, ServiceAccount, pattern_covers};

/// How an account holds a permission pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// `admin: true`.
    Admin,
    /// A membership: the team and the role it grants.
    Role { team: String, role: String },
}

/// One permission pattern an account holds, and how.
#[derive(Debug, Clone)]
pub struct Grant {
    pub pattern: String,
    pub path: Path,
    /// Whether the role is built in (its permissions are written nowhere in the config).
    pub builtin: bool,
}

impl Grant {
    /// "`admin: true`" or "role `wh` in team `platform`", for messages.
    pub fn describe(&self) -> String {
        match &self.path {
            Path::Admin => "`admin: true`".into(),
            Path::Role { team, role } if self.builtin => {
                format!("built-in role `{role}` in team `{team}`")
            }
            Path::Role { team, role } => format!("role `{role}` in team `{team}`"),
        }
    }

    /// The role the grant comes through, if any.
    pub fn role(&self) -> Option<&str> {
        match &self.path {
            Path::Admin => None,
            Path::Role { role, .. } => Some(role),
        }
    }

    /// Where the grant is written: the role's permission for a custom role (where it would be
    /// narrowed), the membership for a built-in one, the account for `admin`.
    pub fn place(&self, spans: &Spans, account: &str) -> Place {
        let a = spans.accounts.get(account);
        match &self.path {
            Path::Admin => a.map(|a| a.at).unwrap_or_default(),
            Path::Role { team, role } => {
                let custom = spans
                    .roles
                    .get(role)
                    .and_then(|r| r.permissions.get(&self.pattern))
                    .filter(|_| !self.builtin);
                custom.copied().unwrap_or_else(|| {
                    a.and_then(|a| a.teams.get(team))
                        .map(|t| t.1)
                        .or(a.map(|a| a.at))
                        .unwrap_or_default()
                })
            }
        }
    }
}

/// Every pattern the account holds, with its path. A disabled account is judged as if
/// enabled: enabling it is one line, and the rule is about what it could do.
pub fn grants(org: &Organization, account: &ServiceAccount) -> Vec<Grant> {
    let mut out = Vec::new();
    if account.admin {
        out.push(Grant {
            pattern: "*:*".into(),
            path: Path::Admin,
            builtin: true,
        });
    }
    for (team, role) in &account.teams {
        let Some(r) = org.roles.get(role) else {
            continue;
        };
        for p in &r.permissions {
            out.push(Grant {
                pattern: p.clone(),
                path: Path::Role {
                    team: team.clone(),
                    role: role.clone(),
                },
                builtin: r.builtin,
            });
        }
    }
    out
}

/// The grants through which an account holds `forbidden` (a granted pattern covering it).
pub fn paths_to<'a>(grants: &'a [Grant], forbidden: &str) -> Vec<&'a Grant> {
    let mut seen = BTreeSet::new();
    grants
        .iter()
        .filter(|g| pattern_covers(&g.pattern, forbidden))
        .filter(|g| seen.insert((g.describe(), g.pattern.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wide_role_is_a_path_to_a_narrower_forbidden_permission() {
        let mut org = Organization::new("acme");
        org.roles.insert(
            "wh".into(),
            crate::model::Role {
                permissions: ["secrets:*".to_string(), "flows:read".to_string()].into(),
                ..Default::default()
            },
        );
        let a = ServiceAccount {
            teams: crate::model::SmallMap::from_iter([
                ("t".into(), "wh".into()),
                ("u".into(), "viewer".into()),
            ]),
            ..Default::default()
        };
        let g = grants(&org, &a);
        let to: Vec<String> = paths_to(&g, "secrets:write")
            .iter()
            .map(|g| g.describe())
            .collect();
        assert_eq!(to, ["role `wh` in team `t`"]);
        assert!(paths_to(&g, "*:*").is_empty());
        let read: Vec<String> = paths_to(&g, "secrets:read")
            .iter()
            .map(|g| g.describe())
            .collect();
        assert_eq!(
            read,
            [
                "role `wh` in team `t`",
                "built-in role `viewer` in team `u`"
            ]
        );
    }
}

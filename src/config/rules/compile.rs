//! Checking rules as written: exactly one kind each, globs that are globs, teams and roles
//! that exist (with the closest name suggested), exceptions that say why. Every problem is a
//! config diagnostic with its place, reported together with the config's other errors.

use std::collections::HashMap;

use super::matching::{Glob, Match};
use super::rule::{Exception, Kind, Rule, Rules};
use super::spans::Place;
use super::spans::Spans;
use crate::config::diagnostic::{Diagnostic, Severity};
use crate::config::load::Merged;
use crate::config::raw::{KINDS, Loc, RawMatch, RawRule};
use crate::model::Organization;
use crate::model::valid_permission;
use crate::suggest::closest;

struct Check<'a> {
    merged: &'a Merged,
    desired: &'a Organization,
    found: &'a mut Vec<Diagnostic>,
}

impl Check<'_> {
    fn error(&mut self, place: Place, message: String, help: Option<String>) {
        let mut d = self.merged.sources[place.file].diagnostic(
            Severity::Error,
            place.line,
            place.column,
            message,
        );
        d.help = help;
        self.found.push(d);
    }

    /// An error unless `team` is defined.
    fn team(&mut self, file: usize, team: &Loc<String>, whose: &str) -> bool {
        if self.desired.teams.contains_key(&team.value) {
            return true;
        }
        let help = closest(&team.value, self.desired.teams.keys().map(String::as_str))
            .map(|c| format!("did you mean `{c}`?"))
            .unwrap_or_else(|| "define it under `teams:`".into());
        self.error(
            Place::of(file, team),
            format!("undefined team `{}` in {whose}", team.value),
            Some(help),
        );
        false
    }

    fn matches(&mut self, file: usize, raw: &RawMatch, whose: &str) -> Match {
        let mut m = Match::default();
        if let Some(name) = &raw.name {
            match Glob::check(&name.value) {
                Ok(g) => m.name = Some(g),
                Err(why) => self.error(
                    Place::of(file, name),
                    format!("invalid name glob `{}` in {whose}: {why}", name.value),
                    Some("a glob is a name with `*` (any run of characters) and `?` (one character), such as `ci-*`".into()),
                ),
            }
        }
        if let Some(team) = &raw.team
            && self.team(file, team, whose)
        {
            m.team = Some(team.value.clone());
        }
        m
    }

    fn permissions(&mut self, file: usize, list: &[Loc<String>], whose: &str) -> Vec<String> {
        let mut out = Vec::new();
        for p in list {
            // `*` alone is short for `*:*`, as people write "no account may gain `*`".
            let value = if p.value == "*" {
                "*:*".to_string()
            } else {
                p.value.clone()
            };
            if valid_permission(&value) {
                out.push(value);
            } else {
                self.error(
                    Place::of(file, p),
                    format!("invalid permission `{}` in {whose}", p.value),
                    Some(
                        "permissions look like `secrets:read`; `*` matches any resource or action"
                            .into(),
                    ),
                );
            }
        }
        out
    }

    fn rule(&mut self, file: usize, raw: &Loc<RawRule>) -> Option<Rule> {
        let r = &raw.value;
        let rule_at = Place::of(file, raw);
        let given: Vec<(&str, Place)> = [
            (
                "key_max_lifetime",
                r.key_max_lifetime.as_ref().map(|l| Place::of(file, l)),
            ),
            (
                "rotation_required",
                r.rotation_required.as_ref().map(|l| Place::of(file, l)),
            ),
            (
                "admin_requires_protect",
                r.admin_requires_protect
                    .as_ref()
                    .map(|l| Place::of(file, l)),
            ),
            (
                "no_wildcard_permissions",
                r.no_wildcard_permissions
                    .as_ref()
                    .map(|l| Place::of(file, l)),
            ),
            (
                "account_requires_owner",
                r.account_requires_owner
                    .as_ref()
                    .map(|l| Place::of(file, l)),
            ),
            (
                "max_keys_per_account",
                r.max_keys_per_account.as_ref().map(|l| Place::of(file, l)),
            ),
            (
                "forbid_permission",
                r.forbid_permission.as_ref().map(|l| Place::of(file, l)),
            ),
            (
                "require_scopes",
                r.require_scopes.as_ref().map(|l| Place::of(file, l)),
            ),
            (
                "team_role_ceiling",
                r.team_role_ceiling.as_ref().map(|l| Place::of(file, l)),
            ),
        ]
        .into_iter()
        .filter_map(|(k, p)| p.map(|p| (k, p)))
        .collect();
        let (kind_name, at) = match given.as_slice() {
            [] => {
                self.error(
                    rule_at,
                    "policy rule has no rule kind".into(),
                    Some(format!("give it one of {}", KINDS.join(", "))),
                );
                return None;
            }
            [one] => *one,
            [first, second, ..] => {
                self.error(
                    second.1,
                    format!(
                        "policy rule sets both `{}` and `{}`; a rule has exactly one kind",
                        first.0, second.0
                    ),
                    Some("split it into two rules".into()),
                );
                return None;
            }
        };
        let name = r
            .name
            .as_ref()
            .map_or(kind_name.to_string(), |n| n.value.clone());
        let whose = format!("policy rule `{name}`");
        let kind = match kind_name {
            "key_max_lifetime" => Kind::KeyMaxLifetime(r.key_max_lifetime.as_ref()?.value),
            "rotation_required" => Kind::RotationRequired(r.rotation_required.as_ref()?.value),
            "admin_requires_protect" => {
                // `false` writes the rule down switched off.
                if !r.admin_requires_protect.as_ref()?.value {
                    return None;
                }
                Kind::AdminRequiresProtect
            }
            "no_wildcard_permissions" => {
                let w = r.no_wildcard_permissions.as_ref()?;
                let allow = w
                    .value
                    .allow
                    .iter()
                    .filter(|p| valid_permission(&p.value) || p.value == "*")
                    .map(|p| p.value.clone())
                    .collect();
                self.permissions(file, &w.value.allow, &whose);
                Kind::NoWildcardPermissions { allow }
            }
            "account_requires_owner" => {
                if !r.account_requires_owner.as_ref()?.value {
                    return None;
                }
                Kind::AccountRequiresOwner
            }
            "max_keys_per_account" => {
                Kind::MaxKeysPerAccount(r.max_keys_per_account.as_ref()?.value as usize)
            }
            "forbid_permission" => {
                let list = r.forbid_permission.as_ref()?;
                if list.value.is_empty() {
                    self.error(
                        at,
                        format!("{whose} forbids no permission"),
                        Some("list permissions, such as `forbid_permission: [\"*:*\", \"secrets:*\"]`".into()),
                    );
                }
                Kind::ForbidPermission(self.permissions(file, &list.value, &whose))
            }
            "require_scopes" => {
                if !r.require_scopes.as_ref()?.value {
                    return None;
                }
                Kind::RequireScopes
            }
            _ => {
                let role = r.team_role_ceiling.as_ref()?;
                if !self.desired.roles.contains_key(&role.value) {
                    let help = closest(&role.value, self.desired.roles.keys().map(String::as_str))
                        .map(|c| format!("did you mean `{c}`?"))
                        .unwrap_or_else(|| "define it under `roles:`".into());
                    self.error(
                        at,
                        format!("undefined role `{}` in {whose}", role.value),
                        Some(help),
                    );
                }
                Kind::TeamRoleCeiling(role.value.clone())
            }
        };
        if let Kind::KeyMaxLifetime(d) | Kind::RotationRequired(d) = &kind
            && d.seconds() == 0
        {
            self.error(
                at,
                format!("{whose} allows no time at all"),
                Some("give a duration such as 90d".into()),
            );
        }
        let matches = r
            .matches
            .as_ref()
            .map(|m| self.matches(file, &m.value, &whose))
            .unwrap_or_default();
        let mut exceptions = Vec::new();
        for e in &r.except {
            let e_at = Place::of(file, e);
            let m = match &e.value.matches {
                Some(m) => self.matches(file, &m.value, &format!("an exception of {whose}")),
                None => {
                    self.error(
                        e_at,
                        format!("an exception of {whose} has no `match`"),
                        Some("say which objects it excepts: `match: { name: legacy-bot }`".into()),
                    );
                    Match::default()
                }
            };
            let reason = e
                .value
                .reason
                .as_ref()
                .map(|r| r.value.trim().to_string())
                .unwrap_or_default();
            if reason.is_empty() {
                self.error(
                    e_at,
                    format!("an exception of {whose} has no `reason`"),
                    Some(
                        "say why, for reviewers: `reason: \"migrating by 2027-03 (OPS-12)\"`"
                            .into(),
                    ),
                );
            }
            exceptions.push(Exception {
                matches: m,
                reason,
                at: e_at,
            });
        }
        Some(Rule {
            name,
            kind,
            severity: r.severity.as_ref().map(|s| s.value).unwrap_or_default(),
            matches,
            exceptions,
            at,
        })
    }
}

/// The config's rules and account owners, checked; problems go to `found`.
pub fn compile(merged: &Merged, desired: &Organization, found: &mut Vec<Diagnostic>) -> Rules {
    let mut check = Check {
        merged,
        desired,
        found,
    };
    let mut owners = HashMap::new();
    for d in &merged.service_accounts {
        let (name, raw) = &d.item.value;
        if let Some(owner) = &raw.owner
            && check.team(
                d.file,
                owner,
                &format!("the owner of service account `{name}`"),
            )
        {
            owners.insert(name.clone(), owner.value.clone());
        }
    }
    let mut rules: Vec<Rule> = Vec::new();
    let mut seen: HashMap<String, Place> = HashMap::new();
    for (file, raw) in &merged.rules {
        let Some(rule) = check.rule(*file, raw) else {
            continue;
        };
        if let Some(first) = seen.get(&rule.name) {
            let note = merged.sources[first.file].place(first.line, first.column);
            check.error(
                rule.at,
                format!("policy rule `{}` is defined twice", rule.name),
                Some("give each rule its own `name:`".into()),
            );
            if let Some(d) = check.found.last_mut() {
                d.note = Some(format!("first defined at {note}"));
            }
            continue;
        }
        seen.insert(rule.name.clone(), rule.at);
        rules.push(rule);
    }
    let spans = if rules.is_empty() {
        Spans::default()
    } else {
        Spans::new(merged)
    };
    Rules {
        rules,
        owners,
        spans,
    }
}

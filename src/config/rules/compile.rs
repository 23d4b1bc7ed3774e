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
use crate::config::raw::{KINDS, Loc, RawException, RawMatch, RawRule};
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

    /// A rule as written, checked: its one kind with its parameter, its match and its
    /// exceptions. `None` when it has no usable kind or is written down switched off.
    fn rule(&mut self, file: usize, raw: &Loc<RawRule>) -> Option<Rule> {
        let r = &raw.value;
        let (kind_name, at) = self.one_kind(Place::of(file, raw), &written_kinds(file, r))?;
        let name = r
            .name
            .as_ref()
            .map_or(kind_name.to_string(), |n| n.value.clone());
        let whose = format!("policy rule `{name}`");
        let kind = self.kind(file, r, kind_name, at, &whose)?;
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
        let exceptions = r
            .except
            .iter()
            .map(|e| self.exception(file, e, &whose))
            .collect();
        Some(Rule {
            name,
            kind,
            severity: r.severity.as_ref().map(|s| s.value).unwrap_or_default(),
            matches,
            exceptions,
            at,
        })
    }

    /// The rule's one kind, from the kinds `given`: an error when there is none or more.
    fn one_kind(
        &mut self,
        rule_at: Place,
        given: &[(&'static str, Place)],
    ) -> Option<(&'static str, Place)> {
        match given {
            [] => {
                self.error(
                    rule_at,
                    "policy rule has no rule kind".into(),
                    Some(format!("give it one of {}", KINDS.join(", "))),
                );
                None
            }
            [one] => Some(*one),
            [first, second, ..] => {
                self.error(
                    second.1,
                    format!(
                        "policy rule sets both `{}` and `{}`; a rule has exactly one kind",
                        first.0, second.0
                    ),
                    Some("split it into two rules".into()),
                );
                None
            }
        }
    }

    /// The kind `kind_name` with its parameter as written at `at`, checked. `None` for a
    /// switch written `false`, which writes the rule down switched off.
    fn kind(
        &mut self,
        file: usize,
        r: &RawRule,
        kind_name: &str,
        at: Place,
        whose: &str,
    ) -> Option<Kind> {
        let on = |switch: &Option<Loc<bool>>| switch.as_ref().is_some_and(|s| s.value);
        Some(match kind_name {
            "key_max_lifetime" => Kind::KeyMaxLifetime(r.key_max_lifetime.as_ref()?.value),
            "rotation_required" => Kind::RotationRequired(r.rotation_required.as_ref()?.value),
            "admin_requires_protect" if on(&r.admin_requires_protect) => Kind::AdminRequiresProtect,
            "account_requires_owner" if on(&r.account_requires_owner) => Kind::AccountRequiresOwner,
            "require_scopes" if on(&r.require_scopes) => Kind::RequireScopes,
            "admin_requires_protect" | "account_requires_owner" | "require_scopes" => {
                return None;
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
                self.permissions(file, &w.value.allow, whose);
                Kind::NoWildcardPermissions { allow }
            }
            "max_keys_per_account" => {
                Kind::MaxKeysPerAccount(r.max_keys_per_account.as_ref()?.value as usize)
            }
            "forbid_permission" => self.forbidden(file, r.forbid_permission.as_ref()?, at, whose),
            _ => self.ceiling(r.team_role_ceiling.as_ref()?, at, whose),
        })
    }

    /// `forbid_permission`'s list, checked: not empty, and permissions that are permissions.
    fn forbidden(
        &mut self,
        file: usize,
        list: &Loc<Vec<Loc<String>>>,
        at: Place,
        whose: &str,
    ) -> Kind {
        if list.value.is_empty() {
            self.error(
                at,
                format!("{whose} forbids no permission"),
                Some(
                    "list permissions, such as `forbid_permission: [\"*:*\", \"secrets:*\"]`"
                        .into(),
                ),
            );
        }
        Kind::ForbidPermission(self.permissions(file, &list.value, whose))
    }

    /// `team_role_ceiling`'s role, with an error (and the closest name) unless it is defined.
    fn ceiling(&mut self, role: &Loc<String>, at: Place, whose: &str) -> Kind {
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

    /// An exception of a rule, checked: it needs a `match` and a `reason` for reviewers.
    fn exception(&mut self, file: usize, e: &Loc<RawException>, whose: &str) -> Exception {
        let e_at = Place::of(file, e);
        let matches = match &e.value.matches {
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
                Some("say why, for reviewers: `reason: \"migrating by 2027-03 (OPS-12)\"`".into()),
            );
        }
        Exception {
            matches,
            reason,
            at: e_at,
        }
    }
}

/// Every rule kind the rule sets, in the order of `KINDS`, with where it is written.
fn written_kinds(file: usize, r: &RawRule) -> Vec<(&'static str, Place)> {
    /// Where a kind is written, when the rule sets it.
    fn at<T>(file: usize, l: &Option<Loc<T>>) -> Option<Place> {
        l.as_ref().map(|l| Place::of(file, l))
    }
    [
        ("key_max_lifetime", at(file, &r.key_max_lifetime)),
        ("rotation_required", at(file, &r.rotation_required)),
        (
            "admin_requires_protect",
            at(file, &r.admin_requires_protect),
        ),
        (
            "no_wildcard_permissions",
            at(file, &r.no_wildcard_permissions),
        ),
        (
            "account_requires_owner",
            at(file, &r.account_requires_owner),
        ),
        ("max_keys_per_account", at(file, &r.max_keys_per_account)),
        ("forbid_permission", at(file, &r.forbid_permission)),
        ("require_scopes", at(file, &r.require_scopes)),
        ("team_role_ceiling", at(file, &r.team_role_ceiling)),
    ]
    .into_iter()
    .filter_map(|(k, p)| p.map(|p| (k, p)))
    .collect()
}

/// The config's rules and account owners, checked; problems go to `found`.
pub fn compile(merged: &Merged, desired: &Organization, found: &mut Vec<Diagnostic>) -> Rules {
    let mut check = Check {
        merged,
        desired,
        found,
    };
    // Only rules read the owners; every owner is checked all the same, and a message made
    // only for one that is wrong.
    let mut owners = HashMap::new();
    for d in &merged.service_accounts {
        let (name, raw) = &d.item.value;
        let Some(owner) = &raw.owner else {
            continue;
        };
        let known = check.desired.teams.contains_key(&owner.value)
            || check.team(
                d.file,
                owner,
                &format!("the owner of service account `{name}`"),
            );
        if known && !merged.rules.is_empty() {
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

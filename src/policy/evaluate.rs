//! Judging the desired organization against the rules: every object each rule matches,
//! minus its exceptions, checked by its kind. All violations are collected, and excepted ones
//! are kept with their reason, because reviewers must see what a rule lets through.

use std::collections::HashMap;

use super::effective::{Grant, grants, paths_to};
use crate::address::Address;
use crate::config::rules::matching::Object;
use crate::config::rules::{Exception, Kind, Place, Rule, Rules, Spans};
use crate::duration::Duration;
use crate::model::{Organization, ServiceAccount, pattern_covers};
use crate::plan::Finding;

/// One way an object breaks a rule, before it is tied to the rule and the object.
#[derive(Debug, Clone)]
pub struct Breach {
    pub message: String,
    pub help: String,
    pub at: Place,
    /// The role the offending permission comes through, to find the change that causes it.
    pub via_role: Option<String>,
    /// The account whose membership is at fault, when the object is another (a team).
    pub account: Option<String>,
}

fn breach(message: String, help: String, at: Place) -> Breach {
    Breach {
        message,
        help,
        at,
        via_role: None,
        account: None,
    }
}

fn wildcard_help(allow: &[String]) -> String {
    if allow.is_empty() {
        "name the permissions it needs, or except it with a reason".into()
    } else {
        format!(
            "name the permissions it needs; the rule allows only {}",
            allow
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// How `object` breaks `rule`'s kind (whatever the rule's `match`); empty when it passes.
pub fn judge(rules: &Rules, org: &Organization, rule: &Rule, object: Object<'_>) -> Vec<Breach> {
    let spans = &rules.spans;
    match (&rule.kind, object) {
        (Kind::KeyMaxLifetime(max), Object::Key { account, key, of }) => {
            key_lifetime(spans, *max, account, key, of)
                .into_iter()
                .collect()
        }
        (Kind::RotationRequired(max), Object::Key { account, key, of }) => {
            key_rotation(spans, *max, account, key, of)
                .into_iter()
                .collect()
        }
        (Kind::RequireScopes, Object::Key { account, key, of })
            if key_of(of, key).scopes.is_empty() =>
        {
            vec![unscoped_key(spans, account, key)]
        }
        (Kind::NoWildcardPermissions { allow }, Object::Key { account, key, of }) => {
            wildcard_scopes(spans, allow, account, key, of)
        }
        (Kind::NoWildcardPermissions { allow }, Object::Role(name)) => {
            wildcard_role_permissions(spans, org, allow, name)
        }
        (Kind::NoWildcardPermissions { allow }, Object::Account(name, a))
            if holds(org, a, |p| p.contains('*') && !allow.iter().any(|x| x == p)) =>
        {
            wildcard_grants(spans, org, allow, name, a)
        }
        (Kind::AdminRequiresProtect, Object::Account(name, a))
            if !a.protect && holds(org, a, |p| p == "*:*") =>
        {
            unprotected_admin(spans, org, name, a).into_iter().collect()
        }
        (Kind::AccountRequiresOwner, Object::Account(name, a)) => {
            ownerless_account(rules, org, name, a).into_iter().collect()
        }
        (Kind::MaxKeysPerAccount(max), Object::Account(name, a)) if a.keys.len() > *max => {
            vec![too_many_keys(spans, *max, name, a)]
        }
        (Kind::ForbidPermission(forbidden), Object::Account(name, a))
            if holds(org, a, |p| forbidden.iter().any(|f| pattern_covers(p, f))) =>
        {
            forbidden_paths(spans, org, forbidden, name, a)
        }
        (Kind::TeamRoleCeiling(ceiling), Object::Team(team, members)) => {
            let Some(top) = org.roles.get(ceiling) else {
                return Vec::new();
            };
            members
                .iter()
                .filter_map(|(name, role)| {
                    above_ceiling(rules, org, (team, ceiling, top), name, role)
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// A key's `expires_in` against `key_max_lifetime`: missing, or longer than the maximum.
fn key_lifetime(
    spans: &Spans,
    max: Duration,
    account: &str,
    key: &str,
    of: &ServiceAccount,
) -> Option<Breach> {
    let s = spans.accounts.get(account).and_then(|a| a.keys.get(key));
    let key_at = || s.map(|s| s.at).unwrap_or_default();
    match key_of(of, key).expires_in {
        None => Some(breach(
            format!("key `{account}.{key}` has no `expires_in`; keys must expire within {max}"),
            format!("set `expires_in: {max}` or less"),
            key_at(),
        )),
        Some(d) if d > max => Some(breach(
            format!("key `{account}.{key}` expires in {d}, longer than {max}"),
            format!("set `expires_in: {max}` or less"),
            s.and_then(|s| s.expires_in).unwrap_or_else(key_at),
        )),
        Some(_) => None,
    }
}

/// A key's `rotate_every` against `rotation_required`: missing, or less often than required.
fn key_rotation(
    spans: &Spans,
    max: Duration,
    account: &str,
    key: &str,
    of: &ServiceAccount,
) -> Option<Breach> {
    let s = spans.accounts.get(account).and_then(|a| a.keys.get(key));
    let key_at = || s.map(|s| s.at).unwrap_or_default();
    match key_of(of, key).rotate_every {
        None => Some(breach(
            format!(
                "key `{account}.{key}` has no `rotate_every`; keys must rotate at least every {max}"
            ),
            format!("set `rotate_every: {max}` or less"),
            key_at(),
        )),
        Some(d) if d > max => Some(breach(
            format!("key `{account}.{key}` rotates every {d}, less often than every {max}"),
            format!("set `rotate_every: {max}` or less"),
            s.and_then(|s| s.rotate_every).unwrap_or_else(key_at),
        )),
        Some(_) => None,
    }
}

/// A key without `scopes`, against `require_scopes`.
fn unscoped_key(spans: &Spans, account: &str, key: &str) -> Breach {
    let at = spans
        .accounts
        .get(account)
        .and_then(|a| a.keys.get(key))
        .map(|s| s.at)
        .unwrap_or_default();
    breach(
        format!("key `{account}.{key}` has no `scopes`, so it may do everything its account may"),
        "narrow it to what it needs, such as `scopes: [deployments:execute]`".into(),
        at,
    )
}

/// A key's wildcard scopes that the rule does not allow, each at its place in the key.
fn wildcard_scopes(
    spans: &Spans,
    allow: &[String],
    account: &str,
    key: &str,
    of: &ServiceAccount,
) -> Vec<Breach> {
    let s = spans.accounts.get(account).and_then(|a| a.keys.get(key));
    key_of(of, key)
        .scopes
        .iter()
        .filter(|scope| scope.contains('*') && !allow.contains(scope))
        .map(|scope| {
            breach(
                format!("key `{account}.{key}` is scoped to wildcard permission `{scope}`"),
                wildcard_help(allow),
                s.and_then(|s| s.scopes.get(scope).copied())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// A custom role's wildcard permissions that the rule does not allow, where they are written.
fn wildcard_role_permissions(
    spans: &Spans,
    org: &Organization,
    allow: &[String],
    name: &str,
) -> Vec<Breach> {
    let Some(role) = org.roles.get(name).filter(|r| !r.builtin) else {
        return Vec::new();
    };
    let s = spans.roles.get(name);
    role.permissions
        .iter()
        .filter(|p| p.contains('*') && !allow.contains(p))
        .map(|p| {
            breach(
                format!("role `{name}` grants wildcard permission `{p}`"),
                wildcard_help(allow),
                s.and_then(|s| s.permissions.get(p).copied())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// An account's wildcard permissions through built-in roles or `admin`. Custom roles are
/// judged where their permissions are written; an account is judged for what it takes that
/// the config does not spell out.
fn wildcard_grants(
    spans: &Spans,
    org: &Organization,
    allow: &[String],
    name: &str,
    a: &ServiceAccount,
) -> Vec<Breach> {
    grants(org, a)
        .iter()
        .filter(|g| g.builtin && g.pattern.contains('*') && !allow.contains(&g.pattern))
        .map(|g| {
            let mut b = breach(
                format!(
                    "service account `{name}` holds wildcard permission `{}` through {}",
                    g.pattern,
                    g.describe()
                ),
                wildcard_help(allow),
                g.place(spans, name),
            );
            b.via_role = g.role().map(str::to_string);
            b
        })
        .collect()
}

/// An account holding every permission without `protect: true`, against
/// `admin_requires_protect`.
fn unprotected_admin(
    spans: &Spans,
    org: &Organization,
    name: &str,
    a: &ServiceAccount,
) -> Option<Breach> {
    let all = grants(org, a);
    let g = all.iter().find(|g| g.pattern == "*:*")?;
    let mut b = breach(
        format!(
            "service account `{name}` holds every permission (through {}) but is not protected",
            g.describe()
        ),
        "set `protect: true` on it, so it cannot be deleted by mistake".into(),
        spans.accounts.get(name).map(|s| s.at).unwrap_or_default(),
    );
    b.via_role = g.role().map(str::to_string);
    Some(b)
}

/// An account with neither an `owner:` nor a team named in its description, against
/// `account_requires_owner`.
fn ownerless_account(
    rules: &Rules,
    org: &Organization,
    name: &str,
    a: &ServiceAccount,
) -> Option<Breach> {
    if rules.owners.contains_key(name) || names_a_team(&a.description, org) {
        return None;
    }
    Some(breach(
        format!("service account `{name}` names no owning team"),
        "add `owner: <team>`, or name the owning team in its description".into(),
        rules
            .spans
            .accounts
            .get(name)
            .map(|s| s.at)
            .unwrap_or_default(),
    ))
}

/// An account with more keys than `max_keys_per_account`, placed at the first key too many.
fn too_many_keys(spans: &Spans, max: usize, name: &str, a: &ServiceAccount) -> Breach {
    let s = spans.accounts.get(name);
    let at = s
        .and_then(|s| s.key_order.get(max).and_then(|k| s.keys.get(k)))
        .map(|k| k.at)
        .or(s.map(|s| s.at))
        .unwrap_or_default();
    breach(
        format!(
            "service account `{name}` has {} {}, more than {max}",
            a.keys.len(),
            if a.keys.len() == 1 { "key" } else { "keys" }
        ),
        format!("keep at most {max}; remove a key, or except the account with a reason"),
        at,
    )
}

/// Every path by which an account may gain a forbidden permission. One violation per path,
/// naming every forbidden permission it reaches: `admin: true` against `[*, secrets:*]` is
/// one thing to fix, not two.
fn forbidden_paths(
    spans: &Spans,
    org: &Organization,
    forbidden: &[String],
    name: &str,
    a: &ServiceAccount,
) -> Vec<Breach> {
    let all = grants(org, a);
    let mut by_path: Vec<(&Grant, Vec<&str>)> = Vec::new();
    for f in forbidden {
        for g in paths_to(&all, f) {
            match by_path.iter_mut().find(|(p, _)| std::ptr::eq(*p, g)) {
                Some((_, fs)) => fs.push(f),
                None => by_path.push((g, vec![f])),
            }
        }
    }
    by_path
        .into_iter()
        .map(|(g, fs)| forbidden_path(spans, name, g, &fs))
        .collect()
}

/// The violation of one path `g` to the forbidden permissions `fs`, with how to cut it.
fn forbidden_path(spans: &Spans, name: &str, g: &Grant, fs: &[&str]) -> Breach {
    let list = fs
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let held = if fs.len() == 1 && g.pattern == fs[0] {
        String::new()
    } else {
        format!(
            " (`{}` covers {})",
            g.pattern,
            if fs.len() == 1 { "it" } else { "them" }
        )
    };
    let help = match g.role() {
        Some(role) if !g.builtin => {
            format!("narrow role `{role}`, or remove the account's membership in that team")
        }
        Some(_) => "give the membership a narrower role".into(),
        None => "remove `admin: true` and grant what it needs through a role".into(),
    };
    let mut b = breach(
        format!(
            "service account `{name}` may gain forbidden permission{} {list} through {}{held}",
            if fs.len() == 1 { "" } else { "s" },
            g.describe()
        ),
        help,
        g.place(spans, name),
    );
    b.via_role = g.role().map(str::to_string);
    b
}

/// Whether `admin` or a role of the account grants a pattern `test` accepts: a check that
/// allocates nothing, run on every account before the paths are worked out for a violation.
fn holds(org: &Organization, a: &ServiceAccount, test: impl Fn(&str) -> bool) -> bool {
    (a.admin && test("*:*"))
        || a.teams.values().any(|role| {
            org.roles
                .get(role)
                .is_some_and(|r| r.permissions.iter().any(|p| test(p)))
        })
}

/// A membership of `account` in `team` with `role`, judged against the team's ceiling.
fn above_ceiling(
    rules: &Rules,
    org: &Organization,
    (team, ceiling, top): (&str, &str, &crate::model::Role),
    account: &str,
    role: &str,
) -> Option<Breach> {
    let granted = org.roles.get(role)?;
    let over = granted
        .permissions
        .iter()
        .find(|p| !top.permissions.iter().any(|c| pattern_covers(c, p)))?;
    let at = rules
        .spans
        .accounts
        .get(account)
        .and_then(|a| a.teams.get(team))
        .map(|t| t.1)
        .unwrap_or_default();
    Some(Breach {
        message: format!(
            "team `{team}` hands role `{role}` to service account `{account}`, above its ceiling `{ceiling}`"
        ),
        help: format!(
            "`{role}` grants `{over}`, which `{ceiling}` does not; use `{ceiling}` or a narrower role"
        ),
        at,
        via_role: Some(role.to_string()),
        account: Some(account.to_string()),
    })
}

/// Whether a description names a defined team as a whole word.
fn names_a_team(description: &str, org: &Organization) -> bool {
    description
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .any(|w| org.teams.contains_key(&w.to_ascii_lowercase()))
}

/// Each team's memberships, (account, role), in account order: built once, so a team rule
/// does not scan every account for every team.
pub type Members<'a> = HashMap<&'a str, Vec<(&'a str, &'a str)>>;

/// The memberships of every team of `org`.
pub fn members(org: &Organization) -> Members<'_> {
    let mut m: Members<'_> = HashMap::new();
    for (name, a) in &org.service_accounts {
        for (team, role) in &a.teams {
            m.entry(team.as_str()).or_default().push((name, role));
        }
    }
    m
}

/// Every object of the organization that a rule of `kind` judges, with its address.
pub fn objects<'a>(
    org: &'a Organization,
    rule: &Rule,
    members: &'a Members<'a>,
) -> Vec<Object<'a>> {
    use crate::config::rules::Target;
    let mut out = Vec::new();
    for t in rule.kind.targets() {
        match t {
            Target::Role => out.extend(
                org.roles
                    .iter()
                    .filter(|(_, r)| !r.builtin)
                    .map(|(n, _)| Object::Role(n)),
            ),
            Target::Team => out.extend(org.teams.keys().map(|n| {
                let m = members.get(n.as_str()).map_or(&[][..], Vec::as_slice);
                Object::Team(n, m)
            })),
            Target::Account => out.extend(
                org.service_accounts
                    .iter()
                    .map(|(n, a)| Object::Account(n, a)),
            ),
            Target::Key => {
                for (n, a) in &org.service_accounts {
                    for k in a.keys.keys() {
                        out.push(Object::Key {
                            account: n,
                            key: k,
                            of: a,
                        });
                    }
                }
            }
        }
    }
    out
}

/// Whether a rule applies to an object: `Ok(why)` when it matches and no exception takes it
/// out, `Err(None)` when it does not match, `Err(Some(i))` when exception `i` takes it out.
pub fn applies(
    rule: &Rule,
    object: Object<'_>,
    owners: &HashMap<String, String>,
) -> Result<String, Option<usize>> {
    let why = rule.matches.why(object, owners).ok_or(None)?;
    match rule
        .exceptions
        .iter()
        .position(|e| e.matches.why(object, owners).is_some())
    {
        Some(i) => Err(Some(i)),
        None => Ok(why),
    }
}

/// Every violation of the organization, excepted ones included (marked with the reason).
pub fn evaluate(rules: &Rules, org: &Organization) -> Vec<Finding> {
    let mut out = Vec::new();
    let members = members(org);
    for rule in &rules.rules {
        for object in objects(org, rule, &members) {
            if !rule.matches.matches(object, &rules.owners) {
                continue;
            }
            let breaches = judge(rules, org, rule, object);
            if breaches.is_empty() {
                continue;
            }
            // Exceptions are looked at only for objects that break the rule.
            let excepted = rule
                .exceptions
                .iter()
                .find(|e| e.matches.matches(object, &rules.owners));
            let address = object.address();
            for b in breaches {
                out.push(finding(rules, rule, &address, b, excepted));
            }
        }
    }
    out
}

/// A violation as plans carry it.
fn finding(
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

/// The key `key` of the account `of` that a key object names (it always holds it).
fn key_of<'a>(of: &'a ServiceAccount, key: &str) -> &'a crate::model::ApiKey {
    of.keys
        .get(key)
        .expect("a key object names a key of its account")
}

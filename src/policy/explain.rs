//! `svcacct policy explain ADDRESS`: for one object, each rule of the config, whether it
//! applies (and why: its match, or the exception that takes the object out, with the reason),
//! and whether the object passes. Offline: the config alone is judged.

use std::fmt::Write;

use super::evaluate::{Breach, Members, applies, judge, members};
use crate::address::Address;
use crate::config::rules::matching::Object;
use crate::config::rules::{Exception, Rule, Rules};
use crate::model::Organization;
use crate::plan::RuleSeverity;

/// Why an address names nothing in the config.
#[derive(Debug, thiserror::Error)]
#[error("{address} is not in the config{}", help.as_ref().map(|h| format!("; did you mean {h}?")).unwrap_or_default())]
pub struct NotInConfig {
    pub address: Address,
    pub help: Option<String>,
}

fn object<'a>(
    org: &'a Organization,
    address: &'a Address,
    members: &'a Members<'a>,
) -> Option<Object<'a>> {
    match address {
        Address::Role(n) => org.roles.contains_key(n).then_some(Object::Role(n)),
        Address::Team(n) => org.teams.contains_key(n).then_some(Object::Team(
            n,
            members.get(n.as_str()).map_or(&[][..], Vec::as_slice),
        )),
        Address::ServiceAccount(n) => org.service_accounts.get(n).map(|a| Object::Account(n, a)),
        Address::Key { account, key } => org
            .service_accounts
            .get(account)
            .filter(|a| a.keys.contains_key(key))
            .map(|of| Object::Key { account, key, of }),
        Address::Organization(_) => None,
    }
}

/// The closest address of the same kind, for a did-you-mean.
fn closest(org: &Organization, address: &Address) -> Option<String> {
    let names: Vec<String> = match address {
        Address::Role(_) => org
            .roles
            .keys()
            .map(|n| Address::role(n).to_string())
            .collect(),
        Address::Team(_) => org
            .teams
            .keys()
            .map(|n| Address::team(n).to_string())
            .collect(),
        Address::ServiceAccount(_) | Address::Organization(_) => org
            .service_accounts
            .keys()
            .map(|n| Address::account(n).to_string())
            .collect(),
        Address::Key { .. } => org
            .service_accounts
            .iter()
            .flat_map(|(n, a)| a.keys.keys().map(move |k| Address::key(n, k).to_string()))
            .collect(),
    };
    crate::suggest::closest(&address.to_string(), names.iter().map(String::as_str))
        .map(|c| format!("`{c}`"))
}

/// How a rule came out for the object, for the summary line.
enum Verdict {
    /// The rule does not judge the object: another kind of object, its `match`, an exception.
    Left,
    Passes,
    Fails,
}

/// The explanation, as text.
pub fn explain(
    rules: &Rules,
    org: &Organization,
    address: &Address,
) -> Result<String, NotInConfig> {
    let members = members(org);
    let Some(obj) = object(org, address, &members) else {
        return Err(NotInConfig {
            address: address.clone(),
            help: closest(org, address),
        });
    };
    let mut out = String::new();
    if rules.rules.is_empty() {
        let _ = writeln!(out, "{address}: the config has no policy rules.");
        return Ok(out);
    }
    let mut failing = 0;
    let mut applying = 0;
    let mut body = String::new();
    for rule in &rules.rules {
        match explain_rule(&mut body, rules, org, rule, obj) {
            Verdict::Left => {}
            Verdict::Passes => applying += 1,
            Verdict::Fails => {
                applying += 1;
                failing += 1;
            }
        }
    }
    let _ = writeln!(
        out,
        "{address}: {applying} of {} rules apply, {failing} {}.",
        rules.rules.len(),
        if failing == 1 { "fails" } else { "fail" }
    );
    out.push_str(&body);
    Ok(out)
}

/// One rule's part of the explanation: what it requires, whether it applies to the object
/// and why, and how the object fares.
fn explain_rule(
    body: &mut String,
    rules: &Rules,
    org: &Organization,
    rule: &Rule,
    obj: Object<'_>,
) -> Verdict {
    let _ = writeln!(
        body,
        "\n  {} ({}, {}): {}",
        rule.name,
        rule.kind.name(),
        match rule.severity {
            RuleSeverity::Error => "error",
            RuleSeverity::Warn => "warn",
        },
        rule.kind.requirement()
    );
    if !judges(rule, obj) {
        let _ = writeln!(
            body,
            "      does not apply: it does not judge {}",
            kind_of(obj)
        );
        if let Object::Role(role) = obj {
            through_role(body, rules, org, rule, role);
        }
        return Verdict::Left;
    }
    let breaches = judge(rules, org, rule, obj);
    match applies(rule, obj, &rules.owners) {
        Err(None) => {
            let at = rules.spans.describe(rule.at);
            let _ = writeln!(
                body,
                "      does not apply: its `match` leaves it out ({at})"
            );
            Verdict::Left
        }
        Err(Some(i)) => {
            excepted(body, rules, &rule.exceptions[i], &breaches);
            Verdict::Left
        }
        Ok(why) => applying(body, rules, &why, &breaches),
    }
}

/// An object an exception takes out: the exception's reason, and what would fail without it.
fn excepted(body: &mut String, rules: &Rules, e: &Exception, breaches: &[Breach]) {
    let _ = writeln!(
        body,
        "      excepted at {}: {}",
        rules.spans.describe(e.at),
        e.reason
    );
    for b in breaches {
        let _ = writeln!(
            body,
            "      would fail: {} ({})",
            b.message,
            rules.spans.describe(b.at)
        );
    }
}

/// An object the rule applies to: why, and whether it passes or each way it fails.
fn applying(body: &mut String, rules: &Rules, why: &str, breaches: &[Breach]) -> Verdict {
    let _ = writeln!(body, "      applies: {why}");
    if breaches.is_empty() {
        let _ = writeln!(body, "      passes");
        return Verdict::Passes;
    }
    for b in breaches {
        let _ = writeln!(
            body,
            "      fails: {} ({})",
            b.message,
            rules.spans.describe(b.at)
        );
        let _ = writeln!(body, "      help: {}", b.help);
    }
    Verdict::Fails
}

/// For a role and a rule about accounts: the accounts that break the rule through the role,
/// since a role edit is how many accounts gain a permission at once.
fn through_role(body: &mut String, rules: &Rules, org: &Organization, rule: &Rule, role: &str) {
    for (name, a) in &org.service_accounts {
        if !a.teams.values().any(|r| r == role) {
            continue;
        }
        let obj = Object::Account(name, a);
        if applies(rule, obj, &rules.owners).is_err() {
            continue;
        }
        for b in judge(rules, org, rule, obj) {
            if b.via_role.as_deref() == Some(role) {
                let _ = writeln!(
                    body,
                    "      through this role: {} ({})",
                    b.message,
                    rules.spans.describe(b.at)
                );
            }
        }
    }
}

fn kind_of(obj: Object<'_>) -> &'static str {
    match obj {
        Object::Role(_) => "roles",
        Object::Team(..) => "teams",
        Object::Account(..) => "service accounts",
        Object::Key { .. } => "keys",
    }
}

fn judges(rule: &Rule, obj: Object<'_>) -> bool {
    use crate::config::rules::Target;
    rule.kind.targets().iter().any(|t| {
        matches!(
            (t, obj),
            (Target::Role, Object::Role(_))
                | (Target::Team, Object::Team(..))
                | (Target::Account, Object::Account(..))
                | (Target::Key, Object::Key { .. })
        )
    })
}

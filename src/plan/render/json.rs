//! The JSON shapes of objects in plans, and the plan's own documented JSON form:
//!
//! ```json
//! { "format_version": 1, "organization": "acme", "revision": 12,
//!   "summary": { "create": 2, "update": 1 },
//!   "changes": [ { "address": "key.ci-bot.prod", "action": "rotate", "reason": "…",
//!                  "changed": ["description"], "before": {…}, "after": {…},
//!                  "revokes": ["key ids this change revokes"],
//!                  "reaches": ["accounts a changed role reaches"],
//!                  "last_changed": { "time": "…", "actor": "…", "action": "put_team" },
//!                  "last_used_at": "2026-05-31T09:12:00Z" } ],
//!   "effects": { "accounts": [ { "account": "ci-bot", "gained": ["warehouse:*"],
//!                                "lost": [], "widening": true,
//!                                "keys": [ { "key": "prod", "gained": [], "lost": [] } ] } ],
//!                "roles": [ { "role": "deployer", "accounts": ["ci-bot"] } ] },
//!   "unmanaged": ["team.hand-made"], "secrets_not_held": ["key.hand-made.main"],
//!   "notes": [],
//!   "policy": [ { "rule": "no-secrets", "kind": "forbid_permission", "severity": "error",
//!                 "object": "service_account.ci-bot", "message": "…", "help": "…",
//!                 "file": "svcacct.yaml", "line": 12, "column": 20,
//!                 "excepted": false, "reason": null, "cause": "role.wh (update)" } ] }
//! ```
//! `policy` lists every violation of the config's policy rules: `severity` is `error` (blocks
//! plan and apply) or `warn`; an excepted one has `excepted: true` and the exception's
//! `reason`; `cause` names the change that brings it in, null when it is already live.
//! `reaches` is on role changes only, `last_changed` (where the backend keeps an audit log)
//! on changes of objects that drifted from the config. `last_used_at` is on changes that
//! revoke, retire, replace or delete a live key (an account's deletion included) where the
//! backend records key uses: the latest use among the secrets the change destroys, or null
//! when none was ever used.
//! Fields are only ever added to this shape, never renamed or removed. No secret, hash or
//! display prefix is in any of it.

use serde_json::{Value, json};

use crate::address::Address;
use crate::clock::rfc3339;
use crate::plan::Plan;

/// The plan in its stable JSON form.
pub fn to_json(plan: &Plan) -> Value {
    let summary: serde_json::Map<String, Value> = plan
        .counts()
        .into_iter()
        .map(|(a, n)| (a.name().to_string(), json!(n)))
        .collect();
    json!({
        "format_version": 1,
        "organization": plan.organization,
        "revision": plan.revision,
        "has_changes": plan.has_changes(),
        "summary": summary,
        "changes": plan.changes.iter().map(|c| {
            let mut v = json!({
                "address": c.address,
                "action": c.action,
                "reason": c.reason,
                "changed": c.changed_fields().iter().map(|f| f.name()).collect::<Vec<_>>(),
                "before": c.before.as_ref().map(|s| s.to_json()),
                "after": c.after.as_ref().map(|s| s.to_json()),
                "revokes": c.revokes,
            });
            let m = v.as_object_mut().expect("an object");
            if let Address::Role(r) = &c.address
                && let Some(reach) = plan.effects.reach_of(r)
            {
                m.insert("reaches".into(), json!(reach));
            }
            if let Some(l) = plan.last_changed.get(&c.address) {
                m.insert("last_changed".into(), json!(l));
            }
            if let Some(u) = plan.last_use_of(c) {
                m.insert("last_used_at".into(), json!(u.last_used_at.map(rfc3339)));
            }
            v
        }).collect::<Vec<_>>(),
        "effects": {
            "accounts": plan.effects.accounts.iter().map(|a| json!({
                "account": a.account,
                "gained": a.gained,
                "lost": a.lost,
                "widening": a.widening(),
                "keys": a.keys,
            })).collect::<Vec<_>>(),
            "roles": plan.effects.roles,
        },
        "unmanaged": plan.unmanaged,
        "secrets_not_held": plan.secrets_not_held,
        "notes": plan.notes,
        "policy": super::policy::json(&plan.policy),
        "warnings": plan.warnings,
    })
}

//! When the keys a plan destroys were last used. Revoking a key that a service presented a
//! minute ago breaks that service; a reviewer should see it before approving, so every change
//! that revokes, retires, replaces or deletes a live secret shows its key's last use, and the
//! pull-request comment calls out the recent ones. Only a backend that records uses
//! (`records_key_use` among its capabilities) can say "never used"; on the others the plan says
//! nothing rather than guess.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Action, Change, Plan};
use crate::address::Address;
use crate::model::LiveOrganization;
use crate::operation::Operation;

/// A key the plan destroys, and when it was last used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyUse {
    /// The key, so an account deletion's warning can name which of its keys is in use.
    pub key: Address,
    /// `None`: the backend records uses and this key has none.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// Used this recently, a key the plan destroys is called out at the top of the comment.
pub const RECENT: time::Duration = time::Duration::hours(24);

/// The ids of the live secrets a change destroys: those it revokes, and the one a replace
/// supersedes (it works on only for its overlap).
pub fn destroyed_ids(c: &Change) -> Vec<&str> {
    let mut ids: Vec<&str> = c.revokes.iter().map(String::as_str).collect();
    if c.action == Action::Replace {
        for op in &c.work {
            if let Operation::IssueKey { key, .. } = op
                && let Some(r) = &key.replaces
            {
                ids.push(&r.id);
            }
        }
    }
    ids
}

/// The last use of every live secret the plan destroys, by key id; empty when the backend
/// does not record uses (`records_key_use` false): it cannot tell "never used" from unknown.
pub fn destroyed_key_uses(
    plan: &Plan,
    live: &LiveOrganization,
    records_key_use: bool,
) -> BTreeMap<String, KeyUse> {
    if !records_key_use {
        return BTreeMap::new();
    }
    // Only the destroyed keys are looked up: a plan that destroys none (most) costs nothing
    // per live key.
    let destroyed: std::collections::HashSet<&str> =
        plan.changes.iter().flat_map(destroyed_ids).collect();
    if destroyed.is_empty() {
        return BTreeMap::new();
    }
    let mut found = BTreeMap::new();
    for (account, a) in &live.service_accounts {
        for (name, k) in &a.keys {
            if destroyed.contains(k.issued.id.as_str()) {
                let key = Address::key(account, name);
                let last_used_at = k.issued.last_used_at;
                found.insert(k.issued.id.clone(), KeyUse { key, last_used_at });
            }
        }
    }
    for r in &live.retiring_keys {
        if destroyed.contains(r.id.as_str()) {
            let key = Address::key(&r.service_account, &r.key);
            let last_used_at = r.last_used_at;
            found.insert(r.id.clone(), KeyUse { key, last_used_at });
        }
    }
    found
}

impl Plan {
    /// The most recent use among the secrets change `c` destroys: `None` when the plan has no
    /// record for them (not a key change, or a backend that does not record uses).
    pub fn last_use_of(&self, c: &Change) -> Option<&KeyUse> {
        destroyed_ids(c)
            .into_iter()
            .filter_map(|id| self.key_uses.get(id))
            .max_by_key(|u| u.last_used_at)
    }
}

/// `last used 3 minutes ago`, or `never used`: coarse, in the largest whole unit.
pub fn describe(last_used_at: Option<OffsetDateTime>, now: OffsetDateTime) -> String {
    match last_used_at {
        None => "never used".into(),
        Some(t) => format!("last used {}", ago(t, now)),
    }
}

/// `3 minutes ago`; a time ahead of `now` (clocks apart) reads as `just now`.
pub fn ago(t: OffsetDateTime, now: OffsetDateTime) -> String {
    let s = (now - t).whole_seconds();
    let (n, unit) = match s {
        ..=0 => return "just now".into(),
        1..60 => (s, "second"),
        60..3_600 => (s / 60, "minute"),
        3_600..86_400 => (s / 3_600, "hour"),
        _ => (s / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn key_change(action: Action, revokes: &[&str], replaces: Option<&str>) -> Change {
        Change {
            address: Address::key("bot", "main"),
            action,
            reason: None,
            before: None,
            after: None,
            work: replaces
                .map(|id| Operation::IssueKey {
                    account: "bot".into(),
                    name: "main".into(),
                    key: crate::operation::KeyIssue {
                        settings: Default::default(),
                        replaces: Some(crate::operation::Rotation {
                            id: id.into(),
                            overlap: crate::duration::Duration(0),
                        }),
                    },
                })
                .into_iter()
                .collect(),
            revokes: revokes.iter().map(|s| s.to_string()).collect(),
            depends_on: Vec::new(),
        }
    }

    /// Retire, replace and delete each destroy a live secret and carry its last use (the
    /// latest of several); a rotation, which keeps the old key working, carries none; a
    /// backend that records no uses gets none at all.
    #[test]
    fn destroying_changes_carry_the_last_use_of_their_secrets() {
        let used = datetime!(2026-06-01 11:57 UTC);
        let mut live = LiveOrganization::new("acme");
        let mut bot = crate::model::LiveAccount::default();
        bot.keys.insert(
            "main".into(),
            crate::model::LiveKey {
                settings: Default::default(),
                issued: crate::model::IssuedKey {
                    id: "k1".into(),
                    created_at: used,
                    expires_at: None,
                    last_used_at: None,
                },
            },
        );
        live.service_accounts.insert("bot".into(), bot);
        live.retiring_keys.push(crate::model::RetiringKey {
            id: "k0".into(),
            service_account: "bot".into(),
            key: "main".into(),
            retires_at: used,
            managed: true,
            last_used_at: Some(used),
        });
        let mut plan = Plan {
            organization: "acme".into(),
            revision: 1,
            changes: vec![
                key_change(Action::Retire, &["k0"], None),
                key_change(Action::Replace, &[], Some("k1")),
                key_change(Action::Delete, &["k1", "k0"], None),
                key_change(Action::Rotate, &[], Some("k1")),
            ],
            unmanaged: Vec::new(),
            secrets_not_held: Vec::new(),
            notes: Vec::new(),
            warnings: Vec::new(),
            effects: Default::default(),
            last_changed: Default::default(),
            key_uses: Default::default(),
            policy: Vec::new(),
        };
        plan.key_uses = destroyed_key_uses(&plan, &live, true);
        let last = |i: usize| plan.last_use_of(&plan.changes[i]).map(|u| u.last_used_at);
        assert_eq!(last(0), Some(Some(used)));
        assert_eq!(last(1), Some(None), "never used");
        assert_eq!(last(2), Some(Some(used)), "the latest of its secrets");
        assert_eq!(last(3), None, "a rotation destroys nothing");

        plan.key_uses = destroyed_key_uses(&plan, &live, false);
        assert!(plan.changes.iter().all(|c| plan.last_use_of(c).is_none()));
    }

    #[test]
    fn ages_read_in_the_largest_whole_unit() {
        let now = datetime!(2026-06-01 12:00 UTC);
        let cases = [
            (time::Duration::seconds(-5), "just now"),
            (time::Duration::seconds(0), "just now"),
            (time::Duration::seconds(1), "1 second ago"),
            (time::Duration::seconds(59), "59 seconds ago"),
            (time::Duration::seconds(60), "1 minute ago"),
            (time::Duration::seconds(3 * 60 + 59), "3 minutes ago"),
            (time::Duration::hours(1), "1 hour ago"),
            (time::Duration::hours(23), "23 hours ago"),
            (time::Duration::hours(24), "1 day ago"),
            (time::Duration::days(40), "40 days ago"),
        ];
        for (before, want) in cases {
            assert_eq!(ago(now - before, now), want, "{before}");
        }
        assert_eq!(describe(None, now), "never used");
        assert_eq!(
            describe(Some(now - time::Duration::minutes(3)), now),
            "last used 3 minutes ago"
        );
    }
}

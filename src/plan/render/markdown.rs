//! The plan as Markdown for a pull-request comment: what cannot be undone first, then each
//! object in a collapsible block, within GitHub's comment size.

use std::collections::HashMap;
use std::fmt::Write;

use super::{LIST_MAX, Paint, effect_rows, field_lines, list, review_lines};
use crate::address::Address;
use crate::plan::last_use::{self, RECENT};
use crate::plan::{AccountEffect, Action, Change, Field, FieldValue, Plan, Snapshot};
use crate::{clock, escape};

/// GitHub refuses a comment longer than this many characters.
pub const COMMENT_LIMIT: usize = 65_536;

/// Room kept for the truncation note and the closing lines.
const NOTE_ROOM: usize = 1_500;

/// The hidden line a bot finds its own comment by, to update it in place.
pub fn comment_marker(organization: &str) -> String {
    format!("<!-- svcacct-plan: {} -->", slug_or_escaped(organization))
}

/// A name as it is when it is a slug (backslash escapes would show literally in a code span
/// or an HTML comment), escaped otherwise.
fn slug_or_escaped(name: &str) -> String {
    if crate::model::valid_name(name) {
        name.to_string()
    } else {
        escape::markdown(name)
    }
}

/// A permission list as code spans.
fn code_list(items: &[String]) -> String {
    let shown: Vec<String> = items
        .iter()
        .take(LIST_MAX)
        .map(|p| format!("`{}`", p.replace('`', "")))
        .collect();
    let mut s = shown.join(", ");
    if items.len() > LIST_MAX {
        let _ = write!(s, ", … and {} more", items.len() - LIST_MAX);
    }
    s
}

/// Whether a change cannot be undone by reverting the pull request: it deletes or revokes
/// something, rotates a secret, or disables an account.
fn destructive(c: &Change) -> Option<&'static str> {
    match c.action {
        Action::Delete => Some("deletes"),
        Action::Retire => Some("revokes"),
        Action::Replace | Action::Rotate => Some("rotates"),
        Action::Update => {
            let disabled = |s: &Option<Snapshot>| s.as_ref().and_then(|s| s.get(Field::Disabled));
            (disabled(&c.before) == Some(FieldValue::Flag(false))
                && disabled(&c.after) == Some(FieldValue::Flag(true)))
            .then_some("disables")
        }
        Action::Create | Action::Deliver => None,
    }
}

/// The object a change is grouped under: an account for its keys, else itself.
fn group_of(a: &Address) -> Address {
    match a {
        Address::Key { account, .. } => Address::account(account),
        other => other.clone(),
    }
}

/// A change as a table row.
fn md_row(plan: &Plan, c: &Change) -> String {
    let p = Paint { color: false };
    let mut details: Vec<String> = c.reason.iter().cloned().collect();
    details.extend(field_lines(c, &p).into_iter().map(|l| l.trim().to_string()));
    details.extend(review_lines(plan, c));
    let details = details
        .iter()
        .map(|d| escape::markdown(d))
        .collect::<Vec<_>>()
        .join("<br>");
    format!(
        "| `{}` | `{}` | {} | {} |\n",
        c.action.symbol(),
        c.address,
        c.action.name(),
        details
    )
}

/// The plan as Markdown, for a pull-request comment: a summary line, the counts, what cannot
/// be undone first, then each object in a collapsible block. Never longer than GitHub allows:
/// past [`COMMENT_LIMIT`], blocks are left out with a note saying so.
pub fn render_markdown(plan: &Plan) -> String {
    render_markdown_within(plan, COMMENT_LIMIT)
}

/// [`render_markdown`] within `limit` characters.
pub fn render_markdown_within(plan: &Plan, limit: usize) -> String {
    let (attention, widening_count) = attention_items(plan);
    let head = md_head(plan, widening_count);
    let tail = md_tail(plan);

    // Assemble within the limit; what does not fit is counted, not cut mid-block.
    let budget = limit.saturating_sub(NOTE_ROOM);
    let mut out = head;
    for w in &plan.warnings {
        let _ = writeln!(out, "> [!WARNING]\n> {}\n", escape::markdown(w));
    }
    // Policy violations come first when one blocks the plan, else after the changes.
    let policy = super::policy::markdown(&plan.policy);
    let policy_first = crate::plan::blocking(&plan.policy) > 0;
    if policy_first {
        out.push_str(&policy);
    }
    let left_destructive = push_attention(&mut out, &attention, budget);
    let left_blocks = push_groups(&mut out, plan, budget);
    if !policy_first {
        out.push_str(&policy);
    }
    if out.len() + tail.len() <= budget {
        out.push_str(&tail);
    } else if !tail.is_empty() {
        out.push_str("\n> **Note:** the unmanaged objects and notes are left out too.\n");
    }
    if left_destructive + left_blocks > 0 {
        let _ = writeln!(
            out,
            "\n> [!WARNING]\n> **This comment is truncated**: {left_destructive} destructive or widening item{} and {left_blocks} object{} are not shown, to stay within GitHub's {limit}-character limit. The full plan is in this run's `svcacct-plan` artifact (or run `svcacct plan` locally).",
            if left_destructive == 1 { "" } else { "s" },
            if left_blocks == 1 { "" } else { "s" },
        );
    }
    out
}

/// What cannot be undone and what widens access, as far as `budget` allows; how many items
/// were left out.
fn push_attention(out: &mut String, attention: &[String], budget: usize) -> usize {
    let mut left = 0;
    if !attention.is_empty() {
        out.push_str("#### ⚠️ Destructive changes and widened access\n\n");
        for item in attention {
            if out.len() + item.len() <= budget {
                out.push_str(item);
            } else {
                left += 1;
            }
        }
        out.push('\n');
    }
    left
}

/// Each object's block, as far as `budget` allows; how many objects were left out.
fn push_groups(out: &mut String, plan: &Plan, budget: usize) -> usize {
    let groups = object_groups(plan);
    let effects: HashMap<&str, &AccountEffect> = plan
        .effects
        .accounts
        .iter()
        .map(|a| (a.account.as_str(), a))
        .collect();
    let mut left = 0;
    if !groups.is_empty() {
        out.push_str("#### Changes by object\n\n");
        for (g, cs) in &groups {
            if left > 0 {
                left += 1;
                continue;
            }
            // Built only while they fit: a plan of ten thousand accounts renders the few
            // hundred shown.
            let b = md_block(plan, &effects, g, cs);
            if out.len() + b.len() <= budget {
                out.push_str(&b);
            } else {
                left += 1;
            }
        }
    }
    left
}

/// Keys used in the last [`RECENT`] that a change destroys, each once with its latest use:
/// the items the comment opens with.
fn recently_used(plan: &Plan, c: &Change, now: time::OffsetDateTime) -> Vec<String> {
    let mut latest: Vec<(&Address, time::OffsetDateTime)> = Vec::new();
    for id in last_use::destroyed_ids(c) {
        let Some(u) = plan.key_uses.get(id) else {
            continue;
        };
        let Some(t) = u.last_used_at.filter(|t| now - *t < RECENT) else {
            continue;
        };
        match latest.iter_mut().find(|(k, _)| **k == u.key) {
            Some((_, seen)) => *seen = (*seen).max(t),
            None => latest.push((&u.key, t)),
        }
    }
    let what = match (c.action, &c.address) {
        (Action::Replace, _) => "replaces it".to_string(),
        (_, Address::ServiceAccount(_)) => format!("revokes it, deleting `{}`", c.address),
        _ => "revokes it".to_string(),
    };
    latest
        .into_iter()
        .map(|(key, t)| {
            format!(
                "- ⚠️ `{key}` was used {} and this plan {what}\n",
                last_use::ago(t, now)
            )
        })
        .collect()
}

/// What cannot be undone, and who gains access: one item each, and how many accounts widen.
/// Keys in recent use that the plan destroys come first.
fn attention_items(plan: &Plan) -> (Vec<String>, usize) {
    let mut items = Vec::new();
    if !plan.key_uses.is_empty() {
        let now = clock::now();
        for c in &plan.changes {
            items.extend(recently_used(plan, c, now));
        }
    }
    for c in &plan.changes {
        if let Some(what) = destructive(c) {
            let why = c
                .reason
                .as_deref()
                .map(|r| format!(": {}", escape::markdown(r)))
                .unwrap_or_default();
            items.push(format!(
                "- **{what}** `{}` ({}){why}\n",
                c.address,
                c.action.name()
            ));
        }
    }
    // Widening, grouped by what is gained: ten thousand accounts gaining the same thing are
    // one line.
    let mut widening: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    let mut widening_index: HashMap<Vec<String>, usize> = HashMap::new();
    for (who, gained, _) in effect_rows(plan) {
        if gained.is_empty() {
            continue;
        }
        match widening_index.get(&gained) {
            Some(&i) => widening[i].1.push(who),
            None => {
                widening_index.insert(gained.clone(), widening.len());
                widening.push((gained, vec![who]));
            }
        }
    }
    let widening_count: usize = widening.iter().map(|(_, w)| w.len()).sum();
    for (gained, whos) in &widening {
        let whos: Vec<String> = whos.iter().map(|w| format!("`{w}`")).collect();
        items.push(format!(
            "- **widens** {} gain{} {}\n",
            list(&whos),
            if whos.len() == 1 { "s" } else { "" },
            code_list(gained)
        ));
    }
    (items, widening_count)
}

/// The comment's marker, its summary line and the table of counts.
fn md_head(plan: &Plan, widening_count: usize) -> String {
    let org = slug_or_escaped(&plan.organization);
    let mut head = String::new();
    let _ = writeln!(head, "{}", comment_marker(&plan.organization));
    if !plan.has_changes() {
        let _ = writeln!(
            head,
            "**svcacct plan for `{org}` at revision {}: no changes.** The organization matches the config.",
            plan.revision
        );
        return head;
    }
    let destructive_count = plan
        .changes
        .iter()
        .filter(|c| destructive(c).is_some())
        .count();
    let mut line = format!(
        "**svcacct plan for `{org}` at revision {}: {}.**",
        plan.revision,
        plan.summary()
    );
    if destructive_count + widening_count > 0 {
        let _ = write!(
            line,
            " ⚠️ {destructive_count} destructive, {widening_count} widening access."
        );
    }
    let _ = writeln!(head, "{line}\n");
    let counts = plan.counts();
    let _ = writeln!(
        head,
        "| {} |\n|{}|\n| {} |\n",
        counts
            .keys()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(" | "),
        counts.keys().map(|_| "---").collect::<Vec<_>>().join("|"),
        counts
            .values()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" | ")
    );
    head
}

/// The changes grouped by object (roles, teams, accounts with their keys), in plan order;
/// accounts whose access changes only through a role get a group too.
fn object_groups(plan: &Plan) -> Vec<(Address, Vec<&Change>)> {
    let mut groups: Vec<(Address, Vec<&Change>)> = Vec::new();
    let mut group_index: HashMap<Address, usize> = HashMap::new();
    for c in &plan.changes {
        let g = group_of(&c.address);
        match group_index.get(&g) {
            Some(&i) => groups[i].1.push(c),
            None => {
                group_index.insert(g.clone(), groups.len());
                groups.push((g, vec![c]));
            }
        }
    }
    for a in &plan.effects.accounts {
        let g = Address::account(&a.account);
        if !group_index.contains_key(&g) {
            group_index.insert(g.clone(), groups.len());
            groups.push((g, Vec::new()));
        }
    }
    groups
}

/// One object's collapsible block: its changes and the access they change.
fn md_block(
    plan: &Plan,
    effects: &HashMap<&str, &AccountEffect>,
    g: &Address,
    cs: &[&Change],
) -> String {
    let mut summary: Vec<String> = cs
        .iter()
        .map(|c| {
            if c.address == *g {
                c.action.name().to_string()
            } else {
                format!("{} {}", c.address, c.action.name())
            }
        })
        .collect();
    let effect = match g {
        Address::ServiceAccount(a) => effects.get(a.as_str()).copied(),
        _ => None,
    };
    if let Some(e) = effect {
        if e.widening() {
            summary.push("⚠️ gains access".into());
        } else {
            summary.push("loses access".into());
        }
    }
    if cs.is_empty() {
        summary.insert(0, "access changes through its roles".into());
    }
    // Addresses are lowercase slugs and the rest is our own words: nothing to escape,
    // and Markdown escapes would show literally inside the HTML of a summary.
    let mut b = format!(
        "<details><summary><code>{g}</code>: {}</summary>\n\n",
        summary.join(", ")
    );
    if !cs.is_empty() {
        b.push_str("| | Address | Action | Details |\n|---|---|---|---|\n");
        for c in cs {
            b.push_str(&md_row(plan, c));
        }
        b.push('\n');
    }
    if let Some(e) = effect {
        md_effect(&mut b, e);
        b.push('\n');
    }
    b.push_str("</details>\n");
    b
}

/// The access an account and its keys gain and lose, as list items.
fn md_effect(b: &mut String, e: &AccountEffect) {
    if !e.gained.is_empty() {
        let _ = writeln!(b, "- gains (widening): {}", code_list(&e.gained));
    }
    if !e.lost.is_empty() {
        let _ = writeln!(b, "- loses: {}", code_list(&e.lost));
    }
    for k in &e.keys {
        if !k.gained.is_empty() {
            let _ = writeln!(
                b,
                "- key `{}` gains (widening): {}",
                k.key,
                code_list(&k.gained)
            );
        }
        if !k.lost.is_empty() {
            let _ = writeln!(b, "- key `{}` loses: {}", k.key, code_list(&k.lost));
        }
    }
}

/// Unmanaged objects, keys whose secret svcacct does not hold, and the plan's notes.
fn md_tail(plan: &Plan) -> String {
    let mut tail = String::new();
    if !plan.unmanaged.is_empty() {
        let _ = writeln!(
            tail,
            "\n<details><summary>{} unmanaged objects (left alone)</summary>\n",
            plan.unmanaged.len()
        );
        for u in &plan.unmanaged {
            let _ = writeln!(tail, "- `{u}`");
        }
        let _ = writeln!(tail, "\n</details>");
    }
    if !plan.secrets_not_held.is_empty() {
        let _ = writeln!(
            tail,
            "\n<details><summary>{} key{} whose secret is not held by svcacct (left working; <code>svcacct rotate ADDRESS</code> brings one under svcacct)</summary>\n",
            plan.secrets_not_held.len(),
            if plan.secrets_not_held.len() == 1 {
                ""
            } else {
                "s"
            }
        );
        for a in &plan.secrets_not_held {
            let _ = writeln!(tail, "- `{a}`");
        }
        let _ = writeln!(tail, "\n</details>");
    }
    for n in &plan.notes {
        let _ = writeln!(tail, "\n> **Note:** {}", escape::markdown(n));
    }
    tail
}

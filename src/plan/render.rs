//! Plans for people: coloured text for a terminal, Markdown for a pull-request comment. Each
//! changed field reads `old → new`; multi-line text is shown as a line diff. Every value
//! goes through [`crate::escape`] for its format: terminal control sequences and markup in
//! a description are shown, never obeyed.

use std::collections::HashMap;
use std::fmt::Write;

use owo_colors::{OwoColorize, Style};
use serde_json::Value;

use super::last_use::{self, RECENT};
use super::{Action, Change, Plan};
use crate::address::Address;
use crate::{clock, escape};

/// Text styling that is a no-op when colour is off.
struct Paint {
    color: bool,
}

impl Paint {
    fn style(&self, s: &str, style: Style) -> String {
        if self.color {
            s.style(style).to_string()
        } else {
            s.to_string()
        }
    }
    fn action(&self, a: Action, s: &str) -> String {
        let style = match a {
            Action::Create => Style::new().green(),
            Action::Update => Style::new().yellow(),
            Action::Replace | Action::Rotate => Style::new().cyan(),
            Action::Retire | Action::Delete => Style::new().red(),
        };
        self.style(s, style)
    }
    fn dim(&self, s: &str) -> String {
        self.style(s, Style::new().dimmed())
    }
    fn bold(&self, s: &str) -> String {
        self.style(s, Style::new().bold())
    }
}

/// A value as plans print it, escaped for a terminal.
fn show(v: &Value) -> String {
    let text = match v {
        Value::Null => "none".into(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(a) => format!(
            "[{}]",
            a.iter()
                .map(|x| x
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    };
    escape::terminal(&text).into_owned()
}

/// Lines describing a change's fields, indented under its header.
fn field_lines(c: &Change, p: &Paint) -> Vec<String> {
    let mut out = Vec::new();
    match (c.action, &c.before, &c.after) {
        (Action::Create, _, Some(Value::Object(after))) => {
            for (k, v) in after {
                if k == "managed" || is_default(v) {
                    continue;
                }
                out.push(format!("{k}: {}", show_field(v)));
            }
        }
        (_, Some(Value::Object(before)), Some(Value::Object(after))) => {
            for k in c.changed_fields() {
                let (old, new) = (&before.get(&k).cloned().unwrap_or(Value::Null), &after[&k]);
                match (old, new) {
                    (Value::Object(o), Value::Object(n)) => {
                        // Memberships: one line per team that changed.
                        for (team, role) in n {
                            match o.get(team) {
                                None => out.push(format!(
                                    "{k}.{team}: {}",
                                    p.action(Action::Create, &format!("+ {}", show(role)))
                                )),
                                Some(r) if r != role => {
                                    out.push(format!("{k}.{team}: {} → {}", show(r), show(role)))
                                }
                                _ => {}
                            }
                        }
                        for (team, role) in o.iter().filter(|(t, _)| !n.contains_key(*t)) {
                            out.push(format!(
                                "{k}.{team}: {}",
                                p.action(Action::Delete, &format!("- {}", show(role)))
                            ));
                        }
                    }
                    (Value::String(o), Value::String(n))
                        if o.contains('\n') || n.contains('\n') =>
                    {
                        out.push(format!("{k}:"));
                        let diff = similar::TextDiff::from_lines(o.as_str(), n.as_str());
                        for change in diff.iter_all_changes() {
                            let line = change.to_string_lossy();
                            let line = escape::terminal(line.trim_end_matches('\n'));
                            match change.tag() {
                                similar::ChangeTag::Delete => {
                                    out.push(p.action(Action::Delete, &format!("  - {line}")))
                                }
                                similar::ChangeTag::Insert => {
                                    out.push(p.action(Action::Create, &format!("  + {line}")))
                                }
                                similar::ChangeTag::Equal => {
                                    out.push(p.dim(&format!("    {line}")))
                                }
                            }
                        }
                    }
                    _ => out.push(format!("{k}: {} → {}", show(old), show(new))),
                }
            }
        }
        _ => {}
    }
    out
}

fn show_field(v: &Value) -> String {
    match v {
        Value::Object(m) => escape::terminal(
            &m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", "),
        )
        .into_owned(),
        other => show(other),
    }
}

fn is_default(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty() || s == "never",
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(_) => false,
    }
}

/// Names shown of a long list before "and N more".
const LIST_MAX: usize = 10;

/// `a, b, c` or `a, b, … and 7 more`.
fn list(items: &[String]) -> String {
    let mut s = items
        .iter()
        .take(LIST_MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > LIST_MAX {
        let _ = write!(s, ", … and {} more", items.len() - LIST_MAX);
    }
    s
}

/// What a reviewer learns about a change besides its fields: the accounts a role change
/// reaches, who last changed a drifted object live, and when a key it destroys was last
/// used. Unescaped.
fn review_lines(plan: &Plan, c: &Change) -> Vec<String> {
    let mut out = Vec::new();
    if let Address::Role(r) = &c.address
        && let Some(reach) = plan.effects.reach_of(r)
    {
        out.push(match reach.len() {
            0 => "reaches no account".to_string(),
            n => format!(
                "reaches {n} account{}: {}",
                if n == 1 { "" } else { "s" },
                list(reach)
            ),
        });
    }
    if let Some(l) = plan.last_changed.get(&c.address) {
        out.push(format!(
            "last changed live {} by {} ({})",
            l.time, l.actor, l.action
        ));
    }
    if let Some(u) = plan.last_use_of(c) {
        let what = last_use::describe(u.last_used_at, clock::now());
        out.push(if c.address == u.key {
            what
        } else {
            format!("{}: {what}", u.key)
        });
    }
    out
}

/// Per account and per scoped key: its address, gained and lost permissions.
fn effect_rows(plan: &Plan) -> Vec<(String, Vec<String>, Vec<String>)> {
    let mut rows = Vec::new();
    for a in &plan.effects.accounts {
        if !a.gained.is_empty() || !a.lost.is_empty() {
            rows.push((
                Address::account(&a.account).to_string(),
                a.gained.clone(),
                a.lost.clone(),
            ));
        }
        for k in &a.keys {
            rows.push((
                Address::key(&a.account, &k.key).to_string(),
                k.gained.clone(),
                k.lost.clone(),
            ));
        }
    }
    rows
}

/// The plan as text; `color` adds ANSI colours.
pub fn render_text(plan: &Plan, color: bool) -> String {
    let p = Paint { color };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        p.bold(&format!(
            "Plan for organization {} at revision {}",
            escape::terminal(&plan.organization),
            plan.revision
        ))
    );
    if plan.changes.is_empty() {
        let _ = writeln!(out, "\nNo changes. The organization matches the config.");
    } else {
        out.push('\n');
    }
    for c in &plan.changes {
        let header = format!(
            "{:>3} {}",
            c.action.symbol(),
            escape::terminal(&c.address.to_string())
        );
        let mut line = p.action(c.action, &header);
        line.push_str(&p.dim(&format!(" ({})", c.action.name())));
        if let Some(reason) = &c.reason {
            line.push_str(&p.dim(&format!(": {}", escape::terminal(reason))));
        }
        let _ = writeln!(out, "{line}");
        for f in field_lines(c, &p) {
            let _ = writeln!(out, "      {f}");
        }
        for f in review_lines(plan, c) {
            let _ = writeln!(out, "      {}", p.dim(&escape::terminal(&f)));
        }
    }
    if !plan.effects.accounts.is_empty() {
        let _ = writeln!(out, "\nPermission changes (who gains and loses what):");
        for (who, gained, lost) in effect_rows(plan) {
            let mut parts = Vec::new();
            if !gained.is_empty() {
                parts.push(p.action(
                    Action::Delete,
                    &format!("+ {} (widening)", escape::terminal(&gained.join(", "))),
                ));
            }
            if !lost.is_empty() {
                parts.push(p.action(
                    Action::Create,
                    &format!("- {}", escape::terminal(&lost.join(", "))),
                ));
            }
            let _ = writeln!(out, "    {who}: {}", parts.join("; "));
        }
    }
    if !plan.unmanaged.is_empty() {
        let _ = writeln!(out, "\nUnmanaged (made outside svcacct, left alone):");
        for u in &plan.unmanaged {
            let _ = writeln!(out, "    {}", p.dim(&escape::terminal(&u.to_string())));
        }
    }
    if !plan.secrets_not_held.is_empty() {
        let _ = writeln!(
            out,
            "\nSecret not held by svcacct (made outside it, left working; `svcacct rotate ADDRESS` brings one under svcacct):"
        );
        for a in &plan.secrets_not_held {
            let _ = writeln!(out, "    {}", p.dim(&escape::terminal(&a.to_string())));
        }
    }
    for n in &plan.notes {
        let _ = writeln!(out, "\nnote: {}", escape::terminal(n));
    }
    out.push_str(&crate::policy::render::text(&plan.policy));
    if plan.has_changes() {
        let _ = writeln!(out, "\n{}", p.bold(&format!("Plan: {}.", plan.summary())));
    }
    out
}

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
            let disables = |v: &Option<Value>| {
                v.as_ref()
                    .and_then(|v| v.get("disabled"))
                    .and_then(Value::as_bool)
            };
            (disables(&c.before) == Some(false) && disables(&c.after) == Some(true))
                .then_some("disables")
        }
        Action::Create => None,
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
    let groups = object_groups(plan);
    let effects: HashMap<&str, &super::AccountEffect> = plan
        .effects
        .accounts
        .iter()
        .map(|a| (a.account.as_str(), a))
        .collect();
    let tail = md_tail(plan);

    // Assemble within the limit; what does not fit is counted, not cut mid-block.
    let budget = limit.saturating_sub(NOTE_ROOM);
    let mut out = head;
    // Policy violations come first when one blocks the plan, else after the changes.
    let policy = crate::policy::render::markdown(&plan.policy);
    let policy_first = crate::policy::blocking(&plan.policy) > 0;
    if policy_first {
        out.push_str(&policy);
    }
    let (mut left_destructive, mut left_blocks) = (0, 0);
    if !attention.is_empty() {
        out.push_str("#### ⚠️ Destructive changes and widened access\n\n");
        for item in &attention {
            if out.len() + item.len() <= budget {
                out.push_str(item);
            } else {
                left_destructive += 1;
            }
        }
        out.push('\n');
    }
    if !groups.is_empty() {
        out.push_str("#### Changes by object\n\n");
        for (g, cs) in &groups {
            if left_blocks > 0 {
                left_blocks += 1;
                continue;
            }
            // Built only while they fit: a plan of ten thousand accounts renders the few
            // hundred shown.
            let b = md_block(plan, &effects, g, cs);
            if out.len() + b.len() <= budget {
                out.push_str(&b);
            } else {
                left_blocks += 1;
            }
        }
    }
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
    effects: &HashMap<&str, &super::AccountEffect>,
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
fn md_effect(b: &mut String, e: &super::AccountEffect) {
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

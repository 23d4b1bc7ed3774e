//! Renderers of plans: coloured text for a terminal, Markdown for a pull-request comment,
//! and the documented JSON form; this module holds what text and Markdown share. Each
//! changed field reads `old → new`; multi-line text is shown as a line diff. Every value
//! goes through [`crate::escape`] for its format: terminal control sequences and markup in
//! a description are shown, never obeyed.

mod json;
mod markdown;
mod policy;
mod text;

use std::fmt::Write;

use owo_colors::{OwoColorize, Style};

use super::last_use;
use super::{Action, Change, Field, FieldValue, Plan};
use crate::address::Address;
use crate::{clock, escape};

pub use json::to_json;
pub use markdown::render_markdown;
pub use text::render_text;

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
            Action::Deliver => Style::new().blue(),
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
fn show(v: &FieldValue) -> String {
    let text = match v {
        FieldValue::None => "none".into(),
        FieldValue::Text(s) => format!("{s:?}"),
        FieldValue::Flag(b) => b.to_string(),
        FieldValue::List(l) => format!("[{}]", l.join(", ")),
        FieldValue::Memberships(m) => serde_json::to_string(m).expect("a map serializes"),
    };
    escape::terminal(&text).into_owned()
}

/// Lines describing a change's fields, indented under its header.
fn field_lines(c: &Change, p: &Paint) -> Vec<String> {
    match (c.action, &c.before, &c.after) {
        (Action::Create, _, Some(after)) => after
            .fields()
            .into_iter()
            .filter(|(f, v)| *f != Field::Managed && !v.is_default())
            .map(|(f, v)| format!("{f}: {}", show_field(&v)))
            .collect(),
        (_, Some(before), Some(after)) => {
            let mut out = Vec::new();
            for f in c.changed_fields() {
                let old = before.get(f).unwrap_or(FieldValue::None);
                let new = after.get(f).unwrap_or(FieldValue::None);
                changed_field_lines(&mut out, f, &old, &new, p);
            }
            out
        }
        _ => Vec::new(),
    }
}

/// The lines of one changed field: one per membership that changed, a line diff of
/// multi-line text, else `old → new`.
fn changed_field_lines(
    out: &mut Vec<String>,
    f: Field,
    old: &FieldValue,
    new: &FieldValue,
    p: &Paint,
) {
    match (old, new) {
        (FieldValue::Memberships(o), FieldValue::Memberships(n)) => {
            let role = |r: &String| show(&FieldValue::Text(r.clone()));
            for (team, r) in n {
                match o.get(team) {
                    None => out.push(format!(
                        "{f}.{team}: {}",
                        p.action(Action::Create, &format!("+ {}", role(r)))
                    )),
                    Some(was) if was != r => {
                        out.push(format!("{f}.{team}: {} → {}", role(was), role(r)))
                    }
                    _ => {}
                }
            }
            for (team, r) in o.iter().filter(|(t, _)| !n.contains_key(*t)) {
                out.push(format!(
                    "{f}.{team}: {}",
                    p.action(Action::Delete, &format!("- {}", role(r)))
                ));
            }
        }
        (FieldValue::Text(o), FieldValue::Text(n)) if o.contains('\n') || n.contains('\n') => {
            out.push(format!("{f}:"));
            let diff = similar::TextDiff::from_lines(o.as_str(), n.as_str());
            for change in diff.iter_all_changes() {
                let line = change.to_string_lossy();
                let line = escape::terminal(line.trim_end_matches('\n'));
                out.push(match change.tag() {
                    similar::ChangeTag::Delete => p.action(Action::Delete, &format!("  - {line}")),
                    similar::ChangeTag::Insert => p.action(Action::Create, &format!("  + {line}")),
                    similar::ChangeTag::Equal => p.dim(&format!("    {line}")),
                });
            }
        }
        _ => out.push(format!("{f}: {} → {}", show(old), show(new))),
    }
}

/// A field of a new object: memberships as `team=role`.
fn show_field(v: &FieldValue) -> String {
    match v {
        FieldValue::Memberships(m) => escape::terminal(
            &m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
        )
        .into_owned(),
        other => show(other),
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

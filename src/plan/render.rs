//! Plans for people: coloured text for a terminal, Markdown for a pull-request comment. Each
//! changed field reads `old → new`; multi-line text is shown as a line diff. Every value
//! goes through [`crate::escape`] for its format: terminal control sequences and markup in
//! a description are shown, never obeyed.

use std::fmt::Write;

use owo_colors::{OwoColorize, Style};
use serde_json::Value;

use super::{Action, Change, Plan};
use crate::escape;

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
    if plan.has_changes() {
        let _ = writeln!(out, "\n{}", p.bold(&format!("Plan: {}.", plan.summary())));
    }
    out
}

/// The plan as Markdown, for a pull-request comment.
pub fn render_markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### svcacct plan for `{}` (revision {})\n",
        plan.organization, plan.revision
    );
    if !plan.has_changes() {
        let _ = writeln!(out, "No changes. The organization matches the config.");
    } else {
        let _ = writeln!(out, "**{}.**\n", plan.summary());
        let _ = writeln!(out, "| | Address | Action | Details |\n|---|---|---|---|");
        let p = Paint { color: false };
        for c in &plan.changes {
            let mut details: Vec<String> = c.reason.iter().cloned().collect();
            details.extend(field_lines(c, &p).into_iter().map(|l| l.trim().to_string()));
            let details = details
                .iter()
                .map(|d| escape::markdown(d))
                .collect::<Vec<_>>()
                .join("<br>");
            let _ = writeln!(
                out,
                "| `{}` | `{}` | {} | {} |",
                c.action.symbol(),
                c.address,
                c.action.name(),
                details
            );
        }
    }
    if !plan.unmanaged.is_empty() {
        let _ = writeln!(
            out,
            "\n<details><summary>{} unmanaged objects (left alone)</summary>\n",
            plan.unmanaged.len()
        );
        for u in &plan.unmanaged {
            let _ = writeln!(out, "- `{u}`");
        }
        let _ = writeln!(out, "\n</details>");
    }
    if !plan.secrets_not_held.is_empty() {
        let _ = writeln!(
            out,
            "\n<details><summary>{} key{} whose secret is not held by svcacct (left working; <code>svcacct rotate ADDRESS</code> brings one under svcacct)</summary>\n",
            plan.secrets_not_held.len(),
            if plan.secrets_not_held.len() == 1 {
                ""
            } else {
                "s"
            }
        );
        for a in &plan.secrets_not_held {
            let _ = writeln!(out, "- `{a}`");
        }
        let _ = writeln!(out, "\n</details>");
    }
    for n in &plan.notes {
        let _ = writeln!(out, "\n> **Note:** {}", escape::markdown(n));
    }
    out
}

//! The plan as text for a terminal, coloured when asked.

use std::fmt::Write;

use super::{Paint, effect_rows, field_lines, review_lines};
use crate::escape;
use crate::plan::{Action, Plan};

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
    changes(&mut out, plan, &p);
    effects(&mut out, plan, &p);
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
    for w in &plan.warnings {
        let _ = writeln!(out, "\n{} {}", p.bold("WARNING:"), escape::terminal(w));
    }
    for n in &plan.notes {
        let _ = writeln!(out, "\nnote: {}", escape::terminal(n));
    }
    out.push_str(&super::policy::text(&plan.policy));
    if plan.has_changes() {
        let _ = writeln!(out, "\n{}", p.bold(&format!("Plan: {}.", plan.summary())));
    }
    out
}

/// Each change: its header, reason, fields and what a reviewer learns of it.
fn changes(out: &mut String, plan: &Plan, p: &Paint) {
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
        for f in field_lines(c, p) {
            let _ = writeln!(out, "      {f}");
        }
        for f in review_lines(plan, c) {
            let _ = writeln!(out, "      {}", p.dim(&escape::terminal(&f)));
        }
    }
}

/// Who gains and loses what, account by account and key by key.
fn effects(out: &mut String, plan: &Plan, p: &Paint) {
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
}

//! The policy section of each plan format: the text plan, the pull-request comment (first when
//! anything blocks) and the plan JSON's `policy` array. Exceptions are shown too, with their
//! reason, in every format.

use std::fmt::Write;

use serde_json::{Value, json};

use crate::escape;
use crate::plan::{Finding, blocking, counts};

/// The text plan's policy section; empty when there is nothing to show.
pub fn text(findings: &[Finding]) -> String {
    let mut out = String::new();
    if findings.is_empty() {
        return out;
    }
    let _ = writeln!(out, "\nPolicy: {}", counts(findings));
    for f in findings {
        let label = match (&f.excepted, f.severity) {
            (Some(_), _) => "excepted",
            (None, s) => s.label(),
        };
        let _ = writeln!(
            out,
            "  {label}[{}] {}: {}",
            escape::terminal(&f.rule),
            f.object,
            escape::terminal(&f.message)
        );
        let mut at = format!("at {}", escape::terminal(&f.place()));
        if let Some(c) = &f.cause {
            let _ = write!(at, ", caused by {c}");
        }
        let _ = writeln!(out, "      {at}");
        match &f.excepted {
            Some(reason) => {
                let _ = writeln!(out, "      reason: {}", escape::terminal(reason));
            }
            None => {
                let _ = writeln!(out, "      help: {}", escape::terminal(&f.help));
            }
        }
    }
    out
}

/// Text as inline code: a backtick or line break could end the span early, so they go.
fn code(s: &str) -> String {
    format!("`{}`", s.replace('`', "'").replace(['\n', '\r'], " "))
}

/// A message whose `quoted` parts are names and permissions: those become code spans, the
/// rest is escaped, so nothing in a config can inject markdown into the comment.
fn md_message(s: &str) -> String {
    s.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                code(part)
            } else {
                escape::markdown(part)
            }
        })
        .collect()
}

/// At most this many violations (and as many exceptions) are listed in the comment; the rest
/// are counted. Fifty of each stay well inside GitHub's limit and leave room for the changes.
const MARKDOWN_ITEMS: usize = 50;

/// The comment's policy section; empty when there is nothing to show.
pub fn markdown(findings: &[Finding]) -> String {
    let mut out = String::new();
    if findings.is_empty() {
        return out;
    }
    let head = if blocking(findings) > 0 {
        "⛔ Policy violations block this plan"
    } else {
        "Policy"
    };
    let _ = writeln!(out, "\n#### {head}: {}\n", counts(findings));
    let (violations, excepted): (Vec<&Finding>, Vec<&Finding>) =
        findings.iter().partition(|f| f.excepted.is_none());
    for f in violations.iter().take(MARKDOWN_ITEMS) {
        let _ = write!(
            out,
            "- **{}** {} — {} (rule {}, {})",
            f.severity.label(),
            code(&f.object.to_string()),
            md_message(&f.message),
            code(&f.rule),
            code(&f.place())
        );
        if let Some(c) = &f.cause {
            let _ = write!(out, "; caused by {}", code(c));
        }
        let _ = writeln!(out, "\n  - help: {}", md_message(&f.help));
    }
    if violations.len() > MARKDOWN_ITEMS {
        let _ = writeln!(
            out,
            "- … and {} more (run `svcacct validate` to see them all)",
            violations.len() - MARKDOWN_ITEMS
        );
    }
    if !excepted.is_empty() {
        let _ = writeln!(
            out,
            "\n**Exceptions** (let through by a rule's `except`, with the reason given):\n"
        );
        for f in excepted.iter().take(MARKDOWN_ITEMS) {
            let _ = writeln!(
                out,
                "- {} — {} (rule {}): *{}*",
                code(&f.object.to_string()),
                md_message(&f.message),
                code(&f.rule),
                escape::markdown(f.excepted.as_deref().unwrap_or(""))
            );
        }
        if excepted.len() > MARKDOWN_ITEMS {
            let _ = writeln!(out, "- … and {} more", excepted.len() - MARKDOWN_ITEMS);
        }
    }
    out.push('\n');
    out
}

/// The plan JSON's `policy` array.
pub fn json(findings: &[Finding]) -> Value {
    Value::Array(
        findings
            .iter()
            .map(|f| {
                json!({
                    "rule": f.rule,
                    "kind": f.kind,
                    "severity": f.severity,
                    "object": f.object,
                    "message": f.message,
                    "help": f.help,
                    "file": f.file,
                    "line": f.line,
                    "column": f.column,
                    "excepted": f.excepted.is_some(),
                    "reason": f.excepted,
                    "cause": f.cause,
                })
            })
            .collect(),
    )
}

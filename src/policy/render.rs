//! Violations as `validate` and `apply` report them: config diagnostics quoting the line, and
//! a note for each exception. The plan formats' policy sections are `plan::render`'s.

use crate::config::rules::Spans;
use crate::config::{Diagnostic, Severity};
use crate::plan::{Finding, RuleSeverity};

/// A violation as a config diagnostic (validate, apply), quoting its line from `spans`.
pub fn diagnostic(f: &Finding, spans: &Spans) -> Diagnostic {
    let severity = match f.severity {
        RuleSeverity::Error => Severity::Error,
        RuleSeverity::Warn => Severity::Warning,
    };
    let source = spans
        .sources
        .iter()
        .find(|s| s.path.display().to_string() == f.file);
    let message = format!("policy rule `{}`: {}", f.rule, f.message);
    let mut d = match source {
        Some(s) => s.diagnostic(severity, f.line, f.column, message),
        None => spans.diagnostic(severity, Default::default(), message),
    };
    d.help = Some(f.help.clone());
    d
}

/// A line for an excepted violation: what the rule lets through, and why.
pub fn excepted_line(f: &Finding) -> String {
    format!(
        "policy rule `{}` excepts {} ({}): {}; reason: {}",
        f.rule,
        f.object,
        f.place(),
        f.message,
        f.excepted.as_deref().unwrap_or("")
    )
}

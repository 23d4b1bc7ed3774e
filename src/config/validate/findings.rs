//! Every problem found while validating, with its place, collected rather than stopping at
//! the first.

use std::collections::BTreeSet;

use time::Date;
use time::macros::format_description;

use crate::backend::{Capabilities, Vocabulary};
use crate::config::diagnostic::{Diagnostic, Severity, Source};
use crate::config::raw::Loc;
use crate::model::{NAME_HELP, valid_name, valid_permission};
use crate::suggest::closest;

/// Collects diagnostics against the sources.
pub(super) struct Findings<'a> {
    pub(super) sources: &'a [Source],
    pub(super) all: Vec<Diagnostic>,
    /// What the configured backend can store: its permission names, built-in roles, limits.
    pub(super) caps: &'static Capabilities,
}

impl Findings<'_> {
    pub(super) fn push(
        &mut self,
        severity: Severity,
        file: usize,
        at: (u64, u64),
        message: String,
        help: Option<String>,
    ) {
        let mut d = self.sources[file].diagnostic(severity, at.0.max(1), at.1.max(1), message);
        d.help = help;
        self.all.push(d);
    }
    pub(super) fn error(&mut self, file: usize, at: (u64, u64), message: String) {
        self.push(Severity::Error, file, at, message, None);
    }

    /// An error unless `name` is a lowercase slug.
    pub(super) fn check_name(&mut self, file: usize, at: (u64, u64), kind: &str, name: &str) {
        if !valid_name(name) {
            let message = format!("invalid {kind} name `{name}`");
            self.push(Severity::Error, file, at, message, Some(NAME_HELP.into()));
        }
    }

    /// The set of `list`, with an error for each entry that is not a permission.
    pub(super) fn permissions(
        &mut self,
        file: usize,
        list: &[Loc<String>],
        kind: &str,
        help: &str,
    ) -> BTreeSet<String> {
        let caps = self.caps;
        for p in list {
            match caps.vocabulary {
                Vocabulary::Patterns if !valid_permission(&p.value) => {
                    let message = format!("invalid {kind} `{}`", p.value);
                    self.push(Severity::Error, file, at(p), message, Some(help.into()));
                }
                Vocabulary::Names(names) if !names.contains(&p.value.as_str()) => {
                    let message = format!("the {} backend has no {kind} `{}`", caps.name, p.value);
                    let help = closest(&p.value, names.iter().copied())
                        .map(|c| format!("did you mean `{c}`?"));
                    self.push(Severity::Error, file, at(p), message, help);
                }
                _ => {}
            }
        }
        list.iter().map(|p| p.value.clone()).collect()
    }
}

pub(super) fn at<T>(l: &Loc<T>) -> (u64, u64) {
    (l.line, l.column)
}

pub(super) fn parse_expiry(f: &mut Findings<'_>, file: usize, e: &Loc<String>) -> Option<Date> {
    if e.value == "never" {
        return None;
    }
    match Date::parse(&e.value, format_description!("[year]-[month]-[day]")) {
        Ok(d) => Some(d),
        Err(_) => {
            f.push(
                Severity::Error,
                file,
                at(e),
                format!("invalid expiry `{}`", e.value),
                Some("use `never` or a date such as 2027-06-30".into()),
            );
            None
        }
    }
}

//! Where each object of the config is written, kept from the parse in a side table keyed by
//! name, so a violation found on the desired organization points at its YAML node without
//! parsing again. Built only when the config has rules; validation itself reads the raw
//! config directly.

use std::collections::HashMap;

use crate::config::diagnostic::{Diagnostic, Severity, Source};
use crate::config::load::Merged;
use crate::config::raw::Loc;

/// Where something is written: a file of the config (by index) and a line and column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Place {
    pub file: usize,
    pub line: u64,
    pub column: u64,
}

impl Place {
    /// The place of a located value in `file`.
    pub fn of<T>(file: usize, l: &Loc<T>) -> Place {
        Place {
            file,
            line: l.line.max(1),
            column: l.column.max(1),
        }
    }
}

/// The places of an account's parts.
#[derive(Debug, Default)]
pub struct AccountSpans {
    pub at: Place,
    /// Membership: team → (the team's name, the role's name).
    pub teams: HashMap<String, (Place, Place)>,
    pub keys: HashMap<String, KeySpans>,
    /// Key names in file order (for "the fourth key").
    pub key_order: Vec<String>,
}

/// The places of a key's parts.
#[derive(Debug, Default)]
pub struct KeySpans {
    pub at: Place,
    pub expires_in: Option<Place>,
    pub rotate_every: Option<Place>,
    pub scopes: HashMap<String, Place>,
}

/// The places of a role's parts.
#[derive(Debug, Default)]
pub struct RoleSpans {
    pub at: Place,
    pub permissions: HashMap<String, Place>,
}

/// Every place a violation may point at, and the files to quote.
#[derive(Debug, Default)]
pub struct Spans {
    pub sources: Vec<Source>,
    pub accounts: HashMap<String, AccountSpans>,
    pub roles: HashMap<String, RoleSpans>,
    pub teams: HashMap<String, Place>,
}

fn list(file: usize, items: &[Loc<String>]) -> HashMap<String, Place> {
    items
        .iter()
        .map(|p| (p.value.clone(), Place::of(file, p)))
        .collect()
}

impl Spans {
    /// The table of the merged config, without its sources: the caller that owns them moves
    /// them in (`sources`), so 4 MB of YAML is not copied.
    pub fn new(merged: &Merged) -> Spans {
        let mut spans = Spans::default();
        for d in &merged.roles {
            let (name, raw) = &d.item.value;
            let role = RoleSpans {
                at: Place::of(d.file, &d.item),
                permissions: list(d.file, &raw.permissions),
            };
            spans.roles.insert(name.clone(), role);
        }
        for d in &merged.teams {
            spans
                .teams
                .insert(d.item.value.0.clone(), Place::of(d.file, &d.item));
        }
        for d in &merged.service_accounts {
            let (name, raw) = &d.item.value;
            let file = d.file;
            let mut a = AccountSpans {
                at: Place::of(file, &d.item),
                ..Default::default()
            };
            for (team, role) in &raw.teams.0 {
                a.teams.insert(
                    team.value.clone(),
                    (Place::of(file, team), Place::of(file, role)),
                );
            }
            for (key, k) in &raw.keys.0 {
                a.key_order.push(key.value.clone());
                a.keys.insert(
                    key.value.clone(),
                    KeySpans {
                        at: Place::of(file, key),
                        expires_in: k.expires_in.as_ref().map(|l| Place::of(file, l)),
                        rotate_every: k.rotate_every.as_ref().map(|l| Place::of(file, l)),
                        scopes: list(file, &k.scopes),
                    },
                );
            }
            spans.accounts.insert(name.clone(), a);
        }
        spans
    }

    /// A diagnostic at `place`, quoting its line.
    pub fn diagnostic(&self, severity: Severity, place: Place, message: String) -> Diagnostic {
        match self.sources.get(place.file) {
            Some(s) => s.diagnostic(severity, place.line, place.column, message),
            None => Diagnostic {
                severity,
                file: Default::default(),
                line: place.line,
                column: place.column,
                message,
                source_line: String::new(),
                help: None,
                note: None,
            },
        }
    }

    /// `file:line:column` of a place.
    pub fn describe(&self, place: Place) -> String {
        match self.sources.get(place.file) {
            Some(s) => s.place(place.line, place.column),
            None => format!("{}:{}", place.line, place.column),
        }
    }

    /// The path of a place's file, as the config names it.
    pub fn file(&self, place: Place) -> String {
        self.sources
            .get(place.file)
            .map(|s| s.path.display().to_string())
            .unwrap_or_default()
    }
}

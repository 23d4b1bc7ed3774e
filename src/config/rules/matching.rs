//! Which objects a rule or an exception applies to: a glob over names and a team. Kept apart
//! from evaluation so `policy explain` can say *why* an object is in or out.

use std::collections::HashMap;

use crate::model::ServiceAccount;

/// A name glob: `*` matches any run of characters, `?` one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(pub String);

impl Glob {
    /// Why `pattern` is not a glob, if it is not one.
    pub fn check(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() {
            return Err("an empty glob matches nothing".into());
        }
        if let Some(c) = pattern.chars().find(|c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '*' | '?'))
        }) {
            return Err(format!("`{c}` cannot be in a name glob"));
        }
        Ok(Glob(pattern.to_string()))
    }

    /// Whether `name` matches the whole glob.
    pub fn matches(&self, name: &str) -> bool {
        // Iterative wildcard matching with one backtrack point: linear in practice, never
        // exponential on patterns such as `*a*a*a*`.
        let (p, s) = (self.0.as_bytes(), name.as_bytes());
        let (mut pi, mut si) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
                pi += 1;
                si += 1;
            } else if pi < p.len() && p[pi] == b'*' {
                star = Some((pi, si));
                pi += 1;
            } else if let Some((sp, ss)) = star {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&c| c == b'*')
    }
}

/// A checked `match:`; every condition given must hold, and none given matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Match {
    pub name: Option<Glob>,
    pub team: Option<String>,
}

/// One object of the desired organization, as rules see it.
#[derive(Debug, Clone, Copy)]
pub enum Object<'a> {
    Role(&'a str),
    /// A team, with its memberships: (account, role).
    Team(&'a str, &'a [(&'a str, &'a str)]),
    Account(&'a str, &'a ServiceAccount),
    Key {
        account: &'a str,
        key: &'a str,
        of: &'a ServiceAccount,
    },
}

impl Match {
    /// Whether the object matches. Allocates nothing for an account, team or role: it runs
    /// for every object of every rule.
    pub fn matches(&self, object: Object<'_>, owners: &HashMap<String, String>) -> bool {
        if let Some(g) = &self.name {
            let hit = match object {
                Object::Role(n) | Object::Team(n, _) | Object::Account(n, _) => g.matches(n),
                Object::Key { account, key, .. } => {
                    g.matches(account) || g.matches(&format!("{account}.{key}"))
                }
            };
            if !hit {
                return false;
            }
        }
        if let Some(team) = &self.team {
            let in_team = |name: &str, a: &ServiceAccount| {
                a.teams.contains_key(team) || owners.get(name) == Some(team)
            };
            let hit = match object {
                Object::Role(_) => false,
                Object::Team(n, _) => n == team,
                Object::Account(n, a) => in_team(n, a),
                Object::Key { account, of, .. } => in_team(account, of),
            };
            if !hit {
                return false;
            }
        }
        true
    }

    /// Whether the object matches, and why (for `policy explain`); `None` when it does not.
    /// `owners` are the `owner:` teams of accounts.
    pub fn why(&self, object: Object<'_>, owners: &HashMap<String, String>) -> Option<String> {
        if !self.matches(object, owners) {
            return None;
        }
        let mut why = Vec::new();
        if let Some(g) = &self.name {
            why.push(format!("its name matches `{}`", g.0));
        }
        if let Some(team) = &self.team {
            why.push(format!("it belongs to team `{team}`"));
        }
        if why.is_empty() {
            why.push("the rule matches every object of its kind".into());
        }
        Some(why.join(" and "))
    }
}

impl Object<'_> {
    /// The object's address.
    pub fn address(&self) -> crate::address::Address {
        use crate::address::Address;
        match *self {
            Object::Role(n) => Address::role(n),
            Object::Team(n, _) => Address::team(n),
            Object::Account(n, _) => Address::account(n),
            Object::Key { account, key, .. } => Address::key(account, key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        let g = Glob::check("ci-*").unwrap();
        assert!(g.matches("ci-bot"));
        assert!(g.matches("ci-"));
        assert!(!g.matches("xci-bot"));
        let g = Glob::check("*-bot?").unwrap();
        assert!(g.matches("ci-bot1"));
        assert!(!g.matches("ci-bot"));
        assert!(Glob::check("*a*a*a*b").unwrap().matches("aaaaaaaaaaaab"));
        assert!(!Glob::check("*a*a*a*b").unwrap().matches("aaaaaaaaaaaaa"));
        assert_eq!(
            Glob::check("ci-[ab]").unwrap_err(),
            "`[` cannot be in a name glob"
        );
    }
}

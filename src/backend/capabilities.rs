//! What a backend can store and do, as data. `validate` reads it to refuse, offline and with
//! the config's line and column, what a backend cannot honour (two keys where it keeps one);
//! the plan reads it to compare only what the backend persists, so no backend shows a change
//! that no apply can make go away. A new backend states its capabilities; it adds no branch.

use crate::duration::Duration;
use crate::model::Organization;

/// Who makes a key's secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Minting {
    /// svcacct mints the secret, writes its file, then registers its hash.
    Client,
    /// The backend mints the secret and hands it over once.
    Server,
}

/// The permission names a backend understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vocabulary {
    /// `resource:action` patterns, `*` matching any part.
    Patterns,
    /// A fixed list of names.
    Names(&'static [&'static str]),
}

/// The optional fields of the model, and whether a backend keeps each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    /// The `protect` flag of roles, teams and accounts.
    pub protect: bool,
    /// Descriptions of roles, teams and service accounts.
    pub descriptions: bool,
    /// Descriptions of keys.
    pub key_descriptions: bool,
    /// Key `scopes`.
    pub scopes: bool,
    /// `disabled` on accounts.
    pub disabled: bool,
    /// Account `expires`.
    pub account_expiry: bool,
}

/// Everything the config and the plan need to know about a backend before talking to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// How messages name the backend: "the prefect backend keeps one key per account".
    pub name: &'static str,
    pub minting: Minting,
    pub max_keys_per_account: usize,
    /// The longest rotation overlap, if the backend caps it.
    pub max_overlap: Option<Duration>,
    pub persists: Fields,
    /// Roles every organization has, which a config may use but not define.
    pub builtin_roles: &'static [&'static str],
    pub vocabulary: Vocabulary,
    /// Whether every write bumps a revision a plan can be checked against.
    pub revision: bool,
    /// Whether the backend has an apply lock.
    pub lock: bool,
    pub audit_log: bool,
    /// Teams exist outside svcacct (Prefect's workspaces): a config names live ones, and the
    /// plan never creates or deletes one, nor sets a description or `protect` on it.
    pub fixed_teams: bool,
    /// Role names a config may neither define nor use under this backend: another backend's
    /// built-ins, which would read as a promise this one does not keep.
    pub reserved_roles: &'static [&'static str],
    /// Whether ownership lives in a record beside the objects rather than on them. A declared
    /// object is then the config's to change whatever made it, so the plan compares it as
    /// managed; the record only decides whether an undeclared one may be deleted.
    pub ownership_record: bool,
    /// Whether the backend records when each key was last used, so a plan can say "never
    /// used" of a key without a recorded use rather than nothing.
    pub records_key_use: bool,
    /// Why `svcacct verify` cannot ask this backend about a key, if it cannot: refused before
    /// anything is opened or read, so no credential is needed to learn it.
    pub cannot_verify: Option<&'static str>,
}

impl Capabilities {
    /// Clears what the backend does not keep from a desired organization, so the plan compares
    /// only what the backend persists and never shows a change no apply can make go away.
    /// Returns the names of the fields it cleared somewhere, for a warning.
    pub fn project(&self, org: &mut Organization) -> Vec<&'static str> {
        let mut cleared = Vec::new();
        let mut clear = |keep: bool, name: &'static str, text: &mut String| {
            if !keep && !text.is_empty() {
                text.clear();
                if !cleared.contains(&name) {
                    cleared.push(name);
                }
            }
        };
        let keep = self.persists;
        for r in org.roles.values_mut().filter(|r| !r.builtin) {
            clear(keep.descriptions, "role descriptions", &mut r.description);
        }
        for t in org.teams.values_mut() {
            clear(keep.descriptions, "team descriptions", &mut t.description);
        }
        for a in org.service_accounts.values_mut() {
            clear(
                keep.descriptions,
                "service account descriptions",
                &mut a.description,
            );
            for (_, k) in a.keys.iter_mut() {
                clear(
                    keep.key_descriptions,
                    "key descriptions",
                    &mut k.description,
                );
            }
        }
        cleared
    }
}

/// Every field kept: svcacct's own store.
pub const ALL_FIELDS: Fields = Fields {
    protect: true,
    descriptions: true,
    key_descriptions: true,
    scopes: true,
    disabled: true,
    account_expiry: true,
};

/// svcacct's own store, embedded (`local`) or served (`http`).
pub const SVCACCT_STORE: Capabilities = Capabilities {
    name: "svcacct",
    minting: Minting::Client,
    max_keys_per_account: crate::model::MAX_KEYS_PER_ACCOUNT,
    max_overlap: None,
    persists: ALL_FIELDS,
    builtin_roles: &crate::model::BUILTIN_ROLES,
    vocabulary: Vocabulary::Patterns,
    revision: true,
    lock: true,
    audit_log: true,
    fixed_teams: false,
    reserved_roles: &[],
    ownership_record: false,
    records_key_use: true,
    cannot_verify: None,
};

//! The resource model shared by the desired state (from YAML) and the live state (from a
//! backend). The plan is a diff of two values of these types, so both sides must speak it.
//!
//! Keys are where the two sides part: a desired key is only settings, a live key is the
//! settings the backend keeps plus the facts of its issue. An organization and its accounts
//! are generic over the key type ([`Organization`] is desired, [`LiveOrganization`] live), so
//! a live key without issue facts cannot be built and the diff has nothing to `expect`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::duration::Duration;

/// Built-in roles: present in every organization, never changed or deleted.
pub const BUILTIN_ROLES: [&str; 3] = ["admin", "member", "viewer"];

/// The permissions each built-in role grants. `*` matches any resource or action.
pub fn builtin_role(name: &str) -> Option<Role> {
    let (description, permissions): (&str, &[&str]) = match name {
        "admin" => ("Every permission", &["*:*"]),
        "member" => (
            "Read, write and execute",
            &["*:read", "*:write", "*:execute"],
        ),
        "viewer" => ("Read only", &["*:read"]),
        _ => return None,
    };
    Some(Role {
        description: description.to_string(),
        permissions: permissions.iter().map(|p| p.to_string()).collect(),
        builtin: true,
        managed: false,
        protect: true,
    })
}

/// Active keys an account may hold (Datafold's limit).
pub const MAX_KEYS_PER_ACCOUNT: usize = 50;

/// Whether `name` is a lowercase slug.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether `p` is `resource:action`, each part a lowercase word or `*`.
pub fn valid_permission(p: &str) -> bool {
    let part = |s: &str| {
        s == "*"
            || (!s.is_empty()
                && s.bytes().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_'
                }))
    };
    p.split_once(':').is_some_and(|(r, a)| part(r) && part(a))
}

/// How a refused name is explained.
pub const NAME_HELP: &str =
    "names are lowercase letters, digits and inner hyphens, at most 63 characters";

/// Deletion safety rules.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub unmanaged: UnmanagedPolicy,
    pub max_delete_percent: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            unmanaged: UnmanagedPolicy::Ignore,
            max_delete_percent: 25,
        }
    }
}

/// Whether live objects the config does not manage are left alone or deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UnmanagedPolicy {
    /// List them in the plan and leave them alone.
    #[default]
    Ignore,
    /// Delete them (protected objects still refuse).
    Delete,
}

pub use crate::small_map::SmallMap;

/// Memberships: team → role.
pub type Memberships = SmallMap<String, String>;

/// One organization: everything a config describes (with desired keys), or everything a
/// backend holds (with [`LiveKey`]s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Organization<K = ApiKey> {
    pub name: String,
    /// Bumped by every write; a plan is computed at one revision.
    pub revision: u64,
    pub roles: BTreeMap<String, Role>,
    pub teams: BTreeMap<String, Team>,
    pub service_accounts: BTreeMap<String, ServiceAccount<K>>,
    /// Keys replaced by a rotation that still work until their overlap ends.
    pub retiring_keys: Vec<RetiringKey>,
}

/// An organization as a backend holds it: every key issued.
pub type LiveOrganization = Organization<LiveKey>;

// By hand: derived, it would ask for `K: Default`, which a live key has no honest value for.
impl<K> Default for Organization<K> {
    fn default() -> Self {
        Organization {
            name: String::new(),
            revision: 0,
            roles: BTreeMap::new(),
            teams: BTreeMap::new(),
            service_accounts: BTreeMap::new(),
            retiring_keys: Vec::new(),
        }
    }
}

impl<K> Organization<K> {
    /// An organization that holds only the built-in roles, as a new one does.
    pub fn new(name: &str) -> Self {
        Organization::with_builtin_roles(name, &BUILTIN_ROLES)
    }

    /// An organization that holds only the named built-in roles: svcacct's own (with their
    /// permissions), or another backend's (which svcacct only names).
    pub fn with_builtin_roles(name: &str, builtins: &[&str]) -> Self {
        let mut org = Organization {
            name: name.to_string(),
            ..Default::default()
        };
        for r in builtins {
            let role = builtin_role(r).unwrap_or(Role {
                builtin: true,
                protect: true,
                ..Default::default()
            });
            org.roles.insert(r.to_string(), role);
        }
        org
    }

    /// The permissions an account's memberships grant (`*:*` for a global admin).
    pub fn permissions_of<L>(&self, account: &ServiceAccount<L>) -> BTreeSet<String> {
        if account.admin {
            return BTreeSet::from(["*:*".to_string()]);
        }
        account
            .teams
            .values()
            .filter_map(|role| self.roles.get(role))
            .flat_map(|r| r.permissions.iter().cloned())
            .collect()
    }
}

/// A named set of permissions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Role {
    pub description: String,
    pub permissions: BTreeSet<String>,
    pub builtin: bool,
    pub managed: bool,
    pub protect: bool,
}

/// A group that service accounts join with a role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Team {
    pub description: String,
    pub managed: bool,
    pub protect: bool,
}

#[cfg(test)]
impl LiveOrganization {
    /// The organization wanted exactly as it is live: what a plan against it leaves alone.
    pub fn as_desired(&self) -> Organization {
        Organization {
            name: self.name.clone(),
            revision: self.revision,
            roles: self.roles.clone(),
            teams: self.teams.clone(),
            service_accounts: self
                .service_accounts
                .iter()
                .map(|(name, a)| (name.clone(), a.as_desired()))
                .collect(),
            retiring_keys: self.retiring_keys.clone(),
        }
    }
}

/// A machine identity, with desired keys or (as [`LiveAccount`]) live ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceAccount<K = ApiKey> {
    pub description: String,
    pub teams: Memberships,
    pub admin: bool,
    /// The last day the account works; `None` is never.
    pub expires: Option<Date>,
    pub disabled: bool,
    pub protect: bool,
    pub managed: bool,
    pub keys: SmallMap<String, K>,
}

/// An account as a backend holds it: every key issued.
pub type LiveAccount = ServiceAccount<LiveKey>;

// By hand, as for `Organization`: an account with no keys needs no default key.
impl<K> Default for ServiceAccount<K> {
    fn default() -> Self {
        ServiceAccount {
            description: String::new(),
            teams: Memberships::new(),
            admin: false,
            expires: None,
            disabled: false,
            protect: false,
            managed: false,
            keys: SmallMap::new(),
        }
    }
}

impl<K> ServiceAccount<K> {
    /// The account's own settings and memberships with other keys (a live account wanted as
    /// it is, say).
    pub fn with_keys<L>(&self, keys: SmallMap<String, L>) -> ServiceAccount<L> {
        ServiceAccount {
            description: self.description.clone(),
            teams: self.teams.clone(),
            admin: self.admin,
            expires: self.expires,
            disabled: self.disabled,
            protect: self.protect,
            managed: self.managed,
            keys,
        }
    }

    /// The account's own settings, without keys and memberships (what a `PutServiceAccount`
    /// write carries).
    pub fn same_settings<L>(&self, other: &ServiceAccount<L>) -> bool {
        self.description == other.description
            && self.admin == other.admin
            && self.expires == other.expires
            && self.disabled == other.disabled
            && self.protect == other.protect
            && self.managed == other.managed
    }

    /// Whether the account has expired at `now` (it works through its `expires` day).
    pub fn expired_at(&self, now: OffsetDateTime) -> bool {
        self.expires.is_some_and(|d| now.date() > d)
    }
}

#[cfg(test)]
impl LiveAccount {
    /// The account wanted as it is live: its settings, memberships and keys' settings.
    pub fn as_desired(&self) -> ServiceAccount {
        let keys = self
            .keys
            .iter()
            .map(|(name, k)| (name.clone(), k.settings.clone()))
            .collect();
        self.with_keys(keys)
    }
}

/// An API key as declared: its settings only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiKey {
    pub description: String,
    /// Permissions the key is narrowed to; empty means the account's own.
    pub scopes: BTreeSet<String>,
    pub expires_in: Option<Duration>,
    pub rotate_every: Option<Duration>,
    pub overlap: Option<Duration>,
    pub managed: bool,
}

/// A key as a backend holds it: the settings it keeps and the key it issued. Serialized flat
/// (`description`, …, `issued`), as the server's account reads show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveKey {
    #[serde(flatten)]
    pub settings: ApiKey,
    pub issued: IssuedKey,
}

/// Facts about an issued key. Never the secret, never its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuedKey {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When the key was last used, where the backend records it
    /// ([`crate::backend::capabilities::Capabilities::records_key_use`]); `None` when it was
    /// never used or the backend cannot tell.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_used_at: Option<OffsetDateTime>,
}

/// A key replaced by rotation, working until `retires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetiringKey {
    pub id: String,
    pub service_account: String,
    pub key: String,
    #[serde(with = "time::serde::rfc3339")]
    pub retires_at: OffsetDateTime,
    /// Whether svcacct issued it; a server that does not say so is taken to mean no, so an
    /// unmanaged key's predecessor is never revoked by mistake.
    #[serde(default)]
    pub managed: bool,
    /// When it was last used, as on [`IssuedKey::last_used_at`].
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_used_at: Option<OffsetDateTime>,
}

/// The answer to "is this key good, and for what?".
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Verification {
    pub valid: bool,
    /// Why an invalid key is refused (malformed, unknown, revoked, expired, retired,
    /// account_disabled, account_expired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The permissions the key grants: the account's, narrowed by the key's scopes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
}

impl Verification {
    /// A refusal for `reason`.
    pub fn refused(reason: &str) -> Self {
        Verification {
            valid: false,
            reason: Some(reason.to_string()),
            organization: None,
            service_account: None,
            key: None,
            key_id: None,
            permissions: Vec::new(),
            scopes: Vec::new(),
            expires_at: None,
        }
    }
}

fn split_pattern(p: &str) -> (&str, &str) {
    p.split_once(':').unwrap_or((p, "*"))
}

/// Whether a granted permission pattern (`flows:*`, `*:read`, `*:*`) covers a permission.
pub fn pattern_covers(pattern: &str, permission: &str) -> bool {
    let ((pr, pa), (r, a)) = (split_pattern(pattern), split_pattern(permission));
    (pr == "*" || pr == r) && (pa == "*" || pa == a)
}

/// The permissions two patterns both allow, as one pattern: `flows:*` and `*:read` give
/// `flows:read`; disjoint patterns give `None`.
pub fn pattern_intersection(a: &str, b: &str) -> Option<String> {
    let part = |x: &str, y: &str| match (x, y) {
        ("*", y) => Some(y.to_string()),
        (x, "*") => Some(x.to_string()),
        (x, y) if x == y => Some(x.to_string()),
        _ => None,
    };
    let ((ar, aa), (br, ba)) = (split_pattern(a), split_pattern(b));
    Some(format!("{}:{}", part(ar, br)?, part(aa, ba)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organizations_round_trip_through_json() {
        let mut org = Organization::new("acme");
        org.service_accounts.insert(
            "ci-bot".into(),
            ServiceAccount {
                expires: Some(time::macros::date!(2027 - 06 - 30)),
                teams: crate::model::SmallMap::from_iter([("platform".into(), "viewer".into())]),
                ..Default::default()
            },
        );
        let json = serde_json::to_value(&org).unwrap();
        assert_eq!(json["service_accounts"]["ci-bot"]["expires"], "2027-06-30");
        let back: Organization = serde_json::from_value(json).unwrap();
        assert_eq!(back, org);
    }

    /// A live key reads as it always has on the wire of account reads: its settings and
    /// `issued`, side by side.
    #[test]
    fn a_live_key_serializes_flat_with_its_issue_facts() {
        let key = LiveKey {
            settings: ApiKey {
                description: "prod".into(),
                overlap: Some(Duration(3_600)),
                managed: true,
                ..Default::default()
            },
            issued: IssuedKey {
                id: "k1".into(),
                created_at: time::macros::datetime!(2026-01-01 00:00 UTC),
                expires_at: None,
                last_used_at: None,
            },
        };
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"description":"prod","scopes":[],"expires_in":null,"rotate_every":null,"#,
                r#""overlap":"1h","managed":true,"#,
                r#""issued":{"id":"k1","created_at":"2026-01-01T00:00:00Z","expires_at":null}}"#
            )
        );
        assert_eq!(serde_json::from_str::<LiveKey>(&json).unwrap(), key);
    }

    #[test]
    fn patterns_intersect() {
        assert_eq!(
            pattern_intersection("flows:*", "*:read").as_deref(),
            Some("flows:read")
        );
        assert_eq!(
            pattern_intersection("*:*", "deployments:execute").as_deref(),
            Some("deployments:execute")
        );
        assert_eq!(pattern_intersection("flows:read", "flows:write"), None);
        assert!(pattern_covers("*:read", "flows:read"));
        assert!(!pattern_covers("flows:read", "flows:write"));
    }
}

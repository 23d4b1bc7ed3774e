//! The YAML as written: serde types that keep the line and column of every name and value
//! that validation may need to point at. Nothing here is checked beyond its shape.

use std::fmt;
use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::backend::BackendConfig;
use crate::duration::Duration;
use crate::model::UnmanagedPolicy;

/// A value with the line and column it was written at.
#[derive(Debug, Clone, PartialEq)]
pub struct Loc<T> {
    pub value: T,
    pub line: u64,
    pub column: u64,
}

impl<T> Loc<T> {
    /// A value written by svcacct itself (an export), at no place in any file.
    pub fn new(value: T) -> Loc<T> {
        Loc {
            value,
            line: 0,
            column: 0,
        }
    }
}

impl<T: Serialize> Serialize for Loc<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

/// The newtype name by which [`Loc`] asks a deserializer for a value with its place. The fast
/// reader ([`super::block_yaml`]) answers with a sequence of line, column and value; any other
/// deserializer (the full parser) reads it as `serde_saphyr::Spanned`. Spanned's own protocol
/// is a map of four entries, two of them maps, for every name and value of a config: at
/// 100,000 accounts, two million of them.
pub(in crate::config) const LOC: &str = "svcacct::Loc";

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Loc<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LocVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for LocVisitor<T> {
            type Value = Loc<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value with its place")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Loc<T>, D::Error> {
                let s = serde_saphyr::Spanned::<T>::deserialize(d)?;
                Ok(Loc {
                    value: s.value,
                    line: s.referenced.line(),
                    column: s.referenced.column(),
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loc<T>, A::Error> {
                let missing = || serde::de::Error::custom("a place without its value");
                let line = seq.next_element()?.ok_or_else(missing)?;
                let column = seq.next_element()?.ok_or_else(missing)?;
                let value = seq.next_element()?.ok_or_else(missing)?;
                Ok(Loc {
                    value,
                    line,
                    column,
                })
            }
        }
        d.deserialize_newtype_struct(LOC, LocVisitor(PhantomData))
    }
}

impl<T: JsonSchema> JsonSchema for Loc<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

/// A YAML mapping keyed by name, in file order, each name with its location.
#[derive(Debug, Clone)]
pub struct NamedMap<V>(pub Vec<(Loc<String>, V)>);

impl<V> NamedMap<V> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<V> FromIterator<(String, V)> for NamedMap<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        NamedMap(iter.into_iter().map(|(k, v)| (Loc::new(k), v)).collect())
    }
}

impl<V: Serialize> Serialize for NamedMap<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (&k.value, v)))
    }
}

impl<V> Default for NamedMap<V> {
    fn default() -> Self {
        NamedMap(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for NamedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = NamedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping keyed by name")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(NamedMap::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((k, v)) = map.next_entry::<Loc<String>, V>()? {
                    entries.push((k, v));
                }
                Ok(NamedMap(entries))
            }
        }
        d.deserialize_any(MapVisitor(PhantomData))
    }
}

impl<V: JsonSchema> JsonSchema for NamedMap<V> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Map_of_{}", V::schema_name()).into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "propertyNames": { "pattern": crate::config::NAME_PATTERN },
            "additionalProperties": generator.subschema_for::<V>(),
        })
    }
}

/// The whole file (or one file of a directory).
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "svcacct configuration")]
pub struct RawConfig {
    /// The organization this config describes: a lowercase slug.
    pub organization: Option<Loc<String>>,
    /// Where the organization lives. Default: a local SQLite file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<Loc<BackendConfig>>,
    /// Where newly issued keys are written, encrypted to whom.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Loc<RawSecrets>>,
    /// Safety rules for deletions, and policy rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Loc<RawPolicy>>,
    /// Custom roles. The built-in roles admin, member and viewer exist already.
    #[serde(default, skip_serializing_if = "NamedMap::is_empty")]
    pub roles: NamedMap<RawRole>,
    /// Teams that service accounts join with a role.
    #[serde(default, skip_serializing_if = "NamedMap::is_empty")]
    pub teams: NamedMap<RawTeam>,
    /// Service accounts and their keys.
    #[serde(default, skip_serializing_if = "NamedMap::is_empty")]
    pub service_accounts: NamedMap<RawServiceAccount>,
}

/// Where issued keys go.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSecrets {
    /// Directory for `<account>/<key>.age` files, relative to the config. Default: `secrets`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// age X25519 (`age1…`) and `ssh-ed25519` public keys; every key file is encrypted to all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<Loc<String>>,
    /// A file of recipients, one a line (`#` starts a comment), relative to the config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients_file: Option<Loc<String>>,
}

/// Deletion safety and policy rules.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// What to do with live objects that svcacct did not create. Default: ignore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unmanaged: Option<UnmanagedPolicy>,
    /// The largest share (in percent) of managed objects one plan may delete without
    /// `--allow-mass-delete`, once the organization has at least 10. Default: 25.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_delete_percent: Option<Loc<u32>>,
    /// Policy rules checked by validate, plan and apply, each with one rule kind (see
    /// README "Policy rules"). In a config directory, `policy/*.yaml` files may hold more;
    /// rules from every file are checked together.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Loc<RawRule>>,
}

/// A custom role.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Permissions such as `flows:read`; `*` matches any resource or action.
    #[serde(default)]
    pub permissions: Vec<Loc<String>>,
    /// Refuse to delete this role, even when it is removed from the config.
    #[serde(default, skip_serializing_if = "is_false")]
    pub protect: bool,
}

/// A team.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTeam {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Refuse to delete this team, even when it is removed from the config.
    #[serde(default, skip_serializing_if = "is_false")]
    pub protect: bool,
}

/// A service account.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawServiceAccount {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The team that owns the account (for policy rules; kept in the config only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Loc<String>>,
    /// Memberships: team → role.
    #[serde(default, skip_serializing_if = "NamedMap::is_empty")]
    pub teams: NamedMap<Loc<String>>,
    /// Global admin: every permission.
    #[serde(default, skip_serializing_if = "is_false")]
    pub admin: bool,
    /// `never` (the default) or the last day the account works, as YYYY-MM-DD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<Loc<String>>,
    /// Every key of a disabled account stops working; nothing is deleted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    /// Refuse to delete this account, even when it is removed from the config.
    #[serde(default, skip_serializing_if = "is_false")]
    pub protect: bool,
    /// API keys, at most 50.
    #[serde(default, skip_serializing_if = "NamedMap::is_empty")]
    pub keys: NamedMap<RawKey>,
}

/// An API key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// How long an issued key works. Default: until revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<Loc<Duration>>,
    /// Permissions the key is narrowed to, within the account's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<Loc<String>>,
    /// Plan a rotation once the key is this old.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotate_every: Option<Loc<Duration>>,
    /// How long a rotated-out key keeps working. Default: 0 (revoked at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlap: Option<Duration>,
    /// Retire a rotated-out key once the backend has seen the new key in use; `overlap` is
    /// then the longest the old key keeps working. Needs a backend that records key use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_traffic: Option<Loc<bool>>,
    /// Where the key's secret is delivered besides its age file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliver: Vec<Loc<RawTarget>>,
}

fn is_false(b: &bool) -> bool {
    !b
}

// ---- policy rules, as written ----------------------------------------------------------------

/// One policy rule: exactly one rule kind, and how it is applied.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// What violations and `svcacct policy explain` call the rule. Default: its kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Loc<String>>,
    /// `error` (the default) blocks validate, plan and apply; `warn` is reported only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Loc<crate::plan::RuleSeverity>>,
    /// Which objects the rule applies to. Default: every object of its kind. Example:
    /// `match: { name: "ci-*", team: platform }` (both must hold).
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub matches: Option<Loc<RawMatch>>,
    /// Objects the rule does not apply to, each with the reason reviewers see in every plan.
    /// Example: `except: [{ match: { name: legacy-bot }, reason: "retired in Q3 (OPS-12)" }]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<Loc<RawException>>,

    /// Keys: every key needs an `expires_in` of at most this. Example:
    /// `key_max_lifetime: 90d`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_max_lifetime: Option<Loc<Duration>>,
    /// Keys: every key needs a `rotate_every` of at most this. Example:
    /// `rotation_required: 30d`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_required: Option<Loc<Duration>>,
    /// Service accounts: an account that holds every permission (`admin: true`, or a role
    /// granting `*:*`) must be `protect: true`. Example: `admin_requires_protect: true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_requires_protect: Option<Loc<bool>>,
    /// Roles, key scopes and the built-in roles accounts hold: no permission with a `*` unless
    /// it is in `allow`. Example: `no_wildcard_permissions: { allow: ["*:read"] }`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_wildcard_permissions: Option<Loc<RawWildcards>>,
    /// Service accounts: each names its owning team, by `owner: <team>` or by a team's name in
    /// its description. Example: `account_requires_owner: true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_requires_owner: Option<Loc<bool>>,
    /// Service accounts: at most this many keys. Example: `max_keys_per_account: 3`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_keys_per_account: Option<Loc<u32>>,
    /// Service accounts: none may hold any of these permissions through any path (admin, any
    /// membership's role), judged on the effective permissions after the change, so a role
    /// edit that widens many accounts is caught. A permission is held when a granted pattern
    /// covers it: `*:*` holds `secrets:*`, `secrets:read` does not. Example:
    /// `forbid_permission: ["*:*", "secrets:*"]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forbid_permission: Option<Loc<Vec<Loc<String>>>>,
    /// Keys: every key narrows its account's permissions with `scopes`. Example:
    /// `require_scopes: true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_scopes: Option<Loc<bool>>,
    /// Teams: the highest role a team may hand out; every membership in a matched team must
    /// grant a role whose permissions this role covers. Example:
    /// `{ team_role_ceiling: deployer, match: { team: data } }`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_role_ceiling: Option<Loc<String>>,
}

/// The rule kinds, in the order they are documented.
pub const KINDS: [&str; 9] = [
    "key_max_lifetime",
    "rotation_required",
    "admin_requires_protect",
    "no_wildcard_permissions",
    "account_requires_owner",
    "max_keys_per_account",
    "forbid_permission",
    "require_scopes",
    "team_role_ceiling",
];

/// Which objects a rule (or an exception) applies to; every given condition must hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    /// A glob over the object's name (`*` any run of characters, `?` one character). A key
    /// matches by its account's name or by `account.key`. Example: `name: "ci-*"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Loc<String>>,
    /// A team: accounts that are members of it or name it as `owner`, their keys, and the team
    /// itself. Example: `team: platform`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<Loc<String>>,
}

/// An exception to a rule: objects it does not apply to, and why.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawException {
    /// The objects excepted.
    #[serde(rename = "match")]
    pub matches: Option<Loc<RawMatch>>,
    /// Why, for reviewers: required, and shown in every plan.
    pub reason: Option<Loc<String>>,
}

/// The settings of `no_wildcard_permissions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWildcards {
    /// Wildcard permissions that are allowed anyway, exactly as written (`*:read`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Loc<String>>,
}

// ---- delivery targets, as written (checked in `validate::deliver`) -----------------------

/// Where a key's secret goes, besides its age file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawTarget {
    /// A GitHub Actions secret of a repository, or of one of its environments.
    GithubActions(RawGithubActions),
    /// A file outside the config's tree, written atomically (the job must allow its path).
    File(RawFile),
    /// A program that reads the secret on standard input (the job must allow it).
    Command(RawCommand),
}

/// A GitHub Actions secret.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGithubActions {
    /// `owner/name`.
    pub repository: Loc<String>,
    /// An environment of the repository: the secret is that environment's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<Loc<String>>,
    /// The secret's name: letters, digits and `_`, not starting with a digit or `GITHUB_`.
    pub secret: Loc<String>,
    /// The variable holding the GitHub token. Default: `SVCACCT_GITHUB_TOKEN`; another name
    /// must start with `SVCACCT_` or be allowed with `--allow-token-env`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_env: Option<Loc<String>>,
}

/// A file target.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    /// An absolute path outside the config's directory tree.
    pub path: Loc<String>,
    /// Octal permission bits, as a string. Default: "0600".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Loc<String>>,
}

/// A command target.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCommand {
    /// The program and its arguments, as a list (no shell); a relative program is relative
    /// to the config. The secret arrives on standard input, never in arguments or environment.
    pub run: Loc<RawArgv>,
}

/// An argv list, or (refused with a location) a single string.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawArgv {
    List(Vec<String>),
    Line(String),
}

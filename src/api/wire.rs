//! The JSON the batch and snapshot endpoints carry, as `schemas/openapi.yaml` documents it.
//!
//! These types are the API's, not the model's: `Operation` and `Organization` may change shape
//! for the plan's sake while the wire stays put, and every change to the wire is a change to
//! these types and to the document. Two families, because the two directions trust differently:
//!
//! - the batch (client → server) keeps the documented leniency of a write body: a field left
//!   out takes its default, an unknown one is an error;
//! - the snapshot (server → client) is what a plan believes about live access, so every field
//!   is required: a server that leaves out `protect`, `scopes` or `disabled` is a protocol
//!   error, never a default that widens access. A live key's issue facts are required too
//!   (not even null): they are what makes it a [`model::LiveKey`]. A field the client does not
//!   know is ignored: a newer server adds fields, and an older svcacct must still plan against
//!   it. The server only ever adds to an answer; what narrows access is never a new field of
//!   its own but a change of one the client reads.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::duration::Duration;
use crate::model;
use crate::operation::{self, Operation};

// ---- the batch ------------------------------------------------------------------------------

/// The body of `POST /v1/organizations/{org}/batch`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub operations: Vec<BatchOperation>,
}

/// One write of a batch (OpenAPI `Operation`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", deny_unknown_fields)]
pub enum BatchOperation {
    #[serde(rename = "put_role")]
    PutRole { name: String, role: RoleWrite },
    #[serde(rename = "put_team")]
    PutTeam { name: String, team: TeamWrite },
    #[serde(rename = "put_service_account")]
    PutServiceAccount {
        name: String,
        account: ServiceAccountWrite,
    },
    #[serde(rename = "set_memberships")]
    SetMemberships {
        account: String,
        teams: BTreeMap<String, String>,
    },
    #[serde(rename = "register_key")]
    RegisterKey {
        account: String,
        name: String,
        key: NewKey,
    },
    #[serde(rename = "update_key")]
    UpdateKey {
        account: String,
        name: String,
        key: KeySettings,
    },
    #[serde(rename = "revoke_key")]
    RevokeKey {
        account: String,
        name: String,
        id: String,
    },
    #[serde(rename = "delete_service_account")]
    DeleteServiceAccount { name: String },
    #[serde(rename = "delete_team")]
    DeleteTeam { name: String },
    #[serde(rename = "delete_role")]
    DeleteRole { name: String },
}

/// A role as a write sends it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoleWrite {
    pub description: String,
    pub permissions: BTreeSet<String>,
    pub builtin: bool,
    pub managed: bool,
    pub protect: bool,
}

/// A team as a write sends it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TeamWrite {
    pub description: String,
    pub managed: bool,
    pub protect: bool,
}

/// An account as a write sends it; `put_service_account` ignores `teams` and `keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceAccountWrite {
    pub description: String,
    pub teams: BTreeMap<String, String>,
    pub admin: bool,
    pub expires: Option<Date>,
    pub disabled: bool,
    pub protect: bool,
    pub managed: bool,
    pub keys: BTreeMap<String, KeySettings>,
}

/// A key's declared settings as a write sends them (OpenAPI `ApiKey`). `issued` is part of
/// the documented body, sent as null and ignored: a write cannot say what the server issued.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeySettings {
    pub description: String,
    pub scopes: BTreeSet<String>,
    pub expires_in: Option<Duration>,
    pub rotate_every: Option<Duration>,
    pub overlap: Option<Duration>,
    pub managed: bool,
    pub issued: Option<IssuedKey>,
}

/// A key registered by hash (OpenAPI `NewKey`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub id: String,
    pub hash: String,
    pub display_prefix: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub settings: KeySettings,
    #[serde(default)]
    pub replaces: Option<Replaces>,
}

/// The live key a rotation replaces, and when it stops working.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replaces {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub retires_at: OffsetDateTime,
}

// ---- the snapshot ---------------------------------------------------------------------------

/// The answer of `GET /v1/organizations/{org}/snapshot`: a whole organization.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Organization {
    pub name: String,
    pub revision: u64,
    pub roles: BTreeMap<String, Role>,
    pub teams: BTreeMap<String, Team>,
    pub service_accounts: BTreeMap<String, ServiceAccount>,
    pub retiring_keys: Vec<RetiringKey>,
}

/// A live role; every field required.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Role {
    pub description: String,
    pub permissions: BTreeSet<String>,
    pub builtin: bool,
    pub managed: bool,
    pub protect: bool,
}

/// A live team; every field required.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Team {
    pub description: String,
    pub managed: bool,
    pub protect: bool,
}

/// A live account with its memberships and keys; every field required (`expires` may be null,
/// not absent).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceAccount {
    pub description: String,
    pub teams: BTreeMap<String, String>,
    pub admin: bool,
    #[serde(deserialize_with = "Option::deserialize")]
    pub expires: Option<Date>,
    pub disabled: bool,
    pub protect: bool,
    pub managed: bool,
    pub keys: BTreeMap<String, ApiKey>,
}

/// A live key's settings and issue facts; every field required (the optional settings may be
/// null, not absent; `issued` may be neither).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKey {
    pub description: String,
    pub scopes: BTreeSet<String>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub expires_in: Option<Duration>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub rotate_every: Option<Duration>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub overlap: Option<Duration>,
    pub managed: bool,
    pub issued: IssuedKey,
}

/// Facts about an issued key (OpenAPI `IssuedKeyFacts`). Never the secret, never its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedKey {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Left out when the key was never used or the server does not record uses, so a server
    /// that predates it still decodes.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_used_at: Option<OffsetDateTime>,
}

/// A key replaced by rotation, working until `retires_at`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetiringKey {
    pub id: String,
    pub service_account: String,
    pub key: String,
    #[serde(with = "time::serde::rfc3339")]
    pub retires_at: OffsetDateTime,
    /// Left out, it means no: an unmanaged key's predecessor is never revoked by mistake.
    #[serde(default)]
    pub managed: bool,
    /// As on [`IssuedKey::last_used_at`].
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_used_at: Option<OffsetDateTime>,
}

// ---- conversions ----------------------------------------------------------------------------

/// The API has no `issue_key`: the server registers keys by hash, so a key the client has not
/// minted yet cannot be sent. The operation comes back as the error.
impl TryFrom<Operation> for BatchOperation {
    type Error = Operation;

    fn try_from(op: Operation) -> Result<Self, Operation> {
        Ok(match op {
            issue @ Operation::IssueKey { .. } => return Err(issue),
            Operation::PutRole { name, role } => BatchOperation::PutRole {
                name,
                role: role.into(),
            },
            Operation::PutTeam { name, team } => BatchOperation::PutTeam {
                name,
                team: team.into(),
            },
            Operation::PutServiceAccount { name, account } => BatchOperation::PutServiceAccount {
                name,
                account: account.into(),
            },
            Operation::SetMemberships { account, teams } => {
                BatchOperation::SetMemberships { account, teams }
            }
            Operation::RegisterKey { account, name, key } => BatchOperation::RegisterKey {
                account,
                name,
                key: key.into(),
            },
            Operation::UpdateKey { account, name, key } => BatchOperation::UpdateKey {
                account,
                name,
                key: key.into(),
            },
            Operation::RevokeKey { account, name, id } => {
                BatchOperation::RevokeKey { account, name, id }
            }
            Operation::DeleteServiceAccount { name } => {
                BatchOperation::DeleteServiceAccount { name }
            }
            Operation::DeleteTeam { name } => BatchOperation::DeleteTeam { name },
            Operation::DeleteRole { name } => BatchOperation::DeleteRole { name },
        })
    }
}

impl From<BatchOperation> for Operation {
    fn from(op: BatchOperation) -> Self {
        match op {
            BatchOperation::PutRole { name, role } => Operation::PutRole {
                name,
                role: role.into(),
            },
            BatchOperation::PutTeam { name, team } => Operation::PutTeam {
                name,
                team: team.into(),
            },
            BatchOperation::PutServiceAccount { name, account } => Operation::PutServiceAccount {
                name,
                account: account.into(),
            },
            BatchOperation::SetMemberships { account, teams } => {
                Operation::SetMemberships { account, teams }
            }
            BatchOperation::RegisterKey { account, name, key } => Operation::RegisterKey {
                account,
                name,
                key: key.into(),
            },
            BatchOperation::UpdateKey { account, name, key } => Operation::UpdateKey {
                account,
                name,
                key: key.into(),
            },
            BatchOperation::RevokeKey { account, name, id } => {
                Operation::RevokeKey { account, name, id }
            }
            BatchOperation::DeleteServiceAccount { name } => {
                Operation::DeleteServiceAccount { name }
            }
            BatchOperation::DeleteTeam { name } => Operation::DeleteTeam { name },
            BatchOperation::DeleteRole { name } => Operation::DeleteRole { name },
        }
    }
}

/// `From` both ways between a model struct and a wire struct with the same fields: `plain`
/// ones moved as they are, `each` a map whose values convert, `list` a `Vec` whose items
/// convert, `option` an `Option` whose value converts, `into` one that converts. A field either side lacks is a compile error.
macro_rules! same_fields {
    (
        $model:ty, $wire:ty { $($plain:ident),* $(,)? }
        $(, each { $($each:ident),* })?
        $(, list { $($list:ident),* })?
        $(, option { $($opt:ident),* })?
        $(, into { $($into:ident),* })?
    ) => {
        same_fields!(@one $model => $wire { $($plain),* } [$($($each),*)?] [$($($list),*)?] [$($($opt),*)?] [$($($into),*)?]);
        same_fields!(@one $wire => $model { $($plain),* } [$($($each),*)?] [$($($list),*)?] [$($($opt),*)?] [$($($into),*)?]);
    };
    (@one $from:ty => $to:ty { $($plain:ident),* } [$($each:ident),*] [$($list:ident),*] [$($opt:ident),*] [$($into:ident),*]) => {
        impl From<$from> for $to {
            fn from(x: $from) -> Self {
                Self {
                    $($plain: x.$plain,)*
                    $($each: x.$each.into_iter().map(|(k, v)| (k, v.into())).collect(),)*
                    $($list: x.$list.into_iter().map(Into::into).collect(),)*
                    $($opt: x.$opt.map(Into::into),)*
                    $($into: x.$into.into(),)*
                }
            }
        }
    };
}

same_fields!(
    model::Role,
    RoleWrite {
        description,
        permissions,
        builtin,
        managed,
        protect
    }
);
same_fields!(
    model::Role,
    Role {
        description,
        permissions,
        builtin,
        managed,
        protect
    }
);
same_fields!(
    model::Team,
    TeamWrite {
        description,
        managed,
        protect
    }
);
same_fields!(
    model::Team,
    Team {
        description,
        managed,
        protect
    }
);
same_fields!(
    model::ServiceAccount,
    ServiceAccountWrite {
        description,
        teams,
        admin,
        expires,
        disabled,
        protect,
        managed
    },
    each { keys }
);
same_fields!(
    model::LiveAccount,
    ServiceAccount {
        description,
        teams,
        admin,
        expires,
        disabled,
        protect,
        managed
    },
    each { keys }
);
impl From<model::ApiKey> for KeySettings {
    fn from(k: model::ApiKey) -> Self {
        KeySettings {
            description: k.description,
            scopes: k.scopes,
            expires_in: k.expires_in,
            rotate_every: k.rotate_every,
            overlap: k.overlap,
            managed: k.managed,
            issued: None,
        }
    }
}

impl From<KeySettings> for model::ApiKey {
    fn from(k: KeySettings) -> Self {
        model::ApiKey {
            description: k.description,
            scopes: k.scopes,
            expires_in: k.expires_in,
            rotate_every: k.rotate_every,
            overlap: k.overlap,
            managed: k.managed,
        }
    }
}

impl From<model::LiveKey> for ApiKey {
    fn from(k: model::LiveKey) -> Self {
        let model::LiveKey { settings, issued } = k;
        ApiKey {
            description: settings.description,
            scopes: settings.scopes,
            expires_in: settings.expires_in,
            rotate_every: settings.rotate_every,
            overlap: settings.overlap,
            managed: settings.managed,
            issued: issued.into(),
        }
    }
}

impl From<ApiKey> for model::LiveKey {
    fn from(k: ApiKey) -> Self {
        model::LiveKey {
            settings: model::ApiKey {
                description: k.description,
                scopes: k.scopes,
                expires_in: k.expires_in,
                rotate_every: k.rotate_every,
                overlap: k.overlap,
                managed: k.managed,
            },
            issued: k.issued.into(),
        }
    }
}
same_fields!(
    model::IssuedKey,
    IssuedKey {
        id,
        created_at,
        expires_at,
        last_used_at
    }
);
same_fields!(operation::Replaces, Replaces { id, retires_at });
same_fields!(
    operation::NewKey,
    NewKey {
        id,
        hash,
        display_prefix,
        created_at,
        expires_at
    },
    option { replaces },
    into { settings }
);
same_fields!(
    model::RetiringKey,
    RetiringKey {
        id,
        service_account,
        key,
        retires_at,
        managed,
        last_used_at
    }
);
same_fields!(
    model::LiveOrganization,
    Organization { name, revision },
    each {
        roles,
        teams,
        service_accounts
    },
    list { retiring_keys }
);
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use time::macros::{date, datetime};

    /// Every operation, as the wire writes it: renaming a variant or a field of `Operation`,
    /// or of the model types it carries, must not change these.
    #[test]
    fn each_operation_has_its_documented_json() {
        let cases = object_writes().into_iter().chain(key_writes());
        for (op, expected) in cases {
            let before = format!("{op:?}");
            let json = serde_json::to_string(&BatchOperation::try_from(op).unwrap()).unwrap();
            assert_eq!(json, expected);
            let back: BatchOperation = serde_json::from_str(expected).unwrap();
            assert_eq!(format!("{:?}", Operation::from(back)), before);
        }
    }

    /// Writes and deletions of roles, teams and accounts, with their documented JSON.
    fn object_writes() -> Vec<(Operation, &'static str)> {
        vec![
            (
                Operation::PutRole {
                    name: "deployer".into(),
                    role: model::Role {
                        description: "Deploys".into(),
                        permissions: BTreeSet::from(["deployments:read".into()]),
                        builtin: false,
                        managed: true,
                        protect: false,
                    },
                },
                r#"{"op":"put_role","name":"deployer","role":{"description":"Deploys","permissions":["deployments:read"],"builtin":false,"managed":true,"protect":false}}"#,
            ),
            (
                Operation::PutTeam {
                    name: "platform".into(),
                    team: model::Team {
                        description: "Platform".into(),
                        managed: true,
                        protect: true,
                    },
                },
                r#"{"op":"put_team","name":"platform","team":{"description":"Platform","managed":true,"protect":true}}"#,
            ),
            (
                Operation::PutServiceAccount {
                    name: "ci-bot".into(),
                    account: model::ServiceAccount {
                        description: "CI".into(),
                        admin: false,
                        expires: Some(date!(2027 - 06 - 30)),
                        disabled: true,
                        protect: false,
                        managed: true,
                        ..Default::default()
                    },
                },
                r#"{"op":"put_service_account","name":"ci-bot","account":{"description":"CI","teams":{},"admin":false,"expires":"2027-06-30","disabled":true,"protect":false,"managed":true,"keys":{}}}"#,
            ),
            (
                Operation::SetMemberships {
                    account: "ci-bot".into(),
                    teams: BTreeMap::from([("platform".into(), "deployer".into())]),
                },
                r#"{"op":"set_memberships","account":"ci-bot","teams":{"platform":"deployer"}}"#,
            ),
            (
                Operation::DeleteServiceAccount {
                    name: "ci-bot".into(),
                },
                r#"{"op":"delete_service_account","name":"ci-bot"}"#,
            ),
            (
                Operation::DeleteTeam {
                    name: "platform".into(),
                },
                r#"{"op":"delete_team","name":"platform"}"#,
            ),
            (
                Operation::DeleteRole {
                    name: "deployer".into(),
                },
                r#"{"op":"delete_role","name":"deployer"}"#,
            ),
        ]
    }

    /// Key writes, with their documented JSON.
    fn key_writes() -> Vec<(Operation, &'static str)> {
        let key = model::ApiKey {
            description: "prod runner".into(),
            scopes: BTreeSet::from(["flows:read".into()]),
            expires_in: Some(Duration(90 * 86_400)),
            rotate_every: None,
            overlap: Some(Duration(3_600)),
            managed: true,
        };
        vec![
            (
                Operation::RegisterKey {
                    account: "ci-bot".into(),
                    name: "prod".into(),
                    key: operation::NewKey {
                        id: "k2".into(),
                        hash: "ab".repeat(32),
                        display_prefix: "svca_AbCd".into(),
                        created_at: datetime!(2026-01-01 00:00 UTC),
                        expires_at: Some(datetime!(2026-04-01 00:00 UTC)),
                        settings: key.clone(),
                        replaces: Some(operation::Replaces {
                            id: "k1".into(),
                            retires_at: datetime!(2026-01-02 00:00 UTC),
                        }),
                    },
                },
                concat!(
                    r#"{"op":"register_key","account":"ci-bot","name":"prod","key":{"id":"k2","#,
                    r#""hash":"abababababababababababababababababababababababababababababababab","#,
                    r#""display_prefix":"svca_AbCd","created_at":"2026-01-01T00:00:00Z","#,
                    r#""expires_at":"2026-04-01T00:00:00Z","settings":{"description":"prod runner","#,
                    r#""scopes":["flows:read"],"expires_in":"90d","rotate_every":null,"overlap":"1h","#,
                    r#""managed":true,"issued":null},"#,
                    r#""replaces":{"id":"k1","retires_at":"2026-01-02T00:00:00Z"}}}"#
                ),
            ),
            (
                Operation::UpdateKey {
                    account: "ci-bot".into(),
                    name: "prod".into(),
                    key,
                },
                concat!(
                    r#"{"op":"update_key","account":"ci-bot","name":"prod","key":{"description":"prod runner","#,
                    r#""scopes":["flows:read"],"expires_in":"90d","rotate_every":null,"overlap":"1h","#,
                    r#""managed":true,"issued":null}}"#
                ),
            ),
            (
                Operation::RevokeKey {
                    account: "ci-bot".into(),
                    name: "prod".into(),
                    id: "k1".into(),
                },
                r#"{"op":"revoke_key","account":"ci-bot","name":"prod","id":"k1"}"#,
            ),
        ]
    }

    #[test]
    fn a_batch_write_may_leave_out_what_has_a_default_but_not_add_fields() {
        let op: BatchOperation =
            serde_json::from_str(r#"{"op":"put_role","name":"r","role":{}}"#).unwrap();
        let Operation::PutRole { role, .. } = Operation::from(op) else {
            panic!("a put_role")
        };
        assert_eq!(role, model::Role::default());
        for bad in [
            r#"{"op":"put_role","name":"r","role":{"admin":true}}"#,
            r#"{"op":"put_role","name":"r","role":{},"extra":1}"#,
            r#"{"op":"grant_everything","name":"r"}"#,
        ] {
            assert!(
                serde_json::from_str::<BatchOperation>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_snapshot_round_trips_and_a_missing_field_is_an_error() {
        let mut org = model::LiveOrganization::new("acme");
        let mut account = model::LiveAccount {
            teams: BTreeMap::from([("platform".into(), "viewer".into())]),
            ..Default::default()
        };
        account.keys.insert(
            "prod".into(),
            model::LiveKey {
                settings: model::ApiKey {
                    scopes: BTreeSet::from(["flows:read".into()]),
                    ..Default::default()
                },
                issued: model::IssuedKey {
                    id: "k1".into(),
                    created_at: datetime!(2026-01-01 00:00 UTC),
                    expires_at: None,
                    last_used_at: None,
                },
            },
        );
        org.service_accounts.insert("ci-bot".into(), account);
        org.teams.insert("platform".into(), model::Team::default());
        let json = serde_json::to_value(Organization::from(org.clone())).unwrap();
        let back: Organization = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(model::LiveOrganization::from(back), org);

        // A live key is issued: null issue facts do not decode either.
        let mut null_issued = json.clone();
        null_issued["service_accounts"]["ci-bot"]["keys"]["prod"]["issued"] = Value::Null;
        assert!(serde_json::from_value::<Organization>(null_issued).is_err());

        // Each field a plan reads about live access: left out, the snapshot does not decode.
        for pointer in [
            "/revision",
            "/retiring_keys",
            "/roles/viewer/protect",
            "/roles/viewer/builtin",
            "/teams/platform/protect",
            "/service_accounts/ci-bot/disabled",
            "/service_accounts/ci-bot/expires",
            "/service_accounts/ci-bot/admin",
            "/service_accounts/ci-bot/keys/prod/scopes",
            "/service_accounts/ci-bot/keys/prod/expires_in",
            "/service_accounts/ci-bot/keys/prod/issued",
        ] {
            let mut partial = json.clone();
            let (parent, field) = pointer.rsplit_once('/').unwrap();
            let target = if parent.is_empty() {
                &mut partial
            } else {
                partial.pointer_mut(parent).unwrap()
            };
            assert!(
                target.as_object_mut().unwrap().remove(field).is_some(),
                "{pointer}"
            );
            assert!(
                serde_json::from_value::<Organization>(partial).is_err(),
                "a snapshot without {pointer} decoded"
            );
        }
    }
}

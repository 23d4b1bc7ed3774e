//! The batch: the body of a write, client → server. Strict about what it does not know
//! (`deny_unknown_fields`): a field the server cannot apply is an error, never a write that
//! silently does less than the client asked. A field left out takes its documented default.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use super::IssuedKey;
use crate::duration::Duration;

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
        teams: crate::model::Memberships,
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
    pub teams: crate::model::Memberships,
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

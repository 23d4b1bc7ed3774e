//! The snapshot: the answer of a read, server → client, which a plan believes about live
//! access. Every field is required, so a server that leaves one out is a protocol error rather
//! than a default that widens access. These types deliberately carry no
//! `deny_unknown_fields`: a newer server adds fields, and an older client must still read it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::duration::Duration;

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
    pub teams: crate::model::Memberships,
    pub admin: bool,
    #[serde(deserialize_with = "Option::deserialize")]
    pub expires: Option<Date>,
    pub disabled: bool,
    pub protect: bool,
    pub managed: bool,
    pub keys: crate::model::SmallMap<String, ApiKey>,
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

//! Backends: where an organization lives. One trait, held to one conformance suite; the plan
//! reads a snapshot through it and the apply sends it batches of operations.

mod http;
mod local;

use std::collections::BTreeMap;

pub use http::HttpBackend;
pub use local::LocalBackend;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::{BackendSettings, Config};
use crate::model::{ApiKey, Organization, Role, ServiceAccount, Team};

/// A key registered by hash: the client minted the secret and wrote its file first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub id: String,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    pub display_prefix: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Declared settings (description, scopes, rotation policy).
    #[serde(default)]
    pub settings: ApiKey,
    /// The key this one replaces, and when that one stops working (now: at once).
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

/// One write. Each is applied whole or not at all, and bumps the organization's revision.
/// This is also the wire format of the server's batch endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Operation {
    PutRole {
        name: String,
        role: Role,
    },
    PutTeam {
        name: String,
        team: Team,
    },
    /// Creates or updates an account's own settings (not its keys or memberships).
    PutServiceAccount {
        name: String,
        account: ServiceAccount,
    },
    /// Replaces an account's memberships.
    SetMemberships {
        account: String,
        teams: BTreeMap<String, String>,
    },
    RegisterKey {
        account: String,
        name: String,
        key: NewKey,
    },
    UpdateKey {
        account: String,
        name: String,
        key: ApiKey,
    },
    RevokeKey {
        account: String,
        name: String,
        id: String,
    },
    DeleteServiceAccount {
        name: String,
    },
    DeleteTeam {
        name: String,
    },
    DeleteRole {
        name: String,
    },
}

impl Operation {
    /// The audit-log action name.
    pub fn action(&self) -> &'static str {
        match self {
            Operation::PutRole { .. } => "put_role",
            Operation::PutTeam { .. } => "put_team",
            Operation::PutServiceAccount { .. } => "put_service_account",
            Operation::SetMemberships { .. } => "set_memberships",
            Operation::RegisterKey { key, .. } if key.replaces.is_some() => "rotate_key",
            Operation::RegisterKey { .. } => "issue_key",
            Operation::UpdateKey { .. } => "update_key",
            Operation::RevokeKey { .. } => "revoke_key",
            Operation::DeleteServiceAccount { .. } => "delete_service_account",
            Operation::DeleteTeam { .. } => "delete_team",
            Operation::DeleteRole { .. } => "delete_role",
        }
    }

    /// The address of the object written, as plans print it.
    pub fn target(&self) -> String {
        match self {
            Operation::PutRole { name, .. } | Operation::DeleteRole { name } => {
                format!("role.{name}")
            }
            Operation::PutTeam { name, .. } | Operation::DeleteTeam { name } => {
                format!("team.{name}")
            }
            Operation::PutServiceAccount { name, .. }
            | Operation::DeleteServiceAccount { name } => {
                format!("service_account.{name}")
            }
            Operation::SetMemberships { account, .. } => format!("service_account.{account}"),
            Operation::RegisterKey { account, name, .. }
            | Operation::UpdateKey { account, name, .. }
            | Operation::RevokeKey { account, name, .. } => format!("key.{account}.{name}"),
        }
    }
}

/// Why a backend call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error("{target} is protected; set `protect: false` on it and apply before deleting it")]
    Protected { target: String },
    #[error("{target} does not exist")]
    NotFound { target: String },
    #[error("{target}: {message}")]
    Conflict { target: String, message: String },
    #[error("the organization is locked by another apply ({holder}); waited {waited_secs}s")]
    Locked { holder: String, waited_secs: u64 },
    #[error("{0}")]
    Storage(String),
}

impl From<rusqlite::Error> for BackendError {
    fn from(e: rusqlite::Error) -> Self {
        BackendError::Storage(format!("SQLite: {e}"))
    }
}

/// Where an organization lives: the plan reads it, the apply writes it.
pub trait Backend: Send {
    /// The live organization. One that does not exist yet is a new, empty one at revision 0.
    fn snapshot(&mut self) -> Result<Organization, BackendError>;

    /// Takes the organization's apply lock, waiting up to `wait` for another apply to end.
    fn lock(&mut self, owner: &str, wait: std::time::Duration) -> Result<(), BackendError>;

    /// Applies a batch of independent operations; one result each, in order. A failed one
    /// does not stop the others.
    fn apply(&mut self, ops: Vec<Operation>) -> Vec<Result<(), BackendError>>;

    /// Who a presented key belongs to and what it may do, right now.
    fn verify(&mut self, secret: &str) -> Result<crate::store::Verification, BackendError>;

    /// How many network requests the backend has made, where it makes any.
    fn requests(&self) -> Option<u64> {
        None
    }

    /// How the backend calls itself in messages.
    fn describe(&self) -> String;
}

/// Opens the backend a config names. `for_write` is false for plan and export, which must
/// never create or change anything.
pub fn open(config: &Config, for_write: bool) -> Result<Box<dyn Backend>, BackendError> {
    match &config.backend {
        BackendSettings::Local { path } => Ok(Box::new(LocalBackend::open(
            path,
            &config.desired.name,
            for_write,
        )?)),
        BackendSettings::Http { url, token_env } => Ok(Box::new(HttpBackend::open(
            url,
            token_env,
            &config.desired.name,
        )?)),
    }
}

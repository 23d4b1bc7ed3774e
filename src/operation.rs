//! The write vocabulary: the operations a backend applies, shared by the backends, the store
//! and the server. It sits below all three so that none of them imports another to name a
//! write.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::address::Address;
use crate::model::{ApiKey, Role, ServiceAccount, Team};

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

/// A key the plan wants issued: new, or replacing a live one (a rotation). Who mints the
/// secret is the backend's capability: svcacct mints it and registers a hash
/// ([`Operation::RegisterKey`]) where the backend allows, or the backend mints it and hands it
/// back once ([`Applied::Issued`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyIssue {
    /// Declared settings (description, scopes, rotation policy).
    pub settings: ApiKey,
    /// The live key this one replaces, and how long that one keeps working.
    pub replaces: Option<Rotation>,
}

/// The live key a planned rotation replaces, and its overlap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    pub id: String,
    pub overlap: crate::duration::Duration,
}

/// What a backend made for an operation.
#[derive(Debug)]
pub enum Applied {
    Done,
    /// A key the backend minted: its secret, shown this once.
    Issued(IssuedSecret),
}

/// A server-minted key as it arrives. The secret is wiped from memory when dropped and has no
/// `Debug` output.
pub struct IssuedSecret {
    pub id: String,
    pub secret: zeroize::Zeroizing<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for IssuedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedSecret")
            .field("id", &self.id)
            .field("secret", &"<hidden>")
            .finish()
    }
}

/// One write. Each is applied whole or not at all, and bumps the organization's revision.
/// The server's batch endpoint speaks its own wire types (`api::wire`), converted from these.
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
        teams: crate::model::Memberships,
    },
    /// Issues a key. The plan says this; the apply turns it into a `RegisterKey` for a
    /// backend where svcacct mints keys, and sends it as it is to one that mints them itself.
    IssueKey {
        account: String,
        name: String,
        key: KeyIssue,
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
            Operation::IssueKey { key, .. } if key.replaces.is_some() => "rotate_key",
            Operation::RegisterKey { .. } | Operation::IssueKey { .. } => "issue_key",
            Operation::UpdateKey { .. } => "update_key",
            Operation::RevokeKey { .. } => "revoke_key",
            Operation::DeleteServiceAccount { .. } => "delete_service_account",
            Operation::DeleteTeam { .. } => "delete_team",
            Operation::DeleteRole { .. } => "delete_role",
        }
    }

    /// The address of the object written, as plans print it.
    pub fn target(&self) -> Address {
        match self {
            Operation::PutRole { name, .. } | Operation::DeleteRole { name } => Address::role(name),
            Operation::PutTeam { name, .. } | Operation::DeleteTeam { name } => Address::team(name),
            Operation::PutServiceAccount { name, .. }
            | Operation::DeleteServiceAccount { name }
            | Operation::SetMemberships { account: name, .. } => Address::account(name),
            Operation::RegisterKey { account, name, .. }
            | Operation::IssueKey { account, name, .. }
            | Operation::UpdateKey { account, name, .. }
            | Operation::RevokeKey { account, name, .. } => Address::key(account, name),
        }
    }
}

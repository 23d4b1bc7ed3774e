//! Conversions between the wire and the model, kept in one place so that a field added on
//! either side and forgotten on the other is a compile error (`same_fields!`), and so that
//! the one operation the API cannot carry (`issue_key`) is refused where batches are built.

use super::{
    ApiKey, BatchOperation, IssuedKey, KeySettings, NewKey, Organization, Replaces, RetiringKey,
    Role, RoleWrite, ServiceAccount, ServiceAccountWrite, Team, TeamWrite,
};
use crate::model;
use crate::operation::{self, Operation};

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

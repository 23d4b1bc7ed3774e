//! Roles, teams and service accounts: list, get, create, update (PUT is an upsert), delete;
//! and an account's memberships, disable and enable. Each write is one `Operation` (or two,
//! applied together) through the store, so revisions and the audit log match the `local`
//! backend's.
//!
//! The five handlers the three kinds share are written once, generic over [`Kind`], which
//! each kind's body type implements; only an account's own routes are written for it alone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ensure_org, etagged};
use crate::api::ErrorCode;
use crate::model::{LiveAccount, Role, ServiceAccount, Team};
use crate::operation::Operation;
use crate::server::AppState;
use crate::server::auth::Caller;
use crate::server::error::ApiError;
use crate::server::extract::{Body, P, Preconditions};
use crate::server::validate;
use crate::server::write::{self, Reply, Write};
use crate::store::Store;
use crate::store::StoreError;

type Shared = State<Arc<AppState>>;

/// An object as the API shows it: its fields plus its name.
pub fn named(name: &str, value: &impl Serialize) -> Value {
    let mut v = serde_json::to_value(value).unwrap_or_else(|_| json!({}));
    if let Some(map) = v.as_object_mut() {
        map.insert("name".into(), Value::String(name.to_string()));
    }
    v
}

/// The checked name of the object a body writes: a create names it in the body, an update in
/// the path only (so the two can never disagree).
fn body_name(
    kind: &str,
    in_body: Option<String>,
    in_path: Option<&str>,
) -> Result<String, ApiError> {
    let name = match (in_body, in_path) {
        (None, Some(p)) => p.to_string(),
        (Some(b), None) => b,
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidBody,
                "unknown field `name`: an update names the object in its path",
            ));
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidBody,
                "missing field `name`",
            ));
        }
    };
    validate::name(kind, &name)?;
    Ok(name)
}

// ---- what the kinds share ----------------------------------------------------------------

/// A kind of organization object, implemented by the body that writes it: how the kind is
/// addressed and named, how the store reads it, and which operations write and delete it.
pub trait Kind: DeserializeOwned + Send + 'static {
    /// The prefix of an object's address, as in `role.deployer` (404s, 409s, the audit log).
    const ADDRESS: &'static str;
    /// The key of the array a list answers with.
    const LIST: &'static str;
    /// The kind as a 422 about a bad name calls it.
    const NOUN: &'static str;
    /// The 500 for an object missing right after its write.
    const VANISHED: &'static str;
    /// The object as the store reads it; the API shows it with its name added.
    type Model: Serialize + Send + 'static;

    /// Every object of the kind and the revision read; 404 when the organization is missing.
    fn read_all(store: &Store, org: &str)
    -> Result<(u64, BTreeMap<String, Self::Model>), ApiError>;
    /// One object, or `None` when it does not exist.
    fn read(store: &Store, org: &str, name: &str) -> Result<Option<Self::Model>, StoreError>;
    /// The object's name and the operations that write it; `path` is an update's path name.
    fn into_ops(self, path: Option<&str>) -> Result<(String, Vec<Operation>), ApiError>;
    /// The operation that deletes the object.
    fn delete(name: String) -> Operation;
}

/// An object's address, as in `role.deployer`.
fn address<K: Kind>(name: &str) -> String {
    format!("{}.{name}", K::ADDRESS)
}

/// One object; 404 when it does not exist.
fn find<K: Kind>(store: &Store, org: &str, name: &str) -> Result<K::Model, ApiError> {
    K::read(store, org, name)?
        .ok_or_else(|| ApiError::not_found(format!("{} does not exist", address::<K>(name))))
}

/// The answer to a write: the object as it now is.
fn written<K: Kind>(
    store: &Store,
    org: &str,
    name: &str,
    status: StatusCode,
) -> Result<Reply, ApiError> {
    let object = K::read(store, org, name)?.ok_or_else(|| ApiError::internal(K::VANISHED))?;
    Ok(Reply::json(status, named(name, &object)))
}

/// `GET` of a kind's collection: every object, with its name.
pub async fn list<K: Kind>(
    State(s): Shared,
    caller: Caller,
    P(org): P<String>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let (revision, objects) = s.db.read(move |store| K::read_all(store, &org)).await?;
    let list: Vec<Value> = objects.iter().map(|(n, o)| named(n, o)).collect();
    Ok(etagged(revision, json!({ K::LIST: list })))
}

/// `GET` of one object.
pub async fn get<K: Kind>(
    State(s): Shared,
    caller: Caller,
    P((org, name)): P<(String, String)>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let (revision, object) =
        s.db.read(move |store| {
            let revision = ensure_org(store, &org)?;
            let object = find::<K>(store, &org, &name)?;
            Ok((revision, named(&name, &object)))
        })
        .await?;
    Ok(etagged(revision, object))
}

/// `POST` to a kind's collection: 201, or 409 when the name is taken.
pub async fn create<K: Kind>(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P(org): P<String>,
    body: Body<K>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let (name, ops) = body.value.into_ops(None)?;
    let actor = caller.author();
    let w = Write::org(&org, &actor, pre, &body.digest);
    write::run(&s, w, move |store| {
        if K::read(store, &org, &name)?.is_some() {
            return Err(ApiError::conflict(
                ErrorCode::AlreadyExists,
                format!("{} already exists", address::<K>(&name)),
            ));
        }
        write::apply(store, &org, &actor, &ops, &address::<K>(&name))?;
        written::<K>(store, &org, &name, StatusCode::CREATED)
    })
    .await
}

/// `PUT` of one object, an upsert: 200 when it existed, 201 when this created it.
pub async fn put<K: Kind>(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P((org, path_name)): P<(String, String)>,
    body: Body<K>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let (name, ops) = body.value.into_ops(Some(&path_name))?;
    let actor = caller.author();
    let w = Write::org(&org, &actor, pre, &body.digest);
    write::run(&s, w, move |store| {
        let status = if K::read(store, &org, &name)?.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        write::apply(store, &org, &actor, &ops, &address::<K>(&name))?;
        written::<K>(store, &org, &name, status)
    })
    .await
}

/// `DELETE` of one object: 204.
pub async fn delete<K: Kind>(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P((org, name)): P<(String, String)>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    validate::name(K::NOUN, &name)?;
    let actor = caller.author();
    write::run(&s, Write::org(&org, &actor, pre, ""), move |store| {
        let own = address::<K>(&name);
        write::apply(store, &org, &actor, &[K::delete(name)], &own)?;
        Ok(Reply::empty(StatusCode::NO_CONTENT))
    })
    .await
}

// ---- roles -------------------------------------------------------------------------------

/// A role as written: the model's fields plus `name`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    permissions: BTreeSet<String>,
    #[serde(default)]
    builtin: bool,
    #[serde(default)]
    managed: bool,
    #[serde(default)]
    protect: bool,
}

impl Kind for RoleBody {
    const ADDRESS: &'static str = "role";
    const LIST: &'static str = "roles";
    const NOUN: &'static str = "role";
    const VANISHED: &'static str = "the role vanished while being written";
    type Model = Role;

    fn read_all(store: &Store, org: &str) -> Result<(u64, BTreeMap<String, Role>), ApiError> {
        let revision = ensure_org(store, org)?;
        Ok((revision, store.roles(org)?))
    }

    fn read(store: &Store, org: &str, name: &str) -> Result<Option<Role>, StoreError> {
        store.role(org, name)
    }

    fn into_ops(self, path: Option<&str>) -> Result<(String, Vec<Operation>), ApiError> {
        let name = body_name(Self::NOUN, self.name, path)?;
        validate::permissions("permission", &self.permissions)?;
        if self.builtin {
            return Err(ApiError::invalid(
                "only admin, member and viewer are built-in roles",
            ));
        }
        let role = Role {
            description: self.description,
            permissions: self.permissions,
            builtin: false,
            managed: self.managed,
            protect: self.protect,
        };
        Ok((name.clone(), vec![Operation::PutRole { name, role }]))
    }

    fn delete(name: String) -> Operation {
        Operation::DeleteRole { name }
    }
}

// ---- teams -------------------------------------------------------------------------------

/// A team as written: the model's fields plus `name`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    managed: bool,
    #[serde(default)]
    protect: bool,
}

impl Kind for TeamBody {
    const ADDRESS: &'static str = "team";
    const LIST: &'static str = "teams";
    const NOUN: &'static str = "team";
    const VANISHED: &'static str = "the team vanished while being written";
    type Model = Team;

    fn read_all(store: &Store, org: &str) -> Result<(u64, BTreeMap<String, Team>), ApiError> {
        let revision = ensure_org(store, org)?;
        Ok((revision, store.teams(org)?))
    }

    fn read(store: &Store, org: &str, name: &str) -> Result<Option<Team>, StoreError> {
        store.team(org, name)
    }

    fn into_ops(self, path: Option<&str>) -> Result<(String, Vec<Operation>), ApiError> {
        let name = body_name(Self::NOUN, self.name, path)?;
        let team = Team {
            description: self.description,
            managed: self.managed,
            protect: self.protect,
        };
        Ok((name.clone(), vec![Operation::PutTeam { name, team }]))
    }

    fn delete(name: String) -> Operation {
        Operation::DeleteTeam { name }
    }
}

// ---- service accounts --------------------------------------------------------------------

/// A service account as written: its own settings, optionally its memberships, and `name`.
/// Keys are written through the keys endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: String,
    /// Memberships, team → role. Absent on an update: left as they are.
    #[serde(default)]
    teams: Option<crate::model::Memberships>,
    #[serde(default)]
    admin: bool,
    /// The last day the account works, `YYYY-MM-DD`; null is never.
    #[serde(default)]
    expires: Option<String>,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    protect: bool,
    #[serde(default)]
    managed: bool,
}

impl Kind for AccountBody {
    const ADDRESS: &'static str = "service_account";
    const LIST: &'static str = "service_accounts";
    const NOUN: &'static str = "service account";
    const VANISHED: &'static str = "the account vanished while being written";
    type Model = LiveAccount;

    /// From the organization's snapshot: one read transaction for the accounts, their
    /// memberships and their keys.
    fn read_all(
        store: &Store,
        org: &str,
    ) -> Result<(u64, BTreeMap<String, LiveAccount>), ApiError> {
        let org_state = store
            .snapshot(org)?
            .ok_or_else(|| ApiError::not_found(format!("organization {org} does not exist")))?;
        Ok((org_state.revision, org_state.service_accounts))
    }

    fn read(store: &Store, org: &str, name: &str) -> Result<Option<LiveAccount>, StoreError> {
        store.service_account(org, name)
    }

    /// The account, then its memberships when the body names them.
    fn into_ops(self, path: Option<&str>) -> Result<(String, Vec<Operation>), ApiError> {
        let name = body_name(Self::NOUN, self.name, path)?;
        let expires = validate::date("expires", self.expires.as_deref())?;
        if let Some(teams) = &self.teams {
            validate::memberships(teams)?;
        }
        let mut ops = vec![Operation::PutServiceAccount {
            name: name.clone(),
            account: ServiceAccount {
                description: self.description,
                admin: self.admin,
                expires,
                disabled: self.disabled,
                protect: self.protect,
                managed: self.managed,
                ..Default::default()
            },
        }];
        if let Some(teams) = self.teams {
            ops.push(Operation::SetMemberships {
                account: name.clone(),
                teams,
            });
        }
        Ok((name, ops))
    }

    fn delete(name: String) -> Operation {
        Operation::DeleteServiceAccount { name }
    }
}

/// `PUT` of an account's memberships, team → role, replacing them all.
pub async fn put_memberships(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P((org, name)): P<(String, String)>,
    body: Body<crate::model::Memberships>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    validate::name(AccountBody::NOUN, &name)?;
    validate::memberships(&body.value)?;
    let teams = body.value;
    let actor = caller.author();
    let w = Write::org(&org, &actor, pre, &body.digest);
    write::run(&s, w, move |store| {
        let own = address::<AccountBody>(&name);
        let op = Operation::SetMemberships {
            account: name.clone(),
            teams,
        };
        write::apply(store, &org, &actor, &[op], &own)?;
        written::<AccountBody>(store, &org, &name, StatusCode::OK)
    })
    .await
}

async fn set_disabled(
    s: Arc<AppState>,
    caller: Caller,
    pre: Preconditions,
    org: String,
    name: String,
    disabled: bool,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    validate::name(AccountBody::NOUN, &name)?;
    let actor = caller.author();
    write::run(&s, Write::org(&org, &actor, pre, ""), move |store| {
        let mut account = find::<AccountBody>(store, &org, &name)?;
        account.disabled = disabled;
        let op = Operation::PutServiceAccount {
            name: name.clone(),
            account: account.with_keys(crate::model::SmallMap::new()),
        };
        write::apply(store, &org, &actor, &[op], &address::<AccountBody>(&name))?;
        written::<AccountBody>(store, &org, &name, StatusCode::OK)
    })
    .await
}

/// Disables an account: its keys stop authenticating until it is enabled again.
pub async fn disable_account(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P((org, name)): P<(String, String)>,
) -> Result<Response, ApiError> {
    set_disabled(s, caller, pre, org, name, true).await
}

/// Enables a disabled account.
pub async fn enable_account(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P((org, name)): P<(String, String)>,
) -> Result<Response, ApiError> {
    set_disabled(s, caller, pre, org, name, false).await
}

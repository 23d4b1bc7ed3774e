//! Roles, teams and service accounts: list, get, create, update (PUT is an upsert), delete;
//! and an account's memberships, disable and enable. Each write is one `Operation` (or two,
//! applied together) through the store, so revisions and the audit log match the `local`
//! backend's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde::Serialize;
use serde_json::{Value, json};

use super::{ensure_org, etagged};
use crate::backend::Operation;
use crate::model::{Role, ServiceAccount, Team};
use crate::server::AppState;
use crate::server::auth::Caller;
use crate::server::error::ApiError;
use crate::server::extract::{Body, P, Preconditions};
use crate::server::validate;
use crate::server::write::{self, Reply, Write};
use crate::store::Store;

type Shared = State<Arc<AppState>>;

/// An object as the API shows it: its fields plus its name.
pub fn named(name: &str, value: &impl Serialize) -> Value {
    let mut v = serde_json::to_value(value).unwrap_or_else(|_| json!({}));
    if let Some(map) = v.as_object_mut() {
        map.insert("name".into(), Value::String(name.to_string()));
    }
    v
}

/// The name of the object a body writes: a create names it in the body, an update in the
/// path only (so the two can never disagree).
fn body_name(in_body: Option<String>, in_path: Option<&str>) -> Result<String, ApiError> {
    match (in_body, in_path) {
        (None, Some(p)) => Ok(p.to_string()),
        (Some(b), None) => Ok(b),
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "invalid_body",
            "unknown field `name`: an update names the object in its path",
        )),
        (None, None) => Err(ApiError::bad_request(
            "invalid_body",
            "missing field `name`",
        )),
    }
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

impl RoleBody {
    fn into_role(self, path: Option<&str>) -> Result<(String, Role), ApiError> {
        let name = body_name(self.name, path)?;
        validate::name("role", &name)?;
        validate::permissions("permission", &self.permissions)?;
        if self.builtin {
            return Err(ApiError::invalid(
                "only admin, member and viewer are built-in roles",
            ));
        }
        Ok((
            name,
            Role {
                description: self.description,
                permissions: self.permissions,
                builtin: false,
                managed: self.managed,
                protect: self.protect,
            },
        ))
    }
}

pub async fn list_roles(
    State(s): Shared,
    caller: Caller,
    P(org): P<String>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let (revision, roles) =
        s.db.read(move |store| {
            let revision = ensure_org(store, &org)?;
            Ok((revision, store.roles(&org)?))
        })
        .await?;
    let list: Vec<Value> = roles.iter().map(|(n, r)| named(n, r)).collect();
    Ok(etagged(revision, json!({ "roles": list })))
}

pub async fn get_role(
    State(s): Shared,
    caller: Caller,
    P((org, name)): P<(String, String)>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let (revision, role) =
        s.db.read(move |store| {
            let revision = ensure_org(store, &org)?;
            let role = store
                .role(&org, &name)?
                .ok_or_else(|| ApiError::not_found(format!("role.{name} does not exist")))?;
            Ok((revision, named(&name, &role)))
        })
        .await?;
    Ok(etagged(revision, role))
}

pub async fn create_role(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P(org): P<String>,
    body: Body<RoleBody>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let (name, role) = body.value.into_role(None)?;
    let actor = caller.actor();
    let w = Write::org(&org, pre, &body.digest);
    write::run(&s, w, move |store| {
        if store.role(&org, &name)?.is_some() {
            return Err(ApiError::conflict(
                "already_exists",
                format!("role.{name} already exists"),
            ));
        }
        put_role_now(store, &org, &actor, &name, role, StatusCode::CREATED)
    })
    .await
}

pub async fn put_role(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P((org, path_name)): P<(String, String)>,
    body: Body<RoleBody>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let (name, role) = body.value.into_role(Some(&path_name))?;
    let actor = caller.actor();
    let w = Write::org(&org, pre, &body.digest);
    write::run(&s, w, move |store| {
        let status = if store.role(&org, &name)?.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        put_role_now(store, &org, &actor, &name, role, status)
    })
    .await
}

fn put_role_now(
    store: &mut Store,
    org: &str,
    actor: &str,
    name: &str,
    role: Role,
    status: StatusCode,
) -> Result<Reply, ApiError> {
    let own = format!("role.{name}");
    let op = Operation::PutRole {
        name: name.to_string(),
        role,
    };
    write::apply(store, org, actor, &[op], &own)?;
    let role = store
        .role(org, name)?
        .ok_or_else(|| ApiError::internal("the role vanished while being written"))?;
    Ok(Reply::json(status, named(name, &role)))
}

pub async fn delete_role(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P((org, name)): P<(String, String)>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    validate::name("role", &name)?;
    let actor = caller.actor();
    write::run(&s, Write::org(&org, pre, ""), move |store| {
        let own = format!("role.{name}");
        write::apply(store, &org, &actor, &[Operation::DeleteRole { name }], &own)?;
        Ok(Reply::empty(StatusCode::NO_CONTENT))
    })
    .await
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

impl TeamBody {
    fn into_team(self, path: Option<&str>) -> Result<(String, Team), ApiError> {
        let name = body_name(self.name, path)?;
        validate::name("team", &name)?;
        Ok((
            name,
            Team {
                description: self.description,
                managed: self.managed,
                protect: self.protect,
            },
        ))
    }
}

pub async fn list_teams(
    State(s): Shared,
    caller: Caller,
    P(org): P<String>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let (revision, teams) =
        s.db.read(move |store| {
            let revision = ensure_org(store, &org)?;
            Ok((revision, store.teams(&org)?))
        })
        .await?;
    let list: Vec<Value> = teams.iter().map(|(n, t)| named(n, t)).collect();
    Ok(etagged(revision, json!({ "teams": list })))
}

pub async fn get_team(
    State(s): Shared,
    caller: Caller,
    P((org, name)): P<(String, String)>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let (revision, team) =
        s.db.read(move |store| {
            let revision = ensure_org(store, &org)?;
            let team = store
                .team(&org, &name)?
                .ok_or_else(|| ApiError::not_found(format!("team.{name} does not exist")))?;
            Ok((revision, named(&name, &team)))
        })
        .await?;
    Ok(etagged(revision, team))
}

pub async fn create_team(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P(org): P<String>,
    body: Body<TeamBody>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let (name, team) = body.value.into_team(None)?;
    let actor = caller.actor();
    let w = Write::org(&org, pre, &body.digest);
    write::run(&s, w, move |store| {
        if store.team(&org, &name)?.is_some() {
            return Err(ApiError::conflict(
                "already_exists",
                format!("team.{name} already exists"),
            ));
        }
        put_team_now(store, &org, &actor, &name, team, StatusCode::CREATED)
    })
    .await
}

pub async fn put_team(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P((org, path_name)): P<(String, String)>,
    body: Body<TeamBody>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let (name, team) = body.value.into_team(Some(&path_name))?;
    let actor = caller.actor();
    let w = Write::org(&org, pre, &body.digest);
    write::run(&s, w, move |store| {
        let status = if store.team(&org, &name)?.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        put_team_now(store, &org, &actor, &name, team, status)
    })
    .await
}

fn put_team_now(
    store: &mut Store,
    org: &str,
    actor: &str,
    name: &str,
    team: Team,
    status: StatusCode,
) -> Result<Reply, ApiError> {
    let own = format!("team.{name}");
    let op = Operation::PutTeam {
        name: name.to_string(),
        team,
    };
    write::apply(store, org, actor, &[op], &own)?;
    let team = store
        .team(org, name)?
        .ok_or_else(|| ApiError::internal("the team vanished while being written"))?;
    Ok(Reply::json(status, named(name, &team)))
}

pub async fn delete_team(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P((org, name)): P<(String, String)>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    validate::name("team", &name)?;
    let actor = caller.actor();
    write::run(&s, Write::org(&org, pre, ""), move |store| {
        let own = format!("team.{name}");
        write::apply(store, &org, &actor, &[Operation::DeleteTeam { name }], &own)?;
        Ok(Reply::empty(StatusCode::NO_CONTENT))
    })
    .await
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
    teams: Option<BTreeMap<String, String>>,
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

/// The operations an account write makes.
fn account_ops(
    body: AccountBody,
    path: Option<&str>,
) -> Result<(String, Vec<Operation>), ApiError> {
    let name = body_name(body.name, path)?;
    validate::name("service account", &name)?;
    let expires = validate::date("expires", body.expires.as_deref())?;
    if let Some(teams) = &body.teams {
        memberships_valid(teams)?;
    }
    let mut ops = vec![Operation::PutServiceAccount {
        name: name.clone(),
        account: ServiceAccount {
            description: body.description,
            admin: body.admin,
            expires,
            disabled: body.disabled,
            protect: body.protect,
            managed: body.managed,
            ..Default::default()
        },
    }];
    if let Some(teams) = body.teams {
        ops.push(Operation::SetMemberships {
            account: name.clone(),
            teams,
        });
    }
    Ok((name, ops))
}

fn memberships_valid(teams: &BTreeMap<String, String>) -> Result<(), ApiError> {
    for (team, role) in teams {
        validate::name("team", team)?;
        validate::name("role", role)?;
    }
    Ok(())
}

fn account_reply(
    store: &Store,
    org: &str,
    name: &str,
    status: StatusCode,
) -> Result<Reply, ApiError> {
    let account = store
        .service_account(org, name)?
        .ok_or_else(|| ApiError::internal("the account vanished while being written"))?;
    Ok(Reply::json(status, named(name, &account)))
}

pub async fn list_accounts(
    State(s): Shared,
    caller: Caller,
    P(org): P<String>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let org_state =
        s.db.read(move |store| {
            store
                .snapshot(&org)?
                .ok_or_else(|| ApiError::not_found(format!("organization {org} does not exist")))
        })
        .await?;
    let list: Vec<Value> = org_state
        .service_accounts
        .iter()
        .map(|(n, a)| named(n, a))
        .collect();
    Ok(etagged(
        org_state.revision,
        json!({ "service_accounts": list }),
    ))
}

pub async fn get_account(
    State(s): Shared,
    caller: Caller,
    P((org, name)): P<(String, String)>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let (revision, account) =
        s.db.read(move |store| {
            let revision = ensure_org(store, &org)?;
            let account = store.service_account(&org, &name)?.ok_or_else(|| {
                ApiError::not_found(format!("service_account.{name} does not exist"))
            })?;
            Ok((revision, named(&name, &account)))
        })
        .await?;
    Ok(etagged(revision, account))
}

pub async fn create_account(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P(org): P<String>,
    body: Body<AccountBody>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let (name, ops) = account_ops(body.value, None)?;
    let actor = caller.actor();
    let w = Write::org(&org, pre, &body.digest);
    write::run(&s, w, move |store| {
        if store.service_account(&org, &name)?.is_some() {
            return Err(ApiError::conflict(
                "already_exists",
                format!("service_account.{name} already exists"),
            ));
        }
        write::apply(
            store,
            &org,
            &actor,
            &ops,
            &format!("service_account.{name}"),
        )?;
        account_reply(store, &org, &name, StatusCode::CREATED)
    })
    .await
}

pub async fn put_account(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P((org, path_name)): P<(String, String)>,
    body: Body<AccountBody>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let (name, ops) = account_ops(body.value, Some(&path_name))?;
    let actor = caller.actor();
    let w = Write::org(&org, pre, &body.digest);
    write::run(&s, w, move |store| {
        let status = if store.service_account(&org, &name)?.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        write::apply(
            store,
            &org,
            &actor,
            &ops,
            &format!("service_account.{name}"),
        )?;
        account_reply(store, &org, &name, status)
    })
    .await
}

pub async fn put_memberships(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P((org, name)): P<(String, String)>,
    body: Body<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    validate::name("service account", &name)?;
    memberships_valid(&body.value)?;
    let teams = body.value;
    let actor = caller.actor();
    let w = Write::org(&org, pre, &body.digest);
    write::run(&s, w, move |store| {
        let own = format!("service_account.{name}");
        let op = Operation::SetMemberships {
            account: name.clone(),
            teams,
        };
        write::apply(store, &org, &actor, &[op], &own)?;
        account_reply(store, &org, &name, StatusCode::OK)
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
    validate::name("service account", &name)?;
    let actor = caller.actor();
    write::run(&s, Write::org(&org, pre, ""), move |store| {
        let own = format!("service_account.{name}");
        let mut account = store
            .service_account(&org, &name)?
            .ok_or_else(|| ApiError::not_found(format!("{own} does not exist")))?;
        account.disabled = disabled;
        account.keys.clear();
        let op = Operation::PutServiceAccount {
            name: name.clone(),
            account,
        };
        write::apply(store, &org, &actor, &[op], &own)?;
        account_reply(store, &org, &name, StatusCode::OK)
    })
    .await
}

pub async fn disable_account(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P((org, name)): P<(String, String)>,
) -> Result<Response, ApiError> {
    set_disabled(s, caller, pre, org, name, true).await
}

pub async fn enable_account(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P((org, name)): P<(String, String)>,
) -> Result<Response, ApiError> {
    set_disabled(s, caller, pre, org, name, false).await
}

pub async fn delete_account(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P((org, name)): P<(String, String)>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    validate::name("service account", &name)?;
    let actor = caller.actor();
    write::run(&s, Write::org(&org, pre, ""), move |store| {
        let own = format!("service_account.{name}");
        let op = Operation::DeleteServiceAccount { name };
        write::apply(store, &org, &actor, &[op], &own)?;
        Ok(Reply::empty(StatusCode::NO_CONTENT))
    })
    .await
}

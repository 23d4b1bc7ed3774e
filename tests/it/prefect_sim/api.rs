//! The HTTP face of the simulator: one handler per Prefect Cloud endpoint with its OAS request
//! and response types, and the layers Cloud puts around them (edge limits, rate limiting, lost
//! answers, Starlette's trailing-slash redirect). tests/prefect-contract.md says where each
//! behaviour comes from.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::Shared;
use super::model::{Access, ApiKey, Bot, Seen, State, WorkspaceRole};
use super::scopes;
use super::wire::{
    ApiError, ApiResult, body_loc, check_length, check_range, from_value, parse_body,
    parse_datetime, path_uuid,
};

/// Cloud's edge refuses bodies over 5 MiB (rate-limits doc).
pub const MAX_BODY: u64 = 5 * 1024 * 1024;

/// `limit` on every filter: default and maximum (OAS `Body_read_*`).
const PAGE_MAX: i64 = 200;

/// Every route, statics before parameters so the first match is the one the router picks.
/// Shared by the router, the per-route request counts and the trailing-slash redirect.
pub const ROUTES: [&str; 18] = [
    "/api/workspace_scopes",
    "/api/accounts/{account_id}/account_roles/filter",
    "/api/accounts/{account_id}/bots/",
    "/api/accounts/{account_id}/bots/filter",
    "/api/accounts/{account_id}/bots/{id}",
    "/api/accounts/{account_id}/bots/{id}/rotate_api_key",
    "/api/accounts/{account_id}/bots/{id}/read_bot_api_keys",
    "/api/accounts/{account_id}/bots/{id}/delete_bot_api_key/{api_key_id}",
    "/api/accounts/{account_id}/workspaces/filter",
    "/api/accounts/{account_id}/workspace_roles/",
    "/api/accounts/{account_id}/workspace_roles/filter",
    "/api/accounts/{account_id}/workspace_roles/{id}",
    "/api/accounts/{account_id}/workspaces/{workspace_id}/bot_access/",
    "/api/accounts/{account_id}/workspaces/{workspace_id}/bot_access/filter",
    "/api/accounts/{account_id}/workspaces/{workspace_id}/bot_access/{id}",
    "/api/accounts/{account_id}/workspaces/{workspace_id}/variables/",
    "/api/accounts/{account_id}/workspaces/{workspace_id}/variables/filter",
    "/api/accounts/{account_id}/workspaces/{workspace_id}/variables/name/{name}",
];

/// The route template `path` falls under, if any.
pub fn route_of(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    ROUTES.iter().copied().find(|template| {
        let parts: Vec<&str> = template.split('/').collect();
        parts.len() == segments.len()
            && parts.iter().zip(&segments).all(|(t, s)| {
                if t.starts_with('{') {
                    !s.is_empty()
                } else {
                    t == s
                }
            })
    })
}

/// The key `PrefectSim::requests` counts a request under: method and the route template
/// after `/api/accounts/{account_id}/`, e.g. `POST bots/filter`.
pub fn route_key(method: &Method, path: &str) -> String {
    match route_of(path) {
        Some(t) => format!(
            "{method} {}",
            t.strip_prefix("/api/accounts/{account_id}/").unwrap_or(t)
        ),
        None => format!("{method} ?{path}"),
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    const A: &str = "/api/accounts/{account_id}";
    const W: &str = "/api/accounts/{account_id}/workspaces/{workspace_id}";
    Router::new()
        .route("/api/workspace_scopes", get(workspace_scopes))
        .route(
            &format!("{A}/account_roles/filter"),
            post(read_account_roles),
        )
        .route(&format!("{A}/bots/"), post(create_bot))
        .route(&format!("{A}/bots/filter"), post(read_bots))
        .route(
            &format!("{A}/bots/{{id}}"),
            get(read_bot).patch(update_bot).delete(delete_bot),
        )
        .route(
            &format!("{A}/bots/{{id}}/rotate_api_key"),
            post(rotate_api_key),
        )
        .route(
            &format!("{A}/bots/{{id}}/read_bot_api_keys"),
            get(read_bot_api_keys),
        )
        .route(
            &format!("{A}/bots/{{id}}/delete_bot_api_key/{{api_key_id}}"),
            axum::routing::delete(delete_bot_api_key),
        )
        .route(&format!("{A}/workspaces/filter"), post(read_workspaces))
        .route(
            &format!("{A}/workspace_roles/"),
            post(create_workspace_role),
        )
        .route(
            &format!("{A}/workspace_roles/filter"),
            post(read_workspace_roles),
        )
        .route(
            &format!("{A}/workspace_roles/{{id}}"),
            get(read_workspace_role)
                .patch(update_workspace_role)
                .delete(delete_workspace_role),
        )
        .route(&format!("{W}/bot_access/"), post(upsert_bot_access))
        .route(&format!("{W}/bot_access/filter"), post(read_bot_accesses))
        .route(
            &format!("{W}/bot_access/{{id}}"),
            get(read_bot_access).delete(delete_bot_access),
        )
        .route(
            &format!("{W}/variables/"),
            post(super::variables::create_variable),
        )
        .route(
            &format!("{W}/variables/filter"),
            post(super::variables::read_variables),
        )
        .route(
            &format!("{W}/variables/name/{{name}}"),
            axum::routing::patch(super::variables::update_variable_by_name)
                .delete(super::variables::delete_variable_by_name),
        )
        .route_layer(middleware::from_fn_with_state(shared.clone(), authenticate))
        .fallback(redirect_slash_or_404)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(shared.clone(), lose_answers))
        .layer(middleware::from_fn_with_state(shared.clone(), rate_limit))
        .layer(middleware::from_fn(edge_limits))
        .layer(middleware::from_fn_with_state(shared.clone(), count))
        .layer(DefaultBodyLimit::max(MAX_BODY as usize + 1))
        .with_state(shared)
}

// ---- layers -------------------------------------------------------------------------------

/// Counts every request that reaches the simulator, by route.
async fn count(AxState(sh): AxState<Arc<Shared>>, req: Request, next: Next) -> Response {
    sh.counts
        .lock()
        .unwrap()
        .record(route_key(req.method(), req.uri().path()));
    next.run(req).await
}

/// What Cloud's edge refuses before the application sees it: a POST/PUT/PATCH without
/// `Content-Length` (411) and a body over 5 MiB (413).
async fn edge_limits(req: Request, next: Next) -> Response {
    let needs_length = [Method::POST, Method::PUT, Method::PATCH].contains(req.method());
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match length {
        None if needs_length => {
            ApiError::new(StatusCode::LENGTH_REQUIRED, "Length Required").into_response()
        }
        Some(n) if n > MAX_BODY => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Content Too Large").into_response()
        }
        _ => next.run(req).await,
    }
}

/// The configured share of requests gets 429 with `Retry-After` in whole seconds.
async fn rate_limit(AxState(sh): AxState<Arc<Shared>>, req: Request, next: Next) -> Response {
    let limited = sh.faults.lock().unwrap().rate_limited();
    match limited {
        Some(secs) => {
            let mut resp = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded.")
                .into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            resp
        }
        None => next.run(req).await,
    }
}

/// Writes are requests that change something: every PATCH and DELETE, and every POST but the
/// `.../filter` reads.
fn is_write(method: &Method, path: &str) -> bool {
    method == Method::PATCH
        || method == Method::DELETE
        || (method == Method::POST && !path.ends_with("/filter"))
}

/// The configured share of successful writes loses its answer: the write is done, and the
/// client gets what a proxy sends when the upstream connection broke, a 502 with no body.
async fn lose_answers(AxState(sh): AxState<Arc<Shared>>, req: Request, next: Next) -> Response {
    let write = is_write(req.method(), req.uri().path());
    let resp = next.run(req).await;
    if write && resp.status().is_success() && sh.faults.lock().unwrap().answer_lost() {
        return StatusCode::BAD_GATEWAY.into_response();
    }
    resp
}

/// `Authorization: Bearer <key>` with the account's key, on every route that exists (an
/// unknown path is 404 before authentication, as FastAPI routes before dependencies run).
async fn authenticate(AxState(sh): AxState<Arc<Shared>>, req: Request, next: Next) -> Response {
    let token = sh.state.lock().unwrap().token.clone();
    let ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| given == token);
    if ok {
        next.run(req).await
    } else {
        ApiError::unauthorized().into_response()
    }
}

/// Starlette's `redirect_slashes`: when no route matches, the same path with the trailing
/// slash added (or all trailing slashes removed) is tried against every route, whatever the
/// method; a match is a 307 to it, anything else 404.
async fn redirect_slash_or_404(req: Request) -> Response {
    let path = req.uri().path();
    let toggled = if path.ends_with('/') {
        path.trim_end_matches('/').to_owned()
    } else {
        format!("{path}/")
    };
    if path != "/" && route_of(&toggled).is_some() {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        let query = req
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let location = format!("http://{host}{toggled}{query}");
        return (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response();
    }
    ApiError::not_found("Not Found").into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed").into_response()
}

// ---- shared request/response types ---------------------------------------------------------

pub(super) type Params = Path<HashMap<String, String>>;

/// Checks `{account_id}`: a UUID (422) naming this account (404).
fn account(st: &State, p: &HashMap<String, String>) -> ApiResult<()> {
    let id = path_uuid("account_id", &p["account_id"])?;
    if id != st.account_id {
        return Err(ApiError::not_found("Account not found."));
    }
    Ok(())
}

/// Checks `{workspace_id}` as well.
pub(super) fn workspace(st: &State, p: &HashMap<String, String>) -> ApiResult<Uuid> {
    account(st, p)?;
    let id = path_uuid("workspace_id", &p["workspace_id"])?;
    st.workspace(id)
        .ok_or_else(|| ApiError::not_found("Workspace not found."))?;
    Ok(id)
}

fn id(p: &HashMap<String, String>, name: &str) -> ApiResult<Uuid> {
    path_uuid(name, &p[name])
}

pub(super) fn default_limit() -> i64 {
    PAGE_MAX
}

/// `limit` and `offset` as every filter body has them.
pub(super) struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Page {
    pub fn check(&self) -> ApiResult<()> {
        check_range("limit", self.limit, 0, Some(PAGE_MAX))?;
        check_range("offset", self.offset, 0, None)
    }

    pub fn apply<T>(&self, items: impl IntoIterator<Item = T>) -> Vec<T> {
        items
            .into_iter()
            .skip(self.offset as usize)
            .take(self.limit as usize)
            .collect()
    }
}

impl Default for Page {
    fn default() -> Page {
        Page {
            limit: PAGE_MAX,
            offset: 0,
        }
    }
}

/// `{any_: [...] | null}`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct AnyOf<T> {
    any_: Option<Vec<T>>,
}

impl<T: PartialEq> AnyOf<T> {
    pub fn admits(filter: &Option<AnyOf<T>>, value: &T) -> bool {
        match filter.as_ref().and_then(|f| f.any_.as_ref()) {
            Some(any) => any.contains(value),
            None => true,
        }
    }
}

/// Distinguishes an explicit `null` (`Some(None)`) from an absent field (`None`).
fn explicit<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Serialize)]
struct KeyCreated {
    id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
    name: String,
    #[serde(with = "time::serde::rfc3339::option")]
    expiration: Option<OffsetDateTime>,
    key: String,
}

#[derive(Serialize)]
struct KeyRead {
    id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
    name: String,
    #[serde(with = "time::serde::rfc3339::option")]
    expiration: Option<OffsetDateTime>,
    masked_key: String,
}

impl From<&ApiKey> for KeyRead {
    fn from(k: &ApiKey) -> KeyRead {
        KeyRead {
            id: k.id,
            created: k.created,
            name: k.name.clone(),
            expiration: k.expiration,
            masked_key: k.masked(),
        }
    }
}

/// OAS `BotCreateResponse` (K = `KeyCreated`) and `BotReadResponse` (K = `KeyRead`).
#[derive(Serialize)]
struct BotOut<K> {
    id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated: OffsetDateTime,
    actor_id: Option<Uuid>,
    account_id: Uuid,
    name: String,
    account_role_name: String,
    api_key: K,
}

fn bot_out<K>(st: &State, bot: &Bot, seen: &Seen, api_key: K) -> BotOut<K> {
    let (name, role, actor_id) = match seen {
        Seen::Fresh => (bot.name.clone(), bot.account_role_id, None),
        Seen::Stale(shown) => (
            shown.name.clone(),
            shown.account_role_id,
            Some(bot.actor_id),
        ),
        Seen::Current => (bot.name.clone(), bot.account_role_id, Some(bot.actor_id)),
    };
    BotOut {
        id: bot.id,
        created: bot.created,
        updated: bot.updated,
        actor_id,
        account_id: st.account_id,
        name,
        account_role_name: st
            .account_role(role)
            .map(|r| r.name.clone())
            .unwrap_or_default(),
        api_key,
    }
}

fn bot_created(st: &State, bot: &Bot) -> BotOut<KeyCreated> {
    let k = &bot.active_key;
    let key = KeyCreated {
        id: k.id,
        created: k.created,
        name: k.name.clone(),
        expiration: k.expiration,
        key: k.secret.clone(),
    };
    bot_out(st, bot, &Seen::Current, key)
}

fn account_role_id(st: &State, id: Uuid) -> ApiResult<Uuid> {
    st.account_role(id)
        .map(|r| r.id)
        .ok_or_else(|| ApiError::not_found("Account role not found."))
}

// ---- bots ----------------------------------------------------------------------------------

/// OAS `BotCreate` (`additionalProperties: false`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BotCreate {
    name: String,
    api_key_expiration: Option<String>,
    account_role_id: Option<Uuid>,
}

async fn create_bot(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<BotOut<KeyCreated>>)> {
    let mut st = sh.state.lock().unwrap();
    account(&st, &p)?;
    let req: BotCreate = parse_body(&headers, &body, true)?.expect("required body");
    check_length("name", &req.name, 5000)?;
    let expiration = req
        .api_key_expiration
        .as_deref()
        .map(|raw| parse_datetime("api_key_expiration", raw))
        .transpose()?;
    let role = match req.account_role_id {
        Some(id) => account_role_id(&st, id)?,
        None => st.account_role_named("Member").id,
    };
    let bot = st.create_bot(&req.name, role, expiration, true)?.clone();
    Ok((StatusCode::CREATED, Json(bot_created(&st, &bot))))
}

/// OAS `BotFilterName`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BotFilterName {
    any_: Option<Vec<String>>,
    like_: Option<String>,
}

/// OAS `BotFilter`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BotFilter {
    id: Option<AnyOf<Uuid>>,
    name: Option<BotFilterName>,
}

impl BotFilter {
    fn admits(filter: &Option<BotFilter>, id: Uuid, name: &str) -> bool {
        let Some(f) = filter else { return true };
        let name_ok = match &f.name {
            None => true,
            Some(n) => {
                n.any_
                    .as_ref()
                    .is_none_or(|any| any.iter().any(|a| a == name))
                    && n.like_
                        .as_ref()
                        .is_none_or(|like| name.to_lowercase().contains(&like.to_lowercase()))
            }
        };
        name_ok && AnyOf::admits(&f.id, &id)
    }
}

/// OAS `Body_read_bots_...`: no `additionalProperties: false`, so FastAPI ignores extra keys
/// at the top level; the nested filter models forbid them.
#[derive(Deserialize)]
struct ReadBots {
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
    service_accounts: Option<BotFilter>,
}

async fn read_bots(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Vec<BotOut<KeyRead>>>> {
    let mut st = sh.state.lock().unwrap();
    account(&st, &p)?;
    let req: Option<ReadBots> = parse_body(&headers, &body, false)?;
    let (page, filter) = req.map_or((Page::default(), None), |r| {
        (
            Page {
                limit: r.limit,
                offset: r.offset,
            },
            r.service_accounts,
        )
    });
    page.check()?;
    let mut order: Vec<usize> = (0..st.bots.len()).collect();
    order.sort_by(|a, b| st.bots[*a].name.cmp(&st.bots[*b].name));
    let mut shown = Vec::new();
    for i in order {
        let seen = st.observe(i);
        let bot = &st.bots[i];
        let out = match &seen {
            Seen::Fresh => continue,
            _ => bot_out(&st, bot, &seen, KeyRead::from(&bot.active_key)),
        };
        if BotFilter::admits(&filter, out.id, &out.name) {
            shown.push(out);
        }
    }
    Ok(Json(page.apply(shown)))
}

async fn read_bot(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
) -> ApiResult<Json<BotOut<KeyRead>>> {
    let mut st = sh.state.lock().unwrap();
    account(&st, &p)?;
    let id = id(&p, "id")?;
    st.bot(id)?;
    let index = st.bots.iter().position(|b| b.id == id).expect("found");
    let seen = st.observe(index);
    let bot = &st.bots[index];
    Ok(Json(bot_out(
        &st,
        bot,
        &seen,
        KeyRead::from(&bot.active_key),
    )))
}

/// OAS `BotUpdate`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BotUpdate {
    name: Option<String>,
    account_role_id: Option<Uuid>,
}

async fn update_bot(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let mut st = sh.state.lock().unwrap();
    account(&st, &p)?;
    let id = id(&p, "id")?;
    let req: BotUpdate = parse_body(&headers, &body, true)?.expect("required body");
    if let Some(name) = &req.name {
        check_length("name", name, 5000)?;
    }
    st.bot(id)?;
    let role = req
        .account_role_id
        .map(|r| account_role_id(&st, r))
        .transpose()?;
    st.update_bot(id, req.name, role, true)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_bot(AxState(sh): AxState<Arc<Shared>>, Path(p): Params) -> ApiResult<StatusCode> {
    let mut st = sh.state.lock().unwrap();
    account(&st, &p)?;
    st.delete_bot(id(&p, "id")?)?;
    Ok(StatusCode::NO_CONTENT)
}

/// OAS `BotRotateAPIKey`; the whole body may be absent or `null`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BotRotateApiKey {
    api_key_expiration: Option<String>,
    old_key_expires_in_seconds: Option<i64>,
}

/// The longest overlap Cloud allows for an old key: 48 hours.
pub const MAX_OVERLAP_SECS: i64 = 172_800;

async fn rotate_api_key(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<BotOut<KeyCreated>>)> {
    let mut st = sh.state.lock().unwrap();
    account(&st, &p)?;
    let id = id(&p, "id")?;
    let req: BotRotateApiKey = parse_body(&headers, &body, false)?.unwrap_or_default();
    if let Some(secs) = req.old_key_expires_in_seconds {
        check_range(
            "old_key_expires_in_seconds",
            secs,
            0,
            Some(MAX_OVERLAP_SECS),
        )?;
    }
    let expiration = req
        .api_key_expiration
        .as_deref()
        .map(|raw| parse_datetime("api_key_expiration", raw))
        .transpose()?;
    let bot = st
        .rotate(id, expiration, req.old_key_expires_in_seconds)?
        .clone();
    Ok((StatusCode::CREATED, Json(bot_created(&st, &bot))))
}

/// OAS `BotAPIKeyReadResponse`.
#[derive(Serialize)]
struct BotKeys {
    active_key: KeyRead,
    rotating_keys: Vec<KeyRead>,
}

async fn read_bot_api_keys(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
) -> ApiResult<Json<BotKeys>> {
    let st = sh.state.lock().unwrap();
    account(&st, &p)?;
    let bot = st.bot(id(&p, "id")?)?;
    Ok(Json(BotKeys {
        active_key: KeyRead::from(&bot.active_key),
        rotating_keys: st
            .live_rotating_keys(bot)
            .iter()
            .map(KeyRead::from)
            .collect(),
    }))
}

async fn delete_bot_api_key(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
) -> ApiResult<Json<Value>> {
    let mut st = sh.state.lock().unwrap();
    account(&st, &p)?;
    let bot_id = id(&p, "id")?;
    let key_id = id(&p, "api_key_id")?;
    let live: Vec<Uuid> = st
        .live_rotating_keys(st.bot(bot_id)?)
        .iter()
        .map(|k| k.id)
        .collect();
    let bot = st.bot_mut(bot_id)?;
    if bot.active_key.id == key_id {
        return Err(ApiError::conflict(
            "The active API key cannot be deleted; rotate it instead.",
        ));
    }
    if !live.contains(&key_id) {
        return Err(ApiError::not_found("API key not found."));
    }
    bot.rotating_keys.retain(|k| k.id != key_id);
    Ok(Json(Value::Null))
}

// ---- roles and workspaces ------------------------------------------------------------------

/// OAS `AccountRoleFilter`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountRoleFilter {
    name: Option<AnyOf<String>>,
}

#[derive(Deserialize)]
struct ReadAccountRoles {
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
    account_roles: Option<AccountRoleFilter>,
}

/// OAS `AccountRole`.
#[derive(Serialize)]
struct AccountRoleOut {
    id: Uuid,
    created: Option<String>,
    updated: Option<String>,
    account_id: Option<Uuid>,
    name: String,
    permissions: Vec<&'static str>,
    is_system_role: bool,
}

async fn read_account_roles(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Vec<AccountRoleOut>>> {
    let st = sh.state.lock().unwrap();
    account(&st, &p)?;
    let req: Option<ReadAccountRoles> = parse_body(&headers, &body, false)?;
    let (page, filter) = req.map_or((Page::default(), None), |r| {
        (
            Page {
                limit: r.limit,
                offset: r.offset,
            },
            r.account_roles,
        )
    });
    page.check()?;
    let names = filter.and_then(|f| f.name);
    let roles = st
        .account_roles
        .iter()
        .filter(|r| AnyOf::admits(&names, &r.name))
        .map(|r| AccountRoleOut {
            id: r.id,
            created: None,
            updated: None,
            account_id: None,
            name: r.name.clone(),
            permissions: r.permissions.clone(),
            is_system_role: true,
        });
    Ok(Json(page.apply(roles)))
}

/// OAS `WorkspaceFilter`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkspaceFilter {
    id: Option<AnyOf<Uuid>>,
    handle: Option<AnyOf<String>>,
}

#[derive(Deserialize)]
struct ReadWorkspaces {
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
    workspaces: Option<WorkspaceFilter>,
}

/// OAS `Workspace`.
#[derive(Serialize)]
struct WorkspaceOut {
    id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated: OffsetDateTime,
    account_id: Uuid,
    name: String,
    description: String,
    handle: String,
    default_workspace_role_id: Uuid,
    is_public: bool,
}

async fn read_workspaces(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Vec<WorkspaceOut>>> {
    let st = sh.state.lock().unwrap();
    account(&st, &p)?;
    let req: Option<ReadWorkspaces> = parse_body(&headers, &body, false)?;
    let (page, filter) = req.map_or((Page::default(), None), |r| {
        (
            Page {
                limit: r.limit,
                offset: r.offset,
            },
            r.workspaces,
        )
    });
    page.check()?;
    let (ids, handles) = filter.map_or((None, None), |f| (f.id, f.handle));
    let found = st
        .workspaces
        .iter()
        .filter(|w| AnyOf::admits(&ids, &w.id) && AnyOf::admits(&handles, &w.handle))
        .map(|w| WorkspaceOut {
            id: w.id,
            created: w.created,
            updated: w.created,
            account_id: st.account_id,
            name: w.name.clone(),
            description: w.description.clone(),
            handle: w.handle.clone(),
            default_workspace_role_id: w.default_workspace_role_id,
            is_public: false,
        });
    Ok(Json(page.apply(found)))
}

/// OAS `WorkspaceRole`; `scopes` is what the role grants, declared scopes first and then the
/// ones they imply; `permissions` (deprecated) stays empty.
#[derive(Serialize)]
struct WorkspaceRoleOut {
    id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated: OffsetDateTime,
    account_id: Option<Uuid>,
    name: String,
    description: String,
    permissions: Vec<String>,
    scopes: Vec<String>,
    inherited_role_id: Option<Uuid>,
}

impl From<&WorkspaceRole> for WorkspaceRoleOut {
    fn from(r: &WorkspaceRole) -> WorkspaceRoleOut {
        WorkspaceRoleOut {
            id: r.id,
            created: r.created,
            updated: r.updated,
            account_id: r.account_id,
            name: r.name.clone(),
            description: r.description.clone(),
            permissions: Vec::new(),
            scopes: scopes::expand(&r.scopes),
            inherited_role_id: r.inherited_role_id,
        }
    }
}

/// OAS `WorkspaceRoleFilter`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkspaceRoleFilter {
    name: Option<AnyOf<String>>,
    is_global: Option<bool>,
}

#[derive(Deserialize)]
struct ReadWorkspaceRoles {
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
    workspace_roles: Option<WorkspaceRoleFilter>,
}

async fn read_workspace_roles(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Vec<WorkspaceRoleOut>>> {
    let st = sh.state.lock().unwrap();
    account(&st, &p)?;
    let req: Option<ReadWorkspaceRoles> = parse_body(&headers, &body, false)?;
    let (page, filter) = req.map_or((Page::default(), None), |r| {
        (
            Page {
                limit: r.limit,
                offset: r.offset,
            },
            r.workspace_roles,
        )
    });
    page.check()?;
    let (names, global) = filter.map_or((None, None), |f| (f.name, f.is_global));
    let roles = st
        .workspace_roles
        .iter()
        .filter(|r| AnyOf::admits(&names, &r.name))
        .filter(|r| global.is_none_or(|g| g == r.account_id.is_none()))
        .map(WorkspaceRoleOut::from);
    Ok(Json(page.apply(roles)))
}

/// OAS `WorkspaceRoleCreate`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkspaceRoleCreate {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    scopes: Vec<String>,
    inherited_role_id: Option<Uuid>,
}

/// OAS `WorkspaceRoleUpdate`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkspaceRoleUpdate {
    name: Option<String>,
    description: Option<String>,
    scopes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "explicit")]
    inherited_role_id: Option<Option<Uuid>>,
}

/// Scopes must be `WorkspaceScopeName`s (422 naming the first one that is not).
fn check_scopes(scopes: &[String]) -> ApiResult<()> {
    match scopes.iter().position(|s| !scopes::is_scope(s)) {
        None => Ok(()),
        Some(i) => Err(ApiError::invalid(
            "enum",
            vec![json!("body"), json!("scopes"), json!(i)],
            "Input should be a valid WorkspaceScopeName",
        )),
    }
}

/// A role can only inherit from a built-in one.
fn check_inherited(st: &State, id: Option<Uuid>) -> ApiResult<()> {
    let Some(id) = id else { return Ok(()) };
    match st.workspace_role(id) {
        None => Err(ApiError::not_found("Inherited workspace role not found.")),
        Some(r) if r.account_id.is_some() => Err(ApiError::invalid(
            "value_error",
            body_loc("inherited_role_id"),
            "Value error, a role can only inherit from a built-in role",
        )),
        Some(_) => Ok(()),
    }
}

fn role_name_taken(st: &State, name: &str, except: Option<Uuid>) -> ApiResult<()> {
    match st.workspace_role_named(name) {
        Some(r) if Some(r.id) != except => Err(ApiError::conflict(
            "A workspace role with this name already exists.",
        )),
        _ => Ok(()),
    }
}

async fn create_workspace_role(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<WorkspaceRoleOut>)> {
    let mut st = sh.state.lock().unwrap();
    account(&st, &p)?;
    let req: WorkspaceRoleCreate = parse_body(&headers, &body, true)?.expect("required body");
    check_length("name", &req.name, 5000)?;
    check_length("description", &req.description, 140)?;
    check_scopes(&req.scopes)?;
    check_inherited(&st, req.inherited_role_id)?;
    role_name_taken(&st, &req.name, None)?;
    let now = st.now();
    let role = WorkspaceRole {
        id: Uuid::new_v4(),
        account_id: Some(st.account_id),
        name: req.name,
        description: req.description,
        scopes: req.scopes,
        inherited_role_id: req.inherited_role_id,
        created: now,
        updated: now,
    };
    let out = WorkspaceRoleOut::from(&role);
    st.workspace_roles.push(role);
    Ok((StatusCode::CREATED, Json(out)))
}

fn workspace_role_index(st: &State, p: &HashMap<String, String>) -> ApiResult<usize> {
    let id = id(p, "id")?;
    st.workspace_roles
        .iter()
        .position(|r| r.id == id)
        .ok_or_else(|| ApiError::not_found("Workspace role not found."))
}

fn builtin_refused(role: &WorkspaceRole) -> ApiResult<()> {
    if role.account_id.is_none() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Built-in workspace roles cannot be changed.",
        ));
    }
    Ok(())
}

async fn read_workspace_role(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
) -> ApiResult<Json<WorkspaceRoleOut>> {
    let st = sh.state.lock().unwrap();
    account(&st, &p)?;
    let i = workspace_role_index(&st, &p)?;
    Ok(Json(WorkspaceRoleOut::from(&st.workspace_roles[i])))
}

async fn update_workspace_role(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let mut st = sh.state.lock().unwrap();
    account(&st, &p)?;
    let i = workspace_role_index(&st, &p)?;
    let req: WorkspaceRoleUpdate = parse_body(&headers, &body, true)?.expect("required body");
    if let Some(name) = &req.name {
        check_length("name", name, 5000)?;
        role_name_taken(&st, name, Some(st.workspace_roles[i].id))?;
    }
    if let Some(d) = &req.description {
        check_length("description", d, 140)?;
    }
    if let Some(s) = &req.scopes {
        check_scopes(s)?;
    }
    if let Some(inherited) = req.inherited_role_id {
        check_inherited(&st, inherited)?;
    }
    builtin_refused(&st.workspace_roles[i])?;
    let now = st.now();
    let role = &mut st.workspace_roles[i];
    if let Some(name) = req.name {
        role.name = name;
    }
    if let Some(d) = req.description {
        role.description = d;
    }
    if let Some(s) = req.scopes {
        role.scopes = s;
    }
    if let Some(inherited) = req.inherited_role_id {
        role.inherited_role_id = inherited;
    }
    role.updated = now;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_workspace_role(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
) -> ApiResult<StatusCode> {
    let mut st = sh.state.lock().unwrap();
    account(&st, &p)?;
    let i = workspace_role_index(&st, &p)?;
    builtin_refused(&st.workspace_roles[i])?;
    let id = st.workspace_roles[i].id;
    if st.accesses.iter().any(|a| a.workspace_role_id == id) {
        return Err(ApiError::conflict(
            "The workspace role is still assigned and cannot be deleted.",
        ));
    }
    st.workspace_roles.remove(i);
    Ok(StatusCode::NO_CONTENT)
}

async fn workspace_scopes() -> Json<Value> {
    let all: Vec<Value> = scopes::SCOPES
        .iter()
        .map(|name| {
            json!({
                "name": name,
                "title": name.replace('_', " "),
                "feature_group": name.split_once('_').map_or(*name, |(_, obj)| obj),
                "includes_scopes": scopes::includes(name),
                "see_scope": scopes::see_scope(name),
            })
        })
        .collect();
    Json(Value::Array(all))
}

// ---- bot access ----------------------------------------------------------------------------

/// OAS `WorkspaceBotAccessCreate`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BotAccessCreate {
    bot_id: Uuid,
    workspace_role_id: Uuid,
}

/// OAS `WorkspaceBotAccessResponse`.
#[derive(Serialize)]
struct BotAccessOut {
    id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated: OffsetDateTime,
    workspace_id: Uuid,
    workspace_role_id: Uuid,
    actor_id: Uuid,
    bot_id: Uuid,
    bot_name: String,
}

fn access_out(st: &State, a: &Access) -> BotAccessOut {
    let bot = st.bot(a.bot_id).expect("accesses die with their bot");
    BotAccessOut {
        id: a.id,
        created: a.created,
        updated: a.updated,
        workspace_id: a.workspace_id,
        workspace_role_id: a.workspace_role_id,
        actor_id: bot.actor_id,
        bot_id: bot.id,
        bot_name: bot.name.clone(),
    }
}

/// The body is one `WorkspaceBotAccessCreate` or an array of them, and the answer has the same
/// shape. All are checked before any is applied.
async fn upsert_bot_access(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let mut st = sh.state.lock().unwrap();
    let workspace_id = workspace(&st, &p)?;
    let raw: Value = parse_body(&headers, &body, true)?.expect("required body");
    let many = raw.is_array();
    let items: Vec<BotAccessCreate> = if many {
        from_value(raw)?
    } else {
        vec![from_value(raw)?]
    };
    for item in &items {
        st.bot(item.bot_id)?;
        if st.workspace_role(item.workspace_role_id).is_none() {
            return Err(ApiError::not_found("Workspace role not found."));
        }
    }
    let mut out = Vec::new();
    for item in items {
        let access = st.upsert_access(workspace_id, item.bot_id, item.workspace_role_id)?;
        out.push(serde_json::to_value(access_out(&st, &access)).expect("serializable"));
    }
    Ok(Json(if many {
        Value::Array(out)
    } else {
        out.pop().expect("one item")
    }))
}

/// OAS `WorkspaceActorAccessFilter`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessFilter {
    workspace_role_id: Option<AnyOf<Uuid>>,
    actor_id: Option<AnyOf<Uuid>>,
}

/// OAS `WorkspaceBotAccessSort`.
#[derive(Deserialize, Clone, Copy, Default)]
#[allow(clippy::enum_variant_names)]
enum AccessSort {
    #[serde(rename = "CREATED_ASC")]
    CreatedAsc,
    #[serde(rename = "CREATED_DESC")]
    CreatedDesc,
    #[default]
    #[serde(rename = "BOT_NAME_ASC")]
    BotNameAsc,
    #[serde(rename = "BOT_NAME_DESC")]
    BotNameDesc,
}

#[derive(Deserialize)]
struct ReadBotAccesses {
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
    workspace_accesses: Option<AccessFilter>,
    bots: Option<BotFilter>,
    sort: Option<AccessSort>,
}

async fn read_bot_accesses(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Vec<BotAccessOut>>> {
    let st = sh.state.lock().unwrap();
    let workspace_id = workspace(&st, &p)?;
    let req: Option<ReadBotAccesses> = parse_body(&headers, &body, false)?;
    let (page, accesses, bots, sort) = match req {
        Some(r) => (
            Page {
                limit: r.limit,
                offset: r.offset,
            },
            r.workspace_accesses,
            r.bots,
            r.sort.unwrap_or_default(),
        ),
        None => (Page::default(), None, None, AccessSort::default()),
    };
    page.check()?;
    let (roles, actors) = accesses.map_or((None, None), |f| (f.workspace_role_id, f.actor_id));
    let mut found: Vec<BotAccessOut> = st
        .accesses
        .iter()
        .filter(|a| a.workspace_id == workspace_id)
        .map(|a| access_out(&st, a))
        .filter(|a| AnyOf::admits(&roles, &a.workspace_role_id))
        .filter(|a| AnyOf::admits(&actors, &a.actor_id))
        .filter(|a| BotFilter::admits(&bots, a.bot_id, &a.bot_name))
        .collect();
    match sort {
        AccessSort::CreatedAsc => found.sort_by_key(|a| a.created),
        AccessSort::CreatedDesc => found.sort_by_key(|a| std::cmp::Reverse(a.created)),
        AccessSort::BotNameAsc => found.sort_by(|a, b| a.bot_name.cmp(&b.bot_name)),
        AccessSort::BotNameDesc => found.sort_by(|a, b| b.bot_name.cmp(&a.bot_name)),
    }
    Ok(Json(page.apply(found)))
}

fn access_index(st: &State, p: &HashMap<String, String>, workspace_id: Uuid) -> ApiResult<usize> {
    let id = id(p, "id")?;
    st.accesses
        .iter()
        .position(|a| a.id == id && a.workspace_id == workspace_id)
        .ok_or_else(|| ApiError::not_found("Workspace bot access not found."))
}

async fn read_bot_access(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
) -> ApiResult<Json<BotAccessOut>> {
    let st = sh.state.lock().unwrap();
    let workspace_id = workspace(&st, &p)?;
    let i = access_index(&st, &p, workspace_id)?;
    Ok(Json(access_out(&st, &st.accesses[i])))
}

async fn delete_bot_access(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
) -> ApiResult<StatusCode> {
    let mut st = sh.state.lock().unwrap();
    let workspace_id = workspace(&st, &p)?;
    let i = access_index(&st, &p, workspace_id)?;
    st.accesses.remove(i);
    Ok(StatusCode::NO_CONTENT)
}

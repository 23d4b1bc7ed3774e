//! Organizations: create (the operator's bootstrap), get, the whole-organization snapshot a
//! plan reads in one request, the batch of operations an apply stage writes in one request,
//! and the audit log.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{ensure_org, etagged, with_etag};
use crate::api::{ErrorCode, wire};
use crate::clock;
use crate::operation::Operation;
use crate::server::AppState;
use crate::server::auth::Caller;
use crate::server::error::ApiError;
use crate::server::extract::{Body, P, Preconditions, Q, digest};
use crate::server::validate;
use crate::server::write::{self, Reply, Write};
use crate::store::AuditFilter;

type Shared = State<Arc<AppState>>;

/// The largest audit page.
pub const MAX_AUDIT_LIMIT: u32 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganization {
    name: String,
}

pub async fn create(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    body: Body<CreateOrganization>,
) -> Result<Response, ApiError> {
    caller.operator()?;
    let name = body.value.name;
    validate::name("organization", &name)?;
    let actor = caller.author();
    let w = Write {
        org: None,
        by: actor.idempotency_scope.clone(),
        fingerprint: digest(format!("{}\n{}", pre.request, body.digest).as_bytes()),
        pre,
        lock_route: false,
    };
    write::run(&s, w, move |store| {
        if !store.create_organization(&name, &actor.name, clock::now())? {
            return Err(ApiError::conflict(
                ErrorCode::AlreadyExists,
                format!("organization {name} already exists"),
            ));
        }
        let revision = ensure_org(store, &name)?;
        Ok(Reply::json(
            StatusCode::CREATED,
            json!({"name": name, "revision": revision}),
        ))
    })
    .await
}

pub async fn get(
    State(s): Shared,
    caller: Caller,
    P(org): P<String>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let (org, revision) =
        s.db.read(move |store| {
            let revision = ensure_org(store, &org)?;
            Ok((org, revision))
        })
        .await?;
    Ok(etagged(
        revision,
        json!({"name": org, "revision": revision}),
    ))
}

pub async fn snapshot(
    State(s): Shared,
    caller: Caller,
    P(org): P<String>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let (revision, body) = s.snapshots.get(&s.db, &org).await?;
    Ok(with_etag(StatusCode::OK, revision, body))
}

pub async fn batch(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P(org): P<String>,
    body: Body<wire::Batch>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let ops: Vec<Operation> = body.value.operations.into_iter().map(Into::into).collect();
    for (i, op) in ops.iter().enumerate() {
        validate::operation(op).map_err(|mut e| {
            e.message = format!("operations[{i}]: {}", e.message);
            e
        })?;
    }
    let actor = caller.author();
    let w = Write::org(&org, &actor, pre, &body.digest);
    write::run(&s, w, move |store| {
        write::check_grants(store, &org, &actor, &ops)?;
        let results = store.apply(&org, &actor.name, &ops, clock::now())?;
        let results: Vec<Value> = results
            .into_iter()
            .map(|r| match r {
                Ok(()) => json!({"ok": true}),
                Err(e) => json!({"ok": false, "error": {
                    "code": ApiError::store_code(&e),
                    "message": e.to_string(),
                }}),
            })
            .collect();
        let revision = ensure_org(store, &org)?;
        Ok(Reply::json(
            StatusCode::OK,
            json!({"revision": revision, "results": results}),
        ))
    })
    .await
}

/// Audit-log filters, as query parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    limit: Option<String>,
    #[serde(default)]
    after: Option<String>,
}

fn time_param(name: &str, v: Option<&str>) -> Result<Option<OffsetDateTime>, ApiError> {
    v.map(|s| {
        OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
            ApiError::bad_request(
                ErrorCode::InvalidQuery,
                format!("{name} must be an RFC 3339 time such as 2026-01-01T00:00:00Z"),
            )
        })
    })
    .transpose()
}

fn int_param(name: &str, v: Option<&str>, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
    v.map(|s| {
        s.parse::<i64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    ErrorCode::InvalidQuery,
                    format!("{name} must be a whole number from {min} to {max}"),
                )
            })
    })
    .transpose()
}

pub async fn audit(
    State(s): Shared,
    caller: Caller,
    P(org): P<String>,
    Q(q): Q<AuditQuery>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let filter = AuditFilter {
        since: time_param("since", q.since.as_deref())?,
        until: time_param("until", q.until.as_deref())?,
        actor: q.actor,
        target: q.target,
        after: int_param("after", q.after.as_deref(), 0, i64::MAX)?,
        limit: int_param("limit", q.limit.as_deref(), 1, MAX_AUDIT_LIMIT as i64)?.unwrap_or(100)
            as u32,
    };
    let (revision, entries, next) =
        s.db.read(move |store| {
            let revision = ensure_org(store, &org)?;
            let (entries, next) = store.audit_page(&org, &filter)?;
            Ok((revision, entries, next))
        })
        .await?;
    Ok(etagged(revision, json!({"entries": entries, "next": next})))
}

//! The apply lock over HTTP: a lease with an owner and a time to live, renewed while an apply
//! runs and released at its end. A crashed apply's lease simply expires. While a lease is
//! live, writes without its id (header `Svcacct-Lease`) get 409 `locked`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::server::AppState;
use crate::server::auth::Caller;
use crate::server::error::ApiError;
use crate::server::extract::{Body, P, Preconditions, whole_number};
use crate::server::write::{self, Reply, Write, locked};
use crate::store::Acquired;

type Shared = State<Arc<AppState>>;

/// Longest lease, in seconds.
pub const MAX_TTL: u64 = 3600;
const DEFAULT_TTL: u64 = 30;
const MAX_OWNER: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acquire {
    owner: String,
    #[serde(default, deserialize_with = "whole_number")]
    ttl_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Renew {
    #[serde(default, deserialize_with = "whole_number")]
    ttl_seconds: Option<u64>,
}

fn ttl(v: Option<u64>) -> Result<u64, ApiError> {
    match v.unwrap_or(DEFAULT_TTL) {
        t @ 1..=MAX_TTL => Ok(t),
        _ => Err(ApiError::invalid(format!(
            "ttl_seconds must be from 1 to {MAX_TTL}"
        ))),
    }
}

/// A lease id as the server makes them (anything else cannot be a lease: 422).
fn lease_id_valid(id: &str) -> Result<(), ApiError> {
    if (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(())
    } else {
        Err(ApiError::invalid("not a lease id"))
    }
}

fn lease_json(lease: &crate::store::Lease) -> serde_json::Value {
    serde_json::to_value(lease).unwrap_or_default()
}

pub async fn acquire(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P(org): P<String>,
    body: Body<Acquire>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let owner = body.value.owner;
    if owner.is_empty() || owner.chars().count() > MAX_OWNER || owner.chars().any(char::is_control)
    {
        return Err(ApiError::invalid(format!(
            "owner must be 1 to {MAX_OWNER} printable characters naming who applies"
        )));
    }
    let ttl = ttl(body.value.ttl_seconds)?;
    let mut w = Write::org(&org, &caller.author(), pre, &body.digest);
    w.lock_route = true;
    let state = s.clone();
    write::run(&s, w, move |store| {
        match store.acquire_lease(&org, &owner, ttl, OffsetDateTime::now_utc())? {
            Acquired::Granted(lease) => Ok(Reply::json(StatusCode::CREATED, lease_json(&lease))),
            Acquired::Held(lease) => {
                state.metrics.lease_conflicts.inc();
                Err(locked(&lease.owner, lease.expires_at))
            }
        }
    })
    .await
}

pub async fn renew(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P((org, lease_id)): P<(String, String)>,
    body: Body<Renew>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    lease_id_valid(&lease_id)?;
    let ttl = ttl(body.value.ttl_seconds)?;
    let mut w = Write::org(&org, &caller.author(), pre, &body.digest);
    w.lock_route = true;
    write::run(&s, w, move |store| {
        store
            .renew_lease(&org, &lease_id, ttl, OffsetDateTime::now_utc())?
            .map(|lease| Reply::json(StatusCode::OK, lease_json(&lease)))
            .ok_or_else(|| ApiError::not_found("no such lease: it expired or was released"))
    })
    .await
}

pub async fn release(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P((org, lease_id)): P<(String, String)>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    lease_id_valid(&lease_id)?;
    let mut w = Write::org(&org, &caller.author(), pre, "");
    w.lock_route = true;
    let name = org.clone();
    let response = write::run(&s, w, move |store| {
        if store.release_lease(&org, &lease_id, OffsetDateTime::now_utc())? {
            Ok(Reply::empty(StatusCode::NO_CONTENT))
        } else {
            Err(ApiError::not_found(
                "no such lease: it expired or was released",
            ))
        }
    })
    .await?;
    // An apply just ended: have its organization's snapshot ready for the next plan.
    if response.status() == StatusCode::NO_CONTENT {
        let state = s.clone();
        tokio::spawn(async move { state.snapshots.build(&state.db, &name).await });
    }
    Ok(response)
}

//! The one path every write takes, under the writer's lock so that its checks and its change
//! are atomic: replay of a stored response (`Idempotency-Key`), then `If-Match` (412), then
//! the apply lease (409 `locked`), then the change, then storing its response for replay.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use time::OffsetDateTime;

use super::AppState;
use super::auth::Author;
use super::error::ApiError;
use super::extract::{IfMatch, Preconditions, digest};
use crate::api::ErrorCode;
use crate::clock;
use crate::operation::Operation;
use crate::store::{Store, StoredResponse};

/// What a write succeeded with.
pub struct Reply {
    pub status: StatusCode,
    pub body: Option<Value>,
}

impl Reply {
    pub fn json(status: StatusCode, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
        }
    }

    pub fn empty(status: StatusCode) -> Reply {
        Reply { status, body: None }
    }
}

/// Which checks a write gets.
pub struct Write {
    /// The organization written; `None` for creating one (no revision, no lease yet).
    pub org: Option<String>,
    pub pre: Preconditions,
    /// Whose idempotency records this write may replay: one caller's answer is never another's.
    pub by: String,
    /// Method, path and body digest: a replayed key must name the same request.
    pub fingerprint: String,
    /// The lock endpoints handle the lease themselves and take no `If-Match`.
    pub lock_route: bool,
}

impl Write {
    /// A write to an organization.
    pub fn org(org: &str, by: &Author, pre: Preconditions, body_digest: &str) -> Write {
        Write {
            org: Some(org.to_string()),
            by: by.idempotency_scope.clone(),
            fingerprint: digest(format!("{}\n{body_digest}", pre.request).as_bytes()),
            pre,
            lock_route: false,
        }
    }
}

enum Outcome {
    Done {
        status: StatusCode,
        body: String,
        revision: Option<u64>,
    },
    Replay(StoredResponse),
}

/// Refuses (403) operations that would give an account more than `author` holds.
pub fn check_grants(
    store: &Store,
    org: &str,
    author: &Author,
    ops: &[Operation],
) -> Result<(), ApiError> {
    match &author.grants {
        None => Ok(()),
        Some(grants) => super::privilege::check(store, org, grants, ops),
    }
}

/// Applies operations as one all-or-nothing change. `own` is the address of the object the
/// request names (a missing one is 404; a missing reference is 422).
pub fn apply(
    store: &mut Store,
    org: &str,
    author: &Author,
    ops: &[Operation],
    own: &str,
) -> Result<(), ApiError> {
    check_grants(store, org, author, ops)?;
    store
        .apply_all(org, &author.name, ops, clock::now())
        .map_err(|e| ApiError::from_store(e, own))
}

/// The message of a 409 `locked`.
pub fn locked(owner: &str, until: OffsetDateTime) -> ApiError {
    ApiError::conflict(
        ErrorCode::Locked,
        format!("locked by {owner} until {}", clock::rfc3339(until)),
    )
}

/// Runs a write through the checks; `f` makes the change with the writer.
pub async fn run<F>(state: &Arc<AppState>, w: Write, f: F) -> Result<Response, ApiError>
where
    F: FnOnce(&mut Store) -> Result<Reply, ApiError> + Send + 'static,
{
    let outcome = state
        .db
        .write(move |store| {
            let scope = w.org.clone().unwrap_or_default();
            // One transaction, exclusive for the organization in the database (not just in
            // this process): replicas run their checks and changes one at a time.
            store.exclusive(&scope, |store| checked(store, w, f))
        })
        .await?;
    Ok(answer(outcome))
}

/// The checks, the change and its stored response, inside [`run`]'s transaction.
fn checked<F>(store: &mut Store, w: Write, f: F) -> Result<Outcome, ApiError>
where
    F: FnOnce(&mut Store) -> Result<Reply, ApiError>,
{
    // Leases and stored responses live in real time, whatever SVCACCT_NOW says.
    let real_now = OffsetDateTime::now_utc();
    let scope = w.org.as_deref().unwrap_or("");
    // Keyed by caller too (idempotency keys are visible ASCII, so never hold a space):
    // a replay answers only the caller that made the first request.
    let record = w
        .pre
        .idempotency_key
        .as_ref()
        .map(|k| format!("{} {k}", w.by));
    if let Some(replayed) = check(store, &w, record.as_deref(), real_now)? {
        return Ok(replayed);
    }
    let (status, body) = match f(store) {
        Ok(reply) => (
            reply.status,
            reply.body.map(|b| b.to_string()).unwrap_or_default(),
        ),
        Err(e) if e.status.is_server_error() => return Err(e),
        Err(e) => (
            e.status,
            serde_json::json!({"error": {"code": e.code, "message": e.message}}).to_string(),
        ),
    };
    if let Some(key) = &record {
        store.store_response(
            scope,
            key,
            &StoredResponse {
                fingerprint: w.fingerprint.clone(),
                status: status.as_u16(),
                body: without_secret(&body),
            },
            real_now,
        )?;
    }
    let revision = match &w.org {
        Some(org) => store.revision(org)?,
        None => None,
    };
    Ok(Outcome::Done {
        status,
        body,
        revision,
    })
}

/// The checks before the change, in order: the organization exists, a stored response to
/// replay, `If-Match`, the lease. `Some` is the replay that answers instead of the change.
fn check(
    store: &Store,
    w: &Write,
    record: Option<&str>,
    real_now: OffsetDateTime,
) -> Result<Option<Outcome>, ApiError> {
    let scope = w.org.as_deref().unwrap_or("");
    let Some(org) = &w.org else {
        if let Some(key) = record
            && let Some(stored) = store.stored_response(scope, key, real_now)?
        {
            return replay(stored, &w.fingerprint).map(Some);
        }
        return Ok(None);
    };
    let revision = store
        .revision(org)?
        .ok_or_else(|| ApiError::not_found(format!("organization {org} does not exist")))?;
    if let Some(key) = record
        && let Some(stored) = store.stored_response(scope, key, real_now)?
    {
        return replay(stored, &w.fingerprint).map(Some);
    }
    if w.lock_route {
        return Ok(None);
    }
    if let Some(IfMatch::Revision(wanted)) = w.pre.if_match
        && wanted != revision
    {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            ErrorCode::PreconditionFailed,
            format!("organization {org} is at revision {revision}, not {wanted}; read it again"),
        ));
    }
    if let Some(lease) = store.active_lease(org, real_now)?
        && w.pre.lease.as_deref() != Some(lease.lease_id.as_str())
    {
        return Err(locked(&lease.owner, lease.expires_at));
    }
    Ok(None)
}

/// The HTTP answer: a change's with its organization's revision as the `ETag`, or a
/// replay's, marked as one.
fn answer(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Done {
            status,
            body,
            revision,
        } => {
            let mut response = respond(status, body);
            if let Some(r) = revision
                && let Ok(v) = HeaderValue::from_str(&format!("\"{r}\""))
            {
                response.headers_mut().insert(header::ETAG, v);
            }
            response
        }
        Outcome::Replay(stored) => {
            let status =
                StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = respond(status, stored.body);
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            response
        }
    }
}

/// A secret is shown exactly once: a stored response never keeps it, so a replay of a
/// server-minted key answers with the key's record only.
fn without_secret(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(mut map)) if map.contains_key("secret") => {
            map.remove("secret");
            Value::Object(map).to_string()
        }
        _ => body.to_string(),
    }
}

fn replay(stored: StoredResponse, fingerprint: &str) -> Result<Outcome, ApiError> {
    if stored.fingerprint == fingerprint {
        Ok(Outcome::Replay(stored))
    } else {
        // A state conflict (this key is taken), not a bad value: 409.
        Err(ApiError::conflict(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was used for a different request",
        ))
    }
}

fn respond(status: StatusCode, body: String) -> Response {
    if body.is_empty() {
        return status.into_response();
    }
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

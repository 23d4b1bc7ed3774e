//! What a calling service asks: is the server up, who am I, and who does this key belong to
//! and what may it do.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroizing;

use crate::clock;
use crate::model::Verification;
use crate::server::AppState;
use crate::server::auth::{Caller, Principal};
use crate::server::error::ApiError;
use crate::server::extract::Body;

pub async fn health() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Readiness, unlike [`health`]: the database answers a read, at the schema version this
/// server knows.
pub async fn ready(State(s): State<Arc<AppState>>) -> Response {
    use crate::store::StoreError;
    let message = match s.db.read(|store| Ok(store.schema_ready())).await {
        Ok(Ok(version)) => {
            return Json(json!({"status": "ready", "schema_version": version})).into_response();
        }
        Ok(Err(e @ (StoreError::SchemaTooNew { .. } | StoreError::SchemaOutdated { .. }))) => {
            e.to_string()
        }
        Ok(Err(e)) => {
            tracing::error!(error = %anyhow::Error::from(e), "readiness: the database failed");
            "the database does not answer".to_string()
        }
        Err(_) => "the database does not answer".to_string(),
    };
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        crate::api::ErrorCode::NotReady,
        message,
    )
    .into_response()
}

pub async fn whoami(caller: Caller) -> Response {
    match caller.principal {
        Principal::Operator => Json(json!({"operator": true})).into_response(),
        Principal::Key(v) => Json(*v).into_response(),
    }
}

/// The key to check. Never logged, never stored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    key: String,
}

pub async fn verify(
    State(s): State<Arc<AppState>>,
    _caller: Caller,
    body: Body<VerifyBody>,
) -> Result<Response, ApiError> {
    let key = Zeroizing::new(body.value.key);
    let v: Verification = s.db.verify(&key, clock::now()).await?;
    if v.valid
        && let Some(id) = &v.key_id
    {
        s.last_use.note(id, clock::now());
    }
    s.metrics
        .verifications
        .with_label_values(&[v.reason.as_deref().unwrap_or("valid")])
        .inc();
    Ok(Json(v).into_response())
}

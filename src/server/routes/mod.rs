//! The handlers, one file per area of the API.

pub mod identity;
pub mod keys;
pub mod lock;
pub mod organizations;
pub mod resources;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::ApiError;
use crate::store::Store;

/// The organization's revision; 404 when it does not exist.
pub fn ensure_org(store: &Store, org: &str) -> Result<u64, ApiError> {
    store
        .revision(org)?
        .ok_or_else(|| ApiError::not_found(format!("organization {org} does not exist")))
}

/// A 200 JSON answer tagged with the revision it was read at.
pub fn etagged(revision: u64, body: Value) -> Response {
    with_etag(StatusCode::OK, revision, body.to_string())
}

/// A JSON answer (already serialized) with an `ETag` of the revision.
pub fn with_etag(status: StatusCode, revision: u64, body: impl Into<axum::body::Body>) -> Response {
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.into(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{revision}\"")) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

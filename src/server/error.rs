//! API errors: every failure is `{"error": {"code", "message"}}` with the status that says
//! whose fault it is, so clients branch on `code` and people read `message`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api::ErrorCode;
use crate::store::StoreError;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// Seconds for a `Retry-After` header (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400: the body or a parameter is not what the endpoint takes.
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no credentials, or credentials that are not valid.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    /// 403: valid credentials that do not allow this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// 409 with a specific code.
    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 422: well-formed, but a value is not acceptable.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidValue,
            message,
        )
    }

    /// 500: our fault; the message never carries request data.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            message,
        )
    }

    /// The error a failed store write maps to. `own` is the address of the object the
    /// request names (404 when missing); a missing object it refers to (a team in a
    /// membership, say) is a conflict with the organization's state: 409 `unknown_reference`.
    pub fn from_store(e: StoreError, own: &str) -> Self {
        match e {
            StoreError::NotFound { target } if target == own => {
                Self::not_found(format!("{target} does not exist"))
            }
            StoreError::NotFound { target } => Self::conflict(
                ErrorCode::UnknownReference,
                format!("{target} does not exist"),
            ),
            other => Self::from(other),
        }
    }

    /// The `code` a store error has in a batch result and an error body.
    pub fn store_code(e: &StoreError) -> ErrorCode {
        match e {
            StoreError::Protected { .. } => ErrorCode::Protected,
            StoreError::NotFound { .. } => ErrorCode::NotFound,
            StoreError::Conflict { .. } | StoreError::Duplicate(_) => ErrorCode::Conflict,
            StoreError::Locked { .. } => ErrorCode::Locked,
            StoreError::Sqlite(_)
            | StoreError::Postgres(_)
            | StoreError::Io { .. }
            | StoreError::Corrupt { .. }
            | StoreError::ReadOnly
            | StoreError::SchemaTooNew { .. }
            | StoreError::SchemaOutdated { .. } => ErrorCode::Storage,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let code = ApiError::store_code(&e);
        match e {
            StoreError::NotFound { .. } => Self::not_found(e.to_string()),
            StoreError::Protected { .. }
            | StoreError::Conflict { .. }
            | StoreError::Duplicate(_)
            | StoreError::Locked { .. } => Self::conflict(code, e.to_string()),
            StoreError::Sqlite(_)
            | StoreError::Postgres(_)
            | StoreError::Io { .. }
            | StoreError::Corrupt { .. }
            | StoreError::ReadOnly
            | StoreError::SchemaTooNew { .. }
            | StoreError::SchemaOutdated { .. } => {
                // The cause goes to the operator's log, never to the caller.
                tracing::error!(error = %anyhow::Error::from(e), "storage failure");
                Self::internal("the server could not read or write its database")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

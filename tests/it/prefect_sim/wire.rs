//! FastAPI's error shapes and pydantic-style body validation. A client written against the
//! simulator must cope with exactly what Cloud sends back, so every refusal goes through
//! here: `{"detail": "..."}` for HTTP errors, `{"detail": [{type, loc, msg}]}` for 422.

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// An error answer: a status and FastAPI's `detail`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: &str) -> ApiError {
        ApiError {
            status,
            detail: Value::String(detail.to_owned()),
        }
    }

    pub fn not_found(detail: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn conflict(detail: &str) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, detail)
    }

    /// A 422 with one pydantic issue.
    pub fn invalid(kind: &str, loc: Vec<Value>, msg: &str) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: json!([{ "type": kind, "loc": loc, "msg": msg }]),
        }
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Invalid authentication credentials",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "detail": self.detail }))).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// `loc` for a body field: `["body", field]`.
pub fn body_loc(field: &str) -> Vec<Value> {
    vec![json!("body"), json!(field)]
}

/// A path parameter that must be a UUID, as FastAPI's `uuid` path params are.
pub fn path_uuid(name: &str, raw: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(raw).map_err(|e| {
        ApiError::invalid(
            "uuid_parsing",
            vec![json!("path"), json!(name)],
            &format!("Input should be a valid UUID, {e}"),
        )
    })
}

/// Parses a JSON body into `T` the way FastAPI would: `None` for an empty body when the body
/// is optional, 422 `missing` when it is required, 422 `json_invalid` for bad JSON, and a
/// pydantic-like issue (type, loc, msg) for the first field serde refuses.
pub fn parse_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    bytes: &[u8],
    required: bool,
) -> ApiResult<Option<T>> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let mime = ct.split(';').next().unwrap_or("").trim();
        let json = mime == "application/json" || mime.ends_with("+json");
        if !json && !bytes.is_empty() {
            return Err(ApiError::invalid(
                "model_attributes_type",
                vec![json!("body")],
                "Input should be a valid dictionary or object to extract fields from",
            ));
        }
    }
    if bytes.is_empty() {
        return if required {
            Err(ApiError::invalid(
                "missing",
                vec![json!("body")],
                "Field required",
            ))
        } else {
            Ok(None)
        };
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::invalid(
            "json_invalid",
            vec![json!("body"), json!(e.column())],
            "JSON decode error",
        )
    })?;
    if value.is_null() && !required {
        return Ok(None);
    }
    from_value(value).map(Some)
}

/// Deserializes an already parsed body, reporting serde's complaint as pydantic would.
pub fn from_value<T: DeserializeOwned>(value: Value) -> ApiResult<T> {
    serde_path_to_error::deserialize::<_, T>(value)
        .map_err(|e| issue(e.path(), &e.inner().to_string()))
}

/// Turns serde's first complaint into the pydantic issue FastAPI would report for it.
fn issue(path: &serde_path_to_error::Path, message: &str) -> ApiError {
    use serde_path_to_error::Segment;
    let mut loc = vec![json!("body")];
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => loc.push(json!(index)),
            Segment::Map { key } => loc.push(json!(key)),
            Segment::Enum { variant } => loc.push(json!(variant)),
            Segment::Unknown => {}
        }
    }
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    // serde_path_to_error's path ends at the unknown key, but before a missing one.
    let mut ending_with = |field: String| {
        if loc.last() != Some(&json!(field)) {
            loc.push(json!(field));
        }
        loc.clone()
    };
    if let Some(field) = named("missing field `") {
        return ApiError::invalid("missing", ending_with(field), "Field required");
    }
    if let Some(field) = named("unknown field `") {
        return ApiError::invalid(
            "extra_forbidden",
            ending_with(field),
            "Extra inputs are not permitted",
        );
    }
    let (kind, msg) = if message.contains("UUID") || message.contains("uuid") {
        ("uuid_parsing", "Input should be a valid UUID")
    } else if message.contains("unknown variant") {
        ("enum", "Input should be a valid enumeration member")
    } else if message.contains("expected a string") {
        ("string_type", "Input should be a valid string")
    } else if message.contains("expected i64") || message.contains("expected u") {
        ("int_type", "Input should be a valid integer")
    } else if message.contains("expected a boolean") {
        ("bool_type", "Input should be a valid boolean")
    } else if message.contains("expected a sequence") {
        ("list_type", "Input should be a valid list")
    } else if message.contains("expected struct") || message.contains("expected a map") {
        ("model_type", "Input should be a valid dictionary or object")
    } else {
        ("value_error", message)
    };
    ApiError::invalid(kind, loc, msg)
}

/// Pydantic's `ge`/`le` checks on an integer field.
pub fn check_range(field: &str, value: i64, min: i64, max: Option<i64>) -> ApiResult<()> {
    if value < min {
        return Err(ApiError::invalid(
            "greater_than_equal",
            body_loc(field),
            &format!("Input should be greater than or equal to {min}"),
        ));
    }
    if let Some(max) = max.filter(|max| value > *max) {
        return Err(ApiError::invalid(
            "less_than_equal",
            body_loc(field),
            &format!("Input should be less than or equal to {max}"),
        ));
    }
    Ok(())
}

/// Pydantic's `max_length` on a string field.
pub fn check_length(field: &str, value: &str, max: usize) -> ApiResult<()> {
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            "string_too_long",
            body_loc(field),
            &format!("String should have at most {max} characters"),
        ));
    }
    Ok(())
}

/// A pydantic `datetime` field; RFC 3339 only (pydantic also takes naive datetimes and unix
/// numbers, which a client of Cloud has no reason to send).
pub fn parse_datetime(field: &str, raw: &str) -> ApiResult<time::OffsetDateTime> {
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339).map_err(|_| {
        ApiError::invalid(
            "datetime_from_date_parsing",
            body_loc(field),
            "Input should be a valid datetime or date, invalid character in year",
        )
    })
}

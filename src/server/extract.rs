//! Request extractors that answer bad input with our JSON errors instead of axum's plain-text
//! rejections: the body (415, 413, 400, 422), path and query parameters, and the write
//! preconditions carried in headers.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::api::ErrorCode;

/// Largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;
/// Longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// A JSON body, with a digest of its bytes (for idempotency fingerprints).
pub struct Body<T> {
    pub value: T,
    pub digest: String,
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The digest of a request body, hex.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Parses a JSON body, mapping serde's errors to 400 (shape) or 422 (value).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body is an object; serde would also fill a struct from an array, positionally.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            "the body must be a JSON object",
        ));
    }
    // A NUL is escaped in JSON; only a body with the escape can hold one (then parsed twice).
    if bytes.windows(6).any(|w| w == br"\u0000")
        && serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|v| holds_nul(&v))
    {
        return Err(ApiError::invalid(
            "text may not hold a NUL character (\\u0000)",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        let message = e.to_string();
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => ApiError::bad_request(
                ErrorCode::MalformedJson,
                format!("malformed JSON: {message}"),
            ),
            // A duration that does not parse is a bad value; any other data error is shape.
            Category::Data if message.starts_with(crate::duration::INVALID) => {
                ApiError::invalid(message)
            }
            Category::Data => ApiError::bad_request(ErrorCode::InvalidBody, message),
        }
    })
}

/// Whether any string (or object key) of a JSON value holds a NUL, which no stored text may:
/// PostgreSQL refuses it, so refusing it first gives both engines one answer.
fn holds_nul(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        Ok(Body {
            value: parse_json(&bytes)?,
            digest: digest(&bytes),
        })
    }
}

/// A body that may be absent: no body (or an empty one) is `None`; otherwise it must be JSON.
pub struct OptionalBody<T> {
    pub value: Option<T>,
    pub digest: String,
}

impl<S, T> FromRequest<S> for OptionalBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = is_json(req.headers());
        let has_type = req.headers().contains_key(header::CONTENT_TYPE);
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalBody {
                value: None,
                digest: digest(&bytes),
            });
        }
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                if has_type {
                    "send the body as JSON with `Content-Type: application/json`"
                } else {
                    "a body needs `Content-Type: application/json`"
                },
            ));
        }
        Ok(OptionalBody {
            value: Some(parse_json(&bytes)?),
            digest: digest(&bytes),
        })
    }
}

fn body_rejection(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BodyTooLarge,
            format!("the request body is larger than {MAX_BODY} bytes"),
        )
    } else {
        ApiError::bad_request(
            ErrorCode::UnreadableBody,
            "the request body could not be read",
        )
    }
}

/// Path parameters.
pub struct P<T>(pub T);

impl<S, T> FromRequestParts<S> for P<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| P(t))
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidPath, e.body_text()))
    }
}

/// Query parameters.
pub struct Q<T>(pub T);

impl<S, T> FromRequestParts<S> for Q<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(t)| Q(t))
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidQuery, e.body_text()))
    }
}

/// What `If-Match` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any existing revision.
    Any,
    Revision(u64),
}

/// Headers that govern a write: optimistic concurrency, idempotency and the apply lease.
#[derive(Debug, Clone, Default)]
pub struct Preconditions {
    pub if_match: Option<IfMatch>,
    pub idempotency_key: Option<String>,
    pub lease: Option<String>,
    /// Method and path, for idempotency fingerprints.
    pub request: String,
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.trim())).map_err(|_| {
            ApiError::bad_request(ErrorCode::InvalidHeader, format!("{name} is not text"))
        }),
    }
}

/// Parses an `If-Match` value: a revision, quoted or not (`W/` weak tags too), or `*`.
pub fn parse_if_match(value: &str) -> Option<IfMatch> {
    let v = value.trim();
    if v == "*" {
        return Some(IfMatch::Any);
    }
    let v = v.strip_prefix("W/").unwrap_or(v);
    let v = v
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v);
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().map(IfMatch::Revision)
}

impl<S: Send + Sync> FromRequestParts<S> for Preconditions {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let h = &parts.headers;
        let if_match = match header_text(h, "if-match")? {
            None => None,
            Some(v) => Some(parse_if_match(v).ok_or_else(|| {
                ApiError::bad_request(
                    ErrorCode::InvalidHeader,
                    "If-Match must be an organization revision such as \"42\", or *",
                )
            })?),
        };
        let idempotency_key = match header_text(h, "idempotency-key")? {
            None => None,
            Some(k)
                if !k.is_empty()
                    && k.len() <= MAX_IDEMPOTENCY_KEY
                    && k.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Some(k.to_string())
            }
            Some(_) => {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidHeader,
                    format!(
                        "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
                    ),
                ));
            }
        };
        let lease = match header_text(h, "svcacct-lease")? {
            None => None,
            Some(l)
                if !l.is_empty() && l.len() <= 128 && l.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Some(l.to_string())
            }
            Some(_) => {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidHeader,
                    "Svcacct-Lease must be a lease id",
                ));
            }
        };
        Ok(Preconditions {
            if_match,
            idempotency_key,
            lease,
            request: format!("{} {}", parts.method, parts.uri.path()),
        })
    }
}

/// Deserializes an optional whole number that JSON may write as `30` or `30.0`.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::Deserialize;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(u) = n.as_u64() {
        return Ok(Some(u));
    }
    match n.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => Ok(Some(f as u64)),
        _ => Err(serde::de::Error::custom(format!(
            "invalid value: {n}, expected a whole number of seconds"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_takes_quoted_and_bare_revisions() {
        assert_eq!(parse_if_match("\"7\""), Some(IfMatch::Revision(7)));
        assert_eq!(parse_if_match("7"), Some(IfMatch::Revision(7)));
        assert_eq!(parse_if_match("W/\"7\""), Some(IfMatch::Revision(7)));
        assert_eq!(parse_if_match("*"), Some(IfMatch::Any));
        assert_eq!(parse_if_match("\"x\""), None);
        assert_eq!(parse_if_match(""), None);
        assert_eq!(parse_if_match("99999999999999999999999"), None);
    }
}

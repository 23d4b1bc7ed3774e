//! Layers around every route: request logs (who, what, how it went, how long — never a key,
//! a hash or an Authorization header), JSON bodies for the errors axum produces itself (404,
//! 405).

use std::pin::Pin;
use std::time::{Duration, Instant};

use axum::body::HttpBody;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::PrincipalSlot;
use super::error::ApiError;
use crate::api::ErrorCode;

/// Longest request target (path and query) served; every route's fits in far less.
pub const MAX_URI: usize = 8 * 1024;

/// Largest refused body still read (and thrown away) before the 413 is sent; see
/// [`refuse_oversized`].
const MAX_DRAINED: u64 = 16 << 20;

/// How long a refused body may take to arrive before the connection is closed on it.
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Refuses, before handling, a request whose `Content-Length` is over the body limit (413) or
/// whose target is over [`MAX_URI`] (414).
///
/// A client that is still sending its body when the server answers and closes the connection
/// gets a broken pipe or a reset instead of the 413 (HTTP clients write the whole body before
/// they read the answer). So a refused body of up to [`MAX_DRAINED`] bytes is read and thrown
/// away, for at most [`DRAIN_TIME`], before the answer, as web servers' "lingering close"
/// does; a larger or slower one, or one the client holds back until it hears
/// `100 Continue`, is not waited for.
pub async fn refuse_oversized(req: Request, next: Next) -> Response {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            ErrorCode::UriTooLong,
            format!("the request target is longer than {MAX_URI} bytes"),
        )
        .into_response();
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(declared) = declared.filter(|&n| n > super::extract::MAX_BODY as u64) {
        let waits_for_continue = req
            .headers()
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if declared <= MAX_DRAINED && !waits_for_continue {
            let mut body = req.into_body();
            let drain = async {
                while let Some(Ok(_)) =
                    std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
                {
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        }
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BodyTooLarge,
            format!(
                "the request body is larger than {} bytes",
                super::extract::MAX_BODY
            ),
        )
        .into_response();
    }
    next.run(req).await
}

/// Refuses (400) a request target with an encoded NUL (`%00`) in its path, or in the query of
/// an organization's routes (the audit filters). No name holds one, and PostgreSQL cannot
/// even compare text with one, so it would fail there where SQLite finds nothing: refused
/// here, it is the same answer on both engines.
pub async fn refuse_nul(req: Request, next: Next) -> Response {
    let uri = req.uri();
    let in_query = uri.path().starts_with("/v1/organizations/")
        && uri.query().is_some_and(|q| q.contains("%00"));
    if uri.path().contains("%00") || in_query {
        return ApiError::bad_request(
            ErrorCode::BadRequest,
            "the request target holds a NUL character (%00)",
        )
        .into_response();
    }
    next.run(req).await
}

/// Unknown paths.
pub async fn not_found(req: Request) -> Response {
    ApiError::not_found(format!("no such endpoint: {}", safe_path(req.uri().path())))
        .into_response()
}

/// Gives every error axum answers by itself (405 with its `Allow` header, 404, …) our JSON
/// error body.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !status.is_client_error() && !status.is_server_error() || is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            ErrorCode::MethodNotAllowed,
            format!("{method} is not allowed here"),
        ),
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, "no such endpoint".to_string()),
        StatusCode::PAYLOAD_TOO_LARGE => (
            ErrorCode::BodyTooLarge,
            "the request body is too large".into(),
        ),
        StatusCode::URI_TOO_LONG => (
            ErrorCode::UriTooLong,
            "the request target is too long".into(),
        ),
        s if s.is_server_error() => (
            ErrorCode::Internal,
            "the request failed inside the server".into(),
        ),
        _ => (ErrorCode::BadRequest, "the request is not valid".into()),
    };
    let (mut parts, _) = response.into_parts();
    let fresh = ApiError::new(status, code, message).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in fresh.headers() {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, fresh.into_body())
}

/// A path fit for a log line: a segment shaped like a key is blanked out.
fn safe_path(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.contains(crate::secrets::SECRET_PREFIX) || seg.len() > 100 {
                "[redacted]"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// One structured line per request: method, path (no query), status, latency, principal.
pub async fn log_requests(mut req: Request, next: Next) -> Response {
    let slot = PrincipalSlot::default();
    req.extensions_mut().insert(slot.clone());
    let method = req.method().clone();
    let path = safe_path(req.uri().path());
    let start = Instant::now();
    let mut response = next.run(req).await;
    let status = response.status().as_u16();
    let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        method = %method,
        path = %path,
        status,
        latency_ms = format_args!("{latency_ms:.2}"),
        principal = slot.get(),
        "request"
    );
    if !response.headers().contains_key(header::CACHE_CONTROL) {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

//! One request to the server: retried with exponential backoff and full jitter on connection
//! errors, 429 and 5xx (honouring `Retry-After`) when it is safe to repeat, and the server's
//! error body turned into a `BackendError` the plan and apply understand. The lease renewer
//! sends from its own thread, so the retries take what they need as arguments.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::HttpBackend;
use crate::api::ErrorCode;
use crate::backend::BackendError;

const MAX_ATTEMPTS: u32 = 6;

/// The body of every error the server answers.
#[derive(Deserialize)]
pub(super) struct ErrorBody {
    pub(super) error: ErrorDetail,
}

/// What went wrong, by code (shared with the server) and in words.
#[derive(Deserialize)]
pub(super) struct ErrorDetail {
    code: ErrorCode,
    pub(super) message: String,
}

/// An answer that does not decode as the API documents it.
pub(super) fn protocol(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> BackendError {
    BackendError::Protocol {
        what: what.to_string(),
        source: Some(Arc::new(e)),
    }
}

/// A server error as a backend error the plan and apply understand.
pub(super) fn to_error(target: &str, e: ErrorDetail) -> BackendError {
    match e.code {
        ErrorCode::Protected => BackendError::Protected {
            target: target.to_string(),
        },
        ErrorCode::NotFound => BackendError::NotFound {
            target: target.to_string(),
        },
        ErrorCode::Conflict | ErrorCode::Locked | ErrorCode::PreconditionFailed => {
            BackendError::Conflict {
                target: target.to_string(),
                message: e.message,
            }
        }
        code => BackendError::Server {
            target: target.to_string(),
            code: code.to_string(),
            message: e.message,
        },
    }
}

impl HttpBackend {
    /// Decodes an error response.
    pub(super) fn error_of(resp: Response, target: &str) -> BackendError {
        let status = resp.status();
        match resp.json::<ErrorBody>() {
            Ok(b) => to_error(target, b.error),
            Err(_) => BackendError::Server {
                target: target.to_string(),
                code: ErrorCode::Unknown.to_string(),
                message: format!("server answered {status} without an error body"),
            },
        }
    }
}

/// A fresh random `Idempotency-Key`.
pub(super) fn idempotency_key() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}

/// The delay before retry `attempt` (1-based): full jitter over an exponential ceiling, or
/// what the server asked for.
fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(d) = retry_after {
        return d.min(Duration::from_secs(30));
    }
    let ceiling = Duration::from_millis(100)
        .saturating_mul(1 << attempt.min(6))
        .min(Duration::from_secs(5));
    ceiling.mul_f64(rand::rng().random_range(0.0..=1.0))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn send_with_retries(
    client: &Client,
    counter: &AtomicU64,
    token: &str,
    base: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
    extra: &[(&str, String)],
) -> Result<Response, BackendError> {
    // Only requests that are safe to repeat are retried: GET, PUT and DELETE are idempotent,
    // and we send POSTs with an Idempotency-Key.
    let retryable = method != Method::POST || extra.iter().any(|(h, _)| *h == "Idempotency-Key");
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut req: RequestBuilder = client
            .request(method.clone(), format!("{base}{path}"))
            .bearer_auth(token);
        for (h, v) in extra {
            req = req.header(*h, v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        counter.fetch_add(1, Ordering::Relaxed);
        let (retry, retry_after, outcome) = match req.send() {
            Ok(resp) => {
                let s = resp.status();
                let again = s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error();
                let after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                (again, after, Ok(resp))
            }
            Err(e) => (
                true,
                None,
                Err(BackendError::Unreachable {
                    url: base.to_string(),
                    source: Arc::new(e),
                }),
            ),
        };
        if !retry || !retryable || attempt >= MAX_ATTEMPTS {
            return match outcome {
                Ok(resp) if resp.status().is_server_error() => Err(BackendError::Server {
                    target: format!("{method} {path}"),
                    code: "server_error".into(),
                    message: format!("server answered {} after {attempt} attempts", resp.status()),
                }),
                other => other,
            };
        }
        std::thread::sleep(backoff(attempt, retry_after));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(json: &str) -> ErrorDetail {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn server_codes_map_to_backend_errors() {
        let locked = to_error("batch", detail(r#"{"code":"locked","message":"by ci"}"#));
        assert!(matches!(locked, BackendError::Conflict { message, .. } if message == "by ci"));
        let gone = to_error("role.x", detail(r#"{"code":"not_found","message":"m"}"#));
        assert!(matches!(gone, BackendError::NotFound { target } if target == "role.x"));
        // A newer server's code is a server error, not a decoding failure.
        let new = to_error("t", detail(r#"{"code":"quota_exceeded","message":"m"}"#));
        assert!(matches!(new, BackendError::Server { code, .. } if code == "unknown"));
    }
}

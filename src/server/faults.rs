//! The test-only fault injection that proves clients converge: `svcacct serve
//! --inject-faults RATE`. Compiled only with the `test-hooks` feature (which `scripts/test`
//! turns on), so a release server has neither the flag nor the layer.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;

use super::error::ApiError;
use crate::api::ErrorCode;

/// With `--inject-faults RATE`, that share of organization requests fails at random: a 500,
/// a 429 with `Retry-After: 0`, or (for a POST) the request runs and its answer is lost.
pub async fn inject_faults(State(rate): State<f64>, req: Request, next: Next) -> Response {
    if rate <= 0.0 || !req.uri().path().starts_with("/v1/organizations/") {
        return next.run(req).await;
    }
    let (hit, kind) = {
        let mut rng = rand::rng();
        (
            rng.random_bool(rate.min(1.0)),
            rng.random_range(0..if req.method() == Method::POST { 3 } else { 2 }),
        )
    };
    if !hit {
        return next.run(req).await;
    }
    match kind {
        0 => ApiError::internal("injected fault: the server failed").into_response(),
        1 => {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                "injected fault: slow down",
            );
            e.retry_after = Some(0);
            e.into_response()
        }
        _ => {
            let done = next.run(req).await;
            tracing::info!(
                status = done.status().as_u16(),
                "injected fault: dropping the answer"
            );
            ApiError::internal("injected fault: the answer was lost").into_response()
        }
    }
}

//! `GET /metrics`: what the server did, in Prometheus's text format. Routes are labelled by
//! their template (`/v1/organizations/{org}`), never by the path a caller sent, so no
//! organization or account name reaches the metrics and their number stays bounded.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

use super::AppState;

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    /// Verifications by result: `valid`, or the reason a key was refused.
    pub verifications: IntCounterVec,
    /// Lease requests refused because another apply held the organization.
    pub lease_conflicts: IntCounter,
    /// Snapshot requests by `hit` (served from the per-revision cache) or `miss` (built).
    pub snapshot_cache: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "svcacct_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["method", "route", "status"],
        )
        .expect("a valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "svcacct_http_request_duration_seconds",
                "How long requests took to answer, by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
            &["method", "route"],
        )
        .expect("a valid metric");
        let verifications = IntCounterVec::new(
            Opts::new(
                "svcacct_key_verifications_total",
                "Key verifications by result: valid, or why the key was refused",
            ),
            &["result"],
        )
        .expect("a valid metric");
        let lease_conflicts = IntCounter::new(
            "svcacct_lease_conflicts_total",
            "Apply lease requests refused because another apply held the organization",
        )
        .expect("a valid metric");
        let snapshot_cache = IntCounterVec::new(
            Opts::new(
                "svcacct_snapshot_cache_total",
                "Organization snapshots served from the per-revision cache (hit) or built (miss)",
            ),
            &["result"],
        )
        .expect("a valid metric");
        for m in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(verifications.clone()),
            Box::new(lease_conflicts.clone()),
            Box::new(snapshot_cache.clone()),
        ] {
            registry.register(m).expect("each metric registered once");
        }
        Metrics {
            registry,
            requests,
            latency,
            verifications,
            lease_conflicts,
            snapshot_cache,
        }
    }
}

impl Metrics {
    /// Adds a metric kept elsewhere (the verify index's).
    pub fn register(&self, c: Box<dyn prometheus::core::Collector>) {
        self.registry
            .register(c)
            .expect("each metric registered once");
    }
}

/// Counts and times every request.
pub async fn track(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let response = next.run(req).await;
    let m = &s.metrics;
    m.requests
        .with_label_values(&[&method, &route, response.status().as_str()])
        .inc();
    m.latency
        .with_label_values(&[&method, &route])
        .observe(started.elapsed().as_secs_f64());
    response
}

pub async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    let mut body = Vec::new();
    if TextEncoder::new()
        .encode(&s.metrics.registry.gather(), &mut body)
        .is_err()
    {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

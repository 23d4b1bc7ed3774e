//! The reference server, `svcacct serve`: a small service-account and API-key server over the
//! same SQLite store as the `local` backend, so that keys svcacct issues authenticate
//! something real, and organizations can be planned and applied over HTTP.
//!
//! [`routes`] is the one list of what the server serves: the router registers it and a test
//! holds `schemas/openapi.yaml` to it.

pub mod auth;
mod change_listener;
mod db;
pub mod error;
mod extract;
#[cfg(feature = "test-hooks")]
mod faults;
mod hyper_errors;
mod last_use;
mod metrics;
mod middleware;
mod privilege;
mod routes;
mod snapshots;
mod validate;
mod verify_index;
mod write;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};
use ipnet::IpNet;
use tokio::net::TcpListener;
use zeroize::Zeroizing;

use self::auth::{AdminToken, FailureLimiter};
use self::db::Db;
use self::routes::resources::{AccountBody, RoleBody, TeamBody};
use self::routes::{identity, keys, lock, organizations as orgs, resources as res};

/// What the server needs to start.
pub struct Settings {
    /// The store (a SQLite file is created if missing).
    pub db: crate::store::Database,
    pub listen: SocketAddr,
    /// The operator token; only its hash is kept once the server runs.
    pub admin_token: Zeroizing<String>,
    /// The share (0.0–1.0) of organization requests answered with an injected fault.
    #[cfg(feature = "test-hooks")]
    pub fault_rate: f64,
    /// Failed authentications one address may make in 10 seconds before getting 429s.
    pub max_auth_failures: usize,
    /// Proxies whose `X-Forwarded-For` names the client; nobody else's is believed.
    pub trusted_proxies: Vec<IpNet>,
    pub limits: ConnectionLimits,
}

/// What one client connection may hold.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// How long a client has to send a request's headers, counted from when the server starts
    /// waiting for them (a new connection, or the end of the previous request).
    pub header_read_timeout: Duration,
    /// How long a read or write of a connection may wait without any progress (a stalled
    /// body upload, a client that does not read its answer).
    pub idle_timeout: Duration,
    /// Connections served at once; beyond it new ones wait to be accepted.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// Shared by every request.
pub struct AppState {
    db: Db,
    admin: AdminToken,
    limiter: FailureLimiter,
    trusted_proxies: Vec<IpNet>,
    snapshots: snapshots::Snapshots,
    last_use: last_use::LastUse,
    metrics: metrics::Metrics,
    #[cfg(feature = "test-hooks")]
    fault_rate: f64,
}

/// One route the server serves: method and path as the OpenAPI document writes them, and the
/// handler registered for them.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    handler: MethodRouter<Arc<AppState>>,
}

fn route<H, T>(method: Method, path: &'static str, handler: H) -> Route
where
    H: Handler<T, Arc<AppState>>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a method axum can route");
    Route {
        method,
        path,
        handler: on(filter, handler),
    }
}

/// Every route the server serves: the router registers exactly these, and a test holds
/// `schemas/openapi.yaml` to them.
pub fn routes() -> Vec<Route> {
    let mut all = vec![
        route(Method::GET, "/v1/health", identity::health),
        route(Method::GET, "/v1/ready", identity::ready),
        route(Method::GET, "/metrics", metrics::metrics),
        route(Method::GET, "/v1/whoami", identity::whoami),
        route(Method::POST, "/v1/keys/verify", identity::verify),
        route(Method::POST, "/v1/organizations", orgs::create),
        route(Method::GET, "/v1/organizations/{org}", orgs::get),
        route(
            Method::GET,
            "/v1/organizations/{org}/snapshot",
            orgs::snapshot,
        ),
        route(Method::POST, "/v1/organizations/{org}/batch", orgs::batch),
        route(Method::GET, "/v1/organizations/{org}/audit", orgs::audit),
        route(Method::POST, "/v1/organizations/{org}/lock", lock::acquire),
        route(
            Method::PUT,
            "/v1/organizations/{org}/lock/{lease_id}",
            lock::renew,
        ),
        route(
            Method::DELETE,
            "/v1/organizations/{org}/lock/{lease_id}",
            lock::release,
        ),
    ];
    all.extend(role_and_team_routes());
    all.extend(account_routes());
    all.extend(key_routes());
    all
}

/// Roles and teams, one object at a time.
fn role_and_team_routes() -> Vec<Route> {
    vec![
        route(
            Method::GET,
            "/v1/organizations/{org}/roles",
            res::list::<RoleBody>,
        ),
        route(
            Method::POST,
            "/v1/organizations/{org}/roles",
            res::create::<RoleBody>,
        ),
        route(
            Method::GET,
            "/v1/organizations/{org}/roles/{role}",
            res::get::<RoleBody>,
        ),
        route(
            Method::PUT,
            "/v1/organizations/{org}/roles/{role}",
            res::put::<RoleBody>,
        ),
        route(
            Method::DELETE,
            "/v1/organizations/{org}/roles/{role}",
            res::delete::<RoleBody>,
        ),
        route(
            Method::GET,
            "/v1/organizations/{org}/teams",
            res::list::<TeamBody>,
        ),
        route(
            Method::POST,
            "/v1/organizations/{org}/teams",
            res::create::<TeamBody>,
        ),
        route(
            Method::GET,
            "/v1/organizations/{org}/teams/{team}",
            res::get::<TeamBody>,
        ),
        route(
            Method::PUT,
            "/v1/organizations/{org}/teams/{team}",
            res::put::<TeamBody>,
        ),
        route(
            Method::DELETE,
            "/v1/organizations/{org}/teams/{team}",
            res::delete::<TeamBody>,
        ),
    ]
}

/// Service accounts, their memberships, disabling and enabling.
fn account_routes() -> Vec<Route> {
    vec![
        route(
            Method::GET,
            "/v1/organizations/{org}/service_accounts",
            res::list::<AccountBody>,
        ),
        route(
            Method::POST,
            "/v1/organizations/{org}/service_accounts",
            res::create::<AccountBody>,
        ),
        route(
            Method::GET,
            "/v1/organizations/{org}/service_accounts/{account}",
            res::get::<AccountBody>,
        ),
        route(
            Method::PUT,
            "/v1/organizations/{org}/service_accounts/{account}",
            res::put::<AccountBody>,
        ),
        route(
            Method::DELETE,
            "/v1/organizations/{org}/service_accounts/{account}",
            res::delete::<AccountBody>,
        ),
        route(
            Method::PUT,
            "/v1/organizations/{org}/service_accounts/{account}/memberships",
            res::put_memberships,
        ),
        route(
            Method::POST,
            "/v1/organizations/{org}/service_accounts/{account}/disable",
            res::disable_account,
        ),
        route(
            Method::POST,
            "/v1/organizations/{org}/service_accounts/{account}/enable",
            res::enable_account,
        ),
    ]
}

/// An account's API keys.
fn key_routes() -> Vec<Route> {
    vec![
        route(
            Method::GET,
            "/v1/organizations/{org}/service_accounts/{account}/keys",
            keys::list_keys,
        ),
        route(
            Method::POST,
            "/v1/organizations/{org}/service_accounts/{account}/keys",
            keys::create_key,
        ),
        route(
            Method::GET,
            "/v1/organizations/{org}/service_accounts/{account}/keys/{key}",
            keys::get_key,
        ),
        route(
            Method::PATCH,
            "/v1/organizations/{org}/service_accounts/{account}/keys/{key}",
            keys::patch_key,
        ),
        route(
            Method::DELETE,
            "/v1/organizations/{org}/service_accounts/{account}/keys/{key}",
            keys::revoke_key,
        ),
        route(
            Method::POST,
            "/v1/organizations/{org}/service_accounts/{account}/keys/{key}/rotate",
            keys::rotate_key,
        ),
    ]
}

/// The application: every route, the JSON error fallbacks, body limit, faults (in test builds)
/// and logs.
pub fn router(state: Arc<AppState>) -> Router {
    let mut app: Router<Arc<AppState>> = Router::new();
    for r in routes() {
        app = app.route(r.path, r.handler);
    }
    let app = app
        .fallback(middleware::not_found)
        .layer(axum::middleware::from_fn(middleware::json_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ));
    #[cfg(feature = "test-hooks")]
    let app = app.layer(axum::middleware::from_fn_with_state(
        state.fault_rate,
        faults::inject_faults,
    ));
    app.layer(DefaultBodyLimit::max(extract::MAX_BODY))
        .layer(axum::middleware::from_fn(middleware::refuse_nul))
        .layer(axum::middleware::from_fn(middleware::refuse_oversized))
        .layer(axum::middleware::from_fn(middleware::log_requests))
        .with_state(state)
}

/// Opens the store and builds the shared state.
pub fn state(settings: &Settings) -> anyhow::Result<Arc<AppState>> {
    use anyhow::Context;
    let db = Db::open(&settings.db).with_context(|| match &settings.db {
        crate::store::Database::Sqlite(path) => {
            format!("cannot open organization file {}", path.display())
        }
        crate::store::Database::Postgres(_) => format!("cannot open database {}", settings.db),
    })?;
    let metrics = metrics::Metrics::default();
    for c in db.verify_index().collectors() {
        metrics.register(c);
    }
    Ok(Arc::new(AppState {
        db,
        admin: AdminToken::new(&settings.admin_token),
        limiter: FailureLimiter::new(settings.max_auth_failures),
        trusted_proxies: settings.trusted_proxies.clone(),
        snapshots: snapshots::Snapshots::new(metrics.snapshot_cache.clone()),
        last_use: last_use::LastUse::default(),
        metrics,
        #[cfg(feature = "test-hooks")]
        fault_rate: settings.fault_rate,
    }))
}

/// Binds, prints `listening on http://ADDR` to stderr, and serves until SIGTERM or Ctrl-C;
/// requests in flight then finish before this returns.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    use anyhow::Context;
    // Opening may connect to PostgreSQL, whose synchronous client blocks.
    let state = tokio::task::block_in_place(|| state(&settings))?;
    last_use::spawn_flusher(state.clone());
    warm_verify_index(state.clone());
    let app = router(state.clone());
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    eprintln!("listening on http://{addr}");
    tracing::info!(%addr, db = %settings.db, "svcacct server started");
    accept_loop(listener, app, settings.limits).await;
    // What the requests just finished noted is not lost to the stop.
    last_use::flush(&state).await;
    tracing::info!("svcacct server stopped");
    Ok(())
}

/// Builds the verify index at start, so the first verification does not wait for it.
fn warm_verify_index(state: Arc<AppState>) {
    tokio::spawn(async move {
        // A failure is logged where it happens; the first verification tries again.
        let _ = state.db.verify_index().prepare(&state.db).await;
    });
}

/// Serves connections until a shutdown signal, then lets the open ones finish.
///
/// `axum::serve` has no header-read timeout, so connections are served with hyper's own
/// builder. Over the cap, a new connection waits in the listen backlog until one closes
/// rather than evicting anyone: a connection that has not sent a whole request within the
/// header timeout is closed, and one that stalls mid-request within the idle timeout, so a
/// flood of idle connections delays a newcomer by at most the header timeout and never
/// starves it, while no request being served is cut off to make room.
async fn accept_loop(listener: TcpListener, app: Router, limits: ConnectionLimits) {
    use hyper::body::Incoming;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;

    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, say: wait for some to close instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_read_timeout(Some(limits.idle_timeout));
        stream.set_write_timeout(Some(limits.idle_timeout));
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            app.clone().oneshot(req)
        });
        let io = hyper_errors::JsonParseErrors::new(Box::pin(stream));
        let conn = http.serve_connection(TokioIo::new(io), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection closed with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    eprintln!("shutting down: finishing requests in flight");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_route_is_listed_twice() {
        let mut seen = std::collections::BTreeSet::new();
        for r in routes() {
            assert!(
                seen.insert((r.method.clone(), r.path)),
                "{} {} is listed twice",
                r.method,
                r.path
            );
        }
    }

    #[test]
    fn every_route_is_registered() {
        // axum panics on a route registered twice or a path it cannot parse.
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            db: crate::store::Database::Sqlite(dir.path().join("o.db")),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_token: Zeroizing::new("t".repeat(32)),
            #[cfg(feature = "test-hooks")]
            fault_rate: 0.0,
            max_auth_failures: 20,
            trusted_proxies: Vec::new(),
            limits: ConnectionLimits::default(),
        };
        let _ = router(state(&settings).unwrap());
    }
}

//! Who is calling: the operator (the token the server was started with) or a service account
//! (one of its API keys), and what they may do. Only hashes are compared, in constant time;
//! a string that is not shaped like a key is refused before the database is asked; an
//! address that keeps failing is slowed down with 429s.
//!
//! The limiter throttles failures only: the credential is checked first, and a 429 replaces
//! the 401 of a credential that is not valid. Many clients share one address behind a proxy,
//! a NAT or a CI runner, so counting an address's failures against its valid credentials
//! would let one broken (or hostile) client lock every other one out. What a failure costs
//! the server stays bounded: garbage is refused on its shape, and a key-shaped token costs one
//! index probe, as a real verification does.
//!
//! The client address is the socket peer, unless the peer is a configured trusted proxy:
//! then it is the nearest address in `X-Forwarded-For` that is not itself a trusted proxy.
//! Anyone can write that header, so it is never believed from anyone else.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::AppState;
use super::error::ApiError;
use crate::api::ErrorCode;
use crate::clock;
use crate::model::Verification;
use crate::model::pattern_covers;
use crate::secrets::looks_like_key;

/// The permission that lets a key manage its own organization.
pub const MANAGE_PERMISSION: &str = "svcacct:manage";

/// Failed authentications one address may make within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 20;
const FAILURE_WINDOW: Duration = Duration::from_secs(10);
/// Addresses tracked at most; beyond it, the quietest are forgotten first.
const MAX_TRACKED: usize = 10_000;

/// The operator token, kept only as its SHA-256.
pub struct AdminToken([u8; 32]);

impl AdminToken {
    pub fn new(token: &str) -> AdminToken {
        AdminToken(Sha256::digest(token.as_bytes()).into())
    }

    fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        presented.ct_eq(&self.0).into()
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    Operator,
    /// A service-account key, with what it may do right now.
    Key(Box<Verification>),
}

impl Principal {
    /// How the audit log and the request log name the caller.
    pub fn actor(&self) -> String {
        match self {
            Principal::Operator => "operator".into(),
            Principal::Key(v) => format!(
                "service_account:{}/{}",
                v.service_account.as_deref().unwrap_or("?"),
                v.key.as_deref().unwrap_or("?")
            ),
        }
    }

    /// Whether the caller may read and change the organization `org`.
    pub fn may_manage(&self, org: &str) -> bool {
        match self {
            Principal::Operator => true,
            Principal::Key(v) => {
                v.organization.as_deref() == Some(org)
                    && v.permissions
                        .iter()
                        .any(|p| pattern_covers(p, MANAGE_PERMISSION))
            }
        }
    }
}

/// Counts failed authentications per client address.
pub struct FailureLimiter {
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
    max: usize,
}

impl FailureLimiter {
    /// A limiter allowing `max` failures per address within the window.
    pub fn new(max: usize) -> Self {
        FailureLimiter {
            failures: Mutex::new(HashMap::new()),
            max: max.max(1),
        }
    }

    /// `Err(seconds to wait)` when the address failed too often lately.
    fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some(times) = map.get_mut(&ip) else {
            return Ok(());
        };
        let now = Instant::now();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW)
        {
            times.pop_front();
        }
        if times.is_empty() {
            map.remove(&ip);
            return Ok(());
        }
        if times.len() >= self.max {
            let oldest = *times.front().expect("not empty");
            let wait = FAILURE_WINDOW.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs().max(1));
        }
        Ok(())
    }

    fn record(&self, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            let now = Instant::now();
            map.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < FAILURE_WINDOW)
            });
            if map.len() >= MAX_TRACKED {
                return;
            }
        }
        let times = map.entry(ip).or_default();
        times.push_back(Instant::now());
        while times.len() > self.max {
            times.pop_front();
        }
    }
}

/// Where the request log learns who the caller was.
#[derive(Clone, Default)]
pub struct PrincipalSlot(Arc<OnceLock<String>>);

impl PrincipalSlot {
    pub fn set(&self, who: String) {
        let _ = self.0.set(who);
    }

    pub fn get(&self) -> &str {
        self.0.get().map(String::as_str).unwrap_or("-")
    }
}

/// An authenticated request: who, and from where.
pub struct Caller {
    pub principal: Principal,
}

impl Caller {
    /// Refuses callers that may not manage `org`.
    pub fn manage(&self, org: &str) -> Result<(), ApiError> {
        if self.principal.may_manage(org) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this key may not manage organization {org}: it needs the {MANAGE_PERMISSION} permission in that organization"
            )))
        }
    }

    /// Refuses anyone but the operator.
    pub fn operator(&self) -> Result<(), ApiError> {
        match self.principal {
            Principal::Operator => Ok(()),
            Principal::Key(_) => Err(ApiError::forbidden("only the operator may do this")),
        }
    }

    pub fn actor(&self) -> String {
        self.principal.actor()
    }

    /// The caller as a write needs it.
    pub fn author(&self) -> Author {
        match &self.principal {
            Principal::Operator => Author {
                name: self.actor(),
                grants: None,
                idempotency_scope: "operator".into(),
            },
            Principal::Key(v) => Author {
                name: self.actor(),
                grants: Some(v.permissions.clone()),
                idempotency_scope: format!("key:{}", v.key_id.as_deref().unwrap_or("?")),
            },
        }
    }
}

/// Who makes a write: the name the audit log records, what they may grant, and whose
/// idempotency records they may replay.
#[derive(Debug, Clone)]
pub struct Author {
    pub name: String,
    /// The caller's own permissions; `None` for the operator, who may grant anything.
    pub grants: Option<Vec<String>>,
    /// Names the caller in idempotency records: `operator`, or `key:<id>`.
    pub idempotency_scope: String,
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::unauthorized(message)
}

/// The client's address: the peer, or what a trusted proxy in front of it says.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    // Each proxy appends the address it received from, so the list is read from the right:
    // the first hop that is not one of ours is the client; what lies left of it is hearsay.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            // Not an address: the proxy that wrote it is the last address we can vouch for.
            return client;
        };
        if !is_trusted(&ip) {
            return ip;
        }
        client = ip;
    }
    client
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let ip = client_ip(peer, &parts.headers, &state.trusted_proxies);
        let slot = parts.extensions.get::<PrincipalSlot>().cloned();
        let result = authenticate(parts, state, ip).await;
        if let Some(slot) = slot {
            slot.set(match &result {
                Ok(p) => p.actor(),
                Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => "rate-limited".into(),
                Err(_) => "unauthenticated".into(),
            });
        }
        result.map(|principal| Caller { principal })
    }
}

/// The answer to a credential that is not valid: 401, or 429 once the address has failed
/// too often lately. Every failure counts, so a client that keeps failing stays held off.
fn failed(state: &AppState, ip: IpAddr, message: &str) -> ApiError {
    let limited = state.limiter.check(ip);
    state.limiter.record(ip);
    match limited {
        Ok(()) => unauthorized(message),
        Err(wait) => {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                format!(
                    "too many failed authentications from this address; try again in {wait} seconds"
                ),
            );
            e.retry_after = Some(wait);
            e
        }
    }
}

async fn authenticate(
    parts: &Parts,
    state: &Arc<AppState>,
    ip: IpAddr,
) -> Result<Principal, ApiError> {
    let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(unauthorized(
            "missing credentials: send `Authorization: Bearer <token>`",
        ));
    };
    // Proxies and servers disagree on which of two credentials counts; refuse to guess.
    if values.next().is_some() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidHeader,
            "send one Authorization header, not several",
        ));
    }
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
        .map(|t| Zeroizing::new(t.to_string()));
    let Some(token) = token else {
        return Err(failed(
            state,
            ip,
            "malformed Authorization header: expected `Bearer <token>`",
        ));
    };
    if state.admin.matches(&token) {
        return Ok(Principal::Operator);
    }
    if !looks_like_key(&token) {
        return Err(failed(state, ip, "invalid credentials"));
    }
    let verification = state.db.verify(&token, clock::now()).await?;
    if verification.valid {
        if let Some(id) = &verification.key_id {
            state.last_use.note(id, clock::now());
        }
        Ok(Principal::Key(Box::new(verification)))
    } else {
        Err(failed(
            state,
            ip,
            &format!(
                "invalid credentials: the key is {}",
                verification.reason.as_deref().unwrap_or("not valid")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_limited_per_address() {
        let limiter = FailureLimiter::new(MAX_FAILURES);
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        for _ in 0..MAX_FAILURES {
            assert!(limiter.check(a).is_ok());
            limiter.record(a);
        }
        assert!(limiter.check(a).is_err());
        assert!(limiter.check(b).is_ok());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 192.0.2.7, 10.1.1.1".parse().unwrap(),
        );
        let proxy = IpAddr::from([10, 0, 0, 1]);
        let stranger = IpAddr::from([192, 0, 2, 99]);
        assert_eq!(client_ip(stranger, &h, &trusted), stranger);
        assert_eq!(client_ip(proxy, &h, &trusted), IpAddr::from([192, 0, 2, 7]));
        h.insert("x-forwarded-for", "garbage, 10.2.2.2".parse().unwrap());
        assert_eq!(client_ip(proxy, &h, &trusted), IpAddr::from([10, 2, 2, 2]));
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
    }

    #[test]
    fn the_admin_token_matches_only_itself() {
        let t = AdminToken::new("s3cret-operator-token");
        assert!(t.matches("s3cret-operator-token"));
        assert!(!t.matches("s3cret-operator-tokem"));
        assert!(!t.matches(""));
    }
}

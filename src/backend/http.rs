//! The `http` backend: an organization on a `svcacct serve` server. A plan is one snapshot
//! request; an apply is a lease, one batch request per stage (split to stay under the
//! server's body limit) and a release. Every request is retried with exponential backoff and
//! full jitter on connection errors, 429 and 5xx, honouring `Retry-After`; POSTs carry an
//! `Idempotency-Key`, so a retried write is answered from the server's record instead of
//! running twice. Keys are registered by hash: the secret never crosses the wire.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

use std::path::Path;
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::{Method, StatusCode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::capabilities::SVCACCT_STORE;
use super::{
    Applied, Backend, BackendConfig, BackendError, Capabilities, Endpoint, Operation, Section,
};
use crate::api::{ErrorCode, wire};
use crate::model::LiveOrganization;
use crate::model::Verification;

/// How many operations go in one batch request (the server takes bodies up to 1 MiB).
const BATCH_OPS: usize = 400;
const MAX_ATTEMPTS: u32 = 6;
/// Up to this many drifted objects, the audit log is read per object; past it, whole.
const AUDIT_PER_TARGET: usize = 20;
const LEASE_TTL_SECS: u64 = 30;

/// The `http` section of the config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The server's base URL, such as `https://svcacct.example.com`. Default: the URL pinned
    /// by `--backend-url` or `SVCACCT_BACKEND_URL`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The environment variable that holds the API token: `SVCACCT_*` or `PREFECT_*` unless
    /// allowed by `--allow-token-env`. Default: `SVCACCT_TOKEN`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
}

/// The variable the token is read from when the config names none.
const DEFAULT_TOKEN_ENV: &str = "SVCACCT_TOKEN";

impl Section for Settings {
    fn capabilities(&self) -> &'static Capabilities {
        &SVCACCT_STORE
    }

    fn resolve(&mut self, _base_dir: &Path, _organization: &str) -> Result<(), String> {
        let Some(url) = self.url.as_mut() else {
            return Err(
                "the http backend needs a `url`: add `url: https://…`, or pin one with --backend-url"
                    .into(),
            );
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "invalid backend url `{url}`: expected http:// or https://"
            ));
        }
        *url = url.trim_end_matches('/').to_string();
        self.token_env
            .get_or_insert_with(|| DEFAULT_TOKEN_ENV.into());
        Ok(())
    }

    fn endpoint(&self) -> Option<Endpoint<'_>> {
        Some(Endpoint {
            url: self.url.as_deref(),
            token_env: self.token_env.as_deref().unwrap_or(DEFAULT_TOKEN_ENV),
        })
    }

    fn set_url(&mut self, url: &str) {
        self.url = Some(url.to_string());
    }

    fn exported(&self, _relative: &dyn Fn(&Path) -> String) -> BackendConfig {
        BackendConfig::Http(self.clone())
    }

    fn open(&self, organization: &str, _for_write: bool) -> Result<Box<dyn Backend>, BackendError> {
        let url = self
            .url
            .as_deref()
            .ok_or_else(|| BackendError::Setup("the http backend's url is not resolved".into()))?;
        let token_env = self.token_env.as_deref().unwrap_or(DEFAULT_TOKEN_ENV);
        Ok(Box::new(HttpBackend::open(url, token_env, organization)?))
    }
}

/// A client of one organization on a server.
pub struct HttpBackend {
    base: String,
    organization: String,
    client: Client,
    token: String,
    /// The revision the client last saw; batches send it as `If-Match`.
    revision: Option<u64>,
    lease: Option<Lease>,
    requests: Arc<AtomicU64>,
}

struct Lease {
    id: String,
    /// Dropping (or sending on) this stops the renewer at once.
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: ErrorCode,
    message: String,
}

#[derive(Deserialize)]
struct LeaseResponse {
    lease_id: String,
}

#[derive(Deserialize)]
struct BatchResponse {
    revision: u64,
    results: Vec<BatchResult>,
}

#[derive(Deserialize)]
struct BatchResult {
    ok: bool,
    error: Option<ErrorDetail>,
}

/// An answer that does not decode as the API documents it.
fn protocol(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> BackendError {
    BackendError::Protocol {
        what: what.to_string(),
        source: Some(Arc::new(e)),
    }
}

/// A server error as a backend error the plan and apply understand.
fn to_error(target: &str, e: ErrorDetail) -> BackendError {
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
    /// A client for `organization` at `base`, authenticated by the token in `token_env`.
    pub fn open(base: &str, token_env: &str, organization: &str) -> Result<Self, BackendError> {
        let token = std::env::var(token_env)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                BackendError::Setup(format!(
                    "the http backend needs an API token in the environment variable {token_env}"
                ))
            })?;
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("svcacct/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BackendError::Setup(format!("cannot build an HTTP client: {e}")))?;
        Ok(HttpBackend {
            base: base.trim_end_matches('/').to_string(),
            organization: organization.to_string(),
            client,
            token: token.trim().to_string(),
            revision: None,
            lease: None,
            requests: Arc::new(AtomicU64::new(0)),
        })
    }

    fn org_path(&self, rest: &str) -> String {
        format!("/v1/organizations/{}{rest}", self.organization)
    }

    /// Sends a request with retries; returns the final response (any status).
    fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        extra: &[(&str, String)],
    ) -> Result<Response, BackendError> {
        send_with_retries(
            &self.client,
            &self.requests,
            &self.token,
            &self.base,
            method,
            path,
            body,
            extra,
        )
    }

    /// Decodes an error response.
    fn error_of(resp: Response, target: &str) -> BackendError {
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

    fn ensure_organization(&self) -> Result<(), BackendError> {
        let resp = self.send(Method::GET, &self.org_path(""), None, &[])?;
        if resp.status() != StatusCode::NOT_FOUND {
            return if resp.status().is_success() {
                Ok(())
            } else {
                Err(Self::error_of(resp, "organization"))
            };
        }
        let key = idempotency_key();
        let resp = self.send(
            Method::POST,
            "/v1/organizations",
            Some(&json!({ "name": self.organization })),
            &[("Idempotency-Key", key)],
        )?;
        match resp.status() {
            s if s.is_success() || s == StatusCode::CONFLICT => Ok(()),
            _ => Err(Self::error_of(
                resp,
                &format!("organization.{}", self.organization),
            )),
        }
    }

    fn release(&mut self) {
        if let Some(mut lease) = self.lease.take() {
            drop(lease.stop.take());
            if let Some(t) = lease.renewer.take() {
                let _ = t.join();
            }
            let _ = self.send(
                Method::DELETE,
                &self.org_path(&format!("/lock/{}", lease.id)),
                None,
                &[],
            );
        }
    }
}

/// A fresh random `Idempotency-Key`.
fn idempotency_key() -> String {
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
fn send_with_retries(
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

impl Backend for HttpBackend {
    fn snapshot(&mut self) -> Result<LiveOrganization, BackendError> {
        let resp = self.send(Method::GET, &self.org_path("/snapshot"), None, &[])?;
        if resp.status() == StatusCode::NOT_FOUND {
            self.revision = None;
            return Ok(LiveOrganization::new(&self.organization));
        }
        if !resp.status().is_success() {
            return Err(Self::error_of(resp, "snapshot"));
        }
        // Decoded with the path of what failed, so a snapshot that leaves out a field the plan
        // relies on (a key's issue facts, say) is refused naming it.
        let body = resp.bytes().map_err(|e| protocol("snapshot", e))?;
        let org: LiveOrganization = serde_path_to_error::deserialize::<_, wire::Organization>(
            &mut serde_json::Deserializer::from_slice(&body),
        )
        .map_err(|e| protocol("snapshot", e))?
        .into();
        self.revision = Some(org.revision);
        Ok(org)
    }

    fn lock(&mut self, owner: &str, wait: Duration) -> Result<(), BackendError> {
        // The server leases locks on existing organizations: bootstrap a new one first.
        self.ensure_organization()?;
        let start = Instant::now();
        let body = json!({ "owner": owner, "ttl_seconds": LEASE_TTL_SECS });
        let lease_id = loop {
            let resp = self.send(
                Method::POST,
                &self.org_path("/lock"),
                Some(&body),
                &[("Idempotency-Key", idempotency_key())],
            )?;
            if resp.status().is_success() {
                let lease: LeaseResponse = resp.json().map_err(|e| protocol("lease", e))?;
                break lease.lease_id;
            }
            if resp.status() != StatusCode::CONFLICT {
                return Err(Self::error_of(resp, "lock"));
            }
            let holder = resp
                .json::<ErrorBody>()
                .map(|b| b.error.message)
                .unwrap_or_default();
            if start.elapsed() >= wait {
                return Err(BackendError::Locked {
                    holder,
                    waited_secs: start.elapsed().as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        // Renew the lease while the apply runs, at a third of its lifetime.
        let (stop, stopped) = mpsc::channel::<()>();
        let renewer = {
            let (client, counter, token, base) = (
                self.client.clone(),
                self.requests.clone(),
                self.token.clone(),
                self.base.clone(),
            );
            let path = self.org_path(&format!("/lock/{lease_id}"));
            std::thread::spawn(move || {
                // Wakes every third of the lease's lifetime, or at once when told to stop.
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(Duration::from_secs(LEASE_TTL_SECS / 3))
                {
                    let _ = send_with_retries(
                        &client,
                        &counter,
                        &token,
                        &base,
                        Method::PUT,
                        &path,
                        Some(&json!({ "ttl_seconds": LEASE_TTL_SECS })),
                        &[],
                    );
                }
            })
        };
        self.lease = Some(Lease {
            id: lease_id,
            stop: Some(stop),
            renewer: Some(renewer),
        });
        Ok(())
    }

    fn apply(&mut self, ops: Vec<Operation>) -> Vec<Result<Applied, BackendError>> {
        let mut results = Vec::with_capacity(ops.len());
        for chunk in ops.chunks(BATCH_OPS) {
            let operations: Result<Vec<wire::BatchOperation>, Operation> =
                chunk.iter().cloned().map(TryInto::try_into).collect();
            let Ok(operations) = operations else {
                // The apply mints keys for this backend (its capabilities say so); a key
                // issue reaching it is a bug, refused before anything is sent.
                results.extend(chunk.iter().map(|op| {
                    Err(BackendError::Conflict {
                        target: op.target().to_string(),
                        message: "the server registers keys by hash; the client mints them"
                            .into(),
                    })
                }));
                continue;
            };
            let batch = wire::Batch { operations };
            let body = json!(batch);
            let mut headers = vec![("Idempotency-Key", idempotency_key())];
            if let Some(lease) = &self.lease {
                headers.push(("Svcacct-Lease", lease.id.clone()));
            }
            if let Some(rev) = self.revision {
                headers.push(("If-Match", format!("\"{rev}\"")));
            }
            let outcome = self
                .send(
                    Method::POST,
                    &self.org_path("/batch"),
                    Some(&body),
                    &headers,
                )
                .and_then(|resp| {
                    if resp.status().is_success() {
                        resp.json::<BatchResponse>()
                            .map_err(|e| protocol("batch", e))
                    } else {
                        Err(Self::error_of(resp, "batch"))
                    }
                });
            match outcome {
                Ok(batch) if batch.results.len() == chunk.len() => {
                    self.revision = Some(batch.revision);
                    for (op, r) in chunk.iter().zip(batch.results) {
                        results.push(match (r.ok, r.error) {
                            (true, _) => Ok(Applied::Done),
                            (false, Some(e)) => Err(to_error(&op.target().to_string(), e)),
                            (false, None) => Err(BackendError::Protocol {
                                what: format!("batch result for {}", op.target()),
                                source: None,
                            }),
                        });
                    }
                }
                Ok(_) => results.extend(chunk.iter().map(|_| {
                    Err(BackendError::Protocol {
                        what: "batch (the wrong number of results)".into(),
                        source: None,
                    })
                })),
                Err(e) => results.extend(chunk.iter().map(|_| Err(e.clone()))),
            }
        }
        results
    }

    fn verify(&mut self, secret: &str) -> Result<Verification, BackendError> {
        let resp = self.send(
            Method::POST,
            "/v1/keys/verify",
            Some(&json!({ "key": secret })),
            &[],
        )?;
        if !resp.status().is_success() {
            return Err(Self::error_of(resp, "verify"));
        }
        resp.json().map_err(|e| protocol("verification", e))
    }

    fn requests(&self) -> Option<u64> {
        Some(self.requests.load(Ordering::Relaxed))
    }

    fn last_changes(
        &mut self,
        objects: &[crate::address::Address],
    ) -> Result<Option<BTreeMap<crate::address::Address, super::LastChange>>, BackendError> {
        #[derive(Deserialize)]
        struct Page {
            entries: Vec<Entry>,
            next: Option<i64>,
        }
        #[derive(Deserialize)]
        struct Entry {
            time: String,
            actor: String,
            action: String,
            target: String,
        }
        let wanted: BTreeSet<String> = objects.iter().map(ToString::to_string).collect();
        // A few objects: their own entries; many: one pass over the whole log, fewer requests.
        let filters: Vec<Option<&String>> = if wanted.len() <= AUDIT_PER_TARGET {
            wanted.iter().map(Some).collect()
        } else {
            vec![None]
        };
        let mut found = BTreeMap::new();
        for target in filters {
            let mut after = 0i64;
            loop {
                let mut path = self.org_path(&format!("/audit?limit=1000&after={after}"));
                if let Some(t) = target {
                    path.push_str(&format!("&target={t}"));
                }
                let resp = self.send(Method::GET, &path, None, &[])?;
                match resp.status() {
                    // A token that may plan but not read the audit log: no attribution.
                    StatusCode::FORBIDDEN => return Ok(None),
                    StatusCode::NOT_FOUND => return Ok(Some(BTreeMap::new())),
                    s if !s.is_success() => return Err(Self::error_of(resp, "audit log")),
                    _ => {}
                }
                let page: Page = resp.json().map_err(|e| protocol("audit log", e))?;
                for e in page.entries {
                    if !wanted.contains(&e.target) {
                        continue;
                    }
                    if let Ok(address) = e.target.parse() {
                        // Oldest first: the last one seen is the newest.
                        found.insert(
                            address,
                            super::LastChange {
                                time: e.time,
                                actor: e.actor,
                                action: e.action,
                            },
                        );
                    }
                }
                match page.next {
                    Some(n) if n > after => after = n,
                    _ => break,
                }
            }
        }
        Ok(Some(found))
    }

    fn describe(&self) -> String {
        format!("organization {} on {}", self.organization, self.base)
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.release();
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

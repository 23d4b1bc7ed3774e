//! The HTTP side of the `prefect` backend: one place that sends, counts, paces and retries,
//! and one typed request and answer per endpoint it uses. Each call lists the statuses it
//! accepts where it is made; everything else is an error with Prefect's `detail`.
//!
//! Retries: 429 and 503 wait for `Retry-After` (whole seconds) or back off; other 5xx and
//! broken connections back off with jitter. A request Prefect may have carried out although
//! its answer was lost (a 502 after a create, say) is never sent again blindly: calls that
//! create something say [`Retry::Create`], and their callers look the object up instead.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::backend::BackendError;

/// Prefect's filters answer at most 200 items a call (OAS `Body_read_*` `limit`).
pub const PAGE: usize = 200;
const MAX_ATTEMPTS: u32 = 8;
/// The longest `Retry-After` honoured; a longer one is waited out in several turns.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Whether a failed request may be sent again as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Reads, upserts, updates and deletes: doing them twice is doing them once.
    Idempotent,
    /// A create: sent again only when Prefect provably did not run it (429).
    Create,
}

/// Why a call did not give an accepted answer.
#[derive(Debug)]
pub enum CallError {
    /// The request may or may not have been carried out (a lost answer to a create).
    Uncertain(BackendError),
    Failed(BackendError),
}

impl CallError {
    pub fn into_backend(self) -> BackendError {
        match self {
            CallError::Uncertain(e) | CallError::Failed(e) => e,
        }
    }
}

/// An accepted answer's body (wiped when dropped: a 201 carries a secret).
pub struct Answer {
    pub body: Zeroizing<Vec<u8>>,
}

impl Answer {
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, BackendError> {
        serde_json::from_slice(&self.body).map_err(|e| BackendError::Protocol {
            what: what.to_string(),
            source: Some(Arc::new(e)),
        })
    }
}

/// Keeps requests under a number a minute: a window of the last minute's sends.
struct Budget {
    per_minute: usize,
    sent: VecDeque<Instant>,
}

impl Budget {
    fn wait_turn(&mut self) {
        let minute = Duration::from_secs(60);
        loop {
            let now = Instant::now();
            while self.sent.front().is_some_and(|t| now - *t >= minute) {
                self.sent.pop_front();
            }
            if self.sent.len() < self.per_minute {
                self.sent.push_back(now);
                return;
            }
            let oldest = *self.sent.front().expect("the window is full");
            std::thread::sleep(minute.saturating_sub(now - oldest));
        }
    }
}

/// One answer of Prefect, whatever its status: the status, the wait its `Retry-After` asks
/// for, and its body (which may hold a secret).
struct Reply {
    status: u16,
    wait: Option<Duration>,
    body: Zeroizing<Vec<u8>>,
}

pub struct Client {
    http: reqwest::blocking::Client,
    /// `{url}`: Cloud's `https://api.prefect.cloud/api`.
    root: String,
    /// `{url}/accounts/{account_id}`.
    account: String,
    token: Zeroizing<String>,
    token_env: String,
    pub requests: u64,
    budget: Option<Budget>,
}

/// Prefect's FastAPI error body: a sentence, or pydantic's list of problems.
#[derive(Deserialize)]
struct ErrorBody {
    detail: Value,
}

fn detail_of(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body).map(|b| b.detail) {
        Ok(Value::String(s)) => s,
        Ok(Value::Array(items)) => items
            .iter()
            .map(|i| {
                let loc: Vec<String> = i["loc"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|l| l.to_string().trim_matches('"').to_string())
                    .collect();
                format!(
                    "{}: {}",
                    loc.join("."),
                    i["msg"].as_str().unwrap_or("invalid")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => "no detail".into(),
    }
}

impl Client {
    pub fn new(url: &str, account_id: &str, token_env: &str) -> Result<Client, BackendError> {
        let token = std::env::var(token_env)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                BackendError::Setup(format!(
                    "the prefect backend needs a Prefect API key in the environment variable {token_env}"
                ))
            })?;
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            // Prefect answers exact paths; a redirect would re-send a body somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("svcacct/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BackendError::Setup(format!("cannot build an HTTP client: {e}")))?;
        let root = url.trim_end_matches('/').to_string();
        Ok(Client {
            http,
            account: format!("{root}/accounts/{account_id}"),
            root,
            token: Zeroizing::new(token),
            token_env: token_env.to_string(),
            requests: 0,
            budget: None,
        })
    }

    pub fn set_budget(&mut self, per_minute: u32) {
        self.budget = Some(Budget {
            per_minute: per_minute.max(1) as usize,
            sent: VecDeque::new(),
        });
    }

    pub fn describe(&self) -> &str {
        &self.account
    }

    /// `A/{path}`.
    pub fn a(&self, path: &str) -> String {
        format!("{}/{path}", self.account)
    }

    /// `W/{path}` of one workspace.
    pub fn w(&self, workspace_id: &str, path: &str) -> String {
        format!("{}/workspaces/{workspace_id}/{path}", self.account)
    }

    /// `DELETE url`, idempotent: 200 or 204 when it was deleted, 404 when it already was.
    pub fn delete(&mut self, url: &str, target: &str) -> Result<Answer, CallError> {
        self.call(
            Method::DELETE,
            url,
            None,
            &[200, 204, 404],
            Retry::Idempotent,
            target,
        )
    }

    /// Sends one request, retrying what may be retried; answers any status in `accept`.
    pub fn call(
        &mut self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        accept: &[u16],
        retry: Retry,
        target: &str,
    ) -> Result<Answer, CallError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Reply { status, wait, body: answer } = match self.send(&method, url, body) {
                Ok(reply) => reply,
                Err(e) => {
                    let err = BackendError::Unreachable {
                        url: self.root.clone(),
                        source: Arc::new(e),
                    };
                    if retry == Retry::Create {
                        return Err(CallError::Uncertain(err));
                    }
                    if attempt >= MAX_ATTEMPTS {
                        return Err(CallError::Failed(err));
                    }
                    std::thread::sleep(backoff(attempt, None));
                    continue;
                }
            };
            if accept.contains(&status) {
                return Ok(Answer { body: answer });
            }
            // 429 is refused before anything runs; 503 with Retry-After is the same promise.
            let not_run = status == 429 || (status == 503 && wait.is_some());
            let server_error = status >= 500;
            if (not_run || (server_error && retry == Retry::Idempotent)) && attempt < MAX_ATTEMPTS {
                std::thread::sleep(backoff(attempt, wait));
                continue;
            }
            let err = self.refusal(status, &answer, attempt, target);
            return Err(if server_error && retry == Retry::Create {
                CallError::Uncertain(err)
            } else {
                CallError::Failed(err)
            });
        }
    }

    /// One attempt, within the request budget.
    fn send(
        &mut self,
        method: &Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Reply, reqwest::Error> {
        if let Some(b) = self.budget.as_mut() {
            b.wait_turn();
        }
        self.requests += 1;
        let mut req = self
            .http
            .request(method.clone(), url)
            .bearer_auth(self.token.as_str());
        // Prefect refuses a POST or PATCH without Content-Length (411): always a body.
        if *method == Method::POST || *method == Method::PATCH {
            req = req.json(body.unwrap_or(&json!({})));
        }
        let resp = req.send()?;
        let status = resp.status().as_u16();
        let wait = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = resp.bytes().map(|b| b.to_vec()).unwrap_or_default();
        Ok(Reply {
            status,
            wait,
            body: Zeroizing::new(bytes),
        })
    }

    /// The error of a status no retry made acceptable, with Prefect's `detail`.
    fn refusal(&self, status: u16, body: &[u8], attempt: u32, target: &str) -> BackendError {
        let detail = detail_of(body);
        match status {
            401 => BackendError::Setup(format!(
                "Prefect refused the API key in {} ({status}: {detail})",
                self.token_env
            )),
            404 => BackendError::NotFound {
                target: target.to_string(),
            },
            409 => BackendError::Conflict {
                target: target.to_string(),
                message: detail,
            },
            _ => BackendError::Server {
                target: target.to_string(),
                code: status.to_string(),
                message: if detail == "no detail" {
                    format!("Prefect answered {status} after {attempt} attempts")
                } else {
                    detail
                },
            },
        }
    }

    /// Every item a filter matches, page by page (`limit`/`offset`; the official provider
    /// sends neither and sees only the first 200).
    pub fn filter_all<T: DeserializeOwned>(
        &mut self,
        url: &str,
        criteria: Value,
        target: &str,
    ) -> Result<Vec<T>, BackendError> {
        let mut all = Vec::new();
        loop {
            let mut body = criteria.clone();
            body["limit"] = json!(PAGE);
            body["offset"] = json!(all.len());
            let page: Vec<T> = self
                .call(
                    Method::POST,
                    url,
                    Some(&body),
                    &[200],
                    Retry::Idempotent,
                    target,
                )
                .map_err(CallError::into_backend)?
                .json(target)?;
            let n = page.len();
            all.extend(page);
            if n < PAGE {
                return Ok(all);
            }
        }
    }

    /// `GET {url}/workspace_scopes`: the scope catalogue with what each implies.
    pub fn workspace_scopes(&mut self) -> Result<Vec<Scope>, BackendError> {
        let url = format!("{}/workspace_scopes", self.root);
        self.call(
            Method::GET,
            &url,
            None,
            &[200],
            Retry::Idempotent,
            "workspace scopes",
        )
        .map_err(CallError::into_backend)?
        .json("workspace scopes")
    }
}

/// The delay before retry `attempt`: what the server asked, or full jitter over an
/// exponential ceiling.
fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(d) = retry_after {
        return d.min(MAX_WAIT);
    }
    let ceiling = Duration::from_millis(100)
        .saturating_mul(1 << attempt.min(6))
        .min(Duration::from_secs(5));
    ceiling.mul_f64(rand::rng().random_range(0.0..=1.0))
}

// ---- wire types (OAS 0.8.4 schema names) ------------------------------------------------

/// OAS `APIKeyReadResponse` / `APIKeyCreateResponse`; `key` only in a 201.
#[derive(Deserialize)]
pub struct ApiKeyWire {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expiration: Option<OffsetDateTime>,
    #[serde(default)]
    pub key: Option<String>,
}

/// OAS `BotReadResponse` / `BotCreateResponse`.
#[derive(Deserialize)]
pub struct BotWire {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    pub name: String,
    #[serde(default)]
    pub account_role_name: Option<String>,
    pub api_key: ApiKeyWire,
}

/// OAS `AccountRole`.
#[derive(Deserialize)]
pub struct AccountRoleWire {
    pub id: String,
    pub name: String,
}

/// OAS `WorkspaceRole`.
#[derive(Deserialize)]
pub struct WorkspaceRoleWire {
    pub id: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created: Option<OffsetDateTime>,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `null` for the built-ins.
    #[serde(default)]
    pub account_id: Option<String>,
}

/// OAS `Workspace`.
#[derive(Deserialize)]
pub struct WorkspaceWire {
    pub id: String,
    pub handle: String,
}

/// OAS `WorkspaceBotAccessResponse`.
#[derive(Deserialize)]
pub struct AccessWire {
    pub id: String,
    pub bot_id: String,
    pub workspace_role_id: String,
}

/// OAS `Variable`.
#[derive(Deserialize)]
pub struct VariableWire {
    pub name: String,
    pub value: Value,
}

/// OAS `WorkspaceScope`.
#[derive(Deserialize)]
pub struct Scope {
    pub name: String,
    #[serde(default)]
    pub includes_scopes: Vec<String>,
}

/// OAS `BotCreate`.
#[derive(Serialize)]
pub struct BotCreate<'a> {
    pub name: &'a str,
    #[serde(with = "time::serde::rfc3339::option")]
    pub api_key_expiration: Option<OffsetDateTime>,
    pub account_role_id: &'a str,
}

/// OAS `BotRotateAPIKey`. `old_key_expires_in_seconds: null` deletes the old key at once.
#[derive(Serialize)]
pub struct BotRotate {
    #[serde(with = "time::serde::rfc3339::option")]
    pub api_key_expiration: Option<OffsetDateTime>,
    pub old_key_expires_in_seconds: Option<u64>,
}

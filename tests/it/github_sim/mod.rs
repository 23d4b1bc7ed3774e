//! A GitHub simulator for delivery tests: the Actions-secrets slice of GitHub's REST API
//! (repository and environment public keys, secrets created or updated by `PUT`, a secret's
//! metadata) served by an in-process axum app on 127.0.0.1.
//!
//! It holds a real X25519 key pair per repository and environment, opens every sealed box it
//! receives, and keeps the plaintext, so a test can prove that the consumer holds exactly the
//! live key. It refuses what GitHub refuses (tests/github-contract.md lists each endpoint, its
//! status codes and their source).

#![allow(dead_code)] // Helpers for tests that do not all use every one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use crypto_box::SecretKey;
use serde_json::{Value, json};

const DOCS: &str = "https://docs.github.com/rest/actions/secrets";

/// A public key and the secrets sealed to it: a repository's, or one environment's.
struct Vault {
    key: SecretKey,
    key_id: String,
    /// Secret name (upper-cased: GitHub's names are case-insensitive) → plaintext.
    secrets: BTreeMap<String, Stored>,
}

/// A stored secret as the simulator opened it.
#[derive(Clone, Debug)]
pub struct Stored {
    pub plaintext: Vec<u8>,
    /// How many `PUT`s wrote it.
    pub writes: u32,
}

struct Repo {
    actions: Vault,
    environments: BTreeMap<String, Vault>,
}

struct Sim {
    token: String,
    repos: BTreeMap<String, Repo>,
    /// `METHOD path`, in order.
    requests: Vec<String>,
    next_key: u64,
    /// Answer every request with this status (an outage), when set.
    outage: Option<u16>,
    /// Answer this many next requests with 502 (a flaky proxy).
    flaky: u32,
}

impl Sim {
    fn vault(&mut self) -> Vault {
        self.next_key += 1;
        Vault {
            key: SecretKey::generate(&mut crypto_box::aead::OsRng),
            key_id: format!("{}", 568250167242549743u64 + self.next_key),
            secrets: BTreeMap::new(),
        }
    }
}

type Shared = Arc<Mutex<Sim>>;

/// A running simulator; dropping it stops the server.
pub struct GithubSim {
    url: String,
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl GithubSim {
    /// Starts a simulator that accepts `token` and knows no repository yet.
    pub fn start(token: &str) -> GithubSim {
        let shared = Arc::new(Mutex::new(Sim {
            token: token.to_string(),
            repos: BTreeMap::new(),
            requests: Vec::new(),
            next_key: 0,
            outage: None,
            flaky: 0,
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let app = router(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("github-sim".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("simulator runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
            })
            .expect("simulator thread");
        GithubSim {
            url,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The API base URL (`--github-api-url`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Creates repository `owner/name`.
    pub fn add_repo(&self, full: &str) {
        let mut s = self.shared.lock().unwrap();
        let actions = s.vault();
        s.repos.insert(
            full.to_ascii_lowercase(),
            Repo {
                actions,
                environments: BTreeMap::new(),
            },
        );
    }

    /// Creates an environment of a repository.
    pub fn add_environment(&self, full: &str, environment: &str) {
        let mut s = self.shared.lock().unwrap();
        let v = s.vault();
        s.repos
            .get_mut(&full.to_ascii_lowercase())
            .expect("the repository exists")
            .environments
            .insert(environment.to_string(), v);
    }

    /// A new public key for the repository (GitHub rotates them); secrets stay.
    pub fn rotate_public_key(&self, full: &str) {
        let mut s = self.shared.lock().unwrap();
        let fresh = s.vault();
        let repo = s.repos.get_mut(&full.to_ascii_lowercase()).unwrap();
        repo.actions.key = fresh.key;
        repo.actions.key_id = fresh.key_id;
    }

    /// The plaintext of a secret, as the consumer would read it.
    pub fn secret(&self, full: &str, environment: Option<&str>, name: &str) -> Option<Stored> {
        let s = self.shared.lock().unwrap();
        let repo = s.repos.get(&full.to_ascii_lowercase())?;
        let vault = match environment {
            None => &repo.actions,
            Some(e) => repo.environments.get(e)?,
        };
        vault.secrets.get(&name.to_ascii_uppercase()).cloned()
    }

    /// The plaintext as a string.
    pub fn secret_text(&self, full: &str, environment: Option<&str>, name: &str) -> Option<String> {
        self.secret(full, environment, name)
            .map(|s| String::from_utf8(s.plaintext).unwrap())
    }

    /// Every request so far, as `METHOD path`.
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// Answers the next `n` requests with 502.
    pub fn fail_next(&self, n: u32) {
        self.shared.lock().unwrap().flaky = n;
    }

    /// Answers every request with `status` from now on (`None`: serve again).
    pub fn set_outage(&self, status: Option<u16>) {
        self.shared.lock().unwrap().outage = status;
    }
}

impl Drop for GithubSim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The API at the root, as api.github.com serves it, and under `/api/v3`, as GitHub
/// Enterprise Server does.
fn router(shared: Shared) -> Router {
    let api = routes(shared);
    Router::new().merge(api.clone()).nest("/api/v3", api)
}

fn routes(shared: Shared) -> Router {
    const R: &str = "/repos/{owner}/{repo}";
    Router::new()
        .route(
            &format!("{R}/actions/secrets/{{name}}"),
            get(repo_get).put(repo_put),
        )
        .route(
            &format!("{R}/environments/{{environment}}/secrets/{{name}}"),
            get(env_get).put(env_put),
        )
        .with_state(shared)
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "message": message, "documentation_url": DOCS })),
    )
        .into_response()
}

/// `Authorization: Bearer T` or `Authorization: token T`; 401 otherwise.
/// A refusal: its status and GitHub's message.
type Refusal = (StatusCode, &'static str);

fn authorize(s: &Sim, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err((StatusCode::UNAUTHORIZED, "Requires authentication"));
    };
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("token "));
    if token != Some(s.token.as_str()) {
        return Err((StatusCode::UNAUTHORIZED, "Bad credentials"));
    }
    Ok(())
}

/// The vault a request names; 404 for an unknown repository or environment.
fn vault<'a>(
    s: &'a mut Sim,
    owner: &str,
    repo: &str,
    environment: Option<&str>,
) -> Result<&'a mut Vault, Refusal> {
    let r = s
        .repos
        .get_mut(&format!("{owner}/{repo}").to_ascii_lowercase())
        .ok_or((StatusCode::NOT_FOUND, "Not Found"))?;
    match environment {
        None => Ok(&mut r.actions),
        Some(e) => r
            .environments
            .get_mut(e)
            .ok_or((StatusCode::NOT_FOUND, "Not Found")),
    }
}

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
        && !n.to_ascii_uppercase().starts_with("GITHUB_")
}

/// Records the request; the answer GitHub would give before looking at it, if any: an
/// outage or a flaky spell set by the test, or missing credentials.
fn refused(s: &mut Sim, headers: &HeaderMap, request: String) -> Option<Response> {
    s.requests.push(request);
    if let Some(status) = s.outage {
        return Some(error(StatusCode::from_u16(status).unwrap(), "Server Error"));
    }
    if s.flaky > 0 {
        s.flaky -= 1;
        return Some(error(StatusCode::BAD_GATEWAY, "Bad Gateway"));
    }
    authorize(s, headers)
        .err()
        .map(|(status, message)| error(status, message))
}

fn get_common(
    shared: &Shared,
    headers: &HeaderMap,
    (owner, repo, environment, name): (&str, &str, Option<&str>, &str),
    path: String,
) -> Response {
    let mut s = shared.lock().unwrap();
    if let Some(refused) = refused(&mut s, headers, format!("GET {path}")) {
        return refused;
    }
    let v = match vault(&mut s, owner, repo, environment) {
        Ok(v) => v,
        Err((status, message)) => return error(status, message),
    };
    if name == "public-key" {
        let key = BASE64.encode(v.key.public_key().as_bytes());
        return axum::Json(json!({ "key_id": v.key_id, "key": key })).into_response();
    }
    match v.secrets.get(&name.to_ascii_uppercase()) {
        Some(_) => axum::Json(json!({
            "name": name.to_ascii_uppercase(),
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        }))
        .into_response(),
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn put_common(
    shared: &Shared,
    headers: &HeaderMap,
    (owner, repo, environment, name): (&str, &str, Option<&str>, &str),
    path: String,
    body: &[u8],
) -> Response {
    let mut s = shared.lock().unwrap();
    if let Some(refused) = refused(&mut s, headers, format!("PUT {path}")) {
        return refused;
    }
    let v = match vault(&mut s, owner, repo, environment) {
        Ok(v) => v,
        Err((status, message)) => return error(status, message),
    };
    if !valid_name(name) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid secret name");
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, "Problems parsing JSON");
    };
    let (Some(value), Some(key_id)) = (body["encrypted_value"].as_str(), body["key_id"].as_str())
    else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid request: encrypted_value and key_id are required",
        );
    };
    if key_id != v.key_id {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Bad request: key_id is not the current public key's",
        );
    }
    let Ok(sealed) = BASE64.decode(value) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "encrypted_value is not base64",
        );
    };
    let Ok(plaintext) = v.key.unseal(&sealed) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "encrypted_value is not sealed to the public key",
        );
    };
    let upper = name.to_ascii_uppercase();
    match v.secrets.get_mut(&upper) {
        Some(stored) => {
            stored.plaintext = plaintext;
            stored.writes += 1;
            StatusCode::NO_CONTENT.into_response()
        }
        None => {
            v.secrets.insert(
                upper,
                Stored {
                    plaintext,
                    writes: 1,
                },
            );
            (StatusCode::CREATED, axum::Json(json!({}))).into_response()
        }
    }
}

async fn repo_get(
    State(shared): State<Shared>,
    Path((owner, repo, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/repos/{owner}/{repo}/actions/secrets/{name}");
    get_common(&shared, &headers, (&owner, &repo, None, &name), path)
}

async fn repo_put(
    State(shared): State<Shared>,
    Path((owner, repo, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let path = format!("/repos/{owner}/{repo}/actions/secrets/{name}");
    put_common(&shared, &headers, (&owner, &repo, None, &name), path, &body)
}

async fn env_get(
    State(shared): State<Shared>,
    Path((owner, repo, environment, name)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/repos/{owner}/{repo}/environments/{environment}/secrets/{name}");
    get_common(
        &shared,
        &headers,
        (&owner, &repo, Some(&environment), &name),
        path,
    )
}

async fn env_put(
    State(shared): State<Shared>,
    Path((owner, repo, environment, name)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let path = format!("/repos/{owner}/{repo}/environments/{environment}/secrets/{name}");
    put_common(
        &shared,
        &headers,
        (&owner, &repo, Some(&environment), &name),
        path,
        &body,
    )
}

//! GitHub Actions secrets over GitHub's documented REST API: fetch the repository's (or
//! environment's) public key, seal the secret to it (libsodium's sealed box), `PUT` it with
//! the key's id. One request and one response type per endpoint; the status codes each
//! accepts are listed where the call is made. The token is never printed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

/// The API version every request asks for.
const API_VERSION: &str = "2022-11-28";

/// A repository secret, or an environment's.
pub struct SecretAddress<'a> {
    pub owner: &'a str,
    pub repo: &'a str,
    pub environment: Option<&'a str>,
    pub secret: &'a str,
}

/// `GET …/secrets/public-key`.
#[derive(Deserialize)]
struct PublicKey {
    key_id: String,
    key: String,
}

/// `PUT …/secrets/{secret_name}`.
#[derive(Serialize)]
struct PutSecret<'a> {
    encrypted_value: &'a str,
    key_id: &'a str,
}

/// The URL of `…/secrets/<last>` for `at`, each segment percent-encoded.
fn url(api: &str, at: &SecretAddress<'_>, last: &str) -> Result<url::Url, String> {
    let mut u = url::Url::parse(api).map_err(|e| format!("the GitHub API url `{api}` {e}"))?;
    {
        let mut p = u
            .path_segments_mut()
            .map_err(|_| format!("the GitHub API url `{api}` cannot have a path"))?;
        p.pop_if_empty().extend(["repos", at.owner, at.repo]);
        if let Some(env) = at.environment {
            p.extend(["environments", env]);
        } else {
            p.push("actions");
        }
        p.extend(["secrets", last]);
    }
    Ok(u)
}

/// Seals `secret` to the target's current public key and stores it; `created` or `updated`.
pub fn put_secret(
    api: &str,
    token: &str,
    at: &SecretAddress<'_>,
    secret: &[u8],
) -> Result<&'static str, String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .user_agent(concat!("svcacct/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
    let request = |m: reqwest::Method, u: url::Url| {
        client
            .request(m, u)
            .bearer_auth(token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION)
    };
    let request = |m: reqwest::Method, u: url::Url, body: Option<&PutSecret<'_>>| {
        with_retries(|| {
            let r = request(m.clone(), u.clone());
            match body {
                Some(b) => r.json(b).send(),
                None => r.send(),
            }
        })
    };
    // 200 with the key; 404 for an unknown repository or environment (or one the token
    // cannot see); 401/403 for a token refused.
    let answer = request(reqwest::Method::GET, url(api, at, "public-key")?, None)?;
    let key: PublicKey = match answer.status().as_u16() {
        200 => answer
            .json()
            .map_err(|e| format!("GitHub's public key did not decode: {}", without_url(&e)))?,
        status => return Err(refused("reading the public key", status, answer)),
    };
    let raw = BASE64
        .decode(key.key.as_bytes())
        .map_err(|_| "GitHub's public key is not base64".to_string())?;
    let public = crypto_box::PublicKey::from_slice(&raw)
        .map_err(|_| "GitHub's public key is not 32 bytes".to_string())?;
    let sealed = public
        .seal(&mut crypto_box::aead::OsRng, secret)
        .map_err(|_| "cannot seal the secret".to_string())?;
    let body = PutSecret {
        encrypted_value: &BASE64.encode(sealed),
        key_id: &key.key_id,
    };
    // 201 created, 204 updated; 422 when the key id is no longer the current one.
    let answer = request(reqwest::Method::PUT, url(api, at, at.secret)?, Some(&body))?;
    match answer.status().as_u16() {
        201 => Ok("created"),
        204 => Ok("updated"),
        status => Err(refused("storing the secret", status, answer)),
    }
}

/// How many times a request is sent before its failure is final.
const ATTEMPTS: u32 = 4;

/// Sends a request again on connection errors, 429 and 5xx, with exponential backoff and
/// jitter, honouring `Retry-After` (at most 30 s). A `PUT` sent again stores the same sealed
/// secret, so a retry cannot do harm.
fn with_retries(
    send: impl Fn() -> reqwest::Result<reqwest::blocking::Response>,
) -> Result<reqwest::blocking::Response, String> {
    use rand::Rng;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = send();
        let retry_after = match &result {
            Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| std::time::Duration::from_secs(s.min(30))),
            Ok(_) => return result.map_err(|e| e.to_string()),
            Err(_) => None,
        };
        if attempt >= ATTEMPTS {
            return result.map_err(|e| format!("cannot reach GitHub: {}", without_url(&e)));
        }
        let backoff = std::time::Duration::from_millis(
            (200u64 << (attempt - 1)) + rand::rng().random_range(0..100),
        );
        std::thread::sleep(retry_after.unwrap_or(backoff));
    }
}

/// A refusal, with GitHub's `message` when it gives one.
fn refused(what: &str, status: u16, answer: reqwest::blocking::Response) -> String {
    #[derive(Deserialize)]
    struct Message {
        message: String,
    }
    let said = answer
        .json::<Message>()
        .ok()
        .map(|m| format!(": {}", m.message.chars().take(200).collect::<String>()))
        .unwrap_or_default();
    let hint = match status {
        401 | 403 => " (is the token valid, with permission to write Actions secrets?)",
        404 => " (no such repository or environment, or the token cannot see it)",
        _ => "",
    };
    format!("GitHub answered {status} {what}{said}{hint}")
}

/// A transport error without its URL (which is the configured API, nothing secret, but long).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(&format!(" for url ({u})"), "");
    }
    s
}

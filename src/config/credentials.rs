//! Where a backend's credentials may go. In CI the config is written by whoever opens a pull
//! request, while the job's environment holds real tokens; so the destination of a token and
//! the variable it is read from are decided by the job (a pinned backend URL, an allowlist of
//! variable names), never by the config alone.

use std::fmt;

/// The prefixes a `token_env` may start with without being allowed explicitly: variables
/// named for svcacct or for a backend it talks to.
pub const TOKEN_ENV_PREFIXES: &[&str] = &["SVCACCT_", "PREFECT_"];

/// What the job, not the config, decides about credentials.
#[derive(Debug, Clone, Default)]
pub struct CredentialPolicy {
    /// The only backend a config may use (`--backend-url`, `SVCACCT_BACKEND_URL`).
    pub pinned: Option<PinnedUrl>,
    /// Extra variable names a `token_env` may be (`--allow-token-env`, `SVCACCT_ALLOW_TOKEN_ENV`).
    pub allowed_token_env: Vec<String>,
    /// Where delivery targets may send keys (`--allow-deliver-path`, …).
    pub deliver: super::deliver_pins::DeliverPins,
}

impl CredentialPolicy {
    /// The policy from the pinned URL and the allowed variable names, as given.
    pub fn resolve(pinned: Option<&str>, allowed_token_env: &[String]) -> Result<Self, String> {
        let pinned = pinned
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| {
                PinnedUrl::parse(u).map_err(|e| {
                    format!("the pinned backend url `{u}` (--backend-url, SVCACCT_BACKEND_URL) {e}")
                })
            })
            .transpose()?;
        Ok(CredentialPolicy {
            pinned,
            allowed_token_env: allowed_token_env
                .iter()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect(),
            deliver: Default::default(),
        })
    }

    /// Whether a config may name `name` as the variable its token is read from.
    pub fn token_env_allowed(&self, name: &str) -> bool {
        TOKEN_ENV_PREFIXES
            .iter()
            .any(|p| name.starts_with(p) && name.len() > p.len())
            || self.allowed_token_env.iter().any(|a| a == name)
    }
}

/// A backend URL as given, with the parts that decide where a request goes.
#[derive(Debug, Clone)]
pub struct PinnedUrl {
    given: String,
    normal: NormalUrl,
}

impl PinnedUrl {
    /// Parses an http(s) URL.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(PinnedUrl {
            given: s.trim_end_matches('/').to_string(),
            normal: NormalUrl::parse(s)?,
        })
    }

    /// Whether `url` reaches the same place: scheme, host, port and path agree (a trailing
    /// slash, letter case of the host and an explicit default port aside).
    pub fn matches(&self, url: &str) -> bool {
        NormalUrl::parse(url).is_ok_and(|n| n == self.normal)
    }

    /// The URL as given, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.given
    }
}

impl fmt::Display for PinnedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.given)
    }
}

/// The parts of a URL that decide where a request, and its bearer token, go.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NormalUrl {
    scheme: String,
    host: String,
    port: Option<u16>,
    path: String,
}

impl NormalUrl {
    fn parse(s: &str) -> Result<Self, String> {
        let u = url::Url::parse(s.trim()).map_err(|e| format!("is not a URL: {e}"))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err("is not an http:// or https:// URL".into());
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err("must not carry a user name or password".into());
        }
        if u.query().is_some() || u.fragment().is_some() {
            return Err("must not carry a query or fragment".into());
        }
        let host = u.host_str().ok_or("has no host")?.to_ascii_lowercase();
        Ok(NormalUrl {
            scheme: u.scheme().to_string(),
            host,
            port: u.port_or_known_default(),
            path: u.path().trim_end_matches('/').to_string(),
        })
    }
}

/// Whether `s` is a usable backend URL; the reason when not.
pub fn check_backend_url(s: &str) -> Result<(), String> {
    NormalUrl::parse(s).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_match_on_scheme_host_port_and_path() {
        let pin = PinnedUrl::parse("http://Svc.Example.com:80/api/").unwrap();
        assert!(pin.matches("http://svc.example.com/api"));
        assert!(pin.matches("http://svc.example.com:80/api/"));
        assert!(!pin.matches("https://svc.example.com/api"));
        assert!(!pin.matches("http://svc.example.com:8080/api"));
        assert!(!pin.matches("http://svc.example.com/other"));
        assert!(!pin.matches("http://svc.example.com.attacker.net/api"));
        assert!(!pin.matches("http://svc.example.com@attacker.net/api"));
        assert!(PinnedUrl::parse("ftp://x").is_err());
        assert!(PinnedUrl::parse("http://u:p@x").is_err());
    }

    #[test]
    fn token_env_names_are_svcacct_or_backend_or_allowed() {
        let p = CredentialPolicy::resolve(None, &["CI_SVC_TOKEN".into()]).unwrap();
        assert!(p.token_env_allowed("SVCACCT_TOKEN"));
        assert!(p.token_env_allowed("PREFECT_API_KEY"));
        assert!(p.token_env_allowed("CI_SVC_TOKEN"));
        assert!(!p.token_env_allowed("AWS_SECRET_ACCESS_KEY"));
        assert!(!p.token_env_allowed("SVCACCT_"));
        assert!(!p.token_env_allowed("svcacct_token"));
    }
}

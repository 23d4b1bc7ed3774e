//! The `http` section of the config: the server's URL and the variable of its token, checked
//! before anything runs, and how they open the backend.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::HttpBackend;
use crate::backend::capabilities::SVCACCT_STORE;
use crate::backend::{Backend, BackendConfig, BackendError, Capabilities, Endpoint, Section};

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

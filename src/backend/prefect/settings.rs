//! The `prefect` section of the config: what it names (the account, the workspace of the
//! record, the API and the variable of its token), how it is checked before anything runs,
//! and how it opens the backend. Kept apart from the backend so the config's model reads
//! without Prefect's protocol around it.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::client::Client;
use super::{PREFECT, PrefectBackend};
use crate::backend::{Backend, BackendConfig, BackendError, Capabilities, Endpoint, Section};

const DEFAULT_URL: &str = "https://api.prefect.cloud/api";
const DEFAULT_TOKEN_ENV: &str = "PREFECT_API_KEY";

/// The `prefect` section of the config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The Prefect account's id (a UUID).
    pub account_id: String,
    /// The handle of the workspace whose Variables hold svcacct's record of what it manages.
    pub ledger_workspace: String,
    /// Prefect's API. Default: `https://api.prefect.cloud/api`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The environment variable that holds a Prefect API key allowed to manage bots and
    /// roles. Default: `PREFECT_API_KEY`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

impl Section for Settings {
    fn capabilities(&self) -> &'static Capabilities {
        &PREFECT
    }

    fn resolve(&mut self, _base_dir: &Path, _organization: &str) -> Result<(), String> {
        if !is_uuid(&self.account_id) {
            return Err(format!(
                "the prefect backend's `account_id` `{}` is not a UUID (Prefect account ids look like 6c1f0e5e-0000-4000-8000-000000000000)",
                self.account_id
            ));
        }
        if self.ledger_workspace.trim().is_empty() {
            return Err("the prefect backend needs `ledger_workspace`: the handle of the workspace that keeps svcacct's record of what it manages".into());
        }
        let url = self.url.get_or_insert_with(|| DEFAULT_URL.into());
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
            url: Some(self.url.as_deref().unwrap_or(DEFAULT_URL)),
            token_env: self.token_env.as_deref().unwrap_or(DEFAULT_TOKEN_ENV),
        })
    }

    fn set_url(&mut self, url: &str) {
        self.url = Some(url.to_string());
    }

    fn exported(&self, _relative: &dyn Fn(&Path) -> String) -> BackendConfig {
        BackendConfig::Prefect(self.clone())
    }

    fn open(&self, organization: &str, _for_write: bool) -> Result<Box<dyn Backend>, BackendError> {
        let url = self.url.as_deref().unwrap_or(DEFAULT_URL);
        let token_env = self.token_env.as_deref().unwrap_or(DEFAULT_TOKEN_ENV);
        Ok(Box::new(PrefectBackend {
            client: Client::new(url, &self.account_id, token_env)?,
            organization: organization.to_string(),
            ledger_workspace: self.ledger_workspace.clone(),
            live: None,
        }))
    }
}

//! The configuration: YAML files in, a validated desired [`Organization`] and resolved
//! settings out. Everything is checked before any backend is opened, so a broken config never
//! touches an organization.

mod block_yaml;
mod credentials;
mod deliver_pins;
pub mod delivery;
mod diagnostic;
mod files;
mod load;
pub mod raw;
pub mod rules;
pub mod schema;
mod split;
mod validate;

use std::path::{Path, PathBuf};

pub use crate::model::{MAX_KEYS_PER_ACCOUNT, valid_name, valid_permission};
pub use credentials::{CredentialPolicy, PinnedUrl, TOKEN_ENV_PREFIXES};
pub use deliver_pins::{DeliverPins, GITHUB_API};
pub use diagnostic::{Diagnostic, Severity, Source};
pub use load::config_digest;

use crate::backend::BackendConfig;
use crate::model::Organization;
pub use crate::model::{Policy, UnmanagedPolicy};
use crate::secrets::Recipient;

/// Names of organizations, roles, teams, accounts and keys: lowercase slugs.
pub const NAME_PATTERN: &str = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";

/// A loaded, validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The directory relative paths in the config are resolved against.
    pub base_dir: PathBuf,
    pub backend: BackendConfig,
    pub secrets: SecretsSettings,
    pub policy: Policy,
    /// What the organization should look like; every object in it is managed.
    pub desired: Organization,
    /// Policy rules, checked by validate, plan and apply.
    pub rules: rules::Rules,
    /// Where each key's secret is delivered, and whether its rotation waits for traffic.
    pub delivery: delivery::Deliveries,
    pub warnings: Vec<Diagnostic>,
}

/// Where issued keys are written and to whom they are encrypted.
#[derive(Debug, Clone)]
pub struct SecretsSettings {
    pub dir: PathBuf,
    /// Recipients as written in the config (kept for export).
    pub recipients: Vec<String>,
    /// The recipients file as written in the config (kept for export).
    pub recipients_file: Option<PathBuf>,
    /// Every recipient, from the list and the file.
    pub parsed: Vec<Recipient>,
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The cause follows from the error chain (`{:#}`), so it is not repeated here.
    #[error("cannot read config {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no *.yaml or *.yml files in config directory {}", path.display())]
    EmptyDirectory { path: PathBuf },
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

fn render(diagnostics: &[Diagnostic]) -> String {
    let mut out: String = diagnostics.iter().map(|d| format!("{d}\n")).collect();
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    out.push_str(&format!(
        "config is invalid: {errors} error{}",
        if errors == 1 { "" } else { "s" }
    ));
    out
}

impl Config {
    /// Loads a file, or every `*.yaml`/`*.yml` file of a directory, and validates it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with(path, &CredentialPolicy::default())
    }

    /// [`Config::load`], holding the backend to what the run pins about credentials.
    pub fn load_with(path: &Path, credentials: &CredentialPolicy) -> Result<Config, ConfigError> {
        let (base_dir, files) = load::read_sources(path)?;
        let merged = load::parse_and_merge(files)?;
        validate::validate(base_dir, merged, credentials)
    }
}

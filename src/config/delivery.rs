//! Delivery settings as the config holds them once checked (`validate::deliver`): where each
//! key's secret goes besides its age file, and whether its rotation waits for the new key's
//! first use. Delivering is `crate::deliver`'s.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// One place a key's secret goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A repository secret, or an environment secret when `environment` is set.
    GithubActions {
        owner: String,
        repo: String,
        environment: Option<String>,
        secret: String,
        /// The variable the token is read from.
        token_env: String,
    },
    /// A file written atomically with `mode`.
    File { path: PathBuf, mode: u32 },
    /// A program run with the secret on standard input; `argv[0]` resolved against the
    /// config's directory when relative.
    Command { argv: Vec<String> },
}

impl fmt::Display for Target {
    /// The target's stable name, as plans and key metadata show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::GithubActions {
                owner,
                repo,
                environment: None,
                secret,
                ..
            } => write!(f, "github_actions:{owner}/{repo}:{secret}"),
            Target::GithubActions {
                owner,
                repo,
                environment: Some(env),
                secret,
                ..
            } => write!(
                f,
                "github_actions:{owner}/{repo}/environments/{env}:{secret}"
            ),
            Target::File { path, .. } => write!(f, "file:{}", path.display()),
            Target::Command { argv } => write!(f, "command:{}", argv.join(" ")),
        }
    }
}

/// A key's delivery settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyDelivery {
    pub targets: Vec<Target>,
    /// Retire a rotated-out key once the new key is seen in use (the overlap is the bound).
    pub verify_traffic: bool,
}

/// Each key's delivery settings, by `(account, key)`; keys with neither targets nor
/// `verify_traffic` are absent.
pub type Deliveries = BTreeMap<(String, String), KeyDelivery>;

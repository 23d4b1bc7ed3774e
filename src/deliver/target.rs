//! Validated delivery targets, and the record of what each one acknowledged.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::secrets::{meta_file_path, read_meta, rewrite_meta};

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

/// One acknowledged delivery, as the key's metadata keeps it: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    /// [`Target`]'s name.
    pub target: String,
    pub key_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// The key id its metadata says the key file holds, and the deliveries recorded for it.
pub fn read_delivered(dir: &Path, account: &str, key: &str) -> (Option<String>, Vec<Delivered>) {
    match read_meta(&meta_file_path(dir, account, key)) {
        Some(m) => (m.key_id, m.delivered),
        None => (None, Vec::new()),
    }
}

/// Names of the targets that hold `key_id`, per the metadata.
pub fn delivered_ids<'a>(delivered: &'a [Delivered], key_id: &str) -> Vec<&'a str> {
    delivered
        .iter()
        .filter(|d| d.key_id == key_id)
        .map(|d| d.target.as_str())
        .collect()
}

/// Records, durably, that `target` acknowledged `key_id`, replacing what was recorded for
/// that target before. Refuses when the metadata no longer describes `key_id` (the key file
/// moved on meanwhile).
pub fn record_delivery(
    dir: &Path,
    account: &str,
    key: &str,
    target: &Target,
    key_id: &str,
    at: OffsetDateTime,
) -> std::io::Result<()> {
    let path = meta_file_path(dir, account, key);
    let Some(mut meta) = read_meta(&path) else {
        return Err(std::io::Error::other("the key's metadata is missing"));
    };
    if meta.key_id.as_deref() != Some(key_id) {
        return Err(std::io::Error::other(
            "the key's file now holds another key",
        ));
    }
    let name = target.to_string();
    meta.delivered.retain(|d| d.target != name);
    meta.delivered.push(Delivered {
        target: name,
        key_id: key_id.to_string(),
        at,
    });
    rewrite_meta(dir, account, key, &meta)
}

//! Delivery targets as written in the YAML: one mapping with a single key naming the kind.
//! Checked in `config::deliver`, at the place each value is written.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::raw::Loc;

/// Where a key's secret goes, besides its age file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawTarget {
    /// A GitHub Actions secret of a repository, or of one of its environments.
    GithubActions(RawGithubActions),
    /// A file outside the config's tree, written atomically (the job must allow its path).
    File(RawFile),
    /// A program that reads the secret on standard input (the job must allow it).
    Command(RawCommand),
}

/// A GitHub Actions secret.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGithubActions {
    /// `owner/name`.
    pub repository: Loc<String>,
    /// An environment of the repository: the secret is that environment's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<Loc<String>>,
    /// The secret's name: letters, digits and `_`, not starting with a digit or `GITHUB_`.
    pub secret: Loc<String>,
    /// The variable holding the GitHub token. Default: `SVCACCT_GITHUB_TOKEN`; another name
    /// must start with `SVCACCT_` or be allowed with `--allow-token-env`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_env: Option<Loc<String>>,
}

/// A file target.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    /// An absolute path outside the config's directory tree.
    pub path: Loc<String>,
    /// Octal permission bits, as a string. Default: "0600".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Loc<String>>,
}

/// A command target.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCommand {
    /// The program and its arguments, as a list (no shell); a relative program is relative
    /// to the config. The secret arrives on standard input, never in arguments or environment.
    pub run: Loc<RawArgv>,
}

/// An argv list, or (refused with a location) a single string.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawArgv {
    List(Vec<String>),
    Line(String),
}

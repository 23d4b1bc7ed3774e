//! What the job, not the config, allows a delivery to do: which paths a `file` target may
//! write, which programs a `command` target may run, and which GitHub API a token goes to.
//! A pull request writes the config; without these, it could send a key anywhere.

use std::path::{Path, PathBuf};

/// The public GitHub API; GitHub Enterprise Server is pinned with `--github-api-url`.
pub const GITHUB_API: &str = "https://api.github.com";

/// The delivery pins of a run.
#[derive(Debug, Clone, Default)]
pub struct DeliverPins {
    /// Directories (or files) a `file` target may write under (`--allow-deliver-path`).
    pub paths: Vec<PathBuf>,
    /// Programs a `command` target may run, as the config writes `run[0]`
    /// (`--allow-deliver-command`).
    pub commands: Vec<String>,
    /// The GitHub REST API base URL (`--github-api-url`); default [`GITHUB_API`].
    pub github_api_url: Option<String>,
}

impl DeliverPins {
    /// The pins as given on the command line or in the environment.
    pub fn resolve(paths: &[PathBuf], commands: &[String], github_api_url: Option<&str>) -> Self {
        DeliverPins {
            paths: paths
                .iter()
                .filter(|p| !p.as_os_str().is_empty())
                .cloned()
                .collect(),
            commands: commands
                .iter()
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect(),
            github_api_url: github_api_url
                .map(|u| u.trim().trim_end_matches('/').to_string())
                .filter(|u| !u.is_empty()),
        }
    }

    /// Whether a `file` target may write `path`: it is under an allowed prefix, compared
    /// component by component after resolving its directory (so no `..` or link leads out).
    pub fn path_allowed(&self, path: &Path) -> bool {
        let Some(parent) = path.parent().and_then(|p| p.canonicalize().ok()) else {
            return false;
        };
        let Some(name) = path.file_name() else {
            return false;
        };
        let real = parent.join(name);
        self.paths.iter().any(|p| {
            let p = p.canonicalize().unwrap_or_else(|_| p.clone());
            real.starts_with(&p)
        })
    }

    /// Whether a `command` target may run `program` (as written in the config).
    pub fn command_allowed(&self, program: &str) -> bool {
        self.commands.iter().any(|c| c == program)
    }

    /// The GitHub API the token goes to.
    pub fn github_api(&self) -> &str {
        self.github_api_url.as_deref().unwrap_or(GITHUB_API)
    }
}

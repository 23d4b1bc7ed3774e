//! Checking delivery targets and `verify_traffic` at the place they are written, before
//! any request: a repository that is not `owner/name`, a file inside the config's tree
//! (whose secret would be in plaintext in git), a command that is not an argv list, a token
//! variable the job did not allow, a backend that cannot tell when a key was used.

use std::path::{Path, PathBuf};

use super::findings::{Findings, at};
use crate::config::credentials::CredentialPolicy;
use crate::config::delivery::{Deliveries, KeyDelivery, Target};
use crate::config::diagnostic::Severity;
use crate::config::files::config_tree;
use crate::config::load::Merged;
use crate::config::raw::{Loc, RawArgv, RawCommand, RawFile, RawGithubActions, RawKey, RawTarget};

/// The variable a GitHub target's token is read from when it names none.
pub const DEFAULT_GITHUB_TOKEN_ENV: &str = "SVCACCT_GITHUB_TOKEN";

/// Every key's delivery settings, with an error for each bad one.
pub(super) fn deliveries(
    f: &mut Findings<'_>,
    merged: &Merged,
    base_dir: &Path,
    credentials: &CredentialPolicy,
) -> Deliveries {
    let tree = config_tree(base_dir).ok();
    let mut out = Deliveries::new();
    for d in &merged.service_accounts {
        let (account, raw) = &d.item.value;
        for (key, k) in &raw.keys.0 {
            let delivery = key_delivery(f, d.file, k, tree.as_deref(), credentials);
            if delivery != KeyDelivery::default() {
                out.insert((account.clone(), key.value.clone()), delivery);
            }
        }
    }
    out
}

fn key_delivery(
    f: &mut Findings<'_>,
    file: usize,
    k: &RawKey,
    tree: Option<&Path>,
    credentials: &CredentialPolicy,
) -> KeyDelivery {
    let mut targets: Vec<Target> = Vec::new();
    for t in &k.deliver {
        let Some(target) = target(f, file, t, tree, credentials) else {
            continue;
        };
        if targets.contains(&target) {
            f.error(
                file,
                at(t),
                format!("delivery target `{target}` is listed twice"),
            );
            continue;
        }
        targets.push(target);
    }
    let verify_traffic = k.verify_traffic.as_ref().is_some_and(|v| v.value);
    if let Some(v) = k.verify_traffic.as_ref().filter(|v| v.value)
        && !f.caps.records_key_use
    {
        f.error(
            file,
            at(v),
            format!(
                "the {} backend does not record when a key is used, so `verify_traffic` cannot wait for the new key's first use; use `overlap` alone",
                f.caps.name
            ),
        );
    }
    if let Some(v) = k.verify_traffic.as_ref().filter(|v| v.value)
        && k.overlap.is_none_or(|o| o.0 == 0)
    {
        f.push(
            Severity::Warning,
            file,
            at(v),
            "`verify_traffic` has nothing to wait for: without an `overlap` the old key stops working at the rotation".into(),
            Some("set `overlap`, the longest the old key may keep working".into()),
        );
    }
    KeyDelivery {
        targets,
        verify_traffic,
    }
}

/// One delivery target as written, checked by its kind; `None` after an error.
fn target(
    f: &mut Findings<'_>,
    file: usize,
    t: &Loc<RawTarget>,
    tree: Option<&Path>,
    credentials: &CredentialPolicy,
) -> Option<Target> {
    match &t.value {
        RawTarget::GithubActions(g) => github_target(f, file, g, credentials),
        RawTarget::File(written) => file_target(f, file, written, tree),
        RawTarget::Command(c) => command_target(f, file, c),
    }
}

/// A GitHub Actions secret: an `owner/name` repository, a secret name GitHub accepts, a
/// printable environment name, and a token variable the job allows.
fn github_target(
    f: &mut Findings<'_>,
    file: usize,
    g: &RawGithubActions,
    credentials: &CredentialPolicy,
) -> Option<Target> {
    let (owner, repo) = match g.repository.value.split_once('/') {
        Some((o, r)) if github_owner(o) && github_repo(r) => (o, r),
        _ => {
            f.error(
                file,
                at(&g.repository),
                format!(
                    "GitHub repository `{}` is not `owner/name`",
                    g.repository.value
                ),
            );
            return None;
        }
    };
    if !secret_name(&g.secret.value) {
        f.error(file, at(&g.secret), format!("`{}` is not a GitHub Actions secret name: letters, digits and `_`, not starting with a digit or `GITHUB_`", g.secret.value));
        return None;
    }
    if let Some(e) = &g.environment
        && (e.value.is_empty() || e.value.len() > 255 || e.value.chars().any(char::is_control))
    {
        f.error(
            file,
            at(e),
            "a GitHub environment name is 1 to 255 printable characters".into(),
        );
        return None;
    }
    let token_env = match &g.token_env {
        Some(v) if !credentials.token_env_allowed(&v.value) => {
            f.error(file, at(v), format!("token_env `{}` is not allowed: it must start with SVCACCT_ or be allowed by the job with --allow-token-env {0} (SVCACCT_ALLOW_TOKEN_ENV)", v.value));
            return None;
        }
        Some(v) => v.value.clone(),
        None => DEFAULT_GITHUB_TOKEN_ENV.to_string(),
    };
    Some(Target::GithubActions {
        owner: owner.to_string(),
        repo: repo.to_string(),
        environment: g.environment.as_ref().map(|e| e.value.clone()),
        secret: g.secret.value.clone(),
        token_env,
    })
}

/// A file target: an absolute path naming a file outside the config's tree, and octal
/// permission bits (0600 when none are written).
fn file_target(
    f: &mut Findings<'_>,
    file: usize,
    file_target: &RawFile,
    tree: Option<&Path>,
) -> Option<Target> {
    let path = PathBuf::from(&file_target.path.value);
    if !path.is_absolute() {
        f.error(file, at(&file_target.path), format!("delivery file `{}` must be an absolute path outside the config's directory tree: a file inside it would put the secret in plaintext in git", file_target.path.value));
        return None;
    }
    if path.file_name().is_none() {
        f.error(
            file,
            at(&file_target.path),
            format!("delivery file `{}` names no file", file_target.path.value),
        );
        return None;
    }
    if !outside_config_tree(f, file, file_target, &path, tree) {
        return None;
    }
    let mode = match &file_target.mode {
        None => 0o600,
        Some(m) => match u32::from_str_radix(m.value.trim_start_matches("0o"), 8) {
            Ok(v) if v <= 0o777 => v,
            _ => {
                f.error(
                    file,
                    at(m),
                    format!(
                        "mode `{}` is not octal permission bits such as \"0600\"",
                        m.value
                    ),
                );
                return None;
            }
        },
    };
    Some(Target::File { path, mode })
}

/// Whether a delivery file is shown to be outside the config's tree, with an error when not.
fn outside_config_tree(
    f: &mut Findings<'_>,
    file: usize,
    file_target: &RawFile,
    path: &Path,
    tree: Option<&Path>,
) -> bool {
    // Fail closed: a tree that cannot be resolved cannot be shown to be left.
    match tree {
        Some(tree) if !inside(path, tree) => true,
        Some(tree) => {
            f.error(file, at(&file_target.path), format!("delivery file `{}` is inside the config's directory tree {}: the secret would be in plaintext in git", file_target.path.value, tree.display()));
            false
        }
        None => {
            f.error(file, at(&file_target.path), format!("delivery file `{}` cannot be checked: the config's directory tree cannot be resolved", file_target.path.value));
            false
        }
    }
}

/// A command target: a non-empty argv list, since svcacct runs no shell.
fn command_target(f: &mut Findings<'_>, file: usize, c: &RawCommand) -> Option<Target> {
    match &c.run.value {
        RawArgv::List(argv) if !argv.is_empty() && !argv[0].is_empty() => {
            Some(Target::Command { argv: argv.clone() })
        }
        RawArgv::List(_) => {
            f.error(
                file,
                at(&c.run),
                "`run` is empty: give the program and its arguments as a list".into(),
            );
            None
        }
        RawArgv::Line(line) => {
            f.error(
                file,
                at(&c.run),
                format!(
                    "`run` must be an argv list such as [{}]: svcacct runs no shell",
                    line.split_whitespace().collect::<Vec<_>>().join(", ")
                ),
            );
            None
        }
    }
}

/// Whether `path` is inside `tree`, once its longest existing ancestor is resolved (so `..`
/// and symbolic links are followed as the write would follow them).
fn inside(path: &Path, tree: &Path) -> bool {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut real = existing.canonicalize().unwrap_or(existing);
    for name in rest.into_iter().rev() {
        real.push(name);
    }
    real.starts_with(tree)
}

fn github_owner(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 39
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-')
}

fn github_repo(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn secret_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.to_ascii_uppercase().starts_with("GITHUB_")
}

//! `svcacct init`: a new organization's repository, ready to validate, plan and apply. A
//! company stamps every organization out of one template directory, so the same roles, teams
//! and bots exist everywhere; everything is written to a staging directory and validated there
//! first, so a template that does not validate leaves nothing behind. One file per part:
//! the texts written (templates), the CI files, the identity, the target directory and the
//! summary.

mod ci;
mod identity;
mod summary;
mod target;
mod templates;

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::cli::{InitArgs, InitBackend};
use crate::config::{Config, ConfigError, CredentialPolicy, Severity, valid_name};
use crate::escape;

use super::{Output, exit};
use ci::ci_files;
use identity::{Recipients, check_identity_path, write_identity};
use summary::summary;
use target::{Target, check_target, move_into_place};
use templates::{
    GITIGNORE, GITIGNORE_TEXT, MANAGE_PERMISSION, MANAGER_ACCOUNT, PLACEHOLDER, RECIPIENTS_FILE,
    STARTER_FILE, backend_yaml, config_file, read_template, settings_yaml, stamp, starter_yaml,
};

/// Writes the repository of a new organization into `args.dir`.
pub fn init(args: &InitArgs, out: Output, credentials: &CredentialPolicy) -> Result<u8> {
    let org = args.organization.as_str();
    if !valid_name(org) {
        bail!(
            "invalid organization name `{}`: {}",
            escape::terminal(org),
            crate::model::NAME_HELP
        );
    }
    let backend = backend_yaml(args, credentials, org)?;
    let recipients = Recipients::resolve(args, org)?;
    let template = args.from.as_deref().map(read_template).transpose()?;

    let (files, config_arg) = repository_files(template.as_deref(), &recipients, org)?;
    let from_template = template.is_some();
    check_target(&args.dir, &files, config_file(from_template))?;
    if let Recipients::Generate { path, .. } = &recipients {
        check_identity_path(path, &args.dir)?;
    }

    let target = Target::prepare(&args.dir)?;
    let staged = Staged {
        args,
        backend: &backend,
        from_template,
        files: &files,
        credentials,
    };
    let config = match write_repository(&staged, &recipients, out) {
        Ok(c) => c,
        Err(e) => {
            target.undo();
            return Err(e);
        }
    };

    if let Recipients::Generate { path, .. } = &recipients {
        // Always printed, even with -q: it is the one place the identity's location is told.
        eprintln!(
            "{}",
            escape::terminal_lines(&format!(
                "Wrote a new age identity to {} (mode 0600). It is the only key that decrypts \
                 this organization's key files: keep it safe (a password manager or your CI's \
                 secret store), back it up, and never commit it.",
                path.display()
            ))
        );
    }
    if !out.quiet {
        print!(
            "{}",
            escape::terminal_lines(&summary(args, &files, &config, from_template, config_arg))
        );
    }
    Ok(exit::OK)
}

/// Every file of the repository but the config and the identity, by path, and the config
/// as `-c` names it: the template's files stamped with the organization's name (the config is
/// then the directory), the recipients, `.gitignore` and the CI.
fn repository_files(
    template: Option<&[(String, String)]>,
    recipients: &Recipients,
    org: &str,
) -> Result<(Vec<(String, String)>, &'static str)> {
    let mut files: Vec<(String, String)> = Vec::new();
    let config_arg = match template {
        Some(t) => {
            for (name, text) in t {
                files.push((name.clone(), stamp(name, text, org)?));
            }
            "."
        }
        None => STARTER_FILE,
    };
    files.push((RECIPIENTS_FILE.into(), recipients.file_text()));
    files.push((GITIGNORE.into(), GITIGNORE_TEXT.into()));
    files.extend(ci_files(config_arg));
    Ok((files, config_arg))
}

/// What a new repository is made of, before it is written.
struct Staged<'a> {
    args: &'a InitArgs,
    /// The config's `backend:` section.
    backend: &'a str,
    from_template: bool,
    /// Every file but the config (and the identity), by path in the repository.
    files: &'a [(String, String)],
    credentials: &'a CredentialPolicy,
}

/// Writes the repository into a staging directory inside `args.dir`, validates it, writes
/// the identity, and moves it all into place; returns the config as validated.
fn write_repository(s: &Staged<'_>, recipients: &Recipients, out: Output) -> Result<Config> {
    let (args, org) = (s.args, s.args.organization.as_str());
    let staging = tempfile::Builder::new()
        .prefix(".svcacct-init-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("cannot write into {}", args.dir.display()))?;
    let http = args.backend == InitBackend::Http;
    let config_for = |manager: &[String]| {
        if s.from_template {
            settings_yaml(org, s.backend, http.then_some(manager))
        } else {
            starter_yaml(org, s.backend, http.then_some(manager))
        }
    };
    let mut manager = vec![MANAGE_PERMISSION.to_string()];
    for (name, text) in s
        .files
        .iter()
        .cloned()
        .chain([(config_file(s.from_template).into(), config_for(&manager))])
    {
        let path = staging.path().join(&name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot write {name} into {}", args.dir.display()))?;
        }
        std::fs::write(&path, text)
            .with_context(|| format!("cannot write {name} into {}", args.dir.display()))?;
    }
    let mut config = validate_staged(staging.path(), &args.dir, s.credentials)?;
    if http {
        // A managing key may only issue keys to accounts whose permissions it holds itself
        // (the server's privilege rule), so CI's account holds everything the config hands
        // out; otherwise the operator token would be needed for every rotation.
        let needed = permissions_handed_out(&config);
        if needed.iter().any(|p| !manager.contains(p)) {
            manager.extend(needed);
            manager.sort();
            manager.dedup();
            let name = config_file(s.from_template);
            std::fs::write(staging.path().join(name), config_for(&manager))
                .with_context(|| format!("cannot write {name}"))?;
            config = validate_staged(staging.path(), &args.dir, s.credentials)?;
        }
    }
    print_warnings(&config, staging.path(), &args.dir, out);
    if let Recipients::Generate { path, identity } = &recipients {
        write_identity(path, identity, org)?;
    }
    let moved = move_into_place(staging.path(), &args.dir);
    if moved.is_err()
        && let Recipients::Generate { path, .. } = &recipients
    {
        let _ = std::fs::remove_file(path);
    }
    moved.map(|()| config)
}

/// Validates the staged config as `svcacct validate` would; its messages name DIR.
fn validate_staged(staging: &Path, dir: &Path, credentials: &CredentialPolicy) -> Result<Config> {
    match Config::load_with(staging, credentials) {
        Ok(c) => Ok(c),
        Err(e) => {
            let text = retarget(&e.to_string(), staging, dir);
            if let ConfigError::Invalid(_) = e {
                eprintln!("{}", escape::terminal_lines(&text));
                bail!(
                    "the config init would write into {} does not validate (above); nothing was \
                     written. A template's files may use {{{{{PLACEHOLDER}}}}} and must leave \
                     `backend` and `secrets` to init",
                    dir.display()
                );
            }
            bail!("{text}; nothing was written")
        }
    }
}

/// Messages about the staging directory, as if about DIR, where the files will be.
fn retarget(text: &str, staging: &Path, dir: &Path) -> String {
    text.replace(
        &staging.display().to_string(),
        dir.display().to_string().trim_end_matches('/'),
    )
}

fn print_warnings(config: &Config, staging: &Path, dir: &Path, out: Output) {
    if out.quiet {
        return;
    }
    for w in config
        .warnings
        .iter()
        .filter(|d| d.severity == Severity::Warning)
    {
        eprint!(
            "{}",
            escape::terminal_lines(&retarget(&w.to_string(), staging, dir))
        );
    }
}

/// Every permission pattern some account other than CI's own holds.
fn permissions_handed_out(config: &Config) -> Vec<String> {
    let d = &config.desired;
    let mut all: Vec<String> = d
        .service_accounts
        .iter()
        .filter(|(name, _)| name.as_str() != MANAGER_ACCOUNT)
        .flat_map(|(_, a)| d.permissions_of(a))
        .collect();
    all.sort();
    all.dedup();
    all
}

//! `svcacct export`: the live organization as a config that plans to no changes where it is
//! written. Keys are listed by name and settings; no secret is ever exported.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{Output, exit, load_config};
use crate::cli::ExportArgs;
use crate::config::raw::{
    Loc, RawConfig, RawKey, RawPolicy, RawRole, RawSecrets, RawServiceAccount, RawTeam,
};
use crate::config::{Config, Policy};
use crate::model::{LiveAccount, LiveOrganization};

/// `target` relative to `from_dir`, with forward slashes, as a config would say it.
/// (Without a working directory to resolve against, the paths are compared as given.)
fn relative(target: &Path, from_dir: &Path) -> String {
    let absolute = |p: &Path| normalize(&std::path::absolute(p).unwrap_or_else(|_| p.into()));
    let (target, from) = (absolute(target), absolute(from_dir));
    let rel = pathdiff::diff_paths(&target, &from).unwrap_or(target);
    rel.to_string_lossy().replace('\\', "/")
}

/// `p` with `.` and `..` resolved lexically, so that exporting an export does not grow
/// its paths (`../a/../../b`).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if out.file_name().is_some() {
                    out.pop();
                } else if !out.has_root() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// The YAML document for a live organization, with paths relative to `out_dir`. It is a
/// config, so it is written with the config's own types: an export cannot say what a config
/// cannot.
pub fn to_yaml(config: &Config, live: &LiveOrganization, out_dir: &Path) -> Result<String> {
    let secrets = &config.secrets;
    let has_secrets = !secrets.recipients.is_empty() || secrets.recipients_file.is_some();
    let (p, d) = (config.policy, Policy::default());
    let doc = RawConfig {
        organization: Some(Loc::new(live.name.clone())),
        backend: Some(Loc::new(config.backend.exported(&|p| relative(p, out_dir)))),
        secrets: has_secrets.then(|| {
            Loc::new(RawSecrets {
                dir: Some(relative(&secrets.dir, out_dir)),
                recipients: secrets.recipients.iter().cloned().map(Loc::new).collect(),
                recipients_file: secrets
                    .recipients_file
                    .as_ref()
                    .map(|f| Loc::new(relative(&config.base_dir.join(f), out_dir))),
            })
        }),
        policy: (p.unmanaged != d.unmanaged || p.max_delete_percent != d.max_delete_percent).then(
            || {
                Loc::new(RawPolicy {
                    unmanaged: Some(p.unmanaged),
                    max_delete_percent: Some(Loc::new(p.max_delete_percent)),
                    rules: Vec::new(),
                })
            },
        ),
        roles: live
            .roles
            .iter()
            .filter(|(_, r)| !r.builtin)
            .map(|(n, r)| {
                let role = RawRole {
                    description: r.description.clone(),
                    permissions: r.permissions.iter().cloned().map(Loc::new).collect(),
                    protect: r.protect,
                };
                (n.clone(), role)
            })
            .collect(),
        teams: live
            .teams
            .iter()
            .map(|(n, t)| {
                let team = RawTeam {
                    description: t.description.clone(),
                    protect: t.protect,
                };
                (n.clone(), team)
            })
            .collect(),
        service_accounts: live
            .service_accounts
            .iter()
            .map(|(n, a)| (n.clone(), account(a)))
            .collect(),
    };
    let mut body = serde_saphyr::to_string(&doc).context("cannot write YAML")?;
    if !body.ends_with('\n') {
        body.push('\n');
    }
    Ok(format!(
        "# Exported by svcacct from revision {} of organization {}.\n{body}",
        live.revision, live.name
    ))
}

/// A live account as a config declares it: settings, memberships and keys, never secrets.
fn account(a: &LiveAccount) -> RawServiceAccount {
    RawServiceAccount {
        description: a.description.clone(),
        owner: None,
        teams: a
            .teams
            .iter()
            .map(|(t, r)| (t.clone(), Loc::new(r.clone())))
            .collect(),
        admin: a.admin,
        expires: a.expires.map(|d| Loc::new(d.to_string())),
        disabled: a.disabled,
        protect: a.protect,
        // A key svcacct did not issue is declared too: the plan lists it as "secret not held
        // by svcacct" and leaves it working until `svcacct rotate` brings it under svcacct.
        keys: a
            .keys
            .iter()
            .map(|(k, key)| {
                let key = &key.settings;
                let key = RawKey {
                    description: key.description.clone(),
                    expires_in: key.expires_in.map(Loc::new),
                    scopes: key.scopes.iter().cloned().map(Loc::new).collect(),
                    rotate_every: key.rotate_every.map(Loc::new),
                    overlap: key.overlap,
                    // Delivery lives in the config only: the backend does not know it.
                    verify_traffic: None,
                    deliver: Vec::new(),
                };
                (k.clone(), key)
            })
            .collect(),
    }
}

/// Writes the live organization as YAML to a file or standard output.
pub fn export(
    args: &ExportArgs,
    out: Output,
    credentials: &crate::config::CredentialPolicy,
) -> Result<u8> {
    let config = load_config(&args.config.config, out, credentials)?;
    let mut backend = config.backend.open(&config.desired.name, false)?;
    let live = backend
        .snapshot()
        .with_context(|| format!("cannot read {}", backend.describe()))?;
    let out_dir: PathBuf = match &args.output {
        Some(file) => file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
        None => PathBuf::from("."),
    };
    let yaml = to_yaml(&config, &live, &out_dir)?;
    match &args.output {
        Some(file) => {
            std::fs::create_dir_all(&out_dir)
                .with_context(|| format!("cannot create {}", out_dir.display()))?;
            std::fs::write(file, yaml)
                .with_context(|| format!("cannot write {}", file.display()))?;
            if !out.quiet {
                eprintln!(
                    "Exported organization {} (revision {}) to {}.",
                    live.name,
                    live.revision,
                    file.display()
                );
            }
        }
        None => print!("{yaml}"),
    }
    Ok(exit::OK)
}

//! `svcacct export`: the live organization as a config that plans to no changes where it is
//! written. Keys are listed by name and settings; no secret is ever exported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::{Output, exit, load_config};
use crate::backend::BackendConfig;
use crate::cli::ExportArgs;
use crate::config::{Config, Policy, UnmanagedPolicy};
use crate::duration::Duration;
use crate::model::Organization;

#[derive(Serialize)]
struct Doc {
    organization: String,
    backend: BackendConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    secrets: Option<ExportSecrets>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<ExportPolicy>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    roles: BTreeMap<String, ExportRole>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    teams: BTreeMap<String, ExportTeam>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    service_accounts: BTreeMap<String, ExportAccount>,
}

#[derive(Serialize)]
struct ExportSecrets {
    dir: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    recipients: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipients_file: Option<String>,
}

#[derive(Serialize)]
struct ExportPolicy {
    unmanaged: UnmanagedPolicy,
    max_delete_percent: u32,
}

fn is_false(b: &bool) -> bool {
    !b
}

#[derive(Serialize)]
struct ExportRole {
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    permissions: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    protect: bool,
}

#[derive(Serialize)]
struct ExportTeam {
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(skip_serializing_if = "is_false")]
    protect: bool,
}

#[derive(Serialize)]
struct ExportAccount {
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    teams: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "is_false")]
    admin: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    disabled: bool,
    #[serde(skip_serializing_if = "is_false")]
    protect: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    keys: BTreeMap<String, ExportKey>,
}

#[derive(Serialize)]
struct ExportKey {
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in: Option<Duration>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rotate_every: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    overlap: Option<Duration>,
}

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

/// The YAML document for a live organization, with paths relative to `out_dir`.
pub fn to_yaml(config: &Config, live: &Organization, out_dir: &Path) -> Result<String> {
    let secrets = &config.secrets;
    let has_secrets = !secrets.recipients.is_empty() || secrets.recipients_file.is_some();
    let doc = Doc {
        organization: live.name.clone(),
        backend: config.backend.exported(&|p| relative(p, out_dir)),
        secrets: if has_secrets {
            Some(ExportSecrets {
                dir: relative(&secrets.dir, out_dir),
                recipients: secrets.recipients.clone(),
                recipients_file: secrets
                    .recipients_file
                    .as_ref()
                    .map(|f| relative(&config.base_dir.join(f), out_dir)),
            })
        } else {
            None
        },
        policy: {
            let (p, d) = (config.policy, Policy::default());
            (p.unmanaged != d.unmanaged || p.max_delete_percent != d.max_delete_percent).then_some(
                ExportPolicy {
                    unmanaged: p.unmanaged,
                    max_delete_percent: p.max_delete_percent,
                },
            )
        },
        roles: live
            .roles
            .iter()
            .filter(|(_, r)| !r.builtin)
            .map(|(n, r)| {
                (
                    n.clone(),
                    ExportRole {
                        description: r.description.clone(),
                        permissions: r.permissions.iter().cloned().collect(),
                        protect: r.protect,
                    },
                )
            })
            .collect(),
        teams: live
            .teams
            .iter()
            .map(|(n, t)| {
                (
                    n.clone(),
                    ExportTeam {
                        description: t.description.clone(),
                        protect: t.protect,
                    },
                )
            })
            .collect(),
        service_accounts: live
            .service_accounts
            .iter()
            .map(|(n, a)| {
                (
                    n.clone(),
                    ExportAccount {
                        description: a.description.clone(),
                        teams: a.teams.clone(),
                        admin: a.admin,
                        expires: a.expires.map(|d| d.to_string()),
                        disabled: a.disabled,
                        protect: a.protect,
                        // A key svcacct did not issue has no file to plan against: it stays
                        // out of the config, listed as unmanaged, until one is declared.
                        keys: a
                            .keys
                            .iter()
                            .filter(|(_, key)| key.managed)
                            .map(|(k, key)| {
                                (
                                    k.clone(),
                                    ExportKey {
                                        description: key.description.clone(),
                                        expires_in: key.expires_in,
                                        scopes: key.scopes.iter().cloned().collect(),
                                        rotate_every: key.rotate_every,
                                        overlap: key.overlap,
                                    },
                                )
                            })
                            .collect(),
                    },
                )
            })
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

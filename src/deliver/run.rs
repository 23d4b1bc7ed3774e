//! Delivering keys: after an apply's backend writes (or on `svcacct deliver`), each key's
//! secret goes to its targets. The secret comes from memory when this process issued the
//! key, and otherwise from the key file, decrypted with the identities the job passed
//! (`-i`). Each target's acknowledgement is recorded in the key's metadata at once, so a
//! process killed midway redelivers only what was not recorded. A failure is reported per
//! target and never revokes anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::github::{SecretAddress, put_secret};
use super::{Minted, delivered_ids, read_delivered, record_delivery};
use crate::address::Address;
use crate::config::Config;
use crate::config::DeliverPins;
use crate::config::delivery::Target;
use crate::plan::{Action, Plan};
use crate::secrets::{decrypt_file, key_file_path, load_identities};

/// What a delivery run needs besides the config.
pub struct Settings<'a> {
    /// Age identities (or SSH keys) that decrypt key files (`-i`).
    pub identities: &'a [PathBuf],
    pub pins: &'a DeliverPins,
    /// Secrets this process issued.
    pub minted: &'a Minted,
    pub now: OffsetDateTime,
}

/// What happened to each target.
#[derive(Debug, Default)]
pub struct DeliveryReport {
    /// `(key, target, "created"/"updated"/"written"/"done")`.
    pub delivered: Vec<(Address, String, &'static str)>,
    pub failed: Vec<(Address, String, String)>,
    /// Keys not delivered because the change that issues their key failed.
    pub skipped: Vec<Address>,
}

impl DeliveryReport {
    /// Whether every target that was to get a key got it.
    pub fn complete(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty()
    }

    /// Prints one line per target, and the failures' summary.
    pub fn print(&self) {
        let esc = |s: &str| crate::escape::terminal(s).into_owned();
        for (a, t, how) in &self.delivered {
            println!("  → {a} to {}: {how}", esc(t));
        }
        for (a, t, e) in &self.failed {
            println!("  failed  {a} to {}: {}", esc(t), esc(e));
        }
        for a in &self.skipped {
            println!("  skipped {a}: the change that issues its key failed");
        }
    }
}

/// Whether the plan delivers anything.
pub fn needs_delivery(plan: &Plan) -> bool {
    plan.changes.iter().any(|c| c.action == Action::Deliver)
}

/// Delivers every key the plan's `deliver` changes name, after the apply's writes: `failed`
/// are the addresses whose changes failed or were skipped (their keys are not delivered).
pub fn deliver_changes(
    plan: &Plan,
    failed: &[Address],
    config: &Config,
    settings: &Settings<'_>,
) -> DeliveryReport {
    let mut report = DeliveryReport::default();
    for c in plan.changes.iter().filter(|c| c.action == Action::Deliver) {
        if c.depends_on
            .iter()
            .any(|&d| failed.contains(&plan.changes[d].address))
        {
            report.skipped.push(c.address.clone());
            continue;
        }
        deliver_key(&c.address, false, config, settings, &mut report);
    }
    report
}

/// Delivers one key's current secret to its targets: those that lack it, or all (`again`).
pub fn deliver_key(
    address: &Address,
    again: bool,
    config: &Config,
    settings: &Settings<'_>,
    report: &mut DeliveryReport,
) {
    let Address::Key { account, key } = address else {
        return;
    };
    let Some(d) = config.delivery.get(&(account.clone(), key.clone())) else {
        return;
    };
    let dir = &config.secrets.dir;
    let (file_id, delivered) = read_delivered(dir, account, key);
    let fail_all = |report: &mut DeliveryReport, targets: &[&Target], why: &str| {
        for t in targets {
            report
                .failed
                .push((address.clone(), t.to_string(), why.to_string()));
        }
    };
    let all: Vec<&Target> = d.targets.iter().collect();
    let Some(id) = file_id else {
        fail_all(
            report,
            &all,
            "the key has no file metadata: svcacct does not hold its secret",
        );
        return;
    };
    let have = delivered_ids(&delivered, &id);
    let missing: Vec<&Target> = d
        .targets
        .iter()
        .filter(|t| again || !have.contains(&t.to_string().as_str()))
        .collect();
    if missing.is_empty() {
        return;
    }
    let secret = match secret(settings, dir, (account, key, &id)) {
        Ok(s) => s,
        Err(e) => {
            fail_all(report, &missing, &e);
            return;
        }
    };
    for t in missing {
        let outcome = send_and_record(t, config, settings, (account, key, &id), &secret);
        match outcome {
            Ok(how) => report.delivered.push((address.clone(), t.to_string(), how)),
            Err(e) => report.failed.push((address.clone(), t.to_string(), e)),
        }
    }
}

/// Key `id`'s secret: from memory when this process issued it, otherwise from its key file.
fn secret(
    settings: &Settings<'_>,
    dir: &Path,
    (account, key, id): (&str, &str, &str),
) -> Result<Zeroizing<String>, String> {
    match settings.minted.get(account, key, id) {
        Some(s) => Ok(s),
        None => from_file(&key_file_path(dir, account, key), id, settings.identities),
    }
}

/// Sends `secret` to one target and records its acknowledgement in the key's metadata at
/// once; how it was delivered, or why it failed.
fn send_and_record(
    t: &Target,
    config: &Config,
    settings: &Settings<'_>,
    (account, key, id): (&str, &str, &str),
    secret: &str,
) -> Result<&'static str, String> {
    let how = send(t, config, settings.pins, (account, key, id), secret)?;
    super::faults::delivered();
    record_delivery(&config.secrets.dir, account, key, t, id, settings.now).map_err(|e| {
        format!("delivered, but recording it in the key's metadata failed ({e}); the next apply delivers it again")
    })?;
    Ok(how)
}

/// Sends `secret` to one target, checking first that the job allows it.
fn send(
    t: &Target,
    config: &Config,
    pins: &DeliverPins,
    (account, key, id): (&str, &str, &str),
    secret: &str,
) -> Result<&'static str, String> {
    match t {
        Target::GithubActions {
            owner,
            repo,
            environment,
            secret: name,
            token_env,
        } => {
            let token =
                Zeroizing::new(std::env::var(token_env).map_err(|_| {
                    format!("no GitHub token: the variable {token_env} is not set")
                })?);
            let at = SecretAddress {
                owner,
                repo,
                environment: environment.as_deref(),
                secret: name,
            };
            put_secret(pins.github_api(), &token, &at, secret.as_bytes())
        }
        Target::File { path, mode } => {
            if !pins.path_allowed(path) {
                return Err(format!(
                    "the job does not allow writing {}: pass --allow-deliver-path DIR (or SVCACCT_ALLOW_DELIVER_PATH) naming it or a directory above it",
                    path.display()
                ));
            }
            super::file::write_secret(path, *mode, secret.as_bytes()).map(|()| "written")
        }
        Target::Command { argv } => {
            if !pins.command_allowed(&argv[0]) {
                return Err(format!(
                    "the job does not allow running {}: pass --allow-deliver-command {0} (or SVCACCT_ALLOW_DELIVER_COMMAND)",
                    argv[0]
                ));
            }
            super::command::run(
                argv,
                &config.base_dir,
                (account, key, id),
                secret.as_bytes(),
            )
            .map(|()| "done")
        }
    }
}

/// The secret of key `id` from its key file.
fn from_file(path: &Path, id: &str, identities: &[PathBuf]) -> Result<Zeroizing<String>, String> {
    if identities.is_empty() {
        return Err(
            "delivering a key issued by an earlier apply needs an identity that decrypts its file: pass -i IDENTITY (or SVCACCT_IDENTITY_FILE)".into(),
        );
    }
    let mut loaded = Vec::new();
    for i in identities {
        loaded.extend(load_identities(i)?);
    }
    let plain = decrypt_file(path, &loaded)?;
    // Borrowed from the zeroized buffer: no copy of the secret is left behind but the one
    // returned (ids and secrets hold no JSON escapes).
    #[derive(Deserialize)]
    struct Payload<'a> {
        key_id: &'a str,
        secret: &'a str,
    }
    let payload: Payload = serde_json::from_slice(&plain)
        .map_err(|_| format!("{} does not hold a svcacct key", path.display()))?;
    if payload.key_id != id {
        return Err(format!(
            "{} holds key {}, not {id}",
            path.display(),
            payload.key_id
        ));
    }
    Ok(Zeroizing::new(payload.secret.to_string()))
}

/// Keys with delivery targets, by address.
pub fn keys_with_targets(config: &Config) -> BTreeMap<Address, usize> {
    config
        .delivery
        .iter()
        .filter(|(_, d)| !d.targets.is_empty())
        .map(|((a, k), d)| (Address::key(a, k), d.targets.len()))
        .collect()
}

//! Who a new organization's key files are encrypted to: the recipients given, or a new age
//! identity, written (mode 0600) outside the repository, where it cannot be committed.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use anyhow::{Context, Result, bail};
use zeroize::Zeroizing;

use crate::cli::InitArgs;

/// Who the key files are encrypted to: the recipients given, or a new identity.
pub(super) enum Recipients {
    Given(Vec<String>),
    Generate {
        path: PathBuf,
        identity: age::x25519::Identity,
    },
}

impl Recipients {
    pub(super) fn resolve(args: &InitArgs, org: &str) -> Result<Recipients> {
        if !args.recipients.is_empty() {
            let mut given = Vec::new();
            for r in &args.recipients {
                crate::secrets::parse_recipient(r).map_err(anyhow::Error::msg)?;
                given.push(r.trim().to_string());
            }
            return Ok(Recipients::Given(given));
        }
        let path = match &args.identity_out {
            Some(p) => p.clone(),
            None => default_identity_dir()?.join(format!("{org}.txt")),
        };
        Ok(Recipients::Generate {
            path,
            identity: age::x25519::Identity::generate(),
        })
    }

    pub(super) fn file_text(&self) -> String {
        let mut text = String::from(
            "# Who can decrypt this organization's key files: one age (age1...) or SSH public key\n\
             # a line. Each key file is encrypted to every key listed here when it is written.\n",
        );
        match self {
            Recipients::Given(given) => {
                for r in given {
                    let _ = writeln!(text, "{r}");
                }
            }
            Recipients::Generate { identity, .. } => {
                let _ = writeln!(text, "{}", identity.to_public());
            }
        }
        text
    }
}

/// `$XDG_CONFIG_HOME/svcacct/identities`, or `~/.config/svcacct/identities`.
pub(super) fn default_identity_dir() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".config"),
            None => bail!("HOME is not set: say where the new identity goes with --identity-out"),
        },
    };
    Ok(base.join("svcacct").join("identities"))
}

/// The path with symbolic links and `..` resolved as far as it exists.
pub(super) fn resolved(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = abs.as_path();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(mut p) = existing.canonicalize() {
            // What does not exist yet is no symbolic link, so its `..` can be taken lexically.
            for part in rest.iter().rev() {
                match part.to_str() {
                    Some("..") => {
                        p.pop();
                    }
                    Some(".") => {}
                    _ => p.push(part),
                }
            }
            return p;
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last.as_os_str().to_owned());
                existing = parent;
            }
            _ => return abs,
        }
    }
}

/// The identity must not land in the repository, where it would be committed next to the
/// files it decrypts, nor replace an identity that already decrypts something.
pub(super) fn check_identity_path(identity: &Path, dir: &Path) -> Result<()> {
    if resolved(identity).starts_with(resolved(dir)) {
        bail!(
            "the identity {} would be inside {}, where it would be committed next to the key \
             files it decrypts; give --identity-out a path outside the repository; nothing was \
             written",
            identity.display(),
            dir.display()
        );
    }
    if std::fs::symlink_metadata(identity).is_ok() {
        bail!(
            "{} already exists; init does not overwrite an identity (give --identity-out another \
             path); nothing was written",
            identity.display()
        );
    }
    Ok(())
}

/// Writes the identity as `age-keygen` does, readable by its owner only.
pub(super) fn write_identity(
    path: &Path,
    identity: &age::x25519::Identity,
    org: &str,
) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let text = Zeroizing::new(format!(
        "# svcacct identity of organization {org}: decrypts its key files. Keep it secret.\n\
         # created: {created}\n# public key: {}\n{}\n",
        identity.to_public(),
        identity.to_string().expose_secret()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create the identity file {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write the identity file {}", path.display()))
}

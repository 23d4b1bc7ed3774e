//! `svcacct init`: a new organization's repository, ready to validate, plan and apply. A
//! company stamps every organization out of one template directory, so the same roles, teams
//! and bots exist everywhere; everything is written to a staging directory and validated there
//! first, so a template that does not validate leaves nothing behind.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use anyhow::{Context, Result, bail};
use zeroize::Zeroizing;

use super::{Output, exit};
use crate::cli::{InitArgs, InitBackend};
use crate::config::{Config, ConfigError, CredentialPolicy, Severity, valid_name};
use crate::escape;

/// The placeholder a template's files name the organization with.
pub const PLACEHOLDER: &str = "organization";

/// The file init writes the organization's settings to when the config comes from a template
/// (the config is then the whole directory). Not `svcacct.yaml`: `svcacct plan` without `-c`
/// would read it alone and plan to delete everything the template's files define.
const SETTINGS_FILE: &str = "organization.yaml";
/// The config file of the built-in starter, which `-c` finds by default.
const STARTER_FILE: &str = "svcacct.yaml";
const RECIPIENTS_FILE: &str = "recipients.txt";
const GITIGNORE: &str = ".gitignore";

/// The CI of examples/github-actions: plan on pull requests, apply on merge, nightly drift.
/// The workflows call the scripts, and the action that installs svcacct, by these paths.
const CI_FILES: [(&str, &str); 11] = [
    (
        ".github/workflows/svcacct-plan.yml",
        include_str!("../../examples/github-actions/svcacct-plan.yml"),
    ),
    (
        ".github/workflows/svcacct-apply.yml",
        include_str!("../../examples/github-actions/svcacct-apply.yml"),
    ),
    (
        ".github/workflows/svcacct-drift.yml",
        include_str!("../../examples/github-actions/svcacct-drift.yml"),
    ),
    (
        ".github/svcacct/plan.sh",
        include_str!("../../examples/github-actions/scripts/plan.sh"),
    ),
    (
        ".github/svcacct/post-comment.sh",
        include_str!("../../examples/github-actions/scripts/post-comment.sh"),
    ),
    (
        ".github/svcacct/fetch-plan.sh",
        include_str!("../../examples/github-actions/scripts/fetch-plan.sh"),
    ),
    (
        ".github/svcacct/apply.sh",
        include_str!("../../examples/github-actions/scripts/apply.sh"),
    ),
    (
        ".github/svcacct/drift.sh",
        include_str!("../../examples/github-actions/scripts/drift.sh"),
    ),
    (
        ".github/actions/svcacct/action.yml",
        include_str!("../../.github/actions/svcacct/action.yml"),
    ),
    (
        ".github/actions/svcacct/install.sh",
        include_str!("../../.github/actions/svcacct/install.sh"),
    ),
    (
        ".github/actions/svcacct/run.sh",
        include_str!("../../.github/actions/svcacct/run.sh"),
    ),
];

/// The CI files, pointed at the config: the directory when it is stamped from a template.
fn ci_files(config_arg: &str) -> impl Iterator<Item = (String, String)> + '_ {
    CI_FILES.iter().map(move |(name, text)| {
        let text = text.replace(
            "SVCACCT_CONFIG: svcacct.yaml",
            &format!("SVCACCT_CONFIG: {config_arg}"),
        );
        (name.to_string(), text)
    })
}

/// The account whose key CI plans and applies with, over an `http` backend.
const MANAGER_ACCOUNT: &str = "svcacct-ci";
const MANAGER_ROLE: &str = "svcacct-manager";
const MANAGER_TEAM: &str = "svcacct";
const MANAGE_PERMISSION: &str = "svcacct:manage";

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

    let mut files: Vec<(String, String)> = Vec::new();
    let config_arg = match &template {
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

/// Who the key files are encrypted to: the recipients given, or a new identity.
enum Recipients {
    Given(Vec<String>),
    Generate {
        path: PathBuf,
        identity: age::x25519::Identity,
    },
}

impl Recipients {
    fn resolve(args: &InitArgs, org: &str) -> Result<Recipients> {
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

    fn file_text(&self) -> String {
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
fn default_identity_dir() -> Result<PathBuf> {
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
fn resolved(path: &Path) -> PathBuf {
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
fn check_identity_path(identity: &Path, dir: &Path) -> Result<()> {
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
fn write_identity(path: &Path, identity: &age::x25519::Identity, org: &str) -> Result<()> {
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

/// The backend section, indented under `backend:`.
fn backend_yaml(args: &InitArgs, credentials: &CredentialPolicy, org: &str) -> Result<String> {
    match args.backend {
        InitBackend::Local => {
            if args.url.is_some() {
                bail!("--url is for --backend http; the local backend is a file");
            }
            Ok(format!(
                "  type: local\n  path: .svcacct/{org}.db            # the organization, in SQLite; made by the first apply\n"
            ))
        }
        InitBackend::Http => {
            let url = match (&args.url, &credentials.pinned) {
                (Some(u), _) => format!("  url: {}\n", yaml_scalar(u.trim_end_matches('/'))),
                // The run pins the server, so the config names none: every job that pins
                // another one refuses it rather than sending its token elsewhere.
                (None, Some(_)) => {
                    "  # url: none; the server is pinned by --backend-url or SVCACCT_BACKEND_URL\n"
                        .to_string()
                }
                (None, None) => bail!(
                    "--backend http needs the server's --url (or a pinned --backend-url / SVCACCT_BACKEND_URL)"
                ),
            };
            Ok(format!(
                "  type: http\n{url}  token_env: SVCACCT_TOKEN         # the token is read from this variable, never from YAML\n"
            ))
        }
    }
}

/// A string as a YAML scalar that stays one string whatever it holds.
fn yaml_scalar(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

const SECRETS_YAML: &str = "\
secrets:
  dir: secrets                      # secrets/<account>/<key>.age: encrypted, commit them
  recipients_file: recipients.txt   # who can decrypt them: one public key a line
";

/// The starter's policy: rules most organizations want from the first day, each commented,
/// and all met by the starter itself.
const POLICY_YAML: &str = "\
policy:
  # Rules checked by `validate`, `plan` and `apply`; `svcacct policy explain ADDRESS` shows which
  # apply to an object and why. `severity: error` (the default) blocks; `warn` only reports. A
  # rule may `match: { name: \"ci-*\", team: platform }` and grant exceptions, each with a reason
  # that every plan shows: `except: [{ match: { name: legacy-bot }, reason: \"...\" }]`.
  rules:
    - key_max_lifetime: 90d         # every key has an `expires_in` of at most 90 days
    - rotation_required: 30d        # and a `rotate_every` of at most 30 days
    - admin_requires_protect: true  # an account holding every permission is `protect: true`
    - name: no-full-access          # no account gains these through any role or `admin`
      forbid_permission: [\"*:*\", \"secrets:*\"]
    - account_requires_owner: true  # `owner: <team>`, or a team named in the description
      severity: warn
    - max_keys_per_account: 5
      severity: warn
";

const GITIGNORE_TEXT: &str = "\
# The local backend's organization (SQLite) and its lock: state, not source.
.svcacct/
# Key files under secrets/ are age-encrypted to recipients.txt and are meant to be committed.
";

/// The role, team and account whose key CI plans and applies with; `None` for `local`.
fn manager_yaml(manager: &[String]) -> (String, String, String) {
    let perms = manager.join(", ");
    (
        format!(
            "  {MANAGER_ROLE}:\n    description: Plans and applies this organization (svcacct itself)\n    \
             # svcacct:manage, and every permission this config hands out: a managing key may\n    \
             # only issue keys to accounts whose permissions it holds. A new permission here is\n    \
             # applied once with the operator token.\n    permissions: [{perms}]\n"
        ),
        format!("  {MANAGER_TEAM}:\n    description: svcacct itself\n"),
        format!(
            "  {MANAGER_ACCOUNT}:\n    description: CI plans and applies this repository with its key\n    \
             owner: {MANAGER_TEAM}\n    \
             teams:\n      {MANAGER_TEAM}: {MANAGER_ROLE}\n    \
             protect: true                   # CI cannot apply without it\n    \
             keys:\n      ci:\n        description: the CI job's SVCACCT_TOKEN\n        \
             expires_in: 90d\n        rotate_every: 30d\n        \
             overlap: 7d                 # time to commit the new key file and use it\n"
        ),
    )
}

/// The settings file of a config stamped from a template.
fn settings_yaml(org: &str, backend: &str, manager: Option<&[String]>) -> String {
    let mut y = format!(
        "# Organization {org}, written by `svcacct init`: its settings here, its roles, teams and\n\
         # accounts in the other *.yaml files of this directory (`svcacct plan -c .` merges them).\n\
         organization: {org}\nbackend:\n{backend}{SECRETS_YAML}"
    );
    if let Some(m) = manager {
        let (role, team, account) = manager_yaml(m);
        let _ = write!(
            y,
            "roles:\n{role}teams:\n{team}service_accounts:\n{account}"
        );
    }
    y
}

/// The built-in starter: one team, one role, one CI bot with one key.
fn starter_yaml(org: &str, backend: &str, manager: Option<&[String]>) -> String {
    let (role, team, account) = manager.map(manager_yaml).unwrap_or_default();
    format!(
        "# Organization {org}, written by `svcacct init`: one team, one custom role and one CI
# account with one key to start from. `svcacct plan` shows what `svcacct apply` would change.
organization: {org}
backend:
{backend}{SECRETS_YAML}{POLICY_YAML}roles:
  deployer:
    description: Deploys flows
    permissions: [deployments:read, deployments:execute, flows:read]
{role}teams:
  platform:
    description: Platform engineering
{team}service_accounts:
  ci-bot:
    description: CI deploys; owned by platform
    teams:
      platform: deployer            # team -> role; permissions are the union over teams
    keys:
      deploy:
        description: the CI deploy job
        expires_in: 90d             # durations: 30m, 24h, 90d, 2w
        rotate_every: 30d           # plan proposes a rotation once the key is this old
        overlap: 24h                # the old key keeps working this long after rotation
{account}"
    )
}

fn config_file(from_template: bool) -> &'static str {
    if from_template {
        SETTINGS_FILE
    } else {
        STARTER_FILE
    }
}

/// The `*.yaml`/`*.yml` files of a template directory, by name.
fn read_template(dir: &Path) -> Result<Vec<(String, String)>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the template directory {}", dir.display()))?;
    let mut files = Vec::new();
    for e in entries {
        let path = e
            .with_context(|| format!("cannot read the template directory {}", dir.display()))?
            .path();
        if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} is not a UTF-8 file name", path.display()))?
            .to_string();
        if name == SETTINGS_FILE {
            bail!(
                "the template has {}, the file init writes the organization's settings to; \
                 rename it (and keep `backend` and `secrets` out of the template)",
                path.display()
            );
        }
        // A FIFO named *.yaml would hang the read.
        if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            bail!("template entry {} is not a regular file", path.display());
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read template file {}", path.display()))?;
        files.push((name, text));
    }
    if files.is_empty() {
        bail!(
            "no *.yaml or *.yml files in the template directory {}",
            dir.display()
        );
    }
    files.sort();
    Ok(files)
}

/// A template file with every `{{organization}}` replaced; any other `{{…}}` is an error
/// rather than text that would be written as is.
fn stamp(name: &str, text: &str, org: &str) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            bail!(unknown_placeholder(name, text, rest, start));
        };
        if after[..end].trim() != PLACEHOLDER {
            bail!(unknown_placeholder(name, text, rest, start));
        }
        out.push_str(org);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn unknown_placeholder(name: &str, text: &str, rest: &str, start: usize) -> String {
    let at = text.len() - rest.len() + start;
    let line = text[..at].matches('\n').count() + 1;
    let snippet: String = text[at..]
        .chars()
        .take_while(|c| *c != '\n')
        .take(40)
        .collect();
    format!(
        "template file {name}, line {line}: `{snippet}` is not a placeholder init knows; the only \
         one is {{{{{PLACEHOLDER}}}}}; nothing was written"
    )
}

/// DIR must be new or empty: init never overwrites a file.
fn check_target(dir: &Path, files: &[(String, String)], config: &str) -> Result<()> {
    let meta = match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        Ok(m) => m,
    };
    if !meta.is_dir() {
        bail!(
            "{} exists and is not a directory; nothing was written",
            dir.display()
        );
    }
    let mut present: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    if present.is_empty() {
        return Ok(());
    }
    let ours: Vec<&str> = files
        .iter()
        .map(|(n, _)| n.as_str())
        .chain([config])
        .collect();
    let clash: Vec<&str> = present
        .iter()
        .map(String::as_str)
        .filter(|p| ours.contains(p))
        .collect();
    if !clash.is_empty() {
        bail!(
            "{} already holds {}; init does not overwrite files; nothing was written",
            dir.display(),
            clash.join(", ")
        );
    }
    let shown: Vec<&str> = present.iter().take(5).map(String::as_str).collect();
    bail!(
        "{} is not empty (it holds {}{}); init writes only into a new or empty directory; \
         nothing was written",
        dir.display(),
        shown.join(", "),
        if present.len() > 5 { ", …" } else { "" }
    )
}

/// The directories init creates for DIR, removed again if it fails.
struct Target {
    created: Vec<PathBuf>,
}

impl Target {
    fn prepare(dir: &Path) -> Result<Target> {
        let mut created = Vec::new();
        let mut p = Some(dir);
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            created.push(d.to_path_buf());
            p = d.parent();
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Target { created })
    }

    fn undo(self) {
        // Innermost first; `remove_dir` removes only what is still empty.
        for d in &self.created {
            let _ = std::fs::remove_dir(d);
        }
    }
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

/// Moves each staged file into DIR without replacing anything: a hard link fails when the
/// name exists, so a file that appeared meanwhile is kept, and the move is reported failed
/// (what was moved is taken back, newest first).
fn move_into_place(staging: &Path, dir: &Path) -> Result<()> {
    let mut moved = Vec::new();
    let result = move_tree(staging, dir, &mut moved);
    if result.is_err() {
        for m in moved.iter().rev() {
            let _ = std::fs::remove_file(m).or_else(|_| std::fs::remove_dir(m));
        }
    }
    result
}

/// Links the files of `from` into `to`, making its directories; records each new path.
fn move_tree(from: &Path, to: &Path, moved: &mut Vec<std::path::PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            std::fs::create_dir(&target)
                .with_context(|| format!("cannot write {}", target.display()))?;
            moved.push(target.clone());
            move_tree(&e.path(), &target, moved)?;
        } else {
            std::fs::hard_link(e.path(), &target)
                .with_context(|| format!("cannot write {}", target.display()))?;
            moved.push(target);
        }
    }
    Ok(())
}

fn summary(
    args: &InitArgs,
    files: &[(String, String)],
    config: &Config,
    from_template: bool,
    config_arg: &str,
) -> String {
    let d = &config.desired;
    let keys: usize = d.service_accounts.values().map(|a| a.keys.len()).sum();
    let mut s = format!(
        "Initialized organization {} in {}: {} custom roles, {} teams, {} service accounts, {} keys.\n",
        d.name,
        args.dir.display(),
        d.roles.values().filter(|r| !r.builtin).count(),
        d.teams.len(),
        d.service_accounts.len(),
        keys
    );
    let _ = writeln!(
        s,
        "  {:<18} {}",
        config_file(from_template),
        if from_template {
            "the settings: organization, backend, secrets"
        } else {
            "the config"
        }
    );
    for (name, _) in files {
        let what = match name.as_str() {
            RECIPIENTS_FILE => "who key files are encrypted to",
            GITIGNORE => "keeps local state out of git; key files are committed",
            n if n.starts_with(".github/workflows/") => {
                "CI: plan on pull requests, apply on merge, nightly drift"
            }
            n if n.starts_with(".github/") => "a step of the CI workflows",
            _ => "from the template",
        };
        let _ = writeln!(s, "  {name:<18} {what}");
    }
    let c = if config_arg == STARTER_FILE {
        String::new()
    } else {
        format!(" -c {config_arg}")
    };
    let _ = writeln!(s, "Next steps:\n  cd {}", args.dir.display());
    if args.backend == InitBackend::Http {
        let _ = writeln!(
            s,
            "  export SVCACCT_TOKEN=...     # the server's operator token, for the first apply only"
        );
    }
    let _ = writeln!(
        s,
        "  svcacct validate{c}\n  svcacct plan{c}\n  svcacct apply{c}          # writes each new key to secrets/<account>/<key>.age"
    );
    if args.backend == InitBackend::Http {
        let _ = writeln!(
            s,
            "Then give CI the key in secrets/{MANAGER_ACCOUNT}/ci.age as its SVCACCT_TOKEN; the \
             operator token is no longer needed."
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_replaces_the_placeholder_and_refuses_others() {
        let t = "organization: {{organization}}\nteams:\n  x:\n    description: {{ organization }} team\n";
        assert_eq!(
            stamp("t.yaml", t, "acme").unwrap(),
            "organization: acme\nteams:\n  x:\n    description: acme team\n"
        );
        let e = stamp("t.yaml", "a: 1\nb: {{org}}\n", "acme").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(e.to_string().contains("{{org}}"), "{e}");
        assert!(stamp("t.yaml", "a: {{organization\n", "acme").is_err());
    }
}

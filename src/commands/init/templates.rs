//! What init writes, as text: the config (the built-in starter, or a template's files stamped
//! with the organization's name), its backend section, the default policy, `.gitignore`, and
//! the account CI manages the organization with over `http`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::cli::{InitArgs, InitBackend};
use crate::config::CredentialPolicy;

/// The placeholder a template's files name the organization with.
pub(super) const PLACEHOLDER: &str = "organization";

/// The file init writes the organization's settings to when the config comes from a template
/// (the config is then the whole directory). Not `svcacct.yaml`: `svcacct plan` without `-c`
/// would read it alone and plan to delete everything the template's files define.
pub(super) const SETTINGS_FILE: &str = "organization.yaml";

/// The config file of the built-in starter, which `-c` finds by default.
pub(super) const STARTER_FILE: &str = "svcacct.yaml";

pub(super) const RECIPIENTS_FILE: &str = "recipients.txt";

pub(super) const GITIGNORE: &str = ".gitignore";

/// The account whose key CI plans and applies with, over an `http` backend.
pub(super) const MANAGER_ACCOUNT: &str = "svcacct-ci";

pub(super) const MANAGER_ROLE: &str = "svcacct-manager";

pub(super) const MANAGER_TEAM: &str = "svcacct";

pub(super) const MANAGE_PERMISSION: &str = "svcacct:manage";

/// The backend section, indented under `backend:`.
pub(super) fn backend_yaml(
    args: &InitArgs,
    credentials: &CredentialPolicy,
    org: &str,
) -> Result<String> {
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
pub(super) fn yaml_scalar(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

pub(super) const SECRETS_YAML: &str = "\
secrets:
  dir: secrets                      # secrets/<account>/<key>.age: encrypted, commit them
  recipients_file: recipients.txt   # who can decrypt them: one public key a line
";

/// The starter's policy: rules most organizations want from the first day, each commented,
/// and all met by the starter itself.
pub(super) const POLICY_YAML: &str = "\
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

pub(super) const GITIGNORE_TEXT: &str = "\
# The local backend's organization (SQLite) and its lock: state, not source.
.svcacct/
# Key files under secrets/ are age-encrypted to recipients.txt and are meant to be committed.
";

/// The role, team and account whose key CI plans and applies with; `None` for `local`.
pub(super) fn manager_yaml(manager: &[String]) -> (String, String, String) {
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
pub(super) fn settings_yaml(org: &str, backend: &str, manager: Option<&[String]>) -> String {
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
pub(super) fn starter_yaml(org: &str, backend: &str, manager: Option<&[String]>) -> String {
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

pub(super) fn config_file(from_template: bool) -> &'static str {
    if from_template {
        SETTINGS_FILE
    } else {
        STARTER_FILE
    }
}

/// The `*.yaml`/`*.yml` files of a template directory, by name.
pub(super) fn read_template(dir: &Path) -> Result<Vec<(String, String)>> {
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
pub(super) fn stamp(name: &str, text: &str, org: &str) -> Result<String> {
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

pub(super) fn unknown_placeholder(name: &str, text: &str, rest: &str, start: usize) -> String {
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

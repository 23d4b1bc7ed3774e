//! Turning merged YAML into a desired organization, collecting every error (with its place)
//! rather than stopping at the first, so one run shows everything to fix. One file per part
//! of the config, and one for what the backend can store.

mod backend;
mod capabilities;
mod deliver;
mod findings;
mod objects;
mod secrets;

use std::path::PathBuf;

use crate::backend::BackendConfig;
use crate::config::credentials::CredentialPolicy;
use crate::config::diagnostic::Severity;
use crate::config::load::Merged;
use crate::config::{Config, ConfigError, Policy};
use crate::model::Organization;

use backend::{backend_place, hold_to_credentials};
use capabilities::{check_capabilities, project};
use findings::{Findings, at};
use objects::{roles, service_accounts, teams};
use secrets::secrets;

pub fn validate(
    base_dir: PathBuf,
    mut merged: Merged,
    credentials: &CredentialPolicy,
) -> Result<Config, ConfigError> {
    let mut backend = match (merged.backend.as_ref(), &credentials.pinned) {
        (Some(b), _) => b.item.value.clone(),
        // Under a pin, a config that names no backend uses the pinned one.
        (None, Some(pin)) => BackendConfig::at_url(pin.as_str()),
        (None, None) => BackendConfig::default(),
    };
    let mut f = Findings {
        sources: &merged.sources,
        all: Vec::new(),
        caps: backend.capabilities(),
    };
    check_capabilities(&mut f, &merged);
    let organization = organization_name(&mut f, &merged);
    let mut desired = Organization::with_builtin_roles(&organization, f.caps.builtin_roles);
    roles(&mut f, &merged, &mut desired);
    teams(&mut f, &merged, &mut desired);
    let first_key = service_accounts(&mut f, &mut merged.service_accounts, &mut desired);
    project(&mut f, &merged, &mut desired);
    hold_to_credentials(&mut f, &merged, &mut backend, credentials);
    if let Err(e) = backend.resolve(&base_dir, &organization) {
        let (file, place) = backend_place(&merged);
        f.error(file, place, e);
    }
    let secrets = secrets(&mut f, &merged, &base_dir, first_key);
    let policy = policy(&mut f, &merged);
    let mut rules = super::rules::compile(&merged, &desired, &mut f.all);
    let delivery = deliver::deliveries(&mut f, &merged, &base_dir, credentials);
    if f.all.iter().any(|d| d.severity == Severity::Error) {
        return Err(ConfigError::Invalid(f.all));
    }
    let warnings = f.all;
    // Violations quote the config's lines; the text moves to the rules rather than copied.
    // The rest of the raw config is freed as this returns, not left to the process's exit:
    // its memory holds the snapshot and the scan that come next (left, a 100,000-account
    // plan's peak rose from 322 to 518 MiB).
    if !rules.rules.is_empty() {
        rules.spans.sources = merged.sources;
    }
    Ok(Config {
        base_dir,
        backend,
        secrets,
        policy,
        rules,
        desired,
        delivery,
        warnings,
    })
}

/// The organization's name, which every config must give.
fn organization_name(f: &mut Findings<'_>, merged: &Merged) -> String {
    match &merged.organization {
        Some(o) => {
            f.check_name(o.file, at(&o.item), "organization", &o.item.value);
            o.item.value.clone()
        }
        None => {
            f.push(
                Severity::Error,
                0,
                (1, 1),
                "missing `organization`".into(),
                Some("add `organization: <name>` at the top of the config".into()),
            );
            String::new()
        }
    }
}

/// Deletion safety rules.
fn policy(f: &mut Findings<'_>, merged: &Merged) -> Policy {
    let mut policy = Policy::default();
    if let Some(p) = &merged.policy {
        if let Some(u) = p.item.value.unmanaged {
            policy.unmanaged = u;
        }
        if let Some(m) = &p.item.value.max_delete_percent {
            if m.value > 100 {
                f.error(
                    p.file,
                    at(m),
                    format!(
                        "max_delete_percent is {}; it must be between 0 and 100",
                        m.value
                    ),
                );
            }
            policy.max_delete_percent = m.value;
        }
    }
    policy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::capabilities::{ALL_FIELDS, Fields, Minting};
    use crate::backend::{Capabilities, Vocabulary};
    use crate::config::diagnostic::Source;
    use crate::duration::Duration;
    use crate::model::{ServiceAccount, Team};

    /// A backend shaped like a SaaS API: one server-minted key per account, a 48 h overlap,
    /// a fixed list of permission names, no scopes, no disabling, no account expiry.
    const ONE_KEY: Capabilities = Capabilities {
        name: "one-key",
        minting: Minting::Server,
        max_keys_per_account: 1,
        max_overlap: Some(Duration(48 * 3600)),
        persists: Fields {
            scopes: false,
            disabled: false,
            account_expiry: false,
            ..ALL_FIELDS
        },
        builtin_roles: &["Owner", "Viewer"],
        vocabulary: Vocabulary::Names(&["see_flows", "run_deployments"]),
        revision: false,
        lock: false,
        audit_log: false,
        fixed_teams: false,
        reserved_roles: &[],
        ownership_record: false,
        records_key_use: false,
        cannot_verify: None,
    };

    /// The error messages and places `validate` finds in `yaml` checked against `caps`.
    fn findings(yaml: &str, caps: &'static Capabilities) -> Vec<(u64, u64, String)> {
        let source = Source {
            path: "svcacct.yaml".into(),
            text: yaml.into(),
        };
        let merged = super::super::load::parse_and_merge(vec![source]).expect("parses");
        let mut f = Findings {
            sources: &merged.sources,
            all: Vec::new(),
            caps,
        };
        check_capabilities(&mut f, &merged);
        f.permissions(
            0,
            &merged.roles[0].item.value.1.permissions,
            "permission",
            "",
        );
        f.all
            .iter()
            .map(|d| (d.line, d.column, d.message.clone()))
            .collect()
    }

    const YAML: &str = "organization: acme
roles:
  runner:
    permissions: [see_flows, run_flows]
service_accounts:
  bot:
    disabled: true
    expires: 2027-01-01
    keys:
      main:
        scopes: [see_flows]
        overlap: 72h
      second: {}
";

    #[test]
    fn a_backend_refuses_what_it_cannot_store_where_it_is_written() {
        let got = findings(YAML, &ONE_KEY);
        let want = [
            (
                6,
                3,
                "the one-key backend cannot store `disabled` (a disabled service account)",
            ),
            (
                8,
                14,
                "the one-key backend cannot store an account's `expires`; use `expires_in` on its key",
            ),
            (
                13,
                7,
                "service account `bot` declares 2 keys; the one-key backend keeps at most 1 key per account",
            ),
            (
                11,
                18,
                "the one-key backend cannot store key `scopes`; narrow the account's roles instead",
            ),
            (
                10,
                7,
                "key `main` has overlap 3d; the one-key backend keeps a rotated-out key at most 2d",
            ),
            (4, 30, "the one-key backend has no permission `run_flows`"),
        ];
        let got: Vec<(u64, u64, &str)> = got.iter().map(|(l, c, m)| (*l, *c, m.as_str())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn what_a_backend_does_not_keep_is_not_planned() {
        const NO_DESCRIPTIONS: Capabilities = Capabilities {
            persists: Fields {
                descriptions: false,
                ..ALL_FIELDS
            },
            ..crate::backend::capabilities::SVCACCT_STORE
        };
        let mut org = Organization::new("acme");
        org.teams.insert(
            "t".into(),
            Team {
                description: "kept in the config only".into(),
                ..Default::default()
            },
        );
        org.service_accounts.insert(
            "a".into(),
            ServiceAccount {
                description: "also".into(),
                ..Default::default()
            },
        );
        let mut same = org.clone();
        assert_eq!(
            NO_DESCRIPTIONS.project(&mut org),
            ["team descriptions", "service account descriptions"]
        );
        assert_eq!(org.teams["t"].description, "");
        assert_eq!(
            org.roles["viewer"].description, "Read only",
            "built-ins untouched"
        );
        assert!(
            crate::backend::capabilities::SVCACCT_STORE
                .project(&mut same)
                .is_empty()
        );
        assert_eq!(same.teams["t"].description, "kept in the config only");
    }

    #[test]
    fn svcacct_s_own_store_keeps_all_of_it() {
        let yaml = YAML.replace("[see_flows, run_flows]", "[flows:read, deployments:*]");
        let got = findings(&yaml, &crate::backend::capabilities::SVCACCT_STORE);
        assert_eq!(got, vec![]);
    }

    /// Accounts are checked in slices on several threads: the model holds every one with its
    /// description, and the findings come in file order whichever slice found them.
    #[test]
    fn a_big_config_s_accounts_are_all_checked_and_reported_in_file_order() {
        let mut yaml = String::from("organization: acme\nteams:\n  t: {}\nservice_accounts:\n");
        for a in 0..3000 {
            let team = if [7, 1600, 2999].contains(&a) {
                "nowhere"
            } else {
                "t"
            };
            yaml.push_str(&format!(
                "  acct-{a}:\n    description: Account {a}\n    teams: {{ {team}: viewer }}\n"
            ));
        }
        let load = |yaml: &str| {
            let source = Source {
                path: "svcacct.yaml".into(),
                text: yaml.into(),
            };
            let merged = super::super::load::parse_and_merge(vec![source]).expect("parses");
            validate(PathBuf::from("."), merged, &CredentialPolicy::default())
        };
        let Err(ConfigError::Invalid(found)) = load(&yaml) else {
            panic!("three undefined teams are errors");
        };
        let lines: Vec<u64> = found.iter().map(|d| d.line).collect();
        // 4 header lines, then 3 lines an account; the team is on an account's third line.
        assert_eq!(lines, [7, 1600, 2999].map(|a| 4 + 3 * a + 3), "{found:?}");
        assert!(
            found[1].message.contains("`acct-1600`"),
            "{}",
            found[1].message
        );

        let config = load(&yaml.replace("nowhere", "t")).expect("valid");
        let accounts = &config.desired.service_accounts;
        assert_eq!(accounts.len(), 3000);
        assert_eq!(accounts["acct-2999"].description, "Account 2999");
        assert_eq!(
            accounts["acct-0"].teams.get("t").map(String::as_str),
            Some("viewer")
        );
    }
}

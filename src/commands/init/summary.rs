//! What init says it wrote, and the next steps.

use std::fmt::Write as _;

use crate::cli::{InitArgs, InitBackend};
use crate::config::Config;

use super::templates::{GITIGNORE, MANAGER_ACCOUNT, RECIPIENTS_FILE, STARTER_FILE, config_file};

/// What init wrote, file by file, and what to run next.
pub(super) fn summary(
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
    s.push_str(&written(files, from_template));
    s.push_str(&next_steps(args, config_arg));
    s
}

/// One line per file written, saying what it is for.
fn written(files: &[(String, String)], from_template: bool) -> String {
    let mut s = String::new();
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
    s
}

/// The commands to run next.
fn next_steps(args: &InitArgs, config_arg: &str) -> String {
    let mut s = String::new();
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

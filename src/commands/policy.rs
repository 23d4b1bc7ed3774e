//! `svcacct policy explain`, and the policy check `validate` and `apply` run before anything
//! else: violations on stderr as config diagnostics, exceptions as notes, and a refusal when
//! an `error` rule is broken.

use anyhow::{Result, bail};

use super::{Output, exit, load_config};
use crate::address::Address;
use crate::cli::PolicyCommand;
use crate::config::Config;
use crate::escape;
use crate::policy::{Finding, blocking, evaluate, explain, render};

/// Judges the config against its rules, prints what it finds on stderr (warnings and
/// exceptions unless quiet; errors always), and fails when a violation blocks.
pub fn check(config: &Config, out: Output) -> Result<Vec<Finding>> {
    let findings = evaluate(&config.rules, &config.desired);
    let blocking = blocking(&findings);
    for f in &findings {
        let text = match &f.excepted {
            _ if out.quiet && !f.blocks() => continue,
            Some(_) => format!("note: {}\n", render::excepted_line(f)),
            None => render::diagnostic(f, &config.rules.spans).to_string(),
        };
        eprint!("{}", escape::terminal_lines(&text));
    }
    if blocking > 0 {
        bail!(
            "the config violates its policy: {}",
            render::counts(&findings)
        );
    }
    Ok(findings)
}

/// `svcacct policy …`.
pub fn policy(
    command: &PolicyCommand,
    out: Output,
    credentials: &crate::config::CredentialPolicy,
) -> Result<u8> {
    match command {
        PolicyCommand::Explain(args) => {
            let address: Address = args.address.parse()?;
            let config = load_config(&args.config.config, out, credentials)?;
            let text = explain::explain(&config.rules, &config.desired, &address)?;
            print!("{}", escape::terminal_lines(&text));
            Ok(exit::OK)
        }
    }
}

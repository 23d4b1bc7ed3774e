//! `svcacct policy explain`, and the policy check `validate` and `apply` run before anything
//! else: violations on stderr as config diagnostics, exceptions as notes, and a refusal when
//! an `error` rule is broken.

use anyhow::Result;

use super::{Output, exit, load_config};
use crate::address::Address;
use crate::cli::PolicyCommand;
use crate::escape;
use crate::policy::explain;

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

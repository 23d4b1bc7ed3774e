//! `svcacct validate`: the config checked offline.

use anyhow::Result;

use super::{Output, exit, load_config};
use crate::cli::ConfigArg;

/// Loads and validates the config; no backend is opened.
pub fn validate(
    args: &ConfigArg,
    out: Output,
    credentials: &crate::config::CredentialPolicy,
) -> Result<u8> {
    let config = load_config(&args.config, out, credentials)?;
    super::check_policy(&config, out)?;
    if !out.quiet {
        let d = &config.desired;
        let keys: usize = d.service_accounts.values().map(|a| a.keys.len()).sum();
        println!(
            "{} is valid: organization {}, {} custom roles, {} teams, {} service accounts, {} keys.",
            args.config.display(),
            d.name,
            d.roles.values().filter(|r| !r.builtin).count(),
            d.teams.len(),
            d.service_accounts.len(),
            keys
        );
    }
    super::leave_to_exit(config);
    Ok(exit::OK)
}

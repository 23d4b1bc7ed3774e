//! `svcacct verify`: checks a key read from standard input against the organization, the way
//! a service would. The key never goes on the command line, where `ps` and shell history see it.

use std::io::Read;

use anyhow::Result;
use zeroize::Zeroizing;

use super::{Output, exit, load_config};

/// Prints the verification as JSON; exit 0 when the key is valid, 1 when not.
pub fn verify(
    args: &crate::cli::ConfigArg,
    out: Output,
    credentials: &crate::config::CredentialPolicy,
) -> Result<u8> {
    let config = load_config(&args.config, out, credentials)?;
    let caps = config.backend.capabilities();
    if let Some(why) = caps.cannot_verify {
        anyhow::bail!(
            "svcacct verify is not available with the {} backend: {why}",
            caps.name
        );
    }
    let mut input = Zeroizing::new(String::new());
    std::io::stdin().take(4096).read_to_string(&mut input)?;
    let mut backend = config.backend.open(&config.desired.name, false)?;
    let v = backend.verify(input.trim())?;
    println!(
        "{}",
        crate::escape::json(&serde_json::to_string_pretty(&v)?)
    );
    Ok(if v.valid { exit::OK } else { exit::ERROR })
}

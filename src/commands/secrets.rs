//! `svcacct secrets`: what needs a person's identity. `reencrypt` re-encrypts every key file
//! encrypted to an older recipient set to the config's (the plan says when: it can tell from
//! the files' metadata, but cannot decrypt); `show` prints one secret, on purpose, for a person
//! — the only command that ever writes a secret to a terminal.

use anyhow::{Result, anyhow, bail};
use zeroize::Zeroizing;

use super::{Output, exit, load_config};
use crate::address::Address;
use crate::cli::SecretsCommand;
use crate::escape;
use crate::secrets::{self, key_file_path};

/// Runs a `secrets` subcommand.
pub fn secrets(
    cmd: &SecretsCommand,
    out: Output,
    credentials: &crate::config::CredentialPolicy,
) -> Result<u8> {
    match cmd {
        SecretsCommand::Reencrypt(args) => {
            let config = load_config(&args.config.config, out, credentials)?;
            let identities = secrets::load_identities(&args.identity).map_err(|e| anyhow!(e))?;
            let done = secrets::reencrypt(&config.secrets.dir, &config.secrets.parsed, &identities)
                .map_err(|e| anyhow!(e))?;
            if !out.quiet {
                println!(
                    "{} key file{} re-encrypted to the {} current recipient{} under {}.",
                    done.len(),
                    if done.len() == 1 { "" } else { "s" },
                    config.secrets.parsed.len(),
                    if config.secrets.parsed.len() == 1 {
                        ""
                    } else {
                        "s"
                    },
                    escape::terminal(&config.secrets.dir.display().to_string())
                );
            }
            Ok(exit::OK)
        }
        SecretsCommand::Show(args) => {
            let config = load_config(&args.config.config, out, credentials)?;
            let address: Address = args.address.parse()?;
            let Address::Key { account, key } = &address else {
                bail!("{address} is not a key; show takes a key address such as key.ci-bot.prod");
            };
            let file = key_file_path(&config.secrets.dir, account, key);
            if !file.exists() {
                bail!(
                    "{address} has no key file ({} does not exist)",
                    escape::terminal(&file.display().to_string())
                );
            }
            let identities = secrets::load_identities(&args.identity).map_err(|e| anyhow!(e))?;
            let plain = secrets::decrypt_file(&file, &identities).map_err(|e| anyhow!(e))?;
            #[derive(serde::Deserialize)]
            struct Payload {
                secret: String,
            }
            let payload: Payload = serde_json::from_slice(&plain)
                .map_err(|_| anyhow!("{} does not hold a svcacct key", file.display()))?;
            let secret = Zeroizing::new(payload.secret);
            if !secrets::looks_like_key(&secret) {
                bail!("{} does not hold a svcacct key", file.display());
            }
            println!("{}", secret.as_str());
            Ok(exit::OK)
        }
        SecretsCommand::Prune(args) => super::secrets_prune::prune(args, out, credentials),
    }
}

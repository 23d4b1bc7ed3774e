//! `svcacct rotate ADDRESS`: rotates one key now, under the organization's lock, honouring
//! its configured `overlap`. It is how a key whose secret svcacct never held (made by hand and
//! adopted) comes under svcacct: the new secret is minted and written to its key file like any
//! other, and the old one keeps working for the overlap.

use anyhow::{Result, anyhow, bail};

use super::apply::{confirm_and_execute, open_locked, refuse_unconfirmed};
use super::{Output, load_config};
use crate::address::Address;
use crate::cli::RotateArgs;
use crate::plan::rotate_now;

/// Rotates the key `args.address` names.
pub fn rotate(
    args: &RotateArgs,
    out: Output,
    credentials: &crate::config::CredentialPolicy,
) -> Result<u8> {
    let config = load_config(&args.config.config, out, credentials)?;
    let address: Address = args.address.parse()?;
    let Address::Key { account, key } = &address else {
        bail!("{address} is not a key; rotate takes a key address such as key.ci-bot.prod");
    };
    // Refused before the organization is opened or locked: a typo changes nothing.
    if config
        .desired
        .service_accounts
        .get(account)
        .and_then(|a| a.keys.get(key))
        .is_none()
    {
        bail!("{address} is not in the config; only a key the config declares can be rotated");
    }
    refuse_unconfirmed(args.yes)?;
    let (mut backend, live) = open_locked(
        &config,
        args.lock_timeout,
        crate::cli::DEFAULT_REQUESTS_PER_MINUTE,
        out,
    )?;
    let plan = rotate_now(&config.desired, &live, account, key).map_err(|e| anyhow!(e))?;
    confirm_and_execute(&plan, &config, backend.as_mut(), args.yes, 1, out)
}

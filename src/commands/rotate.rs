//! `svcacct rotate ADDRESS`: rotates one key now, under the organization's lock, honouring
//! its configured `overlap`. It is how a key whose secret svcacct never held (made by hand and
//! adopted) comes under svcacct: the new secret is minted and written to its key file like any
//! other, and the old one keeps working for the overlap.

use anyhow::{Result, anyhow, bail};

use super::execute::{DeliveryInputs, confirm_and_execute, refuse_unconfirmed, report_recovered};
use super::{Output, load_config};
use crate::address::Address;
use crate::cli::RotateArgs;
use crate::plan::rotate_now;
use crate::reconcile::{self, LockSettings};

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
    refuse_unconfirmed(args.yes, ("apply", "apply"))?;
    let lock = LockSettings {
        command: "rotate",
        timeout: args.lock_timeout,
        requests_per_minute: crate::cli::DEFAULT_REQUESTS_PER_MINUTE,
    };
    let mut backend = reconcile::open_and_lock(&config, lock)?;
    let read = reconcile::read_locked(backend.as_mut(), &config, || {})?;
    report_recovered(read.recovered, out);
    let mut plan = rotate_now(&config.desired, &read.live, account, key).map_err(|e| anyhow!(e))?;
    // The new key goes to the key's delivery targets too.
    crate::deliver::add_deliveries(
        &mut plan,
        &config.desired,
        &read.live,
        &config.delivery,
        (&config.secrets.dir, crate::clock::now()),
    );
    // The new key is in memory: delivering it needs no identity.
    let delivery = DeliveryInputs {
        identities: &[],
        pins: &credentials.deliver,
    };
    confirm_and_execute(
        &plan,
        &config,
        backend.as_mut(),
        (args.yes, 1),
        &delivery,
        out,
    )
}

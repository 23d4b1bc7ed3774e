//! `svcacct deliver [ADDRESS]…`: sends keys' current secrets to their delivery targets again,
//! changing nothing else: for a new target, or a consumer that lost its secret. Under the
//! organization's lock, so no apply rotates a key meanwhile; only a key whose file holds the
//! live key is delivered, decrypted with the identities given (`-i`).

use anyhow::{Result, bail};

use super::{Output, exit, load_config};
use crate::address::Address;
use crate::cli::DeliverArgs;
use crate::deliver::{DeliveryReport, Minted, Settings, deliver_key, keys_with_targets};
use crate::reconcile::{self, LockSettings};

/// Delivers the keys `args.addresses` names (every key with targets when none).
pub fn deliver(
    args: &DeliverArgs,
    out: Output,
    credentials: &crate::config::CredentialPolicy,
) -> Result<u8> {
    let config = load_config(&args.config.config, out, credentials)?;
    let with_targets = keys_with_targets(&config);
    let addresses: Vec<Address> = if args.addresses.is_empty() {
        with_targets.keys().cloned().collect()
    } else {
        let mut list = Vec::new();
        for a in &args.addresses {
            let address: Address = a.parse()?;
            if !with_targets.contains_key(&address) {
                bail!("{address} is not a key with delivery targets in the config");
            }
            list.push(address);
        }
        list
    };
    if addresses.is_empty() {
        if !out.quiet {
            println!("No key has delivery targets.");
        }
        return Ok(exit::OK);
    }
    let lock = LockSettings {
        command: "deliver",
        timeout: args.lock_timeout,
        requests_per_minute: crate::cli::DEFAULT_REQUESTS_PER_MINUTE,
    };
    let mut backend = reconcile::open_and_lock(&config, lock)?;
    let read = reconcile::read_locked(backend.as_mut(), &config, || {})?;
    let minted = Minted::default();
    let settings = Settings {
        identities: &args.identity.identities,
        pins: &credentials.deliver,
        minted: &minted,
        now: crate::clock::now(),
    };
    let mut report = DeliveryReport::default();
    for address in &addresses {
        let Address::Key { account, key } = address else {
            continue;
        };
        let live = read
            .live
            .service_accounts
            .get(account)
            .and_then(|a| a.keys.get(key));
        let (file_id, _) = crate::deliver::read_delivered(&config.secrets.dir, account, key);
        match live {
            Some(k) if file_id.as_deref() == Some(k.issued.id.as_str()) => {
                deliver_key(address, true, &config, &settings, &mut report);
            }
            Some(_) => report.failed.push((
                address.clone(),
                "*".into(),
                "its key file does not hold the live key; run `svcacct apply` first".into(),
            )),
            None => report.failed.push((
                address.clone(),
                "*".into(),
                "the key is not live; run `svcacct apply` first".into(),
            )),
        }
    }
    if !out.quiet || !report.complete() {
        println!(
            "Delivery {}: {} delivered, {} failed.",
            if report.complete() {
                "complete"
            } else {
                "incomplete"
            },
            report.delivered.len(),
            report.failed.len()
        );
        report.print();
    }
    Ok(if report.complete() {
        exit::OK
    } else {
        exit::ERROR
    })
}

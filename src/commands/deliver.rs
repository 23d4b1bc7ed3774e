//! `svcacct deliver [ADDRESS]…`: sends keys' current secrets to their delivery targets again,
//! changing nothing else: for a new target, or a consumer that lost its secret. Under the
//! organization's lock, so no apply rotates a key meanwhile; only a key whose file holds the
//! live key is delivered, decrypted with the identities given (`-i`).

use std::collections::BTreeMap;

use anyhow::{Result, bail};

use super::{Output, exit, load_config};
use crate::address::Address;
use crate::cli::DeliverArgs;
use crate::config::Config;
use crate::deliver::{DeliveryReport, Minted, Settings, deliver_key, keys_with_targets};
use crate::model::LiveOrganization;
use crate::reconcile::{self, LockSettings};

/// Delivers the keys `args.addresses` names (every key with targets when none).
pub fn deliver(
    args: &DeliverArgs,
    out: Output,
    credentials: &crate::config::CredentialPolicy,
) -> Result<u8> {
    let config = load_config(&args.config.config, out, credentials)?;
    let addresses = keys_to_deliver(&args.addresses, &keys_with_targets(&config))?;
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
        deliver_live_key(address, &read.live, &config, &settings, &mut report);
    }
    print_summary(&report, out);
    Ok(if report.complete() {
        exit::OK
    } else {
        exit::ERROR
    })
}

/// The keys the command line names, each one that has delivery targets (every such key when
/// none is named).
fn keys_to_deliver(
    named: &[String],
    with_targets: &BTreeMap<Address, usize>,
) -> Result<Vec<Address>> {
    if named.is_empty() {
        return Ok(with_targets.keys().cloned().collect());
    }
    let mut list = Vec::new();
    for a in named {
        let address: Address = a.parse()?;
        if !with_targets.contains_key(&address) {
            bail!("{address} is not a key with delivery targets in the config");
        }
        list.push(address);
    }
    Ok(list)
}

/// Delivers one key if its key file holds the live key; otherwise records why not.
fn deliver_live_key(
    address: &Address,
    live: &LiveOrganization,
    config: &Config,
    settings: &Settings<'_>,
    report: &mut DeliveryReport,
) {
    let Address::Key { account, key } = address else {
        return;
    };
    let current = live
        .service_accounts
        .get(account)
        .and_then(|a| a.keys.get(key));
    let (file_id, _) = crate::deliver::read_delivered(&config.secrets.dir, account, key);
    match current {
        Some(k) if file_id.as_deref() == Some(k.issued.id.as_str()) => {
            deliver_key(address, true, config, settings, report);
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

/// Prints how the delivery went, unless quiet and complete.
fn print_summary(report: &DeliveryReport, out: Output) {
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
}

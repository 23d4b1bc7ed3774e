//! Delivery: a key's secret reaches the place that uses it (a GitHub Actions secret, a file,
//! a command), besides its age file, which stays the record. A key counts as delivered to a
//! target once the target acknowledged its current key id; that fact (target, key id, time,
//! never the secret) is kept in the key's metadata, so a plan, with no identity and without
//! sending anything, sees which targets lack the live key.
//!
//! The secret leaves the process only as the target needs it: sealed to GitHub's public key,
//! on a command's standard input, or in a file written atomically with the configured mode.
//! Where a secret may go is decided by the job (pins: `--allow-deliver-path`,
//! `--allow-deliver-command`, `--github-api-url`, `--allow-token-env`), never by the config
//! alone, as for backend credentials.

mod command;
mod faults;
mod file;
mod github;
mod minted;
mod plan;
mod run;
mod target;

pub use minted::Minted;
pub use plan::{add_deliveries, verify_traffic};
pub use run::{
    DeliveryReport, Settings, deliver_changes, deliver_key, keys_with_targets, needs_delivery,
};
pub use target::{delivered_ids, read_delivered, record_delivery};

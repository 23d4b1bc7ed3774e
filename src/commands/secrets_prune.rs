//! `svcacct secrets prune`: TODO
use anyhow::Result;

use super::Output;
use crate::cli::PruneArgs;

pub fn prune(
    _args: &PruneArgs,
    _out: Output,
    _credentials: &crate::config::CredentialPolicy,
) -> Result<u8> {
    anyhow::bail!("not yet")
}

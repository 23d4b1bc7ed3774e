//! `svcacct completions SHELL`: the shell completion script, generated from the same clap
//! types that parse the arguments, so it can never name a flag the binary does not take.

use anyhow::Result;
use clap::CommandFactory;

use super::exit;
use crate::cli::{Cli, CompletionsArgs};

/// Prints the completion script for `args.shell` to standard output.
pub fn completions(args: &CompletionsArgs) -> Result<u8> {
    let mut cmd = Cli::command();
    let mut stdout = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "svcacct", &mut stdout);
    Ok(exit::OK)
}

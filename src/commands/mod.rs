//! One file per command; each takes resolved settings and returns an exit code.

mod apply;
mod completions;
mod deliver;
mod execute;
mod export;
mod healthcheck;
mod init;
mod man;
mod plan;
mod policy;
mod rotate;
mod secrets;
mod secrets_prune;
mod serve;
mod validate;
mod verify;

use std::io::IsTerminal;

pub use apply::apply;
pub use completions::completions;
pub use deliver::deliver;
pub use export::export;
pub use healthcheck::healthcheck;
pub use init::init;
pub use man::man;
pub use plan::{plan, show};
pub use policy::policy;
pub use rotate::rotate;
pub use secrets::secrets;
pub use serve::serve;
pub use validate::validate;
pub use verify::verify;

use crate::cli::{ColorChoice, SliceArgs};
use crate::config::{Config, ConfigError, CredentialPolicy, Severity};

/// Settings every command shares, resolved from flags and the environment.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// Whether stdout gets ANSI colours.
    pub color: bool,
    pub quiet: bool,
    pub verbose: u8,
}

impl Output {
    /// Resolves `--color` against `NO_COLOR` and whether stdout is a terminal.
    pub fn resolve(choice: ColorChoice, quiet: bool, verbose: u8) -> Output {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stdout().is_terminal()
            }
        };
        Output {
            color,
            quiet,
            verbose,
        }
    }
}

/// Exit codes, as documented in the README.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const CHANGES: u8 = 2;
}

/// Leaves `value`'s memory to the process's exit, which is next. Freeing 100,000 accounts,
/// their live twins and their key files allocation by allocation took a fifth of a second
/// of a plan; the operating system takes the whole heap back at once. Only plain data comes
/// here: nothing whose drop does work (a backend releases its lock when dropped).
fn leave_to_exit<T>(value: T) {
    std::mem::forget(value);
}

/// Loads and validates the config under the run's credential policy, printing its warnings
/// to stderr.
pub fn load_config(
    path: &std::path::Path,
    out: Output,
    credentials: &CredentialPolicy,
) -> Result<Config, ConfigError> {
    let config = Config::load_with(path, credentials)?;
    if !out.quiet {
        for w in config
            .warnings
            .iter()
            .filter(|d| d.severity == Severity::Warning)
        {
            eprint!("{}", crate::escape::terminal_lines(&w.to_string()));
        }
    }
    Ok(config)
}

/// The part of the organization `--target` and `--exclude` limit a plan to.
fn slice_of(args: &SliceArgs) -> crate::plan::Slice {
    crate::plan::Slice {
        targets: args.targets.clone(),
        excludes: args.excludes.clone(),
    }
}

/// Judges the config against its rules, prints what it finds on stderr (warnings and
/// exceptions unless quiet; errors always), and fails when a violation blocks.
pub fn check_policy(config: &Config, out: Output) -> anyhow::Result<Vec<crate::plan::Finding>> {
    let findings = crate::policy::evaluate(&config.rules, &config.desired);
    let blocking = crate::plan::blocking(&findings);
    for f in &findings {
        let text = match &f.excepted {
            _ if out.quiet && !f.blocks() => continue,
            Some(_) => format!("note: {}\n", crate::policy::render::excepted_line(f)),
            None => crate::policy::render::diagnostic(f, &config.rules.spans).to_string(),
        };
        eprint!("{}", crate::escape::terminal_lines(&text));
    }
    if blocking > 0 {
        anyhow::bail!(
            "the config violates its policy: {}",
            crate::plan::counts(&findings)
        );
    }
    Ok(findings)
}

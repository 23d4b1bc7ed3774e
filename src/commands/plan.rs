//! `svcacct plan`: what apply would change, as text, JSON or Markdown. Never writes.

use anyhow::{Context, Result};

use super::{Output, exit, load_config};
use crate::cli::{Format, PlanArgs};
use crate::clock;
use crate::config::Config;
use crate::escape;
use crate::plan::{Plan, PlanOptions, SecretsDir, diff, render_markdown, render_text, to_json};

/// Computes the plan of `config` against the live organization the backend holds.
pub fn compute(
    config: &Config,
    live: &crate::model::Organization,
    allow_mass_delete: bool,
) -> Result<Plan> {
    let opts = PlanOptions {
        policy: config.policy,
        now: clock::now(),
        key_files: &SecretsDir::scan(&config.secrets.dir, &config.secrets.parsed),
        allow_mass_delete,
    };
    Ok(diff(&config.desired, live, &opts)?)
}

/// Prints the plan in the chosen format.
pub fn plan(
    args: &PlanArgs,
    out: Output,
    credentials: &crate::config::CredentialPolicy,
) -> Result<u8> {
    let config = load_config(&args.config.config, out, credentials)?;
    let mut backend = config.backend.open(&config.desired.name, false)?;
    let live = backend
        .snapshot()
        .with_context(|| format!("cannot read {}", backend.describe()))?;
    let plan = compute(&config, &live, args.allow_mass_delete)?;
    if out.verbose > 0
        && let Some(n) = backend.requests()
    {
        eprintln!("{} made {n} requests", backend.describe());
    }
    match args.format {
        Format::Text => print!("{}", render_text(&plan, out.color)),
        Format::Markdown => print!("{}", render_markdown(&plan)),
        Format::Json => println!(
            "{}",
            escape::json(&serde_json::to_string_pretty(&to_json(&plan))?)
        ),
    }
    Ok(if args.detailed_exitcode && plan.has_changes() {
        exit::CHANGES
    } else {
        exit::OK
    })
}

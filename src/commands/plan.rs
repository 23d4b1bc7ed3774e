//! `svcacct plan`: what apply would change, as text, JSON or Markdown; never writes to the
//! organization or the key files. `--out` saves it for `svcacct apply PLAN`, and
//! `svcacct show PLAN` renders a saved one again.

use anyhow::{Context, Result};

use super::{Output, exit, load_config};
use crate::cli::{Format, PlanArgs, ShowArgs};
use crate::clock;
use crate::config::{Config, config_digest};
use crate::escape;
use crate::plan::{
    Plan, PlanOptions, SavedPlan, SecretsDir, diff, render_markdown, render_text, to_json,
};

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
    if let Some(path) = &args.out {
        let saved = SavedPlan::new(
            plan.clone(),
            config.backend.identity(),
            config.backend.capabilities().revision,
            config_digest(&args.config.config)?,
        );
        std::fs::write(path, saved.to_text())
            .with_context(|| format!("cannot write the plan to {}", path.display()))?;
    }
    print_plan(&plan, args.format, out)?;
    Ok(if args.detailed_exitcode && plan.has_changes() {
        exit::CHANGES
    } else {
        exit::OK
    })
}

fn print_plan(plan: &Plan, format: Format, out: Output) -> Result<()> {
    match format {
        Format::Text => print!("{}", render_text(plan, out.color)),
        Format::Markdown => print!("{}", render_markdown(plan)),
        Format::Json => println!(
            "{}",
            escape::json(&serde_json::to_string_pretty(&to_json(plan))?)
        ),
    }
    Ok(())
}

/// Reads a saved plan (refusing one that was edited or that another version made).
pub fn read_saved(path: &std::path::Path) -> Result<SavedPlan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the plan {}", path.display()))?;
    Ok(SavedPlan::parse(&text, &path.display().to_string())?)
}

/// `svcacct show PLAN`: renders a saved plan again.
pub fn show(args: &ShowArgs, out: Output) -> Result<u8> {
    let saved = read_saved(&args.plan)?;
    print_plan(&saved.plan, args.format, out)?;
    Ok(exit::OK)
}

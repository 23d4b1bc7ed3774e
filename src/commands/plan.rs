//! `svcacct plan`: what apply would change, as text, JSON or Markdown; never writes to the
//! organization or the key files. `--out` saves it for `svcacct apply PLAN`, and
//! `svcacct show PLAN` renders a saved one again.

use anyhow::{Context, Result, bail};

use super::execute::warn_partial;
use super::{Output, exit, load_config, slice_of};
use crate::cli::{Format, PlanArgs, ShowArgs};
use crate::config::config_digest;
use crate::escape;
use crate::plan::{Plan, SavedPlan, render_markdown, render_text, to_json};
use crate::reconcile::{self, Request};

/// Prints the plan in the chosen format.
pub fn plan(
    args: &PlanArgs,
    out: Output,
    credentials: &crate::config::CredentialPolicy,
) -> Result<u8> {
    let config = load_config(&args.config.config, out, credentials)?;
    let slice = slice_of(&args.slice);
    let request = Request {
        slice: &slice,
        allow_mass_delete: args.allow_mass_delete,
        shown: true,
    };
    warn_partial(&slice, out);
    let reconcile::Planned {
        plan,
        backend,
        live,
        files,
    } = reconcile::plan(&config, &request)?;
    super::leave_to_exit((live, files));
    if out.verbose > 0
        && let Some(n) = backend.requests()
    {
        eprintln!("{} made {n} requests", backend.describe());
    }
    let blocking = crate::plan::blocking(&plan.policy);
    if let Some(path) = args.out.as_ref().filter(|_| blocking == 0) {
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
    if blocking > 0 {
        // The plan is shown (the pull-request comment lists the violations) and refused.
        bail!(
            "the config violates its policy: {}{}",
            crate::plan::counts(&plan.policy),
            if args.out.is_some() {
                "; the plan was not saved"
            } else {
                ""
            }
        );
    }
    let code = if args.detailed_exitcode && plan.has_changes() {
        exit::CHANGES
    } else {
        exit::OK
    };
    super::leave_to_exit((plan, config));
    Ok(code)
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

/// `svcacct show PLAN`: renders a saved plan again.
pub fn show(args: &ShowArgs, out: Output) -> Result<u8> {
    let saved = SavedPlan::read(&args.plan)?;
    print_plan(&saved.plan, args.format, out)?;
    Ok(exit::OK)
}

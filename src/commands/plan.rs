//! `svcacct plan`: what apply would change, as text, JSON or Markdown; never writes to the
//! organization or the key files. `--out` saves it for `svcacct apply PLAN`, and
//! `svcacct show PLAN` renders a saved one again.

use anyhow::{Context, Result, bail};

use super::{Output, exit, load_config};
use crate::backend::Backend;
use crate::cli::{Format, PlanArgs, ShowArgs, SliceArgs};
use crate::clock;
use crate::config::{Config, config_digest};
use crate::escape;
use crate::plan::{
    Plan, PlanOptions, SavedPlan, SecretsDir, Slice, destroyed_key_uses, diff, drifted,
    render_markdown, render_text, to_json,
};

/// Computes the plan of `config` against the live organization the backend holds.
/// A slice (`--target`, `--exclude`) limits it. A plan someone will read (`shown`) carries
/// the access it changes and, where the backend keeps an audit log, who last changed each
/// drifted object; one nobody reads (`apply --yes` without `-v`) skips both, and with them
/// a request to the audit log.
pub fn compute(
    config: &Config,
    live: &crate::model::LiveOrganization,
    key_files: &SecretsDir,
    allow_mass_delete: bool,
    slice: &SliceArgs,
    backend: &mut dyn Backend,
    shown: bool,
) -> Result<Plan> {
    let opts = PlanOptions {
        policy: config.policy,
        now: clock::now(),
        key_files,
        allow_mass_delete,
    };
    let live = &*as_the_backend_keeps_it(config, live)?;
    let slice = Slice {
        targets: slice.targets.clone(),
        excludes: slice.excludes.clone(),
    };
    let mut plan = if slice.is_whole() {
        let mut plan = diff(&config.desired, live, &opts)?;
        if shown {
            plan.review(&config.desired, live);
        }
        plan
    } else {
        let (desired, pulled) = slice.narrow(&config.desired, live)?;
        let mut plan = diff(&desired, live, &opts)?;
        slice.limit(&mut plan, &pulled);
        if shown {
            plan.review(&desired, live);
        }
        plan
    };
    if !shown {
        return Ok(plan);
    }
    let drifted = drifted(&plan);
    if !drifted.is_empty()
        && let Some(found) = backend
            .last_changes(&drifted)
            .with_context(|| format!("cannot read the audit log of {}", backend.describe()))?
    {
        plan.last_changed = found;
    }
    plan.key_uses = destroyed_key_uses(&plan, live, config.backend.capabilities());
    plan.policy = crate::policy::evaluate(&config.rules, &config.desired);
    crate::policy::attach_causes(&mut plan.policy, &plan.changes);
    Ok(plan)
}

/// The live organization, and what `read` returns, read at the same time: the tens of
/// thousands of small reads of a big secrets directory need not wait for the backend.
pub fn snapshot_while<T: Send>(
    backend: &mut dyn Backend,
    read: impl FnOnce() -> T + Send,
) -> Result<(crate::model::LiveOrganization, T)> {
    let (live, other) = std::thread::scope(|s| {
        let other = s.spawn(read);
        let live = backend.snapshot();
        (
            live,
            other.join().expect("reading key files does not panic"),
        )
    });
    let live = live.with_context(|| format!("cannot read {}", backend.describe()))?;
    Ok((live, other))
}

/// The live organization as the diff must see it under the backend's capabilities: teams
/// made outside svcacct are only named (a missing one is an error, an undeclared one is not
/// svcacct's business), and where ownership lives in a record beside the objects, a declared
/// object is the config's whatever made it.
/// A backend that needs neither gets its organization back as it is, not a copy of it.
fn as_the_backend_keeps_it<'a>(
    config: &Config,
    live: &'a crate::model::LiveOrganization,
) -> Result<std::borrow::Cow<'a, crate::model::LiveOrganization>> {
    let caps = config.backend.capabilities();
    let desired = &config.desired;
    if !caps.fixed_teams && !caps.ownership_record {
        return Ok(std::borrow::Cow::Borrowed(live));
    }
    let mut live = live.clone();
    if caps.fixed_teams {
        if let Some(team) = desired.teams.keys().find(|t| !live.teams.contains_key(*t)) {
            let help = crate::suggest::closest(team, live.teams.keys().map(String::as_str))
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            bail!(
                "team `{}` does not exist in {}: the {} backend names existing teams and never creates one{}",
                escape::terminal(team),
                escape::terminal(&config.desired.name),
                caps.name,
                escape::terminal(&help)
            );
        }
        live.teams.retain(|t, _| desired.teams.contains_key(t));
    }
    if caps.ownership_record {
        for (name, role) in live.roles.iter_mut() {
            role.managed |= desired.roles.contains_key(name) && !role.builtin;
        }
        for (name, team) in live.teams.iter_mut() {
            team.managed |= desired.teams.contains_key(name);
        }
        for (name, account) in live.service_accounts.iter_mut() {
            let Some(want) = desired.service_accounts.get(name) else {
                continue;
            };
            account.managed = true;
            for (key, live_key) in account.keys.iter_mut() {
                live_key.settings.managed |= want.keys.contains_key(key);
            }
        }
    }
    Ok(std::borrow::Cow::Owned(live))
}

/// Warns on stderr that a sliced plan is partial.
pub fn warn_partial(slice: &SliceArgs, out: Output) {
    let partial = !slice.targets.is_empty() || !slice.excludes.is_empty();
    if partial && !out.quiet {
        eprintln!(
            "warning: the plan is limited by --target/--exclude: it is partial, and the organization may still differ from the config elsewhere"
        );
    }
}

/// Prints the plan in the chosen format.
pub fn plan(
    args: &PlanArgs,
    out: Output,
    credentials: &crate::config::CredentialPolicy,
) -> Result<u8> {
    let config = load_config(&args.config.config, out, credentials)?;
    let mut backend = config.backend.open(&config.desired.name, false)?;
    let (live, files) = snapshot_while(backend.as_mut(), || {
        SecretsDir::scan(&config.secrets.dir, &config.secrets.parsed)
    })?;
    warn_partial(&args.slice, out);
    let plan = compute(
        &config,
        &live,
        &files,
        args.allow_mass_delete,
        &args.slice,
        backend.as_mut(),
        true,
    )?;
    if out.verbose > 0
        && let Some(n) = backend.requests()
    {
        eprintln!("{} made {n} requests", backend.describe());
    }
    let blocking = crate::policy::blocking(&plan.policy);
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
            crate::policy::render::counts(&plan.policy),
            if args.out.is_some() {
                "; the plan was not saved"
            } else {
                ""
            }
        );
    }
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

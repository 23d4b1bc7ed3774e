//! Showing a plan, asking for it, executing it and summarising what happened: what `apply`,
//! a saved plan's apply and `rotate` share once their plan is made. Not a command itself.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Result, bail};

use super::{Output, exit};
use crate::apply::{ApplyOptions, KeyOutput, Outcome, Progress, execute};
use crate::backend::Backend;
use crate::clock;
use crate::config::Config;
use crate::escape;
use crate::plan::{Plan, Slice, render_text};

/// Refuses to go on without `--yes` when nobody can be asked; `what` is the change refused
/// ("apply", "delete key files") and `verb` what `--yes` does ("apply", "delete").
pub fn refuse_unconfirmed(yes: bool, (what, verb): (&str, &str)) -> Result<()> {
    if !yes && !std::io::stdin().is_terminal() {
        bail!(
            "refusing to {what} without confirmation: standard input is not a terminal; pass --yes to {verb}"
        );
    }
    Ok(())
}

/// Says that pending key files an interrupted apply left were moved into place.
pub fn report_recovered(recovered: usize, out: Output) {
    if recovered > 0 && !out.quiet {
        println!(
            "Moved {recovered} key file(s) that an interrupted apply left pending into place."
        );
    }
}

/// Warns on stderr that a sliced plan is partial.
pub fn warn_partial(slice: &Slice, out: Output) {
    if !slice.is_whole() && !out.quiet {
        eprintln!(
            "warning: the plan is limited by --target/--exclude: it is partial, and the organization may still differ from the config elsewhere"
        );
    }
}

/// What delivering keys needs from the command line: identities that decrypt key files
/// issued earlier, and where the job lets keys go.
pub struct DeliveryInputs<'a> {
    pub identities: &'a [std::path::PathBuf],
    pub pins: &'a crate::config::DeliverPins,
}

/// Shows the plan, asks unless `yes`, executes it, delivers keys and prints the summary.
pub fn confirm_and_execute(
    plan: &Plan,
    config: &Config,
    backend: &mut dyn Backend,
    (yes, parallelism): (bool, u16),
    delivery: &DeliveryInputs<'_>,
    out: Output,
) -> Result<u8> {
    if !plan.has_changes() {
        if !out.quiet {
            print!("{}", render_text(plan, out.color));
        }
        return Ok(exit::OK);
    }
    if !confirmed(plan, yes, out)? {
        println!("Apply cancelled; nothing was changed.");
        return Ok(exit::ERROR);
    }
    let progress = progress(out);
    let now = clock::now();
    let minted = crate::deliver::Minted::default();
    let outcome = execute(
        plan,
        backend,
        &ApplyOptions {
            parallelism: parallelism.into(),
            progress,
            keys: KeyOutput {
                organization: &config.desired.name,
                dir: &config.secrets.dir,
                recipients: &config.secrets.parsed,
                minting: config.backend.capabilities().minting,
                minted: (!config.delivery.is_empty()).then_some(&minted),
            },
        },
        now,
    );
    // A plan that only delivers has no backend change to summarise.
    let writes = plan.changes.iter().any(|c| !c.work.is_empty());
    if (writes && !out.quiet) || !outcome.failed.is_empty() {
        print_outcome(&outcome, config);
    }
    // After the backend writes: a key counts as delivered once every target acknowledged it.
    let delivered = !crate::deliver::needs_delivery(plan)
        || deliver_after_writes(plan, &outcome, config, delivery, (&minted, now), out);
    if out.verbose > 0
        && let Some(n) = backend.requests()
    {
        eprintln!("{} made {n} requests", backend.describe());
    }
    Ok(
        if outcome.failed.is_empty() && outcome.skipped.is_empty() && delivered {
            exit::OK
        } else {
            exit::ERROR
        },
    )
}

/// How execution shows its progress: nothing when quiet, a bar on a terminal, lines otherwise.
fn progress(out: Output) -> Progress {
    if out.quiet {
        Progress::Quiet
    } else if std::io::stderr().is_terminal() {
        Progress::Bar
    } else {
        Progress::Lines
    }
}

/// Delivers the plan's keys once the backend writes are done, skipping the keys whose
/// change failed or was skipped, and prints the delivery summary; whether every key was
/// delivered.
fn deliver_after_writes(
    plan: &Plan,
    outcome: &Outcome,
    config: &Config,
    delivery: &DeliveryInputs<'_>,
    (minted, now): (&crate::deliver::Minted, time::OffsetDateTime),
    out: Output,
) -> bool {
    let failed: Vec<_> = outcome
        .failed
        .iter()
        .map(|(a, _)| a.clone())
        .chain(outcome.skipped.iter().cloned())
        .collect();
    let report = crate::deliver::deliver_changes(
        plan,
        &failed,
        config,
        &crate::deliver::Settings {
            identities: delivery.identities,
            pins: delivery.pins,
            minted,
            now,
        },
    );
    let delivered = report.complete();
    if !out.quiet || !delivered {
        println!(
            "\nDelivery {}: {} delivered, {} failed, {} skipped.",
            if delivered { "complete" } else { "incomplete" },
            report.delivered.len(),
            report.failed.len(),
            report.skipped.len()
        );
        report.print();
    }
    delivered
}

/// Shows the plan and asks, unless `yes` (which shows it only when verbose); whether the
/// answer was `yes`.
fn confirmed(plan: &Plan, yes: bool, out: Output) -> Result<bool> {
    if yes {
        if out.verbose > 0 {
            print!("{}", render_text(plan, out.color));
        }
        return Ok(true);
    }
    print!("{}", render_text(plan, out.color));
    ask(&format!(
        "\nApply these changes to organization {}? Type `yes` to apply: ",
        escape::terminal(&plan.organization)
    ))
}

/// Asks on the terminal; whether the answer was `yes`.
pub fn ask(question: &str) -> Result<bool> {
    print!("{question}");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

/// The apply's summary: counts, each failed and skipped change, and where key files went.
fn print_outcome(outcome: &Outcome, config: &Config) {
    println!(
        "\nApply {}: {} applied, {} failed, {} skipped.",
        if outcome.failed.is_empty() && outcome.skipped.is_empty() {
            "complete"
        } else {
            "incomplete"
        },
        outcome.applied.len(),
        outcome.failed.len(),
        outcome.skipped.len()
    );
    for (address, error) in &outcome.failed {
        println!("  failed  {}: {}", address, escape::terminal(error));
    }
    for address in &outcome.skipped {
        println!("  skipped {}", address);
    }
    if !outcome.key_files.is_empty() {
        println!(
            "{} key file{} written under {} (age-encrypted; decrypt with `age -d -i <identity> <file>`).",
            outcome.key_files.len(),
            if outcome.key_files.len() == 1 {
                ""
            } else {
                "s"
            },
            escape::terminal(&config.secrets.dir.display().to_string())
        );
    }
}

//! The executor: runs a plan's operations stage by stage in dependency order. Key issue has
//! a module of its own ([`keys`]), which keeps the promise that a key the backend knows has a
//! file. A failed change skips the changes that depend on it and nothing else; running again
//! converges.

pub(crate) mod faults;
mod keys;

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use time::OffsetDateTime;

use crate::address::Address;
use crate::backend::{Backend, Minting};
use crate::operation::{Applied, Operation};
use crate::plan::{Plan, Stage};
use crate::secrets::Recipient;

/// How the apply reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A progress bar on the terminal.
    Bar,
    /// One line per finished change.
    Lines,
    Quiet,
}

/// Apply settings.
pub struct ApplyOptions<'a> {
    pub parallelism: usize,
    pub progress: Progress,
    pub keys: KeyOutput<'a>,
}

/// Where issued keys are written, to whom they are encrypted, and who mints them.
pub struct KeyOutput<'a> {
    /// The organization, as the key files' payload names it.
    pub organization: &'a str,
    pub dir: &'a Path,
    pub recipients: &'a [Recipient],
    pub minting: Minting,
    /// Where the secrets issued are kept for delivery, if any key has a delivery target.
    pub minted: Option<&'a crate::deliver::Minted>,
}

/// What happened to each change.
#[derive(Debug, Default)]
pub struct Outcome {
    pub applied: Vec<Address>,
    pub failed: Vec<(Address, String)>,
    pub skipped: Vec<Address>,
    pub key_files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Status {
    Pending,
    Failed,
    Skipped,
}

struct Run<'a> {
    plan: &'a Plan,
    status: Vec<Status>,
    remaining: Vec<usize>,
    outcome: Outcome,
    bar: Option<ProgressBar>,
    progress: Progress,
}

impl Run<'_> {
    /// Prints a progress line; it may carry a server's error message, so it is escaped.
    fn say(&self, line: String) {
        let line = crate::escape::terminal(&line).into_owned();
        match (&self.bar, self.progress) {
            (Some(bar), _) => bar.println(line),
            (None, Progress::Lines) => println!("{line}"),
            _ => {}
        }
    }

    fn succeeded(&mut self, change: usize) {
        self.remaining[change] -= 1;
        if self.remaining[change] == 0 {
            let c = &self.plan.changes[change];
            self.say(format!("{:>3} {} ... done", c.action.symbol(), c.address));
            self.outcome.applied.push(c.address.clone());
            if let Some(bar) = &self.bar {
                bar.inc(1);
            }
        }
    }

    fn failed(&mut self, change: usize, error: String) {
        if self.status[change] != Status::Pending {
            return;
        }
        self.status[change] = Status::Failed;
        let c = &self.plan.changes[change];
        self.say(format!(
            "{:>3} {} ... failed: {error}",
            c.action.symbol(),
            c.address
        ));
        self.outcome.failed.push((c.address.clone(), error));
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// Whether a change may still run; marks it skipped if something it needs failed.
    fn runnable(&mut self, change: usize) -> bool {
        if self.status[change] != Status::Pending {
            return false;
        }
        let blocked = self.plan.changes[change]
            .depends_on
            .iter()
            .any(|&d| self.status[d] != Status::Pending);
        if blocked {
            self.status[change] = Status::Skipped;
            let address = self.plan.changes[change].address.clone();
            self.say(format!(
                "    {address} ... skipped: a change it depends on failed"
            ));
            self.outcome.skipped.push(address);
            if let Some(bar) = &self.bar {
                bar.inc(1);
            }
        }
        !blocked
    }
}

/// Executes a plan against a locked backend.
pub fn execute(
    plan: &Plan,
    backend: &mut dyn Backend,
    opts: &ApplyOptions<'_>,
    now: OffsetDateTime,
) -> Outcome {
    let bar = (opts.progress == Progress::Bar).then(|| {
        let bar = ProgressBar::new(plan.changes.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar
    });
    let mut run = Run {
        plan,
        status: vec![Status::Pending; plan.changes.len()],
        remaining: plan.changes.iter().map(|c| c.work.len()).collect(),
        outcome: Outcome::default(),
        bar,
        progress: opts.progress,
    };
    for stage in Stage::ALL {
        if let Some(bar) = &run.bar {
            bar.set_message(format!("{stage:?}"));
        }
        let mut batch: Vec<(usize, &Operation)> = Vec::new();
        for (i, c) in plan.changes.iter().enumerate() {
            for op in c.work.iter().filter(|op| Stage::of(op) == stage) {
                if run.runnable(i) {
                    batch.push((i, op));
                }
            }
        }
        // Key issues carry key material: the keys module mints, writes and registers them.
        let (issues, writes): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|(_, op)| matches!(op, Operation::IssueKey { .. }));
        if stage == Stage::KeyRevocation && !writes.is_empty() {
            faults::before_revocation();
        }
        if !writes.is_empty() {
            let (changes, ops) = writes.into_iter().map(|(i, op)| (i, op.clone())).unzip();
            send(&mut run, backend, changes, ops);
        }
        if !issues.is_empty() {
            keys::issue_all(&mut run, &issues, backend, opts, now);
        }
    }
    if let Some(bar) = run.bar.take() {
        bar.finish_and_clear();
    }
    run.outcome
}

/// Sends operations and records each result against its change.
fn send(run: &mut Run<'_>, backend: &mut dyn Backend, changes: Vec<usize>, ops: Vec<Operation>) {
    let results = backend.apply(ops);
    for (change, result) in changes.into_iter().zip(results) {
        match result {
            Ok(Applied::Done) => run.succeeded(change),
            Ok(Applied::Issued(_)) => run.failed(
                change,
                "the backend answered a write with a key it issued".into(),
            ),
            Err(e) => run.failed(change, e.report()),
        }
    }
}

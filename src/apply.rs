//! The executor: runs a plan's work stage by stage in dependency order. Keys are minted here,
//! written to their encrypted files durably, and only then registered by hash, so a key the
//! backend knows always has a file. A failed change skips the changes that depend on it and
//! nothing else; running again converges.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use time::OffsetDateTime;

mod faults;

use crate::address::Address;
use crate::backend::Backend;
use crate::config::Config;
use crate::operation::{NewKey, Operation, Replaces};
use crate::plan::{Plan, Stage, Work};
use crate::secrets::{
    KeyFile, begin_issuing, end_issuing, key_file_path, mint, promote_key_file, write_key_file,
};

/// Keys are issued in chunks: files for a chunk, then one registration batch, so a crash
/// loses at most one chunk of registrations (their files are simply replaced next time).
const KEY_CHUNK: usize = 1024;

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
pub struct ApplyOptions {
    pub parallelism: usize,
    pub progress: Progress,
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
    config: &Config,
    opts: &ApplyOptions,
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
    let stages = [
        Stage::RolesAndTeams,
        Stage::ServiceAccounts,
        Stage::Memberships,
        Stage::KeyIssue,
        Stage::KeyRevocation,
        Stage::AccountDeletion,
        Stage::TeamAndRoleDeletion,
    ];
    for stage in stages {
        if let Some(bar) = &run.bar {
            bar.set_message(format!("{stage:?}"));
        }
        let mut batch: Vec<(usize, &Work)> = Vec::new();
        for (i, c) in plan.changes.iter().enumerate() {
            for w in c.work.iter().filter(|w| w.stage() == stage) {
                if run.runnable(i) {
                    batch.push((i, w));
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        if stage == Stage::KeyIssue {
            // Key settings updates carry no key material: they go straight to the backend.
            let (issues, updates): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .partition(|(_, w)| matches!(w, Work::IssueKey { .. }));
            if !updates.is_empty() {
                let ops = updates.iter().map(|(_, w)| operation(w)).collect();
                send(
                    &mut run,
                    backend,
                    updates.iter().map(|(i, _)| *i).collect(),
                    ops,
                );
            }
            if !issues.is_empty() {
                issue_all(&mut run, &issues, backend, config, opts.parallelism, now);
            }
        } else {
            let ops = batch.iter().map(|(_, w)| operation(w)).collect();
            send(
                &mut run,
                backend,
                batch.iter().map(|(i, _)| *i).collect(),
                ops,
            );
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
            Ok(()) => run.succeeded(change),
            Err(e) => run.failed(change, e.report()),
        }
    }
}

/// The backend write for work that needs no key material.
fn operation(w: &Work) -> Operation {
    match w.clone() {
        Work::PutRole(name, role) => Operation::PutRole { name, role },
        Work::PutTeam(name, team) => Operation::PutTeam { name, team },
        Work::PutServiceAccount(name, account) => Operation::PutServiceAccount { name, account },
        Work::SetMemberships(account, teams) => Operation::SetMemberships { account, teams },
        Work::UpdateKey {
            account,
            name,
            settings,
        } => Operation::UpdateKey {
            account,
            name,
            key: settings,
        },
        Work::RevokeKey { account, name, id } => Operation::RevokeKey { account, name, id },
        Work::DeleteServiceAccount(name) => Operation::DeleteServiceAccount { name },
        Work::DeleteTeam(name) => Operation::DeleteTeam { name },
        Work::DeleteRole(name) => Operation::DeleteRole { name },
        Work::IssueKey { .. } => unreachable!("keys are issued by issue_keys"),
    }
}

/// A key file written (or not): its place in the chunk, its change, and its registration.
type Written = (usize, usize, Result<Operation, String>);

/// Mints keys and writes their files on `parallelism` threads, then registers the hashes of
/// those whose files are durable in one batch.
/// Issues every key of the stage in chunks, between markers that tell a later apply whether
/// pending files may have been left behind.
fn issue_all(
    run: &mut Run<'_>,
    issues: &[(usize, &Work)],
    backend: &mut dyn Backend,
    config: &Config,
    parallelism: usize,
    now: OffsetDateTime,
) {
    let dir = &config.secrets.dir;
    if let Err(e) = begin_issuing(dir) {
        for (change, _) in issues {
            run.failed(*change, format!("cannot write to {}: {e}", dir.display()));
        }
        return;
    }
    let mut settled = true;
    for chunk in issues.chunks(KEY_CHUNK) {
        settled &= issue_keys(run, chunk, backend, config, parallelism, now);
    }
    if settled {
        // Every pending file was promoted or discarded; if removing the marker fails, the
        // next apply merely scans for nothing.
        let _ = end_issuing(dir);
    }
}

/// Returns whether every pending file was promoted or discarded.
fn issue_keys(
    run: &mut Run<'_>,
    chunk: &[(usize, &Work)],
    backend: &mut dyn Backend,
    config: &Config,
    parallelism: usize,
    now: OffsetDateTime,
) -> bool {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Written>> = Mutex::new(Vec::with_capacity(chunk.len()));
    std::thread::scope(|s| {
        for _ in 0..parallelism.clamp(1, chunk.len()) {
            s.spawn(|| {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(change, work)) = chunk.get(n) else {
                        break;
                    };
                    let result = write_one(work, config, now);
                    if result.is_ok() {
                        faults::key_file_written();
                    }
                    results
                        .lock()
                        .expect("no panics while held")
                        .push((n, change, result));
                }
            });
        }
    });
    let mut results = results.into_inner().expect("no panics while held");
    results.sort_by_key(|(n, ..)| *n);
    let mut changes = Vec::new();
    let mut ops = Vec::new();
    let mut settled = true;
    for (_, change, result) in results {
        match result {
            Ok(op) => {
                changes.push(change);
                ops.push(op);
            }
            Err(e) => {
                // A write that failed half way may leave a temporary file to clean up.
                settled = false;
                run.failed(change, e);
            }
        }
    }
    let registered = faults::registered(backend.apply(ops.clone()));
    faults::before_promotion();
    let dir = &config.secrets.dir;
    for ((change, op), result) in changes.into_iter().zip(&ops).zip(registered) {
        let Operation::RegisterKey { account, name, key } = op else {
            unreachable!("issue_keys registers keys only");
        };
        match result {
            Ok(()) => match promote_key_file(dir, account, name, &key.id) {
                Ok(()) => {
                    run.outcome
                        .key_files
                        .push(key_file_path(dir, account, name));
                    run.succeeded(change);
                }
                Err(e) => {
                    settled = false;
                    run.failed(
                    change,
                    format!("the key is registered but its file could not be moved into place ({e}); the next apply finishes it"),
                    )
                }
            },
            Err(e) => {
                // An error does not prove the key was not registered: over a network the
                // backend may have committed it and lost the answer. So the pending file stays,
                // and the next apply's recovery promotes it if the key is live, or deletes it.
                settled = false;
                run.failed(change, e.report());
            }
        }
    }
    settled
}

/// Mints one key and writes its file; the returned operation registers its hash.
fn write_one(work: &Work, config: &Config, now: OffsetDateTime) -> Result<Operation, String> {
    let Work::IssueKey {
        account,
        name,
        settings,
        replaces,
    } = work
    else {
        unreachable!("only key issues reach write_one");
    };
    let key = mint();
    let expires_at = settings.expires_in.map(|d| now + d.to_time());
    write_key_file(
        &config.secrets.dir,
        &config.secrets.parsed,
        &KeyFile {
            organization: &config.desired.name,
            service_account: account,
            key: name,
            key_id: &key.id,
            secret: &key.secret,
            created_at: now,
            expires_at,
        },
    )
    .map_err(|e| format!("cannot write key file: {e}"))?;
    Ok(Operation::RegisterKey {
        account: account.clone(),
        name: name.clone(),
        key: NewKey {
            id: key.id.clone(),
            hash: key.hash.clone(),
            display_prefix: key.display_prefix.clone(),
            created_at: now,
            expires_at,
            settings: settings.clone(),
            replaces: replaces.as_ref().map(|(id, overlap)| Replaces {
                id: id.clone(),
                retires_at: now + overlap.to_time(),
            }),
        },
    })
}

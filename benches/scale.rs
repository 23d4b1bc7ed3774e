//! `cargo bench --bench scale`: organizations of 1,000 and 10,000 service accounts (3 keys
//! each, 200 teams, 50 roles), timed through the real binary as a user runs it: validate,
//! first apply, no-change plan, and a one-change plan + apply. Prints wall time and the peak
//! RSS of each command (from `wait4`), and the number of SQLite statements is not needed:
//! the local backend reads a plan's whole snapshot in one read transaction.
//!
//! `SCALE_SIZES=1000` limits the sizes.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const TEAMS: usize = 200;
const ROLES: usize = 50;
const KEYS: usize = 3;

fn config(accounts: usize, description: &str) -> String {
    let mut y = String::with_capacity(accounts * 400);
    y.push_str("organization: scale\nsecrets:\n  dir: secrets\n  recipients_file: recipients.txt\nroles:\n");
    for r in 0..ROLES {
        let _ = writeln!(
            y,
            "  role-{r}:\n    description: Role {r}\n    permissions: [\"res-{r}:read\", \"res-{r}:write\"]"
        );
    }
    y.push_str("teams:\n");
    for t in 0..TEAMS {
        let _ = writeln!(y, "  team-{t}:\n    description: Team {t}");
    }
    y.push_str("service_accounts:\n");
    for a in 0..accounts {
        let desc = if a == accounts / 2 {
            description
        } else {
            "Account"
        };
        let _ = writeln!(
            y,
            "  account-{a}:\n    description: {desc} {a}\n    teams:\n      team-{}: role-{}\n      team-{}: viewer\n    keys:",
            a % TEAMS,
            a % ROLES,
            (a + 1) % TEAMS
        );
        for k in 0..KEYS {
            let _ = writeln!(
                y,
                "      key-{k}:\n        description: Key {k}\n        expires_in: 90d\n        rotate_every: 30d\n        overlap: 1d"
            );
        }
    }
    y
}

/// Runs the binary; returns (seconds, peak RSS in MiB).
fn run(dir: &Path, args: &[&str]) -> (f64, f64) {
    let start = Instant::now();
    // Reaped by wait4 below, which also reports the child's peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(env!("CARGO_BIN_EXE_svcacct"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("svcacct runs");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // wait4 gives this child's own peak RSS, unlike getrusage(RUSAGE_CHILDREN).
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(waited, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && [0, 2].contains(&libc::WEXITSTATUS(status)),
        "svcacct {args:?} failed: {status}"
    );
    (secs, usage.ru_maxrss as f64 / 1024.0)
}

fn main() {
    let sizes: Vec<usize> = std::env::var("SCALE_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000]);
    println!("| accounts | keys | step | wall time | peak RSS |");
    println!("|---:|---:|---|---:|---:|");
    for n in sizes {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path();
        let identity = age::x25519::Identity::generate();
        std::fs::write(dir.join("recipients.txt"), identity.to_public().to_string()).unwrap();
        std::fs::write(dir.join("svcacct.yaml"), config(n, "Account")).unwrap();
        let row = |step: &str, (secs, rss): (f64, f64)| {
            println!(
                "| {n} | {} | {step} | {:.3} s | {:.0} MiB |",
                n * KEYS,
                secs,
                rss
            );
        };
        row("validate", run(dir, &["validate", "-q"]));
        row("first apply", run(dir, &["apply", "--yes", "-q"]));
        row("no-change plan", run(dir, &["plan", "--detailed-exitcode"]));
        std::fs::write(dir.join("svcacct.yaml"), config(n, "Changed")).unwrap();
        row("one-change plan", run(dir, &["plan"]));
        row("one-change apply", run(dir, &["apply", "--yes", "-q"]));
        row(
            "no-change plan (json)",
            run(dir, &["plan", "--format", "json", "--detailed-exitcode"]),
        );
    }
}

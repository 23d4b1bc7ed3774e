//! `cargo bench --bench scale`: organizations of 1,000 and 10,000 service accounts (3 keys
//! each, 200 teams, 50 roles), timed through the real binary as a user runs it: validate,
//! first apply, no-change plan, and a one-change plan + apply. Prints wall time and the peak
//! RSS of each command (from `wait4`), and the number of SQLite statements is not needed:
//! the local backend reads a plan's whole snapshot in one read transaction.
//!
//! Then the same organization is served by `svcacct serve` on loopback and planned and
//! applied through the `http` backend; those rows also show how many HTTP requests the
//! command made (from `-v`).
//!
//! The local no-change plan and validate run again with a realistic policy ([`RULES`]: every
//! rule kind, matching by name and team, an exception), to show what the rules cost.
//!
//! Plans use the key-file scan cache (in `~/.cache/svcacct`) as a user's repeated plans do;
//! one row plans without it, as CI plans a fresh checkout.
//!
//! After the rows, a growth table: time and peak RSS per account at each size, and how much
//! the time per account grew from the smallest size to the largest.
//!
//! `SCALE_SIZES=1000` limits the sizes; `SCALE_SIZES=10000,100000` measures 100,000 accounts
//! (300,000 keys; a first apply of a few minutes). `SCALE_POSTGRES_URL=postgres://…` (a database the
//! benchmark may fill) adds the same http rows through a server on PostgreSQL, after a first
//! apply of their own.
//!
//! `cargo bench --bench scale -- prefect` runs only the `prefect` rows: 1,000 bots in 20
//! workspaces on the Prefect Cloud simulator of the tests (included below), with the
//! simulator's own count of the requests each command made.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const TEAMS: usize = 200;
const ROLES: usize = 50;
const KEYS: usize = 3;

/// A realistic policy: every rule kind, some matched by name or team, one with an exception.
/// The generated organization meets it, but for three warnings (`ci-scopes`).
const RULES: &str = r#"policy:
  rules:
    - key_max_lifetime: 90d
    - rotation_required: 30d
    - admin_requires_protect: true
    - no_wildcard_permissions: { allow: ["*:read"] }
    - account_requires_owner: true
    - max_keys_per_account: 5
    - name: no-full-access
      forbid_permission: ["*:*", "secrets:*"]
    - name: no-deletes
      forbid_permission: ["res-0:delete"]
      match: { name: "account-9*" }
    - name: ci-scopes
      require_scopes: true
      severity: warn
      match: { name: "account-4?" }
      except:
        - match: { team: team-41 }
          reason: generated keys
    - team_role_ceiling: member
      match: { name: "team-*" }
"#;

/// `yaml` with [`RULES`].
fn with_rules(yaml: &str) -> String {
    yaml.replacen("roles:\n", &format!("{RULES}roles:\n"), 1)
}

fn config(accounts: usize, description: &str, backend: &str) -> String {
    let mut y = String::with_capacity(accounts * 400);
    y.push_str("organization: scale\n");
    y.push_str(backend);
    y.push_str("secrets:\n  dir: secrets\n  recipients_file: recipients.txt\nroles:\n");
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
            "  account-{a}:\n    description: {desc} {a}\n    owner: team-{}\n    teams:\n      team-{}: role-{}\n      team-{}: viewer\n    keys:",
            a % TEAMS,
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

/// What one command cost.
struct Cost {
    secs: f64,
    rss_mib: f64,
    /// HTTP requests, as `-v` reports them.
    requests: Option<u64>,
}

#[path = "../tests/it/prefect_sim/mod.rs"]
#[allow(unused_imports)]
mod prefect_sim;

/// Runs the binary; returns its wall time, peak RSS and request count.
fn run(dir: &Path, args: &[&str]) -> Cost {
    run_env(dir, args, &[])
}

/// [`run`] with more environment.
fn run_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Cost {
    let stderr_path = dir.join("stderr.log");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let start = Instant::now();
    // Reaped by wait4 below, which also reports the child's peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(env!("CARGO_BIN_EXE_svcacct"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .env("SVCACCT_TOKEN", TOKEN)
        .envs(env.iter().copied())
        .stderr(stderr)
        .spawn()
        .expect("svcacct runs");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // wait4 gives this child's own peak RSS, unlike getrusage(RUSAGE_CHILDREN).
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(waited, pid, "wait4 failed");
    let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        libc::WIFEXITED(status) && [0, 2].contains(&libc::WEXITSTATUS(status)),
        "svcacct {args:?} failed: {status}\n{log}"
    );
    let requests = log.lines().find_map(|l| {
        l.split(" made ")
            .nth(1)?
            .strip_suffix(" requests")?
            .parse()
            .ok()
    });
    Cost {
        secs,
        rss_mib: usage.ru_maxrss as f64 / 1024.0,
        requests,
    }
}

const TOKEN: &str = "scale-benchmark-operator-token";

/// `svcacct serve` over the benchmark's database; killed on drop.
struct Server(std::process::Child, String);

impl Server {
    fn start(db: impl AsRef<std::ffi::OsStr>) -> Server {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_svcacct"))
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .env("SVCACCT_ADMIN_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("svcacct serve runs");
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| {
                l.split("listening on ")
                    .nth(1)
                    .map(|u| u.trim().to_string())
            })
            .expect("the server says where it listens");
        // Drain the request log so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Server(child, url)
    }
}

impl Server {
    /// The requests the server has answered so far, from its own `/metrics` (which leave
    /// themselves out): how many a command made, without `-v` changing what it does.
    fn requests(&self) -> u64 {
        let text = reqwest::blocking::get(format!("{}/metrics", self.1))
            .and_then(|r| r.text())
            .expect("the server answers /metrics");
        text.lines()
            .filter(|l| l.starts_with("svcacct_http_requests_total{"))
            .filter(|l| !l.contains("route=\"/metrics\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Repeats a step `REPEAT` times (after `prepare(round)`) and reports the median, with the
/// range: this VM's timings vary by a third from run to run.
const REPEAT: usize = 5;

struct Summary {
    median: Cost,
    min: f64,
    max: f64,
}

/// How many first applies are measured, each of a new organization in a directory of its own.
const FIRST_APPLIES: usize = 3;

fn repeat(mut prepare: impl FnMut(usize), mut step: impl FnMut() -> Cost) -> Summary {
    summarize(
        (0..REPEAT)
            .map(|round| {
                prepare(round);
                step()
            })
            .collect(),
    )
}

/// The median of `costs` (the upper one of an even count), with the range.
fn summarize(mut costs: Vec<Cost>) -> Summary {
    costs.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    let (min, max) = (costs[0].secs, costs[costs.len() - 1].secs);
    Summary {
        median: costs.swap_remove(costs.len() / 2),
        min,
        max,
    }
}

/// The `prefect` rows: 1,000 bots, 20 workspaces, through the simulator on loopback.
fn prefect() {
    use prefect_sim::{PrefectSim, SimOptions};
    const BOTS: usize = 1000;
    const WORKSPACES: usize = 20;
    let sim = PrefectSim::start(SimOptions::default());
    sim.add_workspace("ops");
    for w in 0..WORKSPACES {
        sim.add_workspace(&format!("ws-{w}"));
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let identity = age::x25519::Identity::generate();
    std::fs::write(dir.join("recipients.txt"), identity.to_public().to_string()).unwrap();
    let write = |admin: usize| {
        let mut y = format!(
            "organization: scale\nbackend:\n  type: prefect\n  account_id: {}\n  url: {}\n  ledger_workspace: ops\nsecrets:\n  dir: secrets\n  recipients_file: recipients.txt\nroles:\n  flow-runner:\n    description: Runs deployments\n    permissions: [see_flows, see_deployments, run_deployments]\nteams:\n",
            sim.account_id(),
            sim.url()
        );
        for w in 0..WORKSPACES {
            let _ = writeln!(y, "  ws-{w}: {{}}");
        }
        y.push_str("service_accounts:\n");
        for b in 0..BOTS {
            let _ = writeln!(
                y,
                "  bot-{b:04}:\n    admin: {}\n    teams: {{ws-{}: flow-runner}}\n    keys:\n      main:\n        expires_in: 90d",
                b == admin,
                b % WORKSPACES
            );
        }
        std::fs::write(dir.join("svcacct.yaml"), y).unwrap();
    };
    let token = sim.token();
    let env = [("PREFECT_API_KEY", token.as_str())];
    let writes = |before: &prefect_sim::Requests, after: &prefect_sim::Requests| -> u64 {
        after
            .by_route
            .iter()
            .filter(|(r, _)| !r.ends_with("filter") && !r.contains("workspace_scopes"))
            .map(|(r, n)| n - before.to(r))
            .sum()
    };
    let row = |step: &str, c: &Cost, requests: u64, extra: String| {
        println!(
            "| {BOTS} | {BOTS} | prefect | {step} | {:.3} s | | {:.0} MiB | {requests}{extra} |",
            c.secs, c.rss_mib
        );
    };
    write(BOTS);
    let before = sim.requests();
    let first = run_env(dir, &["apply", "--yes", "-q", "-v"], &env);
    let after = sim.requests();
    let n = after.total - before.total;
    row(
        "first apply (default budget)",
        &first,
        n,
        format!(" ({:.0} a minute)", n as f64 / first.secs * 60.0),
    );
    let mut plans = Vec::new();
    for _ in 0..REPEAT {
        let before = sim.requests();
        let c = run_env(dir, &["plan", "-q", "--detailed-exitcode"], &env);
        plans.push((c, sim.requests().total - before.total));
    }
    plans.sort_by(|a, b| a.0.secs.total_cmp(&b.0.secs));
    let (plan, n) = &plans[REPEAT / 2];
    row(
        "no-change plan",
        plan,
        *n,
        format!(
            " ({:.3}–{:.3} s)",
            plans[0].0.secs,
            plans[REPEAT - 1].0.secs
        ),
    );
    let mut applies = Vec::new();
    for round in 0..REPEAT {
        write(round);
        let before = sim.requests();
        let c = run_env(dir, &["apply", "--yes", "-q"], &env);
        let after = sim.requests();
        applies.push((c, after.total - before.total, writes(&before, &after)));
    }
    applies.sort_by(|a, b| a.0.secs.total_cmp(&b.0.secs));
    let (apply, n, w) = &applies[REPEAT / 2];
    row("one-change apply", apply, *n, format!(" ({w} writes)"));
    // The same kind of change reviewed first: `plan --out`, then `apply plan.json` reads
    // only the bot it changes. The last round left bot-{REPEAT - 1} the admin: take it
    // away, give it back.
    let mut saved = Vec::new();
    for round in 0..REPEAT {
        write(if round % 2 == 0 { BOTS } else { REPEAT - 1 });
        run_env(dir, &["plan", "-q", "--out", "plan.json"], &env);
        let before = sim.requests();
        let c = run_env(dir, &["apply", "plan.json", "-q"], &env);
        let after = sim.requests();
        saved.push((c, after.total - before.total, writes(&before, &after)));
    }
    saved.sort_by(|a, b| a.0.secs.total_cmp(&b.0.secs));
    let (apply, n, w) = &saved[REPEAT / 2];
    row(
        "one-change apply of a saved plan",
        apply,
        *n,
        format!(" ({w} writes)"),
    );
}

fn main() {
    if std::env::args().any(|a| a == "prefect") {
        println!("| bots | keys | backend | step | wall time | range | peak RSS | requests |");
        println!("|---:|---:|---|---|---:|---:|---:|---:|");
        prefect();
        return;
    }
    let sizes: Vec<usize> = std::env::var("SCALE_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000]);
    println!(
        "| accounts | keys | backend | step | wall time (median of {REPEAT}; first apply of {FIRST_APPLIES}) | range | peak RSS | requests |"
    );
    println!("|---:|---:|---|---|---:|---:|---:|---:|");
    // Every row's (size, backend, step, median seconds, peak MiB), for the growth table.
    let measured = std::cell::RefCell::new(Vec::new());
    // Every size's files stay until the end: on ext4 without a journal, creating a file skips
    // each inode freed in the last 30 s with a read of its inode table, so deleting one size's
    // 70,000 files just before the next size's first apply measured that clean-up instead.
    let mut kept = Vec::new();
    for &n in &sizes {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        kept.push(tmp);
        let dir = dir.as_path();
        let identity = age::x25519::Identity::generate();
        std::fs::write(dir.join("recipients.txt"), identity.to_public().to_string()).unwrap();
        let row = |backend: &str, step: &str, s: Summary| {
            let c = s.median;
            measured.borrow_mut().push((
                n,
                backend.to_string(),
                step.to_string(),
                c.secs,
                c.rss_mib,
            ));
            let requests = c.requests.map_or("".to_string(), |r| r.to_string());
            println!(
                "| {n} | {} | {backend} | {step} | {:.3} s | {:.3}–{:.3} s | {:.0} MiB | {requests} |",
                n * KEYS,
                c.secs,
                s.min,
                s.max,
                c.rss_mib
            );
        };
        let write = |description: &str, backend: &str| {
            std::fs::write(dir.join("svcacct.yaml"), config(n, description, backend)).unwrap();
        };
        let local = "backend:\n  type: local\n  path: scale.db\n";
        write("Account", local);
        row(
            "local",
            "validate",
            repeat(|_| {}, || run(dir, &["validate", "-q"])),
        );
        // A first apply needs an organization that does not exist yet: the others run in
        // directories of their own (kept to the end too), the last in the one the rows below use.
        let firsts = (0..FIRST_APPLIES)
            .map(|i| {
                if i + 1 == FIRST_APPLIES {
                    return run(dir, &["apply", "--yes", "-q"]);
                }
                let other = tempfile::tempdir().expect("temp dir");
                for file in ["recipients.txt", "svcacct.yaml"] {
                    std::fs::copy(dir.join(file), other.path().join(file)).unwrap();
                }
                let cost = run(other.path(), &["apply", "--yes", "-q"]);
                kept.push(other);
                cost
            })
            .collect();
        row("local", "first apply", summarize(firsts));
        row(
            "local",
            "no-change plan",
            repeat(|_| {}, || run(dir, &["plan", "--detailed-exitcode"])),
        );
        // As CI plans a fresh checkout: no scan cache, every key file's directory read.
        let no_cache = [("SVCACCT_CACHE_DIR", "")];
        row(
            "local",
            "no-change plan, no scan cache",
            repeat(
                |_| {},
                || run_env(dir, &["plan", "--detailed-exitcode"], &no_cache),
            ),
        );
        std::fs::write(
            dir.join("svcacct.yaml"),
            with_rules(&config(n, "Account", local)),
        )
        .unwrap();
        row(
            "local",
            "validate, with policy rules",
            repeat(|_| {}, || run(dir, &["validate", "-q"])),
        );
        row(
            "local",
            "no-change plan, with policy rules",
            repeat(|_| {}, || run(dir, &["plan", "--detailed-exitcode"])),
        );
        // Once more without, so the two are measured side by side.
        write("Account", local);
        row(
            "local",
            "no-change plan, again without rules",
            repeat(|_| {}, || run(dir, &["plan", "--detailed-exitcode"])),
        );
        write("Changed", local);
        row(
            "local",
            "one-change plan",
            repeat(|_| {}, || run(dir, &["plan"])),
        );
        let apply = repeat(
            |round| write(&format!("Round {round}"), local),
            || run(dir, &["apply", "--yes", "-q"]),
        );
        row("local", "one-change apply", apply);

        let server = Server::start(dir.join("scale.db"));
        let http = format!("backend:\n  type: http\n  url: {}\n", server.1);
        write("Round 4", &http);
        let plan = repeat(|_| {}, || run(dir, &["plan", "-v", "--detailed-exitcode"]));
        row("http", "no-change plan", plan);
        write("Changed", &http);
        row(
            "http",
            "one-change plan",
            repeat(|_| {}, || run(dir, &["plan", "-v"])),
        );
        // As CI runs it: `-q`, no `-v` (which would print the plan, and read the audit log
        // for it); the server counts the requests.
        let apply = repeat(
            |round| write(&format!("Again {round}"), &http),
            || {
                let before = server.requests();
                let mut cost = run(dir, &["apply", "--yes", "-q"]);
                cost.requests = Some(server.requests() - before);
                cost
            },
        );
        row("http", "one-change apply", apply);
        drop(server);

        if let Ok(url) = std::env::var("SCALE_POSTGRES_URL") {
            postgres_rows(n, &url, dir, &row);
        }
    }
    growth(&sizes, &measured.into_inner());
}

/// How each step grows from the smallest size to the largest: time and peak RSS per account
/// at every size, and the ratio of the largest to the smallest (1.0 is linear).
fn growth(sizes: &[usize], measured: &[(usize, String, String, f64, f64)]) {
    let (Some(&small), Some(&large)) = (sizes.iter().min(), sizes.iter().max()) else {
        return;
    };
    if small == large {
        return;
    }
    println!();
    let head: String = sizes
        .iter()
        .map(|n| format!(" µs / account at {n} | KiB / account at {n} |"))
        .collect();
    println!("| backend | step |{head} time growth {small} → {large} (1.0 = linear) |");
    println!("|---|---|{}---:|", "---:|---:|".repeat(sizes.len()));
    let at = |n: usize, backend: &str, step: &str| {
        measured
            .iter()
            .find(|(m, b, s, ..)| *m == n && b == backend && s == step)
            .map(|&(_, _, _, secs, mib)| (secs, mib))
    };
    for (_, backend, step, ..) in measured.iter().filter(|(m, ..)| *m == small) {
        let cells: String = sizes
            .iter()
            .map(|&n| match at(n, backend, step) {
                Some((secs, mib)) => format!(
                    " {:.1} | {:.1} |",
                    secs * 1e6 / n as f64,
                    mib * 1024.0 / n as f64
                ),
                None => " | |".to_string(),
            })
            .collect();
        let ratio = match (at(small, backend, step), at(large, backend, step)) {
            (Some((a, _)), Some((b, _))) => {
                format!("{:.2}", (b / large as f64) / (a / small as f64))
            }
            _ => String::new(),
        };
        println!("| {backend} | {step} |{cells} {ratio} |");
    }
}

/// The http rows through a server on PostgreSQL: its own first apply (an organization per
/// size, in a directory of its own), then the same steps as on SQLite.
fn postgres_rows(n: usize, url: &str, sqlite_dir: &Path, row: &dyn Fn(&str, &str, Summary)) {
    let server = Server::start(url);
    let http = format!("backend:\n  type: http\n  url: {}\n", server.1);
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    std::fs::copy(
        sqlite_dir.join("recipients.txt"),
        dir.join("recipients.txt"),
    )
    .unwrap();
    let write = |description: &str| {
        let yaml = config(n, description, &http).replacen(
            "organization: scale",
            &format!("organization: scale-{n}"),
            1,
        );
        std::fs::write(dir.join("svcacct.yaml"), yaml).unwrap();
    };
    const PG: &str = "http (postgres)";
    write("Account");
    let first = run(dir, &["apply", "--yes", "-q", "-v"]);
    row(
        PG,
        "first apply",
        Summary {
            min: first.secs,
            max: first.secs,
            median: first,
        },
    );
    let plan = repeat(|_| {}, || run(dir, &["plan", "-v", "--detailed-exitcode"]));
    row(PG, "no-change plan", plan);
    write("Changed");
    row(
        PG,
        "one-change plan",
        repeat(|_| {}, || run(dir, &["plan", "-v"])),
    );
    let apply = repeat(
        |round| write(&format!("Again {round}")),
        || run(dir, &["apply", "--yes", "-q", "-v"]),
    );
    row(PG, "one-change apply", apply);
}

//! Concurrency: applies on one organization never interleave; a held lock makes an apply
//! wait and then fail naming the holder.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::common::*;

/// Waits for a child, collecting its output.
fn finish(child: std::process::Child) -> Out {
    Out::from(child.wait_with_output().unwrap())
}

/// Succeeded, or failed cleanly because the other apply held the organization.
#[track_caller]
fn finished_or_locked_out(what: &str, out: &Out) {
    let locked = out.code == Some(1) && out.stderr.contains("locked by another apply");
    assert!(
        out.code == Some(0) || locked,
        "{what}: exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.code,
        out.stdout,
        out.stderr
    );
}

#[test]
fn two_applies_at_once_never_interleave() {
    for round in 0..3 {
        let sb = Sandbox::new();
        let identity = demo_files(&sb);
        // Config A in org/, config B in other/ for the same organization file and secrets.
        let a = "org/svcacct.yaml";
        let b = "other/svcacct.yaml";
        sb.write(a, &many_accounts_yaml("acme", 60, 2, ""));
        let shared = "backend:\n  type: local\n  path: ../org/.svcacct/acme.db\n";
        let b_text = many_accounts_yaml("acme", 80, 1, shared)
            .replace(
                "  recipients_file:",
                "  dir: ../org/secrets\n  recipients_file:",
            )
            .replace("description: account", "description: other account");
        sb.write(b, &b_text);
        if round == 2 {
            // The organization exists already: both applies change it.
            sb.apply(a, T0);
        }

        let first = sb
            .cmd(&["apply", "--yes", "--allow-mass-delete", "-c", a])
            .now(T0)
            .spawn();
        let second = sb
            .cmd(&["apply", "--yes", "--allow-mass-delete", "-c", b])
            .now(T0)
            .spawn();
        // Plans read while the applies write.
        let mut plans = Vec::new();
        for _ in 0..5 {
            plans.push(
                sb.cmd(&["plan", "--allow-mass-delete", "--format", "json", "-c", b])
                    .now(T0)
                    .run(),
            );
        }
        let (first, second) = (finish(first), finish(second));
        finished_or_locked_out("apply A", &first);
        finished_or_locked_out("apply B", &second);
        for p in &plans {
            assert_eq!(p.code, Some(0), "a plan during applies: {}", p.stderr);
        }

        // One more apply of B converges; nothing is left over or missing.
        let out = sb
            .cmd(&["apply", "--yes", "--allow-mass-delete", "-c", b])
            .now(T0)
            .run();
        out.ok();
        sb.cmd(&["plan", "--detailed-exitcode", "-c", b])
            .now(T0)
            .run()
            .expect(0);
        let db = sb.join("org/.svcacct/acme.db");
        let n = assert_every_key_has_its_file(&db, &sb.join("org/secrets"), &identity);
        assert_eq!(n, 80, "round {round}");
        let accounts: i64 = open_db(&db)
            .query_row(
                "SELECT count(*) FROM service_accounts WHERE description LIKE 'other account %'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(accounts, 80);
        // The revision counts every write exactly once: the audit log agrees with it.
        let conn = open_db(&db);
        let revision: i64 = conn
            .query_row("SELECT revision FROM organizations", [], |r| r.get(0))
            .unwrap();
        let audited: i64 = conn
            .query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))
            .unwrap();
        assert_eq!(revision, audited, "round {round}");
    }
}

#[test]
fn a_held_lock_makes_apply_wait_then_fail_naming_the_holder() {
    let sb = Sandbox::new();
    sb.copy_example("small");
    let cfg = "examples/small/svcacct.yaml";
    sb.apply(cfg, T0);
    let db = sb.join("examples/small/.svcacct/acme.db");
    let text = sb.read(cfg).replace(
        "description: Platform engineering",
        "description: Platform team",
    );
    sb.write(cfg, &text);
    let revision = || -> i64 {
        open_db(&db)
            .query_row("SELECT revision FROM organizations", [], |r| r.get(0))
            .unwrap()
    };
    let before = revision();

    let mut lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(sb.join("examples/small/.svcacct/acme.db.lock"))
        .unwrap();
    lock.lock().unwrap();
    lock.set_len(0).unwrap();
    write!(lock, "the integration test, pid {}", std::process::id()).unwrap();
    lock.flush().unwrap();

    let started = Instant::now();
    let out = sb
        .cmd(&["apply", "--yes", "--lock-timeout", "1", "-c", cfg])
        .now(T0)
        .run();
    let waited = started.elapsed();
    out.expect(1);
    assert!(
        out.stderr.contains("locked by another apply"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("the integration test"),
        "the holder is named: {}",
        out.stderr
    );
    assert!(
        waited >= Duration::from_millis(900),
        "it waited for the lock ({waited:?})"
    );
    assert_eq!(revision(), before, "nothing was written");
    // Plans do not need the lock.
    sb.cmd(&["plan", "--detailed-exitcode", "-c", cfg])
        .now(T0)
        .run()
        .expect(2);

    // A waiting apply proceeds once the lock is released.
    let child = sb
        .cmd(&["apply", "--yes", "--lock-timeout", "30", "-c", cfg])
        .now(T0)
        .spawn();
    std::thread::sleep(Duration::from_millis(300));
    lock.unlock().unwrap();
    drop(lock);
    let out = finish(child);
    out.ok();
    assert!(revision() > before);
    sb.cmd(&["plan", "--detailed-exitcode", "-c", cfg])
        .now(T0)
        .run()
        .expect(0);
}

/// SQLite answers "database is locked" at once, without waiting, to a connection that holds
/// a read lock and asks for the write lock another connection holds (either would wait for the
/// other). Turning a new file to WAL is such a request: two first applies, or a first apply
/// and anything writing the file, met there. The apply waits instead.
#[test]
fn a_first_apply_waits_for_a_writer_of_the_new_file() {
    let sb = Sandbox::new();
    sb.copy_example("small");
    let cfg = "examples/small/svcacct.yaml";
    let db = sb.join("examples/small/.svcacct/acme.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let writer = rusqlite::Connection::open(&db).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();

    let mut child = sb.cmd(&["apply", "--yes", "-c", cfg]).now(T0).spawn();
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the apply gave up while the file was being written: {}",
        finish(child).stderr
    );
    writer.execute_batch("COMMIT").unwrap();
    drop(writer);
    finish(child).ok();
    sb.cmd(&["plan", "--detailed-exitcode", "-c", cfg])
        .now(T0)
        .run()
        .expect(0);
}

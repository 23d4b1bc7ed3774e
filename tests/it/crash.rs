//! Crash safety: an apply that dies at any moment never leaves a live key without its file,
//! and the next apply converges.

use std::time::{Duration, Instant};

use crate::common::*;

const CFG: &str = "org/svcacct.yaml";
const DB: &str = "org/.svcacct/acme.db";

fn age_files(sb: &Sandbox) -> Vec<std::path::PathBuf> {
    let dir = sb.join("org/secrets");
    files_under(&dir)
        .into_keys()
        .filter(|p| p.extension().is_some_and(|e| e == "age"))
        .map(|p| dir.join(p))
        .collect()
}

/// Key files an interrupted apply left waiting for their key's registration.
fn pending_files(sb: &Sandbox) -> Vec<std::path::PathBuf> {
    let dir = sb.join("org/secrets");
    files_under(&dir)
        .into_keys()
        .filter(|p| p.to_string_lossy().contains(".age.pending-"))
        .map(|p| dir.join(p))
        .collect()
}

fn integrity_ok(sb: &Sandbox) {
    let check: String = open_db(&sb.join(DB))
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn abort_between_a_durable_file_and_its_registration_loses_no_key() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    sb.write(CFG, &many_accounts_yaml("acme", 10, 1, ""));

    let out = sb
        .cmd(&["apply", "--yes", "--parallelism", "1", "-c", CFG])
        .now(T0)
        .fault("SVCACCT_TEST_ABORT_AFTER_KEY_FILES", "3")
        .run();
    assert_eq!(out.code, None, "the apply aborted: {out:?}");
    assert_eq!(out.signal, Some(6), "SIGABRT: {out:?}");
    integrity_ok(&sb);

    // Three pending files are durable and whole; none of their keys was registered, and no
    // `<key>.age` was written for an unregistered key.
    let written = pending_files(&sb);
    assert_eq!(written.len(), 3, "{written:?}");
    assert!(age_files(&sb).is_empty());
    assert!(key_rows(&sb.join(DB)).is_empty());
    let accounts: i64 = open_db(&sb.join(DB))
        .query_row("SELECT count(*) FROM service_accounts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(accounts, 10, "earlier stages were committed");
    let orphans: Vec<String> = written.iter().map(|f| secret_of(f, &identity)).collect();
    for s in &orphans {
        let (code, v) = sb.verify(CFG, s, T0);
        assert_eq!((code, v["reason"].as_str()), (1, Some("unknown")), "{v}");
    }
    let leftovers: Vec<_> = files_under(&sb.join("org/secrets"))
        .into_keys()
        .filter(|p| !p.to_string_lossy().contains(".age.pending-"))
        .filter(|p| !p.to_string_lossy().contains(".meta.json.pending-"))
        .filter(|p| p.as_os_str() != ".issuing")
        .collect();
    assert!(leftovers.is_empty(), "no temporary files: {leftovers:?}");
    assert!(
        sb.join("org/secrets/.issuing").exists(),
        "the marker tells the next apply to look for pending files"
    );

    // The plan still creates all ten keys; the apply converges.
    let plan = sb.plan_json(CFG, T0);
    assert_eq!(
        plan["summary"],
        serde_json::json!({"create": 10}),
        "{plan:#}"
    );
    sb.apply(CFG, T0);
    assert_eq!(
        assert_every_key_has_its_file(&sb.join(DB), &sb.join("org/secrets"), &identity),
        10
    );
    assert!(
        pending_files(&sb).is_empty(),
        "the apply discarded the orphans"
    );
    sb.cmd(&["plan", "--detailed-exitcode", "-c", CFG])
        .now(T0)
        .run()
        .expect(0);
    for s in &orphans {
        assert_eq!(sb.verify(CFG, s, T0).1["reason"], "unknown");
    }

    // A rotation that dies half way: the old keys stay live until a later apply finishes it.
    let later = at(31, 0);
    let out = sb
        .cmd(&["apply", "--yes", "--parallelism", "1", "-c", CFG])
        .now(&later)
        .fault("SVCACCT_TEST_ABORT_AFTER_KEY_FILES", "2")
        .run();
    assert_eq!(out.signal, Some(6), "{out:?}");
    integrity_ok(&sb);
    assert_eq!(current_keys(&sb.join(DB)).len(), 10);
    // The files still hold the live (old) keys: a rotation's new secret waits aside.
    assert_eq!(
        assert_every_key_has_its_file(&sb.join(DB), &sb.join("org/secrets"), &identity),
        10
    );
    assert_eq!(pending_files(&sb).len(), 2);
    assert!(
        key_rows(&sb.join(DB))
            .iter()
            .all(|k| k.retires_at.is_none()),
        "no rotation was registered"
    );
    let plan = sb.plan_json(CFG, &later);
    assert_eq!(
        plan["summary"],
        serde_json::json!({"rotate": 10}),
        "{plan:#}"
    );
    sb.apply(CFG, &later);
    assert_eq!(
        assert_every_key_has_its_file(&sb.join(DB), &sb.join("org/secrets"), &identity),
        10
    );
    sb.cmd(&["plan", "--detailed-exitcode", "-c", CFG])
        .now(&later)
        .run()
        .expect(0);
}

#[test]
fn abort_while_the_next_chunk_is_written_loses_no_key() {
    // Keys are issued in chunks of 1,024, the next chunk's files written while this chunk's
    // keys are synced, registered and promoted. An abort among the second chunk's writes
    // catches the first chunk wherever it has got to.
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    sb.write(CFG, &many_accounts_yaml("acme", 500, 3, ""));
    let out = sb
        .cmd(&["apply", "--yes", "-c", CFG])
        .now(T0)
        .fault("SVCACCT_TEST_ABORT_AFTER_KEY_FILES", "1100")
        .run();
    assert_eq!(out.signal, Some(6), "SIGABRT: {out:?}");
    integrity_ok(&sb);
    let live = current_keys(&sb.join(DB)).len();
    assert!(
        live == 0 || live == 1024,
        "whole chunks are registered: {live}"
    );
    assert_eq!(
        assert_every_key_has_its_file(&sb.join(DB), &sb.join("org/secrets"), &identity),
        live
    );
    assert!(
        pending_files(&sb).len() >= 1100 - live,
        "the second chunk's files written so far wait, unregistered"
    );
    sb.apply(CFG, T0);
    assert_eq!(
        assert_every_key_has_its_file(&sb.join(DB), &sb.join("org/secrets"), &identity),
        1500
    );
    assert!(pending_files(&sb).is_empty(), "{:?}", pending_files(&sb));
}

#[test]
fn abort_between_a_registration_and_its_file_rename_is_finished_by_the_next_apply() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    sb.write(CFG, &many_accounts_yaml("acme", 4, 2, ""));
    let out = sb
        .cmd(&["apply", "--yes", "-c", CFG])
        .now(T0)
        .fault("SVCACCT_TEST_ABORT_AFTER_REGISTER", "1")
        .run();
    assert_eq!(out.signal, Some(6), "{out:?}");
    // Registered, with their files still pending: no key is lost, and a plan sees no change.
    assert_eq!(current_keys(&sb.join(DB)).len(), 8);
    assert_eq!(pending_files(&sb).len(), 8);
    assert!(age_files(&sb).is_empty());
    assert_eq!(
        assert_every_key_has_its_file(&sb.join(DB), &sb.join("org/secrets"), &identity),
        8
    );
    sb.cmd(&["plan", "--detailed-exitcode", "-c", CFG])
        .now(T0)
        .run()
        .expect(0);
    // The next apply moves them into place and says so.
    let out = sb.apply(CFG, T0);
    assert!(out.stdout.contains("Moved 8 key file(s)"), "{}", out.stdout);
    assert!(pending_files(&sb).is_empty());
    assert_eq!(age_files(&sb).len(), 8);
    assert_eq!(
        assert_every_key_has_its_file(&sb.join(DB), &sb.join("org/secrets"), &identity),
        8
    );
}

/// Starts an apply at `now`, SIGKILLs it after `delay`, and notes what happened in `log`.
fn apply_killed_after(sb: &Sandbox, now: &str, delay: Duration, log: &mut Vec<String>) {
    let started = Instant::now();
    let mut child = sb
        .cmd(&["apply", "--yes", "-q", "-c", CFG])
        .now(now)
        .spawn();
    std::thread::sleep(delay);
    let _ = child.kill();
    let status = child.wait().unwrap();
    let files = age_files(sb).len();
    log.push(format!(
        "at {now}: killed after {delay:?} ({status} after {:?}); {files} key files",
        started.elapsed()
    ));
}

/// The random kill moments come from this seed: a failure prints it, and
/// `SVCACCT_CRASH_SEED=N` replays the same moments.
fn crash_rng() -> (u64, rand::rngs::StdRng) {
    use rand::SeedableRng;
    let seed = std::env::var("SVCACCT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash seed: {seed} (replay with SVCACCT_CRASH_SEED={seed})");
    (seed, rand::rngs::StdRng::seed_from_u64(seed))
}

#[test]
fn sigkill_at_random_moments_never_loses_a_key() {
    use rand::Rng;
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    sb.write(CFG, &many_accounts_yaml("acme", 200, 2, ""));
    let secrets = sb.join("org/secrets");
    let db = sb.join(DB);
    let (seed, mut rng) = crash_rng();
    let mut log = vec![format!("replay with SVCACCT_CRASH_SEED={seed}")];

    // Issuing 400 keys, killed at random moments.
    for _ in 0..4 {
        let delay = Duration::from_millis(rng.random_range(0..300));
        apply_killed_after(&sb, T0, delay, &mut log);
        if db.exists() {
            integrity_ok(&sb);
            // Issuing never overwrites a registered key's file, so the invariant holds
            // after every kill, not only after convergence.
            let checked = std::panic::catch_unwind(|| {
                assert_every_key_has_its_file(&db, &secrets, &identity)
            });
            assert!(checked.is_ok(), "after a kill:\n{}", log.join("\n"));
        }
    }
    let started = Instant::now();
    let out = sb.cmd(&["apply", "--yes", "-q", "-c", CFG]).now(T0).run();
    let full = started.elapsed();
    assert_eq!(out.code, Some(0), "{}\n{out:?}", log.join("\n"));
    assert_eq!(
        assert_every_key_has_its_file(&db, &secrets, &identity),
        400,
        "{}",
        log.join("\n")
    );

    // Rotating all 400 a month later, killed at random moments of a whole apply's length.
    let later = at(31, 0);
    let span = (full.as_millis() as u64 * 5 / 4).max(300);
    for _ in 0..4 {
        let delay = Duration::from_millis(rng.random_range(0..span));
        apply_killed_after(&sb, &later, delay, &mut log);
        integrity_ok(&sb);
        // Staged files make the invariant hold after every kill during rotation too.
        let checked =
            std::panic::catch_unwind(|| assert_every_key_has_its_file(&db, &secrets, &identity));
        assert!(checked.is_ok(), "after a kill:\n{}", log.join("\n"));
    }

    let out = sb
        .cmd(&["apply", "--yes", "-q", "-c", CFG])
        .now(&later)
        .run();
    assert_eq!(out.code, Some(0), "{}\n{out:?}", log.join("\n"));
    sb.cmd(&["plan", "--detailed-exitcode", "-c", CFG])
        .now(&later)
        .run()
        .expect(0);
    assert_eq!(
        assert_every_key_has_its_file(&db, &secrets, &identity),
        400,
        "{}",
        log.join("\n")
    );
    // Every key was rotated exactly once: 400 first keys (retiring or revoked) and 400 new.
    let rows = key_rows(&db);
    assert_eq!(rows.len(), 800, "{}", log.join("\n"));
    assert_eq!(
        rows.iter().filter(|k| k.retires_at.is_some()).count(),
        400,
        "the first keys are rotated out with their overlap"
    );
}

#[test]
fn a_registration_whose_answer_was_lost_keeps_its_file_for_the_next_apply() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    sb.write(CFG, &many_accounts_yaml("acme", 3, 2, ""));
    let secrets = sb.join("org/secrets");
    for now in [T0.to_string(), at(31, 0)] {
        // The backend registers the keys (first issue, then a rotation), but the apply never
        // hears so: it must not throw away the only copy of those secrets.
        let out = sb
            .cmd(&["apply", "--yes", "-c", CFG])
            .now(&now)
            .fault("SVCACCT_TEST_LOSE_REGISTRATION_ANSWERS", "1")
            .run();
        out.expect(1);
        assert!(out.stdout.contains("6 failed"), "{}", out.stdout);
        assert_eq!(
            current_keys(&sb.join(DB)).len(),
            6,
            "the backend has the new keys"
        );
        assert_eq!(pending_files(&sb).len(), 6, "their files wait, pending");
        assert_eq!(
            assert_every_key_has_its_file(&sb.join(DB), &secrets, &identity),
            6
        );
        // The next apply sees the keys are live, moves their files into place, and is done.
        let out = sb.apply(CFG, &now);
        assert!(out.stdout.contains("Moved 6 key file(s)"), "{}", out.stdout);
        assert!(pending_files(&sb).is_empty());
        assert_eq!(
            assert_every_key_has_its_file(&sb.join(DB), &secrets, &identity),
            6
        );
        sb.cmd(&["plan", "--detailed-exitcode", "-c", CFG])
            .now(&now)
            .run()
            .expect(0);
    }
}

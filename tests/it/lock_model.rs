//! One lock model: a `local` apply and a `svcacct serve` on the same SQLite file take the same
//! lease, so they exclude each other whichever starts first; a killed local apply's lease is
//! taken over at once by the next local apply, and a server waits only for its TTL.

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::common::*;

const LOCAL: &str = "org/svcacct.yaml";
const SERVED: &str = "org/served.yaml";

/// A sandbox with one organization written two ways: `org/svcacct.yaml` on the SQLite file
/// directly, `org/served.yaml` through a server on that same file. Both keep their key files
/// in `org/secrets`.
struct Shared {
    sb: Sandbox,
    server: Server,
    db: PathBuf,
}

impl Shared {
    fn new(accounts: usize) -> Shared {
        let sb = Sandbox::new();
        demo_files(&sb);
        let db = sb.join("org/.svcacct/acme.db");
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        let server = Server::start(&db, Some(T0));
        // The organization exists (a server leases existing ones only) with one account.
        sb.write(LOCAL, &many_accounts_yaml("acme", 1, 1, ""));
        sb.cmd(&["apply", "--yes", "-c", LOCAL]).now(T0).run().ok();
        sb.write(LOCAL, &many_accounts_yaml("acme", accounts, 1, ""));
        let served = format!(
            "backend:\n  type: http\n  url: {}\n  token_env: SVCACCT_TEST_TOKEN\n",
            server.url
        );
        sb.write(SERVED, &many_accounts_yaml("acme", accounts, 1, &served));
        Shared { sb, server, db }
    }

    fn cmd(&self, args: &[&str]) -> Cmd {
        self.sb
            .cmd(args)
            .now(T0)
            .env("SVCACCT_TEST_TOKEN", OPERATOR)
    }

    fn revision(&self) -> i64 {
        open_db(&self.db)
            .query_row("SELECT revision FROM organizations", [], |r| r.get(0))
            .unwrap()
    }

    /// The live lease's owner, if any.
    fn lease_owner(&self) -> Option<String> {
        open_db(&self.db)
            .query_row(
                "SELECT owner FROM leases WHERE expires_at > unixepoch()",
                [],
                |r| r.get(0),
            )
            .ok()
    }

    fn api(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let resp = Client::new()
            .request(
                method,
                format!("{}/v1/organizations/acme{path}", self.server.url),
            )
            .bearer_auth(OPERATOR)
            .json(&body)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    /// Starts a local apply and stops it (SIGSTOP) once it holds the lease, at a moment it is
    /// not inside a write transaction (which would hold every other writer of the file at the
    /// SQLite level, a different matter from the lease).
    fn local_apply_stopped_holding_the_lease(&self) -> Child {
        let mut child = self.cmd(&["apply", "--yes", "-c", LOCAL]).spawn();
        let holder = format!("pid {}", child.id());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                Instant::now() < deadline,
                "the local apply never took the lease"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "the local apply ended before it could be stopped"
            );
            if !self.lease_owner().is_some_and(|o| o.contains(&holder)) {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            signal(&child, libc::SIGSTOP);
            let probe = open_db_rw(&self.db);
            probe.busy_timeout(Duration::ZERO).unwrap();
            if probe.execute_batch("BEGIN IMMEDIATE; ROLLBACK").is_ok() {
                return child;
            }
            signal(&child, libc::SIGCONT);
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
}

fn finish(child: Child) -> Out {
    Out::from(child.wait_with_output().unwrap())
}

#[test]
fn a_served_apply_holding_the_lease_makes_a_local_apply_wait_then_fail_naming_it() {
    let s = Shared::new(3);
    s.cmd(&["apply", "--yes", "-c", LOCAL]).run().ok();
    let before = s.revision();
    // What a served apply does first: take the lease through the API.
    let (status, lease) = s.api(
        reqwest::Method::POST,
        "/lock",
        json!({"owner": "the served apply of the test", "ttl_seconds": 120}),
    );
    assert_eq!(status, 201, "{lease:#}");
    s.sb.write(
        LOCAL,
        &s.sb
            .read(LOCAL)
            .replace("description: Everyone", "description: All"),
    );

    let out = s
        .cmd(&["apply", "--yes", "--lock-timeout", "1", "-c", LOCAL])
        .run();
    out.expect(1);
    assert!(
        out.stderr.contains("locked by another apply")
            && out.stderr.contains("the served apply of the test"),
        "{}",
        out.stderr
    );
    assert_eq!(s.revision(), before, "nothing was written");

    // A waiting local apply goes on once the served one releases the lease.
    let child = s
        .cmd(&["apply", "--yes", "--lock-timeout", "60", "-c", LOCAL])
        .spawn();
    std::thread::sleep(Duration::from_millis(500));
    let id = lease["lease_id"].as_str().unwrap();
    let (status, _) = s.api(reqwest::Method::DELETE, &format!("/lock/{id}"), json!({}));
    assert_eq!(status, 204);
    finish(child).ok();
    assert!(s.revision() > before);
    assert_eq!(s.lease_owner(), None, "the local apply released its lease");
}

#[test]
fn a_local_apply_holding_the_lease_makes_a_served_apply_and_api_writes_wait() {
    let s = Shared::new(40);
    let local = s.local_apply_stopped_holding_the_lease();
    let holder = format!("(local, pid {})", local.id());

    let served = s
        .cmd(&["apply", "--yes", "--lock-timeout", "1", "-c", SERVED])
        .run();
    served.expect(1);
    assert!(
        served.stderr.contains("locked by another apply") && served.stderr.contains(&holder),
        "{}",
        served.stderr
    );
    let (status, body) = s.api(
        reqwest::Method::PUT,
        "/teams/intruder",
        json!({"description": "written past the lock"}),
    );
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("locked")),
        "{body:#}"
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains(&holder),
        "{body:#}"
    );

    signal(&local, libc::SIGCONT);
    finish(local).ok();
    assert_eq!(s.lease_owner(), None, "the local apply released its lease");
    // The served config wants what the local one applied: nothing left to do.
    s.cmd(&["plan", "--detailed-exitcode", "-c", SERVED])
        .run()
        .expect(0);
    let identity = s.sb.join("examples/demo-identity.txt");
    assert_eq!(
        assert_every_key_has_its_file(&s.db, &s.sb.join("org/secrets"), &identity),
        40
    );
}

#[test]
fn a_killed_local_apply_is_taken_over_by_the_next_local_one_and_expires_for_a_server() {
    let s = Shared::new(40);
    let mut local = s.local_apply_stopped_holding_the_lease();
    let holder = format!("(local, pid {})", local.id());
    signal(&local, libc::SIGKILL);
    let _ = local.wait();

    // The dead apply's lease is still live for a server, but for at most its TTL.
    let expires_in: i64 = open_db(&s.db)
        .query_row(
            "SELECT expires_at - unixepoch() FROM leases WHERE expires_at > unixepoch()",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!((1..=30).contains(&expires_in), "{expires_in}");
    let (status, body) = s.api(
        reqwest::Method::PUT,
        "/teams/intruder",
        json!({"description": "written past the lock"}),
    );
    assert_eq!(status, 409, "{body:#}");
    assert!(body["error"]["message"].as_str().unwrap().contains(&holder));

    // The next local apply holds the file lock the dead one's kernel released: it takes over
    // at once instead of waiting out the TTL.
    let started = Instant::now();
    s.cmd(&["apply", "--yes", "--lock-timeout", "0", "-c", LOCAL])
        .run()
        .ok();
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "it did not wait out the TTL"
    );
    assert_eq!(s.lease_owner(), None);
    s.cmd(&["plan", "--detailed-exitcode", "-c", SERVED])
        .run()
        .expect(0);
}

#[test]
fn a_local_and_a_served_apply_racing_on_one_file_never_interleave() {
    for round in 0..3 {
        let s = Shared::new(30);
        // The served config differs, so whichever applies second has work to do.
        s.sb.write(
            SERVED,
            &s.sb
                .read(SERVED)
                .replace("description: account", "description: served account"),
        );
        if round == 2 {
            s.cmd(&["apply", "--yes", "-c", LOCAL]).run().ok();
        }
        let local = s
            .cmd(&["apply", "--yes", "--allow-mass-delete", "-c", LOCAL])
            .spawn();
        let served = s
            .cmd(&["apply", "--yes", "--allow-mass-delete", "-c", SERVED])
            .spawn();
        for (what, out) in [("local", finish(local)), ("served", finish(served))] {
            let locked = out.code == Some(1) && out.stderr.contains("locked by another apply");
            assert!(
                out.code == Some(0) || locked,
                "round {round}, {what} apply: exit {:?}\n{}\n{}",
                out.code,
                out.stdout,
                out.stderr
            );
        }
        // One more served apply converges; the revision counts every write exactly once.
        s.cmd(&["apply", "--yes", "--allow-mass-delete", "-c", SERVED])
            .run()
            .ok();
        s.cmd(&["plan", "--detailed-exitcode", "-c", SERVED])
            .run()
            .expect(0);
        let audited: i64 = open_db(&s.db)
            .query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))
            .unwrap();
        assert_eq!(s.revision(), audited, "round {round}");
        let identity = s.sb.join("examples/demo-identity.txt");
        assert_eq!(
            assert_every_key_has_its_file(&s.db, &s.sb.join("org/secrets"), &identity),
            30,
            "round {round}"
        );
    }
}

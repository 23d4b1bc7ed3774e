//! The `http` backend against a real server under stress: injected faults (500s, 429s and
//! answers lost after the write ran) and two applies at once. Whatever happens, re-running
//! converges and no key is lost.

use crate::common::*;

const CFG: &str = "org/svcacct.yaml";

/// [`many_accounts_yaml`] on the server at `url`, its team described as `description`.
fn http_config(url: &str, accounts: usize, keys: usize, description: &str) -> String {
    let backend =
        format!("backend:\n  type: http\n  url: {url}\n  token_env: SVCACCT_TEST_TOKEN\n");
    many_accounts_yaml("acme", accounts, keys, &backend).replacen(
        "description: Everyone",
        &format!("description: {description}"),
        1,
    )
}

fn run(sb: &Sandbox, args: &[&str], now: &str) -> Out {
    sb.cmd(args)
        .now(now)
        .env("SVCACCT_TEST_TOKEN", OPERATOR)
        .run()
}

/// Applies until an apply succeeds; returns how many it took.
fn converge(sb: &Sandbox, now: &str) -> usize {
    for attempt in 1..=8 {
        let out = run(sb, &["apply", "--yes", "-q", "-c", CFG], now);
        if out.code == Some(0) {
            return attempt;
        }
        assert_eq!(out.code, Some(1), "a failed apply exits 1: {out:?}");
    }
    panic!("no convergence in 8 applies");
}

#[test]
fn applies_converge_through_injected_faults_and_lose_no_key() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    let db = sb.join("server.db");
    let server = Server::start_with(&db, Some(T0), "127.0.0.1:0", &["--inject-faults", "0.3"]);
    sb.write(CFG, &http_config(&server.url, 30, 2, "Everyone"));

    let attempts = converge(&sb, T0);
    assert!(attempts >= 1);
    let secrets = sb.join("org/secrets");
    assert_eq!(assert_every_key_has_its_file(&db, &secrets, &identity), 60);
    // Nothing was applied twice: one key per name, each registered once.
    assert_eq!(key_rows(&db).len(), 60);

    // A rotation of everything through the same faults.
    let later = at(31, 0);
    converge(&sb, &later);
    assert_eq!(assert_every_key_has_its_file(&db, &secrets, &identity), 60);
    assert_eq!(key_rows(&db).len(), 120, "every key rotated exactly once");

    // And the organization now matches the config; plans retry through faults too.
    for _ in 0..10 {
        let out = run(&sb, &["plan", "--detailed-exitcode", "-c", CFG], &later);
        assert_eq!(out.code, Some(0), "{out:?}");
    }
    let log = server.log();
    let faults = log
        .lines()
        .filter(|l| l.contains("status=500") || l.contains("status=429"))
        .count();
    // The test is not vacuous: faults really were injected (none in ~30 requests at a 30%
    // rate has a chance of about 2 in 100,000).
    assert!(faults >= 1, "faults were injected ({faults}):\n{log}");
}

#[test]
fn two_applies_at_once_against_one_server_never_interleave() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    let db = sb.join("server.db");
    let server = Server::start(&db, Some(T0));
    sb.write(CFG, &http_config(&server.url, 60, 2, "Everyone"));
    // A second config for the same organization and key files, differing in one description.
    const OTHER: &str = "org/other.yaml";
    sb.write(OTHER, &http_config(&server.url, 60, 2, "Everybody"));
    let first = sb
        .cmd(&["apply", "--yes", "-q", "-c", CFG])
        .now(T0)
        .env("SVCACCT_TEST_TOKEN", OPERATOR)
        .spawn();
    let second = sb
        .cmd(&["apply", "--yes", "-q", "--lock-timeout", "60", "-c", OTHER])
        .now(T0)
        .env("SVCACCT_TEST_TOKEN", OPERATOR)
        .spawn();
    let (a, b) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    for o in [&a, &b] {
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success() || stderr.contains("locked"),
            "each apply either ran or failed on the lock: {stderr}"
        );
    }
    // Both ran one after the other (the second waited): the audit log is in two blocks, never
    // interleaved, and the second config's team description won.
    let description = query_text(&db, "SELECT description FROM teams WHERE name = 'crew'");
    assert!(["Everyone", "Everybody"].contains(&description[0].as_str()));
    let keys_per_account = query_text(
        &db,
        "SELECT CAST(count(*) AS TEXT) FROM api_keys WHERE revoked_at IS NULL AND retires_at IS NULL GROUP BY account",
    );
    assert_eq!(keys_per_account.len(), 60);
    assert!(
        keys_per_account.iter().all(|n| n == "2"),
        "one current key per name: {keys_per_account:?}"
    );
    // The second apply planned after the first had finished, so it issued nothing again
    // (each secret file matches its one live key).
    assert_eq!(
        assert_every_key_has_its_file(&db, &sb.join("org/secrets"), &identity),
        120
    );
    let out = run(&sb, &["plan", "--detailed-exitcode", "-c", OTHER], T0);
    assert!(matches!(out.code, Some(0) | Some(2)), "{out:?}");
    run(&sb, &["apply", "--yes", "-q", "-c", CFG], T0).ok();
    let out = run(&sb, &["plan", "--detailed-exitcode", "-c", CFG], T0);
    assert_eq!(out.code, Some(0), "{out:?}");
}

#[test]
fn a_server_stopped_mid_apply_finishes_its_requests_and_loses_no_key() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    let db = sb.join("server.db");
    let mut server = Server::start(&db, Some(T0));
    sb.write(CFG, &http_config(&server.url, 300, 2, "Everyone"));
    let apply = sb
        .cmd(&["apply", "--yes", "-q", "-c", CFG])
        .now(T0)
        .env("SVCACCT_TEST_TOKEN", OPERATOR)
        .spawn();
    std::thread::sleep(std::time::Duration::from_millis(rand::random_range(
        150..600,
    )));
    let status = server.terminate();
    assert!(status.success(), "SIGTERM is a clean shutdown: {status}");
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
    // Whatever the server committed before it stopped is whole: every key it knows has its
    // file (the organization file exists once the first request made it).
    assert_every_key_has_its_file(&db, &sb.join("org/secrets"), &identity);

    // A new server on the same address, as in a rolling deploy: the client's retries carry
    // the apply through, or it fails cleanly and the next apply finishes.
    let url = server.url.trim_start_matches("http://").to_string();
    drop(server);
    let _again = Server::start_with(&db, Some(T0), &url, &[]);
    let out = apply.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() || said.contains("failed"),
        "the apply either finished or failed cleanly: {said}"
    );
    run(&sb, &["apply", "--yes", "-q", "-c", CFG], T0).ok();
    assert_eq!(
        assert_every_key_has_its_file(&db, &sb.join("org/secrets"), &identity),
        600
    );
    run(&sb, &["plan", "--detailed-exitcode", "-c", CFG], T0).expect(0);
}

/// A loopback server that answers `GET …/snapshot` with a fixed body and anything else with a
/// 404, as a server that does not keep the API's promises would.
struct CannedSnapshot {
    url: String,
}

impl CannedSnapshot {
    fn serve(body: String) -> CannedSnapshot {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let line = String::from_utf8_lossy(&head)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let (status, body) = if line.starts_with("GET ") && line.contains("/snapshot ") {
                    ("200 OK", body.clone())
                } else {
                    (
                        "404 Not Found",
                        r#"{"error":{"code":"not_found","message":"not here"}}"#.to_string(),
                    )
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        CannedSnapshot { url }
    }
}

/// A live key is an issued key: a snapshot whose key has no issue facts (left out, or null)
/// is refused naming the field, with exit 1 and no panic, and nothing is planned from it.
#[test]
fn a_snapshot_key_without_issue_facts_is_refused_naming_it() {
    let sb = Sandbox::new();
    demo_files(&sb);
    let server = Server::start(&sb.join("server.db"), Some(T0));
    sb.write(CFG, &http_config(&server.url, 1, 1, "Everyone"));
    run(&sb, &["apply", "--yes", "-q", "-c", CFG], T0).ok();
    let snapshot: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{}/v1/organizations/acme/snapshot", server.url))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let key = "/service_accounts/acct-000/keys/key-0";
    assert!(
        snapshot.pointer(&format!("{key}/issued/id")).is_some(),
        "{snapshot}"
    );

    for (case, issued, says) in [
        (
            "left out",
            None,
            "service_accounts.acct-000.keys.key-0: missing field `issued`",
        ),
        (
            "null",
            Some(serde_json::Value::Null),
            "service_accounts.acct-000.keys.key-0.issued: invalid type: null",
        ),
    ] {
        let mut doctored = snapshot.clone();
        let facts = doctored.pointer_mut(key).unwrap().as_object_mut().unwrap();
        match &issued {
            None => facts.remove("issued"),
            Some(v) => facts.insert("issued".into(), v.clone()),
        };
        let canned = CannedSnapshot::serve(doctored.to_string());
        sb.write(CFG, &http_config(&canned.url, 1, 1, "Everyone"));
        for command in ["plan", "export"] {
            let out = run(&sb, &[command, "-c", CFG], T0);
            assert_eq!(out.code, Some(1), "{command}, issue facts {case}: {out:?}");
            assert!(
                out.stderr
                    .contains(&format!("the server's answer is not valid: {says}")),
                "{command}, issue facts {case}: {}",
                out.stderr
            );
            assert!(!out.all().contains("panicked"), "{out:?}");
        }
    }
}

/// An older svcacct keeps working against a newer server: fields it does not know, added to
/// every object of the snapshot, are ignored, so the plan is the same (no changes) and export
/// writes the same YAML. Request bodies stay strict: the server still refuses a batch with a
/// field it does not know.
#[test]
fn a_newer_server_adding_fields_to_its_answers_is_still_understood() {
    let sb = Sandbox::new();
    demo_files(&sb);
    let server = Server::start(&sb.join("server.db"), Some(T0));
    sb.write(CFG, &http_config(&server.url, 2, 2, "Everyone"));
    run(&sb, &["apply", "--yes", "-q", "-c", CFG], T0).ok();
    // A rotation leaves a retiring key, so every kind of object is in the snapshot.
    run(
        &sb,
        &["rotate", "key.acct-000.key-0", "--yes", "-q", "-c", CFG],
        T0,
    )
    .ok();
    let exported = run(&sb, &["export", "-c", CFG], T0).ok().stdout.clone();
    let snapshot: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{}/v1/organizations/acme/snapshot", server.url))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap()
        .json()
        .unwrap();

    let mut newer = snapshot.clone();
    let mut added = 0;
    let mut add = |v: &mut serde_json::Value| {
        v.as_object_mut().unwrap().insert(
            "added_by_a_newer_server".into(),
            serde_json::json!({"x": [1]}),
        );
        added += 1;
    };
    add(&mut newer);
    for (_, role) in newer["roles"].as_object_mut().unwrap() {
        add(role);
    }
    for (_, team) in newer["teams"].as_object_mut().unwrap() {
        add(team);
    }
    for (_, account) in newer["service_accounts"].as_object_mut().unwrap() {
        add(account);
        for (_, key) in account["keys"].as_object_mut().unwrap() {
            add(key);
            add(&mut key["issued"]);
        }
    }
    let retiring = newer["retiring_keys"].as_array_mut().unwrap();
    assert_eq!(retiring.len(), 1, "{snapshot}");
    for r in retiring {
        add(r);
    }
    // The organization, 3 built-in roles, 1 team, 2 accounts, 4 keys and their issue facts,
    // 1 retiring key.
    assert!(added >= 15, "{added}");

    let canned = CannedSnapshot::serve(newer.to_string());
    sb.write(CFG, &http_config(&canned.url, 2, 2, "Everyone"));
    let out = run(&sb, &["plan", "--detailed-exitcode", "-c", CFG], T0);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("No changes."), "{out:?}");
    let again = run(&sb, &["export", "-c", CFG], T0).ok().stdout.clone();
    assert_eq!(
        again.replace(&canned.url, "URL"),
        exported.replace(&server.url, "URL")
    );

    // A request body with a field the server does not know is refused (400), changing nothing.
    let refused = reqwest::blocking::Client::new()
        .post(format!("{}/v1/organizations/acme/batch", server.url))
        .bearer_auth(OPERATOR)
        .json(&serde_json::json!({
            "operations": [{"op": "put_team", "name": "new", "team": {"description": ""}}],
            "added_by_a_newer_client": true
        }))
        .send()
        .unwrap();
    let status = refused.status().as_u16();
    let body = refused.text().unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("unknown field `added_by_a_newer_client`"),
        "{body}"
    );
    let after: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{}/v1/organizations/acme/snapshot", server.url))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(after["revision"], snapshot["revision"]);
}

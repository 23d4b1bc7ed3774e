//! Revocation after rotation: removing a key (the answer to a leak) must leave none of its
//! secrets working, the rotated-out predecessor inside its overlap included; on `local`, over
//! `http`, through the server's own revoke route, and when an earlier apply stopped half way.

use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::common::*;

const CFG: &str = "org/svcacct.yaml";

/// One account `bot` with a key `main` that rotates every 30 days and keeps its predecessor
/// working for 30 more, and a key `spare`; `backend` goes after the organization line.
fn config(backend: &str, with_main: bool) -> String {
    let main = if with_main {
        "      main:\n        description: main key\n        rotate_every: 30d\n        overlap: 30d\n"
    } else {
        ""
    };
    format!(
        "organization: acme
{backend}secrets:
  recipients_file: ../examples/demo-recipients.txt
roles:
  reader:
    permissions: [flows:read]
teams:
  ops: {{}}
service_accounts:
  bot:
    teams: {{ops: reader}}
    keys:
{main}      spare:
        scopes: [flows:read]
"
    )
}

fn http_backend(server: &Server) -> String {
    format!(
        "backend:\n  type: http\n  url: {}\n  token_env: SVCACCT_TEST_TOKEN\n",
        server.url
    )
}

/// A sandbox whose `bot.main` was issued at T0 and rotated at day 31 with a 30-day overlap.
struct Rotated {
    sb: Sandbox,
    /// Secret and key id of the rotated-out key and of its successor.
    old: (String, String),
    new: (String, String),
}

fn run(sb: &Sandbox, args: &[&str], now: &str) -> Out {
    sb.cmd(args)
        .now(now)
        .env("SVCACCT_TEST_TOKEN", OPERATOR)
        .run()
}

fn key_of(file: &std::path::Path, identity: &std::path::Path) -> (String, String) {
    let v = crate_decrypt(file, &read_identity(identity)).unwrap();
    (
        v["secret"].as_str().unwrap().to_string(),
        v["key_id"].as_str().unwrap().to_string(),
    )
}

fn rotated(backend: &str) -> Rotated {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    sb.write(CFG, &config(backend, true));
    run(&sb, &["apply", "--yes", "-c", CFG], T0).ok();
    let file = sb.join("org/secrets/bot/main.age");
    // A copy of the first key file, as whoever holds the leaked secret would have it.
    let old_copy = sb.join("main-before-rotation.age");
    std::fs::copy(&file, &old_copy).unwrap();
    run(&sb, &["apply", "--yes", "-c", CFG], &at(31, 0)).ok();
    let old = key_of(&old_copy, &identity);
    let new = key_of(&file, &identity);
    assert_ne!(old.1, new.1, "the key rotated");
    Rotated { sb, old, new }
}

fn verify(sb: &Sandbox, secret: &str, now: &str) -> Value {
    let out = sb
        .cmd(&["verify", "-c", CFG])
        .now(now)
        .env("SVCACCT_TEST_TOKEN", OPERATOR)
        .stdin(format!("{secret}\n"))
        .run();
    assert!(matches!(out.code, Some(0 | 1)), "{out:?}");
    out.json()
}

fn plan_json(sb: &Sandbox, now: &str) -> Value {
    let out = run(sb, &["plan", "--format", "json", "-c", CFG], now);
    out.ok();
    out.json()
}

fn no_changes(sb: &Sandbox, now: &str) {
    run(sb, &["plan", "--detailed-exitcode", "-c", CFG], now).expect(0);
}

/// No secret, hash or display prefix in an output.
#[track_caller]
fn assert_no_material(text: &str, secrets: &[&str]) {
    assert!(!text.contains("svca_"), "a secret or prefix in:\n{text}");
    for s in secrets {
        assert!(!text.contains(s), "a secret in:\n{text}");
        assert!(!text.contains(&sha256_hex(s)), "a hash in:\n{text}");
    }
}

/// Removes `main` from the config of a rotated sandbox and checks the plan, the apply and
/// that neither secret verifies afterwards.
fn removing_main_revokes_both_secrets(r: &Rotated, backend: &str) {
    let now = at(32, 0);
    // The old key works inside its overlap: the situation a leak meets.
    assert_eq!(verify(&r.sb, &r.old.0, &now)["valid"], true);
    assert_eq!(verify(&r.sb, &r.new.0, &now)["valid"], true);

    r.sb.write(CFG, &config(backend, false));
    let plan = plan_json(&r.sb, &now);
    let changes = plan["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{plan:#}");
    assert_eq!(changes[0]["address"], "key.bot.main");
    assert_eq!(changes[0]["action"], "delete");
    assert_eq!(changes[0]["revokes"], json!([r.new.1, r.old.1]));
    assert_eq!(
        changes[0]["reason"],
        format!("revokes 2 secrets: key ids {}, {}", r.new.1, r.old.1)
    );
    let secrets = [r.old.0.as_str(), r.new.0.as_str()];
    assert_no_material(&plan.to_string(), &secrets);
    for format in ["text", "markdown"] {
        let out = run(&r.sb, &["plan", "--format", format, "-c", CFG], &now);
        out.ok();
        // Markdown escapes the `_` in key ids.
        let id = |id: &str| match format {
            "markdown" => id.replace('_', "\\_"),
            _ => id.to_string(),
        };
        assert!(
            out.stdout.contains("revokes 2 secrets")
                && out.stdout.contains(&id(&r.old.1))
                && out.stdout.contains(&id(&r.new.1)),
            "{format}:\n{}",
            out.stdout
        );
        assert_no_material(&out.all(), &secrets);
    }

    let out = run(&r.sb, &["apply", "--yes", "-c", CFG], &now);
    out.ok();
    assert_no_material(&out.all(), &secrets);
    for (secret, _) in [&r.old, &r.new] {
        let v = verify(&r.sb, secret, &now);
        assert_eq!(v["valid"], false, "{v}");
        assert_eq!(v["reason"], "revoked", "{v}");
    }
    no_changes(&r.sb, &now);
}

#[test]
fn removing_a_rotated_key_revokes_its_predecessor_too_on_local() {
    let r = rotated("");
    removing_main_revokes_both_secrets(&r, "");
    let rows = key_rows(&r.sb.join("org/.svcacct/acme.db"));
    let main: Vec<_> = rows.iter().filter(|k| k.name == "main").collect();
    assert_eq!(main.len(), 2);
    assert!(main.iter().all(|k| k.revoked_at.is_some()), "{main:?}");
}

#[test]
fn removing_a_rotated_key_revokes_its_predecessor_too_over_http() {
    let sb_db = tempfile::tempdir().unwrap();
    let db = sb_db.path().join("server.db");
    let server = Server::start(&db, Some(&at(32, 0)));
    let backend = http_backend(&server);
    let r = rotated(&backend);
    removing_main_revokes_both_secrets(&r, &backend);
    let main: Vec<_> = key_rows(&db)
        .into_iter()
        .filter(|k| k.name == "main")
        .collect();
    assert_eq!(main.len(), 2);
    assert!(main.iter().all(|k| k.revoked_at.is_some()), "{main:?}");
}

#[test]
fn a_predecessor_left_by_an_apply_cut_short_is_revoked_by_the_next() {
    let r = rotated("");
    let db = r.sb.join("org/.svcacct/acme.db");
    let now = at(32, 0);
    // An apply that revoked the current key and stopped before its predecessor.
    r.sb.write(CFG, &config("", false));
    open_db_rw(&db)
        .execute(
            "UPDATE api_keys SET revoked_at = 1 WHERE id = ?1",
            [r.new.1.as_str()],
        )
        .unwrap();
    assert_eq!(verify(&r.sb, &r.old.0, &now)["valid"], true);

    let plan = plan_json(&r.sb, &now);
    let changes = plan["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{plan:#}");
    assert_eq!(changes[0]["address"], "key.bot.main");
    assert_eq!(changes[0]["action"], "delete");
    assert_eq!(changes[0]["revokes"], json!([r.old.1]));
    assert_eq!(
        changes[0]["reason"],
        format!("revokes 1 secret: key id {}", r.old.1)
    );
    run(&r.sb, &["apply", "--yes", "-c", CFG], &now).ok();
    let v = verify(&r.sb, &r.old.0, &now);
    assert_eq!(
        (&v["valid"], &v["reason"]),
        (&json!(false), &json!("revoked"))
    );
    no_changes(&r.sb, &now);
}

#[test]
fn a_rotated_key_that_stays_keeps_its_predecessor_for_the_overlap() {
    // The counterpart: nothing is revoked early while the key is still in the config.
    let r = rotated("");
    no_changes(&r.sb, &at(60, 0));
    assert_eq!(verify(&r.sb, &r.old.0, &at(60, 0))["valid"], true);
    // Once it ends, the predecessor is retired (and the key, due again, rotates).
    let plan = plan_json(&r.sb, &at(61, 0));
    let retire = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["action"] == "retire")
        .unwrap_or_else(|| panic!("{plan:#}"));
    assert_eq!(retire["revokes"], json!([r.old.1]));
}

#[test]
fn deleting_an_account_revokes_its_rotated_out_keys_too() {
    let r = rotated("");
    let now = at(32, 0);
    r.sb.write(
        CFG,
        &config("", true).replace(
            "service_accounts:\n  bot:\n    teams: {ops: reader}\n    keys:\n      main:\n        description: main key\n        rotate_every: 30d\n        overlap: 30d\n      spare:\n        scopes: [flows:read]\n",
            "service_accounts: {}\n",
        ),
    );
    let plan = plan_json(&r.sb, &now);
    let change = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "service_account.bot")
        .unwrap_or_else(|| panic!("{plan:#}"))
        .clone();
    assert_eq!(
        change["reason"],
        "revokes its 2 keys and 1 rotated-out secret still inside its overlap"
    );
    let revokes = change["revokes"].as_array().unwrap();
    assert_eq!(revokes.len(), 3, "{change}");
    assert!(revokes.contains(&json!(r.old.1)) && revokes.contains(&json!(r.new.1)));
    run(&r.sb, &["apply", "--yes", "-c", CFG], &now).ok();
    for (secret, _) in [&r.old, &r.new] {
        assert_eq!(verify(&r.sb, secret, &now)["valid"], false);
    }
    no_changes(&r.sb, &now);
}

#[test]
fn the_revoke_route_revokes_every_live_secret_of_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server.db"), Some(T0));
    let client = Client::new();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut r = client
            .request(method, format!("{}/v1{path}", server.url))
            .bearer_auth(OPERATOR);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    };
    use reqwest::Method;
    const ORG: &str = "/organizations/acme";
    assert_eq!(
        call(
            Method::POST,
            "/organizations",
            Some(json!({"name": "acme"}))
        )
        .0,
        201
    );
    let (s, _) = call(
        Method::POST,
        &format!("{ORG}/service_accounts"),
        Some(json!({"name": "ci-bot", "admin": true})),
    );
    assert_eq!(s, 201);
    let (s, first) = call(
        Method::POST,
        &format!("{ORG}/service_accounts/ci-bot/keys"),
        Some(json!({"name": "prod", "overlap": "30d"})),
    );
    assert_eq!(s, 201, "{first}");
    let (s, second) = call(
        Method::POST,
        &format!("{ORG}/service_accounts/ci-bot/keys/prod/rotate"),
        None,
    );
    assert_eq!(s, 201, "{second}");
    let verify =
        |secret: &Value| call(Method::POST, "/keys/verify", Some(json!({ "key": secret }))).1;
    assert_eq!(verify(&first["secret"])["valid"], true);
    assert_eq!(verify(&second["secret"])["valid"], true);

    let (s, body) = call(
        Method::DELETE,
        &format!("{ORG}/service_accounts/ci-bot/keys/prod"),
        None,
    );
    assert_eq!(s, 204, "{body}");
    for key in [&first, &second] {
        assert_eq!(
            verify(&key["secret"]),
            json!({"valid": false, "reason": "revoked"})
        );
    }
    let (s, keys) = call(
        Method::GET,
        &format!("{ORG}/service_accounts/ci-bot/keys"),
        None,
    );
    assert_eq!((s, keys), (200, json!({"keys": []})));
    // Nothing left to revoke: a JSON 404.
    let (s, body) = call(
        Method::DELETE,
        &format!("{ORG}/service_accounts/ci-bot/keys/prod"),
        None,
    );
    assert_eq!(
        (s, &body["error"]["code"]),
        (404, &json!("not_found")),
        "{body}"
    );
}

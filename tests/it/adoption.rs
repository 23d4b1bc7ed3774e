//! Adopting an organization made by hand: its keys keep working. A key whose secret svcacct
//! never held is listed as such and left alone; `svcacct rotate` brings it under svcacct with
//! its overlap; a key whose file svcacct lost (or that holds an older key) is replaced with
//! the configured overlap, never revoked at once. On `local` and on `http`, the organization
//! made through a real `svcacct serve` with the API, as a user would.

use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::common::*;

const BASE: &str = "org/base.yaml";
const CFG: &str = "org/svcacct.yaml";
const DB: &str = "server.db";
const KEY: &str = "key.integration.main";

#[derive(Clone, Copy, Debug)]
enum Kind {
    Local,
    Http,
}

/// An organization `acme` made through the API: an account with a key (overlap 1d) that an
/// integration uses. Returns the key's secret and the server (kept running for `http`).
fn hand_made(sb: &Sandbox, kind: Kind) -> (String, Option<Server>) {
    demo_files(sb);
    let server = Server::start(&sb.join(DB), Some(T0));
    let client = Client::new();
    let post = |path: &str, body: Value| -> Value {
        let r = client
            .post(format!("{}{path}", server.url))
            .bearer_auth(OPERATOR)
            .json(&body)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().unwrap()
    };
    post("/v1/organizations", json!({"name": "acme"}));
    post(
        "/v1/organizations/acme/service_accounts",
        json!({"name": "integration", "description": "made by hand", "admin": true}),
    );
    let key = post(
        "/v1/organizations/acme/service_accounts/integration/keys",
        json!({"name": "main", "overlap": "1d"}),
    );
    let secret = key["secret"].as_str().unwrap().to_string();
    let backend = match kind {
        Kind::Local => "backend:\n  type: local\n  path: ../server.db\n".to_string(),
        Kind::Http => format!(
            "backend:\n  type: http\n  url: {}\n  token_env: SVCACCT_TEST_TOKEN\n",
            server.url
        ),
    };
    sb.write(
        BASE,
        &format!(
            "organization: acme\n{backend}secrets:\n  recipients_file: ../examples/demo-recipients.txt\n"
        ),
    );
    let server = match kind {
        Kind::Local => {
            server.stop();
            None
        }
        Kind::Http => Some(server),
    };
    (secret, server)
}

fn run(sb: &Sandbox, args: &[&str], now: &str) -> Out {
    sb.cmd(args)
        .now(now)
        .env("SVCACCT_TEST_TOKEN", OPERATOR)
        .run()
}

fn verify(sb: &Sandbox, secret: &str, now: &str) -> Value {
    let out = sb
        .cmd(&["verify", "-c", CFG])
        .now(now)
        .env("SVCACCT_TEST_TOKEN", OPERATOR)
        .stdin(format!("{secret}\n"))
        .run();
    out.json()
}

/// Export, then apply the export (marks everything managed), then make `secrets/`.
fn adopt(sb: &Sandbox) {
    run(sb, &["export", "-c", BASE, "-o", CFG], T0).ok();
    run(sb, &["apply", "--yes", "-c", CFG], T0).ok();
    std::fs::create_dir_all(sb.join("org/secrets")).unwrap();
}

fn plan_json(sb: &Sandbox, now: &str) -> Value {
    let out = run(sb, &["plan", "--format", "json", "-c", CFG], now);
    out.ok();
    out.json()
}

fn changes(plan: &Value) -> Vec<(String, String, String)> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["address"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn adopted_keys_keep_working(kind: Kind) {
    let sb = Sandbox::new();
    let (secret, _server) = hand_made(&sb, kind);
    adopt(&sb);

    // Clean right after adoption, the key listed as not held, and it still works.
    run(&sb, &["plan", "--detailed-exitcode", "-c", CFG], T0).expect(0);
    let text = run(&sb, &["plan", "-c", CFG], T0);
    assert_eq!(
        text.ok().stdout,
        "Plan for organization acme at revision 5\n\
         \n\
         No changes. The organization matches the config.\n\
         \n\
         Secret not held by svcacct (made outside it, left working; `svcacct rotate ADDRESS` brings one under svcacct):\n    \
         key.integration.main\n",
        "{kind:?}"
    );
    let plan = plan_json(&sb, T0);
    assert_eq!(plan["secrets_not_held"], json!([KEY]));
    let md = run(&sb, &["plan", "--format", "markdown", "-c", CFG], T0);
    assert!(
        md.ok()
            .stdout
            .contains("1 key whose secret is not held by svcacct"),
        "{}",
        md.stdout
    );
    run(&sb, &["apply", "--yes", "-c", CFG], T0).ok();
    assert_eq!(verify(&sb, &secret, T0)["valid"], true, "{kind:?}");

    // `svcacct rotate` brings it under svcacct; the old key works through its overlap.
    let out = run(&sb, &["rotate", KEY, "--yes", "-c", CFG], T0);
    out.ok();
    assert!(
        out.stdout.contains("1 key file written under"),
        "{}",
        out.stdout
    );
    assert_every_key_has_its_file(
        &sb.join(DB),
        &sb.join("org/secrets"),
        &sb.join("examples/demo-identity.txt"),
    );
    assert_eq!(verify(&sb, &secret, &at(0, 23))["valid"], true);
    let plan = plan_json(&sb, T0);
    assert_eq!(plan["secrets_not_held"], json!([]));
    assert!(changes(&plan).is_empty(), "{plan:#}");
    let held = secret_of(
        &sb.join("org/secrets/integration/main.age"),
        &sb.join("examples/demo-identity.txt"),
    );
    assert_eq!(verify(&sb, &held, T0)["valid"], true);

    // A file svcacct held and lost is replaced with the overlap, not revoked at once.
    std::fs::remove_file(sb.join("org/secrets/integration/main.age")).unwrap();
    let plan = plan_json(&sb, T0);
    assert_eq!(
        changes(&plan),
        [(
            KEY.to_string(),
            "replace".to_string(),
            "its secret file is missing; the old key keeps working for 1d".to_string()
        )]
    );
    run(&sb, &["apply", "--yes", "-c", CFG], T0).ok();
    assert_eq!(
        verify(&sb, &held, T0)["valid"],
        true,
        "the lost key keeps working for its overlap"
    );
    assert_every_key_has_its_file(
        &sb.join(DB),
        &sb.join("org/secrets"),
        &sb.join("examples/demo-identity.txt"),
    );
}

#[test]
fn adopted_keys_keep_working_on_local() {
    adopted_keys_keep_working(Kind::Local);
}

#[test]
fn adopted_keys_keep_working_on_http() {
    adopted_keys_keep_working(Kind::Http);
}

#[test]
fn rotate_refuses_what_is_not_a_live_key_of_the_config_and_changes_nothing() {
    let sb = Sandbox::new();
    let (_secret, _) = hand_made(&sb, Kind::Local);
    adopt(&sb);
    let before = files_under(sb.root());
    for (address, message) in [
        (
            "service_account.integration",
            "service_account.integration is not a key",
        ),
        (
            "key.integration.other",
            "key.integration.other is not in the config",
        ),
        ("nonsense", "nonsense"),
    ] {
        let out = run(&sb, &["rotate", address, "--yes", "-c", CFG], T0);
        out.expect(1);
        assert!(out.stderr.contains(message), "{address}: {}", out.stderr);
    }
    assert!(files_under(sb.root()) == before, "nothing changed");
}

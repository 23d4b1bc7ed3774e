//! A plan that destroys a key says when the key was last used: keys verified by a real
//! `svcacct serve` (its uses written in batches), then removed from the config, show
//! `last used 3 minutes ago` in text, markdown and JSON, a key never verified shows
//! `never used`, and the pull-request comment opens with the keys used in the last 24 hours.

use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::common::*;

const CFG: &str = "org/svcacct.yaml";
const KEY_BLOCK: &str = "    keys:\n      key-0:\n        rotate_every: 30d\n        overlap: 1d\n";

/// Presents `secret` to the server's verify endpoint, asserting it is good.
fn verify(server: &Server, secret: &str) {
    let v: Value = Client::new()
        .post(format!("{}/v1/keys/verify", server.url))
        .bearer_auth(secret)
        .json(&json!({ "key": secret }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["valid"], true, "{v:#}");
}

/// Waits (by polling, with a generous deadline) until the server has written the use of
/// `account`'s key.
fn wait_for_use(server: &Server, account: &str) {
    let url = format!(
        "{}/v1/organizations/acme/service_accounts/{account}/keys/key-0",
        server.url
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v: Value = Client::new()
            .get(&url)
            .bearer_auth(OPERATOR)
            .send()
            .unwrap()
            .json()
            .unwrap();
        if !v["last_used_at"].is_null() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the use was never written: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The change of `address` in a JSON plan.
fn change<'a>(plan: &'a Value, address: &str) -> &'a Value {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == address)
        .unwrap_or_else(|| panic!("no change of {address} in {plan:#}"))
}

/// The line of `address`'s change in a text plan and the lines under it.
fn text_block(text: &str, address: &str) -> String {
    let mut lines = text.lines().skip_while(|l| !l.contains(address));
    let mut block = vec![
        lines
            .next()
            .unwrap_or_else(|| panic!("{address} in:\n{text}")),
    ];
    block.extend(lines.take_while(|l| l.starts_with("      ")));
    block.join("\n")
}

#[test]
fn a_plan_that_revokes_keys_says_when_each_was_last_used_and_the_comment_warns_of_recent_use() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server.db"), Some(T0));
    let backend = format!(
        "backend:\n  type: http\n  url: {}\n  token_env: SVCACCT_TEST_TOKEN\n",
        server.url
    );
    let yaml = many_accounts_yaml("acme", 2, 1, &backend);
    sb.write(CFG, &yaml);
    sb.cmd(&["apply", "--yes", "-c", CFG])
        .env("SVCACCT_TEST_TOKEN", OPERATOR)
        .now(T0)
        .run()
        .ok();
    let used = secret_of(&sb.join("org/secrets/acct-000/key-0.age"), &identity);
    verify(&server, &used);
    wait_for_use(&server, "acct-000");

    // Both keys removed from the config: the plan revokes them.
    sb.write(CFG, &yaml.replace(KEY_BLOCK, ""));
    let three_minutes_later = "2026-01-01T00:03:00Z";
    let plan = |format: &str, now: &str| {
        let out = sb
            .cmd(&["plan", "--format", format, "-c", CFG])
            .env("SVCACCT_TEST_TOKEN", OPERATOR)
            .now(now)
            .run();
        out.ok();
        out.stdout.clone()
    };
    // A snapshot the server kept from before the use is served for a few seconds more.
    let deadline = Instant::now() + Duration::from_secs(60);
    let json: Value = loop {
        let json: Value = serde_json::from_str(&plan("json", three_minutes_later)).unwrap();
        if !change(&json, "key.acct-000.key-0")["last_used_at"].is_null() {
            break json;
        }
        assert!(Instant::now() < deadline, "the plan never saw the use");
        std::thread::sleep(Duration::from_millis(500));
    };
    let revoked = change(&json, "key.acct-000.key-0");
    assert_eq!(revoked["action"], "delete");
    assert_eq!(revoked["last_used_at"], T0, "{revoked:#}");
    let never = change(&json, "key.acct-001.key-0");
    assert!(
        never.as_object().unwrap().contains_key("last_used_at") && never["last_used_at"].is_null(),
        "a key with no use on a backend that records uses: null, {never:#}"
    );

    let text = plan("text", three_minutes_later);
    let block = text_block(&text, "key.acct-000.key-0");
    assert!(block.contains("last used 3 minutes ago"), "{block}");
    let block = text_block(&text, "key.acct-001.key-0");
    assert!(block.contains("never used"), "{block}");

    let md = plan("markdown", three_minutes_later);
    let attention = md
        .split("#### ⚠️ Destructive changes and widened access")
        .nth(1)
        .and_then(|s| s.split("#### Changes by object").next())
        .unwrap_or_else(|| panic!("no attention section in:\n{md}"));
    let first = attention.trim_start().lines().next().unwrap();
    assert_eq!(
        first, "- ⚠️ `key.acct-000.key-0` was used 3 minutes ago and this plan revokes it",
        "the recently used key opens the section:\n{md}"
    );
    assert!(
        !attention.contains("`key.acct-001.key-0` was used"),
        "a never-used key is no warning:\n{md}"
    );
    assert!(md.contains("last used 3 minutes ago"), "{md}");
    assert!(md.contains("never used"), "{md}");

    // Two days on, the use is shown but no longer called out.
    let md = plan("markdown", "2026-01-03T00:00:00Z");
    assert!(md.contains("last used 2 days ago"), "{md}");
    assert!(!md.contains("was used"), "{md}");
    for out in [&text, &md, &json.to_string()] {
        assert!(!out.contains(&used), "a secret in a plan");
    }
}

#[test]
fn a_local_plan_shows_the_uses_the_organization_file_holds_for_an_account_it_deletes() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    let yaml = many_accounts_yaml("acme", 2, 1, "");
    sb.write(CFG, &yaml);
    sb.apply(CFG, T0);
    let db = sb.join("org/.svcacct/acme.db");
    assert!(db.exists(), "the local organization file");

    // A server on the same file records the use; a graceful stop writes it.
    // The local backend's own file: SQLite on either engine's run.
    let mut server = Server::start_on(db.to_str().unwrap(), Some(T0), "127.0.0.1:0", &[]);
    verify(
        &server,
        &secret_of(&sb.join("org/secrets/acct-000/key-0.age"), &identity),
    );
    assert!(server.terminate().success());

    // acct-000 removed: its deletion revokes its key.
    let account_block = format!(
        "  acct-000:\n    description: account 0\n    teams: {{crew: viewer}}\n{KEY_BLOCK}"
    );
    assert!(yaml.contains(&account_block));
    sb.write(CFG, &yaml.replace(&account_block, ""));
    let five_minutes_later = "2026-01-01T00:05:00Z";
    let json = sb.plan_json(CFG, five_minutes_later);
    assert_eq!(
        change(&json, "service_account.acct-000")["last_used_at"],
        T0
    );
    let out = sb.cmd(&["plan", "-c", CFG]).now(five_minutes_later).run();
    out.ok();
    let block = text_block(&out.stdout, "service_account.acct-000");
    assert!(
        block.contains("key.acct-000.key-0: last used 5 minutes ago"),
        "{block}"
    );
    let out = sb
        .cmd(&["plan", "--format", "markdown", "-c", CFG])
        .now(five_minutes_later)
        .run();
    out.ok();
    assert!(
        out.stdout.contains(
            "- ⚠️ `key.acct-000.key-0` was used 5 minutes ago and this plan revokes it, deleting `service_account.acct-000`"
        ),
        "{}",
        out.stdout
    );
}

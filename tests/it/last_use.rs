//! When each key was last used: a server notes every successful verification and writes the
//! notes in batches (at most a second behind), with no revision and no audit entry, and a
//! graceful stop writes what it still holds.

use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::common::*;

const CFG: &str = "org/svcacct.yaml";

fn get(client: &Client, url: &str) -> Value {
    client
        .get(url)
        .bearer_auth(OPERATOR)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn a_verified_key_shows_when_it_was_last_used_and_nothing_else_changes() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let mut server = Server::start(&db, None);
    let backend = format!(
        "backend:\n  type: http\n  url: {}\n  token_env: SVCACCT_TEST_TOKEN\n",
        server.url
    );
    sb.write(CFG, &many_accounts_yaml("acme", 2, 1, &backend));
    sb.cmd(&["apply", "--yes", "-c", CFG])
        .env("SVCACCT_TEST_TOKEN", OPERATOR)
        .run()
        .ok();
    let secret = |account: &str| {
        secret_of(
            &sb.join(&format!("org/secrets/{account}/key-0.age")),
            &identity,
        )
    };
    let client = Client::new();
    let key_url = |account: &str| {
        format!(
            "{}/v1/organizations/acme/service_accounts/{account}/keys/key-0",
            server.url
        )
    };
    assert_eq!(
        get(&client, &key_url("acct-000"))["last_used_at"],
        Value::Null
    );
    let org = get(&client, &format!("{}/v1/organizations/acme", server.url));
    let audit = get(
        &client,
        &format!("{}/v1/organizations/acme/audit", server.url),
    );

    let before = OffsetDateTime::now_utc().unix_timestamp();
    let used = secret("acct-000");
    for _ in 0..50 {
        let v: Value = client
            .post(format!("{}/v1/keys/verify", server.url))
            .bearer_auth(&used)
            .json(&json!({ "key": used }))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(v["valid"], true, "{v:#}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let seen = loop {
        let v = get(&client, &key_url("acct-000"))["last_used_at"].clone();
        if !v.is_null() {
            break v;
        }
        assert!(Instant::now() < deadline, "the use was never recorded");
        std::thread::sleep(Duration::from_millis(100));
    };
    let seen = OffsetDateTime::parse(
        seen.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp();
    assert!(
        (before..=OffsetDateTime::now_utc().unix_timestamp()).contains(&seen),
        "{seen} is not the time of use"
    );
    assert_eq!(
        get(&client, &key_url("acct-001"))["last_used_at"],
        Value::Null,
        "only the key used"
    );
    // Not a change to the organization: same revision, same audit log.
    assert_eq!(
        get(&client, &format!("{}/v1/organizations/acme", server.url)),
        org
    );
    assert_eq!(
        get(
            &client,
            &format!("{}/v1/organizations/acme/audit", server.url)
        ),
        audit
    );

    // A use just before a graceful stop is written by the stop.
    let other = secret("acct-001");
    client
        .post(format!("{}/v1/keys/verify", server.url))
        .bearer_auth(&other)
        .json(&json!({ "key": other }))
        .send()
        .unwrap();
    assert!(server.terminate().success());
    let recorded: Option<i64> = open_db(&db)
        .query_row(
            "SELECT last_used_at FROM api_keys WHERE account = 'acct-001'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(recorded.is_some_and(|t| t >= before), "{recorded:?}");
}

//! Running a server: when each key was last used (every successful verification is noted and
//! written in batches, at most a second behind, with no revision and no audit entry, and a
//! graceful stop writes what it still holds), and `/metrics` in Prometheus's text format.

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

#[test]
fn metrics_count_requests_by_route_verifications_by_result_and_snapshot_cache_hits() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server.db"), None);
    let client = Client::new();
    let url = |path: &str| format!("{}{path}", server.url);
    client
        .post(url("/v1/organizations"))
        .bearer_auth(OPERATOR)
        .json(&json!({"name": "acme"}))
        .send()
        .unwrap();
    for _ in 0..3 {
        client.get(url("/v1/health")).send().unwrap();
    }
    for _ in 0..2 {
        client
            .get(url("/v1/organizations/acme/snapshot"))
            .bearer_auth(OPERATOR)
            .send()
            .unwrap();
    }
    client
        .get(url("/v1/organizations/no-such-org"))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap();
    // A well-formed key nobody registered: refused as unknown.
    let stranger = svcacct::secrets::mint();
    client
        .post(url("/v1/keys/verify"))
        .bearer_auth(OPERATOR)
        .json(&json!({ "key": stranger.secret.as_str() }))
        .send()
        .unwrap();
    let lease = json!({"owner": "first", "ttl_seconds": 60});
    for _ in 0..2 {
        client
            .post(url("/v1/organizations/acme/lock"))
            .bearer_auth(OPERATOR)
            .json(&lease)
            .send()
            .unwrap();
    }

    let resp = client.get(url("/metrics")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
    );
    let text = resp.text().unwrap();
    for line in [
        r#"svcacct_http_requests_total{method="GET",route="/v1/health",status="200"} 3"#,
        r#"svcacct_http_requests_total{method="GET",route="/v1/organizations/{org}",status="404"} 1"#,
        r#"svcacct_http_requests_total{method="POST",route="/v1/organizations/{org}/lock",status="409"} 1"#,
        r#"svcacct_key_verifications_total{result="unknown"} 1"#,
        r#"svcacct_lease_conflicts_total 1"#,
        r#"svcacct_snapshot_cache_total{result="miss"} 1"#,
        r#"svcacct_snapshot_cache_total{result="hit"} 1"#,
        r#"svcacct_http_request_duration_seconds_count{method="GET",route="/v1/health"} 3"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    assert!(
        !text.contains("no-such-org"),
        "names never reach the metrics"
    );
    assert!(!text.contains(stranger.secret.as_str()));
}

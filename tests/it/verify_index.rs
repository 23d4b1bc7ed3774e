//! Verification from the server's memory: answered without rebuilding while nothing changes,
//! and never stale past a change: every kind of write through the server is seen by the very
//! next verification, a `local` apply on the server's own file within the stated bound
//! (100 ms), and an expiry with no write at all.

use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::common::*;

const ORG: &str = "/v1/organizations/acme";

/// The operator's client of one server.
struct Op {
    client: Client,
    url: String,
}

impl Op {
    fn new(server: &Server) -> Op {
        Op {
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            url: server.url.clone(),
        }
    }

    #[track_caller]
    fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>, want: u16) -> Value {
        let mut r = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(OPERATOR);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        assert_eq!(status, want, "{path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    #[track_caller]
    fn post(&self, path: &str, body: Value) -> Value {
        let want = if path.ends_with("/batch") || path.ends_with("/disable") {
            200
        } else {
            201
        };
        self.send(reqwest::Method::POST, path, Some(body), want)
    }

    #[track_caller]
    fn put(&self, path: &str, body: Value) -> Value {
        self.send(reqwest::Method::PUT, path, Some(body), 200)
    }

    #[track_caller]
    fn verify(&self, key: &str) -> Value {
        self.send(
            reqwest::Method::POST,
            "/v1/keys/verify",
            Some(json!({ "key": key })),
            200,
        )
    }

    /// Issues a server-minted key; its secret.
    #[track_caller]
    fn issue(&self, account: &str, name: &str, extra: Value) -> String {
        let mut body = json!({ "name": name });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let r = self.post(&format!("{ORG}/service_accounts/{account}/keys"), body);
        r["secret"].as_str().unwrap().to_string()
    }

    /// How many times the server built its verify index.
    fn builds(&self) -> u64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.url))
            .send()
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("svcacct_verify_index_builds_total "))
            .unwrap_or_else(|| panic!("no index build count in:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    }
}

#[track_caller]
fn refused(v: &Value, reason: &str) {
    assert_eq!(v["valid"], false, "{v:#}");
    assert_eq!(v["reason"], reason, "{v:#}");
}

fn permissions(v: &Value) -> Vec<&str> {
    assert_eq!(v["valid"], true, "{v:#}");
    v["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect()
}

#[test]
fn every_write_is_refused_or_narrowed_on_the_very_next_verification() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("o.db"), None);
    let op = Op::new(&server);
    op.post("/v1/organizations", json!({"name": "acme"}));
    for team in ["platform", "audit"] {
        op.post(&format!("{ORG}/teams"), json!({ "name": team }));
    }
    op.post(
        &format!("{ORG}/roles"),
        json!({"name": "deployer", "permissions": ["deployments:read", "deployments:execute"]}),
    );
    op.post(
        &format!("{ORG}/roles"),
        json!({"name": "auditor", "permissions": ["audit:read"]}),
    );
    for account in ["ci-bot", "leaver", "doomed"] {
        op.post(
            &format!("{ORG}/service_accounts"),
            json!({"name": account, "teams": {"platform": "deployer", "audit": "auditor"}}),
        );
    }
    let ci = op.issue("ci-bot", "main", json!({}));
    let leaked = op.issue("ci-bot", "leaked", json!({}));
    let batch_revoked = op.issue("ci-bot", "batch", json!({}));
    let rotated = op.issue("ci-bot", "rotated", json!({}));
    let leaver = op.issue("leaver", "main", json!({}));
    let doomed = op.issue("doomed", "main", json!({}));
    assert_eq!(
        permissions(&op.verify(&ci)),
        ["audit:read", "deployments:execute", "deployments:read"]
    );

    // Nothing written: answered from memory, without building the index again.
    let builds = op.builds();
    for key in [&ci, &leaked, &leaver, &doomed].repeat(5) {
        assert_eq!(op.verify(key)["valid"], true);
    }
    assert_eq!(op.builds(), builds, "verifications rebuilt the index");

    // A key issued after the index was built verifies at once.
    let fresh = op.issue("ci-bot", "fresh", json!({}));
    assert_eq!(op.verify(&fresh)["key"], "fresh");

    // Revocation through the key route.
    op.send(
        reqwest::Method::DELETE,
        &format!("{ORG}/service_accounts/ci-bot/keys/leaked"),
        None,
        204,
    );
    refused(&op.verify(&leaked), "revoked");

    // Revocation in an apply's batch.
    let id = op.verify(&batch_revoked)["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = op.post(
        &format!("{ORG}/batch"),
        json!({"operations": [{"op": "revoke_key", "account": "ci-bot", "name": "batch", "id": id}]}),
    );
    assert_eq!(r["results"][0]["ok"], true, "{r:#}");
    refused(&op.verify(&batch_revoked), "revoked");

    // Rotation without an overlap: the old secret stops, the new one works.
    let r = op.post(
        &format!("{ORG}/service_accounts/ci-bot/keys/rotated/rotate"),
        json!({"overlap": "0s"}),
    );
    refused(&op.verify(&rotated), "revoked");
    assert_eq!(op.verify(r["secret"].as_str().unwrap())["valid"], true);

    // A role's permissions narrowed.
    op.put(
        &format!("{ORG}/roles/deployer"),
        json!({"permissions": ["deployments:read"]}),
    );
    assert_eq!(
        permissions(&op.verify(&ci)),
        ["audit:read", "deployments:read"]
    );

    // An account taken off a team.
    op.put(
        &format!("{ORG}/service_accounts/leaver/memberships"),
        json!({"platform": "deployer"}),
    );
    assert_eq!(permissions(&op.verify(&leaver)), ["deployments:read"]);

    // A disabled account.
    op.post(&format!("{ORG}/service_accounts/leaver/disable"), json!({}));
    refused(&op.verify(&leaver), "account_disabled");

    // A deleted account.
    op.send(
        reqwest::Method::DELETE,
        &format!("{ORG}/service_accounts/doomed"),
        None,
        204,
    );
    refused(&op.verify(&doomed), "revoked");

    // A refused key is refused as a caller's credentials too.
    let resp = op
        .client
        .get(format!("{}/v1/whoami", op.url))
        .bearer_auth(&leaked)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[test]
fn an_expired_key_is_refused_without_any_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("o.db"), None);
    let op = Op::new(&server);
    op.post("/v1/organizations", json!({"name": "acme"}));
    op.post(&format!("{ORG}/service_accounts"), json!({"name": "bot"}));
    let short = op.issue("bot", "short", json!({"expires_in": "3s"}));
    let v = op.verify(&short);
    assert_eq!(v["valid"], true, "{v:#}");
    let revision = op.send(reqwest::Method::GET, ORG, None, 200)["revision"].clone();
    let builds = op.builds();
    let deadline = Instant::now() + Duration::from_secs(60);
    let v = loop {
        let v = op.verify(&short);
        if v["valid"] == false || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    refused(&v, "expired");
    assert_eq!(op.builds(), builds, "nothing was rebuilt");
    assert_eq!(
        op.send(reqwest::Method::GET, ORG, None, 200)["revision"],
        revision,
        "nothing was written"
    );
}

const CFG: &str = "org/svcacct.yaml";

fn config(with_main: bool) -> String {
    let main = if with_main { "      main: {}\n" } else { "" };
    format!(
        "organization: acme
secrets:
  recipients_file: ../examples/demo-recipients.txt
service_accounts:
  bot:
    keys:
{main}      spare: {{}}
"
    )
}

#[test]
fn a_local_apply_on_the_served_file_is_seen_within_the_bound() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    sb.write(CFG, &config(true));
    sb.run(&["apply", "--yes", "-c", CFG]).ok();
    let main = secret_of(&sb.join("org/secrets/bot/main.age"), &identity);
    let spare = secret_of(&sb.join("org/secrets/bot/spare.age"), &identity);
    // The local backend's own file: SQLite on either engine's run.
    let file = sb.join("org/.svcacct/acme.db");
    let server = Server::start_on(file.to_str().unwrap(), None, "127.0.0.1:0", &[]);
    let op = Op::new(&server);
    assert_eq!(op.verify(&main)["valid"], true);
    let builds = op.builds();

    // Another process revokes `main` in the same file, behind the server's back.
    sb.write(CFG, &config(false));
    sb.run(&["apply", "--yes", "-c", CFG]).ok();
    // The bound is 100 ms after the commit; the apply has exited, so it committed.
    std::thread::sleep(Duration::from_millis(300));
    refused(&op.verify(&main), "revoked");
    assert_eq!(op.verify(&spare)["valid"], true);
    assert!(op.builds() > builds, "the index was rebuilt");
}

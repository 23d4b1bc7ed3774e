//! The reference server, `svcacct serve`, as a calling service and an operator see it: a real
//! server process on a free loopback port, spoken to over HTTP. Authentication and
//! authorization, verification, the account lifecycle with its audit trail, rotation with an
//! overlap, optimistic concurrency, the apply lease, idempotent retries, bad input, and the
//! OpenAPI document kept true to the routes.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{BIN, OPERATOR, Server, T0, at, repo};

/// A client of one server, as one principal.
struct Api {
    client: Client,
    url: String,
    token: Option<String>,
}

/// A response read whole: status, headers, JSON body (Null when empty).
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    #[track_caller]
    fn expect(self, status: u16) -> Reply {
        assert_eq!(self.status.as_u16(), status, "{:#}", self.body);
        self
    }

    /// Asserts an error answer: the status and `{"error": {"code", "message"}}`.
    #[track_caller]
    fn error(self, status: u16, code: &str) -> Reply {
        assert_eq!(self.status.as_u16(), status, "{:#}", self.body);
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "errors are JSON"
        );
        assert_eq!(self.body["error"]["code"], code, "{:#}", self.body);
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{:#}",
            self.body
        );
        self
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn read(resp: Response) -> Reply {
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    Reply {
        status,
        headers,
        body,
    }
}

impl Api {
    fn new(server: &Server, token: Option<&str>) -> Api {
        Api {
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            url: server.url.clone(),
            token: token.map(str::to_string),
        }
    }

    fn as_token(&self, token: &str) -> Api {
        Api {
            client: self.client.clone(),
            url: self.url.clone(),
            token: Some(token.to_string()),
        }
    }

    fn req(&self, method: Method, path: &str) -> RequestBuilder {
        let r = self.client.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    fn get(&self, path: &str) -> Reply {
        read(self.req(Method::GET, path).send().unwrap())
    }

    fn send(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        read(r.send().unwrap())
    }

    fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(body))
    }

    fn put(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PUT, path, Some(body))
    }

    fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None)
    }

    fn revision(&self, org: &str) -> u64 {
        self.get(&format!("/v1/organizations/{org}"))
            .expect(200)
            .body["revision"]
            .as_u64()
            .unwrap()
    }

    fn verify(&self, key: &str) -> Value {
        self.post("/v1/keys/verify", json!({ "key": key }))
            .expect(200)
            .body
    }
}

/// A temporary directory with an organization file path.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::Builder::new()
                .prefix("svcacct-server-")
                .tempdir()
                .unwrap(),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("server.db")
    }
}

const ORG: &str = "/v1/organizations/acme";

/// An organization `acme` with a team, a read-only role, a managing role, and accounts:
/// `admin-bot` (admin), `manager` (svcacct:manage through a role), `ci-bot` (deployments:read).
fn seed(op: &Api) {
    op.post("/v1/organizations", json!({"name": "acme"}))
        .expect(201);
    op.post(
        &format!("{ORG}/teams"),
        json!({"name": "platform", "description": "Platform engineering"}),
    )
    .expect(201);
    op.post(
        &format!("{ORG}/roles"),
        json!({"name": "deployer", "permissions": ["deployments:read", "deployments:execute"]}),
    )
    .expect(201);
    op.post(
        &format!("{ORG}/roles"),
        json!({"name": "manager", "permissions": ["svcacct:manage"]}),
    )
    .expect(201);
    op.post(
        &format!("{ORG}/service_accounts"),
        json!({"name": "admin-bot", "admin": true}),
    )
    .expect(201);
    op.post(
        &format!("{ORG}/service_accounts"),
        json!({"name": "manager", "teams": {"platform": "manager"}}),
    )
    .expect(201);
    op.post(
        &format!("{ORG}/service_accounts"),
        json!({"name": "ci-bot", "description": "CI", "teams": {"platform": "deployer"}}),
    )
    .expect(201);
}

/// Issues a server-minted key and returns its secret.
fn issue(op: &Api, account: &str, body: Value) -> String {
    let r = op
        .post(&format!("{ORG}/service_accounts/{account}/keys"), body)
        .expect(201);
    assert!(r.body.get("hash").is_none(), "never a hash: {:#}", r.body);
    r.body["secret"]
        .as_str()
        .expect("a minted secret")
        .to_string()
}

fn actions(op: &Api, query: &str) -> Vec<(String, String, String)> {
    op.get(&format!("{ORG}/audit?{query}")).expect(200).body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
                e["target"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn openapi_document_lists_exactly_the_routes_the_server_serves() {
    let text = std::fs::read_to_string(repo().join("schemas/openapi.yaml")).unwrap();
    let doc: Value = serde_saphyr::from_str(&text).expect("schemas/openapi.yaml is YAML");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            if let Some(op) = item.get(method) {
                documented.insert((method.to_uppercase(), path.clone()));
                let responses = op["responses"].as_object().unwrap();
                assert!(!responses.is_empty(), "{method} {path} has no responses");
            }
        }
    }
    let served: BTreeSet<(String, String)> = svcacct::server::routes()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not in schemas/openapi.yaml: {undocumented:?}\nin schemas/openapi.yaml but not served: {unserved:?}"
    );
    // Every local reference resolves.
    for r in text
        .split("$ref: \"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
    {
        let pointer = r.strip_prefix('#').expect("local references only");
        assert!(
            doc.pointer(pointer).is_some(),
            "{r} does not resolve in schemas/openapi.yaml"
        );
    }
}

#[test]
fn refuses_to_start_without_an_operator_token() {
    let sb = Sandbox::new();
    let out = Command::new(BIN)
        .args(["serve", "--db"])
        .arg(sb.db())
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("SVCACCT_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SVCACCT_ADMIN_TOKEN"), "{stderr}");
    assert!(stderr.contains("--admin-token-file"), "{stderr}");

    // A token file works, and the server stops cleanly on SIGTERM.
    let token_file = sb.dir.path().join("token");
    std::fs::write(&token_file, format!("{OPERATOR}\n")).unwrap();
    // Private to the server's user: a readable one is refused (tests/it/packaging.rs).
    std::fs::set_permissions(
        &token_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--db"])
        .arg(sb.db())
        .args(["--listen", "127.0.0.1:0", "--admin-token-file"])
        .arg(&token_file)
        .env_remove("SVCACCT_ADMIN_TOKEN")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("listening on ").map(str::to_string))
        .expect("listening line");
    std::thread::spawn(move || for _ in lines {});
    let whoami = Client::new()
        .get(format!("{url}/v1/whoami"))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap();
    assert_eq!(whoami.status(), StatusCode::OK);
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn keys_authenticate_and_only_managing_keys_manage() {
    let sb = Sandbox::new();
    let server = Server::start(&sb.db(), None);
    let op = Api::new(&server, Some(OPERATOR));
    seed(&op);
    let admin_key = issue(&op, "admin-bot", json!({"name": "main"}));
    let manager_key = issue(&op, "manager", json!({"name": "main"}));
    let ci_key = issue(&op, "ci-bot", json!({"name": "prod", "expires_in": "90d"}));
    let scoped_key = issue(
        &op,
        "admin-bot",
        json!({"name": "read-only", "scopes": ["flows:read"]}),
    );

    // No token, a wrong token, a malformed header, a key-shaped string nobody issued: 401.
    let anonymous = Api::new(&server, None);
    anonymous.get("/v1/whoami").error(401, "unauthorized");
    op.as_token("not-the-operator-token")
        .get("/v1/whoami")
        .error(401, "unauthorized");
    let minted = svcacct::secrets::mint();
    op.as_token(&minted.secret)
        .get(&format!("{ORG}/snapshot"))
        .error(401, "unauthorized");
    let raw = read(
        op.client
            .get(format!("{}/v1/whoami", server.url))
            .header("Authorization", format!("Basic {OPERATOR}"))
            .send()
            .unwrap(),
    );
    raw.error(401, "unauthorized");
    // Health needs no credentials.
    assert_eq!(anonymous.get("/v1/health").expect(200).body["status"], "ok");

    // The operator.
    assert_eq!(
        op.get("/v1/whoami").expect(200).body,
        json!({"operator": true})
    );

    // A key that may not manage: whoami and verify only.
    let ci = op.as_token(&ci_key);
    let me = ci.get("/v1/whoami").expect(200).body;
    assert_eq!(me["valid"], true);
    assert_eq!(me["organization"], "acme");
    assert_eq!(me["service_account"], "ci-bot");
    assert_eq!(me["key"], "prod");
    assert_eq!(
        me["permissions"],
        json!(["deployments:execute", "deployments:read"])
    );
    assert!(me["expires_at"].is_string());
    assert_eq!(ci.verify(&admin_key)["service_account"], "admin-bot");
    ci.get(&format!("{ORG}/snapshot")).error(403, "forbidden");
    ci.get(ORG).error(403, "forbidden");
    ci.post(&format!("{ORG}/teams"), json!({"name": "sneaky"}))
        .error(403, "forbidden");
    ci.post("/v1/organizations", json!({"name": "other"}))
        .error(403, "forbidden");

    // An admin account's key manages its organization, but only the operator creates ones.
    let admin = op.as_token(&admin_key);
    admin.get(&format!("{ORG}/snapshot")).expect(200);
    admin
        .post(&format!("{ORG}/teams"), json!({"name": "data"}))
        .expect(201);
    admin
        .post("/v1/organizations", json!({"name": "other"}))
        .error(403, "forbidden");
    // A role granting svcacct:manage is enough too.
    let manager = op.as_token(&manager_key);
    manager
        .put(&format!("{ORG}/teams/data"), json!({"description": "Data"}))
        .expect(200);

    // A scoped key gets only its scopes: the admin's *:* narrowed to flows:read.
    let scoped = op.as_token(&scoped_key);
    let me = scoped.get("/v1/whoami").expect(200).body;
    assert_eq!(me["permissions"], json!(["flows:read"]));
    assert_eq!(me["scopes"], json!(["flows:read"]));
    scoped
        .get(&format!("{ORG}/snapshot"))
        .error(403, "forbidden");

    // A managing key of another organization cannot touch this one.
    op.post("/v1/organizations", json!({"name": "other"}))
        .expect(201);
    op.post(
        "/v1/organizations/other/service_accounts",
        json!({"name": "boss", "admin": true}),
    )
    .expect(201);
    let other_key = op
        .post(
            "/v1/organizations/other/service_accounts/boss/keys",
            json!({"name": "main"}),
        )
        .expect(201)
        .body["secret"]
        .as_str()
        .unwrap()
        .to_string();
    op.as_token(&other_key)
        .get(&format!("{ORG}/snapshot"))
        .error(403, "forbidden");

    // The audit log names each actor.
    let log = actions(&op, "target=team.data");
    assert_eq!(
        log,
        vec![
            (
                "service_account:admin-bot/main".into(),
                "put_team".into(),
                "team.data".into()
            ),
            (
                "service_account:manager/main".into(),
                "put_team".into(),
                "team.data".into()
            ),
        ]
    );

    // Request logs name the principal but never a key, a hash or the operator token.
    let server_log = server.log();
    assert!(
        server_log.contains("principal=\"operator\""),
        "{server_log}"
    );
    for secret in [&admin_key, &manager_key, &ci_key, &scoped_key, &other_key] {
        assert!(!server_log.contains(secret.as_str()), "a key was logged");
        let hash = svcacct::secrets::hash_secret(secret);
        assert!(!server_log.contains(&hash), "a hash was logged");
        assert!(
            !server_log.contains(&secret[..20]),
            "part of a key was logged"
        );
    }
    assert!(
        !server_log.contains(OPERATOR),
        "the operator token was logged"
    );
    assert!(!server_log.to_lowercase().contains("authorization:"));
}

#[test]
fn disable_enable_delete_and_the_audit_trail() {
    let sb = Sandbox::new();
    let server = Server::start(&sb.db(), None);
    let op = Api::new(&server, Some(OPERATOR));
    seed(&op);
    let key = issue(&op, "ci-bot", json!({"name": "prod"}));
    let ci = op.as_token(&key);
    ci.get("/v1/whoami").expect(200);

    let disabled = op
        .post(&format!("{ORG}/service_accounts/ci-bot/disable"), json!({}))
        .expect(200)
        .body;
    assert_eq!(disabled["disabled"], true);
    assert_eq!(
        disabled["teams"],
        json!({"platform": "deployer"}),
        "memberships kept"
    );
    ci.get("/v1/whoami").error(401, "unauthorized");
    assert_eq!(
        op.verify(&key),
        json!({"valid": false, "reason": "account_disabled"})
    );

    op.post(&format!("{ORG}/service_accounts/ci-bot/enable"), json!({}))
        .expect(200);
    ci.get("/v1/whoami").expect(200);
    assert_eq!(op.verify(&key)["valid"], true);

    // Revoking one key, then deleting the account.
    let second = issue(&op, "ci-bot", json!({"name": "staging"}));
    op.delete(&format!("{ORG}/service_accounts/ci-bot/keys/staging"))
        .expect(204);
    assert_eq!(op.verify(&second)["reason"], "revoked");
    op.delete(&format!("{ORG}/service_accounts/ci-bot"))
        .expect(204);
    ci.get("/v1/whoami").error(401, "unauthorized");
    assert_eq!(
        op.verify(&key),
        json!({"valid": false, "reason": "revoked"})
    );
    op.get(&format!("{ORG}/service_accounts/ci-bot"))
        .error(404, "not_found");
    op.delete(&format!("{ORG}/service_accounts/ci-bot"))
        .error(404, "not_found");

    // Every step, with its actor, oldest first; filtered by target and paged.
    let steps: Vec<(String, String)> = actions(&op, "target=service_account.ci-bot")
        .into_iter()
        .map(|(actor, action, _)| (actor, action))
        .collect();
    let operator = |a: &str| ("operator".to_string(), a.to_string());
    assert_eq!(
        steps,
        vec![
            operator("put_service_account"),
            operator("set_memberships"),
            operator("put_service_account"),
            operator("put_service_account"),
            operator("delete_service_account"),
        ]
    );
    let all = op.get(&format!("{ORG}/audit?limit=1000")).expect(200).body;
    let total = all["entries"].as_array().unwrap().len();
    assert!(all["next"].is_null());
    let mut seen = 0;
    let mut after = 0;
    loop {
        let page = op
            .get(&format!("{ORG}/audit?limit=3&after={after}"))
            .expect(200)
            .body;
        let entries = page["entries"].as_array().unwrap();
        assert!(entries.len() <= 3);
        seen += entries.len();
        match page["next"].as_i64() {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seen, total);
    let keys: Vec<_> = actions(&op, "target=key.ci-bot.staging")
        .into_iter()
        .map(|(_, action, _)| action)
        .collect();
    assert_eq!(keys, ["issue_key", "revoke_key"]);
    assert!(actions(&op, "actor=nobody").is_empty());
    assert!(actions(&op, "since=2999-01-01T00:00:00Z").is_empty());
    assert_eq!(actions(&op, "until=2000-01-01T00:00:00Z").len(), 0);
    op.get(&format!("{ORG}/audit?since=yesterday"))
        .error(400, "invalid_query");
    op.get(&format!("{ORG}/audit?limit=0"))
        .error(400, "invalid_query");
}

#[test]
fn rotation_keeps_the_old_key_for_the_overlap_then_retires_it() {
    let sb = Sandbox::new();
    let server = Server::start(&sb.db(), Some(T0));
    let op = Api::new(&server, Some(OPERATOR));
    seed(&op);
    let old = issue(
        &op,
        "ci-bot",
        json!({"name": "prod", "expires_in": "90d", "overlap": "24h"}),
    );
    let rotated = op
        .post(
            &format!("{ORG}/service_accounts/ci-bot/keys/prod/rotate"),
            json!({"overlap": "1h"}),
        )
        .expect(201)
        .body;
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_eq!(rotated["created_at"], T0);
    assert_eq!(rotated["expires_in"], "90d", "the settings carry over");
    assert_ne!(old, new);

    // Both work during the overlap; the list shows the retiring one with its end.
    assert_eq!(op.verify(&old)["valid"], true);
    assert_eq!(op.verify(&new)["valid"], true);
    let keys = op
        .get(&format!("{ORG}/service_accounts/ci-bot/keys"))
        .expect(200)
        .body;
    let retires: Vec<_> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["retires_at"].clone())
        .collect();
    assert_eq!(retires.len(), 2);
    assert!(retires.contains(&json!(at(0, 1))), "{keys:#}");
    assert!(retires.contains(&Value::Null));
    assert!(!keys.to_string().contains("hash"), "never a hash");
    let snapshot = op.get(&format!("{ORG}/snapshot")).expect(200).body;
    assert_eq!(snapshot["retiring_keys"][0]["retires_at"], at(0, 1));

    // Two hours later the old key is retired, the new one still works.
    drop(server);
    let server = Server::start(&sb.db(), Some(&at(0, 2)));
    let op = Api::new(&server, Some(OPERATOR));
    assert_eq!(
        op.verify(&old),
        json!({"valid": false, "reason": "retired"})
    );
    assert_eq!(op.verify(&new)["valid"], true);
    op.as_token(&old)
        .get("/v1/whoami")
        .error(401, "unauthorized");
    op.as_token(&new).get("/v1/whoami").expect(200);

    // Registration by hash: the client minted the secret; the server never sees it.
    let minted = svcacct::secrets::mint();
    let registered = op
        .post(
            &format!("{ORG}/service_accounts/ci-bot/keys"),
            json!({
                "name": "by-hash",
                "hash": minted.hash,
                "display_prefix": minted.display_prefix,
                "id": minted.id,
                "scopes": ["deployments:read"],
            }),
        )
        .expect(201)
        .body;
    assert!(registered.get("secret").is_none());
    assert_eq!(registered["id"], minted.id.as_str());
    let v = op.verify(&minted.secret);
    assert_eq!(v["key"], "by-hash");
    assert_eq!(v["permissions"], json!(["deployments:read"]));
    // The same hash twice is a conflict.
    op.post(
        &format!("{ORG}/service_accounts/ci-bot/keys"),
        json!({"name": "again", "hash": minted.hash, "display_prefix": minted.display_prefix}),
    )
    .error(409, "conflict");

    let audit = actions(&op, "target=key.ci-bot.prod");
    assert_eq!(
        audit
            .iter()
            .map(|(_, action, _)| action.as_str())
            .collect::<Vec<_>>(),
        ["issue_key", "rotate_key"]
    );
}

#[test]
fn if_match_lease_and_idempotency_key() {
    let sb = Sandbox::new();
    let server = Server::start(&sb.db(), None);
    let op = Api::new(&server, Some(OPERATOR));
    seed(&op);
    let teams = format!("{ORG}/teams");

    // If-Match: a stale revision is 412 and changes nothing; the current one (quoted or not) works.
    let rev = op.revision("acme");
    let stale = read(
        op.req(Method::POST, &teams)
            .header("If-Match", format!("\"{}\"", rev - 1))
            .json(&json!({"name": "late"}))
            .send()
            .unwrap(),
    );
    stale.error(412, "precondition_failed");
    assert_eq!(op.revision("acme"), rev);
    let ok = read(
        op.req(Method::POST, &teams)
            .header("If-Match", rev.to_string())
            .json(&json!({"name": "late"}))
            .send()
            .unwrap(),
    )
    .expect(201);
    assert_eq!(ok.header("etag"), Some(format!("\"{}\"", rev + 1).as_str()));
    let snapshot = op.get(&format!("{ORG}/snapshot")).expect(200);
    assert_eq!(
        snapshot.header("etag"),
        Some(format!("\"{}\"", rev + 1).as_str())
    );

    // The lease: one holder; writes without it are 409 locked, with it they go through.
    let lease = op
        .post(
            &format!("{ORG}/lock"),
            json!({"owner": "apply in ci #42", "ttl_seconds": 30}),
        )
        .expect(201)
        .body;
    let lease_id = lease["lease_id"].as_str().unwrap().to_string();
    assert_eq!(lease["owner"], "apply in ci #42");
    let held = op
        .post(&format!("{ORG}/lock"), json!({"owner": "someone else"}))
        .error(409, "locked");
    let message = held.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("locked by apply in ci #42 until"),
        "{message}"
    );
    let rev = op.revision("acme");
    op.post(&teams, json!({"name": "blocked"}))
        .error(409, "locked");
    assert_eq!(op.revision("acme"), rev);
    read(
        op.req(Method::POST, &teams)
            .header("Svcacct-Lease", &lease_id)
            .json(&json!({"name": "allowed"}))
            .send()
            .unwrap(),
    )
    .expect(201);
    // Reads are not locked.
    op.get(&teams).expect(200);
    let renewed = op
        .put(
            &format!("{ORG}/lock/{lease_id}"),
            json!({"ttl_seconds": 60}),
        )
        .expect(200)
        .body;
    assert_eq!(renewed["lease_id"], lease_id.as_str());
    op.put(
        &format!("{ORG}/lock/lease_nope"),
        json!({"ttl_seconds": 60}),
    )
    .error(404, "not_found");
    op.delete(&format!("{ORG}/lock/{lease_id}")).expect(204);
    op.delete(&format!("{ORG}/lock/{lease_id}"))
        .error(404, "not_found");
    op.post(&teams, json!({"name": "unblocked"})).expect(201);

    // Idempotency: a retried POST is answered from the record, without running again.
    let send = |key: &str, body: Value| {
        read(
            op.req(Method::POST, &format!("{ORG}/batch"))
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .unwrap(),
        )
    };
    let batch = json!({"operations": [
        {"op": "put_team", "name": "retried", "team": {"description": "once"}},
        {"op": "delete_team", "name": "no-such-team"},
    ]});
    let rev = op.revision("acme");
    let first = send("retry-1", batch.clone()).expect(200);
    assert_eq!(first.body["revision"], rev + 1);
    assert_eq!(first.body["results"][0], json!({"ok": true}));
    assert_eq!(first.body["results"][1]["ok"], false);
    assert_eq!(first.body["results"][1]["error"]["code"], "not_found");
    let again = send("retry-1", batch.clone()).expect(200);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(op.revision("acme"), rev + 1, "the retry changed nothing");
    let audit = actions(&op, "target=team.retried");
    assert_eq!(audit.len(), 1);
    // The same key for another request is refused.
    send("retry-1", json!({"operations": []})).error(409, "idempotency_key_reused");
    // A server-minted secret is never stored for replay.
    let create = |key: &str| {
        read(
            op.req(Method::POST, &format!("{ORG}/service_accounts/ci-bot/keys"))
                .header("Idempotency-Key", key)
                .json(&json!({"name": "once"}))
                .send()
                .unwrap(),
        )
    };
    let created = create("mint-1").expect(201);
    assert!(created.body["secret"].is_string());
    let replayed = create("mint-1").expect(201);
    assert_eq!(replayed.body["id"], created.body["id"]);
    assert!(replayed.body.get("secret").is_none(), "{:#}", replayed.body);
}

#[test]
fn bad_input_is_a_json_4xx_and_changes_nothing() {
    let sb = Sandbox::new();
    let server = Server::start(&sb.db(), None);
    let op = Api::new(&server, Some(OPERATOR));
    seed(&op);
    let before = op.get(&format!("{ORG}/snapshot")).expect(200).body;
    let raw = |method: Method, path: &str, content_type: Option<&str>, body: Vec<u8>| {
        let mut r = op.req(method, path).body(body);
        if let Some(ct) = content_type {
            r = r.header("Content-Type", ct);
        }
        read(r.send().unwrap())
    };
    let json_ct = Some("application/json");
    let teams = format!("{ORG}/teams");
    let accounts = format!("{ORG}/service_accounts");
    let keys = format!("{ORG}/service_accounts/ci-bot/keys");

    // Malformed JSON, wrong types, unknown and missing fields: 400.
    raw(Method::POST, &teams, json_ct, b"{\"name\": ".to_vec()).error(400, "malformed_json");
    raw(Method::POST, &teams, json_ct, b"not json".to_vec()).error(400, "malformed_json");
    op.post(&teams, json!({"name": 42}))
        .error(400, "invalid_body");
    op.post(&teams, json!(["platform"]))
        .error(400, "invalid_body");
    op.post(&teams, json!({"name": "x", "colour": "red"}))
        .error(400, "invalid_body");
    op.post(&teams, json!({"description": "no name"}))
        .error(400, "invalid_body");
    op.post(&accounts, json!({"name": "x", "admin": "yes"}))
        .error(400, "invalid_body");
    op.post(
        &format!("{ORG}/batch"),
        json!({"operations": [{"op": "drop_tables"}]}),
    )
    .error(400, "invalid_body");
    op.put(&format!("{ORG}/teams/platform"), json!({"name": "other"}))
        .error(400, "invalid_body");
    // Wrong content type: 415. Oversized body: 413.
    raw(
        Method::POST,
        &teams,
        Some("text/plain"),
        b"{\"name\":\"x\"}".to_vec(),
    )
    .error(415, "unsupported_media_type");
    raw(Method::POST, &teams, None, b"{\"name\":\"x\"}".to_vec())
        .error(415, "unsupported_media_type");
    let huge = format!(
        "{{\"name\":\"x\",\"description\":\"{}\"}}",
        "a".repeat(2 << 20)
    );
    // The client writes the whole body before it reads the answer: the server reads and
    // throws away a refused body, so the 413 reaches the client instead of a broken pipe, every
    // time (the connection is reused for the next request).
    for _ in 0..20 {
        raw(Method::POST, &teams, json_ct, huge.clone().into_bytes()).error(413, "body_too_large");
    }
    // A client that waits for `100 Continue` before sending the body is refused without it.
    let answer = {
        use std::io::{Read, Write};
        let addr = server
            .url
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            tcp,
            "POST {teams} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {OPERATOR}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\
             Expect: 100-continue\r\nConnection: close\r\n\r\n",
            huge.len()
        )
        .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).unwrap();
        answer
    };
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(answer.contains("\"body_too_large\""), "{answer}");
    // Invalid values: 422.
    for name in ["Platform", "-x", "a_b", "", &"a".repeat(64), "ünï"] {
        op.post(&teams, json!({ "name": name }))
            .error(422, "invalid_value");
    }
    op.post("/v1/organizations", json!({"name": "Not A Slug"}))
        .error(422, "invalid_value");
    op.post(
        &format!("{ORG}/roles"),
        json!({"name": "r", "permissions": ["everything"]}),
    )
    .error(422, "invalid_value");
    op.post(&keys, json!({"name": "k", "expires_in": "3 days"}))
        .error(422, "invalid_value");
    // Only a duration that does not parse is a bad value: a field merely named like one is
    // a bad body.
    op.post(&keys, json!({"name": "k", "duration": "3d"}))
        .error(400, "invalid_body");
    op.post(&keys, json!({"name": "k", "expires_in": "99999d"}))
        .error(422, "invalid_value");
    op.post(&keys, json!({"name": "k", "scopes": ["read"]}))
        .error(422, "invalid_value");
    op.post(
        &keys,
        json!({"name": "k", "hash": "abc", "display_prefix": "svca_abc"}),
    )
    .error(422, "invalid_value");
    op.post(&keys, json!({"name": "k", "hash": "a".repeat(64)}))
        .error(422, "invalid_value");
    op.post(&accounts, json!({"name": "x", "expires": "someday"}))
        .error(422, "invalid_value");
    op.post(
        &format!("{ORG}/batch"),
        json!({"operations": [
            {"op": "put_team", "name": "fine", "team": {}},
            {"op": "put_team", "name": "NOT FINE", "team": {}},
        ]}),
    )
    .error(422, "invalid_value");
    op.post(
        &format!("{ORG}/lock"),
        json!({"owner": "x", "ttl_seconds": 0}),
    )
    .error(422, "invalid_value");
    // References to what does not exist, duplicates, protected and built-in objects: 409.
    op.put(
        &format!("{ORG}/service_accounts/ci-bot/memberships"),
        json!({"nope": "deployer"}),
    )
    .error(409, "unknown_reference");
    op.post(&teams, json!({"name": "platform"}))
        .error(409, "already_exists");
    op.post("/v1/organizations", json!({"name": "acme"}))
        .error(409, "already_exists");
    op.put(
        &format!("{ORG}/roles/admin"),
        json!({"permissions": ["*:*"]}),
    )
    .error(409, "conflict");
    op.delete(&format!("{ORG}/roles/viewer"))
        .error(409, "protected");
    op.delete(&format!("{ORG}/roles/deployer"))
        .error(409, "conflict");
    // Bad headers, tokens, routes and methods.
    read(
        op.req(Method::POST, &teams)
            .header("If-Match", "yesterday")
            .json(&json!({"name": "x"}))
            .send()
            .unwrap(),
    )
    .error(400, "invalid_header");
    op.as_token("svca_garbage")
        .get(ORG)
        .error(401, "unauthorized");
    op.get("/v1/nothing-here").error(404, "not_found");
    op.get("/v1/organizations/nope").error(404, "not_found");
    op.get(&format!("{ORG}/teams/nope")).error(404, "not_found");
    let wrong_method = op.send(Method::PATCH, &teams, None);
    assert_eq!(wrong_method.header("allow"), Some("GET,HEAD,POST"));
    wrong_method.error(405, "method_not_allowed");

    let after = op.get(&format!("{ORG}/snapshot")).expect(200).body;
    assert_eq!(after, before, "bad input changed the organization");
    assert!(!server.log().contains("panicked"));
}

#[test]
fn failed_authentications_are_rate_limited() {
    let sb = Sandbox::new();
    let server = Server::start(&sb.db(), None);
    let bad = Api::new(&server, Some("wrong-token"));
    for _ in 0..20 {
        bad.get("/v1/whoami").error(401, "unauthorized");
    }
    let limited = bad.get("/v1/whoami").error(429, "rate_limited");
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&wait), "{wait}");
    // Only failures are held off: good credentials from the same address still pass.
    Api::new(&server, Some(OPERATOR))
        .get("/v1/whoami")
        .expect(200);
    assert_eq!(server.stop(), Some(0));
}

/// A release build has no way to make its server fail on request.
#[cfg(not(feature = "test-hooks"))]
#[test]
fn a_build_without_test_hooks_has_no_fault_injection() {
    let sb = Sandbox::new();
    let out = Command::new(BIN)
        .args(["serve", "--db"])
        .arg(sb.db())
        .args(["--listen", "127.0.0.1:0", "--inject-faults", "1.0"])
        .env("SVCACCT_ADMIN_TOKEN", OPERATOR)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--inject-faults"), "{stderr}");
    assert!(!sb.db().exists(), "nothing was created");
}

#[test]
fn injected_faults_answer_500_or_429_and_sometimes_run_the_request() {
    crate::common::needs_fault_hooks();
    let sb = Sandbox::new();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--db"])
        .arg(sb.db())
        .args(["--listen", "127.0.0.1:0", "--inject-faults", "1.0"])
        .env("SVCACCT_ADMIN_TOKEN", OPERATOR);
    let out = cmd.args(["--help"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("inject-faults"),
        "the fault flag is hidden"
    );
    let server = Server::start(&sb.db(), None);
    let op = Api::new(&server, Some(OPERATOR));
    op.post("/v1/organizations", json!({"name": "acme"}))
        .expect(201);
    drop(server);
    let mut child = Command::new(BIN)
        .args(["serve", "--db"])
        .arg(sb.db())
        .args(["--listen", "127.0.0.1:0", "--inject-faults", "1.0"])
        .env("SVCACCT_ADMIN_TOKEN", OPERATOR)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("listening on ").map(str::to_string))
        .unwrap();
    std::thread::spawn(move || for _ in lines {});
    let client = Client::new();
    let mut statuses = BTreeSet::new();
    for i in 0..30 {
        let r = client
            .post(format!("{url}{ORG}/teams"))
            .bearer_auth(OPERATOR)
            .json(&json!({ "name": format!("t{i}") }))
            .send()
            .unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(
                r.headers().get("retry-after").unwrap().to_str().unwrap(),
                "0"
            );
        }
        statuses.insert(r.status().as_u16());
    }
    assert!(
        statuses.is_subset(&BTreeSet::from([429, 500])),
        "{statuses:?}"
    );
    // Outside organizations nothing is injected.
    let health = client.get(format!("{url}/v1/health")).send().unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    child.wait().unwrap();
    // Some requests ran and lost their answer: the teams exist.
    let server = Server::start(&sb.db(), None);
    let op = Api::new(&server, Some(OPERATOR));
    let teams = op.get(&format!("{ORG}/teams")).expect(200).body;
    assert!(teams["teams"].as_array().unwrap().len() <= 30);
}

#[test]
fn snapshots_are_cached_per_revision_and_never_stale() {
    let sb = Sandbox::new();
    let server = Server::start(&sb.db(), None);
    let op = Api::new(&server, Some(OPERATOR));
    seed(&op);
    let snapshot = || op.get(&format!("{ORG}/snapshot")).expect(200).body.clone();
    let first = snapshot();
    assert_eq!(snapshot(), first, "served again from the cache");
    assert_eq!(first["revision"].as_u64(), Some(op.revision("acme")));

    // A single-object write: the next snapshot is the new revision, with the change.
    op.put(
        &format!("{ORG}/teams/platform"),
        json!({"description": "Platform, renamed"}),
    )
    .expect(200);
    let second = snapshot();
    assert_eq!(second["revision"].as_u64(), Some(op.revision("acme")));
    assert!(second["revision"].as_u64() > first["revision"].as_u64());
    assert_eq!(
        second["teams"]["platform"]["description"],
        "Platform, renamed"
    );

    // An apply's lease and batch: released, and the snapshot has the batch's change.
    let lease = op
        .post(
            &format!("{ORG}/lock"),
            json!({"owner": "test", "ttl_seconds": 30}),
        )
        .expect(201)
        .body["lease_id"]
        .as_str()
        .unwrap()
        .to_string();
    let batch = op
        .req(Method::POST, &format!("{ORG}/batch"))
        .header("Svcacct-Lease", &lease)
        .json(&json!({"operations": [{"op": "put_team", "name": "data", "team": {"description": "Data"}}]}))
        .send()
        .unwrap();
    assert_eq!(batch.status(), StatusCode::OK);
    op.delete(&format!("{ORG}/lock/{lease}")).expect(204);
    let third = snapshot();
    assert_eq!(third["revision"].as_u64(), Some(op.revision("acme")));
    assert_eq!(third["teams"]["data"]["description"], "Data");
}

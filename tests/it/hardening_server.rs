//! `svcacct serve` under hostile or careless clients: a flood of bad credentials next to good
//! ones from the same address, `X-Forwarded-For` from strangers and from trusted proxies,
//! idle and half-sent connections, huge declared bodies, long targets, and privilege edges
//! (a managing key may not hand out more than it holds; idempotency records are per caller).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{OPERATOR, Server};

const ORG: &str = "/v1/organizations/acme";

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::Builder::new()
                .prefix("svcacct-hardening-")
                .tempdir()
                .unwrap(),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("server.db")
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// One request as `token` (none when empty): its status and JSON body (Null when empty).
fn call(
    c: &Client,
    server: &Server,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut r: RequestBuilder = c.request(method, format!("{}{path}", server.url));
    if !token.is_empty() {
        r = r.bearer_auth(token);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().unwrap();
    let status = resp.status();
    let text = resp.text().unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    (status, body)
}

#[track_caller]
fn ok(c: &Client, server: &Server, token: &str, method: Method, path: &str, body: Value) -> Value {
    let (status, body) = call(c, server, token, method, path, Some(body));
    assert!(status.is_success(), "{status}: {body:#}");
    body
}

/// Organization `acme` with an account `app` and a server-minted key for it.
fn org_with_key(c: &Client, server: &Server) -> String {
    ok(
        c,
        server,
        OPERATOR,
        Method::POST,
        "/v1/organizations",
        json!({"name": "acme"}),
    );
    ok(
        c,
        server,
        OPERATOR,
        Method::POST,
        &format!("{ORG}/service_accounts"),
        json!({"name": "app"}),
    );
    ok(
        c,
        server,
        OPERATOR,
        Method::POST,
        &format!("{ORG}/service_accounts/app/keys"),
        json!({"name": "main"}),
    )["secret"]
        .as_str()
        .unwrap()
        .to_string()
}

// ---- item: failures are throttled, valid credentials never are ---------------------------

#[test]
fn a_flood_of_bad_tokens_never_refuses_a_valid_credential() {
    let sb = Sandbox::new();
    let server = Server::start(&sb.db(), None);
    let c = client();
    let key = org_with_key(&c, &server);
    // A well-formed key that is not valid (revoked) costs a lookup; garbage costs nothing.
    let revoked = ok(
        &c,
        &server,
        OPERATOR,
        Method::POST,
        &format!("{ORG}/service_accounts/app/keys"),
        json!({"name": "old"}),
    )["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = call(
        &c,
        &server,
        OPERATOR,
        Method::DELETE,
        &format!("{ORG}/service_accounts/app/keys/old"),
        None,
    );
    assert_eq!(s, StatusCode::NO_CONTENT);

    let flooding = Arc::new(AtomicBool::new(true));
    let bad_statuses = Arc::new(Mutex::new(Vec::new()));
    let server = Arc::new(server);
    let flood: Vec<_> = (0..4)
        .map(|t| {
            let (server, statuses, revoked) =
                (server.clone(), bad_statuses.clone(), revoked.clone());
            std::thread::spawn(move || {
                let c = client();
                for i in 0..60 {
                    let token = if (t + i) % 2 == 0 {
                        format!("not-a-key-{t}-{i}")
                    } else {
                        revoked.clone()
                    };
                    let (s, body) = call(&c, &server, &token, Method::GET, "/v1/whoami", None);
                    assert!(
                        s == StatusCode::UNAUTHORIZED || s == StatusCode::TOO_MANY_REQUESTS,
                        "{s}: {body:#}"
                    );
                    statuses.lock().unwrap().push(s.as_u16());
                }
            })
        })
        .collect();
    // Beside the flood, from the same address: verifies by the key and operator requests.
    let good: Vec<_> = (0..2)
        .map(|t| {
            let (server, flooding, key) = (server.clone(), flooding.clone(), key.clone());
            std::thread::spawn(move || {
                let c = client();
                let mut done = 0;
                while flooding.load(Ordering::SeqCst) || done < 20 {
                    let (s, body) = if t == 0 {
                        call(
                            &c,
                            &server,
                            &key,
                            Method::POST,
                            "/v1/keys/verify",
                            Some(json!({ "key": key })),
                        )
                    } else {
                        call(&c, &server, OPERATOR, Method::GET, ORG, None)
                    };
                    assert_eq!(
                        s,
                        StatusCode::OK,
                        "a valid credential was refused: {body:#}"
                    );
                    if t == 0 {
                        assert_eq!(body["valid"], true);
                    }
                    done += 1;
                }
                done
            })
        })
        .collect();
    for f in flood {
        f.join().unwrap();
    }
    flooding.store(false, Ordering::SeqCst);
    let valid_requests: usize = good.into_iter().map(|g| g.join().unwrap()).sum();
    assert!(valid_requests >= 40);
    let statuses = bad_statuses.lock().unwrap();
    assert_eq!(statuses.len(), 240);
    assert!(
        statuses.contains(&429),
        "bad tokens are throttled after the limit"
    );
    // Right after the flood, while the address is held off: a bad token is 429 with a
    // Retry-After, and the good credentials still pass.
    let limited = c
        .get(format!("{}/v1/whoami", server.url))
        .bearer_auth("still-wrong")
        .send()
        .unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&wait), "{wait}");
    let (s, _) = call(&c, &server, OPERATOR, Method::GET, "/v1/whoami", None);
    assert_eq!(s, StatusCode::OK);
    let (s, body) = call(&c, &server, &key, Method::GET, "/v1/whoami", None);
    assert_eq!(s, StatusCode::OK, "{body:#}");
    let log = server.log();
    assert!(
        !log.contains(&key) && !log.contains(&revoked),
        "a secret was logged"
    );
}

/// Sends `n` requests with a bad token and `X-Forwarded-For: xff`; the last status.
fn fail_from(c: &Client, server: &Server, xff: &str, n: usize) -> u16 {
    let mut last = 0;
    for _ in 0..n {
        last = c
            .get(format!("{}/v1/whoami", server.url))
            .bearer_auth("wrong-token")
            .header("X-Forwarded-For", xff)
            .send()
            .unwrap()
            .status()
            .as_u16();
    }
    last
}

#[test]
fn forwarded_for_counts_only_from_a_trusted_proxy() {
    let c = client();
    // No trusted proxy: the header is the client's say-so, and every failure is the peer's.
    let sb = Sandbox::new();
    let server = Server::start_with(&sb.db(), None, "127.0.0.1:0", &["--max-auth-failures", "5"]);
    for i in 0..5 {
        assert_eq!(fail_from(&c, &server, &format!("10.0.0.{i}"), 1), 401);
    }
    assert_eq!(fail_from(&c, &server, "10.0.0.99", 1), 429);
    drop(server);

    // Behind a trusted proxy (loopback here), the forwarded address is the client.
    let sb = Sandbox::new();
    let server = Server::start_with(
        &sb.db(),
        None,
        "127.0.0.1:0",
        &[
            "--max-auth-failures",
            "5",
            "--trusted-proxy",
            "192.0.2.0/24",
            "--trusted-proxy",
            "127.0.0.1",
        ],
    );
    assert_eq!(fail_from(&c, &server, "198.51.100.1", 5), 401);
    assert_eq!(fail_from(&c, &server, "198.51.100.1", 1), 429);
    // Another client behind the same proxy is not held off; a trusted hop is skipped.
    assert_eq!(fail_from(&c, &server, "198.51.100.2", 1), 401);
    assert_eq!(fail_from(&c, &server, "198.51.100.1, 192.0.2.9", 1), 429);
    assert_eq!(fail_from(&c, &server, "198.51.100.1, 198.51.100.3", 1), 401);

    // A bad flag value is refused with a clear message.
    let out = std::process::Command::new(crate::common::BIN)
        .args(["serve", "--db"])
        .arg(sb.db())
        .args(["--trusted-proxy", "not-an-address"])
        .env("SVCACCT_ADMIN_TOKEN", OPERATOR)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not an IP address or a CIDR block"),
        "{stderr}"
    );
}

// ---- item: connections cannot be held forever -----------------------------------------

fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(server.url.trim_start_matches("http://")).unwrap()
}

/// Reads until the server closes the connection (or `limit` passes); what it sent.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Result<Vec<u8>, String> {
    stream
        .set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Ok(got),
        }
        if start.elapsed() > limit {
            return Err(format!(
                "still open after {limit:?}; got {:?}",
                String::from_utf8_lossy(&got)
            ));
        }
    }
}

#[test]
fn idle_connections_over_the_cap_do_not_starve_health() {
    let sb = Sandbox::new();
    let server = Server::start_with(
        &sb.db(),
        None,
        "127.0.0.1:0",
        &["--max-connections", "8", "--header-read-timeout", "2"],
    );
    // Three times the cap of connections that never send a byte.
    let mut idle: Vec<TcpStream> = (0..24).map(|_| connect(&server)).collect();
    let c = Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    for _ in 0..3 {
        let r = c.get(format!("{}/v1/health", server.url)).send().unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    // The server closed every idle connection itself (they sent no request in time).
    for s in &mut idle {
        read_until_closed(s, Duration::from_secs(60)).unwrap();
    }
    assert!(!server.log().contains("panicked"));
}

#[test]
fn a_connection_that_trickles_its_headers_is_closed_at_the_header_timeout() {
    let sb = Sandbox::new();
    let server = Server::start_with(
        &sb.db(),
        None,
        "127.0.0.1:0",
        &["--header-read-timeout", "2", "--idle-timeout", "600"],
    );
    let mut stream = connect(&server);
    let mut writer = stream.try_clone().unwrap();
    // One header line every 300 ms: always making progress, never finishing.
    let trickle = std::thread::spawn(move || {
        writer
            .write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        for i in 0..200 {
            std::thread::sleep(Duration::from_millis(300));
            if writer
                .write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
                .is_err()
            {
                return true;
            }
        }
        false
    });
    let got = read_until_closed(&mut stream, Duration::from_secs(30)).unwrap();
    assert!(
        !String::from_utf8_lossy(&got).contains("200 OK"),
        "no answer to a request never finished"
    );
    drop(stream);
    assert!(trickle.join().unwrap(), "the server closed the connection");
    // The server still serves.
    let r = client()
        .get(format!("{}/v1/health", server.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// Sends raw bytes and reads the answer: status and JSON body.
fn raw_exchange(server: &Server, request: &[u8]) -> (u16, Value) {
    let mut stream = connect(server);
    stream.write_all(request).unwrap();
    let got = read_until_closed(&mut stream, Duration::from_secs(20)).unwrap();
    let text = String::from_utf8_lossy(&got).into_owned();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let head_end = text.find("\r\n\r\n").expect("a whole head");
    assert!(
        text[..head_end]
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{text}"
    );
    let body = serde_json::from_str(&text[head_end + 4..])
        .unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, body)
}

#[test]
fn a_huge_declared_body_is_refused_at_once_and_a_long_target_is_json() {
    let sb = Sandbox::new();
    // Long timeouts: an answer can only come from the early check, not a timer.
    let server = Server::start_with(
        &sb.db(),
        None,
        "127.0.0.1:0",
        &["--header-read-timeout", "600", "--idle-timeout", "600"],
    );
    let request = format!(
        "POST /v1/organizations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {OPERATOR}\r\n\
         Content-Type: application/json\r\nContent-Length: 999999999999\r\n\r\n{{}}"
    );
    let (status, body) = raw_exchange(&server, request.as_bytes());
    assert_eq!(status, 413, "{body:#}");
    assert_eq!(body["error"]["code"], "body_too_large");
    // Nothing was created.
    let (s, _) = call(&client(), &server, OPERATOR, Method::GET, ORG, None);
    assert_eq!(s, StatusCode::NOT_FOUND);

    let long = format!(
        "GET /v1/organizations/{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(20_000)
    );
    let (status, body) = raw_exchange(&server, long.as_bytes());
    assert_eq!(status, 414, "{body:#}");
    assert_eq!(body["error"]["code"], "uri_too_long");
    // Past hyper's own limit (64 KiB), where hyper answers before any route runs: JSON too.
    let longer = long.replace(&"a".repeat(20_000), &"a".repeat(70_000));
    let (status, body) = raw_exchange(&server, longer.as_bytes());
    assert_eq!(status, 414, "{body:#}");
    assert_eq!(body["error"]["code"], "uri_too_long");
    let (status, body) = raw_exchange(&server, b"NOT HTTP AT ALL\r\n\r\n");
    assert_eq!(status, 400, "{body:#}");
    assert_eq!(body["error"]["code"], "bad_request");
}

// ---- item: privilege and protocol edges -------------------------------------------------

/// `acme` with a `manager` account holding `svcacct:manage` and `deployments:read` (and its
/// key), a global admin `root`, and `reading`, which holds the role `reader`; returns the
/// manager's key.
fn org_with_manager(c: &Client, server: &Server) -> String {
    let op = |method: Method, path: &str, body: Value| ok(c, server, OPERATOR, method, path, body);
    op(Method::POST, "/v1/organizations", json!({"name": "acme"}));
    op(
        Method::POST,
        &format!("{ORG}/teams"),
        json!({"name": "platform"}),
    );
    op(
        Method::POST,
        &format!("{ORG}/roles"),
        json!({"name": "manager", "permissions": ["svcacct:manage", "deployments:read"]}),
    );
    op(
        Method::POST,
        &format!("{ORG}/roles"),
        json!({"name": "reader", "permissions": ["deployments:read"]}),
    );
    op(
        Method::POST,
        &format!("{ORG}/service_accounts"),
        json!({"name": "manager", "teams": {"platform": "manager"}}),
    );
    op(
        Method::POST,
        &format!("{ORG}/service_accounts"),
        json!({"name": "root", "admin": true}),
    );
    op(
        Method::POST,
        &format!("{ORG}/service_accounts"),
        json!({"name": "reading", "teams": {"platform": "reader"}}),
    );
    op(
        Method::POST,
        &format!("{ORG}/service_accounts/manager/keys"),
        json!({"name": "main"}),
    )["secret"]
        .as_str()
        .unwrap()
        .to_string()
}

#[track_caller]
fn forbidden(c: &Client, server: &Server, token: &str, method: Method, path: &str, body: Value) {
    let (status, body) = call(c, server, token, method, path, Some(body));
    assert_eq!(status, StatusCode::FORBIDDEN, "{body:#}");
    assert_eq!(body["error"]["code"], "forbidden", "{body:#}");
}

#[test]
fn a_managing_key_cannot_grant_more_than_it_holds() {
    let sb = Sandbox::new();
    let server = Server::start(&sb.db(), None);
    let c = client();
    let manager = org_with_manager(&c, &server);
    let snapshot = |c: &Client| {
        call(
            c,
            &server,
            OPERATOR,
            Method::GET,
            &format!("{ORG}/snapshot"),
            None,
        )
        .1
    };
    let before = snapshot(&c);
    let m = |method: Method, path: &str, body: Value| {
        forbidden(&c, &server, &manager, method, &format!("{ORG}{path}"), body)
    };
    // Minting, registering or rotating a key of the global admin.
    m(
        Method::POST,
        "/service_accounts/root/keys",
        json!({"name": "stolen"}),
    );
    m(
        Method::POST,
        "/service_accounts/root/keys",
        json!({"name": "stolen", "hash": "a".repeat(64), "display_prefix": "svca_abcd"}),
    );
    // Creating or promoting an admin, or a holder of the built-in admin role.
    m(
        Method::POST,
        "/service_accounts",
        json!({"name": "evil", "admin": true}),
    );
    m(
        Method::PUT,
        "/service_accounts/manager",
        json!({"admin": true}),
    );
    m(
        Method::PUT,
        "/service_accounts/manager/memberships",
        json!({"platform": "admin"}),
    );
    m(
        Method::POST,
        "/service_accounts",
        json!({"name": "evil", "teams": {"platform": "member"}}),
    );
    // Widening a role someone holds, its own included.
    m(
        Method::PUT,
        "/roles/reader",
        json!({"permissions": ["deployments:*"]}),
    );
    m(
        Method::PUT,
        "/roles/manager",
        json!({"permissions": ["svcacct:manage", "*:*"]}),
    );
    // The batch endpoint: the same rule, all or nothing.
    m(
        Method::POST,
        "/batch",
        json!({"operations": [
            {"op": "put_team", "name": "harmless", "team": {}},
            {"op": "put_service_account", "name": "evil", "account": {"admin": true}},
        ]}),
    );
    m(
        Method::POST,
        "/batch",
        json!({"operations": [
            {"op": "put_service_account", "name": "evil", "account": {}},
            {"op": "set_memberships", "account": "evil", "teams": {"platform": "admin"}},
        ]}),
    );
    assert_eq!(snapshot(&c), before, "a refused write changed something");

    // Within its own permissions it may do all of these.
    let allowed = |method: Method, path: &str, body: Value| {
        ok(&c, &server, &manager, method, &format!("{ORG}{path}"), body)
    };
    allowed(
        Method::POST,
        "/service_accounts",
        json!({"name": "reader-bot", "teams": {"platform": "reader"}}),
    );
    let key = allowed(
        Method::POST,
        "/service_accounts/reader-bot/keys",
        json!({"name": "main"}),
    );
    assert!(key["secret"].is_string());
    allowed(
        Method::POST,
        "/service_accounts/reader-bot/keys/main/rotate",
        json!({}),
    );
    allowed(
        Method::PUT,
        "/roles/reader",
        json!({"permissions": ["deployments:read"], "description": "still narrow"}),
    );
    allowed(
        Method::POST,
        "/batch",
        json!({"operations": [
            {"op": "put_service_account", "name": "second", "account": {}},
            {"op": "set_memberships", "account": "second", "teams": {"platform": "manager"}},
        ]}),
    );
    // The operator may do anything.
    ok(
        &c,
        &server,
        OPERATOR,
        Method::POST,
        &format!("{ORG}/service_accounts/root/keys"),
        json!({"name": "main"}),
    );
}

#[test]
fn two_authorization_headers_are_a_json_400() {
    let sb = Sandbox::new();
    let server = Server::start(&sb.db(), None);
    let c = client();
    for (first, second) in [
        (OPERATOR, "wrong"),
        ("wrong", OPERATOR),
        (OPERATOR, OPERATOR),
    ] {
        let r = c
            .get(format!("{}/v1/whoami", server.url))
            .header("Authorization", format!("Bearer {first}"))
            .header("Authorization", format!("Bearer {second}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "application/json"
        );
        let body: Value = r.json().unwrap();
        assert_eq!(body["error"]["code"], "invalid_header", "{body:#}");
    }
}

#[test]
fn an_idempotency_key_replays_only_to_the_caller_that_used_it() {
    let sb = Sandbox::new();
    let server = Server::start(&sb.db(), None);
    let c = client();
    let manager = org_with_manager(&c, &server);
    let create = |token: &str, idem: &str, name: &str| {
        let r = c
            .post(format!("{}{ORG}/service_accounts/manager/keys", server.url))
            .bearer_auth(token)
            .header("Idempotency-Key", idem)
            .json(&json!({ "name": name }))
            .send()
            .unwrap();
        let replayed = r.headers().contains_key("idempotent-replayed");
        let status = r.status().as_u16();
        (status, replayed, r.json::<Value>().unwrap())
    };
    let (status, replayed, first) = create(&manager, "same-key", "one");
    assert_eq!((status, replayed), (201, false), "{first:#}");
    // Another caller with the same key runs its own request and gets its own answer.
    let (status, replayed, other) = create(OPERATOR, "same-key", "two");
    assert_eq!((status, replayed), (201, false), "{other:#}");
    assert_ne!(other["id"], first["id"]);
    assert!(other["secret"].is_string());
    // Each caller's retry replays its own answer.
    let (status, replayed, again) = create(&manager, "same-key", "one");
    assert_eq!((status, replayed), (201, true));
    assert_eq!(again["id"], first["id"]);
    let (status, replayed, again) = create(OPERATOR, "same-key", "two");
    assert_eq!((status, replayed), (201, true));
    assert_eq!(again["id"], other["id"]);
}

#[test]
fn a_nul_character_anywhere_is_a_4xx_on_every_engine() {
    // SQLite stores a NUL in text; PostgreSQL refuses it. Either way the caller gets a 4xx
    // and nothing changes, never a 500.
    let sb = Sandbox::new();
    let server = Server::start(&sb.db(), None);
    let c = client();
    let ok = |method: Method, path: &str, body: Option<Value>| {
        call(&c, &server, OPERATOR, method, path, body)
    };
    assert_eq!(
        ok(
            Method::POST,
            "/v1/organizations",
            Some(json!({"name": "acme"}))
        )
        .0,
        StatusCode::CREATED
    );
    let revision =
        |c: &Client| call(c, &server, OPERATOR, Method::GET, ORG, None).1["revision"].clone();
    let before = revision(&c);
    let nul = "a\u{0}b";
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            format!("{ORG}/teams"),
            Some(json!({"name": "t", "description": nul})),
        ),
        (
            Method::POST,
            format!("{ORG}/service_accounts"),
            Some(json!({"name": "bot", "description": nul})),
        ),
        (
            Method::POST,
            format!("{ORG}/lock"),
            Some(json!({"owner": nul})),
        ),
        (
            Method::POST,
            "/v1/keys/verify".into(),
            Some(json!({"key": format!("svca_{nul}")})),
        ),
        (Method::GET, "/v1/organizations/a%00b".into(), None),
        (Method::GET, format!("{ORG}/teams/a%00b"), None),
        (Method::GET, format!("{ORG}/audit?actor=a%00b"), None),
        (Method::GET, format!("{ORG}/audit?target=a%00b"), None),
    ];
    for (method, path, body) in attempts {
        let (status, answer) = ok(method.clone(), &path, body);
        assert!(
            status.is_client_error(),
            "{method} {path}: {status} {answer:#}"
        );
        assert!(
            answer.is_object(),
            "{method} {path}: a JSON answer: {answer}"
        );
    }
    assert_eq!(revision(&c), before, "nothing changed");
    assert!(
        !server.log().contains("storage failure"),
        "{}",
        server.log()
    );
}

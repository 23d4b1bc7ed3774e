//! Schema versions: a database written by an svcacct from before versions were kept (built
//! here from that schema's text, `tests/fixtures/schema-v1.sql`) is migrated with nothing
//! lost, by `serve --migrate` and at start; a database newer than the binary is refused and
//! left as it was.

use std::path::Path;
use std::process::Command;

use reqwest::blocking::Client;
use rusqlite::Connection;
use serde_json::{Value, json};

use crate::common::*;

const V1: &str = include_str!("../fixtures/schema-v1.sql");
/// The tables of version 1, each with an order that makes its dump deterministic.
const TABLES: &[(&str, &str)] = &[
    ("organizations", "name"),
    ("roles", "org, name"),
    ("teams", "org, name"),
    ("service_accounts", "org, name"),
    ("memberships", "org, account, team"),
    ("api_keys", "id"),
    ("audit_log", "id"),
    ("leases", "org"),
    ("idempotency", "org, key"),
];

/// A version-1 database with an organization in every table; returns a live key's secret.
fn v1_database(path: &Path) -> String {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(V1).unwrap();
    let key = svcacct::secrets::mint();
    let old = svcacct::secrets::mint();
    conn.execute_batch(&format!(
        "INSERT INTO organizations VALUES ('acme', 7, 1700000000);
         INSERT INTO roles VALUES ('acme', 'admin', 'Everything', '[\"*\"]', 1, 0, 1);
         INSERT INTO roles VALUES ('acme', 'deployer', 'Deploys', '[\"flows:read\",\"flows:run\"]', 0, 1, 0);
         INSERT INTO teams VALUES ('acme', 'platform', 'Platform engineering', 1, 1);
         INSERT INTO service_accounts VALUES ('acme', 'ci-bot', 'CI', 0, '2099-12-31', 0, 0, 1);
         INSERT INTO service_accounts VALUES ('acme', 'old-bot', 'Retired', 0, NULL, 1, 0, 1);
         INSERT INTO memberships VALUES ('acme', 'ci-bot', 'platform', 'deployer');
         INSERT INTO api_keys VALUES ('{id}', 'acme', 'ci-bot', 'prod', 'GitHub', '[\"flows:read\"]',
             '{prefix}', '{hash}', 1700000000, NULL, NULL, NULL, 7776000, NULL, NULL, 1);
         INSERT INTO api_keys VALUES ('{old_id}', 'acme', 'ci-bot', 'prod', 'GitHub', '[]',
             '{old_prefix}', '{old_hash}', 1690000000, NULL, NULL, 1695000000, NULL, NULL, NULL, 1);
         INSERT INTO audit_log (org, time, actor, action, target, detail)
             VALUES ('acme', 1700000000, 'svcacct:ci', 'register_key', 'key.ci-bot.prod', 'id={id}');
         INSERT INTO audit_log (org, time, actor, action, target)
             VALUES ('acme', 1700000001, 'svcacct:ci', 'disable_service_account', 'service_account.old-bot');
         INSERT INTO leases VALUES ('acme', 'lease_0123', 'a crashed apply', 1700000100);
         INSERT INTO idempotency VALUES ('acme', 'op k1', 'fp', 201, '{{}}', 1700000000);",
        id = key.id,
        prefix = key.display_prefix,
        hash = key.hash,
        old_id = old.id,
        old_prefix = old.display_prefix,
        old_hash = old.hash,
    ))
    .unwrap();
    key.secret.to_string()
}

/// Every row of every version-1 table, as text.
fn dump(path: &Path) -> Vec<String> {
    let conn = open_db(path);
    let mut rows = Vec::new();
    for (table, order) in TABLES {
        // Version 1's columns only: later versions add some, which start empty.
        let columns: Vec<String> = Connection::open_in_memory()
            .and_then(|c| {
                c.execute_batch(V1)?;
                let stmt = c.prepare(&format!("SELECT * FROM {table}"))?;
                Ok(stmt.column_names().map(str::to_string).collect())
            })
            .unwrap();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {} FROM {table} ORDER BY {order}",
                columns.join(", ")
            ))
            .unwrap();
        let mut q = stmt.query([]).unwrap();
        while let Some(r) = q.next().unwrap() {
            let cells: Vec<String> = (0..columns.len())
                .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                .collect();
            rows.push(format!("{table}: {}", cells.join(" | ")));
        }
    }
    rows
}

fn user_version(path: &Path) -> i64 {
    open_db(path)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

fn serve_migrate(db: &Path) -> Out {
    Out::from(
        Command::new(BIN)
            .args(["serve", "--migrate", "--db"])
            .arg(db)
            .env_remove("SVCACCT_ADMIN_TOKEN")
            .output()
            .unwrap(),
    )
}

#[test]
fn a_version_1_database_is_migrated_with_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("acme.db");
    let secret = v1_database(&db);
    let before = dump(&db);
    assert_eq!(before.len(), 13, "{before:#?}");
    assert_eq!(user_version(&db), 0);

    // No operator token needed: migrating serves nothing.
    let out = serve_migrate(&db);
    out.ok();
    assert!(
        out.stderr.contains("from schema version 0 to 2"),
        "{}",
        out.stderr
    );
    assert_eq!(user_version(&db), 2);
    assert_eq!(dump(&db), before, "every row is still there, unchanged");
    let unused: i64 = open_db(&db)
        .query_row(
            "SELECT count(*) FROM api_keys WHERE last_used_at IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(unused, 2, "the new column starts empty");

    let again = serve_migrate(&db);
    again.ok();
    assert!(again.stderr.contains("nothing to do"), "{}", again.stderr);

    // The migrated database serves as it did: the organization, and the key verifies.
    let server = Server::start(&db, None);
    let client = Client::new();
    let snapshot: Value = client
        .get(format!("{}/v1/organizations/acme/snapshot", server.url))
        .bearer_auth(OPERATOR)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(snapshot["revision"], 7, "{snapshot:#}");
    assert_eq!(
        snapshot["service_accounts"]["ci-bot"]["teams"],
        json!({"platform": "deployer"}),
        "{snapshot:#}"
    );
    let verified: Value = client
        .post(format!("{}/v1/keys/verify", server.url))
        .bearer_auth(&secret)
        .json(&json!({ "key": secret }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(verified["valid"], true, "{verified:#}");
    assert_eq!(verified["service_account"], "ci-bot", "{verified:#}");
}

#[test]
fn serve_migrates_an_old_database_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("acme.db");
    v1_database(&db);
    let before = dump(&db);
    let server = Server::start(&db, None);
    assert_eq!(user_version(&db), 2);
    assert_eq!(dump(&db), before);
    drop(server);
}

#[test]
fn plan_does_not_write_an_old_file_and_says_how_to_upgrade_it() {
    let sb = Sandbox::new();
    sb.copy_example("small");
    let cfg = "examples/small/svcacct.yaml";
    let db = sb.join("examples/small/.svcacct/acme.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    v1_database(&db);
    let bytes = std::fs::read(&db).unwrap();
    let out = sb.cmd(&["plan", "-c", cfg]).now(T0).run();
    out.expect(1);
    assert!(
        out.stderr.contains("schema version 0") && out.stderr.contains("svcacct serve --migrate"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read(&db).unwrap(), bytes, "a plan never writes");
    // An apply is a writer: it migrates and goes on.
    sb.apply(cfg, T0);
    assert_eq!(user_version(&db), 2);
}

#[test]
fn a_database_newer_than_the_binary_is_refused_and_left_alone() {
    let sb = Sandbox::new();
    sb.copy_example("small");
    let cfg = "examples/small/svcacct.yaml";
    sb.apply(cfg, T0);
    let db = sb.join("examples/small/.svcacct/acme.db");
    open_db_rw(&db)
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let bytes = std::fs::read(&db).unwrap();

    let out = serve_migrate(&db);
    out.expect(1);
    assert!(
        out.stderr
            .contains("schema version 99, newer than this svcacct"),
        "{}",
        out.stderr
    );
    for args in [&["plan", "-c", cfg][..], &["apply", "--yes", "-c", cfg][..]] {
        let out = sb.cmd(args).now(T0).run();
        out.expect(1);
        assert!(
            out.stderr.contains("newer than this svcacct"),
            "{args:?}: {}",
            out.stderr
        );
    }
    let served = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .env("SVCACCT_ADMIN_TOKEN", OPERATOR)
        .output()
        .unwrap();
    let served = Out::from(served);
    served.expect(1);
    assert!(
        served.stderr.contains("newer than this svcacct"),
        "{}",
        served.stderr
    );
    assert_eq!(std::fs::read(&db).unwrap(), bytes, "nothing was written");
}

#[test]
fn readiness_fails_once_a_newer_svcacct_migrated_the_database_while_health_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("acme.db");
    let server = Server::start(&db, None);
    let client = Client::new();
    let get = |path: &str| -> (u16, Value) {
        let resp = client.get(format!("{}{path}", server.url)).send().unwrap();
        (resp.status().as_u16(), resp.json().unwrap())
    };
    assert_eq!(
        get("/v1/ready"),
        (200, json!({"status": "ready", "schema_version": 2}))
    );

    open_db_rw(&db)
        .execute_batch("PRAGMA user_version = 3")
        .unwrap();
    let (status, body) = get("/v1/ready");
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("not_ready")),
        "{body:#}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("schema version 3, newer than this svcacct"),
        "{body:#}"
    );
    assert_eq!(get("/v1/health"), (200, json!({"status": "ok"})));

    open_db_rw(&db)
        .execute_batch("PRAGMA user_version = 2")
        .unwrap();
    assert_eq!(get("/v1/ready").0, 200);
}

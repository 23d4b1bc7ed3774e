//! `svcacct serve` on PostgreSQL, its schema: `serve --migrate --db postgres://…` (or
//! `SVCACCT_DATABASE_URL`) brings a throwaway cluster's database to the binary's version,
//! once when replicas start together, and refuses a newer one; a password in the URL is
//! never printed; a server on it reports not ready once a newer release migrated past it.
//! (The API on PostgreSQL is the server suites run with `SVCACCT_TEST_ENGINE=postgres`.)

use std::process::Command;

use crate::common::*;

fn migrate(url: Option<&str>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--migrate"])
        .env_remove("SVCACCT_ADMIN_TOKEN")
        .env_remove("SVCACCT_DATABASE_URL");
    if let Some(url) = url {
        cmd.args(["--db", url]);
    }
    cmd
}

fn schema_version(pg: &Postgres) -> i32 {
    pg.client()
        .query_one("SELECT version FROM svcacct_schema", &[])
        .unwrap()
        .get(0)
}

#[test]
fn serve_migrate_creates_the_schema_once_and_then_has_nothing_to_do() {
    let pg = Postgres::start();
    let out = Out::from(migrate(Some(&pg.url)).output().unwrap());
    out.ok();
    assert!(
        out.stderr.contains("from schema version 0 to 2"),
        "{}",
        out.stderr
    );
    assert_eq!(schema_version(&pg), 2);
    let tables: Vec<String> = pg
        .client()
        .query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'public' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        tables,
        [
            "api_keys",
            "audit_log",
            "idempotency",
            "leases",
            "memberships",
            "organizations",
            "roles",
            "service_accounts",
            "svcacct_schema",
            "teams"
        ]
    );
    // The variable names the database when --db does not.
    let again = Out::from(
        migrate(None)
            .env("SVCACCT_DATABASE_URL", &pg.url)
            .output()
            .unwrap(),
    );
    again.ok();
    assert!(again.stderr.contains("nothing to do"), "{}", again.stderr);
}

#[test]
fn replicas_migrating_at_once_migrate_once() {
    let pg = Postgres::start();
    let children: Vec<_> = (0..4)
        .map(|_| {
            migrate(Some(&pg.url))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Out> = children
        .into_iter()
        .map(|c| Out::from(c.wait_with_output().unwrap()))
        .collect();
    for out in &outs {
        out.ok();
    }
    let migrated = outs
        .iter()
        .filter(|o| o.stderr.contains("from schema version 0 to 2"))
        .count();
    assert_eq!(migrated, 1, "{outs:#?}");
    assert_eq!(schema_version(&pg), 2);
}

#[test]
fn a_newer_postgres_database_is_refused_and_left_alone() {
    let pg = Postgres::start();
    migrate(Some(&pg.url)).output().unwrap();
    pg.client()
        .execute("UPDATE svcacct_schema SET version = 99", &[])
        .unwrap();
    let out = Out::from(migrate(Some(&pg.url)).output().unwrap());
    out.expect(1);
    assert!(
        out.stderr
            .contains("schema version 99, newer than this svcacct"),
        "{}",
        out.stderr
    );
    assert_eq!(schema_version(&pg), 99);
}

#[test]
fn a_database_password_is_never_printed() {
    // Nothing listens on port 1: the connection fails, and the error names the database.
    let url = "postgres://svcacct:hunter2-secret@127.0.0.1:1/svcacct";
    let out = Out::from(migrate(Some(url)).output().unwrap());
    out.expect(1);
    assert!(!out.all().contains("hunter2-secret"), "{}", out.all());
    assert!(
        out.stderr.contains("svcacct:***@127.0.0.1:1"),
        "{}",
        out.stderr
    );

    let out = Out::from(
        migrate(Some("mysql://u:hunter2-secret@db/x"))
            .output()
            .unwrap(),
    );
    out.expect(2);
    assert!(!out.all().contains("hunter2-secret"), "{}", out.all());
    assert!(
        out.stderr.contains("`mysql://` is not a database"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_server_on_postgres_is_ready_until_the_database_moves_past_it() {
    let sb = Sandbox::new();
    let url = postgres_db(&sb.join("server.db"));
    let server = Server::start_on(&url, None, "127.0.0.1:0", &[]);
    let ready = || {
        let r = reqwest::blocking::get(format!("{}/v1/ready", server.url)).unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let (status, body) = ready();
    assert_eq!(status, 200, "{body}");
    // A newer release migrated the database: this replica says so instead of misreading it.
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .execute("UPDATE svcacct_schema SET version = 99", &[])
        .unwrap();
    let (status, body) = ready();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("schema version 99, newer"), "{body}");
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[test]
fn a_server_carries_on_after_the_database_restarts() {
    let pg = Postgres::start();
    let server = Server::start_on(&pg.url, None, "127.0.0.1:0", &[]);
    let client = reqwest::blocking::Client::new();
    let create = |name: &str| {
        client
            .post(format!("{}/v1/organizations", server.url))
            .bearer_auth(OPERATOR)
            .json(&serde_json::json!({ "name": name }))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(create("before"), 201);
    // Every connection of the server is cut; the next requests find new ones, no 500 between.
    pg.restart();
    for i in 0..8 {
        assert_eq!(create(&format!("after-{i}")), 201, "{}", server.log());
        let ready = client
            .get(format!("{}/v1/ready", server.url))
            .send()
            .unwrap();
        assert_eq!(ready.status().as_u16(), 200, "{}", server.log());
    }
}

//! One conformance suite for every backend: the same scenario runs against `local` (a SQLite
//! file), `http` (a real `svcacct serve` on 127.0.0.1) and `memory` (the test backend in
//! tests/backends/: server-minted keys, one per account, no revision, no lock), and each must
//! produce the same plans, the same verifications and the same exit codes, step by step. A
//! backend runs the part of the scenario that fits its capabilities.

use serde_json::{Value, json};

use crate::common::{Cmd, OPERATOR, Out, Sandbox, Server, T0, at, secret_of};

/// Which backend a target runs on.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Local,
    Http,
    Memory,
}

/// A backend under test: a sandbox and, for `http`, the server in front of its database.
struct Target {
    sandbox: Sandbox,
    kind: Kind,
    server: Option<Server>,
    server_now: String,
}

impl Target {
    fn new(kind: Kind) -> Target {
        let sandbox = Sandbox::new();
        let identity = age::x25519::Identity::generate();
        sandbox.write(
            "identity.txt",
            &format!(
                "{}\n",
                age::secrecy::ExposeSecret::expose_secret(&identity.to_string())
            ),
        );
        sandbox.write("recipients.txt", &format!("{}\n", identity.to_public()));
        let mut t = Target {
            sandbox,
            kind,
            server: None,
            server_now: String::new(),
        };
        if kind == Kind::Http {
            t.at(T0);
        }
        t
    }

    fn is_http(&self) -> bool {
        !self.server_now.is_empty()
    }

    /// Moves the clock: an http target restarts its server at the new time.
    fn at(&mut self, now: &str) {
        if self.server_now == now {
            return;
        }
        // The new server takes the old one's port, so configs keep working.
        let listen = match self.server.take() {
            Some(old) => old.url.trim_start_matches("http://").to_string(),
            None => "127.0.0.1:0".to_string(),
        };
        self.server = Some(Server::start_with(
            &self.sandbox.join("server.db"),
            Some(now),
            &listen,
            &[],
        ));
        self.server_now = now.to_string();
    }

    /// The backend section of the config.
    fn backend(&self) -> String {
        match (&self.server, self.kind) {
            (Some(s), _) => format!(
                "backend:\n  type: http\n  url: {}\n  token_env: SVCACCT_CONFORMANCE_TOKEN\n",
                s.url
            ),
            (None, Kind::Memory) => "backend:\n  type: memory\n  path: org.json\n".to_string(),
            (None, _) => "backend:\n  type: local\n  path: org.db\n".to_string(),
        }
    }

    fn write_config(&self, body: &str) {
        let text = format!(
            "organization: conform\n{}secrets:\n  dir: secrets\n  recipients_file: recipients.txt\n{body}",
            self.backend()
        );
        self.sandbox.write("svcacct.yaml", &text);
    }

    fn cmd(&mut self, args: &[&str], now: &str) -> Cmd {
        if self.is_http() {
            self.at(now);
        }
        Cmd::new(self.sandbox.root(), args)
            .now(now)
            .env("SVCACCT_CONFORMANCE_TOKEN", OPERATOR)
    }

    fn run(&mut self, args: &[&str], now: &str) -> Out {
        self.cmd(args, now).run()
    }

    fn secret(&self, account: &str, key: &str) -> String {
        secret_of(
            &self.sandbox.join(&format!("secrets/{account}/{key}.age")),
            &self.sandbox.join("identity.txt"),
        )
    }

    fn verify(&mut self, secret: &str, now: &str) -> Value {
        let out = self
            .cmd(&["verify"], now)
            .stdin(format!("{secret}\n"))
            .run();
        let v = out.json();
        json!({ "exit": out.code, "valid": v["valid"], "reason": v["reason"], "account": v["service_account"], "permissions": v["permissions"] })
    }
}

/// What a JSON plan says, without revisions (they are backend bookkeeping).
#[track_caller]
fn plan_summary(out: &Out) -> Value {
    assert!(
        matches!(out.code, Some(0 | 2)),
        "plan failed: {}",
        out.stderr
    );
    let plan = out.json();
    let changes: Vec<Value> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!([c["address"], c["action"], c["changed"], c["reason"]]))
        .collect();
    json!({ "exit": out.code, "changes": changes, "unmanaged": plan["unmanaged"] })
}

const V1: &str = "roles:
  deployer:
    description: Deploys
    permissions: [deployments:read, deployments:execute]
teams:
  platform:
    description: Platform
service_accounts:
  ci-bot:
    description: CI
    teams:
      platform: deployer
    keys:
      prod:
        rotate_every: 30d
        overlap: 1d
      scoped:
        scopes: [\"*:read\"]
  reader:
    teams:
      platform: viewer
    keys:
      r1: {}
";

/// The scenario's config for a backend that keeps one key per account and no scopes.
fn one_key(config: &str) -> String {
    config.replace("      scoped:\n        scopes: [\"*:read\"]\n", "")
}

/// The scenario, as a transcript of everything observable. `full` runs the parts that need
/// two keys on an account and key scopes.
fn scenario(t: &mut Target, full: bool) -> Vec<(String, Value)> {
    let fit = |config: &str| {
        if full {
            config.to_string()
        } else {
            one_key(config)
        }
    };
    let mut log = Vec::new();
    t.write_config(&fit(V1));
    let plan = t.run(&["plan", "--format", "json", "--detailed-exitcode"], T0);
    log.push(("first plan".into(), plan_summary(&plan)));
    t.run(&["apply", "--yes"], T0).ok();
    let plan = t.run(&["plan", "--format", "json", "--detailed-exitcode"], T0);
    log.push(("converged".into(), plan_summary(&plan)));
    assert_eq!(plan.code, Some(0), "{}", plan.stderr);

    let prod_v1 = t.secret("ci-bot", "prod");
    let r1 = t.secret("reader", "r1");
    log.push(("prod key".into(), t.verify(&prod_v1, T0)));
    if full {
        let scoped = t.secret("ci-bot", "scoped");
        log.push(("scoped key".into(), t.verify(&scoped, T0)));
    }
    log.push(("reader key".into(), t.verify(&r1, T0)));

    // Edit one field, disable one account.
    t.write_config(&fit(&V1
        .replace("description: CI", "description: CI runners")
        .replace("  reader:\n", "  reader:\n    disabled: true\n")));
    let plan = t.run(&["plan", "--format", "json", "--detailed-exitcode"], T0);
    log.push(("edit plan".into(), plan_summary(&plan)));
    t.run(&["apply", "--yes"], T0).ok();
    log.push(("disabled reader key".into(), t.verify(&r1, T0)));

    // Rotation with a one-day overlap.
    let day31 = at(31, 0);
    let plan = t.run(&["plan", "--format", "json"], &day31);
    log.push(("rotation plan".into(), plan_summary(&plan)));
    t.run(&["apply", "--yes"], &day31).ok();
    let prod_v2 = t.secret("ci-bot", "prod");
    assert_ne!(
        prod_v1, prod_v2,
        "rotation writes a new key to the same file"
    );
    log.push(("old key in overlap".into(), t.verify(&prod_v1, &day31)));
    log.push(("new key".into(), t.verify(&prod_v2, &day31)));
    let day32 = at(32, 1);
    let plan = t.run(&["plan", "--format", "json"], &day32);
    log.push(("retire plan".into(), plan_summary(&plan)));
    t.run(&["apply", "--yes"], &day32).ok();
    log.push(("old key retired".into(), t.verify(&prod_v1, &day32)));
    log.push(("new key after retire".into(), t.verify(&prod_v2, &day32)));

    // Remove an account: deleted, its keys revoked.
    t.write_config(&fit(V1
        .replace("description: CI", "description: CI runners")
        .split("  reader:")
        .next()
        .unwrap()));
    let plan = t.run(&["plan", "--format", "json"], &day32);
    log.push(("delete plan".into(), plan_summary(&plan)));
    t.run(&["apply", "--yes"], &day32).ok();
    log.push(("deleted account key".into(), t.verify(&r1, &day32)));

    // Export next to the config; the export plans to no changes.
    t.run(&["export", "-o", "exported.yaml"], &day32).ok();
    let plan = t.run(
        &[
            "plan",
            "-c",
            "exported.yaml",
            "--format",
            "json",
            "--detailed-exitcode",
        ],
        &day32,
    );
    log.push(("export round trip".into(), plan_summary(&plan)));
    assert_eq!(plan.code, Some(0), "{}", plan.stderr);
    log
}

/// Asserts two transcripts agree step by step.
#[track_caller]
fn same(a: &[(String, Value)], b: &[(String, Value)], what: &str) {
    for ((step, x), (_, y)) in a.iter().zip(b) {
        assert_eq!(x, y, "step `{step}` differs between {what}");
    }
    assert_eq!(a.len(), b.len());
}

#[test]
fn a_server_minting_one_key_backend_behaves_as_local_does() {
    let a = scenario(&mut Target::new(Kind::Local), false);
    let mut memory = Target::new(Kind::Memory);
    let b = scenario(&mut memory, false);
    same(&a, &b, "local and memory");
    let step = |name: &str| b.iter().find(|(s, _)| s == name).unwrap().1.clone();
    assert_eq!(step("first plan")["changes"].as_array().unwrap().len(), 6);
    assert_eq!(step("old key in overlap")["valid"], true);
    assert_eq!(step("old key retired")["valid"], false);
    assert_eq!(step("deleted account key")["valid"], false);

    // What the memory backend cannot store is refused offline, naming its rule.
    memory.write_config(V1);
    let out = memory.run(&["validate"], T0);
    out.expect(1);
    assert!(
        out.stderr
            .contains("the memory backend keeps at most 1 key per account"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("the memory backend cannot store key `scopes`"),
        "{}",
        out.stderr
    );
}

#[test]
fn local_and_http_backends_behave_the_same() {
    let mut local = Target::new(Kind::Local);
    let mut http = Target::new(Kind::Http);
    let a = scenario(&mut local, true);
    let b = scenario(&mut http, true);
    for ((step, x), (_, y)) in a.iter().zip(&b) {
        assert_eq!(x, y, "step `{step}` differs between local and http");
    }
    assert_eq!(a.len(), b.len());

    // The transcript itself says what the scenario must show.
    let step = |name: &str| a.iter().find(|(s, _)| s == name).unwrap().1.clone();
    assert_eq!(step("first plan")["exit"], 2);
    assert_eq!(step("first plan")["changes"].as_array().unwrap().len(), 7);
    assert_eq!(step("prod key")["valid"], true);
    assert_eq!(
        step("prod key")["permissions"],
        json!(["deployments:execute", "deployments:read"])
    );
    assert_eq!(
        step("scoped key")["permissions"],
        json!(["deployments:read"])
    );
    assert_eq!(
        step("edit plan")["changes"],
        json!([
            ["service_account.ci-bot", "update", ["description"], null],
            ["service_account.reader", "update", ["disabled"], null]
        ])
    );
    assert_eq!(step("disabled reader key")["reason"], "account_disabled");
    assert_eq!(step("rotation plan")["changes"][0][0], "key.ci-bot.prod");
    assert_eq!(step("rotation plan")["changes"][0][1], "rotate");
    assert_eq!(step("old key in overlap")["valid"], true);
    assert_eq!(step("new key")["valid"], true);
    assert_eq!(step("retire plan")["changes"][0][1], "retire");
    assert_eq!(step("old key retired")["valid"], false);
    assert_eq!(step("new key after retire")["valid"], true);
    assert_eq!(
        step("delete plan")["changes"][0],
        json!(["service_account.reader", "delete", [], "revokes its 1 key"])
    );
    assert_eq!(step("deleted account key")["valid"], false);

    // The server never logged a secret.
    let server_log = http.server.as_ref().unwrap().log();
    for (account, key) in [("ci-bot", "prod"), ("ci-bot", "scoped")] {
        let secret = http.secret(account, key);
        assert!(
            !server_log.contains(&secret),
            "the server log holds a secret"
        );
    }
}

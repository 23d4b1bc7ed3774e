//! One conformance suite for every backend: the same scenario runs against `local` (a SQLite
//! file), `http` (a real `svcacct serve` on 127.0.0.1), `memory` (the test backend in
//! tests/backends/: server-minted keys, one per account, no revision, no lock) and `prefect`
//! (the Prefect Cloud simulator), and each must produce the same plans, the same
//! verifications and the same exit codes, step by step. A backend runs the part of the
//! scenario that its capabilities (the data `validate` reads) say it can store: two backends
//! are compared on the part both can.

use serde_json::{Value, json};
use svcacct::backend::{BackendConfig, Capabilities, Vocabulary};
use time::format_description::well_known::Rfc3339;

use crate::common::{Cmd, OPERATOR, Out, Sandbox, Server, T0, at, secret_of};
use crate::prefect_sim::{PrefectSim, SimOptions};

/// Which backend a target runs on.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Local,
    Http,
    Memory,
    Prefect,
}

/// The part of the scenario a backend runs, read from its capabilities.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Fit {
    /// A second key on an account, with `scopes`.
    two_keys: bool,
    /// Disabling an account.
    disabled: bool,
    /// Teams exist outside svcacct: the scenario's team is made beforehand, with no
    /// description, and never planned.
    fixed_teams: bool,
}

impl Fit {
    fn of(c: &Capabilities) -> Fit {
        Fit {
            two_keys: c.max_keys_per_account >= 2 && c.persists.scopes,
            disabled: c.persists.disabled,
            fixed_teams: c.fixed_teams,
        }
    }

    /// What both of two backends run, to compare them step by step.
    fn common(self, other: Fit) -> Fit {
        Fit {
            two_keys: self.two_keys && other.two_keys,
            disabled: self.disabled && other.disabled,
            fixed_teams: self.fixed_teams || other.fixed_teams,
        }
    }
}

/// A backend under test: a sandbox and, for `http`, the server in front of its database;
/// for `prefect`, the simulated Prefect Cloud account.
struct Target {
    sandbox: Sandbox,
    kind: Kind,
    server: Option<Server>,
    server_now: String,
    sim: Option<PrefectSim>,
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
            sim: None,
        };
        if kind == Kind::Http {
            t.at(T0);
        }
        if kind == Kind::Prefect {
            let sim = PrefectSim::start(SimOptions::default());
            sim.add_workspace("ops");
            t.sim = Some(sim);
        }
        t
    }

    /// What the configured backend can store, as `validate` reads it.
    fn capabilities(&self) -> &'static Capabilities {
        #[derive(serde::Deserialize)]
        struct Section {
            backend: BackendConfig,
        }
        serde_saphyr::from_str::<Section>(&self.backend())
            .expect("the target's backend section")
            .backend
            .capabilities()
    }

    /// The permissions of the scenario's role in the backend's own words.
    fn permissions(&self) -> String {
        match self.capabilities().vocabulary {
            Vocabulary::Patterns => "deployments:read, deployments:execute".into(),
            Vocabulary::Names(names) => names
                .iter()
                .filter(|n| n.ends_with("deployments"))
                .take(2)
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// The backend's built-in read-only role.
    fn viewer(&self) -> &'static str {
        self.capabilities()
            .builtin_roles
            .iter()
            .find(|r| r.eq_ignore_ascii_case("viewer"))
            .expect("a viewer role")
    }

    /// Makes a team exist before the scenario, as it does outside svcacct on a backend of
    /// fixed teams: a workspace in Prefect, an applied config elsewhere.
    fn provide_team(&mut self, name: &str) {
        match &self.sim {
            Some(sim) => {
                sim.add_workspace(name);
            }
            None => {
                self.write_config(&format!("teams:\n  {name}: {{}}\n"));
                self.run(&["apply", "--yes"], T0).ok();
            }
        }
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
            (None, Kind::Prefect) => {
                let sim = self.sim.as_ref().expect("a prefect target has a simulator");
                format!(
                    "backend:\n  type: prefect\n  account_id: {}\n  url: {}\n  ledger_workspace: ops\n",
                    sim.account_id(),
                    sim.url()
                )
            }
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
        let mut cmd = Cmd::new(self.sandbox.root(), args)
            .now(now)
            .env("SVCACCT_CONFORMANCE_TOKEN", OPERATOR);
        if let Some(sim) = &self.sim {
            sim.set_now(time::OffsetDateTime::parse(now, &Rfc3339).unwrap());
            cmd = cmd.env("PREFECT_API_KEY", &sim.token());
        }
        cmd
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

    /// What `svcacct verify` says of a key; for Prefect, which has no such call, whether
    /// Prefect accepts the key (the only part of a verification it can give).
    fn verify(&mut self, secret: &str, now: &str) -> Value {
        if let Some(sim) = &self.sim {
            sim.set_now(time::OffsetDateTime::parse(now, &Rfc3339).unwrap());
            return json!({ "valid": sim.key_accepted(secret) });
        }
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

/// The scenario's config as `fit` and the target's words have it.
fn fitted(t: &Target, fit: Fit, config: &str) -> String {
    let mut config = config
        .replace("deployments:read, deployments:execute", &t.permissions())
        .replace("platform: viewer", &format!("platform: {}", t.viewer()));
    if !fit.two_keys {
        config = one_key(&config);
    }
    if fit.fixed_teams {
        config = config.replace(
            "  platform:\n    description: Platform\n",
            "  platform: {}\n",
        );
    }
    config
}

/// The scenario, as a transcript of everything observable, for the part `fit` says.
fn scenario(t: &mut Target, fit: Fit) -> Vec<(String, Value)> {
    if fit.fixed_teams {
        t.provide_team("platform");
    }
    let full = fit.two_keys;
    let config = |t: &Target, c: &str| fitted(t, fit, c);
    let mut log = Vec::new();
    t.write_config(&config(t, V1));
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
    let mut edited = V1.replace("description: CI", "description: CI runners");
    if fit.disabled {
        edited = edited.replace("  reader:\n", "  reader:\n    disabled: true\n");
    }
    t.write_config(&config(t, &edited));
    let plan = t.run(&["plan", "--format", "json", "--detailed-exitcode"], T0);
    log.push(("edit plan".into(), plan_summary(&plan)));
    t.run(&["apply", "--yes"], T0).ok();
    if fit.disabled {
        log.push(("disabled reader key".into(), t.verify(&r1, T0)));
    }

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
    t.write_config(&config(
        t,
        V1.replace("description: CI", "description: CI runners")
            .split("  reader:")
            .next()
            .unwrap(),
    ));
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
    let local = Target::new(Kind::Local);
    let mut memory = Target::new(Kind::Memory);
    let fit = Fit::of(memory.capabilities());
    assert_eq!(
        fit,
        Fit {
            two_keys: false,
            disabled: true,
            fixed_teams: false
        }
    );
    let a = scenario(&mut { local }, fit);
    let b = scenario(&mut memory, fit);
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
    let fit = Fit::of(local.capabilities());
    assert_eq!(fit, Fit::of(http.capabilities()));
    assert!(fit.two_keys && fit.disabled && !fit.fixed_teams);
    let a = scenario(&mut local, fit);
    let b = scenario(&mut http, fit);
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

/// Asserts two transcripts agree step by step where one backend cannot verify: a key step
/// compares whether the key works, the rest compares whole.
#[track_caller]
fn same_where_keys_work(a: &[(String, Value)], b: &[(String, Value)], what: &str) {
    let steps = |t: &[(String, Value)]| t.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>();
    assert_eq!(steps(a), steps(b), "the same steps ran on {what}");
    for ((step, x), (_, y)) in a.iter().zip(b) {
        if x.get("valid").is_some() {
            assert_eq!(
                x["valid"], y["valid"],
                "step `{step}` differs between {what}"
            );
        } else {
            assert_eq!(x, y, "step `{step}` differs between {what}");
        }
    }
}

#[test]
fn prefect_behaves_as_local_does_on_what_it_can_store() {
    let mut prefect = Target::new(Kind::Prefect);
    let mut local = Target::new(Kind::Local);
    let fit = Fit::of(prefect.capabilities()).common(Fit::of(local.capabilities()));
    // One server-minted key, no disabling, workspaces that exist outside svcacct.
    assert_eq!(
        fit,
        Fit {
            two_keys: false,
            disabled: false,
            fixed_teams: true
        }
    );
    let a = scenario(&mut local, fit);
    let b = scenario(&mut prefect, fit);
    same_where_keys_work(&a, &b, "local and prefect");

    let step = |name: &str| b.iter().find(|(s, _)| s == name).unwrap().1.clone();
    assert_eq!(step("first plan")["exit"], 2);
    assert_eq!(
        step("first plan")["changes"].as_array().unwrap().len(),
        5,
        "the role, two accounts and their keys; the workspace exists: {}",
        step("first plan")
    );
    assert_eq!(step("prod key")["valid"], true);
    assert_eq!(
        step("edit plan")["changes"],
        json!([["service_account.ci-bot", "update", ["description"], null]])
    );
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
}

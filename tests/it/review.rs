//! Plans a reviewer can judge: who gains and loses what, the pull-request comment (marker,
//! destructive first, per-object details, truncation), `--target`/`--exclude`, and who last
//! changed a drifted object live. Each on `local` and on `http` against a real server.

use serde_json::Value;

use crate::common::*;

pub const CFG: &str = "org/svcacct.yaml";

/// The organization the tests start from. `BACKEND` is replaced by a backend section.
const BASE: &str = "organization: acme
BACKEND
secrets:
  dir: secrets
  recipients_file: ../examples/demo-recipients.txt
roles:
  wh:
    description: Warehouse
    permissions: [warehouse:read]
  deployer:
    description: Deploys
    permissions: [deployments:read]
teams:
  data:
    description: Data
  platform:
    description: Platform
service_accounts:
  loader:
    description: Loads
    teams: {data: wh}
    keys:
      main:
        scopes: [warehouse:read]
  reporter:
    description: Reports
    teams: {data: wh}
  ci-bot:
    description: CI
    teams: {platform: deployer}
  old-bot:
    description: Old
    teams: {platform: deployer}
  temp:
    description: Temporary
    teams: {platform: deployer}
";

/// One backend under test: how its config section reads and how the binary is run.
pub struct Env {
    pub sb: Sandbox,
    pub backend: String,
    /// Kept so the server lives as long as the test.
    pub _server: Option<Server>,
}

impl Env {
    pub fn local() -> Env {
        let sb = Sandbox::new();
        demo_files(&sb);
        Env {
            sb,
            backend: "backend:\n  type: local\n  path: org.db".into(),
            _server: None,
        }
    }

    pub fn http() -> Env {
        let sb = Sandbox::new();
        demo_files(&sb);
        let server = Server::start(&sb.join("server.db"), Some(T0));
        Env {
            backend: format!(
                "backend:\n  type: http\n  url: {}\n  token_env: SVCACCT_TEST_TOKEN",
                server.url
            ),
            sb,
            _server: Some(server),
        }
    }

    /// Writes the config: [`BASE`] edited by `edit`.
    pub fn config(&self, edit: impl FnOnce(String) -> String) {
        self.sb
            .write(CFG, &edit(BASE.replace("BACKEND", &self.backend)));
    }

    pub fn cmd(&self, args: &[&str]) -> Cmd {
        self.sb
            .cmd(args)
            .now(T0)
            .env("SVCACCT_TEST_TOKEN", OPERATOR)
    }

    pub fn run(&self, args: &[&str]) -> Out {
        self.cmd(args).run()
    }

    pub fn plan_json(&self, extra: &[&str]) -> Value {
        let mut args = vec!["plan", "--format", "json", "-c", CFG];
        args.extend(extra);
        let out = self.run(&args);
        out.ok();
        out.json()
    }
}

/// The review edit: a role widened, a membership added, an account disabled, a key's scopes
/// widened, an account removed.
fn widen(t: String) -> String {
    t.replace(
        "permissions: [warehouse:read]",
        "permissions: [\"warehouse:*\"]",
    )
    .replace(
        "description: CI\n    teams: {platform: deployer}",
        "description: CI\n    teams: {platform: deployer, data: wh}",
    )
    .replace(
        "description: Old\n",
        "description: Old\n    disabled: true\n",
    )
    .replace("scopes: [warehouse:read]", "scopes: [\"warehouse:*\"]")
    .replace(
        "  temp:\n    description: Temporary\n    teams: {platform: deployer}\n",
        "",
    )
}

fn effect<'a>(plan: &'a Value, account: &str) -> &'a Value {
    plan["effects"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == account)
        .unwrap_or_else(|| panic!("no effect for {account}: {:#}", plan["effects"]))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

/// Applies the base, makes the review edit and checks every format says who gains what.
fn review_plan_shows_who_gains_what(env: &Env) -> Out {
    env.config(|t| t);
    env.run(&["apply", "--yes", "-c", CFG]).ok();
    env.config(widen);

    let plan = env.plan_json(&[]);
    let role = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "role.wh")
        .unwrap();
    assert_eq!(strings(&role["reaches"]), ["ci-bot", "loader", "reporter"]);
    let ci = effect(&plan, "ci-bot");
    assert_eq!(strings(&ci["gained"]), ["warehouse:*"]);
    assert_eq!(ci["widening"], true);
    let reporter = effect(&plan, "reporter");
    assert_eq!(strings(&reporter["gained"]), ["warehouse:*"]);
    assert!(
        strings(&reporter["lost"]).is_empty(),
        "covered by warehouse:*"
    );
    let old = effect(&plan, "old-bot");
    assert_eq!(strings(&old["lost"]), ["deployments:read"]);
    assert_eq!(old["widening"], false);
    assert_eq!(
        strings(&effect(&plan, "temp")["lost"]),
        ["deployments:read"]
    );
    let key = &effect(&plan, "loader")["keys"][0];
    assert_eq!(key["key"], "main");
    assert_eq!(strings(&key["gained"]), ["warehouse:*"]);

    let text = env.cmd(&["plan", "-c", CFG]).env("NO_COLOR", "1").run();
    text.ok();
    for want in [
        "reaches 3 accounts: ci-bot, loader, reporter",
        "Permission changes (who gains and loses what):",
        "service_account.ci-bot: + warehouse:* (widening)",
        "service_account.old-bot: - deployments:read",
        "key.loader.main: + warehouse:* (widening)",
    ] {
        assert!(text.stdout.contains(want), "{want} in:\n{}", text.stdout);
    }

    let md = env.run(&["plan", "--format", "markdown", "-c", CFG]);
    md.ok();
    let body = &md.stdout;
    assert!(body.starts_with("<!-- svcacct-plan: acme -->\n"), "{body}");
    // Destructive changes and widening come before the per-object details.
    let destructive = body
        .find("#### ⚠️ Destructive")
        .expect("a destructive section");
    let details = body.find("<details>").expect("per-object details");
    assert!(destructive < details, "{body}");
    for want in [
        "**disables** `service_account.old-bot`",
        "**deletes** `service_account.temp`",
        "gain `warehouse:*`",
    ] {
        assert!(body.contains(want), "{want} in:\n{body}");
    }
    md
}

#[test]
fn review_plan_shows_who_gains_what_on_local() {
    let env = Env::local();
    let md = review_plan_shows_who_gains_what(&env);
    insta::assert_snapshot!("review_markdown_small", md.stdout);
}

#[test]
fn review_plan_shows_who_gains_what_on_http() {
    let env = Env::http();
    review_plan_shows_who_gains_what(&env);
}

#[test]
fn markdown_of_ten_thousand_accounts_is_truncated_within_githubs_limit() {
    let sb = Sandbox::new();
    demo_files(&sb);
    sb.write(
        CFG,
        &many_accounts_yaml(
            "acme",
            10_000,
            1,
            "backend:\n  type: local\n  path: org.db\n",
        ),
    );
    let md = sb
        .cmd(&["plan", "--format", "markdown", "-c", CFG])
        .now(T0)
        .run();
    md.ok();
    let chars = md.stdout.chars().count();
    assert!(chars <= 65_536, "{chars} characters");
    assert!(chars > 60_000, "the room is used: {chars}");
    assert!(md.stdout.contains("This comment is truncated"));
    // Ten thousand accounts gaining the same thing are one line, not ten thousand.
    assert!(
        md.stdout.contains("… and 9990 more"),
        "{}",
        &md.stdout[..2000]
    );
    insta::assert_snapshot!("review_markdown_ten_thousand_accounts", md.stdout);
}

/// The slice edit: ci-bot joins a new team with a new role, reporter changes, a new account.
fn slice_edit(t: String) -> String {
    t.replace(
        "description: CI\n    teams: {platform: deployer}",
        "description: CI\n    teams: {platform: deployer, ops: opsrole}",
    )
    .replace("description: Reports", "description: Reports daily")
    .replace(
        "roles:\n",
        "roles:\n  opsrole:\n    description: Ops\n    permissions: [ops:*]\n",
    )
    .replace(
        "teams:\n  data:",
        "teams:\n  ops:\n    description: Ops\n  data:",
    ) + "  newbie:\n    description: New\n    keys:\n      main: {}\n"
}

fn addresses(plan: &Value) -> Vec<String> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["address"].as_str().unwrap().to_string())
        .collect()
}

fn target_and_exclude_limit_plan_and_apply(env: &Env) {
    env.config(|t| t);
    env.run(&["apply", "--yes", "-c", CFG]).ok();
    env.config(slice_edit);

    let out = env.run(&[
        "plan",
        "--format",
        "json",
        "-c",
        CFG,
        "--target",
        "service_account.ci-bot",
    ]);
    out.ok();
    assert!(out.stderr.contains("partial"), "{}", out.stderr);
    let plan = out.json();
    // The role and team ci-bot needs come along; nothing else does.
    assert_eq!(
        addresses(&plan),
        ["role.opsrole", "team.ops", "service_account.ci-bot"]
    );
    assert!(
        plan["notes"][0]
            .as_str()
            .unwrap()
            .contains("partial (--target service_account.ci-bot)"),
        "{}",
        plan["notes"]
    );

    // A key alone pulls in its new account.
    let plan = env.plan_json(&["--target", "key.newbie.main"]);
    assert_eq!(
        addresses(&plan),
        ["service_account.newbie", "key.newbie.main"]
    );

    let plan = env.plan_json(&["--exclude", "service_account.reporter"]);
    let a = addresses(&plan);
    assert!(!a.iter().any(|x| x.contains("reporter")), "{a:?}");
    assert!(a.contains(&"service_account.newbie".to_string()), "{a:?}");

    // Bad slices are refused, naming the flag, and change nothing.
    let revision = env.plan_json(&[])["revision"].clone();
    let secrets = || {
        files_under(&env.sb.join("org/secrets"))
            .into_keys()
            .collect::<Vec<_>>()
    };
    let before = secrets();
    for (args, want) in [
        (vec!["--target", "nonsense"], "is not an address prefix"),
        (
            vec!["--target", "service_account.nobody"],
            "matches nothing",
        ),
        (vec!["--exclude", "team.nope"], "matches nothing"),
        (
            vec![
                "--target",
                "service_account.ci-bot",
                "--exclude",
                "team.ops",
            ],
            "service_account.ci-bot needs team.ops",
        ),
    ] {
        let mut cmd = vec!["apply", "--yes", "-c", CFG];
        cmd.extend(args);
        let out = env.run(&cmd);
        out.expect(1);
        assert!(out.stderr.contains(want), "{want} in {}", out.stderr);
    }
    assert_eq!(env.plan_json(&[])["revision"], revision);
    assert_eq!(secrets(), before);

    let out = env.run(&[
        "apply",
        "--yes",
        "-c",
        CFG,
        "--target",
        "service_account.ci-bot",
    ]);
    out.ok();
    assert!(out.stderr.contains("partial"), "{}", out.stderr);
    // What was outside the slice is still to do; the slice is done.
    let a = addresses(&env.plan_json(&[]));
    assert_eq!(
        a,
        [
            "service_account.newbie",
            "key.newbie.main",
            "service_account.reporter"
        ]
    );
}

#[test]
fn target_and_exclude_limit_plan_and_apply_on_local() {
    target_and_exclude_limit_plan_and_apply(&Env::local());
}

#[test]
fn target_and_exclude_limit_plan_and_apply_on_http() {
    target_and_exclude_limit_plan_and_apply(&Env::http());
}

/// Someone changes the team by hand (here, an apply of another config as another user);
/// the plan back to the config says who and when.
/// `time` is when the hand edit was made: the server's clock for `http`, the client's for
/// `local`.
fn drift_is_attributed(env: &Env, actor: &str, time: &str) {
    env.config(|t| t);
    env.run(&["apply", "--yes", "-c", CFG]).ok();
    env.config(|t| t.replace("description: Data", "description: Hand edited"));
    env.cmd(&["apply", "--yes", "-c", CFG])
        .env("USER", "alice")
        .now(&at(1, 0))
        .run()
        .ok();
    env.config(|t| t);
    let out = env
        .cmd(&["plan", "--format", "json", "-c", CFG])
        .now(&at(2, 0))
        .run();
    out.ok();
    let plan = out.json();
    let change = &plan["changes"][0];
    assert_eq!(change["address"], "team.data");
    assert_eq!(change["last_changed"]["actor"], actor);
    assert_eq!(change["last_changed"]["action"], "put_team");
    let text = env.cmd(&["plan", "-c", CFG]).env("NO_COLOR", "1").run();
    assert!(
        text.stdout
            .contains(&format!("last changed live {time} by {actor} (put_team)")),
        "{}",
        text.stdout
    );
}

#[test]
fn drift_is_attributed_from_the_audit_log_on_local() {
    let env = Env::local();
    drift_is_attributed(&env, "svcacct:alice", &at(1, 0));
    let plan = env.plan_json(&[]);
    assert_eq!(
        plan["changes"][0]["last_changed"]["time"],
        at(1, 0).as_str()
    );
}

#[test]
fn drift_is_attributed_from_the_audit_log_on_http() {
    // The server names callers by token (the operator here) and runs on its own clock.
    drift_is_attributed(&Env::http(), "operator", T0);
}

#[test]
fn many_drifted_objects_are_attributed_in_one_pass_over_the_servers_audit_log() {
    let sb = Sandbox::new();
    demo_files(&sb);
    let server = Server::start(&sb.join("server.db"), Some(T0));
    let backend = format!(
        "backend:\n  type: http\n  url: {}\n  token_env: SVCACCT_TEST_TOKEN\n",
        server.url
    );
    let config = many_accounts_yaml("acme", 30, 0, &backend).replace("    keys:\n", "");
    let run = |args: &[&str], user: &str| {
        sb.cmd(args)
            .now(T0)
            .env("SVCACCT_TEST_TOKEN", OPERATOR)
            .env("USER", user)
            .run()
    };
    sb.write(CFG, &config);
    run(&["apply", "--yes", "-c", CFG], "svcacct-test").ok();
    sb.write(
        CFG,
        &config.replace("description: account", "description: edited"),
    );
    run(&["apply", "--yes", "-c", CFG], "svcacct-test").ok();
    sb.write(CFG, &config);

    let out = run(
        &["plan", "-v", "--format", "json", "-c", CFG],
        "svcacct-test",
    );
    out.ok();
    let plan = out.json();
    let changes = plan["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 30);
    for c in changes {
        assert_eq!(c["last_changed"]["action"], "put_service_account", "{c}");
        assert_eq!(c["last_changed"]["actor"], "operator", "{c}");
    }
    // The snapshot and one page of the audit log, not a request per object.
    let requests: u64 = out
        .stderr
        .split("made ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a request count in {}", out.stderr));
    assert!(requests <= 3, "{requests} requests");
}

#[test]
fn an_apply_nobody_reads_asks_the_audit_log_nothing() {
    let env = Env::http();
    env.config(|t| t);
    env.run(&["apply", "--yes", "-c", CFG]).ok();
    let audit_requests = || {
        let server = env._server.as_ref().unwrap();
        server
            .log()
            .lines()
            .filter(|l| l.contains("/audit"))
            .count()
    };
    // An edit the plan shows as an update of a live object: attributed when shown.
    env.config(|t| t.replace("description: Data", "description: Edited"));
    let out = env.run(&["apply", "--yes", "-c", CFG]);
    out.ok();
    assert!(out.stdout.contains("1 applied"), "{}", out.stdout);
    env.config(|t| t.replace("description: Data", "description: Edited again"));
    let out = env
        .cmd(&["apply", "--yes", "-v", "-c", CFG])
        .env("NO_COLOR", "1")
        .run();
    out.ok();
    assert!(
        out.stdout.contains("last changed live") && out.stdout.contains("(put_team)"),
        "{}",
        out.stdout
    );
    // The shown apply's request reaches the log within the timeout; the unshown one made none.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while audit_requests() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        audit_requests(),
        1,
        "{}",
        env._server.as_ref().unwrap().log()
    );
}

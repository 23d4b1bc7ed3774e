//! The plan/apply lifecycle: create, converge, update, delete, protection, unmanaged objects,
//! mass-delete safety, output formats and partial failure.

use crate::common::*;

const SMALL: &str = "examples/small/svcacct.yaml";
const SMALL_DB: &str = "examples/small/.svcacct/acme.db";

/// A sandbox with the small example applied at `T0`.
fn applied_small() -> Sandbox {
    let sb = Sandbox::new();
    sb.copy_example("small");
    sb.apply(SMALL, T0);
    sb
}

/// Rewrites the small example's config with `f`.
fn edit_small(sb: &Sandbox, f: impl FnOnce(String) -> String) {
    let text = sb.read(SMALL);
    let new = f(text.clone());
    assert_ne!(text, new, "the edit changed nothing");
    sb.write(SMALL, &new);
}

fn changes(plan: &serde_json::Value) -> &Vec<serde_json::Value> {
    plan["changes"].as_array().unwrap()
}

#[test]
fn applying_the_small_example_converges_and_one_edit_is_one_change() {
    let sb = applied_small();
    sb.cmd(&["plan", "--detailed-exitcode", "-c", SMALL])
        .now(T0)
        .run()
        .expect(0);
    let key_file = sb.join("examples/small/secrets/ci-bot/github-actions-prod.age");
    let key_file_before = std::fs::read(&key_file).unwrap();

    edit_small(&sb, |t| {
        t.replace(
            "description: GitHub Actions deploys; owned by platform",
            "description: Deploys from GitHub Actions",
        )
    });
    sb.cmd(&["plan", "--detailed-exitcode", "-c", SMALL])
        .now(T0)
        .run()
        .expect(2);
    let plan = sb.plan_json(SMALL, T0);
    assert_eq!(plan["format_version"], 1);
    assert_eq!(plan["organization"], "acme");
    assert_eq!(plan["has_changes"], true);
    let c = changes(&plan);
    assert_eq!(c.len(), 1, "exactly one change: {plan:#}");
    assert_eq!(c[0]["address"], "service_account.ci-bot");
    assert_eq!(c[0]["action"], "update");
    assert_eq!(c[0]["changed"], serde_json::json!(["description"]));
    assert_eq!(
        c[0]["before"]["description"],
        "GitHub Actions deploys; owned by platform"
    );
    assert_eq!(c[0]["after"]["description"], "Deploys from GitHub Actions");
    assert_eq!(plan["summary"], serde_json::json!({"update": 1}));

    sb.apply(SMALL, T0);
    sb.cmd(&["plan", "--detailed-exitcode", "-c", SMALL])
        .now(T0)
        .run()
        .expect(0);

    // Every write is in the audit log, with who made it, and bumped the revision.
    let conn = open_db(&sb.join(SMALL_DB));
    let mut stmt = conn
        .prepare("SELECT actor, action, target FROM audit_log ORDER BY id")
        .unwrap();
    let log: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let entries: Vec<(&str, &str)> = log
        .iter()
        .map(|(_, a, t)| (a.as_str(), t.as_str()))
        .collect();
    for expected in [
        ("put_role", "role.deployer"),
        ("put_team", "team.platform"),
        ("put_service_account", "service_account.ci-bot"),
        ("issue_key", "key.ci-bot.github-actions-prod"),
    ] {
        assert!(entries.contains(&expected), "{expected:?} in {entries:?}");
    }
    assert!(
        log.iter()
            .filter(|(_, a, _)| a != "create_organization")
            .all(|(actor, _, _)| actor.contains("svcacct-test")),
        "the actor names the user: {log:?}"
    );
    let revision: i64 = conn
        .query_row("SELECT revision FROM organizations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(revision as usize, log.len());
    drop(stmt);
    drop(conn);

    // A key's description is an update in place: the issued key stays.
    edit_small(&sb, |t| {
        t.replace("description: prod runner", "description: production runner")
    });
    let plan = sb.plan_json(SMALL, T0);
    let c = changes(&plan);
    assert_eq!(c.len(), 1, "{plan:#}");
    assert_eq!(c[0]["address"], "key.ci-bot.github-actions-prod");
    assert_eq!(c[0]["action"], "update");
    assert_eq!(c[0]["changed"], serde_json::json!(["description"]));
    sb.apply(SMALL, T0);
    assert_eq!(
        std::fs::read(&key_file).unwrap(),
        key_file_before,
        "updating a key's description must not re-issue it"
    );
    assert_eq!(key_rows(&sb.join(SMALL_DB)).len(), 1);
    sb.cmd(&["plan", "--detailed-exitcode", "-c", SMALL])
        .now(T0)
        .run()
        .expect(0);
}

#[test]
fn removing_an_account_deletes_it_and_revokes_its_keys() {
    let sb = applied_small();
    let identity = sb.join("examples/demo-identity.txt");
    let secret = secret_of(
        &sb.join("examples/small/secrets/ci-bot/github-actions-prod.age"),
        &identity,
    );
    assert_eq!(sb.verify(SMALL, &secret, T0).0, 0);

    edit_small(&sb, |t| {
        t[..t.find("service_accounts:").unwrap()].to_string()
    });
    let plan = sb.plan_json(SMALL, T0);
    let c = changes(&plan);
    assert_eq!(c.len(), 1, "{plan:#}");
    assert_eq!(c[0]["address"], "service_account.ci-bot");
    assert_eq!(c[0]["action"], "delete");
    assert!(
        c[0]["reason"].as_str().unwrap_or("").contains("1 key"),
        "the plan says the account's key goes with it: {plan:#}"
    );

    sb.apply(SMALL, T0);
    let db = sb.join(SMALL_DB);
    let conn = open_db(&db);
    let accounts: i64 = conn
        .query_row(
            "SELECT count(*) FROM service_accounts WHERE name = 'ci-bot'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(accounts, 0);
    let keys = key_rows(&db);
    assert_eq!(keys.len(), 1, "revoked keys stay for the audit trail");
    assert!(keys[0].revoked_at.is_some(), "the key is revoked");
    let (code, v) = sb.verify(SMALL, &secret, T0);
    assert_eq!(code, 1);
    assert_eq!(v["valid"], false);
    assert_eq!(v["reason"], "revoked");
    sb.cmd(&["plan", "--detailed-exitcode", "-c", SMALL])
        .now(T0)
        .run()
        .expect(0);
}

#[test]
fn a_protected_object_removed_from_the_config_is_not_deleted() {
    let sb = Sandbox::new();
    sb.copy_example("small");
    edit_small(&sb, |t| {
        t.replace(
            "\nteams:\n",
            "\nteams:\n  vault:\n    description: Keeps secrets\n    protect: true\n",
        )
    });
    sb.apply(SMALL, T0);
    edit_small(&sb, |t| {
        t.replace(
            "  vault:\n    description: Keeps secrets\n    protect: true\n",
            "",
        )
    });
    let revision = |sb: &Sandbox| -> i64 {
        open_db(&sb.join(SMALL_DB))
            .query_row("SELECT revision FROM organizations", [], |r| r.get(0))
            .unwrap()
    };
    let before = revision(&sb);

    for args in [
        &["plan", "--detailed-exitcode", "-c", SMALL][..],
        &["plan", "--format", "json", "-c", SMALL][..],
        &["apply", "--yes", "-c", SMALL][..],
        &["apply", "--yes", "--allow-mass-delete", "-c", SMALL][..],
    ] {
        let out = sb.cmd(args).now(T0).run();
        out.expect(1);
        assert!(
            out.stderr.contains("team.vault") && out.stderr.contains("protect"),
            "`{}` names the protected object: {}",
            args.join(" "),
            out.stderr
        );
    }
    assert_eq!(revision(&sb), before, "nothing was written");
    let teams: i64 = open_db(&sb.join(SMALL_DB))
        .query_row("SELECT count(*) FROM teams WHERE name = 'vault'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(teams, 1);

    // Unprotecting it first (an apply), then removing it, works.
    edit_small(&sb, |t| {
        t.replace(
            "\nteams:\n",
            "\nteams:\n  vault:\n    description: Keeps secrets\n",
        )
    });
    sb.apply(SMALL, T0);
    edit_small(&sb, |t| {
        t.replace("  vault:\n    description: Keeps secrets\n", "")
    });
    sb.apply(SMALL, T0);
    sb.cmd(&["plan", "--detailed-exitcode", "-c", SMALL])
        .now(T0)
        .run()
        .expect(0);
}

#[test]
fn unmanaged_objects_are_listed_and_left_alone_unless_the_policy_deletes_them() {
    let sb = applied_small();
    let db = sb.join(SMALL_DB);
    open_db_rw(&db)
        .execute(
            "INSERT INTO teams (org, name, description, managed, protect) VALUES ('acme', 'hand-made', '', 0, 0)",
            [],
        )
        .unwrap();

    let plan = sb.plan_json(SMALL, T0);
    assert_eq!(plan["unmanaged"], serde_json::json!(["team.hand-made"]));
    assert!(changes(&plan).is_empty(), "{plan:#}");
    let text = sb.cmd(&["plan", "-c", SMALL]).now(T0).run();
    text.ok();
    assert!(text.stdout.contains("team.hand-made"), "{}", text.stdout);
    sb.cmd(&["plan", "--detailed-exitcode", "-c", SMALL])
        .now(T0)
        .run()
        .expect(0);
    sb.apply(SMALL, T0);
    let count = |db: &std::path::Path| -> i64 {
        open_db(db)
            .query_row(
                "SELECT count(*) FROM teams WHERE name = 'hand-made'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(count(&db), 1, "an unmanaged team is left alone");

    edit_small(&sb, |t| {
        t.replace("\nroles:\n", "\npolicy:\n  unmanaged: delete\nroles:\n")
    });
    let plan = sb.plan_json(SMALL, T0);
    let c = changes(&plan);
    assert_eq!(c.len(), 1, "{plan:#}");
    assert_eq!(c[0]["address"], "team.hand-made");
    assert_eq!(c[0]["action"], "delete");
    sb.apply(SMALL, T0);
    assert_eq!(count(&db), 0, "policy `unmanaged: delete` deletes it");
    sb.cmd(&["plan", "--detailed-exitcode", "-c", SMALL])
        .now(T0)
        .run()
        .expect(0);
}

fn teams_yaml(n: usize) -> String {
    let mut y = String::from("organization: bulk\nteams:\n");
    for i in 0..n {
        y.push_str(&format!("  team-{i:02}:\n    description: team {i}\n"));
    }
    y
}

#[test]
fn deleting_more_than_the_allowed_share_needs_allow_mass_delete() {
    let sb = Sandbox::new();
    let cfg = "bulk/svcacct.yaml";
    sb.write(cfg, &teams_yaml(12));
    sb.apply(cfg, T0);
    let db = sb.join("bulk/.svcacct/bulk.db");
    let team_count = || -> i64 {
        open_db(&db)
            .query_row("SELECT count(*) FROM teams", [], |r| r.get(0))
            .unwrap()
    };

    // 3 of 12 is 25%: allowed.
    sb.write(cfg, &teams_yaml(9));
    let plan = sb.plan_json(cfg, T0);
    assert_eq!(changes(&plan).len(), 3);
    sb.write(cfg, &teams_yaml(12));

    // 4 of 12 is 33%: refused without the flag, by plan and apply alike.
    sb.write(cfg, &teams_yaml(8));
    for args in [
        &["plan", "-c", cfg][..],
        &["plan", "--detailed-exitcode", "--format", "json", "-c", cfg][..],
        &["apply", "--yes", "-c", cfg][..],
    ] {
        let out = sb.cmd(args).now(T0).run();
        out.expect(1);
        assert!(
            out.stderr.contains("--allow-mass-delete"),
            "`{}`: {}",
            args.join(" "),
            out.stderr
        );
    }
    assert_eq!(team_count(), 12);

    let out = sb
        .cmd(&["plan", "--allow-mass-delete", "--format", "json", "-c", cfg])
        .now(T0)
        .run();
    out.ok();
    let plan = out.json();
    assert_eq!(plan["summary"], serde_json::json!({"delete": 4}));
    sb.cmd(&["apply", "--yes", "--allow-mass-delete", "-c", cfg])
        .now(T0)
        .run()
        .ok();
    assert_eq!(team_count(), 8);
    sb.cmd(&["plan", "--detailed-exitcode", "-c", cfg])
        .now(T0)
        .run()
        .expect(0);
}

#[test]
fn plan_of_an_organization_that_does_not_exist_creates_nothing() {
    let sb = Sandbox::new();
    sb.copy_example("small");
    let before = sb.files();
    let plan = sb.plan_json(SMALL, T0);
    assert_eq!(plan["revision"], 0);
    let c = changes(&plan);
    let addresses: Vec<&str> = c.iter().map(|c| c["address"].as_str().unwrap()).collect();
    assert_eq!(
        addresses,
        [
            "role.deployer",
            "team.platform",
            "service_account.ci-bot",
            "key.ci-bot.github-actions-prod"
        ]
    );
    assert!(c.iter().all(|c| c["action"] == "create"), "{plan:#}");
    sb.cmd(&["plan", "--detailed-exitcode", "-c", SMALL])
        .now(T0)
        .run()
        .expect(2);
    for format in ["text", "markdown"] {
        sb.cmd(&["plan", "--format", format, "-c", SMALL])
            .now(T0)
            .run()
            .ok();
    }
    sb.run(&["validate", "-c", SMALL]).ok();
    sb.run(&["export", "-c", SMALL]).ok();
    assert_eq!(
        sb.files().keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "plan, validate and export create no file"
    );
    assert!(!sb.join("examples/small/.svcacct").exists());
    assert!(!sb.join("examples/small/secrets").exists());
}

#[test]
fn apply_without_yes_and_without_a_terminal_refuses() {
    let sb = Sandbox::new();
    sb.copy_example("small");
    let before = sb.files();
    let out = sb.run(&["apply", "-c", SMALL]);
    out.expect(1);
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    assert_eq!(
        sb.files().keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
}

#[test]
fn plan_formats_markdown_text_and_colour() {
    let sb = applied_small();
    edit_small(&sb, |t| {
        t.replace(
            "description: Platform engineering",
            "description: Platform team",
        )
    });
    let md = sb
        .cmd(&["plan", "--format", "markdown", "-c", SMALL])
        .now(T0)
        .run();
    md.ok();
    insta::assert_snapshot!("plan_markdown_one_team_edit", md.stdout);
    assert!(!has_ansi(&md.stdout));

    let plain = sb
        .cmd(&["plan", "-c", SMALL])
        .now(T0)
        .env("NO_COLOR", "1")
        .run();
    plain.ok();
    insta::assert_snapshot!("plan_text_one_team_edit", plain.stdout);
    assert!(!has_ansi(&plain.all()), "{:?}", plain.stdout);

    let colour = sb
        .cmd(&["plan", "--color", "always", "-c", SMALL])
        .now(T0)
        .run();
    colour.ok();
    assert!(has_ansi(&colour.stdout), "{:?}", colour.stdout);
    let never = sb
        .cmd(&["plan", "--color", "never", "-c", SMALL])
        .now(T0)
        .run();
    assert!(!has_ansi(&never.stdout));

    // On a terminal, colour is on by default and NO_COLOR turns it off.
    let tty = run_on_tty(sb.cmd(&["plan", "-c", SMALL]).now(T0));
    assert!(has_ansi(&tty), "a terminal gets colour: {tty:?}");
    let tty = run_on_tty(sb.cmd(&["plan", "-c", SMALL]).now(T0).env("NO_COLOR", "1"));
    assert!(tty.contains("team.platform"), "{tty:?}");
    assert!(
        !has_ansi(&tty),
        "NO_COLOR is respected on a terminal: {tty:?}"
    );
}

#[test]
fn a_failed_change_does_not_stop_independent_ones() {
    let sb = Sandbox::new();
    demo_files(&sb);
    let cfg = "org/svcacct.yaml";
    let base = "organization: acme\nsecrets:\n  recipients_file: ../examples/demo-recipients.txt\n";
    sb.write(
        cfg,
        &format!(
            "{base}roles:\n  old-role:\n    permissions: [flows:read]\n  keep-role:\n    permissions: [flows:write]\nteams:\n  crew: {{}}\nservice_accounts:\n  bot:\n    description: before\n    teams: {{crew: keep-role}}\n    keys:\n      k: {{}}\n"
        ),
    );
    sb.apply(cfg, T0);
    let db = sb.join("org/.svcacct/acme.db");
    {
        let conn = open_db_rw(&db);
        conn.execute_batch(
            "INSERT INTO service_accounts (org, name, description, admin, expires, disabled, protect, managed)
                VALUES ('acme', 'hand', 'made by hand', 0, NULL, 0, 0, 0);
             INSERT INTO memberships (org, account, team, role) VALUES ('acme', 'hand', 'crew', 'old-role');",
        )
        .unwrap();
    }
    // Drop old-role (still used by the hand-made account), add a team, change bot.
    sb.write(
        cfg,
        &format!(
            "{base}roles:\n  keep-role:\n    permissions: [flows:write]\nteams:\n  crew: {{}}\n  newcomers: {{}}\nservice_accounts:\n  bot:\n    description: after\n    teams: {{crew: keep-role}}\n    keys:\n      k: {{}}\n"
        ),
    );
    let plan = sb.plan_json(cfg, T0);
    assert_eq!(changes(&plan).len(), 3, "{plan:#}");

    let out = sb.cmd(&["apply", "--yes", "-c", cfg]).now(T0).run();
    out.expect(1);
    assert!(
        out.stdout.contains("2 applied, 1 failed, 0 skipped"),
        "{}",
        out.stdout
    );
    let failed = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("failed"))
        .unwrap_or_else(|| panic!("the summary lists the failure: {}", out.stdout));
    assert!(
        failed.contains("role.old-role") && failed.contains("hand"),
        "{failed}"
    );

    let conn = open_db(&db);
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT count(*) FROM teams WHERE name = 'newcomers'"),
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM service_accounts WHERE name = 'bot' AND description = 'after'"),
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM roles WHERE name = 'old-role'"),
        1
    );

    // What is left is exactly the failed change.
    let plan = sb.plan_json(cfg, T0);
    let c = changes(&plan);
    assert_eq!(c.len(), 1, "{plan:#}");
    assert_eq!(c[0]["address"], "role.old-role");
    assert_eq!(c[0]["action"], "delete");
}

/// Runs a command with stdout and stderr on a fresh pseudo-terminal; returns what it printed.
fn run_on_tty(cmd: Cmd) -> String {
    run_on_tty_with_input(cmd, None).1
}

/// Runs a command on a fresh pseudo-terminal: stdout and stderr, and stdin too when `input`
/// is given (typed once the command asks). Returns the exit code and what the terminal showed.
fn run_on_tty_with_input(cmd: Cmd, input: Option<&str>) -> (Option<i32>, String) {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two new descriptors, which we own from here on.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are new and owned by nothing else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let stdin = input.map(|_| slave.try_clone().unwrap());
    let mut child = cmd.spawn_with_output(slave.try_clone().unwrap(), slave, stdin);
    let mut out = Vec::new();
    let mut master = std::fs::File::from(master);
    if let Some(input) = input {
        use std::io::Write;
        // Wait for the question before answering it.
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&out).contains("to apply:") {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        master.write_all(input.as_bytes()).unwrap();
    }
    // Reading ends with EIO once the child has closed the terminal.
    let mut buf = [0u8; 4096];
    loop {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    let status = child.wait().unwrap();
    (status.code(), String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn apply_asks_for_confirmation_on_a_terminal() {
    let sb = Sandbox::new();
    sb.copy_example("small");
    let db = sb.join(SMALL_DB);

    let (code, shown) = run_on_tty_with_input(
        sb.cmd(&["apply", "-c", SMALL]).now(T0).env("NO_COLOR", "1"),
        Some("no\n"),
    );
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains("+ key.ci-bot.github-actions-prod"),
        "the plan is shown first: {shown}"
    );
    assert!(shown.contains("cancelled"), "{shown}");
    assert!(
        !sb.join("examples/small/secrets").exists(),
        "nothing was issued"
    );
    if db.exists() {
        let keys: i64 = open_db(&db)
            .query_row("SELECT count(*) FROM api_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(keys, 0);
    }

    let (code, shown) = run_on_tty_with_input(
        sb.cmd(&["apply", "-c", SMALL]).now(T0).env("NO_COLOR", "1"),
        Some("yes\n"),
    );
    assert_eq!(code, Some(0), "{shown}");
    assert_eq!(current_keys(&db).len(), 1);
    sb.cmd(&["plan", "--detailed-exitcode", "-c", SMALL])
        .now(T0)
        .run()
        .expect(0);
}

#[test]
fn changes_run_in_dependency_order() {
    let sb = Sandbox::new();
    demo_files(&sb);
    let cfg = "org/svcacct.yaml";
    let head = "organization: acme\nsecrets:\n  recipients_file: ../examples/demo-recipients.txt\n";
    sb.write(
        cfg,
        &format!(
            "{head}roles:\n  old-role:\n    permissions: [flows:read]\nteams:\n  old-team: {{}}\n  gone-team: {{}}\nservice_accounts:\n  mover:\n    teams: {{old-team: old-role}}\n    keys:\n      k: {{}}\n  leaver:\n    teams: {{gone-team: viewer}}\n    keys:\n      k: {{}}\n"
        ),
    );
    sb.apply(cfg, T0);
    // In one apply: a new role and team that `mover` switches to, the old ones deleted
    // (only possible after the switch), and `leaver` deleted with the team only it used.
    sb.write(
        cfg,
        &format!(
            "{head}roles:\n  new-role:\n    permissions: [flows:write]\nteams:\n  new-team: {{}}\nservice_accounts:\n  mover:\n    teams: {{new-team: new-role}}\n    keys:\n      k: {{}}\n      extra: {{}}\n"
        ),
    );
    let plan = sb.plan_json(cfg, T0);
    let mut actions: Vec<(String, String)> = changes(&plan)
        .iter()
        .map(|c| {
            (
                c["address"].as_str().unwrap().into(),
                c["action"].as_str().unwrap().into(),
            )
        })
        .collect();
    actions.sort();
    let expected: Vec<(String, String)> = [
        ("key.mover.extra", "create"),
        ("role.new-role", "create"),
        ("role.old-role", "delete"),
        ("service_account.leaver", "delete"),
        ("service_account.mover", "update"),
        ("team.gone-team", "delete"),
        ("team.new-team", "create"),
        ("team.old-team", "delete"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(actions, expected, "{plan:#}");
    let out = sb.apply(cfg, T0);
    assert!(
        out.stdout.contains("8 applied, 0 failed, 0 skipped"),
        "{}",
        out.stdout
    );
    sb.cmd(&["plan", "--detailed-exitcode", "-c", cfg])
        .now(T0)
        .run()
        .expect(0);
    let identity = sb.join("examples/demo-identity.txt");
    let secret = secret_of(&sb.join("org/secrets/mover/extra.age"), &identity);
    let (code, v) = sb.verify(cfg, &secret, T0);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["permissions"], serde_json::json!(["flows:write"]));
}

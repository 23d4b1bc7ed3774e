//! `svcacct init`: organizations stamped out of one template, applied for real; nothing written
//! when anything is wrong; the new identity kept out of the repository and out of every output.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::common::*;

/// A company template: the organization named by the placeholder in two files.
fn template(sb: &Sandbox) -> String {
    sb.write(
        "template/roles.yaml",
        "organization: {{organization}}\nroles:\n  deployer:\n    description: Deploys {{ organization }}'s flows\n    permissions: [deployments:execute, flows:read]\n",
    );
    sb.write(
        "template/bots.yaml",
        "teams:\n  platform:\n    description: Platform engineering of {{organization}}\nservice_accounts:\n  ci-bot:\n    description: CI of {{organization}}\n    teams: {platform: deployer}\n    keys:\n      prod: {rotate_every: 30d}\n      staging: {}\n",
    );
    sb.write("template/README.md", "not a config file: not copied\n");
    "template".into()
}

fn org_names(db: &Path) -> Vec<String> {
    open_db(db)
        .prepare("SELECT name FROM organizations ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Every regular file under the sandbox and the identity directory, to show nothing changed.
fn snapshot(sb: &Sandbox) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    sb.files()
}

#[test]
fn two_organizations_from_one_template_apply_each_to_its_own_files() {
    let sb = Sandbox::new();
    let tpl = template(&sb);
    for org in ["acme", "globex"] {
        let out = sb
            .cmd(&[
                "init",
                &format!("orgs/{org}"),
                "--organization",
                org,
                "--from",
                &tpl,
                "--identity-out",
                &format!("ids/{org}.txt"),
            ])
            .run();
        out.ok();
        assert!(out.stdout.contains("organization.yaml"), "{}", out.stdout);
        assert!(out.stdout.contains("-c ."), "{}", out.stdout);
        assert!(!sb.join(&format!("orgs/{org}/README.md")).exists());
        let dir = sb.join(&format!("orgs/{org}"));
        Cmd::new(&dir, &["validate", "-c", "."]).run().ok();
        Cmd::new(&dir, &["apply", "--yes", "-c", "."])
            .now(T0)
            .run()
            .ok();
        // Applied again, it has nothing left to do.
        Cmd::new(&dir, &["plan", "--detailed-exitcode", "-c", "."])
            .now(T0)
            .run()
            .ok();
    }
    for (org, other) in [("acme", "globex"), ("globex", "acme")] {
        let dir = sb.join(&format!("orgs/{org}"));
        let db = dir.join(format!(".svcacct/{org}.db"));
        assert_eq!(org_names(&db), vec![org.to_string()]);
        let description: String = open_db(&db)
            .query_row(
                "SELECT description FROM service_accounts WHERE name = 'ci-bot'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(description, format!("CI of {org}"));
        let identity = sb.join(&format!("ids/{org}.txt"));
        assert_eq!(
            assert_every_key_has_its_file(&db, &dir.join("secrets"), &identity),
            2
        );
        for key in ["prod", "staging"] {
            let file = dir.join(format!("secrets/ci-bot/{key}.age"));
            let payload = age_cli_decrypt(&file, &identity);
            assert_eq!(payload["organization"], org);
            assert!(secret_of(&file, &identity).starts_with("svca_"));
            // Each organization's keys are for its own identity only.
            let foreign = read_identity(&sb.join(&format!("ids/{other}.txt")));
            assert!(crate_decrypt(&file, &foreign).is_err());
        }
        let gitignore = std::fs::read_to_string(dir.join(".gitignore")).unwrap();
        assert!(gitignore.lines().any(|l| l.trim() == ".svcacct/"));
        assert!(
            !gitignore
                .lines()
                .any(|l| !l.starts_with('#') && (l.contains("secrets") || l.contains("age"))),
            "key files are committed: {gitignore}"
        );
        // The CI of examples/github-actions comes along, pointed at the stamped config
        // directory, its steps where the workflows call them.
        let plan_workflow =
            std::fs::read_to_string(dir.join(".github/workflows/svcacct-plan.yml")).unwrap();
        assert!(
            plan_workflow.contains("SVCACCT_CONFIG: ."),
            "{plan_workflow}"
        );
        assert!(
            plan_workflow.contains("SVCACCT_BACKEND_URL"),
            "the CI pins the backend"
        );
        for workflow in ["svcacct-apply.yml", "svcacct-drift.yml"] {
            assert!(dir.join(".github/workflows").join(workflow).is_file());
        }
        for script in [
            "plan.sh",
            "post-comment.sh",
            "fetch-plan.sh",
            "apply.sh",
            "drift.sh",
        ] {
            let text = std::fs::read_to_string(dir.join(".github/svcacct").join(script)).unwrap();
            assert_eq!(
                text,
                std::fs::read_to_string(
                    repo().join("examples/github-actions/scripts").join(script)
                )
                .unwrap()
            );
        }
        // And the action the workflows install svcacct with, where they call it.
        for file in ["action.yml", "install.sh", "run.sh"] {
            let path = std::path::Path::new(".github/actions/svcacct").join(file);
            assert_eq!(
                std::fs::read_to_string(dir.join(&path)).unwrap(),
                std::fs::read_to_string(repo().join(&path)).unwrap()
            );
        }
    }
}

#[test]
fn init_refuses_a_non_empty_dir_or_existing_files_and_writes_nothing() {
    let sb = Sandbox::new();
    let tpl = template(&sb);
    sb.write("taken/svcacct.yaml", "organization: mine\n");
    sb.write("taken/.gitignore", "target/\n");
    sb.write("busy/notes.txt", "mine\n");
    sb.write("stamped/bots.yaml", "# mine\n");
    sb.write("a-file", "mine\n");
    let before = snapshot(&sb);
    let cases: [(&[&str], &str); 4] = [
        (&["init", "taken"], ".gitignore, svcacct.yaml"),
        (&["init", "busy"], "notes.txt"),
        (&["init", "stamped", "--from", &tpl], "bots.yaml"),
        (&["init", "a-file"], "not a directory"),
    ];
    for (args, named) in cases {
        let mut args = args.to_vec();
        args.extend(["--organization", "acme", "--identity-out", "ids/acme.txt"]);
        let out = sb.run(&args);
        out.expect(1);
        assert!(out.stderr.contains(named), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("nothing was written"), "{}", out.stderr);
        assert_eq!(snapshot(&sb), before, "{args:?} changed files");
        assert!(!sb.join("ids").exists());
    }
    // An empty directory is fine.
    std::fs::create_dir(sb.join("empty")).unwrap();
    sb.run(&[
        "init",
        "empty",
        "--organization",
        "acme",
        "--identity-out",
        "ids/acme.txt",
    ])
    .ok();
    assert!(sb.join("empty/svcacct.yaml").is_file());
}

#[test]
fn a_template_that_does_not_validate_writes_nothing() {
    let sb = Sandbox::new();
    let broken = [
        // An undefined team.
        "organization: {{organization}}\nservice_accounts:\n  bot:\n    teams: {platfrom: viewer}\n",
        // A placeholder init does not know.
        "organization: {{org}}\n",
        // A template that takes over the settings init writes.
        "backend:\n  type: local\n",
        // Another organization's name.
        "organization: initech\n",
    ];
    for (i, text) in broken.iter().enumerate() {
        let tpl = format!("bad{i}");
        sb.write(&format!("{tpl}/org.yaml"), text);
        let before = snapshot(&sb);
        let out = sb.run(&[
            "init",
            "new/nested/acme",
            "--organization",
            "acme",
            "--from",
            &tpl,
            "--identity-out",
            "ids/acme.txt",
        ]);
        out.expect(1);
        assert!(out.stderr.contains("nothing was written"), "{}", out.stderr);
        assert!(
            !out.stderr.contains(".svcacct-init-"),
            "errors name DIR, not the staging directory: {}",
            out.stderr
        );
        assert_eq!(snapshot(&sb), before);
        assert!(!sb.join("new").exists(), "no directory is left behind");
        assert!(!sb.join("ids").exists());
    }
    let out = sb.run(&[
        "init",
        "acme",
        "--organization",
        "acme",
        "--from",
        "bad0",
        "--identity-out",
        "ids/acme.txt",
    ]);
    assert!(out.stderr.contains("did you mean `platform`") || out.stderr.contains("platfrom"));
    assert!(out.stderr.contains("acme/org.yaml"), "{}", out.stderr);
}

#[test]
fn the_identity_is_outside_dir_owner_only_and_never_printed() {
    let sb = Sandbox::new();
    let xdg = sb.join("xdg");
    let out = sb
        .cmd(&["init", "acme", "--organization", "acme"])
        .env("XDG_CONFIG_HOME", xdg.to_str().unwrap())
        .run();
    out.ok();
    let identity = xdg.join("svcacct/identities/acme.txt");
    let mode = std::fs::metadata(&identity).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&identity).unwrap();
    let secret = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    assert!(!out.all().contains(secret));
    assert!(!out.all().contains("AGE-SECRET-KEY"));
    // Its path is told once, on stderr, with what to do with it.
    let shown = identity.display().to_string();
    assert_eq!(out.stderr.matches(&shown).count(), 1, "{}", out.stderr);
    assert!(!out.stdout.contains(&shown));
    assert!(out.stderr.contains("keep it safe"), "{}", out.stderr);
    // recipients.txt holds its public half, which the config points at.
    let public = read_identity(&identity).to_public().to_string();
    assert!(sb.read("acme/recipients.txt").contains(&public));
    assert!(
        sb.read("acme/svcacct.yaml")
            .contains("recipients_file: recipients.txt")
    );
    assert!(
        files_under(&sb.join("acme"))
            .values()
            .all(|bytes| !contains_bytes(bytes, secret.as_bytes()))
    );
    // The apply's key file decrypts with it.
    sb.cmd(&["apply", "--yes", "-c", "acme/svcacct.yaml"])
        .now(T0)
        .run()
        .ok();
    assert_eq!(
        age_cli_decrypt(&sb.join("acme/secrets/ci-bot/deploy.age"), &identity)["organization"],
        "acme"
    );

    // Inside DIR (even by way of `..`), or over an existing identity: refused, nothing written.
    let before = snapshot(&sb);
    for (dir, out_path, why) in [
        ("beta", "beta/id.txt", "inside"),
        ("beta", "other/../beta/secrets/id.txt", "inside"),
        ("beta", "xdg/svcacct/identities/acme.txt", "already exists"),
    ] {
        let out = sb.run(&[
            "init",
            dir,
            "--organization",
            "beta",
            "--identity-out",
            out_path,
        ]);
        out.expect(1);
        assert!(out.stderr.contains(why), "{}", out.stderr);
        assert_eq!(snapshot(&sb), before);
    }

    // With recipients given, no identity is made and they are the ones written.
    let demo = std::fs::read_to_string(repo().join("examples/demo-recipients.txt")).unwrap();
    let demo = demo.lines().find(|l| l.starts_with("age1")).unwrap();
    let out = sb
        .cmd(&[
            "init",
            "gamma",
            "--organization",
            "gamma",
            "--recipient",
            demo,
        ])
        .env("XDG_CONFIG_HOME", xdg.to_str().unwrap())
        .run();
    out.ok();
    assert!(!xdg.join("svcacct/identities/gamma.txt").exists());
    assert!(sb.read("gamma/recipients.txt").contains(demo));
    assert!(!out.stderr.contains("identity"), "{}", out.stderr);
    let out = sb.run(&[
        "init",
        "delta",
        "--organization",
        "delta",
        "--recipient",
        "age1nope",
    ]);
    out.expect(1);
    assert!(!sb.join("delta").exists());
}

#[test]
fn http_init_applies_against_a_real_server_and_ci_takes_over_with_its_own_key() {
    let sb = Sandbox::new();
    let server = Server::start(&sb.join("server.db"), Some(T0));
    let out = sb.run(&[
        "init",
        "acme",
        "--organization",
        "acme",
        "--backend",
        "http",
        "--url",
        &server.url,
        "--identity-out",
        "ids/acme.txt",
    ]);
    out.ok();
    let config = sb.read("acme/svcacct.yaml");
    assert!(config.contains("token_env: SVCACCT_TOKEN"), "{config}");
    assert!(config.contains(&server.url), "{config}");
    let identity = sb.join("ids/acme.txt");
    let cfg = "acme/svcacct.yaml";
    sb.run(&["validate", "-c", cfg]).ok();
    // The first apply, with the operator token, mints CI's own managing key.
    sb.cmd(&["apply", "--yes", "-c", cfg])
        .now(T0)
        .env("SVCACCT_TOKEN", OPERATOR)
        .run()
        .ok();
    let ci_key = secret_of(&sb.join("acme/secrets/svcacct-ci/ci.age"), &identity);
    let out = sb
        .cmd(&["verify", "-c", cfg])
        .now(T0)
        .env("SVCACCT_TOKEN", OPERATOR)
        .stdin(format!("{ci_key}\n"))
        .run();
    out.ok();
    let answer = out.json();
    let permissions = answer["permissions"].to_string();
    assert!(permissions.contains("svcacct:manage"), "{answer}");
    // From then on CI needs no operator token: its key plans, and applies the rotations of
    // every key, its own included, which the server's privilege rule allows only because the
    // account holds every permission the config hands out.
    let later = at(40, 0);
    let out = sb
        .cmd(&["apply", "--yes", "-c", cfg])
        .now(&later)
        .env("SVCACCT_TOKEN", &ci_key)
        .run();
    out.ok();
    assert!(out.stdout.contains("2 applied"), "{}", out.stdout);
    assert!(!out.all().contains(&ci_key));
    assert_ne!(
        secret_of(&sb.join("acme/secrets/svcacct-ci/ci.age"), &identity),
        ci_key
    );
    sb.cmd(&["plan", "--detailed-exitcode", "-c", cfg])
        .now(&later)
        .env("SVCACCT_TOKEN", &ci_key)
        .run()
        .ok();

    // A run that pins the server gets a config naming none, which that run validates.
    let out = sb
        .cmd(&[
            "init",
            "pinned",
            "--organization",
            "pinned",
            "--backend",
            "http",
        ])
        .env("SVCACCT_BACKEND_URL", &server.url)
        .env("XDG_CONFIG_HOME", sb.join("xdg").to_str().unwrap())
        .run();
    out.ok();
    assert!(!sb.read("pinned/svcacct.yaml").contains(&server.url));
    sb.cmd(&["validate", "-c", "pinned/svcacct.yaml"])
        .env("SVCACCT_BACKEND_URL", &server.url)
        .run()
        .ok();
    // From a template, CI's account joins the template's roles and teams in organization.yaml.
    let tpl = template(&sb);
    sb.run(&[
        "init",
        "stamped",
        "--organization",
        "stamped",
        "--from",
        &tpl,
        "--backend",
        "http",
        "--url",
        &server.url,
        "--identity-out",
        "ids/stamped.txt",
    ])
    .ok();
    Cmd::new(&sb.join("stamped"), &["validate", "-c", "."])
        .run()
        .ok();
    let settings = sb.read("stamped/organization.yaml");
    assert!(
        settings.contains("permissions: [deployments:execute, flows:read, svcacct:manage]"),
        "{settings}"
    );
    // Without a URL or a pin there is nothing to point at.
    let out = sb.run(&[
        "init",
        "nowhere",
        "--organization",
        "nowhere",
        "--backend",
        "http",
        "--identity-out",
        "ids/nowhere.txt",
    ]);
    out.expect(1);
    assert!(out.stderr.contains("--url"), "{}", out.stderr);
    assert!(!sb.join("nowhere").exists());
}

/// The starter carries a commented default policy that its own config meets, and that
/// catches the first key written without an expiry.
#[test]
fn the_starter_has_a_default_policy_it_meets() {
    let sb = Sandbox::new();
    sb.run(&[
        "init",
        "acme",
        "--organization",
        "acme",
        "--identity-out",
        "ids/acme.txt",
    ])
    .ok();
    let dir = sb.join("acme");
    let out = Cmd::new(&dir, &["validate"]).run();
    out.ok();
    assert!(!out.stderr.contains("policy rule"), "{}", out.stderr);
    let yaml = sb.read("acme/svcacct.yaml");
    for rule in [
        "    - key_max_lifetime: 90d         # every key has an `expires_in` of at most 90 days\n",
        "    - rotation_required: 30d",
        "    - admin_requires_protect: true",
        "      forbid_permission: [\"*:*\", \"secrets:*\"]",
        "    - account_requires_owner: true",
        "    - max_keys_per_account: 5",
    ] {
        assert!(yaml.contains(rule), "{rule} in\n{yaml}");
    }
    sb.write(
        "acme/svcacct.yaml",
        &yaml.replace("        expires_in: 90d ", "        # no expiry "),
    );
    let out = Cmd::new(&dir, &["validate"]).run();
    out.expect(1);
    assert!(
        out.stderr.contains(
            "error: policy rule `key_max_lifetime`: key `ci-bot.deploy` has no `expires_in`; keys must expire within 90d"
        ),
        "{}",
        out.stderr
    );
}

//! Delivery targets and traffic-verified rotation, through the real binary: keys reach a
//! simulated GitHub (which opens every sealed box, so a test compares what the consumer
//! holds with the live key file), files and commands; the plan shows `→ deliver` from the
//! key metadata alone and sends nothing; failures are per target and revoke nothing; a crash
//! at each step converges; no old key is retired before its replacement reached every target;
//! with `verify_traffic` the old key goes once the new one is used.

use serde_json::Value;

use crate::common::*;
use crate::github_sim::GithubSim;

const CFG: &str = "org/svcacct.yaml";
const DB: &str = "org/.svcacct/acme.db";
const KEY: &str = "org/secrets/ci-bot/prod.age";

/// The metadata file of the key `prod`, wherever its name says it is.
fn meta_file(sb: &Sandbox) -> String {
    meta_path(sb, "org/secrets", "ci-bot", "prod")
}
const TOKEN: &str = "ghs_simulatedtoken0123456789";

/// A config whose key `prod` goes to a repository secret and an environment secret.
fn config(backend: &str, key_extra: &str) -> String {
    format!(
        "organization: acme
{backend}secrets:
  recipients_file: ../examples/demo-recipients.txt
teams:
  platform: {{}}
service_accounts:
  ci-bot:
    teams: {{platform: member}}
    keys:
      prod:
        rotate_every: 30d
        overlap: 1d
{key_extra}        deliver:
          - github_actions: {{repository: acme/deploy, secret: SVCACCT_KEY}}
          - github_actions: {{repository: acme/deploy, environment: prod, secret: KEY}}
"
    )
}

fn sim() -> GithubSim {
    let sim = GithubSim::start(TOKEN);
    sim.add_repo("acme/deploy");
    sim.add_environment("acme/deploy", "prod");
    sim
}

/// `svcacct <args>` at `now`, pointed at the simulator with its token.
fn run(sb: &Sandbox, sim: &GithubSim, args: &[&str], now: &str) -> Out {
    sb.cmd(args)
        .now(now)
        .env("SVCACCT_GITHUB_API_URL", sim.url())
        .env("SVCACCT_GITHUB_TOKEN", TOKEN)
        .env("SVCACCT_TEST_TOKEN", OPERATOR)
        .run()
}

fn actions(plan: &Value) -> Vec<(String, String)> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["address"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn plan_json(sb: &Sandbox, sim: &GithubSim, now: &str) -> Value {
    let out = run(sb, sim, &["plan", "--format", "json", "-c", CFG], now);
    out.ok();
    serde_json::from_str(&out.stdout).unwrap()
}

/// Both targets hold exactly the secret the key file holds.
#[track_caller]
fn consumers_hold_the_live_key(sb: &Sandbox, sim: &GithubSim, identity: &std::path::Path) {
    let live = secret_of(&sb.join(KEY), identity);
    assert_eq!(
        sim.secret_text("acme/deploy", None, "SVCACCT_KEY")
            .as_deref(),
        Some(live.as_str())
    );
    assert_eq!(
        sim.secret_text("acme/deploy", Some("prod"), "KEY")
            .as_deref(),
        Some(live.as_str())
    );
}

#[test]
fn apply_delivers_new_keys_to_github_and_rotation_delivers_the_new_one() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    let sim = sim();
    sb.write(CFG, &config("", ""));

    // The plan says where the new key goes, and sends nothing anywhere.
    let plan = plan_json(&sb, &sim, T0);
    assert!(actions(&plan).contains(&("key.ci-bot.prod".into(), "deliver".into())));
    let text = run(&sb, &sim, &["plan", "-c", CFG], T0).stdout;
    assert!(
        text.contains("→ key.ci-bot.prod (deliver): the new key to github_actions:acme/deploy:SVCACCT_KEY, github_actions:acme/deploy/environments/prod:KEY"),
        "{text}"
    );
    assert!(
        sim.requests().is_empty(),
        "a plan sends nothing: {:?}",
        sim.requests()
    );

    // Apply: no identity needed, the new key is in memory.
    let out = run(&sb, &sim, &["apply", "--yes", "-c", CFG], T0);
    out.ok();
    assert!(
        out.stdout.contains("Delivery complete: 2 delivered"),
        "{out:?}"
    );
    consumers_hold_the_live_key(&sb, &sim, &identity);
    // GitHub's contract: public key first, then the PUT with its key id.
    assert_eq!(
        sim.requests(),
        vec![
            "GET /repos/acme/deploy/actions/secrets/public-key",
            "PUT /repos/acme/deploy/actions/secrets/SVCACCT_KEY",
            "GET /repos/acme/deploy/environments/prod/secrets/public-key",
            "PUT /repos/acme/deploy/environments/prod/secrets/KEY",
        ]
    );

    // The metadata records who holds which key, never the secret.
    let live = secret_of(&sb.join(KEY), &identity);
    let meta: Value = serde_json::from_str(&sb.read(&meta_file(&sb))).unwrap();
    assert_eq!(meta["delivered"].as_array().unwrap().len(), 2, "{meta:#}");
    assert_eq!(meta["delivered"][0]["key_id"], meta["key_id"]);
    for f in files_under(&sb.join("org")).values() {
        assert!(
            !contains_bytes(f, live.as_bytes()),
            "no plaintext secret in any file"
        );
    }
    assert!(!out.stdout.contains(&live) && !out.stderr.contains(&live));

    // Nothing left to do.
    run(&sb, &sim, &["plan", "--detailed-exitcode", "-c", CFG], T0).expect(0);

    // Rotation: the new key is delivered in the same apply; the old one keeps working.
    let rotate_at = at(31, 0);
    let plan = plan_json(&sb, &sim, &rotate_at);
    assert_eq!(
        actions(&plan),
        vec![
            ("key.ci-bot.prod".to_string(), "rotate".to_string()),
            ("key.ci-bot.prod".to_string(), "deliver".to_string())
        ]
    );
    run(&sb, &sim, &["apply", "--yes", "-c", CFG], &rotate_at).ok();
    let new = secret_of(&sb.join(KEY), &identity);
    assert_ne!(new, live);
    consumers_hold_the_live_key(&sb, &sim, &identity);
    assert_eq!(
        sim.secret("acme/deploy", None, "SVCACCT_KEY")
            .unwrap()
            .writes,
        2
    );

    // After the overlap: the old key is retired; nothing to deliver.
    let plan = plan_json(&sb, &sim, &at(32, 1));
    assert_eq!(
        actions(&plan),
        vec![("key.ci-bot.prod".to_string(), "retire".to_string())]
    );
}

#[test]
fn a_failed_target_is_reported_revokes_nothing_and_the_next_apply_delivers_from_the_key_file() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    let sim = sim();
    sb.write(CFG, &config("", ""));
    run(&sb, &sim, &["apply", "--yes", "-c", CFG], T0).ok();
    let first = secret_of(&sb.join(KEY), &identity);

    // GitHub is down during the rotation: the key rotates, delivery fails per target.
    sim.set_outage(Some(503));
    let rotate_at = at(31, 0);
    let out = run(&sb, &sim, &["apply", "--yes", "-c", CFG], &rotate_at);
    out.expect(1);
    assert!(
        out.stdout
            .contains("Delivery incomplete: 0 delivered, 2 failed"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains(
            "failed  key.ci-bot.prod to github_actions:acme/deploy:SVCACCT_KEY: GitHub answered 503"
        ),
        "{out:?}"
    );
    sim.set_outage(None);
    let second = secret_of(&sb.join(KEY), &identity);
    assert_ne!(first, second);
    assert_eq!(
        sim.secret_text("acme/deploy", None, "SVCACCT_KEY")
            .as_deref(),
        Some(first.as_str()),
        "the consumer still holds the old key"
    );

    // Past the overlap, the old key is still not retired: its replacement never arrived.
    let later = at(33, 0);
    let plan = plan_json(&sb, &sim, &later);
    assert_eq!(
        actions(&plan),
        vec![("key.ci-bot.prod".to_string(), "deliver".to_string())]
    );
    let notes = plan["notes"].to_string();
    assert!(
        notes.contains("retired once every delivery target holds the new key"),
        "{notes}"
    );
    // The backend still bounds the old key by its overlap: the plan says consumers fail.
    let warnings = plan["warnings"].to_string();
    assert!(
        warnings.contains("has not reached every delivery target"),
        "{warnings}"
    );
    let (code, v) = sb.verify(CFG, &first, &at(31, 12));
    assert_eq!(
        (code, &v["valid"]),
        (0, &Value::Bool(true)),
        "inside the overlap the old key works: {v}"
    );

    // Without an identity, the apply says what it needs and changes nothing.
    let out = run(&sb, &sim, &["apply", "--yes", "-c", CFG], &later);
    out.expect(1);
    assert!(out.stdout.contains("needs an identity"), "{out:?}");

    // With one (as CI passes it), it delivers from the age file.
    let out = sb
        .cmd(&["apply", "--yes", "-c", CFG])
        .now(&later)
        .env("SVCACCT_GITHUB_API_URL", sim.url())
        .env("SVCACCT_GITHUB_TOKEN", TOKEN)
        .env("SVCACCT_IDENTITY_FILE", identity.to_str().unwrap())
        .run();
    out.ok();
    consumers_hold_the_live_key(&sb, &sim, &identity);

    // Only now is the old key retired.
    let plan = plan_json(&sb, &sim, &later);
    assert_eq!(
        actions(&plan),
        vec![("key.ci-bot.prod".to_string(), "retire".to_string())]
    );
}

#[test]
fn a_wrong_token_or_an_unknown_repository_fails_that_target_only() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    let sim = GithubSim::start(TOKEN);
    sim.add_repo("acme/deploy"); // no `prod` environment
    sb.write(CFG, &config("", ""));
    let out = run(&sb, &sim, &["apply", "--yes", "-c", CFG], T0);
    out.expect(1);
    assert!(
        out.stdout
            .contains("Delivery incomplete: 1 delivered, 1 failed"),
        "{out:?}"
    );
    assert!(out.stdout.contains("GitHub answered 404"), "{out:?}");
    assert_eq!(
        sim.secret_text("acme/deploy", None, "SVCACCT_KEY"),
        Some(secret_of(&sb.join(KEY), &identity))
    );
    // Only the missing target is planned.
    let plan = plan_json(&sb, &sim, T0);
    let reason = plan["changes"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("environments/prod:KEY") && !reason.contains(":SVCACCT_KEY"),
        "{reason}"
    );

    // A bad token: 401, and the token never shows.
    sim.add_environment("acme/deploy", "prod");
    let out = sb
        .cmd(&[
            "apply",
            "--yes",
            "-c",
            CFG,
            "-i",
            identity.to_str().unwrap(),
        ])
        .now(T0)
        .env("SVCACCT_GITHUB_API_URL", sim.url())
        .env("SVCACCT_GITHUB_TOKEN", "ghs_wrong_token_value")
        .run();
    out.expect(1);
    assert!(out.stdout.contains("GitHub answered 401"), "{out:?}");
    assert!(!out.all().contains("ghs_wrong_token_value"));
}

#[test]
fn svcacct_deliver_sends_the_live_key_again_to_a_consumer_that_lost_it() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    let sim = sim();
    sb.write(CFG, &config("", ""));
    run(&sb, &sim, &["apply", "--yes", "-c", CFG], T0).ok();
    // The consumer lost its secret: a fresh simulator.
    let sim = self::sim();
    let out = run(
        &sb,
        &sim,
        &[
            "deliver",
            "key.ci-bot.prod",
            "-c",
            CFG,
            "-i",
            identity.to_str().unwrap(),
        ],
        T0,
    );
    out.ok();
    assert!(
        out.stdout.contains("Delivery complete: 2 delivered"),
        "{out:?}"
    );
    consumers_hold_the_live_key(&sb, &sim, &identity);

    // A key without targets is refused by name.
    let out = run(&sb, &sim, &["deliver", "key.ci-bot.nope", "-c", CFG], T0);
    out.expect(1);
    assert!(
        out.stderr.contains("not a key with delivery targets"),
        "{out:?}"
    );
}

#[test]
fn file_and_command_targets_need_the_job_s_pin_and_get_the_secret_on_stdin_only() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("ci-bot.key");
    let captured = outside.path().join("captured");
    sb.write(
        "org/push.sh",
        &format!(
            "#!/bin/sh\ncat > {}\nprintf '%s %s' \"$*\" \"$SVCACCT_DELIVER_KEY_ID\" > {}.args\n",
            captured.display(),
            captured.display()
        ),
    );
    std::fs::set_permissions(
        sb.join("org/push.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    sb.write(
        CFG,
        &format!(
            "organization: acme
secrets:
  recipients_file: ../examples/demo-recipients.txt
service_accounts:
  ci-bot:
    admin: true
    keys:
      prod:
        deliver:
          - file: {{path: {}, mode: \"0640\"}}
          - command: {{run: [./push.sh, --flag]}}
",
            target.display()
        ),
    );
    // Without pins: both targets refused, the key still issued and its file written.
    let out = sb.cmd(&["apply", "--yes", "-c", CFG]).now(T0).run();
    out.expect(1);
    assert!(out.stdout.contains("--allow-deliver-path"), "{out:?}");
    assert!(out.stdout.contains("--allow-deliver-command"), "{out:?}");
    assert!(!target.exists() && !captured.exists());

    let out = sb
        .cmd(&[
            "apply",
            "--yes",
            "-c",
            CFG,
            "-i",
            identity.to_str().unwrap(),
        ])
        .now(T0)
        .env(
            "SVCACCT_ALLOW_DELIVER_PATH",
            outside.path().to_str().unwrap(),
        )
        .env("SVCACCT_ALLOW_DELIVER_COMMAND", "./push.sh")
        .run();
    out.ok();
    let live = secret_of(&sb.join(KEY), &identity);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), live);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert_eq!(std::fs::read_to_string(&captured).unwrap(), live);
    let args = std::fs::read_to_string(format!("{}.args", captured.display())).unwrap();
    assert!(
        args.starts_with("--flag key_"),
        "argv and env carry the key id only: {args}"
    );
    assert!(!args.contains(&live));
}

#[test]
fn bad_targets_are_validate_errors_at_their_place() {
    let sb = Sandbox::new();
    demo_files(&sb);
    let cases = [
        ("- s3: {bucket: x}", "unknown variant `s3`"),
        (
            "- github_actions: {repository: deploy, secret: KEY}",
            "GitHub repository `deploy` is not `owner/name`",
        ),
        (
            "- github_actions: {repository: acme/deploy, secret: GITHUB_KEY}",
            "is not a GitHub Actions secret name",
        ),
        (
            "- file: {path: secrets/plain.txt}",
            "must be an absolute path outside",
        ),
        (
            "- command: {run: ./push-key.sh --all}",
            "`run` must be an argv list",
        ),
        (
            "- github_actions: {repository: acme/deploy, secret: K, token_env: AWS_SECRET_ACCESS_KEY}",
            "token_env `AWS_SECRET_ACCESS_KEY` is not allowed",
        ),
    ];
    for (target, message) in cases {
        sb.write(
            CFG,
            &format!(
                "organization: acme
secrets:
  recipients_file: ../examples/demo-recipients.txt
service_accounts:
  ci-bot:
    admin: true
    keys:
      prod:
        deliver:
          {target}
"
            ),
        );
        let out = sb.run(&["validate", "-c", CFG]);
        out.expect(1);
        assert!(out.stderr.contains(message), "{target}: {}", out.stderr);
        assert!(
            out.stderr.contains("svcacct.yaml:10:"),
            "{target}: a location: {}",
            out.stderr
        );
    }
    // A file inside the config's tree, by absolute path.
    let inside = sb.join("org/plain.txt");
    sb.write(
        CFG,
        &format!(
            "organization: acme
secrets:
  recipients_file: ../examples/demo-recipients.txt
service_accounts:
  ci-bot:
    admin: true
    keys:
      prod:
        deliver:
          - file: {{path: {}}}
",
            inside.display()
        ),
    );
    let out = sb.run(&["validate", "-c", CFG]);
    out.expect(1);
    assert!(
        out.stderr.contains("is inside the config's directory tree"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("svcacct.yaml:10:"), "{}", out.stderr);
}

/// Marks the current key of `ci-bot/prod` used at `t` in the organization file.
fn used_at(sb: &Sandbox, t: &str) {
    use time::format_description::well_known::Rfc3339;
    let secs = time::OffsetDateTime::parse(t, &Rfc3339)
        .unwrap()
        .unix_timestamp();
    let db = open_db_rw(&sb.join(DB));
    db.execute(
        "UPDATE api_keys SET last_used_at = ?1 WHERE name = 'prod' AND retires_at IS NULL AND revoked_at IS NULL",
        [secs],
    )
    .unwrap();
}

#[test]
fn verify_traffic_retires_the_old_key_once_the_new_one_is_used() {
    let sb = Sandbox::new();
    demo_files(&sb);
    let sim = sim();
    sb.write(CFG, &config("", "        verify_traffic: true\n"));
    run(&sb, &sim, &["apply", "--yes", "-c", CFG], T0).ok();
    run(&sb, &sim, &["apply", "--yes", "-c", CFG], &at(31, 0)).ok();

    // Not used yet: the plan says what it waits for.
    let plan = plan_json(&sb, &sim, &at(31, 3));
    assert_eq!(actions(&plan), vec![]);
    let notes = plan["notes"].to_string();
    assert!(
        notes.contains(
            "waiting for the new key's first use (rotated 3 h ago; overlap ends in 21 h)"
        ),
        "{notes}"
    );

    // In use: retire now, before the overlap ends.
    used_at(&sb, &at(31, 2));
    let plan = plan_json(&sb, &sim, &at(31, 3));
    assert_eq!(
        actions(&plan),
        vec![("key.ci-bot.prod".to_string(), "retire".to_string())]
    );
    let reason = plan["changes"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("new key in use since 2026-02-01 02:00 UTC: retire the old one"),
        "{reason}"
    );
    run(&sb, &sim, &["apply", "--yes", "-c", CFG], &at(31, 3)).ok();
    run(
        &sb,
        &sim,
        &["plan", "--detailed-exitcode", "-c", CFG],
        &at(31, 4),
    )
    .expect(0);
}

#[test]
fn verify_traffic_warns_loudly_when_the_overlap_ends_without_any_use() {
    let sb = Sandbox::new();
    demo_files(&sb);
    let sim = sim();
    sb.write(CFG, &config("", "        verify_traffic: true\n"));
    run(&sb, &sim, &["apply", "--yes", "-c", CFG], T0).ok();
    run(&sb, &sim, &["apply", "--yes", "-c", CFG], &at(31, 0)).ok();
    let later = at(32, 1);
    let plan = plan_json(&sb, &sim, &later);
    assert_eq!(
        actions(&plan),
        vec![("key.ci-bot.prod".to_string(), "retire".to_string())]
    );
    let warnings = plan["warnings"].to_string();
    assert!(warnings.contains("the consumer never switched"), "{plan:#}");
    let text = run(&sb, &sim, &["plan", "-c", CFG], &later).stdout;
    assert!(
        text.contains("WARNING: key.ci-bot.prod: the overlap ended and the new key"),
        "{text}"
    );
    let md = run(
        &sb,
        &sim,
        &["plan", "--format", "markdown", "-c", CFG],
        &later,
    )
    .stdout;
    assert!(
        md.contains("> [!WARNING]") && md.contains("never switched"),
        "{md}"
    );
}

#[test]
fn verify_traffic_is_refused_where_the_backend_records_no_key_use() {
    let sb = Sandbox::new();
    demo_files(&sb);
    sb.write(
        CFG,
        &config(
            "backend:\n  type: prefect\n  account_id: 00000000-0000-0000-0000-000000000000\n  url: http://127.0.0.1:9/api\n  ledger_workspace: ops\n",
            "        verify_traffic: true\n",
        ),
    );
    let out = sb.run(&["validate", "-c", CFG]);
    out.expect(1);
    assert!(
        out.stderr.contains("does not record when a key is used"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("svcacct.yaml:18:25"), "{}", out.stderr);
    // Without an overlap there is nothing to wait for: a warning.
    sb.write(
        CFG,
        &config("", "        verify_traffic: true\n").replace("        overlap: 1d\n", ""),
    );
    let out = sb.run(&["validate", "-c", CFG]);
    out.ok();
    assert!(
        out.stderr
            .contains("`verify_traffic` has nothing to wait for"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_crash_after_a_target_acknowledged_converges_and_retires_nothing_early() {
    let sb = Sandbox::new();
    crash_mid_delivery(&sb, "");
}

#[test]
fn a_crash_mid_delivery_converges_on_the_http_backend_too() {
    let sb = Sandbox::new();
    let server = Server::start(&sb.join("server.db"), Some(&at(31, 0)));
    crash_mid_delivery(
        &sb,
        &format!(
            "backend:\n  type: http\n  url: {}\n  token_env: SVCACCT_TEST_TOKEN\n",
            server.url
        ),
    );
}

/// Kills a rotation's apply right after the first of two targets acknowledged the new key,
/// then checks the next plans and applies converge without retiring anything early.
fn crash_mid_delivery(sb: &Sandbox, backend: &str) {
    let identity = demo_files(sb);
    let sim = sim();
    sb.write(CFG, &config(backend, ""));
    run(sb, &sim, &["apply", "--yes", "-c", CFG], T0).ok();
    let old = secret_of(&sb.join(KEY), &identity);

    // Rotation dies right after the first target acknowledged the new key.
    let rotate_at = at(31, 0);
    let out = sb
        .cmd(&["apply", "--yes", "-c", CFG])
        .now(&rotate_at)
        .env("SVCACCT_GITHUB_API_URL", sim.url())
        .env("SVCACCT_GITHUB_TOKEN", TOKEN)
        .env("SVCACCT_TEST_TOKEN", OPERATOR)
        .fault("SVCACCT_TEST_ABORT_AFTER_DELIVERIES", "1")
        .run();
    assert_eq!(out.signal, Some(6), "{out:?}");
    let new = secret_of(&sb.join(KEY), &identity);
    assert_ne!(old, new);
    assert_eq!(
        sim.secret_text("acme/deploy", None, "SVCACCT_KEY"),
        Some(new.clone())
    );
    assert_eq!(
        sim.secret_text("acme/deploy", Some("prod"), "KEY"),
        Some(old.clone()),
        "the second target still holds the old key, which still works"
    );

    // Past the overlap: deliver (both: the first acknowledgement was never recorded), no retire.
    let later = at(33, 0);
    let plan = plan_json(sb, &sim, &later);
    assert_eq!(
        actions(&plan),
        vec![("key.ci-bot.prod".to_string(), "deliver".to_string())]
    );
    let out = run(
        sb,
        &sim,
        &[
            "apply",
            "--yes",
            "-c",
            CFG,
            "-i",
            identity.to_str().unwrap(),
        ],
        &later,
    );
    out.ok();
    consumers_hold_the_live_key(sb, &sim, &identity);
    run(sb, &sim, &["apply", "--yes", "-c", CFG], &later).ok();
    run(
        sb,
        &sim,
        &["plan", "--detailed-exitcode", "-c", CFG],
        &later,
    )
    .expect(0);
}

#[test]
fn a_crash_after_the_mint_converges_on_the_next_apply() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    let sim = sim();
    sb.write(CFG, &config("", ""));
    let out = sb
        .cmd(&["apply", "--yes", "-c", CFG])
        .now(T0)
        .env("SVCACCT_GITHUB_API_URL", sim.url())
        .env("SVCACCT_GITHUB_TOKEN", TOKEN)
        .fault("SVCACCT_TEST_ABORT_AFTER_REGISTER", "1")
        .run();
    assert_eq!(out.signal, Some(6), "{out:?}");
    assert!(sim.requests().is_empty());
    // The key is live; the next apply moves its file into place and delivers it from there.
    let out = run(
        &sb,
        &sim,
        &[
            "apply",
            "--yes",
            "-c",
            CFG,
            "-i",
            identity.to_str().unwrap(),
        ],
        T0,
    );
    out.ok();
    consumers_hold_the_live_key(&sb, &sim, &identity);
    run(&sb, &sim, &["plan", "--detailed-exitcode", "-c", CFG], T0).expect(0);
}

#[test]
fn delivery_works_on_the_http_backend_too() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    let sim = sim();
    let server = Server::start(&sb.join("server.db"), Some(&at(31, 5)));
    let backend = format!(
        "backend:\n  type: http\n  url: {}\n  token_env: SVCACCT_TEST_TOKEN\n",
        server.url
    );
    sb.write(CFG, &config(&backend, "        verify_traffic: true\n"));
    run(&sb, &sim, &["apply", "--yes", "-c", CFG], T0).ok();
    consumers_hold_the_live_key(&sb, &sim, &identity);
    run(&sb, &sim, &["apply", "--yes", "-c", CFG], &at(31, 0)).ok();
    consumers_hold_the_live_key(&sb, &sim, &identity);
    let plan = plan_json(&sb, &sim, &at(31, 3));
    assert!(
        plan["notes"]
            .to_string()
            .contains("waiting for the new key's first use"),
        "{plan:#}"
    );

    // Real traffic on the new key: the server records its use, and the old key is retired.
    let live = secret_of(&sb.join(KEY), &identity);
    let v: Value = reqwest::blocking::Client::new()
        .post(format!("{}/v1/keys/verify", server.url))
        .bearer_auth(&live)
        .json(&serde_json::json!({ "key": live }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["valid"], true, "{v:#}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let plan = plan_json(&sb, &sim, &at(31, 6));
        if actions(&plan) == vec![("key.ci-bot.prod".to_string(), "retire".to_string())] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the use never showed: {plan:#}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    run(&sb, &sim, &["apply", "--yes", "-c", CFG], &at(31, 6)).ok();
}

#[test]
fn a_crash_before_the_retire_converges_and_the_consumers_keep_the_live_key() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    let sim = sim();
    sb.write(CFG, &config("", "        verify_traffic: true\n"));
    run(&sb, &sim, &["apply", "--yes", "-c", CFG], T0).ok();
    let old = secret_of(&sb.join(KEY), &identity);
    run(&sb, &sim, &["apply", "--yes", "-c", CFG], &at(31, 0)).ok();
    used_at(&sb, &at(31, 1));

    // The apply that retires the old key dies just before the revocation.
    let out = sb
        .cmd(&["apply", "--yes", "-c", CFG])
        .now(&at(31, 2))
        .env("SVCACCT_GITHUB_API_URL", sim.url())
        .env("SVCACCT_GITHUB_TOKEN", TOKEN)
        .fault("SVCACCT_TEST_ABORT_BEFORE_REVOCATION", "1")
        .run();
    assert_eq!(out.signal, Some(6), "{out:?}");
    let (code, _) = sb.verify(CFG, &old, &at(31, 2));
    assert_eq!(code, 0, "the old key still works");
    consumers_hold_the_live_key(&sb, &sim, &identity);

    // The next apply retires it; the consumers hold the live key throughout.
    let plan = plan_json(&sb, &sim, &at(31, 3));
    assert_eq!(
        actions(&plan),
        vec![("key.ci-bot.prod".to_string(), "retire".to_string())]
    );
    run(&sb, &sim, &["apply", "--yes", "-c", CFG], &at(31, 3)).ok();
    let (code, v) = sb.verify(CFG, &old, &at(31, 3));
    assert_eq!((code, v["reason"].as_str()), (1, Some("revoked")), "{v}");
    consumers_hold_the_live_key(&sb, &sim, &identity);
    run(
        &sb,
        &sim,
        &["plan", "--detailed-exitcode", "-c", CFG],
        &at(31, 4),
    )
    .expect(0);
}

#[test]
fn rotate_and_a_saved_plan_deliver_too() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    let sim = sim();
    sb.write(CFG, &config("", ""));

    // A saved plan carries its deliveries; applying it delivers.
    run(&sb, &sim, &["plan", "--out", "plan.json", "-c", CFG], T0).ok();
    let saved = sb.read("plan.json");
    assert!(saved.contains("\"deliver\""), "{saved}");
    run(&sb, &sim, &["apply", "plan.json", "-c", CFG], T0).ok();
    consumers_hold_the_live_key(&sb, &sim, &identity);
    let live = secret_of(&sb.join(KEY), &identity);
    assert!(!sb.read("plan.json").contains(&live));
    assert!(!sb.read(&meta_file(&sb)).contains(&live));

    // `svcacct rotate` delivers the new key from memory.
    let before = secret_of(&sb.join(KEY), &identity);
    let out = run(
        &sb,
        &sim,
        &["rotate", "key.ci-bot.prod", "--yes", "-c", CFG],
        &at(1, 0),
    );
    out.ok();
    assert!(
        out.stdout.contains("Delivery complete: 2 delivered"),
        "{out:?}"
    );
    assert_ne!(secret_of(&sb.join(KEY), &identity), before);
    consumers_hold_the_live_key(&sb, &sim, &identity);
}

#[test]
fn a_flaky_github_is_retried() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    let sim = sim();
    sb.write(CFG, &config("", ""));
    sim.fail_next(3);
    run(&sb, &sim, &["apply", "--yes", "-c", CFG], T0).ok();
    consumers_hold_the_live_key(&sb, &sim, &identity);
    assert_eq!(
        sim.requests().len(),
        7,
        "3 answered 502, then 4: {:?}",
        sim.requests()
    );
}

#[test]
fn a_server_minted_key_is_delivered_the_moment_it_arrives() {
    use crate::prefect_sim::{PrefectSim, SimOptions};
    let prefect = PrefectSim::start(SimOptions::default());
    prefect.add_workspace("ops");
    prefect.add_workspace("data-eng");
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    let sim = sim();
    sb.write(
        CFG,
        &format!(
            "organization: acme
backend:
  type: prefect
  account_id: {}
  url: {}
  ledger_workspace: ops
secrets:
  recipients_file: ../examples/demo-recipients.txt
teams:
  data-eng: {{}}
service_accounts:
  ci-bot:
    teams: {{data-eng: Viewer}}
    keys:
      prod:
        deliver:
          - github_actions: {{repository: acme/deploy, secret: SVCACCT_KEY}}
",
            prefect.account_id(),
            prefect.url()
        ),
    );
    let now = prefect
        .now()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    // Through a saved plan: Prefect has no revision, so its objects are checked one by one,
    // and a delivery is no backend object.
    let run = |args: &[&str]| {
        sb.cmd(args)
            .now(&now)
            .env("PREFECT_API_KEY", &prefect.token())
            .env("SVCACCT_GITHUB_API_URL", sim.url())
            .env("SVCACCT_GITHUB_TOKEN", TOKEN)
            .run()
    };
    run(&["plan", "--out", "plan.json", "-c", CFG]).ok();
    run(&["apply", "plan.json", "-c", CFG]).ok();
    let live = secret_of(&sb.join(KEY), &identity);
    assert!(live.starts_with("pnb_"), "Prefect minted it");
    assert_eq!(
        sim.secret_text("acme/deploy", None, "SVCACCT_KEY"),
        Some(live)
    );
}

#[test]
fn reencrypting_a_key_file_keeps_what_its_targets_acknowledged() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    let sim = sim();
    sb.write(CFG, &config("", ""));
    run(&sb, &sim, &["apply", "--yes", "-c", CFG], T0).ok();
    let before: Value = serde_json::from_str(&sb.read(&meta_file(&sb))).unwrap();
    let other = age::x25519::Identity::generate().to_public();
    let recipients = sb.join("examples/demo-recipients.txt");
    let mut text = std::fs::read_to_string(&recipients).unwrap();
    text.push_str(&format!("{other}\n"));
    std::fs::write(&recipients, text).unwrap();
    sb.cmd(&[
        "secrets",
        "reencrypt",
        "-i",
        identity.to_str().unwrap(),
        "-c",
        CFG,
    ])
    .now(T0)
    .run()
    .ok();
    let meta: Value = serde_json::from_str(&sb.read(&meta_file(&sb))).unwrap();
    assert_ne!(meta["recipients"], before["recipients"], "re-encrypted");
    assert_eq!(meta["delivered"], before["delivered"], "{meta:#}");
    run(&sb, &sim, &["plan", "--detailed-exitcode", "-c", CFG], T0).expect(0);
}

#[test]
fn a_github_enterprise_api_url_with_a_path_is_pinned_by_the_job() {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    let sim = sim();
    sb.write(CFG, &config("", ""));
    let ghe = format!("{}/api/v3/", sim.url());
    let out = sb
        .cmd(&["--github-api-url", &ghe, "apply", "--yes", "-c", CFG])
        .now(T0)
        .env("SVCACCT_GITHUB_TOKEN", TOKEN)
        .run();
    out.ok();
    // Only `/api/v3/repos/…` reached the simulator's nested routes.
    consumers_hold_the_live_key(&sb, &sim, &identity);
}

//! Policy rules: every rule kind on a config that passes and one that violates it, with the
//! exact message and `file:line:column`; rules checked themselves; exceptions shown in every
//! plan format; exit codes of validate, plan and apply; the effective-permission rule caught
//! through a role edit; `policy explain`.

use crate::common::*;

/// The rest of a config that passes every rule below.
const BODY: &str = "roles:
  deployer:
    permissions: [deployments:read, deployments:execute]
teams:
  platform:
    description: Platform
  data:
    description: Data
service_accounts:
  ci-bot:
    owner: platform
    teams: {platform: deployer}
    keys:
      prod:
        expires_in: 30d
        rotate_every: 7d
        scopes: [deployments:execute]
";

/// A config with `rules` (YAML list items, indented under `rules:`) and `body`.
fn config(rules: &str, body: &str) -> String {
    format!(
        "organization: acme
secrets:
  recipients_file: ../examples/demo-recipients.txt
policy:
  rules:
{rules}{body}"
    )
}

/// The 1-based line and column where the `nth` (0-based) occurrence of `needle` starts.
fn place(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    let offset = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("`{needle}` is not in the config"))
        .0;
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// A sandbox with the demo recipients and `text` at `org/svcacct.yaml`.
fn sandbox(text: &str) -> Sandbox {
    let sb = Sandbox::new();
    demo_files(&sb);
    sb.write("org/svcacct.yaml", text);
    sb
}

/// `validate` passes with no policy finding at all.
#[track_caller]
fn passes(rules: &str, body: &str) {
    let sb = sandbox(&config(rules, body));
    let out = sb.run(&["validate", "-c", "org"]);
    out.ok();
    assert!(
        !out.stderr.contains("policy rule"),
        "no violation:\n{}",
        out.stderr
    );
}

/// `validate` exits 1 with exactly this violation of `rule` at the `nth` `needle`.
#[track_caller]
fn violates(rules: &str, body: &str, rule: &str, message: &str, needle: &str, nth: usize) {
    let text = config(rules, body);
    let (line, column) = place(&text, needle, nth);
    let sb = sandbox(&text);
    let out = sb.run(&["validate", "-c", "org"]);
    out.expect(1);
    let pad = " ".repeat(line.to_string().len());
    let want = format!(
        "error: policy rule `{rule}`: {message}\n{pad}--> org/svcacct.yaml:{line}:{column}\n"
    );
    assert!(
        out.stderr.contains(&want),
        "wanted\n{want}\nin\n{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("error: the config violates its policy: "),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "not valid: {}", out.stdout);
}

#[test]
fn key_max_lifetime() {
    let rules = "    - key_max_lifetime: 90d\n";
    passes(rules, BODY);
    violates(
        rules,
        &BODY.replace("expires_in: 30d", "expires_in: 180d"),
        "key_max_lifetime",
        "key `ci-bot.prod` expires in 180d, longer than 90d",
        "180d",
        0,
    );
    violates(
        rules,
        &BODY.replace("        expires_in: 30d\n", ""),
        "key_max_lifetime",
        "key `ci-bot.prod` has no `expires_in`; keys must expire within 90d",
        "prod:",
        0,
    );
}

#[test]
fn rotation_required() {
    let rules = "    - rotation_required: 30d\n";
    passes(rules, BODY);
    violates(
        rules,
        &BODY.replace("rotate_every: 7d", "rotate_every: 60d"),
        "rotation_required",
        "key `ci-bot.prod` rotates every 60d, less often than every 30d",
        "60d",
        0,
    );
    violates(
        rules,
        &BODY.replace("        rotate_every: 7d\n", ""),
        "rotation_required",
        "key `ci-bot.prod` has no `rotate_every`; keys must rotate at least every 30d",
        "prod:",
        0,
    );
}

#[test]
fn admin_requires_protect() {
    let rules = "    - admin_requires_protect: true\n";
    let admin = BODY.replace(
        "    owner: platform\n",
        "    owner: platform\n    admin: true\n",
    );
    passes(
        rules,
        &admin.replace("    admin: true\n", "    admin: true\n    protect: true\n"),
    );
    violates(
        rules,
        &admin,
        "admin_requires_protect",
        "service account `ci-bot` holds every permission (through `admin: true`) but is not protected",
        "ci-bot:",
        0,
    );
    // The built-in admin role is every permission too.
    violates(
        rules,
        &BODY.replace("{platform: deployer}", "{platform: admin}"),
        "admin_requires_protect",
        "service account `ci-bot` holds every permission (through built-in role `admin` in team `platform`) but is not protected",
        "ci-bot:",
        0,
    );
}

#[test]
fn no_wildcard_permissions() {
    let rules = "    - no_wildcard_permissions: { allow: [\"*:read\"] }\n";
    // A built-in role granting only the allowed wildcard passes.
    passes(
        rules,
        &BODY.replace("{platform: deployer}", "{platform: deployer, data: viewer}"),
    );
    violates(
        rules,
        &BODY.replace("deployments:execute]\nteams", "deployments:*]\nteams"),
        "no_wildcard_permissions",
        "role `deployer` grants wildcard permission `deployments:*`",
        "deployments:*",
        0,
    );
    violates(
        rules,
        &BODY.replace("scopes: [deployments:execute]", "scopes: [\"*:execute\"]"),
        "no_wildcard_permissions",
        "key `ci-bot.prod` is scoped to wildcard permission `*:execute`",
        "\"*:execute\"",
        0,
    );
    violates(
        rules,
        &BODY.replace("{platform: deployer}", "{platform: member}"),
        "no_wildcard_permissions",
        "service account `ci-bot` holds wildcard permission `*:execute` through built-in role `member` in team `platform`",
        "member}",
        0,
    );
}

#[test]
fn account_requires_owner() {
    let rules = "    - account_requires_owner: true\n";
    passes(rules, BODY);
    // A description that names a team is an owner too.
    passes(
        rules,
        &BODY.replace(
            "    owner: platform\n",
            "    description: Deploys; owned by data\n",
        ),
    );
    violates(
        rules,
        &BODY.replace("    owner: platform\n", "    description: Deploys things\n"),
        "account_requires_owner",
        "service account `ci-bot` names no owning team",
        "ci-bot:",
        0,
    );
}

#[test]
fn max_keys_per_account() {
    let rules = "    - max_keys_per_account: 2\n";
    let two = format!("{BODY}      second:\n        expires_in: 30d\n");
    passes(rules, &two);
    let three = format!("{two}      third: {{}}\n");
    violates(
        rules,
        &three,
        "max_keys_per_account",
        "service account `ci-bot` has 3 keys, more than 2",
        "third:",
        0,
    );
}

#[test]
fn forbid_permission_for_accounts_matching_a_name() {
    let rules =
        "    - forbid_permission: [\"deployments:execute\"]\n      match: { name: \"web-*\" }\n";
    passes(rules, BODY);
    let web = BODY.replace("  ci-bot:", "  web-bot:");
    violates(
        rules,
        &web,
        "forbid_permission",
        "service account `web-bot` may gain forbidden permission `deployments:execute` through role `deployer` in team `platform`",
        "deployments:execute]",
        0,
    );
}

#[test]
fn require_scopes() {
    let rules = "    - require_scopes: true\n";
    passes(rules, BODY);
    violates(
        rules,
        &BODY.replace("        scopes: [deployments:execute]\n", ""),
        "require_scopes",
        "key `ci-bot.prod` has no `scopes`, so it may do everything its account may",
        "prod:",
        0,
    );
}

#[test]
fn team_role_ceiling() {
    let rules = "    - team_role_ceiling: viewer\n      match: { team: data }\n";
    passes(
        rules,
        &BODY.replace("{platform: deployer}", "{platform: deployer, data: viewer}"),
    );
    violates(
        rules,
        &BODY.replace("{platform: deployer}", "{platform: viewer, data: deployer}"),
        "team_role_ceiling",
        "team `data` hands role `deployer` to service account `ci-bot`, above its ceiling `viewer`",
        "deployer}",
        0,
    );
    // In a plan, the membership change that breaks the ceiling is named as the cause.
    let sb = sandbox(&config(
        rules,
        &BODY.replace("{platform: deployer}", "{platform: deployer, data: viewer}"),
    ));
    sb.apply("org", T0);
    let text = config(
        rules,
        &BODY.replace("{platform: deployer}", "{platform: viewer, data: deployer}"),
    );
    sb.write("org/svcacct.yaml", &text);
    let (line, column) = place(&text, "deployer}", 0);
    let out = sb.run(&["plan", "-c", "org"]);
    out.expect(1);
    let want = format!(
        "  error[team_role_ceiling] team.data: team `data` hands role `deployer` to service account `ci-bot`, above its ceiling `viewer`\n      at org/svcacct.yaml:{line}:{column}, caused by service_account.ci-bot (update)\n      help: `deployer` grants `deployments:execute`, which `viewer` does not; use `viewer` or a narrower role\n"
    );
    assert!(out.stdout.contains(&want), "{want}\nin\n{}", out.stdout);
}

/// A rule that is itself wrong is a config error at its place, and all of them are reported.
#[test]
fn rules_are_checked_themselves() {
    let rules = "    - rotation_requird: 30d
";
    let text = config(rules, BODY);
    let sb = sandbox(&text);
    let out = sb.run(&["validate", "-c", "org"]);
    out.expect(1);
    let (line, column) = place(&text, "rotation_requird", 0);
    assert!(
        out.stderr
            .contains(&format!("org/svcacct.yaml:{line}:{column}")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("error: unknown field `rotation_requird`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("= help: did you mean `rotation_required`?"),
        "{}",
        out.stderr
    );

    let rules = "    - forbid_permission: [\"secrets:*\"]
      match: { name: \"ci_[x]\", team: platfrom }
    - key_max_lifetime: 90d
      rotation_required: 30d
    - require_scopes: true
      except:
        - match: { name: ci-bot }
";
    let text = config(rules, &BODY.replace("owner: platform", "owner: dta"));
    let sb = sandbox(&text);
    let out = sb.run(&["validate", "-c", "org"]);
    out.expect(1);
    let expect = [
        (
            "dta",
            "undefined team `dta` in the owner of service account `ci-bot`",
            "did you mean `data`?",
        ),
        (
            "\"ci_[x]\"",
            "invalid name glob `ci_[x]` in policy rule `forbid_permission`: `_` cannot be in a name glob",
            "a glob is a name with `*`",
        ),
        (
            "platfrom",
            "undefined team `platfrom` in policy rule `forbid_permission`",
            "did you mean `platform`?",
        ),
        (
            "rotation_required: 30d",
            "policy rule sets both `key_max_lifetime` and `rotation_required`; a rule has exactly one kind",
            "split it into two rules",
        ),
        (
            "match: { name: ci-bot }",
            "an exception of policy rule `require_scopes` has no `reason`",
            "say why, for reviewers",
        ),
    ];
    for (needle, message, help) in expect {
        let (line, column) = place(&text, needle, 0);
        let (line, column) = if needle == "rotation_required: 30d" {
            // A rule kind is placed at its value.
            (line, column + "rotation_required: ".len())
        } else {
            (line, column)
        };
        let pad = " ".repeat(line.to_string().len());
        let want = format!("error: {message}\n{pad}--> org/svcacct.yaml:{line}:{column}\n");
        assert!(
            out.stderr.contains(&want),
            "wanted\n{want}\nin\n{}",
            out.stderr
        );
        assert!(out.stderr.contains(help), "{help} in\n{}", out.stderr);
    }
    assert!(
        out.stderr.contains("config is invalid: 5 errors"),
        "{}",
        out.stderr
    );
}

/// A warning is reported and blocks nothing; an exception is listed with its reason in
/// every plan format; an error blocks plan (shown, exit 1, not saved) and apply (before the
/// organization is touched).
#[test]
fn severities_exceptions_and_exit_codes() {
    let rules = "    - name: short-keys
      key_max_lifetime: 90d
      except:
        - match: { name: legacy }
          reason: retired in Q3 (OPS-12)
    - rotation_required: 1d
      severity: warn
";
    let body = format!(
        "{BODY}  legacy:\n    owner: data\n    keys:\n      main:\n        rotate_every: 1d\n"
    );
    let text = config(rules, &body);
    let sb = sandbox(&text);
    let out = sb.run(&["validate", "-c", "org"]);
    out.ok();
    let (line, column) = place(&text, "7d", 0);
    assert!(
        out.stderr.contains(&format!(
            "warning: policy rule `rotation_required`: key `ci-bot.prod` rotates every 1w, less often than every 1d\n  --> org/svcacct.yaml:{line}:{column}\n"
        )),
        "{}",
        out.stderr
    );
    let (kl, kc) = place(&text, "main:", 0);
    assert!(
        out.stderr.contains(&format!(
            "note: policy rule `short-keys` excepts key.legacy.main (org/svcacct.yaml:{kl}:{kc}): key `legacy.main` has no `expires_in`; keys must expire within 90d; reason: retired in Q3 (OPS-12)"
        )),
        "{}",
        out.stderr
    );

    let out = sb.run(&["plan", "-c", "org"]);
    out.ok();
    assert!(
        out.stdout.contains(&format!(
            "\nPolicy: 0 errors, 1 warning, 1 excepted\n  excepted[short-keys] key.legacy.main: key `legacy.main` has no `expires_in`; keys must expire within 90d\n      at org/svcacct.yaml:{kl}:{kc}, caused by key.legacy.main (create)\n      reason: retired in Q3 (OPS-12)\n"
        )),
        "{}",
        out.stdout
    );
    let json = sb.plan_json("org", T0);
    let policy = json["policy"].as_array().unwrap();
    assert_eq!(policy.len(), 2, "{policy:?}");
    let excepted = policy.iter().find(|p| p["excepted"] == true).unwrap();
    assert_eq!(excepted["rule"], "short-keys");
    assert_eq!(excepted["kind"], "key_max_lifetime");
    assert_eq!(excepted["severity"], "error");
    assert_eq!(excepted["object"], "key.legacy.main");
    assert_eq!(excepted["reason"], "retired in Q3 (OPS-12)");
    assert_eq!(excepted["file"], "org/svcacct.yaml");
    assert_eq!(excepted["line"], kl);
    assert_eq!(excepted["column"], kc);
    assert_eq!(excepted["cause"], "key.legacy.main (create)");
    let warn = policy.iter().find(|p| p["excepted"] == false).unwrap();
    assert_eq!(warn["severity"], "warn");
    let md = sb.run(&["plan", "--format", "markdown", "-c", "org"]);
    md.ok();
    assert!(
        md.stdout
            .contains("#### Policy: 0 errors, 1 warning, 1 excepted"),
        "{}",
        md.stdout
    );
    assert!(
        md.stdout.contains("- `key.legacy.main` — key `legacy.main` has no `expires_in`; keys must expire within 90d (rule `short-keys`): *retired in Q3 \\(OPS\\-12\\)*"),
        "{}",
        md.stdout
    );
    // Without a blocking violation the section follows the changes.
    assert!(
        md.stdout.find("#### Policy").unwrap() > md.stdout.find("#### Changes by object").unwrap()
    );
    sb.apply("org", T0);

    // Break the rule: plan shows the violation, first in the comment, and exits 1.
    let broken = text
        .replace("expires_in: 30d", "expires_in: 1w\n        description: x")
        .replace("expires_in: 1w", "expires_in: 120d");
    sb.write("org/svcacct.yaml", &broken);
    let md = sb.run(&["plan", "--format", "markdown", "-c", "org"]);
    md.expect(1);
    let section = md
        .stdout
        .find("#### ⛔ Policy violations block this plan: 1 error, 1 warning, 1 excepted")
        .expect(&md.stdout);
    assert!(
        section < md.stdout.find("#### Changes by object").unwrap(),
        "{}",
        md.stdout
    );
    assert!(
        md.stderr
            .contains("error: the config violates its policy: 1 error, 1 warning, 1 excepted"),
        "{}",
        md.stderr
    );
    let out = sb.run(&["plan", "--out", "plan.json", "-c", "org"]);
    out.expect(1);
    assert!(
        out.stderr.contains("; the plan was not saved"),
        "{}",
        out.stderr
    );
    assert!(!sb.join("plan.json").exists());
    let json = sb
        .cmd(&["plan", "--format", "json", "-c", "org"])
        .now(T0)
        .run();
    json.expect(1);
    let blocking: Vec<_> = json.json()["policy"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["severity"] == "error" && p["excepted"] == false)
        .cloned()
        .collect();
    assert_eq!(blocking.len(), 1);
    assert_eq!(blocking[0]["cause"], "key.ci-bot.prod (update)");

    let before = sb.files();
    let out = sb.run(&["apply", "--yes", "-c", "org"]);
    out.expect(1);
    assert!(
        out.stderr.contains(
            "error: policy rule `short-keys`: key `ci-bot.prod` expires in 120d, longer than 90d"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(sb.files(), before, "apply changed nothing");
}

/// "No account may gain `secrets:*`" is judged on effective permissions: one role edit that
/// widens three accounts breaks it three times, and the plan names the role edit as the cause.
#[test]
fn a_role_edit_widening_several_accounts_is_caught() {
    let rules = "    - name: no-secrets
      forbid_permission: [\"*\", \"secrets:*\"]
";
    let mut body = String::from(
        "roles:
  wh:
    permissions: [warehouse:read]
teams:
  data:
    description: Data
service_accounts:
",
    );
    for a in ["loader", "reporter", "syncer"] {
        body.push_str(&format!("  {a}:\n    teams: {{data: wh}}\n"));
    }
    let text = config(rules, &body);
    let sb = sandbox(&text);
    sb.run(&["validate", "-c", "org"]).ok();
    sb.apply("org", T0);

    let widened = text.replace("[warehouse:read]", "[warehouse:read, \"secrets:*\"]");
    sb.write("org/svcacct.yaml", &widened);
    let (line, column) = place(&widened, "\"secrets:*\"]", 1);
    let out = sb.run(&["validate", "-c", "org"]);
    out.expect(1);
    for a in ["loader", "reporter", "syncer"] {
        let want = format!(
            "error: policy rule `no-secrets`: service account `{a}` may gain forbidden permission `secrets:*` through role `wh` in team `data`\n  --> org/svcacct.yaml:{line}:{column}\n"
        );
        assert!(out.stderr.contains(&want), "{want}\nin\n{}", out.stderr);
    }
    let out = sb.run(&["plan", "-c", "org"]);
    out.expect(1);
    for a in ["loader", "reporter", "syncer"] {
        let want = format!(
            "  error[no-secrets] service_account.{a}: service account `{a}` may gain forbidden permission `secrets:*` through role `wh` in team `data`\n      at org/svcacct.yaml:{line}:{column}, caused by role.wh (update)\n"
        );
        assert!(out.stdout.contains(&want), "{want}\nin\n{}", out.stdout);
    }
    assert!(
        out.stdout
            .contains("Policy: 3 errors, 0 warnings, 0 excepted"),
        "{}",
        out.stdout
    );
    // Explaining the role names the accounts that break the rule through it.
    let out = sb.run(&["policy", "explain", "role.wh", "-c", "org"]);
    out.ok();
    for a in ["loader", "reporter", "syncer"] {
        let want = format!(
            "      through this role: service account `{a}` may gain forbidden permission `secrets:*` through role `wh` in team `data` (org/svcacct.yaml:{line}:{column})\n"
        );
        assert!(out.stdout.contains(&want), "{want}\nin\n{}", out.stdout);
    }

    // `*` alone means every permission; `admin: true` is a path to it.
    let admin = text.replace("  syncer:\n", "  syncer:\n    admin: true\n");
    sb.write("org/svcacct.yaml", &admin);
    let (line, column) = place(&admin, "syncer:", 0);
    let out = sb.run(&["validate", "-c", "org"]);
    out.expect(1);
    let want = format!(
        "error: policy rule `no-secrets`: service account `syncer` may gain forbidden permissions `*:*`, `secrets:*` through `admin: true` (`*:*` covers them)\n  --> org/svcacct.yaml:{line}:{column}\n"
    );
    assert!(out.stderr.contains(&want), "{want}\nin\n{}", out.stderr);
}

/// Rules may live in `policy/*.yaml` of a config directory.
#[test]
fn rules_in_a_policy_directory() {
    let sb = sandbox(&config("    - require_scopes: true\n", BODY));
    sb.write(
        "org/policy/keys.yaml",
        "policy:\n  rules:\n    - max_keys_per_account: 0\n",
    );
    let out = sb.run(&["validate", "-c", "org"]);
    out.expect(1);
    assert!(
        out.stderr.contains("error: policy rule `max_keys_per_account`: service account `ci-bot` has 1 key, more than 0\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn explain_says_which_rules_apply_and_why() {
    let rules = "    - key_max_lifetime: 90d
    - name: ci-scopes
      require_scopes: true
      match: { name: \"ci-*\" }
      except:
        - match: { team: data }
          reason: data keys are read-only anyway
    - forbid_permission: [\"secrets:*\"]
      match: { team: data }
";
    let body = BODY.replace("        scopes: [deployments:execute]\n", "");
    let text = config(rules, &body);
    let sb = sandbox(&text);
    let (kl, kc) = place(&text, "prod:", 0);
    let out = sb.run(&["policy", "explain", "key.ci-bot.prod", "-c", "org"]);
    out.ok();
    assert_eq!(
        out.stdout,
        format!(
            "key.ci-bot.prod: 2 of 3 rules apply, 1 fails.

  key_max_lifetime (key_max_lifetime, error): every key expires within 90d
      applies: the rule matches every object of its kind
      passes

  ci-scopes (require_scopes, error): every key narrows its account's permissions with scopes
      applies: its name matches `ci-*`
      fails: key `ci-bot.prod` has no `scopes`, so it may do everything its account may (org/svcacct.yaml:{kl}:{kc})
      help: narrow it to what it needs, such as `scopes: [deployments:execute]`

  forbid_permission (forbid_permission, error): no account may gain `secrets:*`
      does not apply: it does not judge keys
"
        )
    );
    let out = sb.run(&["policy", "explain", "service_account.ci-bot", "-c", "org"]);
    out.ok();
    assert!(
        out.stdout.contains("  forbid_permission (forbid_permission, error): no account may gain `secrets:*`\n      does not apply: its `match` leaves it out"),
        "{}",
        out.stdout
    );
    // Moved into team data, the key is excepted, and says why.
    let data = body.replace("{platform: deployer}", "{data: deployer}");
    sb.write("org/svcacct.yaml", &config(rules, &data));
    let out = sb.run(&["policy", "explain", "key.ci-bot.prod", "-c", "org"]);
    out.ok();
    assert!(
        out.stdout.contains("      excepted at org/svcacct.yaml:"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            ": data keys are read-only anyway\n      would fail: key `ci-bot.prod` has no `scopes`"
        ),
        "{}",
        out.stdout
    );
    let out = sb.run(&["policy", "explain", "key.ci-bot.prd", "-c", "org"]);
    out.expect(1);
    assert!(
        out.stderr.contains(
            "error: key.ci-bot.prd is not in the config; did you mean `key.ci-bot.prod`?"
        ),
        "{}",
        out.stderr
    );
}

/// A rule without a kind, and two rules of one name, are refused at their places; a config
/// that meets its rules plans exactly as one without rules.
#[test]
fn rule_names_and_kinds_and_a_clean_plan() {
    let rules = "    - severity: warn
    - key_max_lifetime: 90d
    - key_max_lifetime: 30d
";
    let text = config(rules, BODY);
    let sb = sandbox(&text);
    let out = sb.run(&["validate", "-c", "org"]);
    out.expect(1);
    let (l, c) = place(&text, "severity: warn", 0);
    assert!(
        out.stderr.contains(&format!(
            "error: policy rule has no rule kind\n{}--> org/svcacct.yaml:{l}:{c}\n",
            " ".repeat(l.to_string().len())
        )),
        "{}",
        out.stderr
    );
    let (l, c) = place(&text, "30d\n", 0);
    assert!(
        out.stderr.contains(&format!(
            "error: policy rule `key_max_lifetime` is defined twice\n{}--> org/svcacct.yaml:{l}:{c}\n",
            " ".repeat(l.to_string().len())
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("= help: give each rule its own `name:`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("config is invalid: 2 errors"),
        "{}",
        out.stderr
    );

    let clean = sandbox(&config("    - key_max_lifetime: 90d\n", BODY));
    let bare = sandbox(&format!(
        "organization: acme\nsecrets:\n  recipients_file: ../examples/demo-recipients.txt\n{BODY}"
    ));
    let with = clean.run(&["plan", "-c", "org"]);
    with.ok();
    let without = bare.run(&["plan", "-c", "org"]);
    without.ok();
    assert_eq!(with.stdout, without.stdout);
    assert!(!with.stdout.contains("Policy"), "{}", with.stdout);
    assert_eq!(clean.plan_json("org", T0)["policy"], serde_json::json!([]));
}

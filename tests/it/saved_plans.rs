//! Saved plans: `plan --out` writes what was reviewed, `apply PLAN` applies exactly that with
//! no prompt, or refuses — changing nothing and naming why — a plan that no longer describes
//! what it would do. `show PLAN` renders it again. On `local` and on `http`.

use serde_json::Value;

use crate::common::*;

const CFG: &str = "org/svcacct.yaml";

fn run(sb: &Sandbox, args: &[&str], now: &str) -> Out {
    sb.cmd(args)
        .now(now)
        .env("SVCACCT_TEST_TOKEN", OPERATOR)
        .run()
}

fn setup(sb: &Sandbox, http: bool) -> (Option<Server>, std::path::PathBuf) {
    demo_files(sb);
    if http {
        let db = sb.join("server.db");
        let s = Server::start(&db, Some(T0));
        let extra = format!(
            "backend:\n  type: http\n  url: {}\n  token_env: SVCACCT_TEST_TOKEN\n",
            s.url
        );
        sb.write(CFG, &many_accounts_yaml("acme", 2, 1, &extra));
        (Some(s), db)
    } else {
        sb.write(CFG, &many_accounts_yaml("acme", 2, 1, ""));
        (None, sb.join("org/.svcacct/acme.db"))
    }
}

/// Everything the refusal must not change: the key rows, the key files.
fn state(sb: &Sandbox, db: &std::path::Path) -> String {
    let rows: Vec<String> = key_rows(db)
        .iter()
        .map(|k| format!("{} {:?} {:?}", k.id, k.retires_at, k.revoked_at))
        .collect();
    format!(
        "{rows:?} {:?}",
        files_under(&sb.join("org/secrets"))
            .keys()
            .collect::<Vec<_>>()
    )
}

/// Rewrites a saved plan with `edit` and a checksum that matches again.
fn forge(sb: &Sandbox, rel: &str, edit: impl Fn(&mut Value)) {
    let mut v: Value = serde_json::from_str(&sb.read(rel)).unwrap();
    edit(&mut v);
    v.as_object_mut().unwrap().remove("checksum");
    let sum = format!("sha256:{}", sha256_hex(&v.to_string()));
    v["checksum"] = Value::String(sum);
    sb.write(rel, &serde_json::to_string_pretty(&v).unwrap());
}

fn saved_plans(http: bool) {
    let sb = Sandbox::new();
    let (_server, db) = setup(&sb, http);

    // The first plan, saved, shown again, and applied exactly, with no prompt.
    let shown = run(&sb, &["plan", "--out", "plan.json", "-c", CFG], T0);
    shown.ok();
    let again = run(&sb, &["show", "plan.json"], T0);
    assert_eq!(again.ok().stdout, shown.stdout);
    for format in ["json", "markdown"] {
        let planned = run(&sb, &["plan", "--format", format, "-c", CFG], T0);
        let again = run(&sb, &["show", "plan.json", "--format", format], T0);
        assert_eq!(again.ok().stdout, planned.ok().stdout, "{format}");
    }
    let saved: Value = serde_json::from_str(&sb.read("plan.json")).unwrap();
    assert_eq!(saved["organization"], "acme");
    assert_eq!(saved["revision"], 0);
    assert_eq!(saved["svcacct_version"], env!("CARGO_PKG_VERSION"));
    let backend = saved["backend"].as_str().unwrap();
    if http {
        assert!(backend.starts_with("http http://127.0.0.1:"), "{backend}");
    } else {
        assert!(
            backend.starts_with("local /") && backend.ends_with("org/.svcacct/acme.db"),
            "{backend}"
        );
    }
    assert!(!sb.read("plan.json").contains(OPERATOR), "never a token");
    run(&sb, &["apply", "plan.json", "-c", CFG], T0).ok();
    assert_eq!(current_keys(&db).len(), 2);
    run(&sb, &["plan", "--detailed-exitcode", "-c", CFG], T0).expect(0);

    // Applied once: the organization moved past it.
    let revision = sb.plan_json_env(CFG, T0)["revision"].as_u64().unwrap();
    let before = state(&sb, &db);
    let out = run(&sb, &["apply", "plan.json", "-c", CFG], T0);
    out.expect(1);
    assert_eq!(
        out.stderr,
        format!(
            "error: plan is stale: organization at revision {revision}, plan made at 0; run plan again\n"
        )
    );
    assert_eq!(state(&sb, &db), before);

    // A rotation plan holds no secret, hash or key prefix.
    let later = at(31, 0);
    run(&sb, &["plan", "--out", "rotate.json", "-c", CFG], &later).ok();
    let text = sb.read("rotate.json");
    assert!(text.contains("\"rotate\""), "{text}");
    let identity = sb.join("examples/demo-identity.txt");
    for row in key_rows(&db) {
        assert!(!text.contains(&row.hash));
        assert!(!text.contains(&row.display_prefix));
    }
    for a in ["acct-000", "acct-001"] {
        let secret = secret_of(&sb.join(&format!("org/secrets/{a}/key-0.age")), &identity);
        assert!(!text.contains(&secret));
    }
    assert!(!text.contains("svca_"));

    // Refusals, each naming its reason, each changing nothing.
    let refused = |sb: &Sandbox, file: &str, reason: &str| {
        let before = state(sb, &db);
        let out = run(sb, &["apply", file, "-c", CFG], &later);
        out.expect(1);
        assert!(out.stderr.contains(reason), "{reason}: {}", out.stderr);
        assert_eq!(state(sb, &db), before, "{reason}");
    };
    std::fs::copy(sb.join("rotate.json"), sb.join("edited.json")).unwrap();
    let edited = sb
        .read("edited.json")
        .replacen("\"rotate\"", "\"delete\"", 1);
    sb.write("edited.json", &edited);
    refused(&sb, "edited.json", "was edited after it was made");
    std::fs::copy(sb.join("rotate.json"), sb.join("old.json")).unwrap();
    forge(&sb, "old.json", |v| v["svcacct_version"] = "0.0.1".into());
    refused(
        &sb,
        "old.json",
        "plan was made by svcacct 0.0.1, this is svcacct",
    );
    std::fs::copy(sb.join("rotate.json"), sb.join("other.json")).unwrap();
    forge(&sb, "other.json", |v| v["organization"] = "globex".into());
    refused(&sb, "other.json", "plan is for organization globex on");
    std::fs::copy(sb.join("rotate.json"), sb.join("elsewhere.json")).unwrap();
    forge(&sb, "elsewhere.json", |v| {
        v["backend"] = "local /somewhere/else.db".into()
    });
    refused(
        &sb,
        "elsewhere.json",
        "plan is for organization acme on local /somewhere/else.db",
    );
    let config = sb.read(CFG);
    sb.write(
        CFG,
        &config.replace("description: account 1", "description: changed"),
    );
    refused(
        &sb,
        "rotate.json",
        "the config changed since the plan was made",
    );
    sb.write(CFG, &config);

    // The reviewed rotation applies exactly: two rotations, nothing else.
    let out = run(&sb, &["apply", "rotate.json", "-c", CFG], &later);
    out.ok();
    assert!(
        out.stdout
            .contains("Apply complete: 2 applied, 0 failed, 0 skipped."),
        "{}",
        out.stdout
    );
    assert_eq!(key_rows(&db).len(), 4);
    assert_every_key_has_its_file(&db, &sb.join("org/secrets"), &identity);
}

impl Sandbox {
    /// The JSON plan with the test token in the environment.
    fn plan_json_env(&self, config: &str, now: &str) -> Value {
        let out = run(self, &["plan", "--format", "json", "-c", config], now);
        out.ok();
        out.json()
    }
}

#[test]
fn saved_plans_apply_exactly_or_are_refused_on_local() {
    saved_plans(false);
}

#[test]
fn saved_plans_apply_exactly_or_are_refused_on_http() {
    saved_plans(true);
}

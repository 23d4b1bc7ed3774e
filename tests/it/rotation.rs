//! Time: rotation with an overlap, retirement, expiry of keys and accounts, disabling and
//! revocation, as `svcacct verify` sees them. `SVCACCT_NOW` moves the clock.

use crate::common::*;

const SMALL: &str = "examples/small/svcacct.yaml";
const SMALL_DB: &str = "examples/small/.svcacct/acme.db";
const SMALL_KEY: &str = "examples/small/secrets/ci-bot/github-actions-prod.age";

fn changes(plan: &serde_json::Value) -> Vec<(String, String)> {
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

fn pair(address: &str, action: &str) -> Vec<(String, String)> {
    vec![(address.to_string(), action.to_string())]
}

#[test]
fn rotation_keeps_the_old_key_working_for_the_overlap_then_retires_it() {
    // The small example: rotate_every 30d, overlap 24h, expires_in 90d.
    let sb = Sandbox::new();
    sb.copy_example("small");
    sb.apply(SMALL, T0);
    let identity = sb.join("examples/demo-identity.txt");
    let first = age_cli_decrypt(&sb.join(SMALL_KEY), &identity);
    let old = first["secret"].as_str().unwrap().to_string();

    // Not due yet.
    sb.cmd(&["plan", "--detailed-exitcode", "-c", SMALL])
        .now(&at(29, 23))
        .run()
        .expect(0);

    // Due: a rotation, which says why and for how long the old key keeps working.
    let rotate_at = at(31, 0);
    let plan = sb.plan_json(SMALL, &rotate_at);
    assert_eq!(
        changes(&plan),
        pair("key.ci-bot.github-actions-prod", "rotate")
    );
    let reason = plan["changes"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("rotate_every 30d"), "{reason}");
    assert!(reason.contains("1d"), "the overlap is named: {reason}");

    sb.apply(SMALL, &rotate_at);
    let second = age_cli_decrypt(&sb.join(SMALL_KEY), &identity);
    let new = second["secret"].as_str().unwrap().to_string();
    assert_ne!(old, new, "the same file now holds a new key");
    assert_ne!(first["key_id"], second["key_id"]);
    assert_eq!(second["created_at"], rotate_at.as_str());
    assert_eq!(second["expires_at"], at(31 + 90, 0).as_str());
    assert_every_key_has_its_file(
        &sb.join(SMALL_DB),
        &sb.join("examples/small/secrets"),
        &identity,
    );
    sb.cmd(&["plan", "--detailed-exitcode", "-c", SMALL])
        .now(&rotate_at)
        .run()
        .expect(0);

    // Both work during the overlap.
    for now in [rotate_at.clone(), at(31, 23)] {
        let (code, v) = sb.verify(SMALL, &old, &now);
        assert_eq!(
            (code, &v["valid"]),
            (0, &true.into()),
            "old key at {now}: {v}"
        );
        assert_eq!(v["key_id"], first["key_id"]);
        let (code, v) = sb.verify(SMALL, &new, &now);
        assert_eq!(
            (code, &v["valid"]),
            (0, &true.into()),
            "new key at {now}: {v}"
        );
        assert_eq!(v["key_id"], second["key_id"]);
        assert_eq!(v["service_account"], "ci-bot");
    }
    sb.cmd(&["plan", "--detailed-exitcode", "-c", SMALL])
        .now(&at(31, 23))
        .run()
        .expect(0);

    // After the overlap the old key no longer works, and the plan retires it.
    let after = at(32, 1);
    let (code, v) = sb.verify(SMALL, &old, &after);
    assert_eq!(code, 1);
    assert_eq!(v["valid"], false);
    assert_eq!(v["reason"], "retired");
    let plan = sb.plan_json(SMALL, &after);
    assert_eq!(
        changes(&plan),
        pair("key.ci-bot.github-actions-prod", "retire")
    );
    sb.apply(SMALL, &after);
    let rows = key_rows(&sb.join(SMALL_DB));
    assert_eq!(rows.len(), 2);
    let old_row = rows.iter().find(|r| r.hash == sha256_hex(&old)).unwrap();
    assert!(old_row.revoked_at.is_some(), "retired means revoked");
    let (code, v) = sb.verify(SMALL, &old, &after);
    assert_eq!(code, 1);
    assert!(v["reason"] == "revoked" || v["reason"] == "retired", "{v}");
    let (code, _) = sb.verify(SMALL, &new, &after);
    assert_eq!(code, 0);
    sb.cmd(&["plan", "--detailed-exitcode", "-c", SMALL])
        .now(&after)
        .run()
        .expect(0);
}

#[test]
fn rotation_without_overlap_revokes_the_old_key_at_once() {
    let sb = Sandbox::new();
    sb.copy_example("small");
    let text = sb.read(SMALL).replace("        overlap: 24h\n", "");
    sb.write(SMALL, &text);
    sb.apply(SMALL, T0);
    let identity = sb.join("examples/demo-identity.txt");
    let old = secret_of(&sb.join(SMALL_KEY), &identity);
    sb.apply(SMALL, &at(30, 0));
    let new = secret_of(&sb.join(SMALL_KEY), &identity);
    assert_ne!(old, new);
    let (code, v) = sb.verify(SMALL, &old, &at(30, 0));
    assert_eq!((code, v["reason"].as_str()), (1, Some("revoked")), "{v}");
    assert_eq!(sb.verify(SMALL, &new, &at(30, 0)).0, 0);
    sb.cmd(&["plan", "--detailed-exitcode", "-c", SMALL])
        .now(&at(30, 0))
        .run()
        .expect(0);
}

/// One account with two keys; `account_extra` goes into the account, `key_extra` into
/// its `main` key.
fn one_account(account_extra: &str, key_extra: &str) -> String {
    format!(
        "organization: acme
secrets:
  recipients_file: ../examples/demo-recipients.txt
roles:
  reader:
    permissions: [flows:read, deployments:read]
teams:
  ops: {{}}
service_accounts:
  bot:
    teams: {{ops: reader}}
{account_extra}    keys:
      main:
        description: main key
{key_extra}      spare:
        scopes: [flows:read]
"
    )
}

struct Bot {
    sb: Sandbox,
    main: String,
    spare: String,
}

const BOT: &str = "org/svcacct.yaml";

fn bot(account_extra: &str, key_extra: &str) -> Bot {
    let sb = Sandbox::new();
    let identity = demo_files(&sb);
    sb.write(BOT, &one_account(account_extra, key_extra));
    sb.apply(BOT, T0);
    let main = secret_of(&sb.join("org/secrets/bot/main.age"), &identity);
    let spare = secret_of(&sb.join("org/secrets/bot/spare.age"), &identity);
    Bot { sb, main, spare }
}

#[test]
fn verify_tells_whose_key_it_is_and_what_it_may_do() {
    let b = bot("", "");
    let (code, v) = b.sb.verify(BOT, &b.main, T0);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["valid"], true);
    assert_eq!(v["organization"], "acme");
    assert_eq!(v["service_account"], "bot");
    assert_eq!(v["key"], "main");
    assert_eq!(
        v["permissions"],
        serde_json::json!(["deployments:read", "flows:read"])
    );
    // Scopes narrow the account's permissions.
    let (code, v) = b.sb.verify(BOT, &b.spare, T0);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["key"], "spare");
    assert_eq!(v["permissions"], serde_json::json!(["flows:read"]));

    // Garbage and unknown keys are refused, and say why.
    let (code, v) = b.sb.verify(BOT, "svca_not-a-key", T0);
    assert_eq!((code, v["reason"].as_str()), (1, Some("malformed")), "{v}");
    let mut typo = b.main.clone().into_bytes();
    typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
    let (code, v) = b.sb.verify(BOT, &String::from_utf8(typo).unwrap(), T0);
    assert_eq!((code, v["reason"].as_str()), (1, Some("malformed")), "{v}");
    let stranger = svcacct::secrets::mint();
    let (code, v) = b.sb.verify(BOT, &stranger.secret, T0);
    assert_eq!((code, v["reason"].as_str()), (1, Some("unknown")), "{v}");
    assert!(v.get("service_account").is_none(), "{v}");
}

#[test]
fn disabling_an_account_stops_its_keys_and_enabling_restores_them() {
    let b = bot("", "");
    b.sb.write(BOT, &one_account("    disabled: true\n", ""));
    let plan = b.sb.plan_json(BOT, T0);
    assert_eq!(changes(&plan), pair("service_account.bot", "update"));
    assert_eq!(
        plan["changes"][0]["changed"],
        serde_json::json!(["disabled"])
    );
    b.sb.apply(BOT, T0);
    for secret in [&b.main, &b.spare] {
        let (code, v) = b.sb.verify(BOT, secret, T0);
        assert_eq!(code, 1);
        assert_eq!(v["valid"], false);
        assert_eq!(v["reason"], "account_disabled");
    }
    // Re-enabling issues nothing new: the same keys work again.
    b.sb.write(BOT, &one_account("", ""));
    let plan = b.sb.plan_json(BOT, T0);
    assert_eq!(changes(&plan), pair("service_account.bot", "update"));
    b.sb.apply(BOT, T0);
    for secret in [&b.main, &b.spare] {
        let (code, v) = b.sb.verify(BOT, secret, T0);
        assert_eq!((code, &v["valid"]), (0, &true.into()), "{v}");
    }
    assert_eq!(key_rows(&b.sb.join("org/.svcacct/acme.db")).len(), 2);
}

#[test]
fn an_expired_account_stops_its_keys() {
    let b = bot("    expires: 2027-01-01\n", "");
    // The account works through its last day.
    for now in ["2026-12-31T12:00:00Z", "2027-01-01T23:59:59Z"] {
        let (code, v) = b.sb.verify(BOT, &b.main, now);
        assert_eq!(code, 0, "at {now}: {v}");
    }
    for now in ["2027-01-02T00:00:00Z", "2028-01-01T00:00:00Z"] {
        for secret in [&b.main, &b.spare] {
            let (code, v) = b.sb.verify(BOT, secret, now);
            assert_eq!(code, 1, "at {now}: {v}");
            assert_eq!(v["reason"], "account_expired", "at {now}: {v}");
        }
    }
    // Extending the expiry brings the keys back.
    b.sb.write(BOT, &one_account("    expires: 2028-06-30\n", ""));
    let plan = b.sb.plan_json(BOT, "2027-01-02T00:00:00Z");
    assert_eq!(changes(&plan), pair("service_account.bot", "update"));
    assert_eq!(
        plan["changes"][0]["changed"],
        serde_json::json!(["expires"])
    );
    b.sb.apply(BOT, "2027-01-02T00:00:00Z");
    assert_eq!(b.sb.verify(BOT, &b.main, "2027-01-02T00:00:00Z").0, 0);
}

#[test]
fn an_expired_key_is_refused_and_the_plan_rotates_it() {
    let b = bot("", "        expires_in: 10d\n");
    let (code, v) = b.sb.verify(BOT, &b.main, &at(9, 23));
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["expires_at"], at(10, 0).as_str());
    let (code, v) = b.sb.verify(BOT, &b.main, &at(10, 0));
    assert_eq!((code, v["reason"].as_str()), (1, Some("expired")), "{v}");
    // The key without expiry is unaffected.
    assert_eq!(b.sb.verify(BOT, &b.spare, &at(10, 0)).0, 0);

    let plan = b.sb.plan_json(BOT, &at(11, 0));
    assert_eq!(changes(&plan), pair("key.bot.main", "rotate"));
    let reason = plan["changes"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("expired"), "{reason}");
    b.sb.apply(BOT, &at(11, 0));
    let identity = b.sb.join("examples/demo-identity.txt");
    let renewed = secret_of(&b.sb.join("org/secrets/bot/main.age"), &identity);
    assert_ne!(renewed, b.main);
    let (code, v) = b.sb.verify(BOT, &renewed, &at(11, 0));
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["expires_at"], at(21, 0).as_str());
    assert_eq!(b.sb.verify(BOT, &b.main, &at(11, 0)).0, 1);
    b.sb.cmd(&["plan", "--detailed-exitcode", "-c", BOT])
        .now(&at(11, 0))
        .run()
        .expect(0);
}

#[test]
fn removing_a_key_revokes_only_that_key() {
    let b = bot("", "");
    let text = one_account("", "").replace("      spare:\n        scopes: [flows:read]\n", "");
    b.sb.write(BOT, &text);
    let plan = b.sb.plan_json(BOT, T0);
    assert_eq!(changes(&plan), pair("key.bot.spare", "delete"));
    b.sb.apply(BOT, T0);
    let (code, v) = b.sb.verify(BOT, &b.spare, T0);
    assert_eq!((code, v["reason"].as_str()), (1, Some("revoked")), "{v}");
    assert_eq!(b.sb.verify(BOT, &b.main, T0).0, 0);
    let rows = key_rows(&b.sb.join("org/.svcacct/acme.db"));
    let spare = rows.iter().find(|r| r.name == "spare").unwrap();
    assert!(spare.revoked_at.is_some());
    b.sb.cmd(&["plan", "--detailed-exitcode", "-c", BOT])
        .now(T0)
        .run()
        .expect(0);
}

#[test]
fn a_live_key_whose_file_is_missing_is_reissued() {
    let b = bot("", "");
    std::fs::remove_file(b.sb.join("org/secrets/bot/spare.age")).unwrap();
    let plan = b.sb.plan_json(BOT, T0);
    assert_eq!(changes(&plan), pair("key.bot.spare", "replace"));
    b.sb.apply(BOT, T0);
    let identity = b.sb.join("examples/demo-identity.txt");
    assert_every_key_has_its_file(
        &b.sb.join("org/.svcacct/acme.db"),
        &b.sb.join("org/secrets"),
        &identity,
    );
    let (code, v) = b.sb.verify(BOT, &b.spare, T0);
    assert_eq!(code, 1, "the key whose secret was lost is revoked: {v}");
}

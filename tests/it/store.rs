//! The store fails closed: a column that does not decode is an error, never a default that
//! would widen what a key may do or make an account work forever.

use crate::common::*;

const SMALL: &str = "examples/small/svcacct.yaml";
const DB: &str = "examples/small/.svcacct/acme.db";

/// The small example applied, with its key narrowed to one scope; returns the key's secret.
fn applied_with_scoped_key(sb: &Sandbox) -> String {
    sb.copy_example("small");
    let text = sb.read(SMALL).replace(
        "        expires_in: 90d\n",
        "        expires_in: 90d\n        scopes: [flows:read]\n",
    );
    sb.write(SMALL, &text);
    sb.apply(SMALL, T0);
    secret_of(
        &sb.join("examples/small/secrets/ci-bot/github-actions-prod.age"),
        &sb.join("examples/demo-identity.txt"),
    )
}

/// `svcacct verify` of `secret`, which must fail (exit 1) without printing the secret.
fn verify_fails(sb: &Sandbox, secret: &str) -> Out {
    let out = sb
        .cmd(&["verify", "-c", SMALL])
        .now(T0)
        .stdin(format!("{secret}\n"))
        .run();
    out.expect(1);
    assert!(!out.all().contains(secret));
    out
}

#[test]
fn a_garbled_scope_list_refuses_the_key_instead_of_granting_everything() {
    let sb = Sandbox::new();
    let secret = applied_with_scoped_key(&sb);
    let (code, v) = sb.verify(SMALL, &secret, T0);
    assert_eq!(
        (code, &v["permissions"]),
        (0, &serde_json::json!(["flows:read"]))
    );

    open_db_rw(&sb.join(DB))
        .execute("UPDATE api_keys SET scopes = 'not json'", [])
        .unwrap();
    let out = verify_fails(&sb, &secret);
    assert!(!out.stdout.contains("\"valid\": true"), "{}", out.stdout);
    assert!(
        out.stderr.contains("unreadable permission list"),
        "{}",
        out.stderr
    );

    let plan = sb.cmd(&["plan", "-c", SMALL]).now(T0).run();
    plan.expect(1);
    assert!(
        plan.stderr.contains("unreadable permission list"),
        "{}",
        plan.stderr
    );
}

#[test]
fn a_garbled_account_expiry_is_an_error_not_never() {
    let sb = Sandbox::new();
    let secret = applied_with_scoped_key(&sb);
    open_db_rw(&sb.join(DB))
        .execute("UPDATE service_accounts SET expires = '30 feb'", [])
        .unwrap();
    let out = verify_fails(&sb, &secret);
    assert!(
        out.stderr.contains("unreadable date `30 feb`"),
        "{}",
        out.stderr
    );
}

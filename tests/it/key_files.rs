//! Key files know which key they hold: the metadata beside each file, written with it and
//! promoted with it (even across a crash between the two renames), and what the plan reads
//! from it with no identity — a file holding another key, stale recipients, orphaned files.
//! `secrets reencrypt` (all or none, also when interrupted) and `secrets show`.

use std::path::Path;

use serde_json::Value;

use crate::common::*;

const CFG: &str = "org/svcacct.yaml";
const FILE: &str = "org/secrets/acct-000/key-0.age";
const ACCOUNT_DIR: &str = "org/secrets/acct-000";

/// The metadata file of acct-000's key, wherever its name says it is.
fn meta_of(sb: &Sandbox) -> String {
    meta_path(sb, "org/secrets", "acct-000", "key-0")
}

/// Two accounts with one key each (rotate_every 30d, overlap 1d), on `local` or on a server.
fn org(sb: &Sandbox, http: bool) -> Option<Server> {
    demo_files(sb);
    let (server, extra) = if http {
        let s = Server::start(&sb.join("server.db"), Some(T0));
        let extra = format!(
            "backend:\n  type: http\n  url: {}\n  token_env: SVCACCT_TEST_TOKEN\n",
            s.url
        );
        (Some(s), extra)
    } else {
        (None, String::new())
    };
    sb.write(CFG, &many_accounts_yaml("acme", 2, 1, &extra));
    run(sb, &["apply", "--yes", "-c", CFG], T0).ok();
    server
}

fn db(sb: &Sandbox, http: bool) -> std::path::PathBuf {
    if http {
        sb.join("server.db")
    } else {
        sb.join("org/.svcacct/acme.db")
    }
}

fn run(sb: &Sandbox, args: &[&str], now: &str) -> Out {
    sb.cmd(args)
        .now(now)
        .env("SVCACCT_TEST_TOKEN", OPERATOR)
        .run()
}

fn plan(sb: &Sandbox, now: &str) -> Value {
    let out = run(sb, &["plan", "--format", "json", "-c", CFG], now);
    out.ok();
    out.json()
}

fn meta(sb: &Sandbox, rel: &str) -> Value {
    serde_json::from_str(&sb.read(rel)).unwrap()
}

fn live_id(db: &Path, account: &str) -> String {
    current_keys(db)
        .into_iter()
        .find(|k| k.account == account)
        .unwrap()
        .id
}

fn metadata_names_the_key_and_holds_no_secret(http: bool) {
    let sb = Sandbox::new();
    let _server = org(&sb, http);
    let identity = sb.join("examples/demo-identity.txt");
    let db = db(&sb, http);
    assert_eq!(
        assert_every_key_has_its_file(&db, &sb.join("org/secrets"), &identity),
        2
    );
    let meta_file = meta_of(&sb);
    let m = meta(&sb, &meta_file);
    let row = current_keys(&db)
        .into_iter()
        .find(|k| k.account == "acct-000")
        .unwrap();
    assert_eq!(m["key_id"], row.id.as_str());
    assert_eq!(m["created_at"], T0);
    assert!(
        m["recipients"]
            .as_str()
            .is_some_and(|r| r.starts_with("sha256:")),
        "{m}"
    );
    let text = sb.read(&meta_file);
    let secret = secret_of(&sb.join(FILE), &identity);
    for forbidden in [secret.as_str(), &row.hash, &row.display_prefix, "svca_"] {
        assert!(
            !text.contains(forbidden),
            "metadata holds {forbidden}: {text}"
        );
    }

    // Its name says which key it holds, and to whom it is encrypted.
    let fingerprint = m["recipients"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    assert_eq!(
        meta_file,
        format!("{ACCOUNT_DIR}/key-0.{}.{fingerprint}.meta.json", row.id)
    );

    // A restored older file (a backup from before a rotation, copied over the key's files) is
    // seen for what it is.
    let (old_file, old_meta) = (sb.read(FILE), sb.read(&meta_file));
    let old_id = row.id.clone();
    run(&sb, &["apply", "--yes", "-c", CFG], &at(31, 0)).ok();
    let new_id = live_id(&db, "acct-000");
    assert_ne!(new_id, old_id);
    assert_ne!(
        meta_of(&sb),
        meta_file,
        "the rotation's metadata replaced the old"
    );
    sb.write(FILE, &old_file);
    sb.write(&meta_file, &old_meta);
    let p = plan(&sb, &at(31, 0));
    let reasons: Vec<(&str, &str, &str)> = p["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["address"].as_str().unwrap(),
                c["action"].as_str().unwrap(),
                c["reason"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [(
            "key.acct-000.key-0",
            "replace",
            format!(
                "its file holds key {old_id}, not the live key {new_id} (rotated outside svcacct?); the old key keeps working for 1d"
            )
            .as_str()
        )],
        "{p:#}"
    );
    run(&sb, &["apply", "--yes", "-c", CFG], &at(31, 0)).ok();
    assert_every_key_has_its_file(&db, &sb.join("org/secrets"), &identity);
}

#[test]
fn metadata_names_the_key_and_holds_no_secret_on_local() {
    metadata_names_the_key_and_holds_no_secret(false);
}

#[test]
fn metadata_names_the_key_and_holds_no_secret_on_http() {
    metadata_names_the_key_and_holds_no_secret(true);
}

#[test]
fn a_crash_between_the_file_and_its_metadata_is_finished_by_the_next_apply() {
    let sb = Sandbox::new();
    demo_files(&sb);
    sb.write(CFG, &many_accounts_yaml("acme", 2, 1, ""));
    let out = sb
        .cmd(&["apply", "--yes", "--parallelism", "1", "-c", CFG])
        .now(T0)
        .fault("SVCACCT_TEST_ABORT_BETWEEN_RENAMES", "1")
        .run();
    assert_eq!(out.signal, Some(6), "aborted: {out:?}");
    let db = sb.join("org/.svcacct/acme.db");
    let id = live_id(&db, "acct-000");
    assert!(sb.join(FILE).exists(), "the key file was promoted");
    assert!(
        meta_files(&sb.join(ACCOUNT_DIR), "key-0").is_empty(),
        "its metadata was not"
    );
    let pending = format!("{ACCOUNT_DIR}/key-0.meta.json.pending-{id}");
    assert!(sb.join(&pending).exists());
    // The invariant holds already (the pending metadata names the key), and plan reads it.
    let identity = sb.join("examples/demo-identity.txt");
    assert_every_key_has_its_file(&db, &sb.join("org/secrets"), &identity);
    let p = plan(&sb, T0);
    assert_eq!(p["changes"], serde_json::json!([]), "{p:#}");

    let out = run(&sb, &["apply", "--yes", "-c", CFG], T0);
    out.ok();
    assert_eq!(meta(&sb, &meta_of(&sb))["key_id"], id.as_str());
    assert!(!sb.join(&pending).exists());
    assert_every_key_has_its_file(&db, &sb.join("org/secrets"), &identity);
    let leftovers: Vec<_> = files_under(&sb.join("org/secrets"))
        .into_keys()
        .filter(|p| p.to_string_lossy().contains("pending") || p.starts_with("."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn orphaned_files_are_a_note() {
    let sb = Sandbox::new();
    let _ = org(&sb, false);
    let text = sb.read(CFG);
    let cut = text.find("  acct-001:").unwrap();
    sb.write(CFG, &text[..cut]);
    run(&sb, &["apply", "--yes", "-c", CFG], T0).ok();
    let p = plan(&sb, T0);
    assert_eq!(
        p["notes"],
        serde_json::json!([
            "1 key file of keys that no longer exist: org/secrets/acct-001/key-0.age; `svcacct secrets prune` deletes it"
        ])
    );
    assert_eq!(p["changes"], serde_json::json!([]));
}

/// A new age identity in `path`; returns its recipient.
fn new_identity(path: &Path) -> String {
    let id = age::x25519::Identity::generate();
    let public = id.to_public().to_string();
    use age::secrecy::ExposeSecret;
    std::fs::write(path, format!("{}\n", id.to_string().expose_secret())).unwrap();
    public
}

/// Adds a recipient to the config: every file is now encrypted to a stale set.
fn add_recipient(sb: &Sandbox) -> std::path::PathBuf {
    let second = sb.join("second-identity.txt");
    let public = new_identity(&second);
    let demo = std::fs::read_to_string(sb.join("examples/demo-recipients.txt")).unwrap();
    sb.write("org/recipients.txt", &format!("{demo}{public}\n"));
    let cfg = sb.read(CFG).replace(
        "recipients_file: ../examples/demo-recipients.txt",
        "recipients_file: recipients.txt",
    );
    sb.write(CFG, &cfg);
    second
}

#[test]
fn stale_recipients_are_a_note_and_reencrypt_fixes_them_all_or_none() {
    let sb = Sandbox::new();
    let _ = org(&sb, false);
    let identity = sb.join("examples/demo-identity.txt");
    let second = add_recipient(&sb);
    let p = plan(&sb, T0);
    assert_eq!(p["changes"], serde_json::json!([]));
    assert_eq!(
        p["notes"],
        serde_json::json!([
            "2 key files are encrypted to recipients the config no longer lists (key.acct-000.key-0, key.acct-001.key-0); run `svcacct secrets reencrypt -i IDENTITY` to re-encrypt them to the current ones, and rotate the keys if a removed recipient should no longer read them"
        ])
    );

    // An identity that opens nothing: refused, nothing changed.
    let before = files_under(&sb.join("org/secrets"));
    let stranger = sb.join("stranger.txt");
    new_identity(&stranger);
    let out = run(
        &sb,
        &["secrets", "reencrypt", "-i", "stranger.txt", "-c", CFG],
        T0,
    );
    out.expect(1);
    assert!(
        out.stderr.contains("nothing was re-encrypted"),
        "{}",
        out.stderr
    );
    assert!(files_under(&sb.join("org/secrets")) == before);

    // Interrupted after the first rename: every file still decrypts with the old identity.
    let secrets: Vec<String> = ["acct-000", "acct-001"]
        .iter()
        .map(|a| secret_of(&sb.join(&format!("org/secrets/{a}/key-0.age")), &identity))
        .collect();
    let out = sb
        .cmd(&[
            "secrets",
            "reencrypt",
            "-i",
            "examples/demo-identity.txt",
            "-c",
            CFG,
        ])
        .fault("SVCACCT_TEST_ABORT_AFTER_REENCRYPT_RENAMES", "1")
        .run();
    assert_eq!(out.signal, Some(6), "aborted: {out:?}");
    for (a, s) in ["acct-000", "acct-001"].iter().zip(&secrets) {
        let file = sb.join(&format!("org/secrets/{a}/key-0.age"));
        assert_eq!(&secret_of(&file, &identity), s);
    }
    assert!(crate_decrypt(&sb.join(FILE), &read_identity(&second)).is_ok());
    assert!(
        crate_decrypt(
            &sb.join("org/secrets/acct-001/key-0.age"),
            &read_identity(&second)
        )
        .is_err(),
        "the second file was not re-encrypted yet"
    );

    // Run again: done, the plan is quiet, and the new identity opens every file.
    let out = run(
        &sb,
        &[
            "secrets",
            "reencrypt",
            "-i",
            "examples/demo-identity.txt",
            "-c",
            CFG,
        ],
        T0,
    );
    out.ok();
    assert!(
        out.stdout.starts_with("1 key file re-encrypted"),
        "{}",
        out.stdout
    );
    let p = plan(&sb, T0);
    assert_eq!(p["notes"], serde_json::json!([]), "{p:#}");
    for (a, s) in ["acct-000", "acct-001"].iter().zip(&secrets) {
        let file = sb.join(&format!("org/secrets/{a}/key-0.age"));
        assert_eq!(&secret_of(&file, &second), s);
    }
    let staged: Vec<_> = files_under(&sb.join("org/secrets"))
        .into_keys()
        .filter(|p| p.to_string_lossy().contains(".reencrypt-"))
        .collect();
    assert!(staged.is_empty(), "{staged:?}");
    assert_every_key_has_its_file(
        &sb.join("org/.svcacct/acme.db"),
        &sb.join("org/secrets"),
        &second,
    );
}

#[test]
fn secrets_show_prints_one_secret_on_purpose() {
    let sb = Sandbox::new();
    let _ = org(&sb, false);
    let identity = sb.join("examples/demo-identity.txt");
    let out = run(
        &sb,
        &[
            "secrets",
            "show",
            "key.acct-000.key-0",
            "-i",
            "examples/demo-identity.txt",
            "-c",
            CFG,
        ],
        T0,
    );
    out.ok();
    assert_eq!(
        out.stdout,
        format!("{}\n", secret_of(&sb.join(FILE), &identity))
    );
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    for (address, message) in [
        ("key.acct-000.nope", "has no key file"),
        ("team.crew", "is not a key"),
    ] {
        let out = run(
            &sb,
            &[
                "secrets",
                "show",
                address,
                "-i",
                "examples/demo-identity.txt",
                "-c",
                CFG,
            ],
            T0,
        );
        out.expect(1);
        assert!(out.stderr.contains(message), "{}", out.stderr);
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn a_crash_before_the_replaced_metadata_is_removed_leaves_the_new_one_believed_and_recovered() {
    let sb = Sandbox::new();
    let _ = org(&sb, false);
    let db = db(&sb, false);
    let identity = sb.join("examples/demo-identity.txt");
    let old = meta_of(&sb);
    // The rotation dies once the new key's metadata is in place, before the old one goes.
    let out = sb
        .cmd(&["apply", "--yes", "--parallelism", "1", "-c", CFG])
        .now(&at(31, 0))
        .fault("SVCACCT_TEST_ABORT_BEFORE_REMOVING_REPLACED", "1")
        .run();
    assert_eq!(out.signal, Some(6), "aborted: {out:?}");
    let new_id = live_id(&db, "acct-000");
    let metas = meta_files(&sb.join(ACCOUNT_DIR), "key-0");
    assert_eq!(metas.len(), 2, "{metas:?}");
    assert!(sb.join(&old).exists());
    // The one changed last names the live key, and the plan believes it.
    assert_every_key_has_its_file(&db, &sb.join("org/secrets"), &identity);
    let p = plan(&sb, &at(31, 0));
    assert_eq!(p["changes"], serde_json::json!([]), "{p:#}");
    // The next apply's recovery removes the replaced one.
    run(&sb, &["apply", "--yes", "-c", CFG], &at(31, 0)).ok();
    assert!(!sb.join(&old).exists());
    assert_eq!(meta(&sb, &meta_of(&sb))["key_id"], new_id.as_str());
    assert_every_key_has_its_file(&db, &sb.join("org/secrets"), &identity);
}

#[test]
fn metadata_of_the_old_layout_is_read_and_an_apply_renames_it_without_losing_a_key() {
    let sb = Sandbox::new();
    let _ = org(&sb, false);
    let db = db(&sb, false);
    let identity = sb.join("examples/demo-identity.txt");
    // As an earlier version wrote them: `<key>.meta.json`, which only the content explains.
    let mut named = Vec::new();
    for account in ["acct-000", "acct-001"] {
        let meta = meta_path(&sb, "org/secrets", account, "key-0");
        let old = format!("org/secrets/{account}/key-0.meta.json");
        std::fs::rename(sb.join(&meta), sb.join(&old)).unwrap();
        let content = sb.read(&old);
        named.push((meta, old, content));
    }
    assert_eq!(plan(&sb, T0)["changes"], serde_json::json!([]));
    // Read, not merely seen: content naming another key is a file holding another key.
    let (_, old0, content0) = &named[0];
    let live0 = live_id(&db, "acct-000");
    sb.write(old0, &content0.replace(&live0, "key_forged"));
    let p = plan(&sb, T0);
    assert_eq!(p["changes"][0]["action"], "replace", "{p:#}");
    sb.write(old0, content0);
    assert_eq!(plan(&sb, T0)["changes"], serde_json::json!([]));

    // An apply (here with nothing else to do) renames each file to the name its content
    // gives, byte for byte the same; the plan still has nothing to do.
    let out = run(&sb, &["apply", "--yes", "-c", CFG], T0);
    out.ok();
    assert!(
        out.stdout.contains("Renamed 2 key metadata file(s)"),
        "{}",
        out.stdout
    );
    for (meta, old, content) in &named {
        assert!(!sb.join(old).exists(), "{old}");
        assert_eq!(&sb.read(meta), content, "{meta}");
    }
    assert_every_key_has_its_file(&db, &sb.join("org/secrets"), &identity);
    assert_eq!(plan(&sb, T0)["changes"], serde_json::json!([]));
    let again = run(&sb, &["apply", "--yes", "-c", CFG], T0);
    assert!(!again.stdout.contains("Renamed"), "{}", again.stdout);
}

#[test]
fn tampered_or_missing_metadata_and_files_are_seen_by_the_plan() {
    let sb = Sandbox::new();
    let _ = org(&sb, false);
    let db = db(&sb, false);
    let identity = sb.join("examples/demo-identity.txt");
    let (live0, live1) = (live_id(&db, "acct-000"), live_id(&db, "acct-001"));
    // The metadata of acct-000 names another key; acct-001's key file is gone, its metadata
    // stays.
    let meta_file = meta_of(&sb);
    let forged = sb.read(&meta_file).replace(&live0, "key_forged");
    std::fs::remove_file(sb.join(&meta_file)).unwrap();
    sb.write(&meta_file.replace(&live0, "key_forged"), &forged);
    std::fs::remove_file(sb.join("org/secrets/acct-001/key-0.age")).unwrap();
    let p = plan(&sb, T0);
    let changes: Vec<(&str, &str, &str)> = p["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["address"].as_str().unwrap(),
                c["action"].as_str().unwrap(),
                c["reason"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            (
                "key.acct-000.key-0",
                "replace",
                format!("its file holds key key_forged, not the live key {live0} (rotated outside svcacct?); the old key keeps working for 1d").as_str()
            ),
            (
                "key.acct-001.key-0",
                "replace",
                "its secret file is missing; the old key keeps working for 1d"
            ),
        ],
        "{p:#}"
    );
    run(&sb, &["apply", "--yes", "-c", CFG], T0).ok();
    assert_every_key_has_its_file(&db, &sb.join("org/secrets"), &identity);
    assert_ne!(live_id(&db, "acct-000"), live0);
    assert_ne!(live_id(&db, "acct-001"), live1);

    // A file without metadata (as before svcacct kept any) is taken to hold the live key.
    std::fs::remove_file(sb.join(&meta_of(&sb))).unwrap();
    let p = plan(&sb, T0);
    assert_eq!(p["changes"], serde_json::json!([]), "{p:#}");
}

//! Key material: files that the standard `age` command decrypts for X25519 and SSH
//! recipients, and no secret, hash or display prefix in any output or any other file.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// Makes an age identity with `age-keygen`; returns (identity file, recipient).
fn age_keygen(dir: &Path) -> (PathBuf, String) {
    let identity = dir.join("age-identity.txt");
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&identity)
        .output()
        .expect("age-keygen is installed (see scripts/test)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("age-keygen")
        .arg("-y")
        .arg(&identity)
        .output()
        .unwrap();
    assert!(out.status.success());
    let recipient = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(recipient.starts_with("age1"), "{recipient}");
    (identity, recipient)
}

/// Makes an unencrypted ed25519 SSH key with `ssh-keygen`; returns (private key, public key).
fn ssh_keygen(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("id_ed25519");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "svcacct-test", "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen is installed (see scripts/test)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = std::fs::read_to_string(key.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string();
    assert!(public.starts_with("ssh-ed25519 "), "{public}");
    (key, public)
}

/// One secret file, what it decrypts to, and what the organization stores for it.
struct Issued {
    file: PathBuf,
    secret: String,
    hash: String,
    prefix: String,
}

#[test]
fn secrets_only_ever_exist_inside_their_encrypted_files() {
    let sb = Sandbox::new();
    let keys_dir = sb.join("keys");
    std::fs::create_dir_all(&keys_dir).unwrap();
    let (age_identity, age_recipient) = age_keygen(&keys_dir);
    let (ssh_identity, ssh_recipient) = ssh_keygen(&keys_dir);
    let cfg = "org/svcacct.yaml";
    sb.write(
        cfg,
        &format!(
            "organization: acme
secrets:
  dir: secrets
  recipients:
    - {age_recipient}
    - {ssh_recipient}
roles:
  deployer:
    permissions: [deployments:read, deployments:execute]
teams:
  platform: {{}}
service_accounts:
  ci-bot:
    teams: {{platform: deployer}}
    keys:
      prod:
        description: prod runner
        expires_in: 90d
        rotate_every: 30d
        overlap: 1d
      staging:
        scopes: [deployments:read]
        rotate_every: 30d
  exporter:
    teams: {{platform: viewer}}
    keys:
      grafana: {{}}
      prometheus:
        rotate_every: 30d
  admin-bot:
    admin: true
    keys:
      tfc:
        rotate_every: 30d
        overlap: 2h
"
        ),
    );
    let mut outputs: Vec<(String, Out)> = Vec::new();
    let mut record = |what: &str, out: Out| {
        out.ok();
        outputs.push((what.to_string(), out));
    };

    let plans = |sb: &Sandbox, now: &str| -> Vec<(String, Out)> {
        let mut v = Vec::new();
        for format in ["text", "json", "markdown"] {
            v.push((
                format!("plan --format {format} at {now}"),
                sb.cmd(&["plan", "--format", format, "-c", cfg])
                    .now(now)
                    .run(),
            ));
        }
        v.push((
            format!("plan --color always at {now}"),
            sb.cmd(&["plan", "--color", "always", "-c", cfg])
                .now(now)
                .run(),
        ));
        v
    };

    record("validate", sb.cmd(&["validate", "-c", cfg]).run());
    record(
        "apply -v",
        sb.cmd(&["apply", "--yes", "-v", "-c", cfg]).now(T0).run(),
    );
    for (what, out) in plans(&sb, T0) {
        record(&what, out);
    }
    // A month later every key but one rotates: plans show the live keys' public facts.
    let later = at(31, 0);
    for (what, out) in plans(&sb, &later) {
        record(&what, out);
    }
    let issued_first = read_all(&sb, &age_identity, &ssh_identity);
    assert_eq!(issued_first.len(), 5);
    record(
        "apply (rotation)",
        sb.cmd(&["apply", "--yes", "-v", "-c", cfg])
            .now(&later)
            .run(),
    );
    for (what, out) in plans(&sb, &later) {
        record(&what, out);
    }
    record("export", sb.cmd(&["export", "-c", cfg]).now(&later).run());
    record(
        "export -o",
        sb.cmd(&["export", "-o", "exported/svcacct.yaml", "-c", cfg])
            .now(&later)
            .run(),
    );
    let issued_second = read_all(&sb, &age_identity, &ssh_identity);
    assert_eq!(issued_second.len(), 5);
    for (what, out) in [
        ("verify", &issued_second[0]),
        ("verify (rotated out)", &issued_first[0]),
    ] {
        let v = sb
            .cmd(&["verify", "-c", cfg])
            .now(&later)
            .stdin(out.secret.clone())
            .run();
        outputs.push((what.to_string(), v));
    }

    let all: Vec<&Issued> = issued_first.iter().chain(&issued_second).collect();
    // The rotation issued new secrets for the four keys with rotate_every.
    let distinct: std::collections::BTreeSet<&str> =
        all.iter().map(|i| i.secret.as_str()).collect();
    assert_eq!(distinct.len(), 9, "five keys, four of them rotated");

    for (what, out) in &outputs {
        let text = out.all();
        for i in &all {
            assert!(!text.contains(&i.secret), "`{what}` printed a secret");
            assert!(!text.contains(&i.hash), "`{what}` printed a key hash");
            assert!(
                !text.contains(&i.prefix),
                "`{what}` printed a display prefix"
            );
        }
        assert!(
            !text.contains("svca_"),
            "`{what}` printed something shaped like a key:\n{text}"
        );
    }

    // No file outside secrets/ holds a secret: not the organization file, its WAL or lock,
    // the configs or the export.
    let db = sb.join("org/.svcacct/acme.db");
    let files = sb.files();
    assert!(files.contains_key(Path::new("org/.svcacct/acme.db")));
    assert!(files.contains_key(Path::new("exported/svcacct.yaml")));
    for (path, bytes) in &files {
        if path.starts_with("org/secrets") {
            continue;
        }
        for i in &all {
            assert!(
                !contains_bytes(bytes, i.secret.as_bytes()),
                "{} contains a secret",
                path.display()
            );
        }
        assert!(
            !contains_bytes(bytes, b"svca_") || path.ends_with("acme.db"),
            "{} contains something shaped like a key",
            path.display()
        );
    }
    // Secret files hold nothing in the clear either.
    for (path, bytes) in files.iter().filter(|(p, _)| p.starts_with("org/secrets")) {
        for i in &all {
            assert!(
                !contains_bytes(bytes, i.secret.as_bytes()),
                "{}",
                path.display()
            );
        }
    }

    // The organization stores the SHA-256 of each secret (and a display prefix).
    let rows = key_rows(&db);
    assert_eq!(rows.len(), 9);
    for i in &all {
        let row = rows
            .iter()
            .find(|r| r.hash == i.hash)
            .unwrap_or_else(|| panic!("no stored hash for {}", i.file.display()));
        assert_eq!(row.display_prefix, i.prefix);
        assert_eq!(row.hash, sha256_hex(&i.secret));
    }
}

/// Decrypts every key file with both identities through the `age` command, checks the file
/// and its payload, and returns what they hold.
fn read_all(sb: &Sandbox, age_identity: &Path, ssh_identity: &Path) -> Vec<Issued> {
    let secrets = sb.join("org/secrets");
    let mut files: Vec<PathBuf> = files_under(&secrets)
        .into_keys()
        .filter(|p| p.extension().is_some_and(|e| e == "age"))
        .map(|p| secrets.join(p))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(&secrets).unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "admin-bot/tfc.age",
            "ci-bot/prod.age",
            "ci-bot/staging.age",
            "exporter/grafana.age",
            "exporter/prometheus.age"
        ]
    );
    let db = sb.join("org/.svcacct/acme.db");
    let current = current_keys(&db);
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(
                text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"),
                "{} is an armored age file",
                file.display()
            );
            assert!(
                text.trim_end()
                    .ends_with("-----END AGE ENCRYPTED FILE-----")
            );
            let by_age = age_cli_decrypt(&file, age_identity);
            let by_ssh = age_cli_decrypt(&file, ssh_identity);
            assert_eq!(by_age, by_ssh, "both recipients read the same payload");

            let account = file
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap();
            let key = file.file_stem().unwrap().to_str().unwrap();
            let p = by_age.as_object().unwrap();
            let mut fields: Vec<&str> = p.keys().map(String::as_str).collect();
            fields.sort();
            assert_eq!(
                fields,
                [
                    "created_at",
                    "expires_at",
                    "key",
                    "key_id",
                    "organization",
                    "secret",
                    "service_account"
                ]
            );
            assert_eq!(p["organization"], "acme");
            assert_eq!(p["service_account"], account);
            assert_eq!(p["key"], key);
            let secret = p["secret"].as_str().unwrap().to_string();
            assert_eq!(secret.len(), 5 + 38, "{secret:.8}…");
            assert!(secret.starts_with("svca_"));
            assert!(secret[5..].bytes().all(|b| b.is_ascii_alphanumeric()));
            let row = current
                .iter()
                .find(|r| r.account == account && r.name == key)
                .expect("the file's key is live");
            assert_eq!(p["key_id"], row.id.as_str());
            let created = p["created_at"].as_str().unwrap();
            assert!(created == T0 || created == at(31, 0), "{created}");
            if (account, key) == ("ci-bot", "prod") {
                let created = time::OffsetDateTime::parse(
                    created,
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap();
                let expires = (created + time::Duration::days(90))
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap();
                assert_eq!(p["expires_at"], expires.as_str());
            } else {
                assert!(p["expires_at"].is_null(), "{key} has no expiry");
            }
            Issued {
                hash: sha256_hex(&secret),
                prefix: secret[..13].to_string(),
                secret,
                file,
            }
        })
        .collect()
}

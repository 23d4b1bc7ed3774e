//! Broken configs: every one is refused with the file, line and column of the mistake, and
//! never touches the organization (no byte of it changes, no file appears).

use std::time::{Duration, Instant};

use crate::common::*;

/// A config that applies cleanly; the broken ones replace it.
const GOOD: &str = "organization: acme
secrets:
  recipients_file: ../examples/demo-recipients.txt
roles:
  deployer:
    permissions: [deployments:read]
teams:
  platform:
    description: Platform
service_accounts:
  ci-bot:
    teams: {platform: deployer}
    keys:
      prod:
        rotate_every: 30d
";

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

/// A broken config: the files to write under `org/`, where its error is, and what the
/// message says.
struct Case<'a> {
    files: &'a [(&'a str, &'a str)],
    /// `(file, line, column)` the error must name.
    at: (&'a str, usize, usize),
    message: &'a [&'a str],
}

/// Applies `GOOD`, writes the broken files, and checks that validate, plan and apply all
/// refuse with the place and the message and leave the organization exactly as it was.
/// Returns the stderr of `validate`.
#[track_caller]
fn refused(case: Case<'_>) -> String {
    refused_by(
        case,
        &[
            &["validate", "-c", "org"],
            &["plan", "-c", "org"],
            &[
                "plan",
                "--format",
                "json",
                "--detailed-exitcode",
                "-c",
                "org",
            ],
            &["apply", "--yes", "-c", "org"],
            &["export", "-c", "org"],
        ],
    )
}

/// [`refused`], by these commands only. Returns the stderr of the first.
#[track_caller]
fn refused_by(case: Case<'_>, commands: &[&[&str]]) -> String {
    let sb = Sandbox::new();
    demo_files(&sb);
    sb.write("org/svcacct.yaml", GOOD);
    sb.apply("org", T0);
    let db = sb.join("org/.svcacct/acme.db");
    assert!(db.is_file());
    let before = sb.files();

    let mut written = Vec::new();
    for (name, text) in case.files {
        sb.write(&format!("org/{name}"), text);
        written.push(std::path::PathBuf::from(format!("org/{name}")));
    }
    let place = format!("org/{}:{}:{}", case.at.0, case.at.1, case.at.2);
    let mut first_stderr = None;
    for &args in commands {
        let out = sb.cmd(args).now(T0).run();
        out.expect(1);
        assert!(
            out.stderr.contains(&place),
            "`{}` names {place}:\n{}",
            args.join(" "),
            out.stderr
        );
        for m in case.message {
            assert!(
                out.stderr.contains(m),
                "`{}` says `{m}`:\n{}",
                args.join(" "),
                out.stderr
            );
        }
        assert!(out.stdout.is_empty(), "nothing on stdout: {}", out.stdout);
        first_stderr.get_or_insert(out.stderr);
    }

    let mut after = sb.files();
    for w in &written {
        after.remove(w);
    }
    let mut expected = before;
    for w in &written {
        expected.remove(w);
    }
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "no file appeared or went away"
    );
    for (path, bytes) in &expected {
        assert!(
            after[path] == *bytes,
            "{} changed though the config was refused",
            path.display()
        );
    }
    first_stderr.unwrap_or_default()
}

/// Replaces `org/svcacct.yaml` with `text` and expects the error at `needle`.
#[track_caller]
fn refused_at(text: &str, needle: &str, nth: usize, message: &[&str]) -> String {
    let (line, column) = place(text, needle, nth);
    refused(Case {
        files: &[("svcacct.yaml", text)],
        at: ("svcacct.yaml", line, column),
        message,
    })
}

#[test]
fn yaml_syntax_error() {
    let text = "organization: acme
teams:
  platform:
    description: Platform
   oops: indented wrong
";
    refused_at(text, "oops", 0, &["did not find expected key"]);
}

#[test]
fn unknown_field() {
    let text = GOOD.replace("description: Platform", "descripton: Platform");
    let err = refused_at(&text, "descripton", 0, &["unknown field `descripton`"]);
    assert!(
        err.contains("description"),
        "it lists the known fields: {err}"
    );
}

#[test]
fn duplicate_key_in_one_file() {
    let text = GOOD.replace(
        "teams:\n  platform:\n",
        "teams:\n  platform:\n    description: first\n  platform:\n",
    );
    refused_at(&text, "platform:", 1, &["duplicate", "platform"]);
}

#[test]
fn duplicate_name_across_files_names_both_places() {
    let extra = "teams:\n  data: {}\n  platform:\n    description: again\n";
    let (line, column) = place(extra, "platform", 0);
    let (first_line, first_column) = place(GOOD, "platform:", 0);
    let err = refused(Case {
        files: &[("teams.yaml", extra)],
        at: ("teams.yaml", line, column),
        message: &["team `platform` is defined twice"],
    });
    let first = format!("org/svcacct.yaml:{first_line}:{first_column}");
    assert!(
        err.contains(&first),
        "the first definition is named too ({first}): {err}"
    );
}

#[test]
fn undefined_team_suggests_the_closest_name() {
    let text = GOOD.replace("teams: {platform: deployer}", "teams: {platfrom: deployer}");
    refused_at(
        &text,
        "platfrom",
        0,
        &["undefined team `platfrom`", "did you mean `platform`?"],
    );
}

#[test]
fn undefined_role_suggests_the_closest_name() {
    let text = GOOD.replace("teams: {platform: deployer}", "teams: {platform: deployr}");
    refused_at(
        &text,
        "deployr",
        0,
        &["undefined role `deployr`", "did you mean `deployer`?"],
    );
}

#[test]
fn bad_recipient() {
    let text = GOOD.replace(
        "  recipients_file: ../examples/demo-recipients.txt\n",
        "  recipients:\n    - age1thisisnotarecipient\n",
    );
    refused_at(&text, "age1thisisnotarecipient", 0, &["recipient"]);
}

#[test]
fn bad_ssh_recipient() {
    let text = GOOD.replace(
        "  recipients_file: ../examples/demo-recipients.txt\n",
        "  recipients:\n    - ssh-ed25519 AAAAnotbase64!!\n",
    );
    refused_at(&text, "ssh-ed25519", 0, &["recipient"]);
}

#[test]
fn bad_duration() {
    let text = GOOD.replace("rotate_every: 30d", "rotate_every: 30 days");
    refused_at(&text, "30 days", 0, &["invalid duration `30 days`"]);
}

#[test]
fn alias_bomb_is_refused_quickly() {
    // Billion laughs through merge keys: every level merges its parent nine times, so a
    // parser that expanded it would build 9^12 mappings.
    let mut text = String::from("organization: acme\nteams:\n  t0: &a0 {description: lol}\n");
    for i in 1..=12 {
        let parents = vec![format!("*a{}", i - 1); 9].join(", ");
        text.push_str(&format!("  t{i}: &a{i} {{<<: [{parents}]}}\n"));
    }
    let started = Instant::now();
    // Any place inside the bomb is the right place; find which one it named.
    let sb = Sandbox::new();
    sb.write("bomb.yaml", &text);
    let out = sb.run(&["validate", "-c", "bomb.yaml"]);
    out.expect(1);
    let line: usize = out
        .stderr
        .split("bomb.yaml:")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("the error names bomb.yaml:line:column: {}", out.stderr));
    assert!((3..=15).contains(&line), "{}", out.stderr);
    let first = out.stderr.lines().next().unwrap();
    assert_eq!(
        first.matches('(').count(),
        first.matches(')').count(),
        "the message is whole, not cut off: {first}"
    );
    let column = out
        .stderr
        .split(&format!("bomb.yaml:{line}:"))
        .nth(1)
        .unwrap();
    let column: usize = column.split_whitespace().next().unwrap().parse().unwrap();

    // In front of a real organization: refused at the same place, nothing touched.
    refused_by(
        Case {
            files: &[("svcacct.yaml", &text)],
            at: ("svcacct.yaml", line, column),
            message: &["error"],
        },
        &[&["apply", "--yes", "-c", "org"]],
    );
    // A liveness bound, not a speed target: an expanded bomb would take hours, and a loaded
    // 2-core CI machine runs this in 20-50 s.
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(180),
        "an alias bomb is refused, not expanded (took {took:?})"
    );
}

#[test]
fn alias_bomb_leaves_the_organization_alone() {
    // A nested-sequence bomb where a list of permissions is expected.
    let mut bomb = String::from(
        "organization: acme\nsecrets:\n  recipients_file: ../examples/demo-recipients.txt\nroles:\n  r0:\n    permissions: &a0 [\"a:b\", \"a:b\", \"a:b\", \"a:b\", \"a:b\", \"a:b\", \"a:b\", \"a:b\", \"a:b\"]\n",
    );
    for i in 1..=9 {
        let parents = vec![format!("*a{}", i - 1); 9].join(", ");
        bomb.push_str(&format!("  r{i}:\n    permissions: &a{i} [{parents}]\n"));
    }
    refused_at(&bomb, "*a0", 0, &["error"]);
}

#[test]
fn empty_file() {
    refused(Case {
        files: &[("svcacct.yaml", "")],
        at: ("svcacct.yaml", 1, 1),
        message: &["empty"],
    });
}

#[test]
fn file_of_only_comments_is_empty() {
    refused(Case {
        files: &[("svcacct.yaml", "# nothing here yet\n---\n")],
        at: ("svcacct.yaml", 1, 1),
        message: &["empty"],
    });
}

#[test]
fn config_that_is_not_a_mapping() {
    let err = refused(Case {
        files: &[("svcacct.yaml", "- organization: acme\n- teams: {}\n")],
        at: ("svcacct.yaml", 1, 1),
        message: &["mapping"],
    });
    assert!(err.contains("organization: <name>"), "{err}");
}

#[test]
fn invalid_name() {
    let text = GOOD.replace(
        "  platform:\n    description",
        "  Platform_Team:\n    description",
    );
    let text = text.replace("{platform: deployer}", "{Platform_Team: deployer}");
    refused_at(
        &text,
        "Platform_Team:",
        0,
        &["invalid team name `Platform_Team`"],
    );
}

#[test]
fn more_than_fifty_keys() {
    let mut text = GOOD.to_string();
    for i in 0..50 {
        text.push_str(&format!("      extra-{i:02}: {{}}\n"));
    }
    // `prod` plus 50 extra: the 51st key is extra-49.
    refused_at(&text, "extra-49", 0, &["51 keys", "at most 50"]);
}

#[test]
fn keys_without_recipients() {
    let text = GOOD.replace(
        "secrets:\n  recipients_file: ../examples/demo-recipients.txt\n",
        "",
    );
    refused_at(&text, "prod:", 0, &["no recipients"]);
}

#[test]
fn changing_a_built_in_role() {
    let text = GOOD.replace(
        "roles:\n",
        "roles:\n  admin:\n    description: mine now\n    permissions: [flows:read]\n",
    );
    refused_at(
        &text,
        "admin:",
        0,
        &["built-in role `admin` cannot be changed"],
    );
}

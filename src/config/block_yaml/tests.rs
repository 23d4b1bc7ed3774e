//! The reader held to serde-saphyr.

use super::*;
use crate::config::raw::RawConfig;

/// The full parser's reading, as text that shows every value with its line and column.
fn full(text: &str) -> Option<String> {
    serde_saphyr::from_str::<RawConfig>(text)
        .ok()
        .map(|c| format!("{c:?}"))
}

fn fast(text: &str) -> Option<String> {
    from_str::<RawConfig>(text).ok().map(|c| format!("{c:?}"))
}

/// YAML of every shape this reader takes: flow and block collections, quotes, comments,
/// sequences at their key's indentation and below it, enums, numbers and booleans.
const SAMPLE: &str = r#"# a comment
organization: acme   # trailing comment
backend:
  type: local
  path: state/acme.db
secrets:
  dir: secrets
  recipients: ["age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"]
policy:
  max_delete_percent: 30
  rules:
    - key_max_lifetime: 90d
    - no_wildcard_permissions: { allow: ["*:read", 'flows:*'] }
    - name: no-full-access
      forbid_permission: ["*:*", 'secrets:*']
      severity: warn
      match: { name: "ci-*", team: platform }
      except:
      - match: {name: legacy}
        reason: retired in Q3 (OPS-12)
roles:
  deployer:
    description: Deploys things, #1 of them
    permissions:
      - "flows:read"
      - 'deployments:run'
    protect: true
teams:
  platform: {}
  data:
    description: "Data team: pipelines"
service_accounts:
  ci-bot:
    description: Runs CI
    owner: platform
    teams: {platform: deployer, data: viewer}
    admin: false
    keys:
      main:
        expires_in: 90d
        rotate_every: 30d
        overlap: 1d
        scopes: [flows:read]
        verify_traffic: true
        deliver:
          - github_actions: { repository: acme/app, secret: SVCACCT_KEY }
          - file:
              path: /etc/acme/key
      spare: { description: spare key, expires_in: 10d }

  etl-bot:
    teams:
      data: member
    keys:
      k: {}
"#;

#[test]
fn the_sample_reads_as_the_full_parser_reads_it() {
    let expected = full(SAMPLE).expect("the sample is valid");
    assert_eq!(fast(SAMPLE).as_deref(), Some(expected.as_str()));
}

#[test]
fn the_examples_read_as_the_full_parser_reads_them() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut read = 0;
    for sub in ["small", "realistic"] {
        // The YAML files only: running an example (the README's first command) leaves its
        // secrets and organization file beside them.
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(path).unwrap();
            if let Some(got) = fast(&text) {
                assert_eq!(Some(got), full(&text));
                read += 1;
            }
        }
    }
    assert!(read >= 3, "the examples are plain block YAML: {read} read");
}

#[test]
fn yaml_it_does_not_take_is_left_to_the_full_parser() {
    let takes = |yaml: &str| from_str::<RawConfig>(yaml).is_ok();
    let base = "organization: acme\nteams:\n  a:\n    description: ";
    assert!(takes(&format!("{base}plain\n")));
    for value in [
        "|\n      block",
        "multi\n      line",
        "\"esc\\\"aped\"",
        "'it''s'",
        "&anchor x",
        "*alias",
        "!tag x",
        "null",
        "~",
        "a: b",
        "\"unterminated",
        "[a, b,]",
        "x #",
        "\"bell\u{7}\"",
        "esc\u{1b}[8m",
        "c1\u{85}x\u{9b}",
    ] {
        if value == "x #" {
            // `x #` is `x` and a comment: taken, and read as the full parser reads it.
            let text = format!("{base}{value}\n");
            assert_eq!(fast(&text), full(&text));
            continue;
        }
        assert!(!takes(&format!("{base}{value}\n")), "{value:?}");
    }
    assert!(
        !takes("organization: acme\norganization: again\n"),
        "duplicate"
    );
    assert!(!takes("teams:\n  a: {}\n  a: {}\n"), "duplicate name");
    assert!(!takes("teams:\n\ta: {}\n"), "tab");
    assert!(!takes("---\norganization: acme\n"), "document marker");
    assert!(!takes("organization: acme\n  bad: indent\n"), "indentation");
    assert!(
        !takes("organization: acme\nnot_a_field: 1\n"),
        "unknown field"
    );
    assert!(
        !takes("policy:\n  max_delete_percent: 0x1f\n"),
        "a number the full parser must read"
    );
}

/// Every one-character change of the sample, at every place: whatever this reader takes,
/// the full parser must take too, and read the same, place for place. Most changes make
/// invalid YAML or an invalid config, which this reader must turn down.
#[test]
fn every_small_change_reads_as_the_full_parser_reads_it_or_is_left_to_it() {
    let (mut taken, mut refused) = (0, 0);
    let chars = [
        " ", ":", "-", "#", "\"", "'", "[", "]", "{", "}", ",", "\n", "  ", "x", "1", "&", "*",
        "|", ">", "!", "?", "%", "~", "\u{7}", "\u{9b}", "é",
    ];
    let positions: Vec<usize> = SAMPLE.char_indices().map(|(i, _)| i).collect();
    for (n, &at) in positions.iter().enumerate() {
        let c = chars[n % chars.len()];
        let d = chars[(n * 7 + 3) % chars.len()];
        let next = positions.get(n + 1).copied().unwrap_or(SAMPLE.len());
        for text in [
            format!("{}{c}{}", &SAMPLE[..at], &SAMPLE[at..]),
            format!("{}{d}{}", &SAMPLE[..at], &SAMPLE[next..]),
            format!("{}{}", &SAMPLE[..at], &SAMPLE[next..]),
        ] {
            match fast(&text) {
                Some(got) => {
                    assert_eq!(Some(got), full(&text), "taken differently:\n{text}");
                    taken += 1;
                }
                None => refused += 1,
            }
        }
    }
    eprintln!("{taken} taken, {refused} refused");
    assert!(
        taken > 100 && refused > 100,
        "{taken} taken, {refused} refused"
    );
}

//! Hostile text in descriptions, from the config and from the server's API: terminal escape
//! sequences (SGR that hides what follows, OSC 52 that writes the clipboard, cursor movement),
//! carriage returns and bidi overrides are shown escaped in every output format, and
//! Markdown links and images are shown as text, never rendered.

use serde_json::{Value, json};

use crate::common::*;

const CFG: &str = "org/svcacct.yaml";

/// Every hostile piece, as the YAML double-quoted escapes that produce it.
const HOSTILE_YAML: &str = "first line\\n\\e[8mhidden\\e]52;c;aGk=\\a\\rback\\e[2A\\e[K\\u202Eevil\\n[click](http://evil) ![x](http://evil/i.png)";

/// The same text, decoded.
const HOSTILE: &str = "first line\n\u{1b}[8mhidden\u{1b}]52;c;aGk=\u{7}\rback\u{1b}[2A\u{1b}[K\u{202e}evil\n[click](http://evil) ![x](http://evil/i.png)";

fn config(backend: &str, account: &str, key: &str) -> String {
    format!(
        "organization: acme
{backend}secrets:
  recipients_file: ../examples/demo-recipients.txt
service_accounts:
  bot:
{account}    keys:
      main:
        description: {key}
"
    )
}

fn run(sb: &Sandbox, args: &[&str]) -> Out {
    sb.cmd(args)
        .now(T0)
        .env("SVCACCT_TEST_TOKEN", OPERATOR)
        .run()
}

/// No raw control byte but newlines, no DEL, no C1 byte, no bidi control.
#[track_caller]
fn assert_clean(what: &str, text: &str) {
    let bad: Vec<(usize, char)> = text
        .char_indices()
        .filter(|(_, c)| {
            (c.is_control() && *c != '\n')
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect();
    assert!(bad.is_empty(), "{what} has raw {bad:?}:\n{text}");
    assert!(
        !text.bytes().any(|b| b == 0x7f || b == 0x9b),
        "{what}:\n{text}"
    );
}

/// The text with svcacct's own colour sequences (`ESC [ … m`) taken out.
fn strip_sgr(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Plans in every format; each is clean, colour adds nothing but colour, and JSON keeps the
/// exact text. Returns the plain text and the Markdown.
fn plans(sb: &Sandbox, field: &str, before: &str, after: &str) -> (String, String) {
    let plain = run(sb, &["--color", "never", "plan", "-c", CFG]);
    plain.ok();
    assert_clean("text plan", &plain.stdout);
    let color = run(sb, &["--color", "always", "plan", "-c", CFG]);
    color.ok();
    assert!(has_ansi(&color.stdout), "colour is on");
    assert_eq!(
        strip_sgr(&color.stdout),
        plain.stdout,
        "without its own colours, the coloured plan is the plain one"
    );
    assert_clean("coloured plan", &strip_sgr(&color.stdout));

    let md = run(sb, &["plan", "--format", "markdown", "-c", CFG]);
    md.ok();
    assert_clean("markdown plan", &md.stdout);
    for live in ["](", "!["] {
        assert!(!md.stdout.contains(live), "{live} in:\n{}", md.stdout);
    }

    let js = run(sb, &["plan", "--format", "json", "-c", CFG]);
    js.ok();
    assert_clean("json plan", &js.stdout);
    let plan: Value = js.json();
    assert_eq!(plan["changes"][0]["before"][field], before);
    assert_eq!(plan["changes"][0]["after"][field], after);
    (plain.stdout, md.stdout)
}

#[test]
fn hostile_descriptions_from_the_config_are_shown_escaped() {
    let sb = Sandbox::new();
    demo_files(&sb);
    sb.write(
        CFG,
        &config(
            "",
            "    description: \"first line\\nsecond line\"\n",
            "plain",
        ),
    );
    run(&sb, &["apply", "--yes", "-c", CFG]).ok();
    sb.write(
        CFG,
        &config(
            "",
            &format!("    description: \"{HOSTILE_YAML}\"\n    admin: true\n"),
            "plain",
        ),
    );
    let (text, md) = plans(&sb, "description", "first line\nsecond line", HOSTILE);
    assert_eq!(
        text,
        r"Plan for organization acme at revision 3

  ~ service_account.bot (update)
      admin: false → true
      description:
          first line
        - second line
        + \u{1b}[8mhidden\u{1b}]52;c;aGk=\u{7}\u{d}
        + back\u{1b}[2A\u{1b}[K\u{202e}evil
        + [click](http://evil) ![x](http://evil/i.png)
      last changed live 2026-01-01T00:00:00Z by svcacct:svcacct-test (put_service_account)

Permission changes (who gains and loses what):
    service_account.bot: + *:* (widening)

Plan: 1 to update.
"
    );
    // The row of the change, every hostile character escaped (the review's own lines follow).
    let row = r"| `~` | `service_account.bot` | update | admin: false → true<br>description:<br>first line<br>\- second line<br>\+ \\u\{1b\}\[8mhidden\\u\{1b\}\]52;c;aGk=\\u\{7\}\\u\{d\}<br>\+ back\\u\{1b\}\[2A\\u\{1b\}\[K\\u\{202e\}evil<br>\+ \[click\]\(http://evil\) \!\[x\]\(http://evil/i\.png\)<br>";
    assert!(md.contains(row), "{md}");
    assert!(
        md.contains("- **widens** `service_account.bot` gains `*:*`"),
        "{md}"
    );

    // Applying prints the same escaped plan and an escaped summary.
    let out = run(&sb, &["apply", "--yes", "-v", "-c", CFG]);
    out.ok();
    assert_clean("apply output", &out.all());
    assert!(out.stdout.contains("admin: false → true"), "{}", out.stdout);
    assert!(out.stdout.contains("Apply complete"), "{}", out.stdout);
}

#[test]
fn hostile_descriptions_set_through_the_api_are_shown_escaped() {
    let sb = Sandbox::new();
    demo_files(&sb);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server.db"), Some(T0));
    let backend = format!(
        "backend:\n  type: http\n  url: {}\n  token_env: SVCACCT_TEST_TOKEN\n",
        server.url
    );
    sb.write(CFG, &config(&backend, "", "plain"));
    run(&sb, &["apply", "--yes", "-c", CFG]).ok();

    let resp = reqwest::blocking::Client::new()
        .patch(format!(
            "{}/v1/organizations/acme/service_accounts/bot/keys/main",
            server.url
        ))
        .bearer_auth(OPERATOR)
        .json(&json!({ "description": HOSTILE }))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    let (text, md) = plans(&sb, "description", HOSTILE, "plain");
    assert!(
        text.contains(
            r"        - \u{1b}[8mhidden\u{1b}]52;c;aGk=\u{7}\u{d}
        - back\u{1b}[2A\u{1b}[K\u{202e}evil"
        ) && text.contains("        + plain\n")
            && text.contains("Plan: 1 to update."),
        "{text}"
    );
    assert!(md.contains(r"\[click\]\(http://evil\)"), "{md}");

    // Export writes the live text as YAML escapes (its emitter's own; bidi controls it
    // leaves as they are, inside a quoted string).
    let out = run(&sb, &["export", "-c", CFG]);
    out.ok();
    assert_clean(
        "export",
        &out.stdout.replace(
            |c| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'),
            "",
        ),
    );
    assert!(
        out.stdout.contains(r"\e[8mhidden\e]52;c;aGk=\a"),
        "{}",
        out.stdout
    );
}

#[test]
fn config_errors_echo_hostile_values_escaped() {
    let sb = Sandbox::new();
    demo_files(&sb);
    // Raw control bytes in the file: the parser refuses them and its snippet echoes the line.
    sb.write(
        CFG,
        &config(
            "",
            "    description: \"x\u{1b}]52;c;aGk=\u{7}\u{1b}[8my\u{202e}\"\n",
            "plain",
        ),
    );
    let out = run(&sb, &["plan", "-c", CFG]);
    out.expect(1);
    assert_clean("config error", &out.stderr);
    assert!(
        out.stderr
            .contains(r#"description: "x\u{1b}]52;c;aGk=\u{7}\u{1b}[8my\u{202e}""#),
        "{}",
        out.stderr
    );
}

//! What packagers and operators rely on: shell completions and the man page naming every
//! command (the list comes from the clap types, so a new command without them fails here),
//! the operator token read from a private file, and the container's health probe against a
//! real server.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use clap::CommandFactory;

use crate::common::*;

/// Every command as the user types it: `plan`, `secrets prune`, ... (hidden ones aside).
fn every_command() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_string());
            walk(sub, &path, out);
            out.push(path);
        }
    }
    let mut out = Vec::new();
    walk(&svcacct::cli::Cli::command(), &[], &mut out);
    assert!(out.len() > 10, "{out:?}");
    out
}

#[test]
fn completions_of_every_shell_name_every_command() {
    let sb = Sandbox::new();
    let commands = every_command();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = sb.run(&["completions", shell]);
        out.ok();
        assert!(out.stderr.is_empty(), "{shell}: {}", out.stderr);
        for path in &commands {
            let leaf = path.last().unwrap();
            assert!(
                out.stdout.contains(leaf.as_str()),
                "the {shell} completions do not name `{}`",
                path.join(" ")
            );
        }
        // Flags of a nested command are completed too.
        assert!(out.stdout.contains("lock-timeout"), "{shell}");
    }
    sb.run(&["completions", "tcsh"]).expect(2);
}

#[test]
fn the_bash_completion_script_parses_and_completes() {
    let sb = Sandbox::new();
    let script = sb.join("svcacct.bash");
    std::fs::write(&script, sb.run(&["completions", "bash"]).stdout).unwrap();
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(syntax.status.success(), "{syntax:?}");
    // Load it and ask bash itself what `svcacct secrets pr<TAB>` and `svcacct se<TAB>` give.
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let probe = format!(
            "source {script}\n\
             COMP_WORDS=({words})\nCOMP_CWORD={cword}\nCOMP_LINE='{line}'\nCOMP_POINT=${{#COMP_LINE}}\n\
             _svcacct svcacct '{cur}' '{prev}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            script = script.display(),
            words = words.join(" "),
            cword = words.len() - 1,
            cur = words[words.len() - 1],
            prev = words[words.len() - 2],
        );
        let out = Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &probe])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let secrets = complete("svcacct secrets pr");
    assert_eq!(secrets.trim(), "prune", "{secrets}");
    let top = complete("svcacct se");
    let top: Vec<&str> = top.split_whitespace().collect();
    assert_eq!(top, ["secrets", "serve"]);
    // Every command, nested ones included, is offered where it is typed.
    for path in every_command() {
        let (leaf, parent) = path.split_last().unwrap();
        let line = format!(
            "svcacct {}",
            parent.iter().map(|p| format!("{p} ")).collect::<String>()
        );
        let offered = complete(&line);
        assert!(
            offered.split_whitespace().any(|w| w == leaf),
            "`{line}<TAB>` does not offer {leaf}: {offered}"
        );
    }
}

#[test]
fn the_man_page_documents_every_command_and_renders() {
    let sb = Sandbox::new();
    let out = sb.run(&["man"]);
    out.ok();
    let page = &out.stdout;
    assert!(
        page.starts_with(".ie") || page.contains(".TH svcacct 1"),
        "{page}"
    );
    for path in every_command() {
        if path.len() == 1 && path[0] == "secrets" {
            continue; // a group: its commands have the sections
        }
        let header = format!(".SS \"svcacct {}\"", path.join(" "));
        assert!(page.contains(&header), "the man page has no {header}");
    }
    // Options of a command are documented under it, with their defaults.
    assert!(page.contains("\\-\\-lock\\-timeout <LOCK_TIMEOUT> [default: 60]"));

    // groff renders it without a warning (-ww), and man reads it as a page.
    let file = sb.join("svcacct.1");
    std::fs::write(&file, page).unwrap();
    let groff = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&file)
        .output()
        .expect("groff is installed (Debian's groff-base; scripts/test installs it)");
    assert!(groff.status.success(), "{groff:?}");
    assert!(
        groff.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&groff.stderr)
    );
    let man = Command::new("man")
        .arg("-l")
        .arg(&file)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .expect("man is installed (Debian's man-db; scripts/test installs it)");
    assert!(man.status.success(), "{man:?}");
    let text = String::from_utf8_lossy(&man.stdout);
    assert!(text.contains("svcacct secrets prune"), "{text}");
    assert!(text.contains("COMMANDS"), "{text}");
}

/// Starts `svcacct serve` with the token in `token_file` (by flag or by variable); the
/// server's URL, or its failure's stderr.
fn serve_with_token_file(
    sb: &Sandbox,
    token_file: &std::path::Path,
    by_env: bool,
) -> Result<(std::process::Child, String), String> {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--db"])
        .arg(sb.join("org.db"))
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("SVCACCT_ADMIN_TOKEN")
        .env_remove("SVCACCT_ADMIN_TOKEN_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if by_env {
        cmd.env("SVCACCT_ADMIN_TOKEN_FILE", token_file);
    } else {
        cmd.arg("--admin-token-file").arg(token_file);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref().map_while(Result::ok) {
        if let Some(url) = line.strip_prefix("listening on ") {
            std::thread::spawn(move || for _ in lines {});
            return Ok((child, url.trim().to_string()));
        }
        seen.push_str(&line);
        seen.push('\n');
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{seen}");
    Err(seen)
}

fn stop(mut child: std::process::Child) {
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn the_operator_token_file_must_be_private_and_not_empty() {
    let sb = Sandbox::new();
    let file = sb.write("token", &format!("{OPERATOR}\n"));
    let mode =
        |m: u32| std::fs::set_permissions(&file, std::fs::Permissions::from_mode(m)).unwrap();

    for (m, by_env) in [
        (0o644, false),
        (0o640, true),
        (0o604, false),
        (0o620, false),
    ] {
        mode(m);
        let err =
            serve_with_token_file(&sb, &file, by_env).expect_err("a shared token file is refused");
        assert!(err.contains(&format!("mode {m:04o}")), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains(OPERATOR), "the token is never printed: {err}");
    }

    mode(0o600);
    std::fs::write(&file, "  \n").unwrap();
    let err = serve_with_token_file(&sb, &file, false).expect_err("an empty file is refused");
    assert!(err.contains("is empty"), "{err}");
    let err = serve_with_token_file(&sb, &sb.join("missing"), true).expect_err("no file");
    assert!(err.contains("cannot read admin token file"), "{err}");

    // A private file works, by flag and by SVCACCT_ADMIN_TOKEN_FILE (what the container and
    // the systemd unit use).
    std::fs::write(&file, format!("{OPERATOR}\n")).unwrap();
    mode(0o400);
    for by_env in [false, true] {
        let (child, url) = serve_with_token_file(&sb, &file, by_env).expect("the server starts");
        let whoami = reqwest::blocking::Client::new()
            .get(format!("{url}/v1/whoami"))
            .bearer_auth(OPERATOR)
            .send()
            .unwrap();
        assert_eq!(whoami.status(), reqwest::StatusCode::OK);
        stop(child);
    }
}

#[test]
fn healthcheck_exits_0_on_a_ready_server_and_1_otherwise() {
    let sb = Sandbox::new();
    let server = Server::start(&sb.join("org.db"), None);
    let ready = sb.run(&["healthcheck", "--url", &format!("{}/v1/ready", server.url)]);
    ready.ok();
    assert!(ready.stdout.contains("200"), "{}", ready.stdout);

    // The variable the container image sets works as --url does.
    sb.cmd(&["healthcheck"])
        .env(
            "SVCACCT_HEALTHCHECK_URL",
            &format!("{}/v1/ready", server.url),
        )
        .run()
        .ok();

    // A 404 is not ready, and says what answered.
    let missing = sb.run(&["healthcheck", "--url", &format!("{}/v1/nope", server.url)]);
    missing.expect(1);
    assert!(missing.stderr.contains("404"), "{}", missing.stderr);

    // Nothing listening: not ready, within the timeout.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let started = std::time::Instant::now();
    let down = sb.run(&[
        "healthcheck",
        "--timeout",
        "2",
        "--url",
        &format!("http://127.0.0.1:{port}/v1/ready"),
    ]);
    down.expect(1);
    assert!(down.stderr.starts_with("not ready:"), "{}", down.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    sb.run(&["healthcheck", "--url", "not a url"]).expect(1);
}

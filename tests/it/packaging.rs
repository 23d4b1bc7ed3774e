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

/// The commands that only group others (`secrets`, `policy`).
fn command_groups() -> Vec<Vec<String>> {
    let cli = svcacct::cli::Cli::command();
    every_command()
        .into_iter()
        .filter(|path| {
            let mut cmd = &cli;
            for name in path {
                cmd = cmd.find_subcommand(name).expect("a command of the path");
            }
            cmd.has_subcommands()
        })
        .collect()
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
    let groups = command_groups();
    for path in every_command() {
        if groups.contains(&path) {
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
    // A FIFO (or a directory) is refused, without waiting for a writer.
    let fifo = sb.join("token.fifo");
    assert!(
        Command::new("mkfifo")
            .arg("-m")
            .arg("600")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let err = serve_with_token_file(&sb, &fifo, false).expect_err("a FIFO is refused");
    assert!(err.contains("is not a regular file"), "{err}");
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

/// A stand-in for a release binary: a small script that runs the binary under test, so the
/// tarballs stay small and the "installed" svcacct is real.
fn wrapper(sb: &Sandbox, name: &str) -> std::path::PathBuf {
    let path = sb.write(name, &format!("#!/bin/sh\nexec {BIN} \"$@\"\n"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn package(sb: &Sandbox, version: &str, dist: &str) -> Out {
    let bin = wrapper(sb, "build/svcacct");
    Out::from(
        Command::new("bash")
            .arg(repo().join("scripts/package-release"))
            .args([version, dist, "x86_64-unknown-linux-gnu"])
            .arg(&bin)
            .arg("aarch64-unknown-linux-gnu")
            .arg(&bin)
            .current_dir(sb.root())
            .env("SOURCE_DATE_EPOCH", "1767225600")
            .output()
            .unwrap(),
    )
}

/// Runs the action's install.sh as its step does, with `env`; the step's result and what it
/// added to $GITHUB_PATH.
fn install(sb: &Sandbox, env: &[(&str, &str)]) -> (Out, String) {
    let github_path = sb.join("runner/github_path");
    std::fs::create_dir_all(sb.join("runner/temp")).unwrap();
    let _ = std::fs::remove_file(&github_path);
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join(".github/actions/svcacct/install.sh"))
        .current_dir(sb.root())
        .env("RUNNER_TEMP", sb.join("runner/temp"))
        .env("GITHUB_PATH", &github_path)
        .env("SVCACCT_INSTALL", "release")
        .env("SVCACCT_INSTALL_VERSION", "0.1.0")
        .env(
            "SVCACCT_RELEASE_URL",
            format!("file://{}", sb.join("dist").display()),
        )
        .env_remove("SVCACCT_RELEASE_SHA256")
        .env_remove("SVCACCT_ACTION_REPOSITORY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = Out::from(cmd.output().unwrap());
    (
        out,
        std::fs::read_to_string(&github_path).unwrap_or_default(),
    )
}

#[test]
fn release_tarballs_install_through_the_action_only_when_their_checksum_matches() {
    let sb = Sandbox::new();
    let out = package(&sb, "0.1.0", "dist");
    out.ok();
    let sums = sb.read("dist/SHA256SUMS");
    let assets: Vec<&str> = sums
        .lines()
        .map(|l| l.split_once("  ").unwrap().1)
        .collect();
    assert_eq!(
        assets,
        [
            "svcacct-0.1.0-aarch64-unknown-linux-gnu.tar.gz",
            "svcacct-0.1.0-x86_64-unknown-linux-gnu.tar.gz"
        ]
    );
    let check = Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(sb.join("dist"))
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    let listing = Command::new("tar")
        .arg("-tzvf")
        .arg(sb.join("dist/svcacct-0.1.0-x86_64-unknown-linux-gnu.tar.gz"))
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    for file in [
        "svcacct",
        "README.md",
        "svcacct.1",
        "completions/svcacct.bash",
        "completions/_svcacct",
        "completions/svcacct.fish",
        "completions/_svcacct.ps1",
    ] {
        assert!(
            listing.contains(&format!(" svcacct-0.1.0-x86_64-unknown-linux-gnu/{file}\n")),
            "{file} is not in the tarball:\n{listing}"
        );
    }
    assert!(listing.contains("0/0"), "owned by root: {listing}");
    // Reproducible: the same inputs give the same checksums.
    package(&sb, "0.1.0", "dist2").ok();
    assert_eq!(sb.read("dist2/SHA256SUMS"), sums);
    // A tag that is not the binary's version is refused.
    let wrong = package(&sb, "9.9.9", "dist3");
    wrong.expect(1);
    assert!(
        wrong.stderr.contains("is the tag right?"),
        "{}",
        wrong.stderr
    );

    // The action installs the runner's tarball once it matches SHA256SUMS.
    let (out, path) = install(&sb, &[]);
    out.ok();
    let dir = path.trim();
    assert!(
        dir.ends_with("svcacct-0.1.0-x86_64-unknown-linux-gnu"),
        "{path}"
    );
    let version = Command::new(format!("{dir}/svcacct"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(version.stdout).unwrap().trim(),
        "svcacct 0.1.0"
    );
    // A pinned checksum that matches is accepted; one that does not is refused.
    let x86 = "svcacct-0.1.0-x86_64-unknown-linux-gnu.tar.gz";
    let pinned = sums.lines().find(|l| l.ends_with(x86)).unwrap()[..64].to_string();
    install(&sb, &[("SVCACCT_RELEASE_SHA256", &pinned)]).0.ok();
    let (out, path) = install(&sb, &[("SVCACCT_RELEASE_SHA256", &"0".repeat(64))]);
    out.expect(1);
    assert!(out.stderr.contains("not the pinned"), "{}", out.stderr);
    assert!(path.is_empty(), "nothing installed: {path}");

    // A tarball changed after SHA256SUMS was made is refused, and nothing is installed.
    let tarball = sb.join(&format!("dist/{x86}"));
    let mut bytes = std::fs::read(&tarball).unwrap();
    bytes.push(0);
    std::fs::write(&tarball, bytes).unwrap();
    let (out, path) = install(&sb, &[]);
    out.expect(1);
    assert!(
        out.stderr.contains("does not match its SHA-256"),
        "{}",
        out.stderr
    );
    assert!(path.is_empty(), "nothing installed: {path}");
    // So is a SHA256SUMS that does not list the tarball.
    sb.write("dist/SHA256SUMS", &sums.replace(x86, "other.tar.gz"));
    let (out, _) = install(&sb, &[]);
    out.expect(1);
    assert!(out.stderr.contains("does not list"), "{}", out.stderr);
    // A local copy of the action must be told where releases are.
    let (out, _) = install(&sb, &[("SVCACCT_RELEASE_URL", "")]);
    out.expect(1);
    assert!(out.stderr.contains("needs release-url"), "{}", out.stderr);
    // And a version that is not one.
    let (out, _) = install(&sb, &[("SVCACCT_INSTALL_VERSION", "0.1.0; touch pwned")]);
    out.expect(1);
    assert!(
        out.stderr.contains("invalid svcacct version"),
        "{}",
        out.stderr
    );
    assert!(!sb.join("pwned").exists());
}

/// Runs the action's run.sh as its step does, svcacct on PATH; the step's result and its
/// outputs.
fn action_run(sb: &Sandbox, env: &[(&str, &str)]) -> (Out, String) {
    let tools = sb.join("tools");
    if !tools.exists() {
        std::fs::create_dir_all(&tools).unwrap();
        std::os::unix::fs::symlink(BIN, tools.join("svcacct")).unwrap();
    }
    let output = sb.join("github_output");
    let _ = std::fs::remove_file(&output);
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join(".github/actions/svcacct/run.sh"))
        .current_dir(sb.root())
        .env(
            "PATH",
            format!("{}:{}", tools.display(), std::env::var("PATH").unwrap()),
        )
        .env("GITHUB_OUTPUT", &output)
        .env("SVCACCT_NOW", T0)
        .env("USER", "svcacct-test")
        .env("SVCACCT_CACHE_DIR", sb.join(".svcacct-cache"))
        .env_remove("SVCACCT_CONFIG")
        .env_remove("SVCACCT_BACKEND_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = Out::from(cmd.output().unwrap());
    (out, std::fs::read_to_string(&output).unwrap_or_default())
}

#[test]
fn the_action_plans_applies_and_says_whether_there_are_changes() {
    let sb = Sandbox::new();
    let config = format!("{}/svcacct.yaml", sb.copy_example("small"));
    let plan = [
        ("SVCACCT_COMMAND", "plan"),
        ("SVCACCT_CONFIG_PATH", config.as_str()),
    ];

    let (out, outputs) = action_run(&sb, &plan);
    out.ok();
    assert_eq!(outputs, "exit-code=2\nchanges=true\n");
    assert!(
        out.stdout.contains("+ key.ci-bot.github-actions-prod"),
        "{}",
        out.stdout
    );

    // Arguments and an output file: the saved plan is applied exactly.
    let (out, _) = action_run(
        &sb,
        &[
            plan[0],
            plan[1],
            ("SVCACCT_ARGS", "--format markdown --out saved/plan.json"),
            ("SVCACCT_OUTPUT", "saved/comment.md"),
        ],
    );
    out.ok();
    assert!(
        sb.read("saved/comment.md").contains("<!-- svcacct-plan"),
        "markdown"
    );
    let (out, outputs) = action_run(
        &sb,
        &[
            ("SVCACCT_COMMAND", "apply"),
            ("SVCACCT_CONFIG_PATH", config.as_str()),
            ("SVCACCT_PLAN_FILE", "saved/plan.json"),
        ],
    );
    out.ok();
    assert_eq!(outputs, "exit-code=0\nchanges=false\n");
    let (out, outputs) = action_run(&sb, &plan);
    out.ok();
    assert_eq!(outputs, "exit-code=0\nchanges=false\n");

    // A failure fails the step; an input is data, never shell.
    let (out, outputs) = action_run(
        &sb,
        &[
            ("SVCACCT_COMMAND", "validate"),
            ("SVCACCT_CONFIG_PATH", "$(touch pwned).yaml"),
            ("SVCACCT_ARGS", "; touch pwned2 *"),
        ],
    );
    out.expect(1);
    assert!(outputs.starts_with("exit-code=2\n") || outputs.starts_with("exit-code=1\n"));
    assert!(!sb.join("pwned").exists() && !sb.join("pwned2").exists());
    let (out, _) = action_run(&sb, &[("SVCACCT_COMMAND", "destroy")]);
    out.expect(1);
    assert!(
        out.stderr
            .contains("must be plan, apply, validate or install")
    );
}

#[test]
fn the_action_passes_every_input_through_the_environment() {
    // zizmor checks this too; here it is a test that a new input cannot skip.
    let action =
        std::fs::read_to_string(repo().join(".github/actions/svcacct/action.yml")).unwrap();
    let mut seen = 0;
    for line in action.lines() {
        if let Some(at) = line.find("${{ inputs.") {
            seen += 1;
            let before = line[..at].trim();
            let in_env = before.starts_with("SVCACCT_") && before.ends_with(':');
            let harmless = before == "- name: svcacct" || before.starts_with("if:");
            assert!(in_env || harmless, "an input outside env: {line}");
        }
        assert!(
            !(line.trim_start().starts_with("run:") && line.contains("${{")),
            "an expression in a run: script: {line}"
        );
    }
    assert!(seen >= 9, "{seen}");
}

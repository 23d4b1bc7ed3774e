//! A config under review is written by whoever opens the pull request, while the CI job that
//! runs svcacct holds real credentials. These tests play that author: the config tries to
//! send a token elsewhere, read files outside its tree, hide objects behind unreadable files,
//! or write keys through symlinks, and svcacct refuses before anything happens.

use std::io::Read;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;

const CFG: &str = "org/svcacct.yaml";

/// A fake secret a CI job might hold; it must never appear in any output.
const FAKE_SECRET: &str = "svca_AAAAfakeCIsecretDoNotLeak0123456789zzzz";

/// A TCP listener on loopback that records every byte anyone sends it.
struct Recorder {
    url: String,
    received: Arc<Mutex<Vec<u8>>>,
    connections: Arc<Mutex<usize>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (r, c) = (received.clone(), connections.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                *c.lock().unwrap() += 1;
                stream
                    .set_read_timeout(Some(Duration::from_millis(300)))
                    .unwrap();
                let mut buf = [0u8; 4096];
                // Whatever arrives until the client stops sending; then the connection drops,
                // so a client that did connect fails fast instead of waiting on an answer.
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    r.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            }
        });
        Recorder {
            url,
            received,
            connections,
        }
    }

    #[track_caller]
    fn assert_untouched(&self) {
        let bytes = self.received.lock().unwrap().clone();
        assert_eq!(
            *self.connections.lock().unwrap(),
            0,
            "nobody connected; received: {}",
            String::from_utf8_lossy(&bytes)
        );
        assert!(bytes.is_empty());
    }
}

fn http_backend(url: &str, token_env: &str) -> String {
    format!("backend:\n  type: http\n  url: {url}\n  token_env: {token_env}\n")
}

/// A config of two accounts with `backend` (YAML text, may be empty) in `org/svcacct.yaml`.
fn config(sb: &Sandbox, backend: &str) -> String {
    let text = many_accounts_yaml("acme", 2, 1, backend);
    sb.write(CFG, &text);
    text
}

/// The `line:column` where `needle` starts in `text`.
fn place(text: &str, needle: &str) -> String {
    let offset = text.find(needle).expect("needle in text");
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("{line}:{column}")
}

/// Every command that opens a backend, and validate.
const COMMANDS: &[&[&str]] = &[
    &["validate", "-c", CFG],
    &["plan", "-c", CFG],
    &["apply", "--yes", "-c", CFG],
    &["export", "-c", CFG],
    &["verify", "-c", CFG],
];

/// Runs every command; each must exit 1 naming all of `says`, and leave the sandbox as it was.
#[track_caller]
fn all_refused(sb: &Sandbox, env: &[(&str, &str)], says: &[&str]) {
    let before = sb.files();
    for args in COMMANDS {
        let mut cmd = sb.cmd(args).now(T0).stdin(format!("{FAKE_SECRET}\n"));
        for (k, v) in env {
            cmd = cmd.env(k, v);
        }
        let out = cmd.run();
        out.expect(1);
        for s in says {
            assert!(
                out.stderr.contains(s),
                "`{}` says `{s}`:\n{}",
                args.join(" "),
                out.stderr
            );
        }
        assert!(
            !out.all().contains(FAKE_SECRET) && !out.all().contains(OPERATOR),
            "no secret in the output of `{}`:\n{}",
            args.join(" "),
            out.all()
        );
    }
    let after = sb.files();
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "no file appeared"
    );
}

#[test]
fn a_pinned_backend_url_refuses_a_config_that_names_another() {
    let sb = Sandbox::new();
    demo_files(&sb);
    let server = Server::start(&sb.join("server.db"), Some(T0));
    let recorder = Recorder::start();
    let text = config(&sb, &http_backend(&recorder.url, "SVCACCT_TOKEN"));
    let at = format!("{CFG}:{}", place(&text, &recorder.url));
    all_refused(
        &sb,
        &[
            ("SVCACCT_BACKEND_URL", &server.url),
            ("SVCACCT_TOKEN", OPERATOR),
        ],
        &[&recorder.url, &server.url, &at, "pinned"],
    );
    // The global flag pins the same way, before or after the command.
    let out = sb
        .cmd(&["--backend-url", &server.url, "plan", "-c", CFG])
        .env("SVCACCT_TOKEN", OPERATOR)
        .run();
    out.expect(1);
    assert!(out.stderr.contains(&at), "{}", out.stderr);
    sb.cmd(&["plan", "-c", CFG, "--backend-url", &server.url])
        .env("SVCACCT_TOKEN", OPERATOR)
        .run()
        .expect(1);
    recorder.assert_untouched();
    // Unpinned, the same config does reach the recorder: the refusal above is the pin's.
    let out = sb
        .cmd(&["plan", "-c", CFG])
        .env("SVCACCT_TOKEN", FAKE_SECRET)
        .run();
    out.expect(1);
    assert!(!out.all().contains(FAKE_SECRET));
    assert!(
        contains_bytes(&recorder.received.lock().unwrap(), FAKE_SECRET.as_bytes()),
        "without a pin the token goes where the config says"
    );
}

#[test]
fn a_pinned_backend_url_refuses_a_local_backend() {
    let sb = Sandbox::new();
    demo_files(&sb);
    let recorder = Recorder::start();
    let text = config(&sb, "backend:\n  type: local\n  path: stolen.db\n");
    let at = format!("{CFG}:{}", place(&text, "type: local"));
    all_refused(
        &sb,
        &[("SVCACCT_BACKEND_URL", &recorder.url)],
        &["backend `local` is refused", &recorder.url, &at],
    );
    assert!(!sb.join("org/stolen.db").exists());
    recorder.assert_untouched();
}

#[test]
fn token_env_names_a_svcacct_variable_unless_allowed() {
    let sb = Sandbox::new();
    demo_files(&sb);
    let recorder = Recorder::start();
    let text = config(&sb, &http_backend(&recorder.url, "AWS_SECRET_ACCESS_KEY"));
    let at = format!("{CFG}:{}", place(&text, "AWS_SECRET_ACCESS_KEY"));
    // Unpinned: the name alone is refused, offline.
    all_refused(
        &sb,
        &[("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)],
        &["token_env `AWS_SECRET_ACCESS_KEY` is not allowed", &at],
    );
    recorder.assert_untouched();

    // Pinned to a real server and allowed by flag or variable, it works.
    let server = Server::start(&sb.join("server.db"), Some(T0));
    config(&sb, &http_backend(&server.url, "AWS_SECRET_ACCESS_KEY"));
    let env = |cmd: Cmd| {
        cmd.env("SVCACCT_BACKEND_URL", &server.url)
            .env("AWS_SECRET_ACCESS_KEY", OPERATOR)
    };
    let out = env(sb.cmd(&["plan", "-c", CFG])).run();
    out.expect(1);
    assert!(out.stderr.contains(&at), "{}", out.stderr);
    env(sb.cmd(&[
        "plan",
        "--allow-token-env",
        "OTHER",
        "--allow-token-env",
        "AWS_SECRET_ACCESS_KEY",
        "-c",
        CFG,
    ]))
    .now(T0)
    .run()
    .ok();
    env(sb.cmd(&["plan", "-c", CFG]))
        .env("SVCACCT_ALLOW_TOKEN_ENV", "OTHER,AWS_SECRET_ACCESS_KEY")
        .now(T0)
        .run()
        .ok();
}

#[test]
fn a_config_matching_the_pin_or_naming_no_url_uses_the_pinned_server() {
    let sb = Sandbox::new();
    demo_files(&sb);
    let server = Server::start(&sb.join("server.db"), Some(T0));
    let pinned = |cmd: Cmd| {
        cmd.env("SVCACCT_BACKEND_URL", &server.url)
            .env("SVCACCT_TOKEN", OPERATOR)
            .now(T0)
    };
    // The same URL, written with a trailing slash.
    let same = format!("{}/", server.url);
    for backend in [
        http_backend(&same, "SVCACCT_TOKEN"),
        "backend:\n  type: http\n".to_string(),
        String::new(),
    ] {
        config(&sb, &backend);
        pinned(sb.cmd(&["validate", "-c", CFG])).run().ok();
        let out = pinned(sb.cmd(&["plan", "--format", "json", "-c", CFG])).run();
        out.ok();
        assert_eq!(out.json()["organization"], "acme", "{backend}");
    }
    // The last config named no backend: it went to the server, not to a local file.
    pinned(sb.cmd(&["apply", "--yes", "-q", "-c", CFG]))
        .run()
        .ok();
    assert!(!sb.join("org/.svcacct").exists());
    assert_eq!(current_keys(&sb.join("server.db")).len(), 2);
    // Without a pin, an http backend with no url is a config error.
    config(&sb, "backend:\n  type: http\n");
    let out = sb.run(&["validate", "-c", CFG]);
    out.expect(1);
    assert!(out.stderr.contains("needs a `url`"), "{}", out.stderr);
    // A malformed pin is refused up front.
    let out = sb
        .cmd(&["validate", "-c", CFG])
        .env("SVCACCT_BACKEND_URL", "ftp://x")
        .run();
    out.expect(1);
    assert!(out.stderr.contains("pinned backend url"), "{}", out.stderr);
}

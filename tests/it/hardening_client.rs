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
    let at = format!("{CFG}:{}", place(&text, "type: http"));
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
    let at = format!("{CFG}:{}", place(&text, "type: http"));
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

/// Runs `cmd`, failing the test if it does not finish within a bound far above its normal
/// time: a hang on a FIFO or an endless read of a device.
#[track_caller]
fn run_bounded(cmd: Cmd) -> Out {
    let mut child = cmd.spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = Out::from(child.wait_with_output().unwrap());
            panic!("svcacct hung: {out:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Out::from(child.wait_with_output().unwrap())
}

fn mkfifo(path: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo(3) on a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

#[test]
fn a_recipients_file_is_a_small_regular_file_in_the_config_tree_and_never_quoted() {
    let sb = Sandbox::new();
    let outside = tempfile::tempdir().unwrap();
    let secret_file = outside.path().join("ci-token");
    std::fs::write(&secret_file, format!("{FAKE_SECRET}\n")).unwrap();
    std::fs::write(sb.join("escape.txt"), format!("{FAKE_SECRET}\n")).unwrap();
    let org = sb.join("org");
    std::fs::create_dir_all(org.join("dir.txt")).unwrap();
    std::os::unix::fs::symlink(&secret_file, org.join("link.txt")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", org.join("zero.txt")).unwrap();
    mkfifo(&org.join("fifo.txt"));
    std::fs::write(
        org.join("big.txt"),
        format!("{FAKE_SECRET}\n").repeat(64 * 1024 / FAKE_SECRET.len() + 10),
    )
    .unwrap();
    std::fs::write(
        org.join("recipients.txt"),
        format!("# the team's keys\n{FAKE_SECRET}\n"),
    )
    .unwrap();

    let secret_path = secret_file.display().to_string();
    let cases: &[(&str, &str)] = &[
        (&secret_path, "outside the config's directory tree"),
        ("/dev/zero", "outside the config's directory tree"),
        ("/proc/self/environ", "outside the config's directory tree"),
        ("../escape.txt", "outside the config's directory tree"),
        ("link.txt", "outside the config's directory tree"),
        ("zero.txt", "outside the config's directory tree"),
        ("fifo.txt", "it is a FIFO, not a regular file"),
        ("dir.txt", "it is a directory, not a regular file"),
        ("missing.txt", "No such file"),
        ("big.txt", "larger than 64 KiB"),
        ("recipients.txt", "line 2 of recipients file"),
    ];
    for (file, says) in cases {
        let text = format!(
            "organization: acme\nsecrets:\n  recipients_file: {file}\nservice_accounts:\n  a:\n    keys:\n      k: {{}}\n"
        );
        std::fs::write(org.join("svcacct.yaml"), text).unwrap();
        // Run in the config's directory, so that the tree is `org/` and `..` leaves it.
        for command in ["validate", "plan"] {
            let out = run_bounded(Cmd::new(&org, &[command, "-c", "svcacct.yaml"]));
            out.expect(1);
            for s in [*says, "svcacct.yaml:3:20", file] {
                assert!(
                    out.stderr.contains(s),
                    "{file}: says `{s}`:\n{}",
                    out.stderr
                );
            }
            assert!(
                !out.all().contains(&FAKE_SECRET[..12]),
                "{file}: no byte of the file in the output:\n{}",
                out.all()
            );
        }
    }
    assert!(!org.join(".svcacct").exists(), "nothing was created");
}

#[test]
fn an_unreadable_yaml_entry_in_a_config_directory_is_an_error_not_skipped() {
    let sb = Sandbox::new();
    demo_files(&sb);
    sb.write(CFG, &many_accounts_yaml("acme", 2, 1, ""));
    sb.apply("org", T0);
    let b = sb.join("org/b.yaml");
    let cases: &[(&str, &dyn Fn(), &str)] = &[
        (
            "dangling symlink",
            &|| std::os::unix::fs::symlink("moved-away.yaml", &b).unwrap(),
            "symbolic link to a file that does not exist",
        ),
        (
            "symlink loop",
            &|| {
                std::os::unix::fs::symlink("c.yml", &b).unwrap();
                std::os::unix::fs::symlink("b.yaml", sb.join("org/c.yml")).unwrap();
            },
            "symbolic links",
        ),
        ("FIFO", &|| mkfifo(&b), "it is a FIFO, not a regular file"),
        (
            "directory",
            &|| std::fs::create_dir(&b).unwrap(),
            "it is a directory, not a regular file",
        ),
    ];
    for (what, make, says) in cases {
        make();
        for args in [
            &["validate", "-c", "org"][..],
            &["plan", "-c", "org"],
            &["apply", "--yes", "-c", "org"],
        ] {
            let out = run_bounded(sb.cmd(args).now(T0));
            out.expect(1);
            for s in ["org/b.yaml", *says] {
                assert!(
                    out.stderr.contains(s),
                    "{what}: says `{s}`:\n{}",
                    out.stderr
                );
            }
        }
        let _ = std::fs::remove_file(&b).or_else(|_| std::fs::remove_dir(&b));
        let _ = std::fs::remove_file(sb.join("org/c.yml"));
    }
    // With the entry gone, nothing was deleted meanwhile.
    sb.cmd(&["plan", "--detailed-exitcode", "-c", "org"])
        .now(T0)
        .run()
        .ok();
}

#[test]
fn apply_refuses_an_account_directory_that_is_a_symlink_and_writes_nothing_through_it() {
    let sb = Sandbox::new();
    demo_files(&sb);
    sb.write(CFG, &many_accounts_yaml("acme", 2, 1, ""));
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(sb.join("org/secrets")).unwrap();
    let link = sb.join("org/secrets/acct-000");
    std::os::unix::fs::symlink(outside.path(), &link).unwrap();
    let out = sb.cmd(&["apply", "--yes", "-c", "org"]).now(T0).run();
    out.expect(1);
    for s in ["org/secrets/acct-000", "symbolic link"] {
        assert!(out.stderr.contains(s), "says `{s}`:\n{}", out.stderr);
    }
    assert!(
        files_under(outside.path()).is_empty(),
        "nothing was written through the link"
    );
    assert!(
        !sb.join("org/.svcacct").exists(),
        "refused before the organization was touched"
    );
    // With the link replaced by a directory, the apply goes through.
    std::fs::remove_file(&link).unwrap();
    sb.apply("org", T0);
    assert!(sb.join("org/secrets/acct-000/key-0.age").is_file());
}

#[test]
fn a_recovering_apply_deletes_nothing_through_a_symlinked_account_directory() {
    let sb = Sandbox::new();
    demo_files(&sb);
    sb.write(CFG, &many_accounts_yaml("acme", 2, 1, ""));
    sb.apply("org", T0);
    // An interrupted apply left its marker; one account directory is now a link elsewhere,
    // where files look like an apply's leftovers.
    std::fs::write(sb.join("org/secrets/.issuing"), "").unwrap();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("acct-001");
    std::fs::rename(sb.join("org/secrets/acct-001"), &target).unwrap();
    std::os::unix::fs::symlink(&target, sb.join("org/secrets/acct-001")).unwrap();
    let pending = target.join("key-0.age.pending-key_00000000deadbeef");
    let tmp = target.join(".key-0.abc.tmp");
    std::fs::write(&pending, "precious").unwrap();
    std::fs::write(&tmp, "precious").unwrap();
    let before = files_under(outside.path());

    let out = sb
        .cmd(&["apply", "--yes", "-c", "org"])
        .now(&at(40, 0))
        .run();
    out.expect(1);
    assert!(
        out.stderr.contains("org/secrets/acct-001") && out.stderr.contains("symbolic link"),
        "{}",
        out.stderr
    );
    assert!(pending.exists() && tmp.exists(), "recovery deleted nothing");
    assert_eq!(files_under(outside.path()), before, "nothing changed there");
}

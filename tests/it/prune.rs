//! `svcacct secrets prune`: the key files of keys that no longer exist are listed by the plan
//! and deleted by prune, all or none (a failed move puts everything back; an interrupted run
//! is undone or finished by the next), and nothing else is ever deleted: not a live key's
//! file, not a pending file, not what a symbolic link points at.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::common::*;

const CFG: &str = "org/svcacct.yaml";
const SECRETS: &str = "org/secrets";

/// Three accounts of two keys each, applied; then acct-001 and acct-000's key-1 removed from
/// the config and applied, which leaves their files behind. On `local` or on a server.
fn org_with_orphans(sb: &Sandbox, http: bool) -> Option<Server> {
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
    let full = many_accounts_yaml("acme", 3, 2, &extra);
    sb.write(CFG, &full);
    run(sb, &["apply", "--yes", "-c", CFG]).ok();
    let start = full.find("  acct-001:").unwrap();
    let end = full.find("  acct-002:").unwrap();
    let cut = format!("{}{}", &full[..start], &full[end..]).replacen(
        "      key-1:\n        rotate_every: 30d\n        overlap: 1d\n  acct-002",
        "  acct-002",
        1,
    );
    sb.write(CFG, &cut);
    run(sb, &["apply", "--yes", "--allow-mass-delete", "-c", CFG]).ok();
    server
}

fn run(sb: &Sandbox, args: &[&str]) -> Out {
    sb.cmd(args)
        .now(T0)
        .env("SVCACCT_TEST_TOKEN", OPERATOR)
        .run()
}

fn secrets(sb: &Sandbox) -> BTreeMap<PathBuf, Vec<u8>> {
    files_under(&sb.join(SECRETS))
}

fn names(files: &BTreeMap<PathBuf, Vec<u8>>) -> Vec<String> {
    files.keys().map(|p| p.display().to_string()).collect()
}

/// The files of the keys [`org_with_orphans`] removed, relative to the secrets directory:
/// each key's file and its metadata.
fn orphans(sb: &Sandbox) -> Vec<String> {
    let mut files = Vec::new();
    for (account, key) in [
        ("acct-000", "key-1"),
        ("acct-001", "key-0"),
        ("acct-001", "key-1"),
    ] {
        files.push(format!("{account}/{key}.age"));
        let meta = meta_path(sb, SECRETS, account, key);
        files.push(
            meta.strip_prefix(&format!("{SECRETS}/"))
                .unwrap()
                .to_string(),
        );
    }
    files.sort();
    files
}

fn prunes_only_files_of_keys_that_no_longer_exist(http: bool) {
    let sb = Sandbox::new();
    let _server = org_with_orphans(&sb, http);
    let plan = run(&sb, &["plan", "--format", "json", "-c", CFG]);
    plan.ok();
    let notes = plan.json()["notes"].to_string();
    assert!(
        notes.contains("`svcacct secrets prune` deletes them"),
        "{notes}"
    );
    // acct-001's second key file too: every key of the removed account.
    let orphans = orphans(&sb);

    // What prune must leave: a pending file of an apply (even of a key that is gone), a
    // temporary file, a dot-file, and anything that is not a key file.
    for extra in [
        "acct-001/key-0.age.pending-key_123",
        "acct-001/key-0.meta.json.pending-key_123",
        "acct-001/.key-0.abc.tmp",
        "acct-000/.gitkeep",
        "acct-000/NOTES.txt",
    ] {
        sb.write(&format!("{SECRETS}/{extra}"), "kept");
    }
    let before = secrets(&sb);
    for o in &orphans {
        assert!(
            before.contains_key(&PathBuf::from(o)),
            "{o}: {:?}",
            names(&before)
        );
    }

    // With no terminal and no --yes: refused, nothing deleted.
    let refused = run(&sb, &["secrets", "prune", "-c", CFG]);
    refused.expect(1);
    assert!(refused.stderr.contains("pass --yes"), "{}", refused.stderr);
    assert_eq!(secrets(&sb), before);

    let out = run(&sb, &["secrets", "prune", "--yes", "-c", CFG]);
    out.ok();
    let listed: Vec<String> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("  - org/secrets/"))
        .map(str::to_string)
        .collect();
    assert_eq!(listed, orphans, "{}", out.stdout);
    assert!(
        out.stdout.contains("Deleted 6 files under org/secrets."),
        "{}",
        out.stdout
    );
    assert!(
        !out.all().contains(svcacct::secrets::SECRET_PREFIX),
        "{}",
        out.all()
    );

    let after = secrets(&sb);
    let mut expected = before.clone();
    for o in &orphans {
        expected.remove(&PathBuf::from(o));
    }
    assert_eq!(names(&after), names(&expected));
    assert_eq!(
        after, expected,
        "every kept file is byte for byte what it was"
    );
    // Every live key still has its file, and the plan has no orphan note any more.
    let db = if http {
        sb.join("server.db")
    } else {
        sb.join("org/.svcacct/acme.db")
    };
    assert_eq!(
        assert_every_key_has_its_file(
            &db,
            &sb.join(SECRETS),
            &sb.join("examples/demo-identity.txt")
        ),
        3
    );
    let plan = run(&sb, &["plan", "--format", "json", "-c", CFG]);
    assert!(!plan.stdout.contains("secrets prune"), "{}", plan.stdout);
    assert!(!sb.root().join(SECRETS).read_dir().unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".prune-")
    }));

    let again = run(&sb, &["secrets", "prune", "--yes", "-c", CFG]);
    again.ok();
    assert!(
        again.stdout.contains("No key files to prune"),
        "{}",
        again.stdout
    );
}

#[test]
fn prunes_only_files_of_keys_that_no_longer_exist_on_local() {
    prunes_only_files_of_keys_that_no_longer_exist(false);
}

#[test]
fn prunes_only_files_of_keys_that_no_longer_exist_on_http() {
    prunes_only_files_of_keys_that_no_longer_exist(true);
}

#[test]
fn an_account_directory_left_empty_goes_with_its_account() {
    let sb = Sandbox::new();
    let _ = org_with_orphans(&sb, false);
    run(&sb, &["secrets", "prune", "--yes", "-c", CFG]).ok();
    assert!(!sb.join(&format!("{SECRETS}/acct-001")).exists());
    // A live account's directory stays.
    assert!(sb.join(&format!("{SECRETS}/acct-000/key-0.age")).exists());
}

#[test]
fn a_failed_move_puts_every_file_back_and_deletes_nothing() {
    let sb = Sandbox::new();
    let _ = org_with_orphans(&sb, false);
    let before = secrets(&sb);
    for n in ["1", "3", "6"] {
        let out = sb
            .cmd(&["secrets", "prune", "--yes", "-c", CFG])
            .now(T0)
            .fault("SVCACCT_TEST_FAIL_PRUNE_MOVE", n)
            .run();
        out.expect(1);
        assert!(out.stderr.contains("nothing was deleted"), "{}", out.stderr);
        assert!(out.stderr.contains("injected failure"), "{}", out.stderr);
        assert_eq!(secrets(&sb), before, "after a failure at move {n}");
        let left: Vec<_> = std::fs::read_dir(sb.join(SECRETS))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.') && n != ".issuing")
            .collect();
        assert!(left.is_empty(), "no staging directory is left: {left:?}");
    }
    run(&sb, &["secrets", "prune", "--yes", "-c", CFG]).ok();
    assert_eq!(secrets(&sb).len(), before.len() - 6);
}

#[test]
fn an_interrupted_prune_is_undone_before_it_commits_and_finished_after() {
    let sb = Sandbox::new();
    let _ = org_with_orphans(&sb, false);
    let before = secrets(&sb);

    // Dies after moving two files aside: the plan still sees every file where it was not
    // moved, and the next prune first moves the two back, then prunes all six.
    let died = sb
        .cmd(&["secrets", "prune", "--yes", "-c", CFG])
        .now(T0)
        .fault("SVCACCT_TEST_ABORT_PRUNE_MOVE", "3")
        .run();
    assert_eq!(died.signal, Some(libc::SIGABRT), "{died:?}");
    assert_eq!(secrets(&sb).len(), before.len(), "moved aside, not deleted");
    let out = run(&sb, &["secrets", "prune", "--yes", "-c", CFG]);
    out.ok();
    assert!(
        out.stdout.contains("2 file(s) moved back, 0 deleted"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Deleted 6 files"), "{}", out.stdout);
    assert_eq!(secrets(&sb).len(), before.len() - 6);

    // Dies once every file is aside and the prune committed: the next run finishes it.
    let sb = Sandbox::new();
    let _ = org_with_orphans(&sb, false);
    let died = sb
        .cmd(&["secrets", "prune", "--yes", "-c", CFG])
        .now(T0)
        .fault("SVCACCT_TEST_ABORT_PRUNE_COMMITTED", "1")
        .run();
    assert_eq!(died.signal, Some(libc::SIGABRT), "{died:?}");
    let out = run(&sb, &["secrets", "prune", "--yes", "-c", CFG]);
    out.ok();
    assert!(
        out.stdout.contains("0 file(s) moved back, 6 deleted"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("No key files to prune"),
        "{}",
        out.stdout
    );
    assert_eq!(secrets(&sb).len(), before.len() - 6);
}

#[test]
fn a_symbolic_link_refuses_the_prune_and_nothing_is_deleted() {
    let sb = Sandbox::new();
    let _ = org_with_orphans(&sb, false);
    let outside = sb.write(
        "outside/precious.age",
        "not a key file of this organization",
    );

    // An orphan's name that is a link: the link is not followed, and nothing goes.
    let link = sb.join(&format!("{SECRETS}/acct-001/key-0.age"));
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let before = secrets(&sb);
    let out = run(&sb, &["secrets", "prune", "--yes", "-c", CFG]);
    out.expect(1);
    assert!(out.stderr.contains("is a symbolic link"), "{}", out.stderr);
    assert!(out.stderr.contains("deletes nothing"), "{}", out.stderr);
    assert_eq!(secrets(&sb), before);
    assert!(outside.exists());
    std::fs::remove_file(&link).unwrap();

    // An account directory that is a link (say, committed in a pull request): refused too.
    std::fs::create_dir_all(sb.join("outside/acct-009")).unwrap();
    sb.write("outside/acct-009/key-0.age", "elsewhere");
    std::os::unix::fs::symlink(
        sb.join("outside/acct-009"),
        sb.join(&format!("{SECRETS}/acct-009")),
    )
    .unwrap();
    let before = secrets(&sb);
    let out = run(&sb, &["secrets", "prune", "--yes", "-c", CFG]);
    out.expect(1);
    assert!(
        out.stderr
            .contains("org/secrets/acct-009 is a symbolic link"),
        "{}",
        out.stderr
    );
    assert_eq!(secrets(&sb), before);
    assert!(sb.join("outside/acct-009/key-0.age").exists());
    assert!(outside.exists());
}

#[test]
fn an_organization_with_no_accounts_is_refused_and_nothing_is_created() {
    let sb = Sandbox::new();
    let _ = org_with_orphans(&sb, false);
    let before = secrets(&sb);
    // A config pointing at an organization file that does not exist: every file would look
    // orphaned.
    let text = sb.read(CFG);
    sb.write(
        CFG,
        &text.replacen(
            "secrets:\n",
            "backend:\n  type: local\n  path: other.db\nsecrets:\n",
            1,
        ),
    );
    let out = run(&sb, &["secrets", "prune", "--yes", "-c", CFG]);
    out.expect(1);
    assert!(
        out.stderr.contains("has no service accounts"),
        "{}",
        out.stderr
    );
    assert_eq!(secrets(&sb), before);
    assert!(
        !sb.join("org/other.db").exists(),
        "prune creates no organization"
    );
}

#[test]
fn pending_files_of_an_interrupted_apply_are_recovered_first() {
    let sb = Sandbox::new();
    let _ = org_with_orphans(&sb, false);
    let before = secrets(&sb);
    // An apply that died while issuing keys leaves the marker: prune leaves its pending
    // files to the apply that recovers them, and deletes nothing.
    sb.write(&format!("{SECRETS}/.issuing"), "");
    let out = run(&sb, &["secrets", "prune", "--yes", "-c", CFG]);
    out.expect(1);
    assert!(
        out.stderr.contains("run `svcacct apply` first"),
        "{}",
        out.stderr
    );
    assert_eq!(secrets(&sb).len(), before.len() + 1);
    run(&sb, &["apply", "--yes", "-c", CFG]).ok();
    run(&sb, &["secrets", "prune", "--yes", "-c", CFG]).ok();
    assert_eq!(secrets(&sb).len(), before.len() - 6);
}

/// Runs a command on a fresh pseudo-terminal and types `input` once it asks; the exit code
/// and what the terminal showed.
fn on_a_terminal(cmd: Cmd, input: &str) -> (Option<i32>, String) {
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two new descriptors, which we own from here on.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are new and owned by nothing else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let stdin = Some(slave.try_clone().unwrap());
    let mut child = cmd.spawn_with_output(slave.try_clone().unwrap(), slave, stdin);
    let mut master = std::fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&out).contains("to delete:") {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    master.write_all(input.as_bytes()).unwrap();
    // Reading ends with EIO once the child has closed the terminal.
    loop {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    let status = child.wait().unwrap();
    (status.code(), String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn a_terminal_is_asked_and_only_yes_deletes() {
    let sb = Sandbox::new();
    let _ = org_with_orphans(&sb, false);
    let before = secrets(&sb);
    let prune = || sb.cmd(&["secrets", "prune", "-c", CFG]).now(T0);
    let (code, shown) = on_a_terminal(prune(), "no\n");
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains("org/secrets/acct-001/key-0.age"),
        "listed first: {shown}"
    );
    assert!(
        shown.contains("Prune cancelled; nothing was deleted."),
        "{shown}"
    );
    assert_eq!(secrets(&sb), before);
    let (code, shown) = on_a_terminal(prune(), "yes\n");
    assert_eq!(code, Some(0), "{shown}");
    assert_eq!(secrets(&sb).len(), before.len() - 6);
}

/// `chattr +i` on a file for as long as it lives, so the sandbox can still be removed.
struct Immutable(PathBuf);

impl Immutable {
    /// `None` where the file system or the user cannot make files immutable.
    fn set(path: PathBuf) -> Option<Immutable> {
        let ok = std::process::Command::new("chattr")
            .arg("+i")
            .arg(&path)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(Immutable(path))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .output();
    }
}

#[test]
fn a_file_the_file_system_will_not_move_puts_every_file_back() {
    let sb = Sandbox::new();
    let _ = org_with_orphans(&sb, false);
    let before = secrets(&sb);
    // A real refusal, even for root: the fifth of the six orphans is immutable.
    let Some(guard) = Immutable::set(sb.join(&format!("{SECRETS}/acct-001/key-1.age"))) else {
        eprintln!("chattr +i is not available here; the injected failure test covers this");
        return;
    };
    let out = run(&sb, &["secrets", "prune", "--yes", "-c", CFG]);
    out.expect(1);
    assert!(
        out.stderr
            .contains("cannot move org/secrets/acct-001/key-1.age aside"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("nothing was deleted"), "{}", out.stderr);
    assert_eq!(secrets(&sb), before);
    drop(guard);
    run(&sb, &["secrets", "prune", "--yes", "-c", CFG]).ok();
    assert_eq!(secrets(&sb).len(), before.len() - 6);
}

//! Helpers shared by every area: a sandbox directory, running the real binary, reading the
//! organization file with SQLite, and decrypting key files.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;

use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_svcacct");

/// The repository root, where `examples/` and `schemas/` live.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixed "now" most tests run at, so rotations and expiries are deterministic.
pub const T0: &str = "2026-01-01T00:00:00Z";

/// `T0` plus `days` days and `hours` hours, as RFC 3339.
pub fn at(days: i64, hours: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    let t0 = time::OffsetDateTime::parse(T0, &Rfc3339).unwrap();
    (t0 + time::Duration::days(days) + time::Duration::hours(hours))
        .format(&Rfc3339)
        .unwrap()
}

/// What a finished command did.
#[derive(Debug)]
pub struct Out {
    /// The exit code; `None` when a signal ended the process.
    pub code: Option<i32>,
    /// The signal that ended the process, if one did.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Out {
    fn from(out: std::process::Output) -> Out {
        Out {
            code: out.status.code(),
            signal: std::os::unix::process::ExitStatusExt::signal(&out.status),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Out {
    /// Asserts the exit code, showing both streams when it differs.
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts a successful exit.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.expect(0)
    }

    /// Both streams, for "appears anywhere" checks.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// One invocation of the binary, with a clean environment for the variables svcacct reads.
pub struct Cmd {
    cmd: Command,
    stdin: Option<Vec<u8>>,
}

impl Cmd {
    pub fn new(cwd: &Path, args: &[&str]) -> Cmd {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(cwd)
            .args(args)
            .env_remove("SVCACCT_CONFIG")
            .env_remove("SVCACCT_BACKEND_URL")
            .env_remove("SVCACCT_ALLOW_TOKEN_ENV")
            .env_remove("SVCACCT_NOW")
            .env_remove("SVCACCT_TEST_ABORT_AFTER_KEY_FILES")
            .env_remove("SVCACCT_TEST_ABORT_AFTER_REGISTER")
            .env_remove("SVCACCT_TEST_LOSE_REGISTRATION_ANSWERS")
            .env_remove("SVCACCT_TEST_ABORT_AFTER_DELIVERIES")
            .env_remove("SVCACCT_TEST_ABORT_BEFORE_REVOCATION")
            .env_remove("SVCACCT_IDENTITY_FILE")
            .env_remove("SVCACCT_ALLOW_DELIVER_PATH")
            .env_remove("SVCACCT_ALLOW_DELIVER_COMMAND")
            .env_remove("SVCACCT_GITHUB_API_URL")
            .env_remove("SVCACCT_GITHUB_TOKEN")
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .env("USER", "svcacct-test")
            // The key-file scan cache stays in the sandbox, not in the home directory.
            .env("SVCACCT_CACHE_DIR", cwd.join(".svcacct-cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Cmd { cmd, stdin: None }
    }

    /// Turns on one of the binary's fault-injection hooks (`SVCACCT_TEST_*`), which exist only
    /// in builds with the `test-hooks` feature.
    #[track_caller]
    pub fn fault(self, hook: &str, v: &str) -> Cmd {
        const HOOKS_BUILT: bool = cfg!(feature = "test-hooks");
        if !HOOKS_BUILT {
            panic!(
                "this test injects faults: run the tests with `--features test-hooks` (bash scripts/test does)"
            );
        }
        self.env(hook, v)
    }

    pub fn env(mut self, k: &str, v: &str) -> Cmd {
        self.cmd.env(k, v);
        self
    }

    /// Runs at this time (`SVCACCT_NOW`).
    pub fn now(self, t: &str) -> Cmd {
        self.env("SVCACCT_NOW", t)
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(bytes.into());
        self.cmd.stdin(Stdio::piped());
        self
    }

    /// Starts the process; the caller owns it.
    pub fn spawn(mut self) -> Child {
        self.cmd.stdin(Stdio::null());
        self.cmd.spawn().expect("the svcacct binary starts")
    }

    /// Starts the process with its standard streams on the given descriptors (a terminal).
    pub fn spawn_with_output(
        mut self,
        stdout: std::os::fd::OwnedFd,
        stderr: std::os::fd::OwnedFd,
        stdin: Option<std::os::fd::OwnedFd>,
    ) -> Child {
        self.cmd
            .stdin(stdin.map_or_else(Stdio::null, Stdio::from))
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        // Our copies of the descriptors close when `self` drops at the end of this call.
        self.cmd.spawn().expect("the svcacct binary starts")
    }

    pub fn run(mut self) -> Out {
        let mut child = self.cmd.spawn().expect("the svcacct binary starts");
        if let Some(input) = self.stdin.take() {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(&input).unwrap();
        }
        Out::from(child.wait_with_output().unwrap())
    }
}

/// A temporary directory a test owns, with the example files it needs.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::Builder::new()
                .prefix("svcacct-it-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// Writes a file (creating its directory) and returns its path.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.join(rel)).unwrap()
    }

    /// Copies `examples/<name>` (its YAML only: no keys or organization a developer made)
    /// and the demo recipients and identity, keeping their relative paths. Returns the
    /// relative path of the copied example.
    pub fn copy_example(&self, name: &str) -> String {
        let src = repo().join("examples");
        std::fs::create_dir_all(self.join("examples")).unwrap();
        for demo in ["demo-recipients.txt", "demo-identity.txt"] {
            std::fs::copy(src.join(demo), self.join("examples").join(demo)).unwrap();
        }
        let from = src.join(name);
        let to = self.join("examples").join(name);
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(&from).unwrap() {
            let p = entry.unwrap().path();
            if p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
            }
        }
        format!("examples/{name}")
    }

    /// Runs `svcacct <args>` in the sandbox.
    pub fn cmd(&self, args: &[&str]) -> Cmd {
        Cmd::new(self.root(), args)
    }

    pub fn run(&self, args: &[&str]) -> Out {
        self.cmd(args).run()
    }

    /// `apply --yes` at `now`, asserting success.
    #[track_caller]
    pub fn apply(&self, config: &str, now: &str) -> Out {
        let out = self.cmd(&["apply", "--yes", "-c", config]).now(now).run();
        out.ok();
        out
    }

    /// The JSON plan at `now` (exit status 0 asserted).
    #[track_caller]
    pub fn plan_json(&self, config: &str, now: &str) -> Value {
        let out = self
            .cmd(&["plan", "--format", "json", "-c", config])
            .now(now)
            .run();
        out.ok();
        out.json()
    }

    /// `svcacct verify` of `secret` at `now`: the exit code and the JSON answer.
    pub fn verify(&self, config: &str, secret: &str, now: &str) -> (i32, Value) {
        let out = self
            .cmd(&["verify", "-c", config])
            .now(now)
            .stdin(format!("{secret}\n"))
            .run();
        let code = out.code.expect("verify exits");
        assert!(
            code == 0 || code == 1,
            "verify failed to run: {}",
            out.stderr
        );
        (code, out.json())
    }

    /// Every file under the sandbox with its bytes.
    pub fn files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        files_under(self.root())
    }
}

/// Every regular file under `dir` (recursively) with its bytes, by path relative to `dir`.
pub fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    out
}

/// Hex SHA-256, computed independently of the code under test.
pub fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `haystack` contains `needle` as bytes.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Decrypts a key file with the standard `age` command and parses its JSON payload.
#[track_caller]
pub fn age_cli_decrypt(file: &Path, identity: &Path) -> Value {
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(file)
        .output()
        .expect("the `age` command is installed (see scripts/test)");
    assert!(
        out.status.success(),
        "age -d {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a key file holds JSON")
}

/// The X25519 identity in an age identity file.
pub fn read_identity(path: &Path) -> age::x25519::Identity {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .expect("an identity file holds a secret key");
    age::x25519::Identity::from_str(line).unwrap()
}

/// Decrypts a key file with the `age` library (fast, for checking hundreds of files).
pub fn crate_decrypt(file: &Path, identity: &age::x25519::Identity) -> Result<Value, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let plain = age::decrypt(identity, &bytes).map_err(|e| format!("{}: {e}", file.display()))?;
    serde_json::from_slice(&plain).map_err(|e| format!("{}: {e}", file.display()))
}

/// The secret in a key file, decrypted with the `age` command.
pub fn secret_of(file: &Path, identity: &Path) -> String {
    age_cli_decrypt(file, identity)["secret"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Opens an organization file read-only. After a writer was killed, the WAL index may need a
/// recovery only a writable connection can run (SQLITE_READONLY_RECOVERY): one runs it first.
pub fn open_db(path: &Path) -> Connection {
    let ro = || Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let conn = ro();
    match conn.query_row("PRAGMA schema_version", [], |_| Ok(())) {
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly) => {
            drop(conn);
            open_db_rw(path)
                .query_row("PRAGMA schema_version", [], |_| Ok(()))
                .unwrap();
            ro()
        }
        _ => conn,
    }
}

/// Opens an organization file to change it behind svcacct's back.
pub fn open_db_rw(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).unwrap()
}

/// A row of `api_keys`.
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: String,
    pub account: String,
    pub name: String,
    pub hash: String,
    pub display_prefix: String,
    pub retires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Every key the organization file holds, live or not (or, for a server started on
/// PostgreSQL over this path, its database).
pub fn key_rows(db: &Path) -> Vec<KeyRow> {
    if let Some(url) = served_database(db) {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        return client
            .query(
                "SELECT id, account, name, hash, display_prefix, retires_at, revoked_at FROM api_keys ORDER BY account, name, created_at, id",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| KeyRow {
                id: r.get(0),
                account: r.get(1),
                name: r.get(2),
                hash: r.get(3),
                display_prefix: r.get(4),
                retires_at: r.get(5),
                revoked_at: r.get(6),
            })
            .collect();
    }
    let conn = open_db(db);
    // An apply killed right after SQLite created the file leaves it without tables yet.
    let has_table: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'api_keys'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    if !has_table {
        return Vec::new();
    }
    let mut stmt = conn
        .prepare(
            "SELECT id, account, name, hash, display_prefix, retires_at, revoked_at FROM api_keys ORDER BY account, name, created_at, id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok(KeyRow {
            id: r.get(0)?,
            account: r.get(1)?,
            name: r.get(2)?,
            hash: r.get(3)?,
            display_prefix: r.get(4)?,
            retires_at: r.get(5)?,
            revoked_at: r.get(6)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// The first column, as text, of every row a query returns from the organization file or a
/// server's PostgreSQL database (see [`key_rows`]).
pub fn query_text(db: &Path, sql: &str) -> Vec<String> {
    if let Some(url) = served_database(db) {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        return client
            .query(sql, &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    }
    open_db(db)
        .prepare(sql)
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Keys that are current: not revoked and not rotated out.
pub fn current_keys(db: &Path) -> Vec<KeyRow> {
    key_rows(db)
        .into_iter()
        .filter(|k| k.revoked_at.is_none() && k.retires_at.is_none())
        .collect()
}

/// The invariant of the whole tool: every current key in the organization has its file,
/// that file decrypts to a secret whose SHA-256 is the stored hash, and its metadata names
/// the key. Returns how many keys were checked.
#[track_caller]
pub fn assert_every_key_has_its_file(db: &Path, secrets_dir: &Path, identity: &Path) -> usize {
    let identity = read_identity(identity);
    let keys = current_keys(db);
    let mut problems = Vec::new();
    for k in &keys {
        // The key's file, or — between its registration and the rename an interrupted apply
        // did not reach — its pending file, which the next apply moves into place.
        let dir = secrets_dir.join(&k.account);
        let candidates = [
            dir.join(format!("{}.age", k.name)),
            dir.join(format!("{}.age.pending-{}", k.name, k.id)),
        ];
        let mut why = Vec::new();
        let good = candidates
            .iter()
            .any(|file| match crate_decrypt(file, &identity) {
                Err(e) => {
                    why.push(e);
                    false
                }
                Ok(payload) => {
                    let secret = payload["secret"].as_str().unwrap_or_default();
                    let ok = sha256_hex(secret) == k.hash && payload["key_id"] == k.id.as_str();
                    if !ok {
                        why.push(format!(
                            "{} holds key id {}, not the live {} with its hash",
                            file.display(),
                            payload["key_id"],
                            k.id
                        ));
                    }
                    ok
                }
            });
        // Its metadata names it, in its name and its content: pending beside a pending file
        // or after an interrupted promotion (the next apply moves it into place), or in place
        // (of several, the one changed last is what a plan believes).
        let pending = dir.join(format!("{}.meta.json.pending-{}", k.name, k.id));
        let names_it = |m: &Path| {
            std::fs::read(m)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .is_some_and(|v| v["key_id"] == k.id.as_str())
        };
        let meta_ok = names_it(&pending)
            || newest(meta_files(&dir, &k.name)).is_some_and(|m| {
                let name = m.file_name().unwrap().to_string_lossy().into_owned();
                let parts: Vec<&str> = name.split('.').collect();
                (parts.len() == 3 || parts[1] == k.id) && names_it(&m)
            });
        if good && !meta_ok {
            why.push(format!("no metadata names key id {}", k.id));
        }
        if !good || !meta_ok {
            problems.push(format!("key.{}.{}: {}", k.account, k.name, why.join("; ")));
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} live keys have no good file:\n{}",
        problems.len(),
        keys.len(),
        problems.join("\n")
    );
    keys.len()
}

/// The metadata files of `key` in the account directory `dir`, pending ones aside: in the
/// layout whose name says the key id and recipients, `<key>.<id>.<hex>.meta.json`, or the
/// old `<key>.meta.json`.
pub fn meta_files(dir: &Path, key: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut metas: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            let parts: Vec<&str> = name.split('.').collect();
            name.ends_with(".meta.json") && parts[0] == key && matches!(parts.len(), 3 | 5)
        })
        .collect();
    metas.sort();
    metas
}

/// The one metadata file of `account`/`key` under the sandbox's `secrets` directory
/// (relative to the sandbox, as [`Sandbox::read`] takes it).
#[track_caller]
pub fn meta_path(sb: &Sandbox, secrets: &str, account: &str, key: &str) -> String {
    let metas = meta_files(&sb.join(secrets).join(account), key);
    assert_eq!(
        metas.len(),
        1,
        "one metadata file of {account}/{key}: {metas:?}"
    );
    let name = metas[0].file_name().unwrap().to_string_lossy().into_owned();
    format!("{secrets}/{account}/{name}")
}

/// Of `files`, the one whose inode changed last.
pub fn newest(files: Vec<PathBuf>) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    files.into_iter().max_by_key(|f| {
        let m = std::fs::symlink_metadata(f).unwrap();
        (m.ctime(), m.ctime_nsec())
    })
}

/// A config of `accounts` service accounts with `keys` keys each, in one team, encrypting
/// to the demo recipient (the config lives in `<sandbox>/<dir>/svcacct.yaml`, next to a copy
/// of the demo recipients made by [`Sandbox::copy_example`] or [`demo_files`]).
pub fn many_accounts_yaml(org: &str, accounts: usize, keys: usize, extra: &str) -> String {
    let mut y = format!(
        "organization: {org}\nsecrets:\n  recipients_file: ../examples/demo-recipients.txt\n{extra}teams:\n  crew:\n    description: Everyone\nservice_accounts:\n"
    );
    for a in 0..accounts {
        y.push_str(&format!(
            "  acct-{a:03}:\n    description: account {a}\n    teams: {{crew: viewer}}\n    keys:\n"
        ));
        for k in 0..keys {
            y.push_str(&format!(
                "      key-{k}:\n        rotate_every: 30d\n        overlap: 1d\n"
            ));
        }
    }
    y
}

/// Puts the demo recipients and identity at `examples/` in the sandbox.
pub fn demo_files(sb: &Sandbox) -> PathBuf {
    let src = repo().join("examples");
    std::fs::create_dir_all(sb.join("examples")).unwrap();
    for demo in ["demo-recipients.txt", "demo-identity.txt"] {
        std::fs::copy(src.join(demo), sb.join("examples").join(demo)).unwrap();
    }
    sb.join("examples/demo-identity.txt")
}

/// Whether any ANSI escape sequence is in `s`.
pub fn has_ansi(s: &str) -> bool {
    s.contains('\u{1b}')
}

/// Stops a test that injects server faults (`svcacct serve --inject-faults`), which exist
/// only in builds with the `test-hooks` feature, with a message saying how to run it.
#[track_caller]
pub fn needs_fault_hooks() {
    if !cfg!(feature = "test-hooks") {
        panic!(
            "this test injects server faults: run the tests with `--features test-hooks` (bash scripts/test does)"
        );
    }
}

/// The operator token every test server is started with.
pub const OPERATOR: &str = "operator-token-for-tests-0123456789";

/// Whether servers run on PostgreSQL (`SVCACCT_TEST_ENGINE=postgres`) instead of SQLite files:
/// the same tests, held to the same behaviour on both engines.
pub fn on_postgres() -> bool {
    match std::env::var("SVCACCT_TEST_ENGINE").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("SVCACCT_TEST_ENGINE is `sqlite` or `postgres`, not `{other}`"),
    }
}

/// The one throwaway cluster of this test process, started on first use and stopped when the
/// process exits; each test gets databases of its own in it.
pub fn shared_cluster() -> &'static Postgres {
    static CLUSTER: std::sync::OnceLock<Postgres> = std::sync::OnceLock::new();
    CLUSTER.get_or_init(|| {
        extern "C" fn stop() {
            if let Some(pg) = CLUSTER.get() {
                pg.stop();
            }
        }
        let pg = Postgres::start();
        // SAFETY: registers a plain function to run at exit; statics are never dropped.
        unsafe { libc::atexit(stop) };
        pg
    })
}

/// Database URLs of the servers started on PostgreSQL, by the path a test gave for the file.
static SERVED: std::sync::Mutex<BTreeMap<PathBuf, String>> = std::sync::Mutex::new(BTreeMap::new());

/// The PostgreSQL database a server over `db` used, if it ran on PostgreSQL.
pub fn served_database(db: &Path) -> Option<String> {
    SERVED.lock().unwrap().get(db).cloned()
}

/// What `--db` a server over `db` gets: the path itself, or on PostgreSQL a new database of the
/// shared cluster (the same one again for the same path, as a restarted server finds its file).
pub fn server_db(db: &Path) -> String {
    if !on_postgres() {
        return db.display().to_string();
    }
    postgres_db(db)
}

/// The database of the shared cluster that stands for `db` (created on first use), whatever
/// engine the other tests run on: for servers that only run on PostgreSQL, such as replicas.
pub fn postgres_db(db: &Path) -> String {
    let mut served = SERVED.lock().unwrap();
    if let Some(url) = served.get(db) {
        return url.clone();
    }
    let url = shared_cluster().new_database();
    served.insert(db.to_path_buf(), url.clone());
    url
}

/// A `svcacct serve` process; stopped with SIGTERM on drop.
pub struct Server {
    child: std::process::Child,
    pub url: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// A server over `db` on a free loopback port, its clock at `now` (or the real time).
    pub fn start(db: &Path, now: Option<&str>) -> Server {
        Server::start_with(db, now, "127.0.0.1:0", &[])
    }

    /// [`Server::start`] on `listen`, with extra arguments such as `--inject-faults 0.3`.
    #[track_caller]
    pub fn start_with(db: &Path, now: Option<&str>, listen: &str, extra: &[&str]) -> Server {
        Server::start_on(&server_db(db), now, listen, extra)
    }

    /// A server with `--db` exactly `db` (a path or a URL).
    #[track_caller]
    pub fn start_on(db: &str, now: Option<&str>, listen: &str, extra: &[&str]) -> Server {
        if extra.contains(&"--inject-faults") {
            needs_fault_hooks();
        }
        use std::io::{BufRead, BufReader};
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--db", db])
            .args(["--listen", listen])
            .args(extra)
            .env("SVCACCT_ADMIN_TOKEN", OPERATOR)
            .env_remove("SVCACCT_NOW")
            .env_remove("SVCACCT_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(now) = now {
            cmd.env("SVCACCT_NOW", now);
        }
        let mut child = cmd.spawn().expect("svcacct serve starts");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            // Keep draining stderr so the server never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(addr) = line.strip_prefix("listening on ") {
                        let _ = tx.send(addr.trim().to_string());
                    }
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let url = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the server did not start: {}", log.lock().unwrap()));
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        assert!(!url.ends_with(":0"), "the real port is printed: {url}");
        Server { child, url, log }
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits for the server to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        self.child.wait().unwrap()
    }

    /// Sends SIGKILL, as a crash or an OOM kill would, and waits for the server to die.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit code.
    pub fn stop(mut self) -> Option<i32> {
        self.terminate().code()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// Where Debian's PostgreSQL 15 puts its programs (`scripts/test` installs them).
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A throwaway PostgreSQL cluster listening only on a Unix socket in its own temporary
/// directory, with trust authentication for the `svcacct` superuser; stopped and removed on
/// drop. As root (which `initdb` refuses) it runs as the `postgres` user the Debian package
/// creates.
pub struct Postgres {
    dir: tempfile::TempDir,
    /// A URL for the `postgres` database of the cluster.
    pub url: String,
}

impl Postgres {
    #[track_caller]
    pub fn start() -> Postgres {
        assert!(
            Path::new(PG_BIN).join("initdb").exists(),
            "PostgreSQL 15 is not installed: run the tests with bash scripts/test, which installs it"
        );
        let dir = tempfile::Builder::new()
            .prefix("svcacct-pg.")
            .tempdir()
            .unwrap();
        // SAFETY: geteuid(2) cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        if root {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(
                status.success(),
                "cannot hand the cluster's directory to postgres"
            );
        }
        let data = dir.path().join("data");
        let socket_dir = dir.path().display().to_string();
        let options = format!(
            "-c listen_addresses='' -c unix_socket_directories={socket_dir} -c fsync=off -c max_connections=200"
        );
        let log = dir.path().join("log");
        let steps: [Vec<String>; 2] = [
            vec![
                "initdb".into(),
                "-D".into(),
                data.display().to_string(),
                "-U".into(),
                "svcacct".into(),
                "--auth=trust".into(),
                "-E".into(),
                "UTF8".into(),
                "--no-sync".into(),
            ],
            vec![
                "pg_ctl".into(),
                "-D".into(),
                data.display().to_string(),
                "-w".into(),
                "-o".into(),
                options,
                "-l".into(),
                log.display().to_string(),
                "start".into(),
            ],
        ];
        for step in &steps {
            let out = Postgres::command(root, step).output().unwrap();
            assert!(
                out.status.success(),
                "{} failed: {}{}\n{}",
                step[0],
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let url = format!(
            "postgresql://svcacct@{}/postgres",
            url::form_urlencoded::byte_serialize(socket_dir.as_bytes()).collect::<String>()
        );
        // A test process killed (a CI timeout, say) runs no destructor and no exit handler:
        // a watchdog stops the cluster and removes it once this process is gone.
        let stop = format!(
            "{}{}/pg_ctl -D {} -m immediate -w stop",
            if root {
                "setpriv --reuid=postgres --regid=postgres --clear-groups --reset-env "
            } else {
                ""
            },
            PG_BIN,
            data.display()
        );
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {}",
                std::process::id(),
                dir.path().display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        Postgres { dir, url }
    }

    /// One of PostgreSQL's programs, as the user that owns the cluster.
    fn command(root: bool, args: &[String]) -> Command {
        let program = Path::new(PG_BIN).join(&args[0]);
        let mut cmd = if root {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--clear-groups",
                "--reset-env",
            ])
            .arg(program);
            c
        } else {
            Command::new(program)
        };
        cmd.args(&args[1..]).stdin(Stdio::null());
        cmd
    }

    /// A client of the cluster, for checking what the server wrote.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }

    /// A new empty database in the cluster; returns its URL.
    pub fn new_database(&self) -> String {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let name = format!(
            "t{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        self.client()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let base = self
            .url
            .strip_suffix("/postgres")
            .expect("the postgres database");
        format!("{base}/{name}")
    }

    /// Restarts the cluster, as an upgrade or a failover does: every connection to it ends.
    pub fn restart(&self) {
        // SAFETY: geteuid(2) cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let data = self.dir.path().join("data").display().to_string();
        // With its log file, or the new server would hold this call's output pipes open.
        let log = self.dir.path().join("log").display().to_string();
        let args: Vec<String> = [
            "pg_ctl", "-D", &data, "-l", &log, "-m", "fast", "-w", "restart",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = Postgres::command(root, &args).output().unwrap();
        assert!(
            out.status.success(),
            "pg_ctl restart failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the cluster and removes its files.
    fn stop(&self) {
        // SAFETY: geteuid(2) cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let data = self.dir.path().join("data").display().to_string();
        let _ = Postgres::command(
            root,
            &[
                "pg_ctl".into(),
                "-D".into(),
                data,
                "-m".into(),
                "immediate".into(),
                "-w".into(),
                "stop".into(),
            ],
        )
        .output();
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

//! `svcacct serve`: resolves the operator token and the logging, then runs the reference
//! server until SIGTERM or Ctrl-C.

use anyhow::{Context, Result, bail};
use zeroize::Zeroizing;

use super::{Output, exit};
use crate::cli::ServeArgs;
use crate::server::{self, Settings};

/// The variable the operator token is read from.
pub const ADMIN_TOKEN_ENV: &str = "SVCACCT_ADMIN_TOKEN";

/// Tokens shorter than this are accepted with a warning.
const SHORT_TOKEN: usize = 16;

fn admin_token(args: &ServeArgs) -> Result<Zeroizing<String>> {
    let token = match &args.admin_token_file {
        Some(path) => read_token_file(path)?,
        None => Zeroizing::new(
            std::env::var(ADMIN_TOKEN_ENV)
                .unwrap_or_default()
                .trim()
                .to_string(),
        ),
    };
    if token.is_empty() {
        bail!(
            "no operator token: set {ADMIN_TOKEN_ENV} or pass --admin-token-file FILE (a file holding the token), for example\n  \
             {ADMIN_TOKEN_ENV}=\"$(openssl rand -hex 32)\" svcacct serve --db {}",
            args.db
        );
    }
    if token.chars().any(char::is_whitespace) {
        bail!("the operator token must not contain whitespace");
    }
    Ok(token)
}

/// Reads the operator token from a file only the server's user can read: a token any local
/// user can read is anyone's operator token. The mode is checked on the open file, so it is
/// the file read that was checked.
fn read_token_file(path: &std::path::Path) -> Result<Zeroizing<String>> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let shown = path.display();
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        // A FIFO would block the open until something writes; it is refused below instead.
        .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("cannot read admin token file {shown}"))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read admin token file {shown}"))?;
    if !meta.is_file() {
        bail!("admin token file {shown} is not a regular file");
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "admin token file {shown} is readable or writable by group or others (mode {mode:04o}); \
             make it private to the server's user: chmod 600 {shown}"
        );
    }
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text)
        .with_context(|| format!("cannot read admin token file {shown}"))?;
    let token = Zeroizing::new(text.trim().to_string());
    if token.is_empty() {
        bail!("admin token file {shown} is empty; write the operator token into it");
    }
    Ok(token)
}

fn init_logging(args: &ServeArgs, out: Output) {
    use tracing_subscriber::EnvFilter;
    let default = if out.quiet {
        "warn"
    } else if out.verbose > 0 {
        "debug"
    } else {
        "info"
    };
    let filter = EnvFilter::try_from_env("SVCACCT_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(out.color && std::env::var_os("NO_COLOR").is_none());
    let _ = if args.log_json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// `serve --migrate`: migrates the database and exits; needs no operator token.
fn migrate(args: &ServeArgs, out: Output) -> Result<u8> {
    use crate::store::{Database, Store, migrations::LATEST, postgres};
    let context = || format!("cannot migrate database {}", args.db);
    let was = match &args.db {
        Database::Sqlite(path) => Store::open_migrating(path).with_context(context)?.1,
        Database::Postgres(url) => postgres::connect(url)
            .and_then(|mut client| postgres::migrate(&mut client))
            .with_context(context)?,
    };
    if !out.quiet {
        if was == LATEST {
            eprintln!(
                "{} is at schema version {LATEST} already; nothing to do",
                args.db
            );
        } else {
            eprintln!("migrated {} from schema version {was} to {LATEST}", args.db);
        }
    }
    Ok(exit::OK)
}

/// Runs the server; returns when it has shut down.
pub fn serve(args: &ServeArgs, out: Output) -> Result<u8> {
    if args.migrate {
        return migrate(args, out);
    }
    let admin_token = admin_token(args)?;
    if admin_token.len() < SHORT_TOKEN && !out.quiet {
        eprintln!(
            "warning: the operator token is shorter than {SHORT_TOKEN} characters; use a long random one"
        );
    }
    init_logging(args, out);
    let settings = Settings {
        db: args.db.clone(),
        listen: args.listen,
        admin_token,
        #[cfg(feature = "test-hooks")]
        fault_rate: args.inject_faults,
        max_auth_failures: args.max_auth_failures,
        trusted_proxies: args.trusted_proxies.clone(),
        limits: server::ConnectionLimits {
            header_read_timeout: std::time::Duration::from_secs(args.header_read_timeout),
            idle_timeout: std::time::Duration::from_secs(args.idle_timeout),
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("svcacct-serve")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(server::serve(settings))?;
    Ok(exit::OK)
}

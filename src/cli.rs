//! Command-line types only: what the user typed, as plain data.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Service accounts, teams, roles and API keys as code.
#[derive(Debug, Parser)]
#[command(name = "svcacct", version, about, long_about = None)]
pub struct Cli {
    /// When to colour output.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Print only errors (and what the command exists to print).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more about what is happening.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Pin the backend: a config naming another backend is refused before any request.
    #[arg(long, global = true, env = "SVCACCT_BACKEND_URL", value_name = "URL")]
    pub backend_url: Option<String>,
    /// Also accept this variable as a config's `token_env` (repeatable; the variable takes a
    /// comma-separated list).
    #[arg(
        long,
        global = true,
        env = "SVCACCT_ALLOW_TOKEN_ENV",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub allow_token_env: Vec<String>,
    /// Let `file` delivery targets write under this path (repeatable; the variable takes a
    /// comma-separated list).
    #[arg(
        long,
        global = true,
        env = "SVCACCT_ALLOW_DELIVER_PATH",
        value_delimiter = ',',
        value_name = "PATH"
    )]
    pub allow_deliver_path: Vec<PathBuf>,
    /// Let `command` delivery targets run this program, as the config writes it (repeatable;
    /// the variable takes a comma-separated list).
    #[arg(
        long,
        global = true,
        env = "SVCACCT_ALLOW_DELIVER_COMMAND",
        value_delimiter = ',',
        value_name = "PROGRAM"
    )]
    pub allow_deliver_command: Vec<String>,
    /// The GitHub REST API that `github_actions` targets use (GitHub Enterprise Server:
    /// `https://HOST/api/v3`). Default: https://api.github.com.
    #[arg(
        long,
        global = true,
        env = "SVCACCT_GITHUB_API_URL",
        value_name = "URL"
    )]
    pub github_api_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the config offline; no backend is touched.
    Validate(ConfigArg),
    /// Show what apply would change.
    Plan(PlanArgs),
    /// Make the changes, writing new keys to age-encrypted files.
    Apply(ApplyArgs),
    /// Render a plan saved by `plan --out` again.
    Show(ShowArgs),
    /// Rotate one key now, honouring its overlap (brings a key made outside svcacct under it).
    Rotate(RotateArgs),
    /// Deliver keys to their delivery targets again, changing nothing else.
    Deliver(DeliverArgs),
    /// Work with key files: re-encrypt them, or show one secret.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Write the live organization as YAML.
    Export(ExportArgs),
    /// Check an API key read from standard input: whose it is and what it may do.
    Verify(ConfigArg),
    /// Print the JSON Schema of the config.
    Schema,
    /// Run the reference HTTP server over an organization file.
    Serve(ServeArgs),
    /// Write a new organization's repository: config, recipients.txt, .gitignore.
    Init(InitArgs),
    /// Print a shell completion script (`svcacct completions bash > ...`).
    Completions(CompletionsArgs),
    /// Print the man page, as roff (`svcacct man > svcacct.1`).
    Man,
    /// Ask a running server whether it is ready (GET /v1/ready): exit 0 when it is, 1 when
    /// not; for container health checks, where there is no curl.
    Healthcheck(HealthcheckArgs),
    /// Work with the config's policy rules.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The readiness URL to GET.
    #[arg(
        long,
        env = "SVCACCT_HEALTHCHECK_URL",
        default_value = "http://127.0.0.1:8080/v1/ready",
        value_name = "URL"
    )]
    pub url: String,
    /// Seconds to wait for the answer.
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Which rules apply to an object, and why it passes or fails (offline).
    Explain(ExplainArgs),
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The object: role.NAME, team.NAME, service_account.NAME or key.ACCOUNT.KEY.
    pub address: String,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// A config file, or a directory of *.yaml/*.yml files merged together.
    #[arg(short, long, env = "SVCACCT_CONFIG", default_value = "svcacct.yaml")]
    pub config: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Allow a plan that deletes more than the policy's share of managed objects.
    #[arg(long)]
    pub allow_mass_delete: bool,
    /// Also save the plan to this file, for `svcacct apply FILE` (holds no secret).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub slice: SliceArgs,
}

/// Limits a plan or an apply to part of the organization.
#[derive(Debug, Args, Default)]
pub struct SliceArgs {
    /// Only objects whose address starts with this (repeatable), as `service_account.ci-bot`
    /// (its keys included); what they need and is not there yet comes along.
    #[arg(long = "target", value_name = "ADDRESS")]
    pub targets: Vec<String>,
    /// Leave out objects whose address starts with this (repeatable).
    #[arg(long = "exclude", value_name = "ADDRESS")]
    pub excludes: Vec<String>,
}

/// The request budget of an apply (and of `rotate`), well under Prefect's lowest plan (625).
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 400;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved by `plan --out`: apply exactly it, with no prompt, or refuse if the
    /// organization, the config or the file changed since.
    #[arg(value_name = "PLAN")]
    pub plan: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArg,
    /// Apply without asking for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// How many independent changes run at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallelism: u16,
    /// Allow a plan that deletes more than the policy's share of managed objects.
    #[arg(long)]
    pub allow_mass_delete: bool,
    /// How long to wait for another apply to release the organization, in seconds.
    #[arg(long, default_value_t = 60)]
    pub lock_timeout: u64,
    /// The most requests a minute the apply sends to a SaaS backend, so that it never uses up
    /// an account's rate limit for everyone else (Prefect's lowest plan allows 625).
    #[arg(long, default_value_t = DEFAULT_REQUESTS_PER_MINUTE, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_requests_per_minute: u32,
    #[command(flatten)]
    pub slice: SliceArgs,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

/// Identities that decrypt key files, for delivering keys issued by an earlier apply.
#[derive(Debug, Args, Default)]
pub struct IdentityArgs {
    /// An age identity file or an unencrypted SSH private key (repeatable; the variable takes
    /// a comma-separated list).
    #[arg(
        short = 'i',
        long = "identity",
        env = "SVCACCT_IDENTITY_FILE",
        value_delimiter = ',',
        value_name = "IDENTITY"
    )]
    pub identities: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DeliverArgs {
    /// Keys to deliver, as plans name them (key.ACCOUNT.KEY); default: every key with targets.
    #[arg(value_name = "ADDRESS")]
    pub addresses: Vec<String>,
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// How long to wait for another apply to release the organization, in seconds.
    #[arg(long, default_value_t = 60)]
    pub lock_timeout: u64,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The saved plan.
    pub plan: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The key, as plans name it: key.ACCOUNT.KEY.
    pub address: String,
    #[command(flatten)]
    pub config: ConfigArg,
    /// Rotate without asking for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// How long to wait for another apply to release the organization, in seconds.
    #[arg(long, default_value_t = 60)]
    pub lock_timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Re-encrypt every key file encrypted to other recipients than the config's, all or none.
    Reencrypt(ReencryptArgs),
    /// Print one key's secret to standard output, for a person (the only command that does).
    Show(ShowSecretArgs),
    /// Delete the key files of keys that no longer exist live, all or none.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Delete without asking for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// How long to wait for an apply to release the organization, in seconds.
    #[arg(long, default_value_t = 60)]
    pub lock_timeout: u64,
}

#[derive(Debug, Args)]
pub struct ReencryptArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// An age identity file or an unencrypted SSH private key that decrypts the files.
    #[arg(short, long, value_name = "IDENTITY")]
    pub identity: PathBuf,
}

#[derive(Debug, Args)]
pub struct ShowSecretArgs {
    /// The key, as plans name it: key.ACCOUNT.KEY.
    pub address: String,
    #[command(flatten)]
    pub config: ConfigArg,
    /// An age identity file or an unencrypted SSH private key that decrypts the file.
    #[arg(short, long, value_name = "IDENTITY")]
    pub identity: PathBuf,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitBackend {
    Local,
    Http,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The directory to write into; it must be new or empty.
    pub dir: PathBuf,
    /// The organization's name (a lowercase slug).
    #[arg(long)]
    pub organization: String,
    /// A template directory whose *.yaml/*.yml files are copied with every
    /// `{{organization}}` replaced by the name (default: a small built-in starter).
    #[arg(long, value_name = "TEMPLATE_DIR")]
    pub from: Option<PathBuf>,
    /// Where the organization lives.
    #[arg(long, value_enum, default_value_t = InitBackend::Local)]
    pub backend: InitBackend,
    /// The server's URL, for `--backend http` (not needed when the run pins one).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// An age (age1...) or SSH public key to encrypt key files to (repeatable); without one, a
    /// new age identity is made.
    #[arg(long = "recipient", value_name = "AGE_OR_SSH_PUBKEY")]
    pub recipients: Vec<String>,
    /// Where the new identity is written (default
    /// ~/.config/svcacct/identities/<organization>.txt); never inside DIR.
    #[arg(long, value_name = "PATH", conflicts_with = "recipients")]
    pub identity_out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The database: a SQLite file (created if missing; the `local` backend uses the same) or
    /// a postgres:// URL.
    #[arg(long, env = "SVCACCT_DATABASE_URL", hide_env_values = true, value_name = "FILE_OR_URL", value_parser = DatabaseParser)]
    pub db: crate::store::Database,
    /// Bring the database's schema up to this version's, say what was done, and exit
    /// (`serve` also does it at start; this is for upgrading before starting replicas).
    #[arg(long)]
    pub migrate: bool,
    /// The address to listen on; port 0 picks a free port (printed on stderr).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// A file holding the operator token (instead of the SVCACCT_ADMIN_TOKEN variable); it
    /// must not be readable by group or others.
    #[arg(long, env = "SVCACCT_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Write request logs as JSON lines.
    #[arg(long)]
    pub log_json: bool,
    /// Testing only: the share (0.0-1.0) of organization requests that fail at random.
    #[cfg(feature = "test-hooks")]
    #[arg(long, hide = true, default_value_t = 0.0, value_parser = fault_rate)]
    pub inject_faults: f64,
    /// Failed authentications one address may make in 10 seconds before getting 429s.
    #[arg(long, hide = true, default_value_t = 20)]
    pub max_auth_failures: usize,
    /// A proxy (address or CIDR) whose X-Forwarded-For names the client; repeatable. Without
    /// one, the connecting address is the client.
    #[arg(long = "trusted-proxy", value_name = "ADDR_OR_CIDR", value_parser = ip_or_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Seconds a client has to send a request's headers before its connection is closed.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout: u64,
    /// Seconds a connection may wait on a read or write without progress before it is closed.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idle_timeout: u64,
    /// Connections served at once; more wait to be accepted.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
}

/// Parses `--db` with an error of its own: clap's would repeat the value, and a URL's password
/// with it.
#[derive(Clone)]
struct DatabaseParser;

impl clap::builder::TypedValueParser for DatabaseParser {
    type Value = crate::store::Database;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Self::Value, clap::Error> {
        let invalid = |message: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid --db: {message}\n"),
            )
            .with_cmd(cmd)
        };
        value
            .to_str()
            .ok_or_else(|| invalid("not UTF-8".into()))?
            .parse()
            .map_err(invalid)
    }
}

fn ip_or_net(s: &str) -> Result<ipnet::IpNet, String> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{s}` is not an IP address or a CIDR block such as 10.0.0.0/8"))
}

#[cfg(feature = "test-hooks")]
fn fault_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("`{s}` is not a share from 0.0 to 1.0")),
    }
}

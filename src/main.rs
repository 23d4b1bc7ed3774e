//! The `svcacct` binary: parse arguments, run the command, map errors to exit codes.

use std::process::ExitCode;

/// Parsing a big config and building its model allocate millions of small objects;
/// mimalloc does that markedly faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use svcacct::cli::{Cli, Command};
use svcacct::commands::{self, Output, exit};
use svcacct::config::CredentialPolicy;
use svcacct::escape;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Output::resolve(cli.color, cli.quiet, cli.verbose);
    let mut credentials =
        match CredentialPolicy::resolve(cli.backend_url.as_deref(), &cli.allow_token_env) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(exit::ERROR);
            }
        };
    credentials.deliver = svcacct::config::DeliverPins::resolve(
        &cli.allow_deliver_path,
        &cli.allow_deliver_command,
        cli.github_api_url.as_deref(),
    );
    let c = &credentials;
    let result = match &cli.command {
        Command::Validate(a) => commands::validate(a, out, c),
        Command::Plan(a) => commands::plan(a, out, c),
        Command::Apply(a) => commands::apply(a, out, c),
        Command::Export(a) => commands::export(a, out, c),
        Command::Rotate(a) => commands::rotate(a, out, c),
        Command::Deliver(a) => commands::deliver(a, out, c),
        Command::Show(a) => commands::show(a, out),
        Command::Secrets(a) => commands::secrets(a, out, c),
        Command::Verify(a) => commands::verify(a, out, c),
        Command::Serve(a) => commands::serve(a, out),
        Command::Init(a) => commands::init(a, out, c),
        Command::Completions(a) => commands::completions(a),
        Command::Man => commands::man(),
        Command::Healthcheck(a) => commands::healthcheck(a, out),
        Command::Policy(a) => commands::policy(a, out, c),
        Command::Schema => {
            print!("{}", svcacct::config::schema::config_schema());
            Ok(exit::OK)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // A closed pipe (`svcacct plan | head`) is not a failure.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::from(exit::OK);
            }
            // Messages echo config and live values (snippets, names, a server's words).
            let message = match e.downcast_ref::<svcacct::config::ConfigError>() {
                // Config diagnostics carry their own `error:` headers and snippets.
                Some(svcacct::config::ConfigError::Invalid(_)) => e.to_string(),
                _ => format!("error: {e:#}"),
            };
            eprintln!("{}", escape::terminal_lines(&message));
            ExitCode::from(exit::ERROR)
        }
    }
}

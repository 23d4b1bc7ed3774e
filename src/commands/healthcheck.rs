//! `svcacct healthcheck`: one GET of a server's readiness URL, exit 0 on a 2xx and 1 on
//! anything else. The container image runs it as its `HEALTHCHECK`, so the runtime image
//! needs no curl or wget (less to patch, less for an intruder to use).

use std::time::Duration;

use anyhow::{Context, Result};

use super::{Output, exit};
use crate::cli::HealthcheckArgs;
use crate::escape;

/// Asks `args.url` once; says why when the answer is not ready.
pub fn healthcheck(args: &HealthcheckArgs, out: Output) -> Result<u8> {
    let url = url::Url::parse(&args.url)
        .with_context(|| format!("invalid --url {}", escape::terminal(&args.url)))?;
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(args.timeout))
        // A readiness answer is the server's own; a redirect would check something else.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot build the HTTP client")?;
    let response = match client.get(url.clone()).send() {
        Ok(r) => r,
        Err(e) => {
            if !out.quiet {
                eprintln!("not ready: {url}: {}", escape::terminal(&format!("{e:#}")));
            }
            return Ok(exit::ERROR);
        }
    };
    let status = response.status();
    // The body is the server's readiness JSON (a status and a reason), never a secret; it is
    // short, and capped in case the URL is not ours.
    let body = response.text().unwrap_or_default();
    let body: String = body.trim().chars().take(500).collect();
    if status.is_success() {
        if !out.quiet {
            println!("ready: {url} answered {status}");
        }
        Ok(exit::OK)
    } else {
        if !out.quiet {
            eprintln!(
                "not ready: {url} answered {status}: {}",
                escape::terminal(&body)
            );
        }
        Ok(exit::ERROR)
    }
}

//! The backend section held to what the run pins about credentials: a config under review
//! may not send a token anywhere the CI did not pin.

use crate::backend::BackendConfig;
use crate::config::credentials;
use crate::config::credentials::{CredentialPolicy, TOKEN_ENV_PREFIXES};
use crate::config::diagnostic::Severity;
use crate::config::load::Merged;

use super::findings::{Findings, at};

/// Where the config writes its backend section (the top of the first file if nowhere).
pub(super) fn backend_place(merged: &Merged) -> (usize, (u64, u64)) {
    merged
        .backend
        .as_ref()
        .map_or((0, (1, 1)), |b| (b.file, at(&b.item)))
}

pub(super) const PIN_HELP: &str = "the run pins its backend with --backend-url or SVCACCT_BACKEND_URL; credentials go nowhere else";

/// Holds the backend to the run's credential policy: under a pinned URL the backend must be
/// that server (a config without a URL gets it), and a token may only be read from a variable
/// named for svcacct or a backend, or one the run allows.
pub(super) fn hold_to_credentials(
    f: &mut Findings<'_>,
    merged: &Merged,
    backend: &mut BackendConfig,
    credentials: &CredentialPolicy,
) {
    let pinned = credentials.pinned.as_ref();
    let (file, place) = backend_place(merged);
    let Some(url) = backend.endpoint().map(|e| e.url.map(str::to_owned)) else {
        if let Some(pin) = pinned {
            let message = format!(
                "backend `{}` is refused: this run is pinned to the backend url `{pin}`",
                backend.kind()
            );
            f.push(Severity::Error, file, place, message, Some(PIN_HELP.into()));
        }
        return;
    };
    match (url, pinned) {
        (Some(url), _) if credentials::check_backend_url(&url).is_err() => {
            let why = credentials::check_backend_url(&url).expect_err("checked");
            f.error(
                file,
                place,
                format!("invalid backend url `{url}`: it {why}"),
            );
        }
        (Some(url), Some(pin)) if !pin.matches(&url) => {
            let message = format!(
                "backend url `{url}` is not the pinned backend url `{pin}`; no request was sent"
            );
            f.push(Severity::Error, file, place, message, Some(PIN_HELP.into()));
        }
        // The pinned URL is the one used: the config's matched it, or named none.
        (_, Some(pin)) => backend.set_url(pin.as_str()),
        (_, None) => {}
    }
    let token_env = backend.endpoint().map(|e| e.token_env.to_owned());
    if let Some(token_env) = token_env.filter(|t| !credentials.token_env_allowed(t)) {
        f.push(
            Severity::Error,
            file,
            place,
            format!(
                "token_env `{token_env}` is not allowed: a token is read only from a variable named {}",
                TOKEN_ENV_PREFIXES
                    .iter()
                    .map(|p| format!("`{p}*`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            Some(format!(
                "rename the variable, or allow it for this run with `--allow-token-env {token_env}` or SVCACCT_ALLOW_TOKEN_ENV"
            )),
        );
    }
}

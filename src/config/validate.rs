//! Turning merged YAML into a desired organization, collecting every error (with its place)
//! rather than stopping at the first, so one run shows everything to fix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use time::Date;
use time::macros::format_description;

use super::credentials;
use super::diagnostic::{Diagnostic, Severity, Source, closest};
use super::files;
use super::load::Merged;
use super::raw::{Loc, RawBackend};
use super::{
    BackendSettings, Config, ConfigError, CredentialPolicy, MAX_KEYS_PER_ACCOUNT, Policy,
    SecretsSettings, TOKEN_ENV_PREFIXES,
};
use crate::model::{ApiKey, BUILTIN_ROLES, Organization, Role, ServiceAccount, Team};
use crate::secrets::{parse_recipient, parse_recipients_file};

/// Collects diagnostics against the sources.
struct Findings<'a> {
    sources: &'a [Source],
    all: Vec<Diagnostic>,
}

impl Findings<'_> {
    fn push(
        &mut self,
        severity: Severity,
        file: usize,
        at: (u64, u64),
        message: String,
        help: Option<String>,
    ) {
        let mut d = self.sources[file].diagnostic(severity, at.0.max(1), at.1.max(1), message);
        d.help = help;
        self.all.push(d);
    }
    fn error(&mut self, file: usize, at: (u64, u64), message: String) {
        self.push(Severity::Error, file, at, message, None);
    }

    /// An error unless `name` is a lowercase slug.
    fn check_name(&mut self, file: usize, at: (u64, u64), kind: &str, name: &str) {
        if !valid_name(name) {
            let message = format!("invalid {kind} name `{name}`");
            self.push(Severity::Error, file, at, message, Some(NAME_HELP.into()));
        }
    }

    /// The set of `list`, with an error for each entry that is not a permission.
    fn permissions(
        &mut self,
        file: usize,
        list: &[Loc<String>],
        kind: &str,
        help: &str,
    ) -> BTreeSet<String> {
        for p in list.iter().filter(|p| !valid_permission(&p.value)) {
            let message = format!("invalid {kind} `{}`", p.value);
            self.push(Severity::Error, file, at(p), message, Some(help.into()));
        }
        list.iter().map(|p| p.value.clone()).collect()
    }
}

fn at<T>(l: &Loc<T>) -> (u64, u64) {
    (l.line, l.column)
}

/// Whether `name` is a lowercase slug.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether `p` is `resource:action`, each part a lowercase word or `*`.
pub fn valid_permission(p: &str) -> bool {
    let part = |s: &str| {
        s == "*"
            || (!s.is_empty()
                && s.bytes().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_'
                }))
    };
    p.split_once(':').is_some_and(|(r, a)| part(r) && part(a))
}

const NAME_HELP: &str =
    "names are lowercase letters, digits and inner hyphens, at most 63 characters";

pub fn validate(
    base_dir: PathBuf,
    merged: Merged,
    credentials: &CredentialPolicy,
) -> Result<Config, ConfigError> {
    let mut f = Findings {
        sources: &merged.sources,
        all: Vec::new(),
    };

    let organization = match &merged.organization {
        Some(o) => {
            f.check_name(o.file, at(&o.item), "organization", &o.item.value);
            o.item.value.clone()
        }
        None => {
            f.push(
                Severity::Error,
                0,
                (1, 1),
                "missing `organization`".into(),
                Some("add `organization: <name>` at the top of the config".into()),
            );
            String::new()
        }
    };

    let mut desired = Organization::new(&organization);

    for d in &merged.roles {
        let (name, raw) = &d.item.value;
        if BUILTIN_ROLES.contains(&name.as_str()) {
            f.push(
                Severity::Error,
                d.file,
                at(&d.item),
                format!("built-in role `{name}` cannot be changed"),
                Some("define a custom role with another name".into()),
            );
            continue;
        }
        f.check_name(d.file, at(&d.item), "role", name);
        let permissions = f.permissions(
            d.file,
            &raw.permissions,
            "permission",
            "permissions look like `flows:read`; `*` matches any resource or action",
        );
        desired.roles.insert(
            name.clone(),
            Role {
                description: raw.description.clone(),
                permissions,
                builtin: false,
                managed: true,
                protect: raw.protect,
            },
        );
    }

    for d in &merged.teams {
        let (name, raw) = &d.item.value;
        f.check_name(d.file, at(&d.item), "team", name);
        desired.teams.insert(
            name.clone(),
            Team {
                description: raw.description.clone(),
                managed: true,
                protect: raw.protect,
            },
        );
    }

    let team_names: Vec<&str> = desired.teams.keys().map(String::as_str).collect();
    let role_names: Vec<&str> = desired.roles.keys().map(String::as_str).collect();
    let mut first_key: Option<(usize, (u64, u64))> = None;

    for d in &merged.service_accounts {
        let (name, raw) = &d.item.value;
        f.check_name(d.file, at(&d.item), "service account", name);
        let mut teams = BTreeMap::new();
        for (team, role) in &raw.teams.0 {
            if !desired.teams.contains_key(&team.value) {
                let help = closest(&team.value, team_names.iter().copied())
                    .map(|c| format!("did you mean `{c}`?"));
                f.push(
                    Severity::Error,
                    d.file,
                    at(team),
                    format!(
                        "undefined team `{}` in service account `{name}`",
                        team.value
                    ),
                    help.or(Some("define it under `teams:`".into())),
                );
            }
            if !desired.roles.contains_key(&role.value) {
                let help = closest(&role.value, role_names.iter().copied())
                    .map(|c| format!("did you mean `{c}`?"));
                f.push(
                    Severity::Error,
                    d.file,
                    at(role),
                    format!(
                        "undefined role `{}` in service account `{name}`",
                        role.value
                    ),
                    help.or(Some(
                        "define it under `roles:` or use admin, member or viewer".into(),
                    )),
                );
            }
            teams.insert(team.value.clone(), role.value.clone());
        }
        if teams.is_empty() && !raw.admin {
            f.push(Severity::Warning, d.file, at(&d.item), format!("service account `{name}` has no team membership, so its keys grant no permission"), Some("add `teams: { <team>: <role> }`".into()));
        }
        let expires = raw
            .expires
            .as_ref()
            .and_then(|e| parse_expiry(&mut f, d.file, e));
        if raw.keys.0.len() > MAX_KEYS_PER_ACCOUNT {
            let k = &raw.keys.0[MAX_KEYS_PER_ACCOUNT].0;
            f.error(d.file, at(k), format!("service account `{name}` declares {} keys; at most {MAX_KEYS_PER_ACCOUNT} are allowed", raw.keys.0.len()));
        }
        let mut account = ServiceAccount {
            description: raw.description.clone(),
            teams,
            admin: raw.admin,
            expires,
            disabled: raw.disabled,
            protect: raw.protect,
            managed: true,
            keys: BTreeMap::new(),
        };
        for (key, k) in &raw.keys.0 {
            first_key.get_or_insert((d.file, at(key)));
            f.check_name(d.file, at(key), "key", &key.value);
            let scopes = f.permissions(
                d.file,
                &k.scopes,
                "scope",
                "scopes are permissions such as `flows:read` or `*:read`",
            );
            account.keys.insert(
                key.value.clone(),
                ApiKey {
                    description: k.description.clone(),
                    scopes,
                    expires_in: k.expires_in,
                    rotate_every: k.rotate_every,
                    overlap: k.overlap,
                    managed: true,
                    issued: None,
                },
            );
        }
        desired.service_accounts.insert(name.clone(), account);
    }

    let backend = backend(&mut f, &merged, &base_dir, &organization, credentials);

    let raw_secrets = merged.secrets.as_ref().map(|s| (s.file, &s.item.value));
    let mut parsed = Vec::new();
    let mut recipients = Vec::new();
    let mut recipients_file = None;
    if let Some((file, s)) = raw_secrets {
        for r in &s.recipients {
            match parse_recipient(&r.value) {
                Ok(p) => parsed.push(p),
                Err(e) => f.error(file, at(r), e),
            }
            recipients.push(r.value.clone());
        }
        if let Some(rf) = &s.recipients_file {
            let path = base_dir.join(&rf.value);
            match files::read_confined(&base_dir, &rf.value, files::MAX_RECIPIENTS_FILE) {
                Ok(text) => match parse_recipients_file(&text) {
                    Ok(mut more) => parsed.append(&mut more),
                    Err((line, e)) => f.error(
                        file,
                        at(rf),
                        format!("line {line} of recipients file {}: {e}", path.display()),
                    ),
                },
                Err(e) => f.push(
                    Severity::Error,
                    file,
                    at(rf),
                    format!("invalid recipients file: {e}"),
                    Some(
                        "a recipients file is a regular file of at most 64 KiB in the config's directory tree"
                            .into(),
                    ),
                ),
            }
            recipients_file = Some(PathBuf::from(&rf.value));
        }
    }
    if parsed.is_empty()
        && let Some((file, place)) = first_key
        && !f
            .all
            .iter()
            .any(|d| d.severity == Severity::Error && d.message.contains("recipient"))
    {
        f.push(
            Severity::Error,
            file,
            place,
            "keys are declared but no recipients are configured, so no key file could be encrypted"
                .into(),
            Some("add age public keys under `secrets: { recipients: [age1…] }`".into()),
        );
    }
    let secrets = SecretsSettings {
        dir: base_dir.join(
            raw_secrets
                .and_then(|(_, s)| s.dir.as_deref())
                .unwrap_or("secrets"),
        ),
        recipients,
        recipients_file,
        parsed,
    };

    let mut policy = Policy::default();
    if let Some(p) = &merged.policy {
        if let Some(u) = p.item.value.unmanaged {
            policy.unmanaged = u;
        }
        if let Some(m) = &p.item.value.max_delete_percent {
            if m.value > 100 {
                f.error(
                    p.file,
                    at(m),
                    format!(
                        "max_delete_percent is {}; it must be between 0 and 100",
                        m.value
                    ),
                );
            }
            policy.max_delete_percent = m.value;
        }
    }

    if f.all.iter().any(|d| d.severity == Severity::Error) {
        return Err(ConfigError::Invalid(f.all));
    }
    Ok(Config {
        base_dir,
        backend,
        secrets,
        policy,
        desired,
        warnings: f.all,
    })
}

/// The backend the config names, held to the run's credential policy: under a pinned URL the
/// backend must be that server (a config without a URL gets it), and a token may only be read
/// from a variable named for svcacct or a backend, or one the run allows.
fn backend(
    f: &mut Findings<'_>,
    merged: &Merged,
    base_dir: &Path,
    organization: &str,
    credentials: &CredentialPolicy,
) -> BackendSettings {
    let pinned = credentials.pinned.as_ref();
    let raw = merged.backend.as_ref();
    let place =
        |p: Option<(u64, u64)>| raw.map_or((0, (1, 1)), |b| (b.file, p.unwrap_or(at(&b.item))));
    let settings = match raw.map(|b| &b.item.value) {
        // Under a pin, a config that names no backend uses the pinned one.
        None if pinned.is_some() => BackendSettings::Http {
            url: String::new(),
            token_env: DEFAULT_TOKEN_ENV.into(),
        },
        None | Some(RawBackend::Local { path: None }) => BackendSettings::Local {
            path: base_dir.join(".svcacct").join(format!("{organization}.db")),
        },
        Some(RawBackend::Local { path: Some(p) }) => BackendSettings::Local {
            path: base_dir.join(p),
        },
        Some(RawBackend::Http { url, token_env }) => BackendSettings::Http {
            url: url
                .as_ref()
                .map_or(String::new(), |u| u.value.trim_end_matches('/').to_string()),
            token_env: token_env
                .as_ref()
                .map_or(DEFAULT_TOKEN_ENV.into(), |t| t.value.clone()),
        },
    };
    let Some(endpoint) = settings.endpoint() else {
        if let Some(pin) = pinned {
            let (file, at) = place(None);
            f.push(
                Severity::Error,
                file,
                at,
                format!(
                    "backend `{}` is refused: this run is pinned to the backend url `{pin}`",
                    settings.kind()
                ),
                Some(PIN_HELP.into()),
            );
        }
        return settings;
    };
    let url_place = raw.and_then(|b| b.item.value.url_place());
    match (endpoint.url, pinned) {
        ("", None) => {
            let (file, at) = place(None);
            f.push(
                Severity::Error,
                file,
                at,
                format!("the {} backend needs a `url`", settings.kind()),
                Some("add `url: https://…`, or pin one with --backend-url".into()),
            );
        }
        ("", Some(_)) => {}
        (url, _) if credentials::check_backend_url(url).is_err() => {
            let why = credentials::check_backend_url(url).expect_err("checked");
            let (file, at) = place(url_place);
            f.error(file, at, format!("invalid backend url `{url}`: it {why}"));
        }
        (url, Some(pin)) if !pin.matches(url) => {
            let (file, at) = place(url_place);
            f.push(
                Severity::Error,
                file,
                at,
                format!(
                    "backend url `{url}` is not the pinned backend url `{pin}`; no request was sent"
                ),
                Some(PIN_HELP.into()),
            );
        }
        _ => {}
    }
    if !credentials.token_env_allowed(endpoint.token_env) {
        let (file, at) = place(raw.and_then(|b| b.item.value.token_env_place()));
        f.push(
            Severity::Error,
            file,
            at,
            format!(
                "token_env `{}` is not allowed: a token is read only from a variable named {}",
                endpoint.token_env,
                TOKEN_ENV_PREFIXES
                    .iter()
                    .map(|p| format!("`{p}*`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            Some(format!(
                "rename the variable, or allow it for this run with `--allow-token-env {}` or SVCACCT_ALLOW_TOKEN_ENV",
                endpoint.token_env
            )),
        );
    }
    match (settings, pinned) {
        // The pinned URL is the one used: the config's matched it, or named none.
        (BackendSettings::Http { token_env, .. }, Some(pin)) => BackendSettings::Http {
            url: pin.as_str().to_string(),
            token_env,
        },
        (settings, _) => settings,
    }
}

/// The variable an http backend's token is read from when the config names none.
const DEFAULT_TOKEN_ENV: &str = "SVCACCT_TOKEN";

const PIN_HELP: &str = "the run pins its backend with --backend-url or SVCACCT_BACKEND_URL; credentials go nowhere else";

fn parse_expiry(f: &mut Findings<'_>, file: usize, e: &Loc<String>) -> Option<Date> {
    if e.value == "never" {
        return None;
    }
    match Date::parse(&e.value, format_description!("[year]-[month]-[day]")) {
        Ok(d) => Some(d),
        Err(_) => {
            f.push(
                Severity::Error,
                file,
                at(e),
                format!("invalid expiry `{}`", e.value),
                Some("use `never` or a date such as 2027-06-30".into()),
            );
            None
        }
    }
}

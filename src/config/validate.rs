//! Turning merged YAML into a desired organization, collecting every error (with its place)
//! rather than stopping at the first, so one run shows everything to fix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use time::Date;
use time::macros::format_description;

use super::credentials;
use super::diagnostic::{Diagnostic, Severity, Source};
use super::files;
use super::load::Merged;
use super::raw::Loc;
use super::{Config, ConfigError, CredentialPolicy, Policy, SecretsSettings, TOKEN_ENV_PREFIXES};
use crate::backend::{BackendConfig, Capabilities, Vocabulary};
use crate::model::{
    ApiKey, NAME_HELP, Organization, Role, ServiceAccount, Team, valid_name, valid_permission,
};
use crate::secrets::{parse_recipient, parse_recipients_file};
use crate::suggest::closest;

/// Collects diagnostics against the sources.
pub(super) struct Findings<'a> {
    sources: &'a [Source],
    all: Vec<Diagnostic>,
    /// What the configured backend can store: its permission names, built-in roles, limits.
    pub(super) caps: &'static Capabilities,
}

impl Findings<'_> {
    pub(super) fn push(
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
    pub(super) fn error(&mut self, file: usize, at: (u64, u64), message: String) {
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
        let caps = self.caps;
        for p in list {
            match caps.vocabulary {
                Vocabulary::Patterns if !valid_permission(&p.value) => {
                    let message = format!("invalid {kind} `{}`", p.value);
                    self.push(Severity::Error, file, at(p), message, Some(help.into()));
                }
                Vocabulary::Names(names) if !names.contains(&p.value.as_str()) => {
                    let message = format!("the {} backend has no {kind} `{}`", caps.name, p.value);
                    let help = closest(&p.value, names.iter().copied())
                        .map(|c| format!("did you mean `{c}`?"));
                    self.push(Severity::Error, file, at(p), message, help);
                }
                _ => {}
            }
        }
        list.iter().map(|p| p.value.clone()).collect()
    }
}

pub(super) fn at<T>(l: &Loc<T>) -> (u64, u64) {
    (l.line, l.column)
}

/// Refuses, at the place it is written, what the backend cannot store: more keys than it
/// keeps per account, a longer overlap than it allows, fields it has no place for.
fn check_capabilities(f: &mut Findings<'_>, merged: &Merged) {
    let caps = f.caps;
    let backend = caps.name;
    let cannot = |what: &str| format!("the {backend} backend cannot store {what}");
    for d in &merged.roles {
        if d.item.value.1.protect && !caps.persists.protect {
            f.error(d.file, at(&d.item), cannot("`protect` on a role"));
        }
    }
    for d in &merged.teams {
        let (name, raw) = &d.item.value;
        if raw.protect && (!caps.persists.protect || caps.fixed_teams) {
            f.error(d.file, at(&d.item), cannot("`protect` on a team"));
        }
        if !raw.description.is_empty() && caps.fixed_teams {
            f.error(
                d.file,
                at(&d.item),
                format!("the {backend} backend cannot store a description on team `{name}`: its teams are made outside svcacct, which only names them"),
            );
        }
    }
    for d in &merged.service_accounts {
        let (name, raw) = &d.item.value;
        let (file, place) = (d.file, at(&d.item));
        if raw.protect && !caps.persists.protect {
            f.error(file, place, cannot("`protect` on a service account"));
        }
        if raw.disabled && !caps.persists.disabled {
            f.error(
                file,
                place,
                cannot("`disabled` (a disabled service account)"),
            );
        }
        if let Some(e) = raw.expires.as_ref().filter(|e| e.value != "never")
            && !caps.persists.account_expiry
        {
            f.error(
                file,
                at(e),
                cannot("an account's `expires`; use `expires_in` on its key"),
            );
        }
        if let Some((k, _)) = raw.keys.0.get(caps.max_keys_per_account) {
            let n = caps.max_keys_per_account;
            f.error(
                file,
                at(k),
                format!(
                    "service account `{name}` declares {} keys; the {backend} backend keeps at most {n} {} per account",
                    raw.keys.0.len(),
                    if n == 1 { "key" } else { "keys" }
                ),
            );
        }
        for (key, k) in &raw.keys.0 {
            if let Some(s) = k.scopes.first()
                && !caps.persists.scopes
            {
                f.error(
                    file,
                    at(s),
                    cannot("key `scopes`; narrow the account's roles instead"),
                );
            }
            if let (Some(overlap), Some(max)) = (k.overlap, caps.max_overlap)
                && overlap > max
            {
                f.error(
                    file,
                    at(key),
                    format!("key `{}` has overlap {overlap}; the {backend} backend keeps a rotated-out key at most {max}", key.value),
                );
            }
        }
    }
}

pub fn validate(
    base_dir: PathBuf,
    merged: Merged,
    credentials: &CredentialPolicy,
) -> Result<Config, ConfigError> {
    let mut backend = match (merged.backend.as_ref(), &credentials.pinned) {
        (Some(b), _) => b.item.value.clone(),
        // Under a pin, a config that names no backend uses the pinned one.
        (None, Some(pin)) => BackendConfig::at_url(pin.as_str()),
        (None, None) => BackendConfig::default(),
    };
    let mut f = Findings {
        sources: &merged.sources,
        all: Vec::new(),
        caps: backend.capabilities(),
    };
    check_capabilities(&mut f, &merged);
    let organization = organization_name(&mut f, &merged);
    let mut desired = Organization::with_builtin_roles(&organization, f.caps.builtin_roles);
    roles(&mut f, &merged, &mut desired);
    teams(&mut f, &merged, &mut desired);
    let first_key = service_accounts(&mut f, &merged, &mut desired);
    project(&mut f, &merged, &mut desired);
    hold_to_credentials(&mut f, &merged, &mut backend, credentials);
    if let Err(e) = backend.resolve(&base_dir, &organization) {
        let (file, place) = backend_place(&merged);
        f.error(file, place, e);
    }
    let secrets = secrets(&mut f, &merged, &base_dir, first_key);
    let policy = policy(&mut f, &merged);
    let mut rules = super::rules::compile(&merged, &desired, &mut f.all);
    let delivery = super::deliver::deliveries(&mut f, &merged, &base_dir, credentials);
    if f.all.iter().any(|d| d.severity == Severity::Error) {
        return Err(ConfigError::Invalid(f.all));
    }
    let warnings = f.all;
    // Violations quote the config's lines; the text moves to the rules rather than copied.
    if !rules.rules.is_empty() {
        rules.spans.sources = merged.sources;
    }
    Ok(Config {
        base_dir,
        backend,
        secrets,
        policy,
        rules,
        desired,
        delivery,
        warnings,
    })
}

/// The organization's name, which every config must give.
fn organization_name(f: &mut Findings<'_>, merged: &Merged) -> String {
    match &merged.organization {
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
    }
}

/// Custom roles: not a built-in's name, a slug, permissions of the backend's vocabulary.
fn roles(f: &mut Findings<'_>, merged: &Merged, desired: &mut Organization) {
    for d in &merged.roles {
        let (name, raw) = &d.item.value;
        if f.caps.reserved_roles.contains(&name.as_str()) {
            let message = reserved_role(f.caps, name);
            let help = builtin_help(f.caps, name);
            f.push(Severity::Error, d.file, at(&d.item), message, Some(help));
            continue;
        }
        if f.caps.builtin_roles.contains(&name.as_str()) {
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
}

/// Teams: slugs.
fn teams(f: &mut Findings<'_>, merged: &Merged, desired: &mut Organization) {
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
}

/// An account's memberships (team → role); each must name a defined team and a role that is
/// defined (or built in) and not reserved by another backend. `names` are the defined teams
/// and roles, for a did-you-mean.
fn memberships(
    f: &mut Findings<'_>,
    (file, name): (usize, &str),
    raw: &[(Loc<String>, Loc<String>)],
    desired: &Organization,
    (team_names, role_names): (&[&str], &[&str]),
) -> BTreeMap<String, String> {
    let mut teams = BTreeMap::new();
    for (team, role) in raw {
        if !desired.teams.contains_key(&team.value) {
            let help = closest(&team.value, team_names.iter().copied())
                .map(|c| format!("did you mean `{c}`?"));
            f.push(
                Severity::Error,
                file,
                at(team),
                format!(
                    "undefined team `{}` in service account `{name}`",
                    team.value
                ),
                help.or(Some("define it under `teams:`".into())),
            );
        }
        if f.caps.reserved_roles.contains(&role.value.as_str()) {
            let message = reserved_role(f.caps, &role.value);
            let help = builtin_help(f.caps, &role.value);
            f.push(Severity::Error, file, at(role), message, Some(help));
        } else if !desired.roles.contains_key(&role.value) {
            let help = closest(&role.value, role_names.iter().copied())
                .map(|c| format!("did you mean `{c}`?"));
            f.push(
                Severity::Error,
                file,
                at(role),
                format!(
                    "undefined role `{}` in service account `{name}`",
                    role.value
                ),
                help.or(Some(format!(
                    "define it under `roles:` or use {}",
                    f.caps.builtin_roles.join(", ")
                ))),
            );
        }
        teams.insert(team.value.clone(), role.value.clone());
    }
    teams
}

/// Service accounts and their keys; memberships must name defined teams and roles. Returns
/// where the first key is declared (keys need recipients).
fn service_accounts(
    f: &mut Findings<'_>,
    merged: &Merged,
    desired: &mut Organization,
) -> Option<(usize, (u64, u64))> {
    let team_names: Vec<&str> = desired.teams.keys().map(String::as_str).collect();
    let role_names: Vec<&str> = desired.roles.keys().map(String::as_str).collect();
    let mut first_key: Option<(usize, (u64, u64))> = None;

    for d in &merged.service_accounts {
        let (name, raw) = &d.item.value;
        f.check_name(d.file, at(&d.item), "service account", name);
        let names = (team_names.as_slice(), role_names.as_slice());
        let teams = memberships(f, (d.file, name), &raw.teams.0, desired, names);
        if teams.is_empty() && !raw.admin {
            f.push(Severity::Warning, d.file, at(&d.item), format!("service account `{name}` has no team membership, so its keys grant no permission"), Some("add `teams: { <team>: <role> }`".into()));
        }
        let expires = raw
            .expires
            .as_ref()
            .and_then(|e| parse_expiry(f, d.file, e));
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
                    expires_in: k.expires_in.as_ref().map(|d| d.value),
                    rotate_every: k.rotate_every.as_ref().map(|d| d.value),
                    overlap: k.overlap,
                    managed: true,
                },
            );
        }
        desired.service_accounts.insert(name.clone(), account);
    }
    first_key
}

/// Clears what the backend does not keep, with a warning (see `Capabilities::project`).
fn project(f: &mut Findings<'_>, merged: &Merged, desired: &mut Organization) {
    let cleared = f.caps.project(desired);
    if !cleared.is_empty() {
        let (file, place) = backend_place(merged);
        f.push(
            Severity::Warning,
            file,
            place,
            format!(
                "the {} backend does not keep {}; they stay in the config only and are not planned",
                f.caps.name,
                cleared.join(", ")
            ),
            None,
        );
    }
}

/// Where key files go and to whom they are encrypted. Keys need at least one recipient.
fn secrets(
    f: &mut Findings<'_>,
    merged: &Merged,
    base_dir: &Path,
    first_key: Option<(usize, (u64, u64))>,
) -> SecretsSettings {
    let raw_secrets = merged.secrets.as_ref().map(|s| (s.file, &s.item.value));
    let mut parsed = Vec::new();
    let mut recipients = Vec::new();
    let mut recipients_file = None;
    // Whether a recipient was refused: then "no recipients" would only repeat that error.
    let errors_before = f.all.len();
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
            match files::read_confined(base_dir, &rf.value, files::MAX_RECIPIENTS_FILE) {
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
        && f.all.len() == errors_before
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
    SecretsSettings {
        dir: base_dir.join(
            raw_secrets
                .and_then(|(_, s)| s.dir.as_deref())
                .unwrap_or("secrets"),
        ),
        recipients,
        recipients_file,
        parsed,
    }
}

/// Deletion safety rules.
fn policy(f: &mut Findings<'_>, merged: &Merged) -> Policy {
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
    policy
}

/// Why a role name another backend keeps built in is refused here.
fn reserved_role(caps: &Capabilities, name: &str) -> String {
    format!(
        "`{name}` is a built-in role of svcacct's own store, not of the {} backend",
        caps.name
    )
}

/// The backend's own built-in roles, the closest first.
fn builtin_help(caps: &Capabilities, name: &str) -> String {
    let lower: Vec<String> = caps
        .builtin_roles
        .iter()
        .map(|r| r.to_lowercase())
        .collect();
    let all = caps.builtin_roles.join(", ");
    match closest(&name.to_lowercase(), lower.iter().map(String::as_str))
        .and_then(|c| lower.iter().position(|l| l == c))
    {
        Some(i) => format!(
            "did you mean `{}`? The {} backend's built-in roles are {all}",
            caps.builtin_roles[i], caps.name
        ),
        None => format!("the {} backend's built-in roles are {all}", caps.name),
    }
}

/// Where the config writes its backend section (the top of the first file if nowhere).
fn backend_place(merged: &Merged) -> (usize, (u64, u64)) {
    merged
        .backend
        .as_ref()
        .map_or((0, (1, 1)), |b| (b.file, at(&b.item)))
}

/// Holds the backend to the run's credential policy: under a pinned URL the backend must be
/// that server (a config without a URL gets it), and a token may only be read from a variable
/// named for svcacct or a backend, or one the run allows.
fn hold_to_credentials(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::capabilities::{ALL_FIELDS, Fields, Minting};
    use crate::duration::Duration;

    /// A backend shaped like a SaaS API: one server-minted key per account, a 48 h overlap,
    /// a fixed list of permission names, no scopes, no disabling, no account expiry.
    const ONE_KEY: Capabilities = Capabilities {
        name: "one-key",
        minting: Minting::Server,
        max_keys_per_account: 1,
        max_overlap: Some(Duration(48 * 3600)),
        persists: Fields {
            scopes: false,
            disabled: false,
            account_expiry: false,
            ..ALL_FIELDS
        },
        builtin_roles: &["Owner", "Viewer"],
        vocabulary: Vocabulary::Names(&["see_flows", "run_deployments"]),
        revision: false,
        lock: false,
        audit_log: false,
        fixed_teams: false,
        reserved_roles: &[],
        ownership_record: false,
        records_key_use: false,
        cannot_verify: None,
    };

    /// The error messages and places `validate` finds in `yaml` checked against `caps`.
    fn findings(yaml: &str, caps: &'static Capabilities) -> Vec<(u64, u64, String)> {
        let source = Source {
            path: "svcacct.yaml".into(),
            text: yaml.into(),
        };
        let merged = super::super::load::parse_and_merge(vec![source]).expect("parses");
        let mut f = Findings {
            sources: &merged.sources,
            all: Vec::new(),
            caps,
        };
        check_capabilities(&mut f, &merged);
        f.permissions(
            0,
            &merged.roles[0].item.value.1.permissions,
            "permission",
            "",
        );
        f.all
            .iter()
            .map(|d| (d.line, d.column, d.message.clone()))
            .collect()
    }

    const YAML: &str = "organization: acme
roles:
  runner:
    permissions: [see_flows, run_flows]
service_accounts:
  bot:
    disabled: true
    expires: 2027-01-01
    keys:
      main:
        scopes: [see_flows]
        overlap: 72h
      second: {}
";

    #[test]
    fn a_backend_refuses_what_it_cannot_store_where_it_is_written() {
        let got = findings(YAML, &ONE_KEY);
        let want = [
            (
                6,
                3,
                "the one-key backend cannot store `disabled` (a disabled service account)",
            ),
            (
                8,
                14,
                "the one-key backend cannot store an account's `expires`; use `expires_in` on its key",
            ),
            (
                13,
                7,
                "service account `bot` declares 2 keys; the one-key backend keeps at most 1 key per account",
            ),
            (
                11,
                18,
                "the one-key backend cannot store key `scopes`; narrow the account's roles instead",
            ),
            (
                10,
                7,
                "key `main` has overlap 3d; the one-key backend keeps a rotated-out key at most 2d",
            ),
            (4, 30, "the one-key backend has no permission `run_flows`"),
        ];
        let got: Vec<(u64, u64, &str)> = got.iter().map(|(l, c, m)| (*l, *c, m.as_str())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn what_a_backend_does_not_keep_is_not_planned() {
        const NO_DESCRIPTIONS: Capabilities = Capabilities {
            persists: Fields {
                descriptions: false,
                ..ALL_FIELDS
            },
            ..crate::backend::capabilities::SVCACCT_STORE
        };
        let mut org = Organization::new("acme");
        org.teams.insert(
            "t".into(),
            Team {
                description: "kept in the config only".into(),
                ..Default::default()
            },
        );
        org.service_accounts.insert(
            "a".into(),
            ServiceAccount {
                description: "also".into(),
                ..Default::default()
            },
        );
        let mut same = org.clone();
        assert_eq!(
            NO_DESCRIPTIONS.project(&mut org),
            ["team descriptions", "service account descriptions"]
        );
        assert_eq!(org.teams["t"].description, "");
        assert_eq!(
            org.roles["viewer"].description, "Read only",
            "built-ins untouched"
        );
        assert!(
            crate::backend::capabilities::SVCACCT_STORE
                .project(&mut same)
                .is_empty()
        );
        assert_eq!(same.teams["t"].description, "kept in the config only");
    }

    #[test]
    fn svcacct_s_own_store_keeps_all_of_it() {
        let yaml = YAML.replace("[see_flows, run_flows]", "[flows:read, deployments:*]");
        let got = findings(&yaml, &crate::backend::capabilities::SVCACCT_STORE);
        assert_eq!(got, vec![]);
    }
}

//! The `prefect` backend: an organization is a Prefect Cloud account. Service accounts are
//! bots, roles are custom workspace roles, teams are existing workspaces (named by handle,
//! never created or deleted), memberships are bot access, `admin` is the account role Admin
//! (else Member), and an account's one key is its bot's API key, which Prefect mints: the
//! apply gets the secret once, from the 201 of a create or a rotation.
//!
//! **Ownership without labels.** Prefect objects carry no labels and svcacct keeps no state
//! file, so what svcacct made is recorded in Prefect itself: JSON Variables in the workspace
//! the section names (`ledger_workspace`), one record per bot and custom role, keyed by id
//! and spread over a fixed number of variables so a change rewrites one small one. A record
//! proves ownership only with the object's `created` time as Prefect reported it when
//! svcacct created it: a bot made by hand has no such record, and one whose id was reused or
//! whose record was copied by hand does not match. So a lost record, an unreadable variable
//! or a hand-edited one makes objects look hand-made, and hand-made objects are never
//! deleted (unless `policy.unmanaged: delete`): the failure mode is "not deleted", never
//! "deleted by mistake". The record also keeps what Prefect has no field for: descriptions
//! of bots and keys, `protect`, the key's name and rotation settings, the scopes of a role as
//! declared (Prefect answers them expanded), and keys rotated out that still work.
//!
//! Why Variables rather than a marker in descriptions: bots have no description, a marker
//! can be typed by anyone, and one place can be read in one request.
//!
//! Requests: a plan reads every filter page by page (200 a page), so an account of 1,000
//! bots costs 5 bot pages plus one read per workspace for bot access (Prefect lists bot
//! access only per workspace: tests/prefect-contract.md), the roles, workspaces and the
//! record. An apply writes one request per change where Prefect allows (bot access of a
//! whole batch is one upsert per workspace), paced by `--max-requests-per-minute`. Prefect
//! keeps no revision, so an apply plans everything again, except a saved plan of accounts'
//! own settings (`admin`, description, `protect`): that one reads only its bots, and the
//! account roles or the record if it changes them (`snapshot_of`), and is checked object by
//! object.

mod client;
mod ledger;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration as StdDuration;

use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::capabilities::Fields;
use super::{
    Applied, Backend, BackendConfig, BackendError, Capabilities, Endpoint, IssuedSecret, Minting,
    Operation, Section, Vocabulary,
};
use crate::address::Address;
use crate::clock;
use crate::plan::{Action, Change, Field};
use crate::duration::Duration;
use crate::model::{
    ApiKey, IssuedKey, LiveKey, LiveOrganization, RetiringKey, Role, ServiceAccount, Team,
    Verification,
};
use client::{
    AccessWire, AccountRoleWire, BotCreate, BotRotate, BotWire, CallError, Client, Retry,
    VariableWire, WorkspaceRoleWire, WorkspaceWire,
};
use ledger::{BotRecord, KeyRecord, Ledger, RetiringRecord, RoleRecord};

/// Prefect's built-in workspace roles.
const BUILTIN_ROLES: [&str; 5] = ["Owner", "Developer", "Runner", "Viewer", "Worker"];

/// OAS 0.8.4 `WorkspaceScopeName`: every scope a workspace role may grant.
pub const WORKSPACE_SCOPES: [&str; 61] = [
    "see_flows",
    "manage_saved_search",
    "run_flows",
    "manage_flows",
    "run_tasks",
    "see_blocks",
    "see_secret_blocks",
    "manage_blocks",
    "see_deployments",
    "run_deployments",
    "write_deployments",
    "manage_deployments",
    "see_notifications",
    "write_notifications",
    "manage_notifications",
    "see_workspace_settings",
    "write_workspace_settings",
    "manage_workspace_settings",
    "see_workspace_users",
    "manage_workspace_users",
    "see_workspace_service_accounts",
    "manage_workspace_service_accounts",
    "manage_workspace_teams",
    "see_work_queues",
    "write_work_queues",
    "manage_work_queues",
    "see_concurrency_limits",
    "manage_concurrency_limits",
    "see_events",
    "manage_events",
    "see_event_publications",
    "manage_event_publications",
    "see_event_subscriptions",
    "manage_event_subscriptions",
    "see_automations",
    "manage_automations",
    "see_work_pools",
    "write_work_pools",
    "manage_work_pools",
    "see_workers",
    "write_workers",
    "manage_workers",
    "see_artifacts",
    "write_artifacts",
    "manage_artifacts",
    "see_variables",
    "write_variables",
    "manage_variables",
    "manage_acls",
    "see_incidents",
    "write_incidents",
    "manage_incidents",
    "manage_mex_storage",
    "manage_mex_deploy",
    "see_tags",
    "manage_tags",
    "see_assets",
    "write_assets",
    "manage_assets",
    "see_webhooks",
    "manage_webhooks",
];

/// What Prefect Cloud can store and do.
pub const PREFECT: Capabilities = Capabilities {
    name: "prefect",
    minting: Minting::Server,
    max_keys_per_account: 1,
    // OAS `BotRotateAPIKey.old_key_expires_in_seconds`: at most 172,800.
    max_overlap: Some(Duration(48 * 3600)),
    persists: Fields {
        protect: true,
        descriptions: true,
        key_descriptions: true,
        scopes: false,
        disabled: false,
        account_expiry: false,
    },
    builtin_roles: &BUILTIN_ROLES,
    vocabulary: Vocabulary::Names(&WORKSPACE_SCOPES),
    revision: false,
    lock: false,
    audit_log: false,
    fixed_teams: true,
    reserved_roles: &crate::model::BUILTIN_ROLES,
    ownership_record: true,
    // Prefect's bot API says nothing of when a key was last used.
    records_key_use: false,
    cannot_verify: Some(
        "Prefect Cloud has no endpoint that takes a key and says which bot it belongs to or what it may do (its API lists bots with masked keys only); check a bot's key by using it against Prefect instead",
    ),
};

const DEFAULT_URL: &str = "https://api.prefect.cloud/api";
const DEFAULT_TOKEN_ENV: &str = "PREFECT_API_KEY";
/// The key name of a bot whose key svcacct did not issue.
const UNRECORDED_KEY: &str = "main";

/// The `prefect` section of the config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The Prefect account's id (a UUID).
    pub account_id: String,
    /// The handle of the workspace whose Variables hold svcacct's record of what it manages.
    pub ledger_workspace: String,
    /// Prefect's API. Default: `https://api.prefect.cloud/api`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The environment variable that holds a Prefect API key allowed to manage bots and
    /// roles. Default: `PREFECT_API_KEY`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

impl Section for Settings {
    fn capabilities(&self) -> &'static Capabilities {
        &PREFECT
    }

    fn resolve(&mut self, _base_dir: &Path, _organization: &str) -> Result<(), String> {
        if !is_uuid(&self.account_id) {
            return Err(format!(
                "the prefect backend's `account_id` `{}` is not a UUID (Prefect account ids look like 6c1f0e5e-0000-4000-8000-000000000000)",
                self.account_id
            ));
        }
        if self.ledger_workspace.trim().is_empty() {
            return Err("the prefect backend needs `ledger_workspace`: the handle of the workspace that keeps svcacct's record of what it manages".into());
        }
        let url = self.url.get_or_insert_with(|| DEFAULT_URL.into());
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "invalid backend url `{url}`: expected http:// or https://"
            ));
        }
        *url = url.trim_end_matches('/').to_string();
        self.token_env
            .get_or_insert_with(|| DEFAULT_TOKEN_ENV.into());
        Ok(())
    }

    fn endpoint(&self) -> Option<Endpoint<'_>> {
        Some(Endpoint {
            url: Some(self.url.as_deref().unwrap_or(DEFAULT_URL)),
            token_env: self.token_env.as_deref().unwrap_or(DEFAULT_TOKEN_ENV),
        })
    }

    fn set_url(&mut self, url: &str) {
        self.url = Some(url.to_string());
    }

    fn exported(&self, _relative: &dyn Fn(&Path) -> String) -> BackendConfig {
        BackendConfig::Prefect(self.clone())
    }

    fn open(&self, organization: &str, _for_write: bool) -> Result<Box<dyn Backend>, BackendError> {
        let url = self.url.as_deref().unwrap_or(DEFAULT_URL);
        let token_env = self.token_env.as_deref().unwrap_or(DEFAULT_TOKEN_ENV);
        Ok(Box::new(PrefectBackend {
            client: Client::new(url, &self.account_id, token_env)?,
            organization: organization.to_string(),
            ledger_workspace: self.ledger_workspace.clone(),
            live: None,
        }))
    }
}

/// A bot as the apply needs it.
struct BotLive {
    id: String,
    key_id: String,
    admin: bool,
}

/// What the last snapshot read, kept for the apply (ids by name) and updated by it.
#[derive(Default)]
struct Live {
    account_roles: HashMap<String, String>,
    /// Workspace handle → id.
    workspaces: BTreeMap<String, String>,
    /// Workspace role name → (id, custom).
    roles: HashMap<String, (String, bool)>,
    bots: HashMap<String, BotLive>,
    /// (workspace id, bot id) → (access id, workspace role id).
    access: HashMap<(String, String), (String, String)>,
    ledger: Ledger,
    ledger_workspace_id: String,
    /// Secrets of bots this apply created, until their key issue collects them.
    fresh: HashMap<String, IssuedSecret>,
    /// Read for a saved plan whose changes leave the record as it is: the record was not
    /// read, and nothing may write it (a bucket written unread would lose its other records).
    record_unread: bool,
}

pub struct PrefectBackend {
    client: Client,
    organization: String,
    ledger_workspace: String,
    live: Option<Live>,
}

/// `true` when a bot's account role makes it an admin.
fn is_admin(role: Option<&str>) -> bool {
    matches!(role, Some("Admin" | "Owner"))
}

/// The scopes a set grants, with everything each implies.
fn closure(scopes: &BTreeSet<String>, implies: &HashMap<String, Vec<String>>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo: Vec<String> = scopes.iter().cloned().collect();
    while let Some(s) = todo.pop() {
        if out.insert(s.clone()) {
            todo.extend(implies.get(&s).into_iter().flatten().cloned());
        }
    }
    out
}

/// The fewest scopes that grant what `live` grants: those no other one implies.
fn reduced(live: &BTreeSet<String>, implies: &HashMap<String, Vec<String>>) -> BTreeSet<String> {
    live.iter()
        .filter(|s| {
            !live
                .iter()
                .any(|t| t != *s && closure(&BTreeSet::from([t.clone()]), implies).contains(*s))
        })
        .cloned()
        .collect()
}

fn failed(e: CallError) -> BackendError {
    e.into_backend()
}

impl PrefectBackend {
    fn live(&mut self) -> Result<&mut Live, BackendError> {
        if self.live.is_none() {
            self.snapshot()?;
        }
        Ok(self.live.as_mut().expect("read by the snapshot"))
    }

    /// Reads everything a plan compares.
    fn read(&mut self) -> Result<(LiveOrganization, Live), BackendError> {
        let wire = self.fetch()?;
        let mut org = LiveOrganization::with_builtin_roles(&self.organization, &BUILTIN_ROLES);
        let mut live = Live {
            account_roles: wire
                .account_roles
                .into_iter()
                .map(|r| (r.name, r.id))
                .collect(),
            ledger_workspace_id: wire.ledger_workspace_id,
            ..Default::default()
        };
        live.add_roles(&mut org, &wire.roles, &wire.ledger, &wire.implies);
        live.add_workspaces(&mut org, &wire.workspaces);
        let mut teams_of = live.add_access(wire.access_rows, &wire.workspaces, &wire.roles);
        for b in wire.bots {
            live.add_bot(&mut org, b, &wire.ledger, &mut teams_of);
        }
        live.ledger = wire.ledger;
        Ok((org, live))
    }

    /// Sends the reads of a plan: every filter page by page, the record, bot access per
    /// workspace, and the scope catalogue when there is a custom role to compare.
    fn fetch(&mut self) -> Result<Wire, BackendError> {
        let c = &mut self.client;
        let account_roles: Vec<AccountRoleWire> =
            c.filter_all(&c.a("account_roles/filter"), json!({}), "account roles")?;
        let workspaces: Vec<WorkspaceWire> =
            c.filter_all(&c.a("workspaces/filter"), json!({}), "workspaces")?;
        let roles: Vec<WorkspaceRoleWire> =
            c.filter_all(&c.a("workspace_roles/filter"), json!({}), "workspace roles")?;
        let bots: Vec<BotWire> = c.filter_all(&c.a("bots/filter"), json!({}), "bots")?;
        let ledger_workspace_id = self.ledger_workspace_id(&workspaces)?;
        let ledger = self.read_ledger(&ledger_workspace_id)?;
        let c = &mut self.client;
        let mut access_rows = Vec::new();
        for w in &workspaces {
            let rows: Vec<AccessWire> =
                c.filter_all(&c.w(&w.id, "bot_access/filter"), json!({}), "bot access")?;
            access_rows.extend(rows.into_iter().map(|a| (w.id.clone(), a)));
        }
        let implies: HashMap<String, Vec<String>> = if roles.iter().any(|r| r.account_id.is_some())
        {
            c.workspace_scopes()?
                .into_iter()
                .map(|s| (s.name, s.includes_scopes))
                .collect()
        } else {
            HashMap::new()
        };
        Ok(Wire {
            account_roles,
            workspaces,
            roles,
            bots,
            ledger,
            ledger_workspace_id,
            access_rows,
            implies,
        })
    }

    /// The id of the workspace that keeps the record; a handle that is not one is an error
    /// with a did-you-mean.
    fn ledger_workspace_id(&self, workspaces: &[WorkspaceWire]) -> Result<String, BackendError> {
        let Some(ledger_ws) = workspaces
            .iter()
            .find(|w| w.handle == self.ledger_workspace)
        else {
            let help = crate::suggest::closest(
                &self.ledger_workspace,
                workspaces.iter().map(|w| w.handle.as_str()),
            )
            .map(|c| format!("; did you mean `{c}`?"))
            .unwrap_or_default();
            return Err(BackendError::Setup(format!(
                "the prefect backend's ledger_workspace `{}` is not a workspace of account {}{help}",
                self.ledger_workspace,
                self.client.describe()
            )));
        };
        Ok(ledger_ws.id.clone())
    }

    /// Reads svcacct's record from the variables of the ledger workspace, warning about a
    /// variable it cannot read (its objects then look hand-made).
    fn read_ledger(&mut self, workspace_id: &str) -> Result<Ledger, BackendError> {
        let names: Vec<String> = (0..ledger::BUCKETS)
            .map(|b| ledger::variable_name(&self.organization, b))
            .collect();
        let c = &mut self.client;
        let variables: Vec<VariableWire> = c.filter_all(
            &c.w(workspace_id, "variables/filter"),
            json!({ "variables": { "name": { "any_": names } } }),
            "svcacct's record",
        )?;
        let ledger = Ledger::read(
            &self.organization,
            variables.into_iter().map(|v| (v.name, v.value)).collect(),
        );
        for name in &ledger.unreadable {
            eprintln!(
                "warning: Prefect variable {name} is not a record svcacct can read; the objects it names are treated as made by hand (never deleted)"
            );
        }
        Ok(ledger)
    }
}

/// What a saved plan's changes need read, when they can be read alone: updates of accounts'
/// own settings (`admin`: the bot and the account roles; `description`, `protect`: the bot
/// and the record). Anything else (access, keys, roles, creates, deletes) needs the whole
/// account read.
struct ObjectReads {
    bots: Vec<String>,
    account_roles: bool,
    record: bool,
}

impl ObjectReads {
    fn of(changes: &[Change]) -> Option<ObjectReads> {
        let mut reads = ObjectReads {
            bots: Vec::new(),
            account_roles: false,
            record: false,
        };
        for c in changes {
            let (Address::ServiceAccount(name), Action::Update) = (&c.address, &c.action) else {
                return None;
            };
            if !c
                .work
                .iter()
                .all(|w| matches!(w, Operation::PutServiceAccount { .. }))
            {
                return None;
            }
            for field in c.changed_fields() {
                match field {
                    Field::Admin => reads.account_roles = true,
                    Field::Description | Field::Protect => reads.record = true,
                    _ => return None,
                }
            }
            reads.bots.push(name.clone());
        }
        (!reads.bots.is_empty() && reads.bots.len() <= client::PAGE).then_some(reads)
    }
}

impl PrefectBackend {
    /// Reads the bots of a saved plan's changes by name, and the account roles and the record
    /// only if a change needs them: one request each.
    fn read_objects(&mut self, reads: &ObjectReads) -> Result<(LiveOrganization, Live), BackendError> {
        let c = &mut self.client;
        let bots: Vec<BotWire> = c.filter_all(
            &c.a("bots/filter"),
            json!({ "service_accounts": { "name": { "any_": reads.bots } } }),
            "bots",
        )?;
        let mut live = Live {
            record_unread: !reads.record,
            ..Default::default()
        };
        if reads.account_roles {
            let roles: Vec<AccountRoleWire> =
                c.filter_all(&c.a("account_roles/filter"), json!({}), "account roles")?;
            live.account_roles = roles.into_iter().map(|r| (r.name, r.id)).collect();
        }
        let ledger = if reads.record {
            let workspaces: Vec<WorkspaceWire> = c.filter_all(
                &c.a("workspaces/filter"),
                json!({ "workspaces": { "handle": { "any_": [self.ledger_workspace] } } }),
                "workspaces",
            )?;
            live.ledger_workspace_id = self.ledger_workspace_id(&workspaces)?;
            self.read_ledger(&live.ledger_workspace_id)?
        } else {
            Ledger::default()
        };
        let mut org = LiveOrganization::with_builtin_roles(&self.organization, &BUILTIN_ROLES);
        for b in bots.into_iter().filter(|b| reads.bots.contains(&b.name)) {
            live.add_bot(&mut org, b, &ledger, &mut HashMap::new());
        }
        live.ledger = ledger;
        Ok((org, live))
    }
}

/// What a plan's reads answered, before it becomes an organization.
struct Wire {
    account_roles: Vec<AccountRoleWire>,
    workspaces: Vec<WorkspaceWire>,
    roles: Vec<WorkspaceRoleWire>,
    bots: Vec<BotWire>,
    ledger: Ledger,
    ledger_workspace_id: String,
    /// (workspace id, access) of every workspace.
    access_rows: Vec<(String, AccessWire)>,
    /// Scope → the scopes it implies.
    implies: HashMap<String, Vec<String>>,
}

impl Live {
    /// Workspace roles: every one by name for the apply, the custom ones into the organization.
    fn add_roles(
        &mut self,
        org: &mut LiveOrganization,
        roles: &[WorkspaceRoleWire],
        ledger: &Ledger,
        implies: &HashMap<String, Vec<String>>,
    ) {
        for r in roles {
            self.roles
                .insert(r.name.clone(), (r.id.clone(), r.account_id.is_some()));
            if r.account_id.is_none() {
                continue;
            }
            let record = self.ledger_role(ledger, r);
            let granted: BTreeSet<String> = r.scopes.iter().cloned().collect();
            let permissions = match &record {
                Some(rec) if closure(&rec.scopes, implies) == closure(&granted, implies) => {
                    rec.scopes.clone()
                }
                _ => reduced(&granted, implies),
            };
            org.roles.insert(
                r.name.clone(),
                Role {
                    description: r.description.clone().unwrap_or_default(),
                    permissions,
                    builtin: false,
                    managed: record.as_ref().is_some_and(|x| x.created.is_some()),
                    protect: record.is_some_and(|x| x.protect),
                },
            );
        }
    }

    /// Workspaces are the organization's teams.
    fn add_workspaces(&mut self, org: &mut LiveOrganization, workspaces: &[WorkspaceWire]) {
        for w in workspaces {
            self.workspaces.insert(w.handle.clone(), w.id.clone());
            org.teams.insert(
                w.handle.clone(),
                Team {
                    description: String::new(),
                    managed: true,
                    protect: false,
                },
            );
        }
    }

    /// Bot access: kept by (workspace, bot) for the apply; returns each bot's teams.
    fn add_access(
        &mut self,
        access_rows: Vec<(String, AccessWire)>,
        workspaces: &[WorkspaceWire],
        roles: &[WorkspaceRoleWire],
    ) -> HashMap<String, BTreeMap<String, String>> {
        let role_names: HashMap<String, String> = roles
            .iter()
            .map(|r| (r.id.clone(), r.name.clone()))
            .collect();
        let handles: HashMap<String, String> = workspaces
            .iter()
            .map(|w| (w.id.clone(), w.handle.clone()))
            .collect();
        let mut teams_of: HashMap<String, BTreeMap<String, String>> = HashMap::new();
        for (ws, a) in access_rows {
            if let (Some(h), Some(r)) = (handles.get(&ws), role_names.get(&a.workspace_role_id)) {
                teams_of
                    .entry(a.bot_id.clone())
                    .or_default()
                    .insert(h.clone(), r.clone());
            }
            self.access
                .insert((ws, a.bot_id), (a.id, a.workspace_role_id));
        }
        teams_of
    }

    /// A bot: its service account, its key and the keys it is retiring.
    fn add_bot(
        &mut self,
        org: &mut LiveOrganization,
        b: BotWire,
        ledger: &Ledger,
        teams_of: &mut HashMap<String, BTreeMap<String, String>>,
    ) {
        let record = ledger
            .bots
            .get(&b.id)
            .filter(|r| r.created.is_none_or(|c| c == b.created))
            .cloned();
        let ours = record.as_ref().is_some_and(|r| r.created.is_some());
        let (keys, key_name) = bot_keys(&b, record.as_ref(), ours);
        // Past its overlap too: Prefect has expired it, and the plan's `retire` deletes what
        // may be left and drops it from the record, as on every other backend.
        for r in record.iter().flat_map(|r| &r.retiring) {
            org.retiring_keys.push(RetiringKey {
                id: r.id.clone(),
                service_account: b.name.clone(),
                key: key_name.clone(),
                retires_at: r.retires_at,
                managed: true,
                last_used_at: None,
            });
        }
        org.service_accounts.insert(
            b.name.clone(),
            ServiceAccount {
                description: record
                    .as_ref()
                    .map(|r| r.description.clone())
                    .unwrap_or_default(),
                teams: teams_of.remove(&b.id).unwrap_or_default(),
                admin: is_admin(b.account_role_name.as_deref()),
                expires: None,
                disabled: false,
                protect: record.as_ref().is_some_and(|r| r.protect),
                managed: ours,
                keys,
            },
        );
        self.bots.insert(
            b.name,
            BotLive {
                id: b.id,
                key_id: b.api_key.id,
                admin: is_admin(b.account_role_name.as_deref()),
            },
        );
    }
}

/// A bot's key as the organization shows it, and its name: the recorded one, or `main` for
/// a key svcacct did not issue. A bot of ours without a key record shows none.
fn bot_keys(
    b: &BotWire,
    record: Option<&BotRecord>,
    ours: bool,
) -> (BTreeMap<String, LiveKey>, String) {
    let issued = IssuedKey {
        id: b.api_key.id.clone(),
        created_at: b.api_key.created,
        expires_at: b.api_key.expiration,
        // Prefect's bot API reports no last use of a key.
        last_used_at: None,
    };
    let mut keys = BTreeMap::new();
    let key_name = match record.and_then(|r| r.key.as_ref()) {
        Some(k) => {
            keys.insert(
                k.name.clone(),
                LiveKey {
                    settings: ApiKey {
                        description: k.description.clone(),
                        scopes: BTreeSet::new(),
                        expires_in: k.expires_in,
                        rotate_every: k.rotate_every,
                        overlap: k.overlap,
                        managed: true,
                    },
                    issued,
                },
            );
            k.name.clone()
        }
        // A bot of ours without a key record holds a key nobody was given.
        None if ours => UNRECORDED_KEY.to_string(),
        None => {
            keys.insert(
                UNRECORDED_KEY.to_string(),
                LiveKey {
                    settings: ApiKey::default(),
                    issued,
                },
            );
            UNRECORDED_KEY.to_string()
        }
    };
    (keys, key_name)
}

impl Live {
    /// A role's record, if its proof matches the role.
    fn ledger_role(&self, ledger: &Ledger, r: &WorkspaceRoleWire) -> Option<RoleRecord> {
        ledger
            .roles
            .get(&r.id)
            .filter(|rec| rec.created.is_none_or(|c| Some(c) == r.created))
            .cloned()
    }

    fn bot(&self, name: &str) -> Result<&BotLive, BackendError> {
        self.bots.get(name).ok_or_else(|| BackendError::NotFound {
            target: format!("service_account.{name}"),
        })
    }

    fn bot_record(&self, id: &str) -> BotRecord {
        self.ledger.bots.get(id).cloned().unwrap_or_default()
    }

    fn role_id(&self, name: &str) -> Result<String, BackendError> {
        self.roles
            .get(name)
            .map(|(id, _)| id.clone())
            .ok_or_else(|| BackendError::NotFound {
                target: format!("role.{name}"),
            })
    }
}

/// Workspace id → [(op index, bot id, role id)] to upsert.
type Upserts = BTreeMap<String, Vec<(usize, String, String)>>;
/// (op index, workspace id, bot id, access id) to delete.
type Deletes = Vec<(usize, String, String, String)>;

impl Live {
    /// What a batch of memberships changes in bot access: the upserts by workspace and the
    /// deletes. An account whose bot, workspace or role is unknown gets an error instead.
    fn access_changes(
        &self,
        batch: &[(usize, &str, &BTreeMap<String, String>)],
        errors: &mut HashMap<usize, BackendError>,
    ) -> (Upserts, Deletes) {
        let mut upserts = Upserts::new();
        let mut deletes = Deletes::new();
        for &(i, account, teams) in batch {
            let bot = match self.bot(account) {
                Ok(b) => b.id.clone(),
                Err(e) => {
                    errors.insert(i, e);
                    continue;
                }
            };
            for (team, role) in teams {
                let Some(ws) = self.workspaces.get(team) else {
                    errors.insert(
                        i,
                        BackendError::NotFound {
                            target: format!("team.{team}"),
                        },
                    );
                    continue;
                };
                match self.role_id(role) {
                    Ok(role_id) => {
                        let current = self.access.get(&(ws.clone(), bot.clone()));
                        if current.is_none_or(|(_, r)| *r != role_id) {
                            upserts
                                .entry(ws.clone())
                                .or_default()
                                .push((i, bot.clone(), role_id));
                        }
                    }
                    Err(e) => {
                        errors.insert(i, e);
                    }
                }
            }
            let wanted: BTreeSet<&String> = teams
                .keys()
                .filter_map(|t| self.workspaces.get(t))
                .collect();
            for ((ws, b), (access_id, _)) in &self.access {
                if *b == bot && !wanted.contains(ws) {
                    deletes.push((i, ws.clone(), b.clone(), access_id.clone()));
                }
            }
        }
        (upserts, deletes)
    }
}

/// The key record of declared settings.
fn key_record(name: &str, k: &ApiKey) -> KeyRecord {
    KeyRecord {
        name: name.to_string(),
        description: k.description.clone(),
        expires_in: k.expires_in,
        rotate_every: k.rotate_every,
        overlap: k.overlap,
    }
}

fn expiration(now: OffsetDateTime, k: &ApiKey) -> Option<OffsetDateTime> {
    k.expires_in.map(|d| now + d.to_time())
}

impl PrefectBackend {
    /// Finds a bot by name, waiting out Prefect's read lag after a create.
    fn find_bot(&mut self, name: &str) -> Result<Option<BotWire>, BackendError> {
        self.find_named("bots/filter", "service_accounts", "bots", name, |b: &BotWire| {
            &b.name
        })
    }

    /// Finds a custom workspace role by name, the same way.
    fn find_role(&mut self, name: &str) -> Result<Option<WorkspaceRoleWire>, BackendError> {
        self.find_named(
            "workspace_roles/filter",
            "workspace_roles",
            "workspace roles",
            name,
            |r: &WorkspaceRoleWire| &r.name,
        )
    }

    /// Looks an object up by name through a filter, retrying with backoff while a create
    /// has not yet reached Prefect's reads.
    fn find_named<T: serde::de::DeserializeOwned>(
        &mut self,
        filter: &str,
        criteria_key: &str,
        what: &str,
        name: &str,
        name_of: fn(&T) -> &str,
    ) -> Result<Option<T>, BackendError> {
        for attempt in 0..8u32 {
            let c = &mut self.client;
            let found: Vec<T> = c.filter_all(
                &c.a(filter),
                json!({ criteria_key: { "name": { "any_": [name] } } }),
                what,
            )?;
            if let Some(x) = found.into_iter().find(|x| name_of(x) == name) {
                return Ok(Some(x));
            }
            std::thread::sleep(StdDuration::from_millis(100 << attempt.min(5)));
        }
        Ok(None)
    }

    fn put_role(&mut self, name: &str, role: &Role) -> Result<(), BackendError> {
        let target = format!("role.{name}");
        let scopes: Vec<&String> = role.permissions.iter().collect();
        let existing = self.live()?.roles.get(name).cloned();
        let (id, created) = match existing {
            Some((_, false)) => {
                return Err(BackendError::Conflict {
                    target,
                    message: "a built-in workspace role of Prefect has that name".into(),
                });
            }
            Some((id, true)) => {
                let c = &mut self.client;
                c.call(
                    Method::PATCH,
                    &c.a(&format!("workspace_roles/{id}")),
                    Some(&json!({ "description": role.description, "scopes": scopes })),
                    &[200, 204],
                    Retry::Idempotent,
                    &target,
                )
                .map_err(failed)?;
                (id, None)
            }
            None => {
                let body = json!({
                    "name": name,
                    "description": role.description,
                    "scopes": scopes,
                    "inherited_role_id": null,
                });
                let c = &mut self.client;
                match c.call(
                    Method::POST,
                    &c.a("workspace_roles/"),
                    Some(&body),
                    &[201],
                    Retry::Create,
                    &target,
                ) {
                    Ok(answer) => {
                        let r: WorkspaceRoleWire = answer.json("workspace role")?;
                        (r.id, r.created)
                    }
                    // The answer was lost, or the role appeared meanwhile: look it up and
                    // make it what the config says rather than creating it twice.
                    Err(CallError::Uncertain(_))
                    | Err(CallError::Failed(BackendError::Conflict { .. })) => {
                        let r = self.find_role(name)?.ok_or(BackendError::NotFound {
                            target: target.clone(),
                        })?;
                        let c = &mut self.client;
                        c.call(
                            Method::PATCH,
                            &c.a(&format!("workspace_roles/{}", r.id)),
                            Some(&json!({ "description": role.description, "scopes": scopes })),
                            &[200, 204],
                            Retry::Idempotent,
                            &target,
                        )
                        .map_err(failed)?;
                        (r.id, r.created)
                    }
                    Err(CallError::Failed(e)) => return Err(e),
                }
            }
        };
        let live = self.live()?;
        live.roles.insert(name.to_string(), (id.clone(), true));
        let mut record = live.ledger.roles.get(&id).cloned().unwrap_or_default();
        if created.is_some() {
            record.created = created;
        }
        record.protect = role.protect;
        record.scopes = role.permissions.clone();
        live.ledger.set_role(&id, Some(record));
        Ok(())
    }

    fn delete_role(&mut self, name: &str) -> Result<(), BackendError> {
        let target = format!("role.{name}");
        let id = self.live()?.role_id(name)?;
        let c = &mut self.client;
        c.delete(&c.a(&format!("workspace_roles/{id}")), &target)
        .map_err(failed)?;
        let live = self.live()?;
        live.roles.remove(name);
        live.ledger.set_role(&id, None);
        Ok(())
    }

    fn put_account(&mut self, name: &str, account: &ServiceAccount) -> Result<(), BackendError> {
        let target = format!("service_account.{name}");
        let role = if account.admin { "Admin" } else { "Member" };
        // Needed only to create the bot or change its role.
        let role_id = self
            .live()?
            .account_roles
            .get(role)
            .cloned()
            .ok_or_else(|| BackendError::NotFound {
                target: format!("account role {role}"),
            });
        let existing = self.live()?.bots.get(name).map(|b| (b.id.clone(), b.admin));
        let id = match existing {
            Some((id, admin)) => {
                if admin != account.admin {
                    let role_id = role_id?;
                    let c = &mut self.client;
                    c.call(
                        Method::PATCH,
                        &c.a(&format!("bots/{id}")),
                        Some(&json!({ "name": name, "account_role_id": role_id })),
                        &[200, 204],
                        Retry::Idempotent,
                        &target,
                    )
                    .map_err(failed)?;
                    if let Some(b) = self.live()?.bots.get_mut(name) {
                        b.admin = account.admin;
                    }
                }
                id
            }
            None => self.create_bot(name, account, &role_id?)?,
        };
        let live = self.live()?;
        if live.record_unread {
            return Ok(());
        }
        let mut record = live.bot_record(&id);
        record.description = account.description.clone();
        record.protect = account.protect;
        live.ledger.set_bot(&id, Some(record));
        Ok(())
    }

    /// Creates a bot; a lost answer is followed by a look-up, never by a second blind create.
    fn create_bot(
        &mut self,
        name: &str,
        account: &ServiceAccount,
        role_id: &str,
    ) -> Result<String, BackendError> {
        let target = format!("service_account.{name}");
        let now = clock::now();
        let key = account.keys.iter().next();
        let body = serde_json::to_value(BotCreate {
            name,
            api_key_expiration: key.and_then(|(_, k)| expiration(now, k)),
            account_role_id: role_id,
        })
        .expect("serializable");
        let c = &mut self.client;
        let (bot, proven) = match c.call(
            Method::POST,
            &c.a("bots/"),
            Some(&body),
            &[201],
            Retry::Create,
            &target,
        ) {
            Ok(answer) => (answer.json::<BotWire>("bot")?, true),
            Err(CallError::Uncertain(_)) => (
                self.find_bot(name)?.ok_or(BackendError::NotFound {
                    target: target.clone(),
                })?,
                true,
            ),
            // Made meanwhile, or made by us and not yet readable: whose it is, the record says.
            Err(CallError::Failed(BackendError::Conflict { .. })) => (
                self.find_bot(name)?.ok_or(BackendError::NotFound {
                    target: target.clone(),
                })?,
                false,
            ),
            Err(CallError::Failed(e)) => return Err(e),
        };
        let live = self.live()?;
        let mut record = live.bot_record(&bot.id);
        if proven {
            record.created = Some(bot.created);
        }
        if let Some((key_name, k)) = key {
            record.key = Some(key_record(key_name, k));
        }
        live.ledger.set_bot(&bot.id, Some(record));
        if let Some(secret) = bot.api_key.key {
            live.fresh.insert(
                name.to_string(),
                IssuedSecret {
                    id: bot.api_key.id.clone(),
                    secret: Zeroizing::new(secret),
                    created_at: bot.api_key.created,
                    expires_at: bot.api_key.expiration,
                },
            );
        }
        live.bots.insert(
            name.to_string(),
            BotLive {
                id: bot.id.clone(),
                key_id: bot.api_key.id,
                admin: is_admin(bot.account_role_name.as_deref()),
            },
        );
        Ok(bot.id)
    }

    fn delete_account(&mut self, name: &str) -> Result<(), BackendError> {
        let id = self.live()?.bot(name)?.id.clone();
        let c = &mut self.client;
        c.delete(&c.a(&format!("bots/{id}")), &format!("service_account.{name}"))
        .map_err(failed)?;
        let live = self.live()?;
        live.bots.remove(name);
        live.access.retain(|(_, bot), _| *bot != id);
        live.ledger.set_bot(&id, None);
        Ok(())
    }

    /// Sets the bot access of a batch of accounts: one upsert per workspace for all of them,
    /// then one delete per access that goes. Returns an error per account that failed.
    fn set_memberships(
        &mut self,
        batch: &[(usize, &str, &BTreeMap<String, String>)],
    ) -> HashMap<usize, BackendError> {
        let mut errors = HashMap::new();
        let Ok(live) = self.live() else {
            return errors;
        };
        let (upserts, deletes) = live.access_changes(batch, &mut errors);
        self.upsert_access(upserts, &mut errors);
        self.delete_access(deletes, &mut errors);
        errors
    }

    /// Sends one upsert per workspace; a failed one fails every account in it.
    fn upsert_access(&mut self, upserts: Upserts, errors: &mut HashMap<usize, BackendError>) {
        for (ws, rows) in upserts {
            let body: Vec<Value> = rows
                .iter()
                .map(|(_, bot, role)| json!({ "bot_id": bot, "workspace_role_id": role }))
                .collect();
            let c = &mut self.client;
            let result = c
                .call(
                    Method::POST,
                    &c.w(&ws, "bot_access/"),
                    Some(&Value::Array(body)),
                    &[200, 201],
                    Retry::Idempotent,
                    "bot access",
                )
                .map_err(failed)
                .and_then(|a| a.json::<Vec<AccessWire>>("bot access"));
            match result {
                Ok(done) => {
                    let live = self.live.as_mut().expect("read");
                    for a in done {
                        live.access
                            .insert((ws.clone(), a.bot_id), (a.id, a.workspace_role_id));
                    }
                }
                Err(e) => {
                    for (i, ..) in rows {
                        errors.insert(i, e.clone());
                    }
                }
            }
        }
    }

    /// Deletes the accesses that go, one request each.
    fn delete_access(&mut self, deletes: Deletes, errors: &mut HashMap<usize, BackendError>) {
        for (i, ws, bot, access_id) in deletes {
            let c = &mut self.client;
            match c.delete(&c.w(&ws, &format!("bot_access/{access_id}")), "bot access") {
                Ok(_) => {
                    self.live.as_mut().expect("read").access.remove(&(ws, bot));
                }
                Err(e) => {
                    errors.insert(i, failed(e));
                }
            }
        }
    }

    /// Issues an account's key: the secret of the create that made the bot, or a rotation.
    fn issue_key(
        &mut self,
        account: &str,
        name: &str,
        issue: &crate::operation::KeyIssue,
    ) -> Result<IssuedSecret, BackendError> {
        let now = clock::now();
        let live = self.live()?;
        let bot_id = live.bot(account)?.id.clone();
        let mut record = live.bot_record(&bot_id);
        let fresh = live.fresh.remove(account);
        let issued = match fresh {
            Some(secret) if issue.replaces.is_none() => secret,
            _ => {
                // The old key keeps working for the overlap; a key nobody was given (of a bot
                // svcacct made) goes at once. Prefect reads null as "delete the old key".
                let overlap = match &issue.replaces {
                    Some(r) => r.overlap,
                    None if record.created.is_some() => Duration(0),
                    None => issue.settings.overlap.unwrap_or(Duration(0)),
                };
                let body = serde_json::to_value(BotRotate {
                    api_key_expiration: expiration(now, &issue.settings),
                    old_key_expires_in_seconds: (overlap.seconds() > 0).then(|| overlap.seconds()),
                })
                .expect("serializable");
                let c = &mut self.client;
                let bot: BotWire = c
                    .call(
                        Method::POST,
                        &c.a(&format!("bots/{bot_id}/rotate_api_key")),
                        Some(&body),
                        &[200, 201],
                        Retry::Idempotent,
                        &format!("key.{account}.{name}"),
                    )
                    .map_err(failed)?
                    .json("rotated bot")?;
                let secret = bot.api_key.key.ok_or_else(|| BackendError::Protocol {
                    what: "rotate_api_key (no key in the answer)".into(),
                    source: None,
                })?;
                if let Some(r) = &issue.replaces
                    && overlap.seconds() > 0
                {
                    record.retiring.push(RetiringRecord {
                        id: r.id.clone(),
                        retires_at: now + overlap.to_time(),
                    });
                }
                IssuedSecret {
                    id: bot.api_key.id,
                    secret: Zeroizing::new(secret),
                    created_at: bot.api_key.created,
                    expires_at: bot.api_key.expiration,
                }
            }
        };
        let live = self.live()?;
        record.retiring.retain(|r| r.retires_at > now);
        record.key = Some(key_record(name, &issue.settings));
        live.ledger.set_bot(&bot_id, Some(record));
        if let Some(b) = live.bots.get_mut(account) {
            b.key_id = issued.id.clone();
        }
        Ok(issued)
    }

    fn update_key(&mut self, account: &str, name: &str, key: &ApiKey) -> Result<(), BackendError> {
        let live = self.live()?;
        let id = live.bot(account)?.id.clone();
        let mut record = live.bot_record(&id);
        record.key = Some(key_record(name, key));
        live.ledger.set_bot(&id, Some(record));
        Ok(())
    }

    /// Revokes a key: a rotated-out one is deleted; the active one is rotated away with its
    /// successor's secret thrown away, since Prefect keeps every bot with a key.
    fn revoke_key(&mut self, account: &str, key_id: &str) -> Result<(), BackendError> {
        let target = format!("key.{account}");
        let live = self.live()?;
        let bot = live.bot(account)?;
        let (bot_id, active) = (bot.id.clone(), bot.key_id == key_id);
        let mut record = live.bot_record(&bot_id);
        let c = &mut self.client;
        if active {
            let body = serde_json::to_value(BotRotate {
                api_key_expiration: None,
                old_key_expires_in_seconds: None,
            })
            .expect("serializable");
            let bot: BotWire = c
                .call(
                    Method::POST,
                    &c.a(&format!("bots/{bot_id}/rotate_api_key")),
                    Some(&body),
                    &[200, 201],
                    Retry::Idempotent,
                    &target,
                )
                .map_err(failed)?
                .json("rotated bot")?;
            drop(bot.api_key.key.map(Zeroizing::new));
            record.key = None;
            if let Some(b) = self.live()?.bots.get_mut(account) {
                b.key_id = bot.api_key.id;
            }
        } else {
            c.delete(&c.a(&format!("bots/{bot_id}/delete_bot_api_key/{key_id}")), &target)
            .map_err(failed)?;
            record.retiring.retain(|r| r.id != key_id);
        }
        let live = self.live()?;
        if live.ledger.bots.contains_key(&bot_id) {
            live.ledger.set_bot(&bot_id, Some(record));
        }
        Ok(())
    }

    /// Writes the record's changed variables.
    fn flush_ledger(&mut self) -> Result<(), BackendError> {
        let Some(live) = self.live.as_mut() else {
            return Ok(());
        };
        let ws = live.ledger_workspace_id.clone();
        for (bucket, value) in live.ledger.changes() {
            let name = ledger::variable_name(&self.organization, bucket);
            let exists = live.ledger.existing.contains(&bucket);
            let c = &mut self.client;
            let by_name = c.w(&ws, &format!("variables/name/{name}"));
            let target = "svcacct's record";
            // Writes the variable in place: when it exists, or when a create's answer was lost.
            let patch = |c: &mut Client, v: &serde_json::Value| {
                c.call(
                    Method::PATCH,
                    &by_name,
                    Some(&json!({ "value": v })),
                    &[200, 204],
                    Retry::Idempotent,
                    target,
                )
            };
            match (&value, exists) {
                (None, _) => {
                    c.delete(&by_name, target)
                    .map_err(failed)?;
                }
                (Some(v), true) => {
                    patch(c, v).map_err(failed)?;
                }
                (Some(v), false) => {
                    let created = c.call(
                        Method::POST,
                        &c.w(&ws, "variables/"),
                        Some(&json!({ "name": name, "value": v, "tags": ["svcacct"] })),
                        &[201],
                        Retry::Create,
                        target,
                    );
                    match created {
                        Ok(_) => {}
                        // Made by the lost answer's request, or meanwhile: write it in place.
                        Err(CallError::Uncertain(_))
                        | Err(CallError::Failed(BackendError::Conflict { .. })) => {
                            patch(c, v).map_err(failed)?;
                        }
                        Err(CallError::Failed(e)) => return Err(e),
                    }
                }
            }
            live.ledger.written(bucket, value.is_some());
        }
        Ok(())
    }
}

impl PrefectBackend {
    /// Applies one operation other than memberships (those go in batches).
    fn apply_one(&mut self, op: &Operation) -> Result<Applied, BackendError> {
        let done = |r: Result<(), BackendError>| r.map(|()| Applied::Done);
        match op {
            Operation::PutRole { name, role } => done(self.put_role(name, role)),
            Operation::DeleteRole { name } => done(self.delete_role(name)),
            Operation::PutTeam { name, .. } => {
                let exists = self
                    .live
                    .as_ref()
                    .is_some_and(|l| l.workspaces.contains_key(name));
                if exists {
                    Ok(Applied::Done)
                } else {
                    Err(BackendError::NotFound {
                        target: format!(
                            "team.{name} (a Prefect workspace; svcacct never creates one)"
                        ),
                    })
                }
            }
            Operation::DeleteTeam { name } => Err(BackendError::Conflict {
                target: format!("team.{name}"),
                message: "the prefect backend never deletes a workspace".into(),
            }),
            Operation::PutServiceAccount { name, account } => {
                done(self.put_account(name, account))
            }
            Operation::DeleteServiceAccount { name } => done(self.delete_account(name)),
            Operation::IssueKey { account, name, key } => {
                self.issue_key(account, name, key).map(Applied::Issued)
            }
            Operation::UpdateKey { account, name, key } => {
                done(self.update_key(account, name, key))
            }
            Operation::RevokeKey { account, id, .. } => done(self.revoke_key(account, id)),
            Operation::RegisterKey { account, name, .. } => Err(BackendError::Setup(format!(
                "key.{account}.{name}: Prefect mints its keys; svcacct cannot register one"
            ))),
            Operation::SetMemberships { .. } => unreachable!("handled in a batch"),
        }
    }
}

impl Backend for PrefectBackend {
    fn snapshot(&mut self) -> Result<LiveOrganization, BackendError> {
        let (org, mut live) = self.read()?;
        // Secrets a create handed over and no key issue has collected yet stay.
        if let Some(old) = self.live.take() {
            live.fresh = old.fresh;
        }
        self.live = Some(live);
        Ok(org)
    }

    fn snapshot_of(&mut self, changes: &[Change]) -> Result<Option<LiveOrganization>, BackendError> {
        let Some(reads) = ObjectReads::of(changes) else {
            return Ok(None);
        };
        let (org, mut live) = self.read_objects(&reads)?;
        if let Some(old) = self.live.take() {
            live.fresh = old.fresh;
        }
        self.live = Some(live);
        Ok(Some(org))
    }

    fn lock(&mut self, _owner: &str, _wait: std::time::Duration) -> Result<(), BackendError> {
        // Prefect has no lock; the capabilities say so.
        Ok(())
    }

    fn apply(&mut self, ops: Vec<Operation>) -> Vec<Result<Applied, BackendError>> {
        let mut results: Vec<Option<Result<Applied, BackendError>>> =
            (0..ops.len()).map(|_| None).collect();
        if let Err(e) = self.live() {
            return ops.iter().map(|_| Err(e.clone())).collect();
        }
        let memberships: Vec<(usize, &str, &BTreeMap<String, String>)> = ops
            .iter()
            .enumerate()
            .filter_map(|(i, op)| match op {
                Operation::SetMemberships { account, teams } => Some((i, account.as_str(), teams)),
                _ => None,
            })
            .collect();
        if !memberships.is_empty() {
            let mut errors = self.set_memberships(&memberships);
            for (i, ..) in &memberships {
                results[*i] = Some(errors.remove(i).map_or(Ok(Applied::Done), Err));
            }
        }
        for (i, op) in ops.iter().enumerate() {
            if results[i].is_none() {
                results[i] = Some(self.apply_one(op));
            }
        }
        // The record is written once per batch. If that fails, the objects exist but are not
        // provably svcacct's: they are never deleted by mistake, and the changes report it.
        if let Err(e) = self.flush_ledger() {
            for (r, op) in results.iter_mut().zip(&ops) {
                if let Some(Ok(Applied::Done)) = r {
                    *r = Some(Err(BackendError::Server {
                        target: op.target().to_string(),
                        code: "record".into(),
                        message: format!(
                            "done in Prefect, but svcacct's record could not be written ({})",
                            e.report()
                        ),
                    }));
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every operation answered"))
            .collect()
    }

    fn verify(&mut self, _secret: &str) -> Result<Verification, BackendError> {
        // `svcacct verify` refuses before opening the backend; see `cannot_verify`.
        Err(BackendError::Setup(
            PREFECT.cannot_verify.unwrap_or_default().into(),
        ))
    }

    fn requests(&self) -> Option<u64> {
        Some(self.client.requests)
    }

    fn describe(&self) -> String {
        format!(
            "organization {} in Prefect account {}",
            self.organization,
            self.client.describe()
        )
    }

    fn set_request_budget(&mut self, per_minute: u32) {
        self.client.set_budget(per_minute);
    }
}

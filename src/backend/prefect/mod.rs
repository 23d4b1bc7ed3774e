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
//!
//! The files follow the jobs: `settings` is the config section, `read` turns an account into
//! a `LiveOrganization`, `write` applies roles, bots, access and the record, `keys` is the
//! key protocol, `client` the HTTP layer over Prefect's API and `ledger` the record's format.
//! This file keeps the backend, what the apply remembers between writes (`Live`), and the
//! `Backend` impl that ties them together.

mod client;
mod keys;
mod ledger;
mod read;
mod settings;
mod write;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::capabilities::Fields;
use super::{
    Applied, Backend, BackendError, Capabilities, IssuedSecret, Minting, Operation, Vocabulary,
};
use crate::duration::Duration;
use crate::model::{LiveOrganization, Verification};
use crate::plan::Change;
use client::{CallError, Client};
use ledger::{BotRecord, Ledger};
use read::ObjectReads;
pub use settings::Settings;

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

}

impl Live {
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
        let memberships: Vec<(usize, &str, &crate::model::Memberships)> = ops
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

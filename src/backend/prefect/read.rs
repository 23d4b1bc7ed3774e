//! Reading a Prefect account into a `LiveOrganization`: the requests of a plan (every filter
//! page by page, the record, bot access per workspace), the narrower reads of a saved plan
//! that changes only accounts' own settings, and the assembly of the answers into the
//! organization and the `Live` ids the apply writes by.

use std::collections::{BTreeSet, HashMap};

use serde_json::json;

use super::client::{self, AccessWire, AccountRoleWire, BotWire, VariableWire, WorkspaceRoleWire, WorkspaceWire};
use super::ledger::{self, BotRecord, Ledger, RoleRecord};
use super::{BUILTIN_ROLES, BotLive, Live, PrefectBackend, closure, is_admin, reduced};
use crate::address::Address;
use crate::backend::{BackendError, Operation};
use crate::model::{ApiKey, IssuedKey, LiveKey, LiveOrganization, RetiringKey, Role, ServiceAccount, Team};
use crate::plan::{Action, Change, Field};

/// The key name of a bot whose key svcacct did not issue.
const UNRECORDED_KEY: &str = "main";

impl PrefectBackend {
    /// Reads everything a plan compares.
    pub(super) fn read(&mut self) -> Result<(LiveOrganization, Live), BackendError> {
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
pub(super) struct ObjectReads {
    bots: Vec<String>,
    account_roles: bool,
    record: bool,
}

impl ObjectReads {
    pub(super) fn of(changes: &[Change]) -> Option<ObjectReads> {
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
    pub(super) fn read_objects(&mut self, reads: &ObjectReads) -> Result<(LiveOrganization, Live), BackendError> {
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
    /// A role's record, if its proof matches the role.
    fn ledger_role(&self, ledger: &Ledger, r: &WorkspaceRoleWire) -> Option<RoleRecord> {
        ledger
            .roles
            .get(&r.id)
            .filter(|rec| rec.created.is_none_or(|c| Some(c) == r.created))
            .cloned()
    }

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
    ) -> HashMap<String, crate::model::Memberships> {
        let role_names: HashMap<String, String> = roles
            .iter()
            .map(|r| (r.id.clone(), r.name.clone()))
            .collect();
        let handles: HashMap<String, String> = workspaces
            .iter()
            .map(|w| (w.id.clone(), w.handle.clone()))
            .collect();
        let mut teams_of: HashMap<String, crate::model::Memberships> = HashMap::new();
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
        teams_of: &mut HashMap<String, crate::model::Memberships>,
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
) -> (crate::model::SmallMap<String, LiveKey>, String) {
    let issued = IssuedKey {
        id: b.api_key.id.clone(),
        created_at: b.api_key.created,
        expires_at: b.api_key.expiration,
        // Prefect's bot API reports no last use of a key.
        last_used_at: None,
    };
    let mut keys = crate::model::SmallMap::new();
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

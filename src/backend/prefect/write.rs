//! Writing to a Prefect account: roles, bots and their access, one request per change where
//! Prefect allows (bot access of a whole batch is one upsert per workspace), every create
//! followed by a look-up rather than a second create when its answer is lost; and the
//! record's variables, written once per batch.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration as StdDuration;

use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::client::{AccessWire, BotCreate, BotWire, CallError, Client, Retry, WorkspaceRoleWire};
use super::keys::{expiration, key_record};
use super::ledger;
use super::{BotLive, Live, PrefectBackend, failed, is_admin};
use crate::backend::{Applied, BackendError, IssuedSecret, Operation};
use crate::clock;
use crate::model::{ApiKey, Role, ServiceAccount};

/// Workspace id → [(op index, bot id, role id)] to upsert.
type Upserts = BTreeMap<String, Vec<(usize, String, String)>>;
/// (op index, workspace id, bot id, access id) to delete.
type Deletes = Vec<(usize, String, String, String)>;

impl Live {
    /// What a batch of memberships changes in bot access: the upserts by workspace and the
    /// deletes. An account whose bot, workspace or role is unknown gets an error instead.
    fn access_changes(
        &self,
        batch: &[(usize, &str, &crate::model::Memberships)],
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
        let existing = self.live()?.roles.get(name).cloned();
        let (id, created) = match existing {
            Some((_, false)) => {
                return Err(BackendError::Conflict {
                    target,
                    message: "a built-in workspace role of Prefect has that name".into(),
                });
            }
            Some((id, true)) => {
                self.patch_role(&id, role, &target)?;
                (id, None)
            }
            None => self.create_role(name, role, &target)?,
        };
        self.record_role(name, &id, created, role)
    }

    /// Makes a custom role's description and scopes what the config says.
    fn patch_role(&mut self, id: &str, role: &Role, target: &str) -> Result<(), BackendError> {
        let scopes: Vec<&String> = role.permissions.iter().collect();
        let c = &mut self.client;
        c.call(
            Method::PATCH,
            &c.a(&format!("workspace_roles/{id}")),
            Some(&json!({ "description": role.description, "scopes": scopes })),
            &[200, 204],
            Retry::Idempotent,
            target,
        )
        .map_err(failed)?;
        Ok(())
    }

    /// Creates a custom role; returns its id and its `created` time, the proof of ownership.
    fn create_role(
        &mut self,
        name: &str,
        role: &Role,
        target: &str,
    ) -> Result<(String, Option<OffsetDateTime>), BackendError> {
        let scopes: Vec<&String> = role.permissions.iter().collect();
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
            target,
        ) {
            Ok(answer) => {
                let r: WorkspaceRoleWire = answer.json("workspace role")?;
                Ok((r.id, r.created))
            }
            // The answer was lost, or the role appeared meanwhile: look it up and
            // make it what the config says rather than creating it twice.
            Err(CallError::Uncertain(_))
            | Err(CallError::Failed(BackendError::Conflict { .. })) => {
                let r = self.find_role(name)?.ok_or(BackendError::NotFound {
                    target: target.to_string(),
                })?;
                self.patch_role(&r.id, role, target)?;
                Ok((r.id, r.created))
            }
            Err(CallError::Failed(e)) => Err(e),
        }
    }

    /// Keeps a custom role's id for the apply, and its record: the proof when this apply
    /// created it, `protect`, and the scopes as declared (Prefect answers them expanded).
    fn record_role(
        &mut self,
        name: &str,
        id: &str,
        created: Option<OffsetDateTime>,
        role: &Role,
    ) -> Result<(), BackendError> {
        let live = self.live()?;
        live.roles.insert(name.to_string(), (id.to_string(), true));
        let mut record = live.ledger.roles.get(id).cloned().unwrap_or_default();
        if created.is_some() {
            record.created = created;
        }
        record.protect = role.protect;
        record.scopes = role.permissions.clone();
        live.ledger.set_role(id, Some(record));
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
        let key = account.keys.iter().next();
        let body = serde_json::to_value(BotCreate {
            name,
            api_key_expiration: key.and_then(|(_, k)| expiration(clock::now(), k)),
            account_role_id: role_id,
        })
        .expect("serializable");
        let (bot, proven) = self.post_bot(name, &body, &target)?;
        self.remember_bot(name, bot, proven, key)
    }

    /// Sends a bot's create; returns the bot and whether this apply provably made it.
    fn post_bot(
        &mut self,
        name: &str,
        body: &Value,
        target: &str,
    ) -> Result<(BotWire, bool), BackendError> {
        let c = &mut self.client;
        let created = c.call(
            Method::POST,
            &c.a("bots/"),
            Some(body),
            &[201],
            Retry::Create,
            target,
        );
        let proven = match created {
            Ok(answer) => return Ok((answer.json::<BotWire>("bot")?, true)),
            Err(CallError::Uncertain(_)) => true,
            // Made meanwhile, or made by us and not yet readable: whose it is, the record says.
            Err(CallError::Failed(BackendError::Conflict { .. })) => false,
            Err(CallError::Failed(e)) => return Err(e),
        };
        let bot = self.find_bot(name)?.ok_or_else(|| BackendError::NotFound {
            target: target.to_string(),
        })?;
        Ok((bot, proven))
    }

    /// Records a created bot (the proof if this apply made it, its key's settings), keeps the
    /// secret of its first key for the key issue that follows, and its ids for the apply.
    fn remember_bot(
        &mut self,
        name: &str,
        bot: BotWire,
        proven: bool,
        key: Option<(&String, &ApiKey)>,
    ) -> Result<String, BackendError> {
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
    pub(super) fn set_memberships(
        &mut self,
        batch: &[(usize, &str, &crate::model::Memberships)],
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


    /// Writes the record's changed variables.
    pub(super) fn flush_ledger(&mut self) -> Result<(), BackendError> {
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

    /// Applies one operation other than memberships (those go in batches).
    pub(super) fn apply_one(&mut self, op: &Operation) -> Result<Applied, BackendError> {
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

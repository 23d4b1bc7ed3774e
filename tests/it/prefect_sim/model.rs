//! What the simulated account holds, and the rules that are not about HTTP: unique bot
//! names, one active key plus rotating keys per bot, which secrets are accepted at a given
//! time, and how long a fresh write stays invisible to reads.

use rand::Rng;
use time::OffsetDateTime;
use uuid::Uuid;

use super::ReadLag;
use super::scopes;
use super::wire::{ApiError, ApiResult};

/// Prefect keys are a prefix and 36 ASCII letters and digits (the pattern secret scanners
/// such as gitleaks use for `pnu_`; service-account keys use `pnb_`).
pub const KEY_BODY_LEN: usize = 36;

/// One API key of a bot.
#[derive(Clone, Debug)]
pub struct ApiKey {
    pub id: Uuid,
    pub created: OffsetDateTime,
    pub name: String,
    pub expiration: Option<OffsetDateTime>,
    pub secret: String,
}

impl ApiKey {
    /// `pnb_...` and the last four characters, as OAS `APIKeyReadResponse.masked_key` shows.
    pub fn masked(&self) -> String {
        format!("pnb_...{}", &self.secret[self.secret.len() - 4..])
    }
}

/// What reads show of a bot that was just updated: its state before the update.
#[derive(Clone, Debug)]
pub struct Shown {
    pub name: String,
    pub account_role_id: Uuid,
}

/// How much longer reads lag a write.
#[derive(Clone, Debug)]
pub enum LagLeft {
    Reads(u32),
    Until(OffsetDateTime),
}

/// A write that reads do not show yet; `stale` is `None` after a create (no `actor_id`, not
/// listed), `Some` after an update (reads show the old fields).
#[derive(Clone, Debug)]
pub struct Lag {
    pub left: LagLeft,
    pub stale: Option<Shown>,
}

#[derive(Clone, Debug)]
pub struct Bot {
    pub id: Uuid,
    pub actor_id: Uuid,
    pub name: String,
    pub account_role_id: Uuid,
    pub created: OffsetDateTime,
    pub updated: OffsetDateTime,
    pub active_key: ApiKey,
    pub rotating_keys: Vec<ApiKey>,
    pub lag: Option<Lag>,
}

/// What one read sees of a bot.
pub enum Seen {
    /// Created but not yet readable: `GET` shows no `actor_id`, filters skip it.
    Fresh,
    /// Updated, and reads still show the old fields.
    Stale(Shown),
    Current,
}

#[derive(Clone, Debug)]
pub struct AccountRole {
    pub id: Uuid,
    pub name: String,
    pub permissions: Vec<&'static str>,
}

#[derive(Clone, Debug)]
pub struct WorkspaceRole {
    pub id: Uuid,
    /// `None` for the built-ins.
    pub account_id: Option<Uuid>,
    pub name: String,
    pub description: String,
    pub scopes: Vec<String>,
    pub inherited_role_id: Option<Uuid>,
    pub created: OffsetDateTime,
    pub updated: OffsetDateTime,
}

#[derive(Clone, Debug)]
pub struct Workspace {
    pub id: Uuid,
    pub name: String,
    pub handle: String,
    pub description: String,
    pub default_workspace_role_id: Uuid,
    pub created: OffsetDateTime,
}

/// A bot's role in one workspace (OAS `WorkspaceBotAccessResponse`).
#[derive(Clone, Debug)]
pub struct Access {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub bot_id: Uuid,
    pub workspace_role_id: Uuid,
    pub created: OffsetDateTime,
    pub updated: OffsetDateTime,
}

pub struct State {
    pub account_id: Uuid,
    pub token: String,
    pub clock_offset: time::Duration,
    pub read_lag: ReadLag,
    pub bots: Vec<Bot>,
    pub account_roles: Vec<AccountRole>,
    pub workspace_roles: Vec<WorkspaceRole>,
    pub workspaces: Vec<Workspace>,
    pub accesses: Vec<Access>,
    pub variables: Vec<super::variables::Variable>,
}

/// A fresh secret with `prefix` (`pnb_` for bots, `pnu_` for the simulator's user key).
pub fn secret(prefix: &str) -> String {
    let body: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(KEY_BODY_LEN)
        .map(char::from)
        .collect();
    format!("{prefix}{body}")
}

impl State {
    pub fn new(read_lag: ReadLag) -> State {
        let now = OffsetDateTime::now_utc();
        let account_roles = scopes::account_roles()
            .into_iter()
            .map(|(name, permissions)| AccountRole {
                id: Uuid::new_v4(),
                name: name.to_owned(),
                permissions,
            })
            .collect();
        let workspace_roles = scopes::builtin_roles()
            .into_iter()
            .map(|(name, description, scopes)| WorkspaceRole {
                id: Uuid::new_v4(),
                account_id: None,
                name: name.to_owned(),
                description: description.to_owned(),
                scopes: scopes.into_iter().map(str::to_owned).collect(),
                inherited_role_id: None,
                created: now,
                updated: now,
            })
            .collect();
        State {
            account_id: Uuid::new_v4(),
            token: secret("pnu_"),
            clock_offset: time::Duration::ZERO,
            read_lag,
            bots: Vec::new(),
            account_roles,
            workspace_roles,
            workspaces: Vec::new(),
            accesses: Vec::new(),
            variables: Vec::new(),
        }
    }

    /// The simulated "now": real time plus whatever tests advanced the clock by.
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.clock_offset
    }

    pub fn account_role(&self, id: Uuid) -> Option<&AccountRole> {
        self.account_roles.iter().find(|r| r.id == id)
    }

    pub fn account_role_named(&self, name: &str) -> &AccountRole {
        self.account_roles
            .iter()
            .find(|r| r.name == name)
            .expect("system account roles are seeded")
    }

    pub fn workspace_role(&self, id: Uuid) -> Option<&WorkspaceRole> {
        self.workspace_roles.iter().find(|r| r.id == id)
    }

    pub fn workspace_role_named(&self, name: &str) -> Option<&WorkspaceRole> {
        self.workspace_roles.iter().find(|r| r.name == name)
    }

    pub fn workspace(&self, id: Uuid) -> Option<&Workspace> {
        self.workspaces.iter().find(|w| w.id == id)
    }

    pub fn bot(&self, id: Uuid) -> ApiResult<&Bot> {
        self.bots
            .iter()
            .find(|b| b.id == id)
            .ok_or_else(|| ApiError::not_found("Bot not found."))
    }

    pub fn bot_mut(&mut self, id: Uuid) -> ApiResult<&mut Bot> {
        self.bots
            .iter_mut()
            .find(|b| b.id == id)
            .ok_or_else(|| ApiError::not_found("Bot not found."))
    }

    fn new_key(&self, name: &str, expiration: Option<OffsetDateTime>) -> ApiKey {
        ApiKey {
            id: Uuid::new_v4(),
            created: self.now(),
            name: name.to_owned(),
            expiration,
            secret: secret("pnb_"),
        }
    }

    fn lag(&self, stale: Option<Shown>) -> Option<Lag> {
        let left = match self.read_lag {
            ReadLag::None => return None,
            ReadLag::Reads(0) | ReadLag::Millis(0) => return None,
            ReadLag::Reads(n) => LagLeft::Reads(n),
            ReadLag::Millis(ms) => LagLeft::Until(self.now() + time::Duration::milliseconds(ms)),
        };
        Some(Lag { left, stale })
    }

    fn name_taken(&self, name: &str, except: Option<Uuid>) -> bool {
        self.bots
            .iter()
            .any(|b| b.name == name && Some(b.id) != except)
    }

    /// Creates a bot with its first key; `lagged` says whether reads lag this write (API
    /// calls) or not (seeding by hand).
    pub fn create_bot(
        &mut self,
        name: &str,
        account_role_id: Uuid,
        expiration: Option<OffsetDateTime>,
        lagged: bool,
    ) -> ApiResult<&Bot> {
        if self.name_taken(name, None) {
            return Err(ApiError::conflict("A bot with this name already exists."));
        }
        let now = self.now();
        let bot = Bot {
            id: Uuid::new_v4(),
            actor_id: Uuid::new_v4(),
            name: name.to_owned(),
            account_role_id,
            created: now,
            updated: now,
            active_key: self.new_key(name, expiration),
            rotating_keys: Vec::new(),
            lag: if lagged { self.lag(None) } else { None },
        };
        self.bots.push(bot);
        Ok(self.bots.last().expect("just pushed"))
    }

    /// Renames a bot or changes its account role.
    pub fn update_bot(
        &mut self,
        id: Uuid,
        name: Option<String>,
        account_role_id: Option<Uuid>,
        lagged: bool,
    ) -> ApiResult<()> {
        if let Some(name) = &name
            && self.name_taken(name, Some(id))
        {
            return Err(ApiError::conflict("A bot with this name already exists."));
        }
        let now = self.now();
        let before = {
            let bot = self.bot(id)?;
            Shown {
                name: bot.name.clone(),
                account_role_id: bot.account_role_id,
            }
        };
        let lag = if lagged { self.lag(Some(before)) } else { None };
        let bot = self.bot_mut(id)?;
        if let Some(name) = name {
            bot.name = name;
        }
        if let Some(role) = account_role_id {
            bot.account_role_id = role;
        }
        bot.updated = now;
        if lag.is_some() {
            bot.lag = lag;
        }
        Ok(())
    }

    /// Gives a bot a new active key. The old one becomes a rotating key that expires
    /// `old_key_expires_in` seconds from now, or is deleted at once when that is `None`.
    pub fn rotate(
        &mut self,
        id: Uuid,
        expiration: Option<OffsetDateTime>,
        old_key_expires_in: Option<i64>,
    ) -> ApiResult<&Bot> {
        let now = self.now();
        let name = self.bot(id)?.name.clone();
        let key = self.new_key(&name, expiration);
        let bot = self.bot_mut(id)?;
        let mut old = std::mem::replace(&mut bot.active_key, key);
        if let Some(secs) = old_key_expires_in {
            let expiry = now + time::Duration::seconds(secs);
            old.expiration = Some(old.expiration.map_or(expiry, |e| e.min(expiry)));
            bot.rotating_keys.push(old);
        }
        bot.updated = now;
        Ok(bot)
    }

    /// A bot's rotating keys that have not expired yet.
    pub fn live_rotating_keys(&self, bot: &Bot) -> Vec<ApiKey> {
        let now = self.now();
        bot.rotating_keys
            .iter()
            .filter(|k| k.expiration.is_some_and(|e| e > now))
            .cloned()
            .collect()
    }

    /// Whether `secret` would authenticate now: a bot's active key that has not expired, or
    /// one of its rotating keys before its expiry.
    pub fn key_accepted(&self, secret: &str) -> bool {
        let now = self.now();
        self.bots.iter().any(|bot| {
            std::iter::once(&bot.active_key)
                .chain(&bot.rotating_keys)
                .any(|k| k.secret == secret && k.expiration.is_none_or(|e| e > now))
        })
    }

    /// What one read sees of bot `index`; counts the read against the bot's lag.
    pub fn observe(&mut self, index: usize) -> Seen {
        let now = self.now();
        let bot = &mut self.bots[index];
        let Some(lag) = &mut bot.lag else {
            return Seen::Current;
        };
        let still = match &mut lag.left {
            LagLeft::Reads(n) if *n > 0 => {
                *n -= 1;
                true
            }
            LagLeft::Reads(_) => false,
            LagLeft::Until(t) => *t > now,
        };
        if !still {
            bot.lag = None;
            return Seen::Current;
        }
        match &lag.stale {
            None => Seen::Fresh,
            Some(shown) => Seen::Stale(shown.clone()),
        }
    }

    pub fn delete_bot(&mut self, id: Uuid) -> ApiResult<()> {
        self.bot(id)?;
        self.bots.retain(|b| b.id != id);
        self.accesses.retain(|a| a.bot_id != id);
        Ok(())
    }

    /// Gives `bot_id` role `role_id` in `workspace_id`, replacing its current role there.
    pub fn upsert_access(
        &mut self,
        workspace_id: Uuid,
        bot_id: Uuid,
        role_id: Uuid,
    ) -> ApiResult<Access> {
        self.bot(bot_id)?;
        if self.workspace_role(role_id).is_none() {
            return Err(ApiError::not_found("Workspace role not found."));
        }
        let now = self.now();
        if let Some(access) = self
            .accesses
            .iter_mut()
            .find(|a| a.workspace_id == workspace_id && a.bot_id == bot_id)
        {
            access.workspace_role_id = role_id;
            access.updated = now;
            return Ok(access.clone());
        }
        let access = Access {
            id: Uuid::new_v4(),
            workspace_id,
            bot_id,
            workspace_role_id: role_id,
            created: now,
            updated: now,
        };
        self.accesses.push(access.clone());
        Ok(access)
    }
}

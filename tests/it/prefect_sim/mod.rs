//! A Prefect Cloud simulator for the `prefect` backend's tests: the service-account slice of
//! Cloud's API (bots, their keys, account and workspace roles, workspaces, bot access) served
//! by an in-process axum app on 127.0.0.1, with Cloud's failure modes on demand (429 with
//! `Retry-After`, answers lost after the write happened, reads that lag writes).
//!
//! It exists because the real service cannot be used in tests and a mock would only repeat the
//! client's assumptions. It refuses what Cloud refuses (tests/prefect-contract.md lists each
//! rule and its source), so a client that passes here sends what Cloud accepts.

#![allow(dead_code)] // Helpers for the coming `prefect` backend tests, not all used by the simulator's own.

mod api;
mod model;
mod scopes;
mod tests;
mod variables;
mod wire;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use time::OffsetDateTime;
use uuid::Uuid;

/// How reads lag writes: after a create, `GET bots/{id}` shows no `actor_id` and filters do not
/// list the bot; after an update, reads show the old name and role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadLag {
    #[default]
    None,
    /// For this many reads of the bot (each `GET` of it and each filter it would appear in).
    Reads(u32),
    /// For this many milliseconds of the simulator's clock.
    Millis(i64),
}

/// Fault knobs, all off by default.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimOptions {
    /// Share of requests (0.0..=1.0) answered 429 before they reach the application.
    pub rate_limited_share: f64,
    /// The `Retry-After` of those 429s, in whole seconds.
    pub retry_after_secs: u64,
    /// Share of successful writes whose answer is lost: the write is done, the client gets
    /// 502 with an empty body.
    pub lost_answer_share: f64,
    pub read_lag: ReadLag,
}

/// Spreads a share over a sequence exactly and deterministically: the n-th event (from 0)
/// fires when it carries the running total over the next whole number, so a share of 0.25
/// fires on every 4th event and tests can count.
fn fires(share: f64, n: u64) -> bool {
    ((n + 1) as f64 * share).floor() > (n as f64 * share).floor()
}

/// The fault knobs' state: counters that decide which request gets which fault.
pub(crate) struct Faults {
    options: SimOptions,
    requests_seen: u64,
    writes_seen: u64,
    rate_limited: u64,
    answers_lost: u64,
}

impl Faults {
    /// `Some(retry_after)` when this request is to be rate limited.
    fn rate_limited(&mut self) -> Option<u64> {
        let n = self.requests_seen;
        self.requests_seen += 1;
        let fire = fires(self.options.rate_limited_share, n);
        if fire {
            self.rate_limited += 1;
        }
        fire.then_some(self.options.retry_after_secs)
    }

    /// Whether this successful write loses its answer.
    fn answer_lost(&mut self) -> bool {
        let n = self.writes_seen;
        self.writes_seen += 1;
        let fire = fires(self.options.lost_answer_share, n);
        if fire {
            self.answers_lost += 1;
        }
        fire
    }
}

/// Requests received, in total and by route (`"POST bots/"`, `"GET bots/{id}"`, ...; a path
/// that matches no route counts as `"GET ?/the/path"`).
#[derive(Clone, Debug, Default)]
pub struct Requests {
    pub total: u64,
    pub by_route: BTreeMap<String, u64>,
    /// How many were answered 429 by the rate-limit knob.
    pub rate_limited: u64,
    /// How many writes lost their answer.
    pub answers_lost: u64,
}

impl Requests {
    fn record(&mut self, route: String) {
        self.total += 1;
        *self.by_route.entry(route).or_default() += 1;
    }

    /// Requests to one route, e.g. `to("POST bots/filter")`.
    pub fn to(&self, route: &str) -> u64 {
        self.by_route.get(route).copied().unwrap_or(0)
    }
}

pub(crate) struct Shared {
    state: Mutex<model::State>,
    faults: Mutex<Faults>,
    counts: Mutex<Requests>,
}

/// One key as the simulator holds it (the secret stays inside; use `key_accepted`).
#[derive(Clone, Debug)]
pub struct KeyInfo {
    pub id: Uuid,
    pub expiration: Option<OffsetDateTime>,
    pub masked: String,
}

/// One bot as the simulator holds it, whatever reads currently show.
#[derive(Clone, Debug)]
pub struct BotInfo {
    pub id: Uuid,
    pub actor_id: Uuid,
    pub name: String,
    pub account_role_name: String,
    pub active_key: KeyInfo,
    /// Rotating keys not yet expired.
    pub rotating_keys: Vec<KeyInfo>,
}

/// A bot's role in a workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessInfo {
    pub id: Uuid,
    pub bot_id: Uuid,
    pub workspace_role_name: String,
}

/// A running simulator; dropping it stops the server.
pub struct PrefectSim {
    url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl PrefectSim {
    /// Starts a simulator on 127.0.0.1 with a fresh, empty account.
    pub fn start(options: SimOptions) -> PrefectSim {
        let shared = Arc::new(Shared {
            state: Mutex::new(model::State::new(options.read_lag)),
            faults: Mutex::new(Faults {
                options,
                requests_seen: 0,
                writes_seen: 0,
                rate_limited: 0,
                answers_lost: 0,
            }),
            counts: Mutex::new(Requests::default()),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let url = format!("http://{}/api", listener.local_addr().expect("local addr"));
        let app = api::router(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("prefect-sim".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("simulator runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    // Dropping the server future on stop closes every connection with it.
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
            })
            .expect("simulator thread");
        PrefectSim {
            url,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn state(&self) -> MutexGuard<'_, model::State> {
        self.shared.state.lock().unwrap()
    }

    /// The `{url}` that precedes `/accounts/{account_id}`: `http://127.0.0.1:PORT/api`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn account_id(&self) -> Uuid {
        self.state().account_id
    }

    /// `{url}/accounts/{account_id}`, the `A` of the contract.
    pub fn account_url(&self) -> String {
        format!("{}/accounts/{}", self.url, self.account_id())
    }

    /// The one API key the simulator accepts (a user key, `pnu_...`).
    pub fn token(&self) -> String {
        self.state().token.clone()
    }

    pub fn requests(&self) -> Requests {
        let mut requests = self.shared.counts.lock().unwrap().clone();
        let faults = self.shared.faults.lock().unwrap();
        requests.rate_limited = faults.rate_limited;
        requests.answers_lost = faults.answers_lost;
        requests
    }

    /// Changes the fault knobs (not the read lag) from now on.
    pub fn set_faults(&self, rate_limited_share: f64, retry_after_secs: u64, lost_share: f64) {
        let mut faults = self.shared.faults.lock().unwrap();
        faults.options.rate_limited_share = rate_limited_share;
        faults.options.retry_after_secs = retry_after_secs;
        faults.options.lost_answer_share = lost_share;
    }

    pub fn set_read_lag(&self, lag: ReadLag) {
        self.state().read_lag = lag;
    }

    // ---- clock --------------------------------------------------------------------------

    /// The simulator's now: real time plus every `advance_clock`.
    pub fn now(&self) -> OffsetDateTime {
        self.state().now()
    }

    /// Moves the simulator's clock forward, e.g. past a rotating key's expiry.
    pub fn advance_clock(&self, by: time::Duration) {
        self.state().clock_offset += by;
    }

    /// Sets the simulator's clock to `now` (real time then moves it on), for tests that run
    /// the binary at fixed times.
    pub fn set_now(&self, now: OffsetDateTime) {
        let mut st = self.state();
        st.clock_offset = now - OffsetDateTime::now_utc();
    }

    // ---- seeding --------------------------------------------------------------------------

    /// Adds a workspace with this handle and returns its id.
    pub fn add_workspace(&self, handle: &str) -> Uuid {
        let mut st = self.state();
        let viewer = st.workspace_role_named("Viewer").expect("built-in").id;
        let workspace = model::Workspace {
            id: Uuid::new_v4(),
            name: handle.to_owned(),
            handle: handle.to_owned(),
            description: String::new(),
            default_workspace_role_id: viewer,
            created: st.now(),
        };
        let id = workspace.id;
        st.workspaces.push(workspace);
        id
    }

    /// Adds a bot "by hand" (as someone in the UI would; reads do not lag it) with account role
    /// `account_role` (Owner, Admin or Member); returns its id and its key.
    pub fn add_bot(
        &self,
        name: &str,
        account_role: &str,
        expiration: Option<OffsetDateTime>,
    ) -> (Uuid, String) {
        let mut st = self.state();
        let role = st.account_role_named(account_role).id;
        let bot = st
            .create_bot(name, role, expiration, false)
            .expect("bot names are unique");
        (bot.id, bot.active_key.secret.clone())
    }

    /// Rotates a bot's key out of band (as in the UI); the old key keeps working for
    /// `old_key_expires_in` seconds, or stops at once when `None`. Returns the new key.
    pub fn rotate_out_of_band(&self, bot_id: Uuid, old_key_expires_in: Option<i64>) -> String {
        let mut st = self.state();
        st.rotate(bot_id, None, old_key_expires_in)
            .expect("bot exists")
            .active_key
            .secret
            .clone()
    }

    /// Renames a bot out of band.
    pub fn rename_out_of_band(&self, bot_id: Uuid, name: &str) {
        self.state()
            .update_bot(bot_id, Some(name.to_owned()), None, false)
            .expect("bot exists and the name is free");
    }

    /// Deletes a bot out of band.
    pub fn delete_out_of_band(&self, bot_id: Uuid) {
        self.state().delete_bot(bot_id).expect("bot exists");
    }

    /// Gives a bot a workspace role out of band (`None` removes its access).
    pub fn set_access_out_of_band(&self, workspace_id: Uuid, bot_id: Uuid, role: Option<&str>) {
        let mut st = self.state();
        match role {
            Some(role) => {
                let role = st.workspace_role_named(role).expect("role exists").id;
                st.upsert_access(workspace_id, bot_id, role)
                    .expect("bot exists");
            }
            None => st
                .accesses
                .retain(|a| !(a.workspace_id == workspace_id && a.bot_id == bot_id)),
        }
    }

    /// Changes a bot's account role out of band (Owner, Admin or Member), as an account
    /// admin would in the UI's service account page.
    pub fn set_account_role_out_of_band(&self, bot_id: Uuid, account_role: &str) {
        let mut st = self.state();
        let role = st.account_role_named(account_role).id;
        st.update_bot(bot_id, None, Some(role), false)
            .expect("bot exists");
    }

    /// Replaces a custom workspace role's scopes out of band, as in the UI's role editor.
    pub fn set_role_scopes_out_of_band(&self, role: &str, scopes: &[&str]) {
        let mut st = self.state();
        let now = st.now();
        let role = st
            .workspace_roles
            .iter_mut()
            .find(|r| r.name == role && r.account_id.is_some())
            .expect("a custom workspace role of that name");
        role.scopes = scopes.iter().map(|s| s.to_string()).collect();
        role.updated = now;
    }

    /// A workspace role's scopes as stored (built-in or custom).
    pub fn role_scopes(&self, role: &str) -> Vec<String> {
        let st = self.state();
        let mut scopes = st
            .workspace_role_named(role)
            .expect("role exists")
            .scopes
            .clone();
        scopes.sort();
        scopes
    }

    // ---- inspection -----------------------------------------------------------------------

    /// Every bot, by name.
    pub fn bots(&self) -> Vec<BotInfo> {
        let st = self.state();
        let key = |k: &model::ApiKey| KeyInfo {
            id: k.id,
            expiration: k.expiration,
            masked: k.masked(),
        };
        let mut bots: Vec<BotInfo> = st
            .bots
            .iter()
            .map(|b| BotInfo {
                id: b.id,
                actor_id: b.actor_id,
                name: b.name.clone(),
                account_role_name: st
                    .account_role(b.account_role_id)
                    .map(|r| r.name.clone())
                    .unwrap_or_default(),
                active_key: key(&b.active_key),
                rotating_keys: st.live_rotating_keys(b).iter().map(key).collect(),
            })
            .collect();
        bots.sort_by(|a, b| a.name.cmp(&b.name));
        bots
    }

    pub fn bot_named(&self, name: &str) -> Option<BotInfo> {
        self.bots().into_iter().find(|b| b.name == name)
    }

    /// Whether `secret` (`pnb_...`) authenticates now: an active key or a rotating key that
    /// has not expired, on the simulator's clock.
    pub fn key_accepted(&self, secret: &str) -> bool {
        self.state().key_accepted(secret)
    }

    /// The bot accesses of a workspace.
    pub fn accesses(&self, workspace_id: Uuid) -> Vec<AccessInfo> {
        let st = self.state();
        st.accesses
            .iter()
            .filter(|a| a.workspace_id == workspace_id)
            .map(|a| AccessInfo {
                id: a.id,
                bot_id: a.bot_id,
                workspace_role_name: st
                    .workspace_role(a.workspace_role_id)
                    .map(|r| r.name.clone())
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// The id of a workspace role (built-in or custom) by name.
    pub fn workspace_role_id(&self, name: &str) -> Option<Uuid> {
        self.state().workspace_role_named(name).map(|r| r.id)
    }

    /// The variables of a workspace: (name, value).
    pub fn variables(&self, workspace_id: Uuid) -> Vec<(String, serde_json::Value)> {
        self.state()
            .variables
            .iter()
            .filter(|v| v.workspace_id == workspace_id)
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect()
    }

    /// Replaces every variable of a workspace (to lose or hand-edit svcacct's record).
    pub fn set_variables(&self, workspace_id: Uuid, values: Vec<(String, serde_json::Value)>) {
        let mut st = self.state();
        let now = st.now();
        st.variables.retain(|v| v.workspace_id != workspace_id);
        for (name, value) in values {
            st.variables.push(variables::Variable {
                id: Uuid::new_v4(),
                workspace_id,
                name,
                value,
                tags: Vec::new(),
                created: now,
                updated: now,
            });
        }
    }

    /// The id of an account role (Owner, Admin, Member).
    pub fn account_role_id(&self, name: &str) -> Uuid {
        self.state().account_role_named(name).id
    }
}

impl Drop for PrefectSim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

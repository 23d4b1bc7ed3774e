//! `memory`: a test backend that holds an organization in memory, as a SaaS API would: it mints
//! key secrets itself and hands each over once, keeps one key per account, no scopes, and has
//! no revision, no lock and no audit log. Between runs of the CLI its memory is a JSON file.
//!
//! It exists to prove the backend seam: it is this file plus one line in `backends!`, and it
//! passes the conformance scenarios that fit its capabilities. It is compiled only with the
//! `test-hooks` feature, so no release build has it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::capabilities::{ALL_FIELDS, Fields, Minting, SVCACCT_STORE};
use super::{
    Applied, Backend, BackendConfig, BackendError, Capabilities, IssuedSecret, Operation, Section,
};
use crate::clock;
use crate::model::{
    IssuedKey, LiveKey, LiveOrganization, RetiringKey, Verification,
};
use crate::secrets::{hash_secret, looks_like_key, mint};

const CAPABILITIES: Capabilities = Capabilities {
    name: "memory",
    minting: Minting::Server,
    max_keys_per_account: 1,
    max_overlap: None,
    persists: Fields {
        scopes: false,
        ..ALL_FIELDS
    },
    revision: false,
    lock: false,
    audit_log: false,
    // It notes no use of a key.
    records_key_use: false,
    cannot_verify: None,
    ..SVCACCT_STORE
};

/// The `memory` section of the config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where the memory is kept between runs. Default: `.svcacct/<organization>.memory.json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

impl Section for Settings {
    fn capabilities(&self) -> &'static Capabilities {
        &CAPABILITIES
    }

    fn resolve(&mut self, base_dir: &Path, organization: &str) -> Result<(), String> {
        let path = self.path.take().unwrap_or_else(|| {
            Path::new(".svcacct").join(format!("{organization}.memory.json"))
        });
        self.path = Some(base_dir.join(path));
        Ok(())
    }

    fn exported(&self, relative: &dyn Fn(&Path) -> String) -> BackendConfig {
        BackendConfig::Memory(Settings {
            path: self.path.as_deref().map(|p| PathBuf::from(relative(p))),
        })
    }

    fn open(&self, organization: &str, _for_write: bool) -> Result<Box<dyn Backend>, BackendError> {
        let path = self.path.clone().expect("resolved");
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| BackendError::Setup(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State {
                org: LiveOrganization::new(organization),
                hashes: BTreeMap::new(),
            },
            Err(e) => return Err(BackendError::Setup(format!("{}: {e}", path.display()))),
        };
        Ok(Box::new(Memory { path, state }))
    }
}

/// What the backend remembers: the organization, and the hash of every key it issued by id (a
/// revoked key's hash stays, so verifying it says `revoked`, not `unknown`).
#[derive(Serialize, Deserialize)]
struct State {
    org: LiveOrganization,
    hashes: BTreeMap<String, String>,
}

struct Memory {
    path: PathBuf,
    state: State,
}

fn not_found(target: String) -> BackendError {
    BackendError::NotFound { target }
}

impl Memory {
    fn save(&self) -> Result<(), BackendError> {
        let json = serde_json::to_vec(&self.state).expect("serializes");
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| BackendError::Setup(e.to_string()))?;
        }
        std::fs::write(&self.path, json).map_err(|e| BackendError::Setup(e.to_string()))
    }

    fn one(&mut self, op: Operation, now: OffsetDateTime) -> Result<Applied, BackendError> {
        let target = op.target().to_string();
        let org = &mut self.state.org;
        let hashes = &mut self.state.hashes;
        match op {
            Operation::PutRole { name, role } => {
                org.roles.insert(name, role);
            }
            Operation::PutTeam { name, team } => {
                org.teams.insert(name, team);
            }
            Operation::PutServiceAccount { name, account } => {
                let (teams, keys) = org.service_accounts.get(&name).map(|h| (h.teams.clone(), h.keys.clone())).unwrap_or_default();
                let mut account = account.with_keys(keys);
                account.teams = teams;
                org.service_accounts.insert(name, account);
            }
            Operation::SetMemberships { account, teams } => {
                for (team, role) in &teams {
                    if !org.teams.contains_key(team) {
                        return Err(not_found(format!("team.{team}")));
                    }
                    if !org.roles.contains_key(role) {
                        return Err(not_found(format!("role.{role}")));
                    }
                }
                let a = org.service_accounts.get_mut(&account).ok_or(not_found(target))?;
                a.teams = teams;
            }
            Operation::IssueKey { account, name, key } => {
                let a = org.service_accounts.get_mut(&account).ok_or(not_found(target.clone()))?;
                if a.keys.keys().any(|k| *k != name) {
                    return Err(BackendError::Conflict {
                        target,
                        message: "the memory backend keeps one key per account".into(),
                    });
                }
                if let Some(rotation) = &key.replaces {
                    let old = a.keys.get(&name).map(|k| &k.issued);
                    if old.is_none_or(|o| o.id != rotation.id) {
                        return Err(not_found(format!("{target} (key id {})", rotation.id)));
                    }
                    if rotation.overlap.seconds() > 0 {
                        org.retiring_keys.push(RetiringKey {
                            id: rotation.id.clone(),
                            service_account: account.clone(),
                            key: name.clone(),
                            retires_at: now + rotation.overlap.to_time(),
                            managed: key.settings.managed,
                            last_used_at: None,
                        });
                    }
                }
                let minted = mint();
                let expires_at = key.settings.expires_in.map(|d| now + d.to_time());
                hashes.insert(minted.id.clone(), minted.hash.clone());
                a.keys.insert(
                    name,
                    LiveKey {
                        settings: key.settings,
                        issued: IssuedKey {
                            id: minted.id.clone(),
                            created_at: now,
                            expires_at,
                            last_used_at: None,
                        },
                    },
                );
                return Ok(Applied::Issued(IssuedSecret {
                    id: minted.id,
                    secret: minted.secret,
                    created_at: now,
                    expires_at,
                }));
            }
            Operation::RegisterKey { .. } => {
                return Err(BackendError::Conflict {
                    target,
                    message: "the memory backend mints its keys itself".into(),
                });
            }
            Operation::UpdateKey { account, name, key } => {
                let live = org
                    .service_accounts
                    .get_mut(&account)
                    .and_then(|a| a.keys.get_mut(&name))
                    .ok_or(not_found(target))?;
                live.settings = key;
            }
            Operation::RevokeKey { account, name, id } => {
                let keys = &mut org.service_accounts.get_mut(&account).ok_or(not_found(target.clone()))?.keys;
                let current = keys.get(&name).is_some_and(|k| k.issued.id == id);
                let retiring = org.retiring_keys.iter().position(|r| r.id == id);
                match (current, retiring) {
                    (true, _) => {
                        keys.remove(&name);
                    }
                    (false, Some(i)) => {
                        org.retiring_keys.remove(i);
                    }
                    (false, None) => return Err(not_found(target)),
                }
            }
            Operation::DeleteServiceAccount { name } => {
                let a = org.service_accounts.get(&name).ok_or(not_found(target.clone()))?;
                if a.protect {
                    return Err(BackendError::Protected { target });
                }
                org.retiring_keys.retain(|r| r.service_account != name);
                org.service_accounts.remove(&name);
            }
            Operation::DeleteTeam { name } => {
                let t = org.teams.get(&name).ok_or(not_found(target.clone()))?;
                if t.protect {
                    return Err(BackendError::Protected { target });
                }
                org.teams.remove(&name);
            }
            Operation::DeleteRole { name } => {
                let r = org.roles.get(&name).ok_or(not_found(target.clone()))?;
                if r.protect || r.builtin {
                    return Err(BackendError::Protected { target });
                }
                org.roles.remove(&name);
            }
        }
        Ok(Applied::Done)
    }
}

impl Backend for Memory {
    fn snapshot(&mut self) -> Result<LiveOrganization, BackendError> {
        Ok(self.state.org.clone())
    }

    /// No lock: the capabilities say so.
    fn lock(&mut self, _owner: &str, _wait: Duration) -> Result<(), BackendError> {
        Ok(())
    }

    fn apply(&mut self, ops: Vec<Operation>) -> Vec<Result<Applied, BackendError>> {
        let now = clock::now();
        let results: Vec<_> = ops.into_iter().map(|op| self.one(op, now)).collect();
        match self.save() {
            Ok(()) => results,
            Err(e) => results.into_iter().map(|_| Err(e.clone())).collect(),
        }
    }

    fn verify(&mut self, secret: &str) -> Result<Verification, BackendError> {
        let now = clock::now();
        if !looks_like_key(secret) {
            return Ok(Verification::refused("malformed"));
        }
        let hash = hash_secret(secret);
        let Some(id) = self.state.hashes.iter().find(|(_, h)| **h == hash).map(|(id, _)| id) else {
            return Ok(Verification::refused("unknown"));
        };
        let org = &self.state.org;
        let current = org.service_accounts.iter().find_map(|(a, acct)| {
            acct.keys.iter().find_map(|(k, key)| {
                let issued = Some(&key.issued).filter(|i| i.id == *id)?;
                Some((a, k, issued.expires_at, None))
            })
        });
        let retiring = || {
            org.retiring_keys
                .iter()
                .find(|r| r.id == *id)
                .map(|r| (&r.service_account, &r.key, None, Some(r.retires_at)))
        };
        let Some((account, key, expires_at, retires_at)) = current.or_else(retiring) else {
            return Ok(Verification::refused("revoked"));
        };
        let acct = &org.service_accounts[account];
        let refusal = if retires_at.is_some_and(|t| t <= now) {
            Some("retired")
        } else if expires_at.is_some_and(|t| t <= now) {
            Some("expired")
        } else if acct.disabled {
            Some("account_disabled")
        } else if acct.expired_at(now) {
            Some("account_expired")
        } else {
            None
        };
        if let Some(reason) = refusal {
            return Ok(Verification::refused(reason));
        }
        Ok(Verification {
            valid: true,
            organization: Some(org.name.clone()),
            service_account: Some(account.clone()),
            key: Some(key.clone()),
            key_id: Some(id.clone()),
            permissions: org.permissions_of(acct).into_iter().collect(),
            expires_at,
            ..Default::default()
        })
    }

    fn describe(&self) -> String {
        format!(
            "memory organization {} in {}",
            self.state.org.name,
            self.path.display()
        )
    }
}

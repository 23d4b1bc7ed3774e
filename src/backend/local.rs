//! The `local` backend: an organization in an embedded SQLite file. The apply lock is an
//! advisory lock on `<file>.lock`, which the kernel releases when the process dies, so a
//! killed apply never leaves the organization locked.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::capabilities::SVCACCT_STORE;
use super::{Applied, Backend, BackendConfig, BackendError, Capabilities, Operation, Section};
use crate::clock;
use crate::model::Organization;
use crate::model::Verification;
use crate::store::{Store, StoreError};

/// The `local` section of the config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The SQLite file, relative to the config. Default: `.svcacct/<organization>.db`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

impl Section for Settings {
    fn capabilities(&self) -> &'static Capabilities {
        &SVCACCT_STORE
    }

    fn resolve(&mut self, base_dir: &Path, organization: &str) -> Result<(), String> {
        let path = self
            .path
            .take()
            .unwrap_or_else(|| Path::new(".svcacct").join(format!("{organization}.db")));
        self.path = Some(base_dir.join(path));
        Ok(())
    }

    fn exported(&self, relative: &dyn Fn(&Path) -> String) -> BackendConfig {
        BackendConfig::Local(Settings {
            path: self.path.as_deref().map(|p| PathBuf::from(relative(p))),
        })
    }

    fn location(&self) -> String {
        // Absolute, so a plan saved in one directory is not applied to another file.
        self.path
            .as_deref()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
            .unwrap_or_default()
            .display()
            .to_string()
    }

    fn open(&self, organization: &str, for_write: bool) -> Result<Box<dyn Backend>, BackendError> {
        let path = self.path.as_deref().ok_or_else(|| {
            BackendError::Setup("the local backend's path is not resolved".into())
        })?;
        Ok(Box::new(LocalBackend::open(path, organization, for_write)?))
    }
}

/// An organization in a SQLite file.
pub struct LocalBackend {
    path: PathBuf,
    organization: String,
    /// `None` for a read-only open of a file that does not exist yet.
    store: Option<Store>,
    lock: Option<File>,
    actor: String,
}

impl LocalBackend {
    /// Opens `path`; read-only opens never create or modify the file.
    pub fn open(path: &Path, organization: &str, for_write: bool) -> Result<Self, BackendError> {
        let store = if for_write {
            Some(Store::open(path)?)
        } else {
            Store::open_read_only(path)?
        };
        let user = crate::actor::local_user();
        Ok(LocalBackend {
            path: path.to_path_buf(),
            organization: organization.to_string(),
            store,
            lock: None,
            actor: format!("svcacct:{user}"),
        })
    }

    /// The open store, if there is a file.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }
}

impl Backend for LocalBackend {
    fn snapshot(&mut self) -> Result<Organization, BackendError> {
        let live = match &self.store {
            Some(store) => store.snapshot(&self.organization)?,
            None => None,
        };
        Ok(live.unwrap_or_else(|| Organization::new(&self.organization)))
    }

    fn lock(&mut self, owner: &str, wait: Duration) -> Result<(), BackendError> {
        let lock_path = PathBuf::from(format!("{}.lock", self.path.display()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| StoreError::Io {
                action: "open lock file",
                path: lock_path.clone(),
                source: e.into(),
            })?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if start.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    return Err(BackendError::Locked {
                        holder: if holder.trim().is_empty() {
                            "unknown".into()
                        } else {
                            holder.trim().to_string()
                        },
                        waited_secs: start.elapsed().as_secs(),
                    });
                }
                Err(TryLockError::Error(e)) => {
                    return Err(StoreError::Io {
                        action: "lock",
                        path: lock_path,
                        source: e.into(),
                    }
                    .into());
                }
            }
        }
        // Who holds it, for the message a waiting apply prints.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(
            file,
            "{owner}, pid {}, since {}",
            std::process::id(),
            clock::now()
        );
        self.lock = Some(file);
        Ok(())
    }

    fn apply(&mut self, ops: Vec<Operation>) -> Vec<Result<Applied, BackendError>> {
        let n = ops.len();
        let all_failed = |e: BackendError| (0..n).map(|_| Err(e.clone())).collect();
        let Some(store) = self.store.as_mut() else {
            return all_failed(StoreError::ReadOnly.into());
        };
        // The first write of a new organization creates it (with its built-in roles).
        if let Err(e) = store.ensure_organization(&self.organization, clock::now()) {
            return all_failed(e.into());
        }
        match store.apply(&self.organization, &self.actor, &ops, clock::now()) {
            Ok(results) => results
                .into_iter()
                .map(|r| r.map(|()| Applied::Done).map_err(BackendError::from))
                .collect(),
            Err(e) => all_failed(e.into()),
        }
    }

    fn verify(&mut self, secret: &str) -> Result<Verification, BackendError> {
        match &self.store {
            Some(store) => Ok(store.verify(secret, clock::now())?),
            None => Err(BackendError::Setup(format!(
                "organization file {} does not exist; run `svcacct apply` first",
                self.path.display()
            ))),
        }
    }

    fn last_changes(
        &mut self,
        objects: &[crate::address::Address],
    ) -> Result<Option<std::collections::BTreeMap<crate::address::Address, super::LastChange>>, BackendError>
    {
        let Some(store) = &self.store else {
            return Ok(Some(Default::default()));
        };
        let wanted: std::collections::BTreeSet<String> =
            objects.iter().map(ToString::to_string).collect();
        Ok(Some(
            store
                .last_changes(&self.organization)?
                .into_iter()
                .filter(|r| wanted.contains(&r.target))
                .filter_map(|r| {
                    Some((
                        r.target.parse().ok()?,
                        super::LastChange {
                            time: clock::rfc3339(r.time),
                            actor: r.actor,
                            action: r.action,
                        },
                    ))
                })
                .collect(),
        ))
    }

    fn describe(&self) -> String {
        format!(
            "local organization {} in {}",
            self.organization,
            self.path.display()
        )
    }
}

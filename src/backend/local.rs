//! The `local` backend: an organization in an embedded SQLite file.
//!
//! The apply lock is the same lease (a row in `leases`) a `svcacct serve` on the file takes
//! for an HTTP apply, so a local apply and a served one on one file exclude each other, and
//! every local write is checked against it in its own transaction. The lease has a time to
//! live that a thread renews while the apply runs. A local apply also holds an advisory lock
//! on `<file>.lock` for as long as its lease lives; the kernel releases that lock when the
//! process dies, so the next local apply knows a live local lease it finds is a dead one's
//! and takes it over at once. A server waits for such a lease to expire (its TTL).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::capabilities::SVCACCT_STORE;
use super::{Applied, Backend, BackendConfig, BackendError, Capabilities, Operation, Section};
use crate::clock;
use crate::model::LiveOrganization;
use crate::model::Verification;
use crate::store::{Acquired, Store, StoreError};

/// How long a local apply's lease lives unless renewed; it is renewed at a third of that.
/// Also how long a server waits on the lease of a local apply that was killed.
const LEASE_TTL_SECS: u64 = 30;

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
    lock: Option<Held>,
    actor: String,
}

/// The apply lock while it is held: the lease, its renewer, and the file lock.
struct Held {
    lease_id: String,
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<JoinHandle<()>>,
    /// Kept open (so locked) for as long as the lease lives.
    _file: File,
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

    /// The advisory lock on `<file>.lock`, waiting up to `wait`; it names its holder for the
    /// message another local apply prints while waiting.
    fn lock_file(&self, owner: &str, wait: Duration) -> Result<File, BackendError> {
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
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(
            file,
            "{owner}, pid {}, since {}",
            std::process::id(),
            clock::now()
        );
        Ok(file)
    }

    /// Ends the lease (and with it the file lock), if held.
    fn unlock(&mut self) {
        let Some(mut held) = self.lock.take() else {
            return;
        };
        drop(held.stop.take());
        if let Some(t) = held.renewer.take() {
            let _ = t.join();
        }
        if let Some(store) = self.store.as_mut() {
            let now = time::OffsetDateTime::now_utc();
            if let Err(e) = store.release_lease(&self.organization, &held.lease_id, now) {
                // It expires on its own within its TTL.
                tracing::warn!(error = %e, "cannot release the apply lease");
            }
        }
    }

    /// The open store, if there is a file.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }
}

impl Drop for LocalBackend {
    fn drop(&mut self) {
        self.unlock();
    }
}

/// Renews a local apply's lease at a third of its lifetime until told to stop, on a
/// connection of its own (the apply's is busy applying).
fn renew(path: &Path, org: &str, lease_id: &str, stopped: &mpsc::Receiver<()>) {
    let mut store = match Store::open(path) {
        Ok(store) => store,
        Err(e) => {
            tracing::warn!(error = %e, "cannot open the store to renew the apply lease");
            return;
        }
    };
    while let Err(mpsc::RecvTimeoutError::Timeout) =
        stopped.recv_timeout(Duration::from_secs(LEASE_TTL_SECS / 3))
    {
        let now = time::OffsetDateTime::now_utc();
        match store.renew_lease(org, lease_id, LEASE_TTL_SECS, now) {
            Ok(Some(_)) => {}
            // Lost (the process stalled past its TTL): every write of this apply is now
            // checked against whoever holds the organization instead.
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, "cannot renew the apply lease"),
        }
    }
}

impl Backend for LocalBackend {
    fn snapshot(&mut self) -> Result<LiveOrganization, BackendError> {
        let live = match &self.store {
            Some(store) => store.snapshot(&self.organization)?,
            None => None,
        };
        Ok(live.unwrap_or_else(|| LiveOrganization::new(&self.organization)))
    }

    fn lock(&mut self, owner: &str, wait: Duration) -> Result<(), BackendError> {
        let start = Instant::now();
        let file = self.lock_file(owner, wait)?;
        let Some(store) = self.store.as_mut() else {
            return Err(StoreError::ReadOnly.into());
        };
        let owner = format!("{owner} (local, pid {})", std::process::id());
        // Leases live in real time, whatever SVCACCT_NOW says.
        let lease = loop {
            let now = time::OffsetDateTime::now_utc();
            match store.acquire_local_lease(&self.organization, &owner, LEASE_TTL_SECS, now)? {
                Acquired::Granted(lease) => break lease,
                Acquired::Held(held) if start.elapsed() >= wait => {
                    return Err(BackendError::Locked {
                        holder: format!("{} until {}", held.owner, clock::rfc3339(held.expires_at)),
                        waited_secs: start.elapsed().as_secs(),
                    });
                }
                Acquired::Held(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        };
        let (stop, stopped) = mpsc::channel::<()>();
        let renewer = {
            let (path, org, id) = (
                self.path.clone(),
                self.organization.clone(),
                lease.lease_id.clone(),
            );
            std::thread::spawn(move || renew(&path, &org, &id, &stopped))
        };
        self.lock = Some(Held {
            lease_id: lease.lease_id,
            stop: Some(stop),
            renewer: Some(renewer),
            _file: file,
        });
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
        let lease = self.lock.as_ref().map(|held| held.lease_id.as_str());
        match store.apply_leased(&self.organization, &self.actor, &ops, clock::now(), lease) {
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

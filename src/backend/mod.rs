//! Backends: where an organization lives. One trait, held to one conformance suite; the plan
//! reads a snapshot through it and the apply sends it batches of operations.

pub mod capabilities;

pub use http::HttpBackend;
pub use local::LocalBackend;
use std::path::Path;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{LiveOrganization, Verification};
pub use crate::operation::{
    Applied, IssuedSecret, KeyIssue, NewKey, Operation, Replaces, Rotation,
};
pub use crate::plan::LastChange;
use crate::store::StoreError;
pub use capabilities::{Capabilities, Fields, Minting, Vocabulary};

/// Why a backend call failed. The refusals read the same whichever backend made them, so a
/// plan or an apply reads the same on every backend; the failures keep their cause.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error("{target} is protected; set `protect: false` on it and apply before deleting it")]
    Protected { target: String },
    #[error("{target} does not exist")]
    NotFound { target: String },
    #[error("{target}: {message}")]
    Conflict { target: String, message: String },
    #[error("the organization is locked by another apply ({holder}); waited {waited_secs}s")]
    Locked { holder: String, waited_secs: u64 },
    #[error(transparent)]
    Store(StoreError),
    /// Settings that cannot work, found before any request (a missing token, say).
    #[error("{0}")]
    Setup(String),
    #[error("cannot reach {url}")]
    Unreachable {
        url: String,
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// An answer that is not what the API documents.
    #[error("{what}: the server's answer is not valid")]
    Protocol {
        what: String,
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// An error the server reported that the plan has no better word for.
    #[error("{target}: {message} ({code})")]
    Server {
        target: String,
        code: String,
        message: String,
    },
}

impl BackendError {
    /// The message with every cause after it, for a one-line report of a failed change.
    pub fn report(&self) -> String {
        let mut line = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            line.push_str(": ");
            line.push_str(&c.to_string());
            cause = c.source();
        }
        line
    }
}

impl From<StoreError> for BackendError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Protected { target } => BackendError::Protected { target },
            StoreError::NotFound { target } => BackendError::NotFound { target },
            StoreError::Conflict { target, message } => BackendError::Conflict { target, message },
            StoreError::Locked { .. } => BackendError::Locked {
                holder: e.to_string(),
                waited_secs: 0,
            },
            other => BackendError::Store(other),
        }
    }
}

/// Where an organization lives: the plan reads it, the apply writes it.
pub trait Backend: Send {
    /// The live organization. One that does not exist yet is a new, empty one at revision 0.
    fn snapshot(&mut self) -> Result<LiveOrganization, BackendError>;

    /// Takes the organization's apply lock, waiting up to `wait` for another apply to end.
    fn lock(&mut self, owner: &str, wait: std::time::Duration) -> Result<(), BackendError>;

    /// Applies a batch of independent operations; one result each, in order. A failed one
    /// does not stop the others. A backend that mints keys answers an `IssueKey` with the
    /// secret it made.
    fn apply(&mut self, ops: Vec<Operation>) -> Vec<Result<Applied, BackendError>>;

    /// Reads only the objects a saved plan's `changes` touch, for a backend without a
    /// revision: an organization that holds each of them that still exists, with at least
    /// the fields its change writes as [`Backend::snapshot`] shows them, and the backend
    /// ready to apply those changes. The apply then checks the plan object by object
    /// (optimistically: what it does not change may have moved) instead of reading
    /// everything again. `None` (the default, and for changes the backend cannot read
    /// alone): the apply reads everything and plans again.
    fn snapshot_of(
        &mut self,
        _changes: &[crate::plan::Change],
    ) -> Result<Option<crate::model::LiveOrganization>, BackendError> {
        Ok(None)
    }

    /// Who a presented key belongs to and what it may do, right now.
    fn verify(&mut self, secret: &str) -> Result<Verification, BackendError>;

    /// How many network requests the backend has made, where it makes any.
    fn requests(&self) -> Option<u64> {
        None
    }

    /// The last live change to each of `objects` that has one, from the backend's audit log;
    /// `None` for a backend that keeps no audit log (the default: such a backend needs
    /// nothing more).
    fn last_changes(
        &mut self,
        _objects: &[crate::address::Address],
    ) -> Result<Option<std::collections::BTreeMap<crate::address::Address, LastChange>>, BackendError>
    {
        Ok(None)
    }

    /// How the backend calls itself in messages.
    fn describe(&self) -> String;

    /// Caps the requests a minute from now on, for a backend whose server rate-limits the
    /// account as a whole. Others ignore it.
    fn set_request_budget(&mut self, _per_minute: u32) {}
}

/// One backend's own section of the config (everything under `backend:` but `type`).
pub trait Section {
    /// What the backend can store and do.
    fn capabilities(&self) -> &'static Capabilities;
    /// Fills in defaults and resolves relative paths against the config's directory. An
    /// error is a sentence the config diagnostic prints at the section.
    fn resolve(&mut self, base_dir: &Path, organization: &str) -> Result<(), String>;
    /// The section as an exported config says it; `relative` writes a path relative to the
    /// exported file.
    fn exported(&self, relative: &dyn Fn(&Path) -> String) -> BackendConfig;
    /// Opens the backend. `for_write` is false for plan and export, which must never create
    /// or change anything.
    fn open(&self, organization: &str, for_write: bool) -> Result<Box<dyn Backend>, BackendError>;
    /// Where the backend sends a token; `None` for a backend that sends none. Every check on
    /// where credentials may go reads this, so a new backend with a server gets them all.
    fn endpoint(&self) -> Option<Endpoint<'_>> {
        None
    }
    /// Points a backend that has an endpoint at `url` (the URL the run pins).
    fn set_url(&mut self, _url: &str) {}
    /// Where the organization lives, as a saved plan records it to refuse being applied
    /// elsewhere: the endpoint's URL by default, a backend without one says (a file path).
    /// Never a token.
    fn location(&self) -> String {
        self.endpoint()
            .and_then(|e| e.url)
            .unwrap_or_default()
            .to_string()
    }
}

/// Where a backend sends its token: the server, and the variable the token is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint<'a> {
    /// `None` until the config or the run's pin names one.
    pub url: Option<&'a str>,
    pub token_env: &'a str,
}

/// Declares the backends: their modules, the config's tagged `backend:` section and its
/// dispatch. Adding a backend is one line here and one module. A line may carry a `cfg` (a
/// backend only some builds have) and a `path` (a module kept elsewhere, such as the tests').
macro_rules! backends {
    ($(
        $(#[doc = $doc:literal])*
        $(#[cfg($cfg:meta)])?
        $(#[schemars($schemars:meta)])?
        $(#[path = $path:literal])?
        $variant:ident($module:ident),
    )*) => {
        $(
            $(#[cfg($cfg)])?
            $(#[path = $path])?
            mod $module;
        )*

        /// Where the organization lives: `type` names the backend, the rest is its settings.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(tag = "type", rename_all = "lowercase")]
        pub enum BackendConfig {
            $(
                $(#[doc = $doc])*
                $(#[cfg($cfg)])?
                $(#[schemars($schemars)])?
                $variant($module::Settings),
            )*
        }

        impl BackendConfig {
            /// The backend's `type` as a config names it.
            pub fn kind(&self) -> &'static str {
                match self {
                    $($(#[cfg($cfg)])? BackendConfig::$variant(_) => stringify!($module),)*
                }
            }
            fn section(&self) -> &dyn Section {
                match self {
                    $($(#[cfg($cfg)])? BackendConfig::$variant(s) => s,)*
                }
            }
            fn section_mut(&mut self) -> &mut dyn Section {
                match self {
                    $($(#[cfg($cfg)])? BackendConfig::$variant(s) => s,)*
                }
            }
        }
    };
}

backends! {
    /// An embedded SQLite organization file.
    Local(local),
    /// A `svcacct serve` server.
    Http(http),
    /// A Prefect Cloud account: bots, workspace roles and workspace access.
    Prefect(prefect),
    /// A test backend kept with the tests: server-minted keys, one per account, no revision.
    #[cfg(feature = "test-hooks")]
    #[schemars(skip)]
    #[path = "../../tests/backends/memory.rs"]
    Memory(memory),
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig::Local(local::Settings::default())
    }
}

impl BackendConfig {
    /// What the configured backend can store and do.
    pub fn capabilities(&self) -> &'static Capabilities {
        self.section().capabilities()
    }

    /// The backend a run pinned to `url` uses when the config names none.
    pub fn at_url(url: &str) -> BackendConfig {
        BackendConfig::Http(http::Settings {
            url: Some(url.to_string()),
            token_env: None,
        })
    }

    /// See [`Section::endpoint`].
    pub fn endpoint(&self) -> Option<Endpoint<'_>> {
        self.section().endpoint()
    }

    /// The backend's identity for saved plans: its kind and [`Section::location`].
    pub fn identity(&self) -> String {
        format!("{} {}", self.kind(), self.section().location())
    }

    /// See [`Section::set_url`].
    pub fn set_url(&mut self, url: &str) {
        self.section_mut().set_url(url)
    }

    /// See [`Section::resolve`].
    pub fn resolve(&mut self, base_dir: &Path, organization: &str) -> Result<(), String> {
        self.section_mut().resolve(base_dir, organization)
    }

    /// See [`Section::exported`].
    pub fn exported(&self, relative: &dyn Fn(&Path) -> String) -> BackendConfig {
        self.section().exported(relative)
    }

    /// Opens the backend for `organization`; `for_write` is false for plan and export.
    pub fn open(
        &self,
        organization: &str,
        for_write: bool,
    ) -> Result<Box<dyn Backend>, BackendError> {
        self.section().open(organization, for_write)
    }
}

//! What the plan knows of the key files. The diff asks this trait instead of the disk, so it
//! is a pure function of its inputs and can be tested without one; [`SecretsDir`] answers from
//! a secrets directory.

use std::path::Path;

use crate::secrets::{key_file_path, pending_key_file_path};

/// The key files' state, as the diff needs it.
pub trait KeyFiles {
    /// Whether the files can be checked here at all (a CI job that did not check out the
    /// secrets directory cannot, and must not read that as "every file is missing").
    fn available(&self) -> bool;
    /// Whether the live key `id` of `account`/`key` has its file. A pending file of that id
    /// counts: the next apply moves it into place.
    fn has_file(&self, account: &str, key: &str, id: &str) -> bool;
    /// How messages name where the files are.
    fn describe(&self) -> String;
}

/// The key files of a secrets directory on disk.
pub struct SecretsDir<'a>(pub &'a Path);

impl KeyFiles for SecretsDir<'_> {
    fn available(&self) -> bool {
        self.0.is_dir()
    }

    fn has_file(&self, account: &str, key: &str, id: &str) -> bool {
        key_file_path(self.0, account, key).exists()
            || pending_key_file_path(self.0, account, key, id).exists()
    }

    fn describe(&self) -> String {
        self.0.display().to_string()
    }
}

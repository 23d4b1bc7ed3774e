//! Secrets issued during this apply, kept in memory (zeroized on drop) so that delivering a
//! new key needs no identity: a later apply, after a crash or a failed target, decrypts the
//! key file instead.

use std::collections::HashMap;
use std::sync::Mutex;

use zeroize::Zeroizing;

/// A key id and its secret.
type Issued = (String, Zeroizing<String>);

/// The secrets this process issued, by `(account, key)`, with their key ids.
#[derive(Default)]
pub struct Minted(Mutex<HashMap<(String, String), Issued>>);

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Minted(..)")
    }
}

impl Minted {
    /// Keeps the secret of key `id` of `account`/`key`.
    pub fn keep(&self, account: &str, key: &str, id: &str, secret: &str) {
        self.0.lock().expect("no panics while held").insert(
            (account.to_string(), key.to_string()),
            (id.to_string(), Zeroizing::new(secret.to_string())),
        );
    }

    /// The secret of key `id`, if this process issued it.
    pub fn get(&self, account: &str, key: &str, id: &str) -> Option<Zeroizing<String>> {
        self.0
            .lock()
            .expect("no panics while held")
            .get(&(account.to_string(), key.to_string()))
            .filter(|(i, _)| i == id)
            .map(|(_, s)| s.clone())
    }
}

//! Kill points inside the key files' own protocol, for the crash tests: die after a key file
//! is promoted but before its metadata is, or before the metadata it replaces is removed,
//! part-way through a re-encryption, and at each step of a prune (which can also be made to
//! fail a move). They sit here rather than with apply's hooks so the secrets layer imports
//! nothing above it.
//! Compiled only with the `test-hooks` feature; a release build has none.

#[cfg(feature = "test-hooks")]
mod hooks {
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// `SVCACCT_TEST_ABORT_BETWEEN_RENAMES`: die after a key file is promoted, before its
    /// metadata is.
    pub fn between_renames() {
        if std::env::var_os("SVCACCT_TEST_ABORT_BETWEEN_RENAMES").is_some() {
            std::process::abort();
        }
    }

    /// `SVCACCT_TEST_ABORT_BEFORE_REMOVING_REPLACED`: die once a key's new metadata is in
    /// place, before the metadata of the key it replaces is removed.
    pub fn before_removing_replaced() {
        if std::env::var_os("SVCACCT_TEST_ABORT_BEFORE_REMOVING_REPLACED").is_some() {
            std::process::abort();
        }
    }

    static RENAMED: AtomicUsize = AtomicUsize::new(0);

    /// `SVCACCT_TEST_ABORT_AFTER_REENCRYPT_RENAMES=N`: die once N re-encrypted files are in
    /// place.
    pub fn reencrypt_renamed() {
        let limit = std::env::var("SVCACCT_TEST_ABORT_AFTER_REENCRYPT_RENAMES")
            .ok()
            .and_then(|v| v.parse::<usize>().ok());
        if limit.is_some_and(|n| RENAMED.fetch_add(1, Ordering::SeqCst) + 1 >= n) {
            std::process::abort();
        }
    }

    static PRUNE_MOVES: AtomicUsize = AtomicUsize::new(0);

    /// Before each file a prune moves aside: `SVCACCT_TEST_FAIL_PRUNE_MOVE=N` fails the Nth
    /// move (as a file system refusing it would), `SVCACCT_TEST_ABORT_PRUNE_MOVE=N` dies there.
    pub fn prune_move() -> std::io::Result<()> {
        let n = PRUNE_MOVES.fetch_add(1, Ordering::SeqCst) + 1;
        let at = |var: &str| {
            std::env::var(var)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .is_some_and(|limit| n == limit)
        };
        if at("SVCACCT_TEST_ABORT_PRUNE_MOVE") {
            std::process::abort();
        }
        if at("SVCACCT_TEST_FAIL_PRUNE_MOVE") {
            return Err(std::io::Error::other(
                "injected failure (SVCACCT_TEST_FAIL_PRUNE_MOVE)",
            ));
        }
        Ok(())
    }

    /// `SVCACCT_TEST_ABORT_PRUNE_COMMITTED`: die once a prune has committed, before it deletes.
    pub fn prune_committed() {
        if std::env::var_os("SVCACCT_TEST_ABORT_PRUNE_COMMITTED").is_some() {
            std::process::abort();
        }
    }
}

#[cfg(not(feature = "test-hooks"))]
mod hooks {
    pub fn between_renames() {}

    pub fn before_removing_replaced() {}

    pub fn reencrypt_renamed() {}

    pub fn prune_move() -> std::io::Result<()> {
        Ok(())
    }

    pub fn prune_committed() {}
}

pub(crate) use hooks::*;

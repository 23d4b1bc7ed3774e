//! Fault injection for the crash tests: die between a durable key file and its registration,
//! lose the answers of a registration, die between a registration and the file's promotion.
//! (The key files' own kill points live in `secrets::faults`, below this layer.)
//! Compiled only with the `test-hooks` feature (which `scripts/test` turns on), so a release
//! build has no hook, no environment variable it reads and no way to abort on request.

#[cfg(feature = "test-hooks")]
mod hooks {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::backend::BackendError;
    use crate::operation::Applied;

    static WRITTEN: AtomicUsize = AtomicUsize::new(0);

    /// `SVCACCT_TEST_ABORT_AFTER_KEY_FILES=N`: abort once N key files are durable.
    pub fn key_file_written() {
        let limit = std::env::var("SVCACCT_TEST_ABORT_AFTER_KEY_FILES")
            .ok()
            .and_then(|v| v.parse::<usize>().ok());
        if limit.is_some_and(|n| WRITTEN.fetch_add(1, Ordering::SeqCst) + 1 >= n) {
            std::process::abort();
        }
    }

    /// `SVCACCT_TEST_LOSE_REGISTRATION_ANSWERS`: the backend registered the keys, but the
    /// answers never arrived.
    pub fn registered(
        results: Vec<Result<Applied, BackendError>>,
    ) -> Vec<Result<Applied, BackendError>> {
        if std::env::var_os("SVCACCT_TEST_LOSE_REGISTRATION_ANSWERS").is_none() {
            return results;
        }
        results
            .into_iter()
            .map(|_| Err(BackendError::Setup("test hook: the answer was lost".into())))
            .collect()
    }

    /// `SVCACCT_TEST_ABORT_AFTER_REGISTER`: die between a registration and the promotion.
    pub fn before_promotion() {
        if std::env::var_os("SVCACCT_TEST_ABORT_AFTER_REGISTER").is_some() {
            std::process::abort();
        }
    }

    /// `SVCACCT_TEST_ABORT_BEFORE_REVOCATION`: die as the key revocations are about to go.
    pub fn before_revocation() {
        if std::env::var_os("SVCACCT_TEST_ABORT_BEFORE_REVOCATION").is_some() {
            std::process::abort();
        }
    }
}

#[cfg(not(feature = "test-hooks"))]
mod hooks {
    use crate::backend::BackendError;
    use crate::operation::Applied;

    pub fn key_file_written() {}

    pub fn registered(
        results: Vec<Result<Applied, BackendError>>,
    ) -> Vec<Result<Applied, BackendError>> {
        results
    }

    pub fn before_promotion() {}

    pub fn before_revocation() {}
}

pub use hooks::*;

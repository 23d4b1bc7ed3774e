//! Fault injection for the crash tests: die right after a target acknowledged a key, before
//! the acknowledgement is recorded. Only with the `test-hooks` feature.

#[cfg(feature = "test-hooks")]
pub fn delivered() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static DELIVERED: AtomicUsize = AtomicUsize::new(0);
    // `SVCACCT_TEST_ABORT_AFTER_DELIVERIES=N`: abort once N targets acknowledged.
    let limit = std::env::var("SVCACCT_TEST_ABORT_AFTER_DELIVERIES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    if limit.is_some_and(|n| DELIVERED.fetch_add(1, Ordering::SeqCst) + 1 >= n) {
        std::process::abort();
    }
}

#[cfg(not(feature = "test-hooks"))]
pub fn delivered() {}

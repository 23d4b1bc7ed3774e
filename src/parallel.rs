//! Work spread over a few threads: each takes the next item of a shared list until none is
//! left, so items of uneven cost keep every thread busy.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `work` on every item, on up to `threads` threads (at least one).
pub fn on_threads<T: Sync>(threads: usize, items: &[T], work: impl Fn(&T) + Sync) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                    work(item);
                }
            });
        }
    });
}

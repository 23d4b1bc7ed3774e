//! Work spread over a few threads: each takes the next item of a shared list until none is
//! left, so items of uneven cost keep every thread busy.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How many threads a big piece of work is spread over: the machine's cores, at most eight
/// (beyond that the work here waits on memory and the disk, not on cores).
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

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

/// `work` on consecutive slices of `items` (about `per_thread` slices for each of up to
/// `threads` threads, and no fewer than `min_slice` items in one), on those threads; the
/// results come back in the items' order.
pub fn map_slices<T: Sync, R: Send>(
    threads: usize,
    items: &[T],
    (per_thread, min_slice): (usize, usize),
    work: impl Fn(&[T]) -> R + Sync,
) -> Vec<R> {
    let per_slice = items
        .len()
        .div_ceil(threads.max(1) * per_thread.max(1))
        .max(min_slice.max(1));
    let slots: Vec<_> = items
        .chunks(per_slice)
        .map(|slice| (slice, std::sync::Mutex::new(None)))
        .collect();
    on_threads(threads, &slots, |(slice, slot)| {
        *slot.lock().expect("no thread panics while holding it") = Some(work(slice));
    });
    slots
        .into_iter()
        .filter_map(|(_, slot)| {
            slot.into_inner()
                .expect("no thread panics while holding it")
        })
        .collect()
}

//! The process's allocator: jemalloc, with its background purge turned on
//! for the long-running commands (`controller`, `webhook`, `dashboard`).
//!
//! Why not the system's: glibc's malloc keeps the pages it has freed unless
//! they sit at the top of its heap. A controller that held a burst of 5,000
//! runs in its caches was measured (heaptrack) holding 7.9 MB of live heap
//! once every run was deleted, yet its RSS stayed at 71 MB: the burst's
//! high-water mark. jemalloc hands dirty pages back to the system after its
//! decay time (`dirty_decay_ms`, 10 s by default), and with background
//! threads it does so while the process is idle, not only on its next
//! allocation (jemalloc's manual, "background_thread" and
//! "opt.dirty_decay_ms": <https://jemalloc.net/jemalloc.3.html>).

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Turns on jemalloc's background threads, which purge freed pages while
/// the process waits. A failure costs only memory, so it is logged and
/// the command goes on.
pub fn purge_in_background() {
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!("jemalloc's background purge is off: {e}");
    }
}

#[cfg(test)]
mod tests {
    /// The allocator is jemalloc and its background purge can be turned
    /// on: with the system's allocator, or a jemalloc built without
    /// background-thread support, the setting reads back false.
    #[test]
    fn the_background_purge_is_on_once_asked_for() {
        super::purge_in_background();
        assert_eq!(tikv_jemalloc_ctl::background_thread::read(), Ok(true));
    }
}

//! The global sequence counter: the order of events across threads.
//!
//! Invariant: every event that touches a block (allocation, free, realloc) takes its number
//! while the thread's buffer lock is held and — for frees — before the real `free` runs, so the
//! block's address cannot be handed out again and recorded with a smaller number than its free.
//! The writer orders events by these numbers; `SeqCst` makes the numbering agree with the
//! happens-before order of the allocator calls on different threads.

use std::sync::atomic::{AtomicU64, Ordering};

/// Next sequence number. Global across sessions so a forked child continues the order.
pub static SEQ: AtomicU64 = AtomicU64::new(1);

/// Takes the next sequence number.
#[inline(always)]
pub fn next() -> u64 {
    SEQ.fetch_add(1, Ordering::SeqCst)
}

/// The next number to be handed out (every event numbered below it has been taken).
#[inline]
pub fn peek(order: Ordering) -> u64 {
    SEQ.load(order)
}

//! The global sequence counter: the order of events across threads.
//!
//! Invariant: every event that touches a block (allocation, free, realloc) takes its number
//! while the thread's buffer lock is held and — for frees — before the real `free` runs, so the
//! block's address cannot be handed out again and recorded with a smaller number than its free.
//! The writer orders events by these numbers; `SeqCst` makes the numbering agree with the
//! happens-before order of the allocator calls on different threads.
//!
//! Frees do not advance the counter: a free takes the current value ([`current`], a plain load
//! on x86 where [`next`] is a locked read-modify-write) and sorts before the event that takes the
//! same number ([`crate::record::order`]'s keys). That keeps the order exact: a block freed on
//! one thread and handed out again on another is allocated with a number at least the free's
//! (the allocation's read-modify-write comes after the free's load in happens-before order, so
//! reads a value at least as new), and an equal number sorts the free first. A thread's own
//! numbers never decrease; a timeline sample takes a number of its own ([`next`]), so the frees
//! before it sort before it. The writer's watermark argument (every event numbered below `W`
//! is in a buffer once the thread's lock was taken after reading `W`) holds for loads as for
//! read-modify-writes.

use std::sync::atomic::{AtomicU64, Ordering};

/// Next sequence number. Global across sessions so a forked child continues the order.
pub static SEQ: AtomicU64 = AtomicU64::new(1);

/// Takes the next sequence number.
#[inline(always)]
pub fn next() -> u64 {
    SEQ.fetch_add(1, Ordering::SeqCst)
}

/// The number a free takes: the current value, not advanced (see the module's invariant).
#[inline(always)]
pub fn current() -> u64 {
    SEQ.load(Ordering::SeqCst)
}

/// The next number to be handed out (every event numbered below it has been taken).
#[inline]
pub fn peek(order: Ordering) -> u64 {
    SEQ.load(order)
}

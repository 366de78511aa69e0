//! Small primitives the recorder and the unwinder share: a clock, a spin lock, the owner lock
//! of thread buffers, zeroed memory mapped writable and a mutex helper. Nothing here imports
//! from `record` or `unwind`, so both can use it without an import cycle; only `mem` allocates
//! (what its callers ask for).

pub mod clock;
pub mod mem;
pub mod owner_lock;
pub mod spin;

use std::sync::Mutex;

/// Locks a mutex, ignoring poisoning (nothing in the recorder panics while holding one).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

//! A tiny spin lock. Thread buffers use it: the owner takes it on every event and only the
//! writer thread ever contends, briefly, so a futex-based mutex would only add cost.

use std::sync::atomic::{AtomicBool, Ordering};

/// Spin lock without poisoning or allocation. Usable from `pthread_atfork` handlers through
/// [`SpinLock::raw_lock`] / [`SpinLock::raw_unlock`].
#[derive(Debug, Default)]
pub struct SpinLock {
    locked: AtomicBool,
}

/// Waits while `busy` says so: spinning at first, then yielding the processor (the holder may
/// be descheduled on a machine with fewer cores than runnable threads).
#[inline]
pub fn spin_while(busy: impl Fn() -> bool) {
    let mut spins = 0u32;
    while busy() {
        spins += 1;
        if spins < 100 {
            std::hint::spin_loop();
        } else {
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
        }
    }
}

/// Holds a [`SpinLock`] until dropped.
pub struct SpinGuard<'a>(&'a SpinLock);

impl SpinLock {
    /// An unlocked lock.
    pub const fn new() -> SpinLock {
        SpinLock {
            locked: AtomicBool::new(false),
        }
    }

    /// Takes the lock.
    #[inline]
    pub fn lock(&self) -> SpinGuard<'_> {
        self.raw_lock();
        SpinGuard(self)
    }

    /// Takes the lock without a guard; pair with [`SpinLock::raw_unlock`].
    #[inline]
    pub fn raw_lock(&self) {
        if self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        self.lock_contended();
    }

    #[cold]
    fn lock_contended(&self) {
        loop {
            spin_while(|| self.locked.load(Ordering::Relaxed));
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Releases a lock taken with [`SpinLock::raw_lock`].
    #[inline]
    pub fn raw_unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }
}

impl Drop for SpinGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.raw_unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn excludes_concurrent_increments() {
        struct Shared(SpinLock, std::cell::UnsafeCell<u64>);
        // SAFETY: the counter is only touched with the lock held.
        unsafe impl Sync for Shared {}
        let s = Arc::new(Shared(SpinLock::new(), std::cell::UnsafeCell::new(0)));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        let _g = s.0.lock();
                        // SAFETY: the lock is held.
                        unsafe { *s.1.get() += 1 };
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        // SAFETY: all threads joined.
        assert_eq!(unsafe { *s.1.get() }, 40_000);
    }
}

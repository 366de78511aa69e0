//! A lock for data one thread (its owner) uses all the time and other threads only rarely: a
//! thread's event buffer, taken by its thread at every event and by the writer once per pass.
//!
//! With [`membarrier`] available the owner takes and releases it without a locked instruction
//! (an asymmetric Dekker lock): the owner stores "in" and reads "wanted" with only a compiler
//! barrier between them; another thread stores "wanted", makes every running thread of the
//! process execute a full memory barrier (`membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`), then
//! waits for "in" to clear. Either the owner's store was visible before the barrier (the other
//! thread waits for it to leave), or the owner's load comes after its barrier and sees "wanted"
//! (it steps back and waits). A thread that is not running passed a barrier when it was switched
//! out. Without `membarrier` (an old kernel, a seccomp filter) both sides use the spin lock, as
//! every lock does.
//!
//! The locked instruction mattered: on a malloc+free churn it was the largest single cost of the
//! hooks (the first locked instruction of an event waits for all of the event's stores to drain).

use std::sync::atomic::{compiler_fence, AtomicBool, Ordering};

use super::spin::{spin_while, SpinLock};

/// Asks the kernel to let this process use private expedited memory barriers; true when it
/// may. Cheap while the process has one thread; may wait for a grace period otherwise.
pub fn register_membarrier() -> bool {
    // SAFETY: membarrier with a command and zero flags has no memory preconditions.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            libc::MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
            0,
            0,
        ) == 0
    }
}

/// A full memory barrier on every running thread of this process (registered first). When the
/// call fails after a successful registration (a seccomp filter installed later makes it return
/// an error), the same effect comes from a write-protection change on a page of our own: the
/// kernel interrupts every CPU that may cache its translation (every CPU running a thread of the
/// process) to flush it, which is a full barrier there.
fn membarrier() -> bool {
    #[cfg(test)]
    if tests::FORCE_PROTECTION.load(Ordering::Relaxed) {
        return protection_barrier();
    }
    // SAFETY: as above.
    let ok = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            libc::MEMBARRIER_CMD_PRIVATE_EXPEDITED,
            0,
            0,
        ) == 0
    };
    ok || protection_barrier()
}

/// The fallback of [`membarrier`]; false when even it fails.
#[cold]
fn protection_barrier() -> bool {
    use std::sync::atomic::AtomicPtr;
    static PAGE: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let mut page = PAGE.load(Ordering::Acquire);
    if page.is_null() {
        // SAFETY: an anonymous private mapping of one page, owned by this function for the
        // life of the process.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return false;
        }
        page = p.cast();
        // Only the writer thread calls this; a second mapping would only be leaked.
        PAGE.store(page, Ordering::Release);
    }
    // SAFETY: `page` is our mapping of `size` bytes; it is made writable before the write, then
    // read-only, which makes the kernel flush its translation on every CPU of the process.
    unsafe {
        libc::mprotect(page.cast(), size, libc::PROT_READ | libc::PROT_WRITE) == 0 && {
            std::ptr::write_volatile(page, 1);
            libc::mprotect(page.cast(), size, libc::PROT_READ) == 0
        }
    }
}

/// See the module documentation. `asym` (whether the session registered for `membarrier`) must
/// be the same on every call for a given lock.
#[derive(Debug, Default)]
pub struct OwnerLock {
    /// The owner is inside (asymmetric mode only; written by the owner alone).
    inside: AtomicBool,
    /// Another thread holds or wants the lock (asymmetric mode only).
    wanted: AtomicBool,
    /// Serialises the other threads; in plain mode, everybody.
    others: SpinLock,
}

/// Held by the owner until dropped.
pub struct OwnerGuard<'a> {
    lock: &'a OwnerLock,
    asym: bool,
}

/// Held by another thread until dropped.
pub struct OtherGuard<'a> {
    lock: &'a OwnerLock,
    asym: bool,
}

impl OwnerLock {
    /// An unlocked lock.
    pub const fn new() -> OwnerLock {
        OwnerLock {
            inside: AtomicBool::new(false),
            wanted: AtomicBool::new(false),
            others: SpinLock::new(),
        }
    }

    /// Takes the lock as its owner (the one thread the data belongs to).
    #[inline(always)]
    pub fn owner(&self, asym: bool) -> OwnerGuard<'_> {
        if !asym {
            self.others.raw_lock();
        } else {
            self.inside.store(true, Ordering::Relaxed);
            compiler_fence(Ordering::SeqCst);
            if self.wanted.load(Ordering::Acquire) {
                self.owner_wait();
            }
        }
        OwnerGuard { lock: self, asym }
    }

    /// Another thread holds or wants the lock: step back until it is done, then go in.
    #[cold]
    fn owner_wait(&self) {
        loop {
            self.inside.store(false, Ordering::Release);
            spin_while(|| self.wanted.load(Ordering::Acquire));
            self.inside.store(true, Ordering::Relaxed);
            compiler_fence(Ordering::SeqCst);
            if !self.wanted.load(Ordering::Acquire) {
                return;
            }
        }
    }

    /// Takes the lock from another thread than the owner. In asymmetric mode this costs a
    /// `membarrier` system call: take several with [`OwnerLock::others_all`].
    pub fn other(&self, asym: bool) -> OtherGuard<'_> {
        self.others.raw_lock();
        if asym {
            self.wanted.store(true, Ordering::Relaxed);
            if !membarrier() {
                barrier_failed();
            }
            self.wait_owner_out();
        }
        OtherGuard { lock: self, asym }
    }

    /// Takes every lock of `locks` from another thread than their owners, with one
    /// `membarrier` for all of them. The guards release them one by one.
    pub fn others_all<'a>(locks: &[&'a OwnerLock], asym: bool) -> Vec<OtherGuard<'a>> {
        for l in locks {
            l.others.raw_lock();
            if asym {
                l.wanted.store(true, Ordering::Relaxed);
            }
        }
        if asym {
            if !membarrier() {
                barrier_failed();
            }
            for l in locks {
                l.wait_owner_out();
            }
        }
        locks
            .iter()
            .map(|&lock| OtherGuard { lock, asym })
            .collect()
    }

    fn wait_owner_out(&self) {
        spin_while(|| self.inside.load(Ordering::Acquire));
    }
}

/// Neither `membarrier` nor a protection change worked (the session registered, so this takes
/// a kernel that refuses `mprotect` on our own page); going on could corrupt a buffer, so the
/// process stops here.
#[cold]
fn barrier_failed() -> ! {
    let msg = b"tidemark: membarrier failed after registration; aborting\n";
    // SAFETY: writing a static buffer to stderr.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    std::process::abort()
}

impl Drop for OwnerGuard<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        if self.asym {
            self.lock.inside.store(false, Ordering::Release);
        } else {
            self.lock.others.raw_unlock();
        }
    }
}

impl Drop for OtherGuard<'_> {
    fn drop(&mut self) {
        if self.asym {
            self.lock.wanted.store(false, Ordering::Release);
        }
        self.lock.others.raw_unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::UnsafeCell;
    use std::sync::Arc;

    struct Shared {
        lock: OwnerLock,
        value: UnsafeCell<(u64, u64)>,
    }
    // SAFETY: `value` is only touched with `lock` held.
    unsafe impl Sync for Shared {}

    /// The owner increments both halves of a pair under the lock; another thread takes the
    /// lock over and over and must never see the halves differ, nor lose an increment.
    fn exclusion(asym: bool) {
        let s = Arc::new(Shared {
            lock: OwnerLock::new(),
            value: UnsafeCell::new((0, 0)),
        });
        let n = 300_000u64;
        let other = {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                let mut takes = 0u64;
                loop {
                    let _g = s.lock.other(asym);
                    // SAFETY: the lock is held.
                    let v = unsafe { &mut *s.value.get() };
                    assert_eq!(v.0, v.1, "torn pair");
                    v.1 += 1_000_000_000;
                    v.0 += 1_000_000_000;
                    takes += 1;
                    if v.0 % 1_000_000_000 == n {
                        return takes;
                    }
                    drop(_g);
                    std::thread::yield_now();
                }
            })
        };
        for _ in 0..n {
            let _g = s.lock.owner(asym);
            // SAFETY: the lock is held.
            let v = unsafe { &mut *s.value.get() };
            v.0 += 1;
            std::hint::black_box(&mut *v);
            v.1 += 1;
        }
        let takes = other.join().unwrap();
        let _g = s.lock.owner(asym);
        // SAFETY: the lock is held.
        let v = unsafe { *s.value.get() };
        assert_eq!(v.0 % 1_000_000_000, n);
        assert_eq!(v.0 / 1_000_000_000, takes);
        assert_eq!(v.0, v.1);
    }

    /// Makes [`super::membarrier`] use its fallback (for the test below).
    pub(super) static FORCE_PROTECTION: AtomicBool = AtomicBool::new(false);

    #[test]
    fn the_owner_and_another_thread_exclude_each_other() {
        exclusion(false);
        assert!(
            register_membarrier(),
            "membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) refused (Linux 4.14+)"
        );
        exclusion(true);
        // The fallback barrier (a protection change on a page of our own) excludes as well.
        FORCE_PROTECTION.store(true, Ordering::Relaxed);
        exclusion(true);
        FORCE_PROTECTION.store(false, Ordering::Relaxed);
    }
}

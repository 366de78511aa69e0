//! Stack bounds of the current thread.

/// The address range of a thread's stack: `[lo, hi)`. `hi` is the top (stacks grow down).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StackBounds {
    /// Lowest address of the stack mapping.
    pub lo: u64,
    /// One past the highest address.
    pub hi: u64,
}

impl StackBounds {
    /// Bounds of the calling thread from `pthread_getattr_np`. That call allocates (and, on the
    /// main thread, reads `/proc/self/maps`): call it with the recorder's guard held. Returns
    /// empty bounds when they cannot be found; stacks captured then stay empty.
    pub fn current() -> StackBounds {
        // SAFETY: `attr` is initialised by pthread_getattr_np before use and destroyed after;
        // the out-pointers are valid locals.
        unsafe {
            let mut attr: libc::pthread_attr_t = std::mem::zeroed();
            if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
                return StackBounds::default();
            }
            let mut addr: *mut libc::c_void = std::ptr::null_mut();
            let mut size: usize = 0;
            let rc = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
            libc::pthread_attr_destroy(&mut attr);
            if rc != 0 || addr.is_null() {
                return StackBounds::default();
            }
            StackBounds {
                lo: addr as u64,
                hi: addr as u64 + size as u64,
            }
        }
    }

    /// True when the 8 bytes at `addr` lie inside `[lo, hi)`.
    #[inline]
    pub fn contains_word(&self, addr: u64) -> bool {
        addr >= self.lo && addr <= self.hi.wrapping_sub(8) && self.hi >= 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_thread_stack_contains_a_local() {
        let local = 5u64;
        let b = StackBounds::current();
        let a = &local as *const u64 as u64;
        assert!(b.contains_word(a), "{b:x?} does not contain {a:#x}");
        assert!(!b.contains_word(b.hi - 4));
    }
}

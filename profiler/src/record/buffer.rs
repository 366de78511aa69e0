//! Fixed-capacity event buffers, the pool of empty ones, and the queue of full ones.
//!
//! A thread appends records to its current buffer under its lock. A buffer never grows: before
//! each record the thread checks [`Buffer::has_room`], and a full buffer is pushed on the
//! [`FullQueue`] and replaced by one from the [`Pool`]. Only the pool allocates, and only when
//! it is empty.

use super::spin::SpinLock;
use crate::format::Sink;
use std::alloc::Layout;
use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, Ordering};

/// Payload capacity of one buffer.
pub const BUFFER_BYTES: usize = 64 << 10;
/// Room every record needs: the largest event (realloc: tag, six 10-byte varints, kind) with
/// margin, or a thread record with a 16-byte name.
pub const RECORD_MAX_BYTES: usize = 96;

/// One buffer. Allocated raw (never built on the stack: it is 64 KiB).
pub struct Buffer {
    next: *mut Buffer,
    len: usize,
    /// True once a record other than the leading context was appended.
    pub dirty: bool,
    data: [MaybeUninit<u8>; BUFFER_BYTES],
}

impl Buffer {
    /// Allocates an empty buffer; `None` when out of memory.
    pub fn alloc() -> Option<NonNull<Buffer>> {
        let layout = Layout::new::<Buffer>();
        // SAFETY: the layout has non-zero size; the header fields are initialised before use
        // and the payload is only read up to `len`, which counts written bytes.
        unsafe {
            let p = NonNull::new(std::alloc::alloc(layout) as *mut Buffer)?;
            let b = p.as_ptr();
            ptr::addr_of_mut!((*b).next).write(ptr::null_mut());
            ptr::addr_of_mut!((*b).len).write(0);
            ptr::addr_of_mut!((*b).dirty).write(false);
            Some(p)
        }
    }

    /// Frees a buffer from [`Buffer::alloc`].
    ///
    /// # Safety
    /// `b` came from [`Buffer::alloc`] and is not used afterwards.
    pub unsafe fn free(b: NonNull<Buffer>) {
        // SAFETY: per the contract, `b` was allocated with this layout.
        unsafe { std::alloc::dealloc(b.as_ptr().cast(), Layout::new::<Buffer>()) }
    }

    /// Empties the buffer.
    pub fn reset(&mut self) {
        self.len = 0;
        self.dirty = false;
        self.next = ptr::null_mut();
    }

    /// True when one more record fits.
    #[inline]
    pub fn has_room(&self) -> bool {
        self.len + RECORD_MAX_BYTES <= BUFFER_BYTES
    }

    /// True when `bytes` more fit.
    #[inline]
    pub fn has_room_for(&self, bytes: usize) -> bool {
        self.len + bytes <= BUFFER_BYTES
    }

    /// The bytes written so far.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the first `len` bytes were written by `put_u8`.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr().cast::<u8>(), self.len) }
    }
}

impl Sink for Buffer {
    #[inline]
    fn put_u8(&mut self, b: u8) {
        // Callers check `has_room` first; a record that would still overflow is cut, never
        // written past the end.
        if let Some(slot) = self.data.get_mut(self.len) {
            slot.write(b);
            self.len += 1;
        }
    }
}

/// Empty buffers ready for use.
pub struct Pool {
    lock: SpinLock,
    head: UnsafeCell<*mut Buffer>,
    count: UnsafeCell<usize>,
}

// SAFETY: `head` and `count` are only accessed with `lock` held.
unsafe impl Sync for Pool {}
// SAFETY: as above.
unsafe impl Send for Pool {}

/// Spare buffers kept; more are freed.
const POOL_KEEP: usize = 64;

impl Pool {
    /// An empty pool.
    pub const fn new() -> Pool {
        Pool {
            lock: SpinLock::new(),
            head: UnsafeCell::new(ptr::null_mut()),
            count: UnsafeCell::new(0),
        }
    }

    /// An empty buffer: a spare one, or a new allocation. `None` when out of memory.
    pub fn take(&self) -> Option<NonNull<Buffer>> {
        {
            let _g = self.lock.lock();
            // SAFETY: the lock is held; every pooled pointer is a live, reset buffer.
            unsafe {
                let head = *self.head.get();
                if let Some(b) = NonNull::new(head) {
                    *self.head.get() = (*head).next;
                    *self.count.get() -= 1;
                    (*head).next = ptr::null_mut();
                    return Some(b);
                }
            }
        }
        Buffer::alloc()
    }

    /// Returns a buffer (reset here).
    pub fn give(&self, mut b: NonNull<Buffer>) {
        // SAFETY: the caller hands over ownership of a live buffer.
        unsafe { b.as_mut().reset() };
        let _g = self.lock.lock();
        // SAFETY: the lock is held.
        unsafe {
            if *self.count.get() >= POOL_KEEP {
                Buffer::free(b);
                return;
            }
            (*b.as_ptr()).next = *self.head.get();
            *self.head.get() = b.as_ptr();
            *self.count.get() += 1;
        }
    }

    /// Fills the pool up to `n` spare buffers (writer thread, outside the hot path).
    pub fn prefill(&self, n: usize) {
        // SAFETY: reading the count without the lock only decides how many to add.
        let have = unsafe { *self.count.get() };
        for _ in have..n.min(POOL_KEEP) {
            match Buffer::alloc() {
                Some(b) => self.give(b),
                None => break,
            }
        }
    }
}

/// Full buffers waiting for the writer. Pushing is lock-free; only the writer takes, and it
/// takes everything at once, so there is no ABA problem.
pub struct FullQueue {
    head: AtomicPtr<Buffer>,
}

impl FullQueue {
    /// An empty queue.
    pub const fn new() -> FullQueue {
        FullQueue {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Adds a buffer.
    pub fn push(&self, b: NonNull<Buffer>) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: the buffer is owned by the caller until the exchange publishes it.
            unsafe { (*b.as_ptr()).next = head };
            match self.head.compare_exchange_weak(
                head,
                b.as_ptr(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Takes every queued buffer, oldest first, into `out`.
    pub fn take_all(&self, out: &mut Vec<NonNull<Buffer>>) {
        let mut p = self.head.swap(ptr::null_mut(), Ordering::Acquire);
        let start = out.len();
        while let Some(b) = NonNull::new(p) {
            // SAFETY: buffers on the queue are live and now owned by the caller.
            p = unsafe { (*b.as_ptr()).next };
            out.push(b);
        }
        out[start..].reverse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{self, put_uvarint};

    #[test]
    fn buffer_never_writes_past_its_end() {
        let mut b = Buffer::alloc().unwrap();
        // SAFETY: `b` is a live buffer owned by this test.
        let buf = unsafe { b.as_mut() };
        let mut records = 0;
        while buf.has_room() {
            format::put_alloc(
                buf,
                1,
                u64::MAX,
                u64::MAX,
                u64::MAX,
                format::AllocKind::Calloc,
                64,
            );
            records += 1;
        }
        assert!(records > 1000);
        let len = buf.bytes().len();
        assert!(len <= BUFFER_BYTES - RECORD_MAX_BYTES + 64);
        for _ in 0..BUFFER_BYTES {
            put_uvarint(buf, u64::MAX);
        }
        assert_eq!(buf.bytes().len(), BUFFER_BYTES);
        // SAFETY: not used afterwards.
        unsafe { Buffer::free(b) };
    }

    #[test]
    fn pool_and_queue_round_trip() {
        let pool = Pool::new();
        let q = FullQueue::new();
        let mut bufs: Vec<_> = (0..5).map(|_| pool.take().unwrap()).collect();
        for (i, b) in bufs.iter_mut().enumerate() {
            // SAFETY: live buffers owned by the test.
            unsafe { b.as_mut().put_u8(i as u8) };
            q.push(*b);
        }
        let mut out = Vec::new();
        q.take_all(&mut out);
        // SAFETY: live buffers.
        let firsts: Vec<u8> = out
            .iter()
            .map(|b| unsafe { b.as_ref().bytes()[0] })
            .collect();
        assert_eq!(firsts, [0, 1, 2, 3, 4]);
        for b in out {
            pool.give(b);
        }
        let again = pool.take().unwrap();
        // SAFETY: live buffer.
        assert!(unsafe { again.as_ref().bytes().is_empty() });
        pool.give(again);
    }
}

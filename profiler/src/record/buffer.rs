//! Fixed-capacity event buffers, the pool of empty ones, and the queue of full ones.
//!
//! A thread appends records to its current buffer under its lock. A buffer never grows: before
//! each record the thread checks [`Buffer::has_room`], and a full buffer is pushed on the
//! [`FullQueue`] and replaced by one from the [`Pool`]. Only the pool allocates, and only when
//! it is empty.

use crate::format::Sink;
use crate::sys::spin::SpinLock;
use std::alloc::Layout;
use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Payload capacity of one buffer.
pub const BUFFER_BYTES: usize = 64 << 10;
/// Room every record needs: the largest event (realloc: tag, six 10-byte varints, kind) with
/// margin, or a thread record with a 16-byte name.
pub const RECORD_MAX_BYTES: usize = 96;

/// One buffer. Allocated raw (never built on the stack: it is 64 KiB).
pub struct Buffer {
    next: *mut Buffer,
    /// On the full queue, or taken from it and not yet written ([`FullQueue::written`]).
    queued: bool,
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
            ptr::addr_of_mut!((*b).queued).write(false);
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

    /// The room for one record ([`RECORD_MAX_BYTES`]) after what was written, if there is.
    #[inline(always)]
    pub fn room_for_record(&mut self) -> Option<&mut [MaybeUninit<u8>]> {
        self.data.get_mut(self.len..self.len + RECORD_MAX_BYTES)
    }

    /// Counts `n` more bytes as written.
    ///
    /// # Safety
    /// The `n` bytes after those written so far were written (through
    /// [`Buffer::room_for_record`]), `n` at most [`RECORD_MAX_BYTES`].
    #[inline(always)]
    pub unsafe fn commit(&mut self, n: usize) {
        debug_assert!(n <= RECORD_MAX_BYTES && self.len + n <= BUFFER_BYTES);
        self.len += n;
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

/// Buffers queued and not yet written above which a thread that queues one more waits for the
/// writer, when the writer is short of a core (1 MiB of events).
pub const BACKLOG_HIGH: usize = 16;
/// Buffers queued and not yet written above which a thread that queues one more waits for the
/// writer even when the writer has a core of its own (8 MiB of events).
pub const BACKLOG_MAX: usize = 128;
/// The backlog a waiting thread waits for.
pub const BACKLOG_LOW: usize = 4;
/// The longest a thread waits for the writer in all, however the writer gets on.
pub const WAIT_MAX_TOTAL_NS: u64 = 1_000_000_000;
/// Full buffers queued at which a thread wakes the writer (besides its flush interval): one
/// wake-up per buffer cost a C churn ≈ 3% more CPU, in passes of one buffer each.
pub const WAKE_BACKLOG: usize = 8;

/// Full buffers waiting for the writer. Pushing is lock-free; only the writer takes, and it
/// takes everything at once, so there is no ABA problem. It also counts the buffers pushed and
/// not yet written (the recording threads' backlog) and which threads fill buffers, for the
/// backpressure ([`FullQueue::should_wait`]).
pub struct FullQueue {
    head: AtomicPtr<Buffer>,
    backlog: AtomicUsize,
    /// One bit per thread (by tid modulo 64) that queued a buffer since the writer last looked.
    producers: AtomicU64,
    /// The threads filling buffers and the writer outnumber the cores the process may use.
    crowded: AtomicBool,
    /// Bumped each time the backlog falls to [`BACKLOG_LOW`]: the futex word that threads
    /// waiting for the writer sleep on ([`FullQueue::wait_drained`]).
    drained: AtomicU32,
    /// Threads sleeping on `drained` (the writer makes the wake-up call only when there are).
    waiters: AtomicU32,
    /// Bumped by the writer as it gets on ([`FullQueue::note_progress`]).
    progress: AtomicU32,
    /// Cores the process may use (as the writer last counted them; none counted: never
    /// crowded).
    cores: AtomicUsize,
}

impl FullQueue {
    /// An empty queue.
    pub const fn new() -> FullQueue {
        FullQueue {
            head: AtomicPtr::new(ptr::null_mut()),
            backlog: AtomicUsize::new(0),
            producers: AtomicU64::new(0),
            crowded: AtomicBool::new(false),
            drained: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            progress: AtomicU32::new(0),
            cores: AtomicUsize::new(usize::MAX),
        }
    }

    /// Sleeps until the backlog falls to [`BACKLOG_LOW`], calling `nudge` (which wakes the
    /// writer) before each sleep, or until `go_on` says to stop. It gives up when the writer
    /// made no progress for `stall_ns` (something this thread holds may be what the writer
    /// waits for: a delay, never a deadlock) or after [`WAIT_MAX_TOTAL_NS`] in all. One futex
    /// wait per fall, where polling every 100 µs made a burst of 300 threads switch in and out
    /// 134,000 times in 1.4 s (27,000 then; 13% of its samples were in the scheduler). A wait
    /// that ended after a fixed 20 ms whatever the writer did let 300 threads on two cores
    /// outrun a writer that, one runnable thread among hundreds, got a few percent of a core:
    /// the burst's whole recording (2,300 buffers, 250 MB) waited for it in memory and was
    /// written after the program ended, one core idle.
    pub fn wait_drained(&self, stall_ns: u64, go_on: impl Fn() -> bool, nudge: impl Fn()) {
        let start = crate::sys::clock::mono_ns();
        let mut deadline = start.saturating_add(stall_ns);
        let mut progress = self.progress.load(Ordering::SeqCst);
        self.waiters.fetch_add(1, Ordering::SeqCst);
        loop {
            let seen = self.drained.load(Ordering::SeqCst);
            if !self.behind() || !go_on() {
                break;
            }
            let now = crate::sys::clock::mono_ns();
            let p = self.progress.load(Ordering::SeqCst);
            if p != progress {
                progress = p;
                deadline = now.saturating_add(stall_ns);
            }
            if now >= deadline || now - start >= WAIT_MAX_TOTAL_NS {
                break;
            }
            nudge();
            // Until the deadline: the writer wakes the waiting threads when the backlog falls
            // (sleeping at most 1 ms at a time, 300 waiting threads woke 300,000 times a second
            // and took the writer's core). Its progress is looked at when the time is up.
            let ns = deadline.min(start.saturating_add(WAIT_MAX_TOTAL_NS)) - now;
            let timeout = libc::timespec {
                tv_sec: (ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (ns % 1_000_000_000) as libc::c_long,
            };
            // SAFETY: FUTEX_WAIT on a valid aligned u32 with a valid relative timeout; it
            // returns at once when the word is no longer `seen`.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.drained.as_ptr(),
                    libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                    seen,
                    &timeout as *const libc::timespec,
                );
            }
        }
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }

    /// Buffers pushed and not yet written.
    #[inline]
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Called by thread `tid` after it queued a buffer: true when it should wait for the writer:
    /// it is [`BACKLOG_HIGH`] buffers behind and the threads filling buffers leave it no core
    /// of its own, or it is [`BACKLOG_MAX`] buffers behind at all. With a core to itself the
    /// writer mostly catches up on its own, and waiting would only slow the program; but a
    /// program that makes events faster than the writer writes them (3 M blocks live at once:
    /// each free's lookup a cache miss) ran ahead by its whole recording, which waited in
    /// memory (a page fault per 4 KiB of it) to be written after the program ended.
    #[inline]
    pub fn should_wait(&self, tid: u32) -> bool {
        let bit = 1u64 << (tid % 64);
        if self.producers.load(Ordering::Relaxed) & bit == 0 {
            let before = self.producers.fetch_or(bit, Ordering::Relaxed);
            // Crowded as soon as the threads filling buffers and the writer outnumber the
            // cores, not at the writer's next review: a writer short of a core may not get to
            // it for hundreds of milliseconds (one runnable thread among hundreds).
            let n = (before | bit).count_ones() as usize;
            if n + 1 > self.cores.load(Ordering::Relaxed) {
                self.crowded.store(true, Ordering::Relaxed);
            }
        }
        let backlog = self.backlog();
        backlog > BACKLOG_MAX || (backlog > BACKLOG_HIGH && self.crowded.load(Ordering::Relaxed))
    }

    /// True when the writer is short of time: the threads filling buffers crowd the cores, or
    /// more than [`BACKLOG_HIGH`] buffers wait.
    pub fn writer_pressed(&self) -> bool {
        self.crowded.load(Ordering::Relaxed) || self.backlog() > BACKLOG_HIGH
    }

    /// True while a waiting thread should go on waiting.
    #[inline]
    pub fn behind(&self) -> bool {
        self.backlog() > BACKLOG_LOW
    }

    /// The writer, now and then: counts the threads that queued buffers since the last look,
    /// and whether they and the writer outnumber `cores`.
    pub fn review_producers(&self, cores: usize) {
        self.cores.store(cores, Ordering::Relaxed);
        let n = self.producers.swap(0, Ordering::Relaxed).count_ones() as usize;
        self.crowded.store(n + 1 > cores, Ordering::Relaxed);
    }

    /// The writer got on with its work (took a buffer, wrote a slice): a thread waiting for it
    /// waits on.
    #[inline]
    pub fn note_progress(&self) {
        self.progress.fetch_add(1, Ordering::Relaxed);
    }

    /// The writer took `b` (from this queue or not): it leaves the backlog (the waiting threads
    /// are woken when the backlog falls to [`BACKLOG_LOW`]), and the writer's progress is noted.
    /// (Counting a buffer until its events were written instead kept two threads on two cores
    /// waiting, one core idle, while the writer wrote: 1.18× their wall time.)
    pub fn written(&self, mut b: NonNull<Buffer>) {
        self.note_progress();
        // SAFETY: the caller (the writer) owns the buffer.
        let b = unsafe { b.as_mut() };
        if b.queued {
            b.queued = false;
            if self.backlog.fetch_sub(1, Ordering::SeqCst) == BACKLOG_LOW + 1 {
                self.drained.fetch_add(1, Ordering::SeqCst);
                if self.waiters.load(Ordering::SeqCst) > 0 {
                    // SAFETY: FUTEX_WAKE on a valid aligned u32.
                    unsafe {
                        libc::syscall(
                            libc::SYS_futex,
                            self.drained.as_ptr(),
                            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                            i32::MAX,
                        );
                    }
                }
            }
        }
    }

    /// Adds a buffer.
    pub fn push(&self, b: NonNull<Buffer>) {
        // SAFETY: the buffer is owned by the caller until the exchange publishes it.
        unsafe { (*b.as_ptr()).queued = true };
        self.backlog.fetch_add(1, Ordering::Relaxed);
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

    /// Queues `n` new buffers.
    fn push_new(q: &FullQueue, n: usize) {
        for _ in 0..n {
            q.push(Buffer::alloc().unwrap());
        }
    }

    /// Takes every queued buffer and frees it.
    fn free_queued(q: &FullQueue) {
        let mut taken = Vec::new();
        q.take_all(&mut taken);
        for b in taken {
            // SAFETY: the buffers came from `Buffer::alloc` and are not used again.
            unsafe { Buffer::free(b) };
        }
    }

    /// The backlog counts buffers queued and not yet written; a thread is told to wait only
    /// when the backlog is high and the threads filling buffers leave the writer no core.
    #[test]
    fn backpressure_needs_a_backlog_and_a_crowded_writer() {
        let q = FullQueue::new();
        push_new(&q, BACKLOG_HIGH + 2);
        assert_eq!(q.backlog(), BACKLOG_HIGH + 2);
        // One thread filling buffers and the writer fit on two cores.
        assert!(!q.should_wait(7));
        q.review_producers(2);
        assert!(!q.should_wait(7));
        // Two threads and the writer on two cores: the writer is short of a core, as soon as
        // the second thread fills a buffer (not at the writer's next review).
        assert!(q.should_wait(8));
        assert!(q.should_wait(7));
        q.review_producers(2);
        assert!(q.should_wait(7));
        assert!(q.behind());
        // ... and not on four.
        q.review_producers(4);
        assert!(!q.should_wait(7));
        q.review_producers(2);
        let mut taken = Vec::new();
        q.take_all(&mut taken);
        let other = Buffer::alloc().unwrap();
        for &b in taken.iter().chain([&other]) {
            q.written(b);
            // SAFETY: the buffers came from `Buffer::alloc` and are not used again.
            unsafe { Buffer::free(b) };
        }
        // A buffer that never was queued (swapped out by the writer) does not count.
        assert_eq!(q.backlog(), 0);
        assert!(!q.behind());
        assert!(!q.should_wait(7));
        // With a core of its own, a writer [`BACKLOG_MAX`] buffers behind is waited for too.
        q.review_producers(4);
        push_new(&q, BACKLOG_MAX);
        assert!(!q.should_wait(7));
        push_new(&q, 1);
        assert!(q.should_wait(7));
        free_queued(&q);
    }

    /// A waiting thread waits on while the writer gets on (each buffer it takes is progress),
    /// until the backlog falls to [`BACKLOG_LOW`], however long that takes; it gives up only
    /// when the writer makes no progress for the stall time.
    #[test]
    fn a_waiting_thread_waits_while_the_writer_gets_on() {
        let q = std::sync::Arc::new(FullQueue::new());
        let n = BACKLOG_HIGH + 8;
        push_new(&q, n);
        let mut taken = Vec::new();
        q.take_all(&mut taken);
        let addrs: Vec<usize> = taken.iter().map(|b| b.as_ptr() as usize).collect();
        let writer = {
            let q = q.clone();
            std::thread::spawn(move || {
                // One buffer every 5 ms: 120 ms in all, six times the stall time.
                for a in addrs {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    q.written(NonNull::new(a as *mut Buffer).unwrap());
                }
            })
        };
        let stall = 20_000_000;
        q.wait_drained(stall, || true, || {});
        // Not given up after 20 ms: the writer was getting on.
        assert!(q.backlog() <= BACKLOG_LOW, "backlog {}", q.backlog());
        writer.join().unwrap();
        assert_eq!(q.backlog(), 0);
        for b in taken {
            // SAFETY: the buffers came from `Buffer::alloc` and are not used again.
            unsafe { Buffer::free(b) };
        }
        // A writer that makes no progress: the wait ends after the stall time.
        push_new(&q, n);
        let t0 = std::time::Instant::now();
        q.wait_drained(stall, || true, || {});
        assert!(q.behind());
        assert!(t0.elapsed() >= std::time::Duration::from_millis(20));
        free_queued(&q);
    }

    #[test]
    fn buffer_never_writes_past_its_end() {
        let mut b = Buffer::alloc().unwrap();
        // SAFETY: `b` is a live buffer owned by this test.
        let buf = unsafe { b.as_mut() };
        let mut records = 0;
        while buf.has_room() {
            crate::record::wire::put_alloc(
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

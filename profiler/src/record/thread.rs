//! Per-thread recorder state, reached through a pthread key.
//!
//! Invariant (the recursion guard): while `busy` is set, every allocation the thread makes goes
//! straight to the real allocator unrecorded. It is set for the whole time the recorder works
//! on an event — by the [`Busy`] guard [`enter`] returns, which clears it when dropped, so no
//! return path can forget to — and permanently on the writer thread.
//!
//! Signal safety: a signal handler that allocates while its thread is busy re-enters [`enter`],
//! which refuses it (the interrupted event may be half-written) and counts it as dropped. The
//! CPU sampler's `SIGPROF` handler never enters: it writes raw frames into a ring of its own
//! (`record::cpu`) that the writer drains. Nothing reached from the hooks takes a lock a signal
//! handler on the same thread could hold. A thread without state (new, registering,
//! or past its key destructor) is resolved by [`slow_current`] without allocating until the
//! thread's id is in the [`REGISTERING`] set, which makes its own nested allocations pass
//! through.
//!
//! ```text
//!  no state ──first event──► registering ──► registered ──key destructor──► exiting ──► reaped
//!  (tid in REGISTERING while allocating)     (in session.registry)   (in EXITED)   (writer, once
//!                                                                                  the tid is gone)
//! ```

use super::buffer::Buffer;
use super::latency::ThreadLatency;
use super::sampling::Countdown;
use super::seq;
use super::session::Session;
use super::stacks::StackCache;
use super::tidmap::TidMap;
use crate::format;
use crate::sys::owner_lock::{OtherGuard, OwnerLock};
use crate::unwind::{StackBounds, ThreadUnwinder, MAX_FRAMES};
use std::cell::UnsafeCell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// The pthread key holding each thread's `*const ThreadState`; `u32::MAX` until created.
static KEY: AtomicU32 = AtomicU32::new(u32::MAX);

/// Creates the key once per process. Returns false when the system refuses.
pub fn ensure_key() -> bool {
    if KEY.load(Ordering::Acquire) != u32::MAX {
        return true;
    }
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer; the destructor has the required signature.
    if unsafe { libc::pthread_key_create(&mut key, Some(on_thread_exit)) } != 0 {
        return false;
    }
    if KEY
        .compare_exchange(u32::MAX, key, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        // SAFETY: the key was just created by this call and is unused.
        unsafe { libc::pthread_key_delete(key) };
    }
    true
}

/// Threads creating their state (registering) or handing it in (exiting): their allocations
/// are the recorder's own and pass through. Room for every thread id (see [`TidMap`]).
pub struct Registering(TidMap);

impl Registering {
    const fn new() -> Registering {
        Registering(TidMap::new())
    }
    /// Lists `tid`; false when the system refused memory for it.
    pub fn insert(&self, tid: u32) -> bool {
        self.0.set(tid, 1)
    }
    /// True when `tid` is listed.
    pub fn contains(&self, tid: u32) -> bool {
        self.0.get(tid) != 0
    }
    /// Unlists `tid`.
    pub fn remove(&self, tid: u32) {
        self.0.clear_if(tid, 1);
    }
}

/// See [`Registering`].
pub static REGISTERING: Registering = Registering::new();

/// Threads whose key destructor ran but that have not ended yet: their late frees (libc's
/// thread-exit cleanup) are still recorded with their state. Keyed by thread id, with room for
/// every thread id (see [`TidMap`]).
pub struct Exited(TidMap);

impl Exited {
    const fn new() -> Exited {
        Exited(TidMap::new())
    }
    /// Lists `t`; false when the system refused memory for it.
    fn insert(&self, t: &ThreadState) -> bool {
        self.0.set(t.tid, t as *const ThreadState as usize)
    }
    fn find(&self, tid: u32) -> Option<&'static ThreadState> {
        // SAFETY: a state stays allocated while it is listed (the writer unlists before freeing,
        // and only once the thread is gone).
        unsafe { (self.0.get(tid) as *const ThreadState).as_ref() }
    }
    /// Unlists `t` (a newer thread with the same id keeps its entry).
    pub fn remove(&self, t: &ThreadState) {
        self.0.clear_if(t.tid, t as *const ThreadState as usize);
    }
}

/// See [`Exited`].
pub static EXITED: Exited = Exited::new();

/// Cumulative per-thread counts, written only by the owner, read by the writer.
#[derive(Default)]
pub struct Counters {
    /// Allocation records.
    pub alloc_calls: AtomicU64,
    /// Requested bytes of allocation and realloc records.
    pub alloc_bytes: AtomicU64,
    /// Free records.
    pub free_calls: AtomicU64,
    /// Realloc records.
    pub realloc_calls: AtomicU64,
}

impl Counters {
    #[inline]
    pub(crate) fn bump(c: &AtomicU64, by: u64) {
        c.store(
            c.load(Ordering::Relaxed).wrapping_add(by),
            Ordering::Relaxed,
        );
    }
}

/// Fields protected by the thread's lock.
pub struct Locked {
    /// Current buffer (`None` only when out of memory).
    pub buf: Option<NonNull<Buffer>>,
    /// Sequence number of the thread's last event (base of the next delta).
    pub last_seq: u64,
}

/// Fields only the owning thread touches.
pub struct Owned {
    /// The recursion guard.
    pub busy: bool,
    /// Stack capture state (absent on the writer thread).
    pub unwinder: Option<Box<ThreadUnwinder>>,
    /// Stack id cache.
    pub stacks: Option<Box<StackCache>>,
    /// Scratch for captured frames.
    pub frames: [u64; MAX_FRAMES],
    /// Lowest user stack pointer seen.
    pub min_sp: u64,
    /// Name recorded in the last thread record.
    pub name: [u8; 16],
    /// Sampling countdown (sampling mode only).
    pub countdown: Countdown,
}

/// One thread's recorder state.
pub struct ThreadState {
    /// The session this state belongs to; a state of an older session (before `fork`) is
    /// replaced on the thread's next event.
    pub session: *const Session,
    /// Kernel thread id.
    pub tid: u32,
    /// The writer thread (always busy, records nothing).
    pub writer: bool,
    /// Taken by the thread for every append (without a locked instruction when the session
    /// has `membarrier`), and by the writer to swap buffers.
    pub lock: OwnerLock,
    locked: UnsafeCell<Locked>,
    owned: UnsafeCell<Owned>,
    /// Set by the key destructor.
    pub exiting: AtomicBool,
    /// Event counts.
    pub counters: Counters,
    /// Allocator call latency (owner records, writer collects).
    pub latency: ThreadLatency,
    /// Stack bounds at registration.
    pub bounds: StackBounds,
    /// Lowest user stack pointer seen (`Owned::min_sp`, published for the writer, which
    /// writes the stack peak of threads still running when the profile ends).
    pub lowest_sp: AtomicU64,
    /// Set by the owner when it queued a full buffer while the writer was behind: it waits for
    /// the writer when it leaves the hook ([`Busy`]'s drop, the lock released).
    pub behind: AtomicBool,
}

// SAFETY: `locked` is only accessed with `lock` held, `owned` only by the owning thread; the
// rest is immutable or atomic.
unsafe impl Sync for ThreadState {}
// SAFETY: as above.
unsafe impl Send for ThreadState {}

/// Kernel thread id of the caller.
pub fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

fn thread_name() -> [u8; 16] {
    let mut name = [0u8; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes into the buffer.
    unsafe {
        libc::prctl(
            libc::PR_GET_NAME,
            name.as_mut_ptr() as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    name
}

fn name_bytes(name: &[u8; 16]) -> &[u8] {
    let n = name.iter().position(|&b| b == 0).unwrap_or(16);
    &name[..n]
}

impl ThreadState {
    /// The fields under the lock.
    ///
    /// # Safety
    /// The caller holds `self.lock`.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn locked(&self) -> &mut Locked {
        // SAFETY: exclusive per the contract.
        unsafe { &mut *self.locked.get() }
    }

    /// The owner's fields.
    ///
    /// # Safety
    /// Only the owning thread calls this, and never holds two of the returned references.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn owned(&self) -> &mut Owned {
        // SAFETY: exclusive per the contract.
        unsafe { &mut *self.owned.get() }
    }

    /// Ensures room for one record in the current buffer, rotating a full one out. Returns the
    /// buffer, or `None` when no buffer can be had (the event is dropped and counted).
    ///
    /// # Safety
    /// The caller holds `self.lock` (and is busy: rotation may allocate).
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn room(&self, s: &Session) -> Option<&mut Buffer> {
        // SAFETY: the lock is held.
        let l = unsafe { self.locked() };
        let Some(mut b) = l.buf else {
            // No buffer since registration or a failed rotation (out of memory).
            s.note_dropped();
            return None;
        };
        // SAFETY: the current buffer is owned by this state while the lock is held.
        if unsafe { b.as_ref() }.has_room() {
            // SAFETY: as above.
            return Some(unsafe { b.as_mut() });
        }
        // SAFETY: as above.
        unsafe { self.rotate(s) }
    }

    /// Ensures room for `bytes` of records in the current buffer (rotating as [`Self::room`]
    /// does), so records appended next land together. False when no buffer can be had (the
    /// event is dropped and counted).
    ///
    /// # Safety
    /// As [`Self::room`].
    pub unsafe fn reserve(&self, s: &Session, bytes: usize) -> bool {
        // SAFETY: the lock is held.
        let l = unsafe { self.locked() };
        let Some(b) = l.buf else {
            s.note_dropped();
            return false;
        };
        // SAFETY: the current buffer is owned by this state while the lock is held.
        if unsafe { b.as_ref() }.has_room_for(bytes) {
            return true;
        }
        // SAFETY: per the contract.
        unsafe { self.rotate(s) }.is_some()
    }

    /// Notes a user stack pointer: the thread's stack peak is the distance from the top of its
    /// stack to the lowest one. Owner only, with its `Owned::min_sp`.
    #[inline]
    pub fn note_sp(&self, min_sp: &mut u64, sp: u64) {
        if sp != 0 && sp < *min_sp {
            *min_sp = sp;
            self.lowest_sp.store(sp, Ordering::Relaxed);
        }
    }

    /// The stack peak so far, bytes: the top of the stack minus the lowest user stack pointer
    /// seen (0 when none was).
    pub fn stack_peak_bytes(&self) -> u64 {
        let sp = self.lowest_sp.load(Ordering::Relaxed);
        if sp == u64::MAX {
            return 0;
        }
        self.bounds
            .hi
            .saturating_sub(sp)
            .min(self.bounds.hi - self.bounds.lo)
    }

    #[cold]
    #[allow(clippy::mut_from_ref)]
    unsafe fn rotate(&self, s: &Session) -> Option<&mut Buffer> {
        // SAFETY: the caller holds the lock.
        let l = unsafe { self.locked() };
        let Some(mut fresh) = s.pool.take() else {
            s.note_dropped();
            return None;
        };
        if let Some(old) = l.buf.take() {
            s.full.push(old);
            if !self.writer && s.full.should_wait(self.tid) {
                self.behind.store(true, Ordering::Relaxed);
            }
        }
        // SAFETY: `fresh` is an empty buffer now owned by this state.
        let fb = unsafe { fresh.as_mut() };
        format::put_context(fb, self.tid, l.last_seq);
        l.buf = Some(fresh);
        // The writer is woken once a few buffers wait, not for each: each pass takes every
        // thread's lock (a `membarrier`, an interrupt on every core the program runs on).
        if s.full.backlog() >= super::buffer::WAKE_BACKLOG {
            s.wake.wake();
        }
        Some(fb)
    }

    /// Swaps out the current buffer if it holds records, installing `fresh` (writer only).
    /// Returns the old buffer, and `fresh` again when it was not needed.
    /// `_held` is this state's lock, taken by the writer ([`OwnerLock::others_all`]).
    pub fn swap_buffer(
        &self,
        _held: &OtherGuard<'_>,
        mut fresh: NonNull<Buffer>,
    ) -> (Option<NonNull<Buffer>>, Option<NonNull<Buffer>>) {
        // SAFETY: the lock is held.
        let l = unsafe { self.locked() };
        // SAFETY: the current buffer is owned by this state while the lock is held.
        if l.buf.is_some_and(|cur| !unsafe { cur.as_ref() }.dirty) {
            return (None, Some(fresh));
        }
        // SAFETY: `fresh` is an empty buffer handed over by the caller.
        format::put_context(unsafe { fresh.as_mut() }, self.tid, l.last_seq);
        (l.buf.replace(fresh), None)
    }

    /// Takes the current buffer for good (reaping). Writer only, once the thread is gone.
    pub fn take_buffer(&self, s: &Session) -> Option<NonNull<Buffer>> {
        let _g = self.lock.other(s.asym);
        // SAFETY: the lock is held.
        unsafe { self.locked() }.buf.take()
    }

    /// Thread-exit bookkeeping, from the key destructor: records the exit, hands the buffer to
    /// the writer and lists the state in [`EXITED`] for the thread's last frees.
    fn exit(&self, s: &Session) {
        // SAFETY: runs on the owning thread.
        let o = unsafe { self.owned() };
        let name = thread_name();
        let high_water = self
            .bounds
            .hi
            .saturating_sub(o.min_sp)
            .min(self.bounds.hi - self.bounds.lo);
        {
            let _g = self.lock.owner(s.asym);
            // SAFETY: the lock is held; the thread is busy.
            if let Some(b) = unsafe { self.room(s) } {
                if name != o.name {
                    format::put_thread(
                        b,
                        self.tid,
                        name_bytes(&name),
                        self.bounds.lo,
                        self.bounds.hi,
                    );
                }
                format::put_thread_exit(
                    b,
                    self.tid,
                    if o.min_sp == u64::MAX { 0 } else { high_water },
                );
                b.dirty = true;
            }
            // SAFETY: the lock is held.
            let l = unsafe { self.locked() };
            if let Some(mut fresh) = s.pool.take() {
                // SAFETY: the fresh buffer is owned by this state.
                format::put_context(unsafe { fresh.as_mut() }, self.tid, l.last_seq);
                if let Some(old) = l.buf.replace(fresh) {
                    s.full.push(old);
                }
            }
        }
        o.name = name;
        self.exiting.store(true, Ordering::Release);
        if !EXITED.insert(self) {
            // Its late frees will find no state and register a new one: still recorded.
            super::report("no memory to list an exiting thread; its last frees get a new state");
        }
        s.wake.wake();
    }
}

/// Proof that the calling thread is inside the recorder (its `busy` flag is set): while a
/// `Busy` lives, every allocation the thread makes passes straight through unrecorded, so the
/// recorder cannot recurse into itself. Dropping it clears the flag, so no return path can
/// forget to. Not `Send`: only the owning thread may hold it.
pub struct Busy {
    t: &'static ThreadState,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Busy {
    /// The thread's state.
    #[inline(always)]
    pub fn state(&self) -> &'static ThreadState {
        self.t
    }
}

impl Drop for Busy {
    #[inline(always)]
    fn drop(&mut self) {
        if self.t.behind.load(Ordering::Relaxed) {
            self.t.behind.store(false, Ordering::Relaxed);
            wait_for_writer(self.t);
        }
        // SAFETY: dropped on the owning thread, which set `busy` in `enter`.
        unsafe { self.t.owned() }.busy = false;
    }
}

/// The longest a thread waits while the writer makes no progress: past it the thread goes on
/// (its buffers wait in memory), so that a writer held up by something this thread holds (a
/// lock the writer needs) delays it, never deadlocks it. Not shorter: a writer that just wrote
/// for a while is runnable but not run for tens of milliseconds when hundreds of threads share
/// the cores, and threads giving up after 20 ms ran ahead of it by 40 MB in a burst of 300.
const WAIT_MAX_NS: u64 = 100_000_000;

/// Backpressure: a recording thread that queued a full buffer while the writer was behind and
/// short of a core ([`super::buffer::FullQueue::should_wait`]) waits, off every lock of the
/// recorder, until the writer has caught up on most of the backlog. Without it, when the
/// program's threads fill the cores, the writer fell ever further behind and wrote its
/// backlog alone after the program ended (a two-thread Rust churn on two cores: 130 ms of a
/// 250 ms run, one core idle), reading buffers long gone from the caches. heaptrack's threads
/// wait the same way, on its pipe.
#[cold]
#[inline(never)]
fn wait_for_writer(t: &ThreadState) {
    // Only for the current session's writer (a state from before a `fork` names the
    // parent's, whose writer is not in this process).
    let Some(s) = super::session::current().filter(|s| std::ptr::eq(*s, t.session)) else {
        return;
    };
    s.full
        .wait_drained(WAIT_MAX_NS, || s.is_running(), || s.wake.wake());
}

/// Enters the recorder on the calling thread: `None` when the thread is already busy (a
/// nested or signal-handler call: see below), registering, or cannot get a state. Sets
/// `busy` until the returned guard is dropped.
#[inline(always)]
pub fn enter(s: &'static Session) -> Option<Busy> {
    let key = KEY.load(Ordering::Relaxed);
    // SAFETY: the key exists whenever a session does (created before the first session).
    let p = unsafe { libc::pthread_getspecific(key) } as *const ThreadState;
    // SAFETY: key values are live states (freed only after the thread is gone).
    let t = match unsafe { p.as_ref() } {
        Some(t) if std::ptr::eq(t.session, s) => t,
        _ => slow_current(s)?,
    };
    // SAFETY: this is the owning thread.
    let o = unsafe { t.owned() };
    if o.busy {
        if s.count_reentry && !t.writer {
            // Only a signal handler can re-enter here (see `Session::count_reentry`): the
            // interrupted event may be half-written, so this one is counted, not recorded.
            s.note_dropped();
        }
        return None;
    }
    o.busy = true;
    Some(Busy {
        t,
        _not_send: std::marker::PhantomData,
    })
}

#[cold]
#[inline(never)]
fn slow_current(s: &'static Session) -> Option<&'static ThreadState> {
    let tid = gettid();
    if REGISTERING.contains(tid) {
        return None;
    }
    if let Some(t) = EXITED.find(tid).filter(|t| std::ptr::eq(t.session, s)) {
        return Some(t);
    }
    // A state listed for an older session (before fork) is the parent's: register anew.
    if !REGISTERING.insert(tid) {
        s.note_dropped();
        return None;
    }
    // Signals wait until the state exists: a handler that allocates meanwhile would be taken
    // for the registration's own allocations and pass through uncounted.
    let t = with_signals_blocked(|| register(s, tid, false));
    REGISTERING.remove(tid);
    if t.is_none() {
        s.note_dropped();
    }
    t
}

/// Runs `f` with every signal blocked on the calling thread.
fn with_signals_blocked<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: valid signal sets; the previous mask is restored before returning.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        let r = f();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        r
    }
}

/// Creates and installs the calling thread's state. The caller has put `tid` in
/// [`REGISTERING`], so the allocations made here pass through unrecorded.
pub fn register(s: &'static Session, tid: u32, writer: bool) -> Option<&'static ThreadState> {
    let (bounds, unwinder, stacks) = if writer {
        (StackBounds::default(), None, None)
    } else {
        let b = StackBounds::current();
        (
            b,
            Some(Box::new(ThreadUnwinder::new(b))),
            Some(StackCache::new_boxed()),
        )
    };
    let name = thread_name();
    let mut buf = s.pool.take();
    let last_seq = seq::peek(Ordering::Relaxed);
    if let Some(b) = buf.as_mut() {
        // SAFETY: a fresh buffer owned by this new state.
        let b = unsafe { b.as_mut() };
        format::put_context(b, tid, last_seq);
        if !writer {
            format::put_thread(b, tid, name_bytes(&name), bounds.lo, bounds.hi);
            b.dirty = true;
        }
    }
    let state = Box::new(ThreadState {
        session: s,
        tid,
        writer,
        lock: OwnerLock::new(),
        locked: UnsafeCell::new(Locked { buf, last_seq }),
        owned: UnsafeCell::new(Owned {
            busy: writer,
            unwinder,
            stacks,
            frames: [0; MAX_FRAMES],
            min_sp: u64::MAX,
            name,
            countdown: Countdown::new(
                u64::from(tid) << 32 ^ crate::sys::clock::mono_ns(),
                s.cfg.sampling_rate.max(1),
            ),
        }),
        exiting: AtomicBool::new(false),
        counters: Counters::default(),
        latency: ThreadLatency::new(u64::from(tid).rotate_left(32) ^ crate::sys::clock::mono_ns()),
        bounds,
        lowest_sp: AtomicU64::new(u64::MAX),
        behind: AtomicBool::new(false),
    });
    let t: &'static ThreadState = Box::leak(state);
    if !writer {
        s.add_thread(t);
        super::cpu::thread_start(s, tid, bounds);
    }
    // SAFETY: the key exists; the value is a leaked (stable) state.
    let rc = unsafe {
        libc::pthread_setspecific(
            KEY.load(Ordering::Relaxed),
            t as *const _ as *const libc::c_void,
        )
    };
    if rc != 0 {
        // The thread keeps working unrecorded; the state stays listed so its records are
        // still written, and is reaped when the thread ends.
        t.exiting.store(true, Ordering::Release);
        return None;
    }
    Some(t)
}

/// Frees a reaped state.
///
/// # Safety
/// `t` came from [`register`], its thread is gone, and nothing refers to it any more.
pub unsafe fn free_state(t: &'static ThreadState) {
    // SAFETY: per the contract, this is the leaked box from `register`.
    drop(unsafe { Box::from_raw(t as *const ThreadState as *mut ThreadState) });
}

unsafe extern "C" fn on_thread_exit(p: *mut libc::c_void) {
    // SAFETY: the key's values are states from `register`.
    let Some(t) = (unsafe { (p as *const ThreadState).as_ref() }) else {
        return;
    };
    if t.writer {
        return;
    }
    let Some(s) = super::session::current() else {
        return;
    };
    if !std::ptr::eq(t.session, s) || !s.is_running() {
        return;
    }
    // glibc has already cleared the key, so `busy` is not reachable from the hooks: make the
    // allocations done here pass through by listing the thread as registering.
    let listed = REGISTERING.insert(t.tid);
    // SAFETY: this is the owning thread.
    let o = unsafe { t.owned() };
    let was_busy = o.busy;
    o.busy = true;
    super::cpu::thread_exit(s, t.tid);
    t.exit(s);
    o.busy = was_busy;
    if listed {
        REGISTERING.remove(t.tid);
    }
}

/// True when the calling thread is inside the recorder of `s` (busy or registering): its
/// allocations are the recorder's own.
pub fn is_busy(s: &'static Session) -> bool {
    let key = KEY.load(Ordering::Relaxed);
    // SAFETY: the key exists whenever a session does.
    let p = unsafe { libc::pthread_getspecific(key) } as *const ThreadState;
    // SAFETY: key values are live states (freed only after the thread is gone).
    match unsafe { p.as_ref() } {
        // SAFETY: this is the owning thread; `busy` is only read.
        Some(t) if std::ptr::eq(t.session, s) => unsafe { t.owned() }.busy,
        _ => REGISTERING.contains(gettid()),
    }
}

//! The recorder: allocation hooks → per-thread buffers → writer thread → profile file.
//!
//! The same code serves the `LD_PRELOAD` library (`tidemark-preload`) and in-process wrappers
//! around a `GlobalAlloc`. Nothing here assumes that the recorder's own allocations avoid the
//! hooked allocator: everything the recorder does for an event happens with the thread's `busy`
//! flag set, and a busy thread's allocations pass straight through unrecorded.
//!
//! ```text
//!  record_alloc ─► enter (pthread key → state, busy=1) ─► unwind + intern stack
//!               ─► lock thread buffer ─► real allocator* ─► seq = SEQ++ ─► append ─► unlock
//!  record_free  ─► enter ─► lock ─► seq = SEQ (read, not advanced) ─► append ─► unlock ─► real free*
//!  writer       ─► every interval: sample (/proc, latency, extra sampler, live trace);
//!                  every flush (or when a buffer fills):
//!                  W = SEQ; swap buffers; full queue; stack definitions → chunks; watermark W
//!
//!  * timed with the TSC for one call in `latency_every` (see [`latency`])
//! ```
//!
//! Usage (what the preload library does):
//!
//! ```no_run
//! use tidemark::record::{self, AllocKind, Config};
//! let cfg = Config::from_env(); // reports invalid values on stderr
//! if let Err(e) = record::start(cfg) {
//!     record::report(&format!("{e}; recording disabled"));
//! }
//! // in the malloc hook:
//! # unsafe fn real_malloc(n: usize) -> *mut u8 { std::ptr::null_mut() }
//! // SAFETY: the closure is the real allocation.
//! let p = unsafe { record::record_alloc(AllocKind::Malloc, 77, 0, || real_malloc(77)) };
//! record::finish(); // from atexit
//! ```

mod buffer;
pub mod config;
pub mod cpu;
mod encoder;
mod escape;
mod fatal;
#[cfg(feature = "jemalloc")]
mod jemalloc;
mod latency;
mod order;
pub(crate) mod outfile;
mod sampler;
mod sampling;
mod seq;
mod session;
pub use crate::sys::spin;
mod stacks;
mod thread;
mod tidmap;
mod trace;
mod wire;
mod writer;

pub use crate::format::AllocKind;
pub use crate::unwind::UnwindMode;
pub use config::{Config, EnvOption, ExtraSampler, ENV_OPTIONS};
#[cfg(feature = "jemalloc")]
pub use jemalloc::jemalloc_sampler;

use crate::format;
use crate::unwind::{self, Skip};
use session::{lock, Session};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use thread::{Counters, ThreadState};

/// Why recording could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The profile file could not be created.
    #[error("cannot write {}: {}", path.display(), describe_io(source))]
    Output {
        /// The path tried.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A session is already recording in this process.
    #[error("recording already started in this process")]
    AlreadyStarted,
    /// The per-thread state key could not be created.
    #[error("cannot create a thread-specific key: {}", describe_io(.0))]
    Key(io::Error),
    /// The writer thread could not be started.
    #[error("cannot start the writer thread: {}", describe_io(.0))]
    Writer(io::Error),
}

/// An I/O error as a short phrase ("Permission denied"), without "(os error 13)".
pub fn describe_io(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// Prints `tidemark: <msg>` on stderr in a single `write(2)` (no stdio, no locks).
pub fn report(msg: &str) {
    let line = format!("tidemark: {msg}\n");
    outfile::to_stderr(line.as_bytes());
}

/// Starts recording: creates the output file (never overwriting one), writes the header and
/// module map, and starts the writer thread. Allocations before this call pass through.
pub fn start(cfg: Config) -> Result<(), RecordError> {
    session::start(cfg)
}

/// Ends recording: stops the writer after a final drain and a trailer. Idempotent; later
/// allocations pass through. Call it from `atexit`.
pub fn finish() {
    session::finish()
}

/// Like [`finish`], for hooks of `_exit`, `_Exit` and `exit_group` (no `atexit` runs there).
/// Does nothing in a `vfork` child.
pub fn finish_before_exit() {
    session::finish_before_exit()
}

/// Tells the recorder that modules may have been loaded or unloaded (the preload library calls it
/// as `dlclose` returns): when the loader's counters moved, the unwinder is rebuilt and a module
/// snapshot is written (of a new generation after an unload), so events from now on resolve
/// against it. Loads are also noticed by themselves: a stack through an unknown module triggers
/// the same rebuild, and the writer checks at every timeline sample.
pub fn modules_changed() {
    let Some(s) = running() else { return };
    let Some(_busy) = thread::enter(s) else {
        return;
    };
    note_module_change(s);
}

/// Rebuilds the unwinder and queues a module snapshot when the module set changed; true when
/// it did. The caller is busy (or the writer).
fn note_module_change(s: &Session) -> bool {
    match crate::unwind::process::refresh() {
        Some((list, generation)) => {
            lock(&s.stacks).define_modules(generation, &list.format_modules());
            true
        }
        None => false,
    }
}

/// Like [`finish`], for hooks of the `exec` family; pair with [`resume_after_failed_exec`]
/// when the call returns. Does nothing in a `vfork` child.
pub fn finish_before_exec() {
    session::finish_before_exec()
}

/// Continues the profile stopped by [`finish_before_exec`] when the `exec` failed.
pub fn resume_after_failed_exec() {
    session::resume_after_failed_exec()
}

/// Installs the fatal-signal handlers that finish the profile when the program crashes (see
/// [`fatal`]).
pub fn install_fatal_handlers() {
    fatal::install()
}

/// True while events are being recorded.
pub fn is_recording() -> bool {
    session::current().is_some_and(Session::is_running)
}

/// The profile being written, once started.
pub fn output_path() -> Option<PathBuf> {
    session::current().map(|s| s.path.clone())
}

/// The session recording this event; `None` passes the event through (counted as dropped
/// while the session is stopped for an `exec` that may fail).
#[inline(always)]
fn running() -> Option<&'static Session> {
    let s = session::current()?;
    if s.is_running() {
        return Some(s);
    }
    session::note_if_paused();
    None
}

/// The interned stack of the current call. Unwinds from here; frames at or below `marker_sp`
/// (the hook's own frame) and, when the recorder is a shared library (the preload library),
/// frames inside it are left out.
#[inline(never)]
fn stack_id(s: &Session, t: &ThreadState, marker_sp: u64) -> u64 {
    // SAFETY: called on the owning thread while busy.
    let o = unsafe { t.owned() };
    let (Some(uw), Some(cache)) = (o.unwinder.as_mut(), o.stacks.as_mut()) else {
        return 0;
    };
    let skip = Skip {
        own_module: true,
        marker_sp,
    };
    uw.set_walk_cache(s.cfg.walk_cache);
    let mut c = uw.capture_hash(s.cfg.unwind, skip);
    t.note_sp(&mut o.min_sp, c.sp);
    let mut retried = false;
    loop {
        // The same addresses name other code once a module was unloaded (and another may be
        // loaded there): stacks are interned per module generation, which they resolve against.
        let key = c.hash ^ u128::from(c.generation).wrapping_mul(GENERATION_MIX);
        if let Some(id) = cache.get(key) {
            return id;
        }
        // A stack this thread has not seen (recently): now its frames are needed.
        uw.last_frames(&mut o.frames[..c.len]);
        if !retried && outside_known_modules(&o.frames[..c.len]) && note_module_change(s) {
            // The stack runs through a module loaded since the unwinder was built (a dlopen,
            // maybe still running its constructors): unwind again with the new module map.
            retried = true;
            c = uw.capture_hash(s.cfg.unwind, skip);
            continue;
        }
        let id = lock(&s.stacks).intern(key, &o.frames[..c.len], c.generation, c.truncated);
        cache.put(key, id);
        return id;
    }
}

/// True when a frame lies in no module the current unwinder knows.
fn outside_known_modules(frames: &[u64]) -> bool {
    unwind::process::current().is_some_and(|u| frames.iter().any(|&f| !u.knows(f)))
}

/// Interns a stack given as frames (not captured by this thread's walk), for the current module
/// generation.
fn intern_frames(s: &Session, frames: &[u64]) -> u64 {
    let generation = unwind::process::current().map_or(1, |u| u.generation);
    let key =
        unwind::hash::hash_frames(frames) ^ u128::from(generation).wrapping_mul(GENERATION_MIX);
    lock(&s.stacks).intern(key, frames, generation, frames.len() >= unwind::MAX_FRAMES)
}

/// Odd 128-bit constant spreading the module generation over the stack hash.
const GENERATION_MIX: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835;

#[inline(always)]
fn next_seq() -> u64 {
    seq::next()
}

/// Calls the real allocator function, timing it when this call is among the randomly picked
/// ones (see [`latency`]).
#[inline(always)]
fn timed<R>(s: &Session, t: &ThreadState, real: impl FnOnce() -> R) -> R {
    let every = s.cfg.latency_every;
    // SAFETY: called on the owning thread while busy.
    if every == 0 || !unsafe { t.latency.pick(every) } {
        return real();
    }
    let t0 = latency::ticks();
    let r = real();
    // SAFETY: called on the owning thread while busy, for a picked call.
    unsafe { t.latency.record_at(t0, latency::ticks().wrapping_sub(t0)) };
    r
}

/// Records an allocation made by `real` (called exactly once, with the thread's buffer locked).
/// `align` is the requested alignment, 0 for the allocator's default.
///
/// # Safety
/// `real` must be the real allocation, returning the block or null on failure.
#[inline(always)]
pub unsafe fn record_alloc(
    kind: AllocKind,
    size: usize,
    align: usize,
    real: impl FnOnce() -> *mut u8,
) -> *mut u8 {
    let Some(s) = running() else { return real() };
    let marker = unwind::stack_pointer();
    let Some(busy) = thread::enter(s) else {
        return real();
    };
    let t = busy.state();
    if s.sampling_rate() != 0 && !sampled(s, t, size) {
        let p = timed(s, t, real);
        return p;
    }
    let stack = stack_id(s, t, marker);
    let p = {
        let _g = t.lock.owner(s.asym);
        let p = timed(s, t, real);
        if !p.is_null() && track(s, p) {
            let seq = next_seq();
            // SAFETY: the lock is held, the thread is busy, and `stack_id` made the capture.
            unsafe {
                escape::with_frames(s, t, false, || {
                    append_alloc(s, t, seq, p as u64, size as u64, stack, kind, align as u64)
                })
            };
        }
        p
    };
    p
}

/// Sampling mode: whether this allocation is recorded.
#[inline(never)]
fn sampled(s: &Session, t: &ThreadState, size: usize) -> bool {
    // SAFETY: called on the owning thread while busy.
    unsafe { t.owned() }.countdown.take(size, s.sampling_rate())
}

/// Sampling mode: remembers a recorded block so its free is recorded too. False when it cannot
/// be tracked (the event is then dropped and counted).
#[inline(always)]
fn track(s: &Session, p: *mut u8) -> bool {
    match &s.sampled {
        None => true,
        Some(set) => {
            set.insert(p as u64) || {
                s.note_dropped();
                false
            }
        }
    }
}

/// Sampling mode: whether a free of `p` is recorded (the block was sampled).
#[inline(always)]
fn untrack(s: &Session, p: *mut u8) -> bool {
    s.sampled.as_ref().is_none_or(|set| set.remove(p as u64))
}

/// Records the free of `ptr`, then calls `real`. Null pointers record nothing.
///
/// # Safety
/// `real` must free `ptr`.
#[inline(always)]
pub unsafe fn record_free(ptr: *mut u8, real: impl FnOnce()) {
    if ptr.is_null() {
        return real();
    }
    let Some(s) = running() else { return real() };
    if let Some(set) = &s.sampled {
        // Sampling: a free of a block that was not sampled (nearly all of them) records
        // nothing; the filter says so without the thread's state. It is not timed either:
        // in sampling mode the latency histogram covers allocation calls and sampled frees.
        if !set.may_contain(ptr as u64) {
            return real();
        }
    }
    let marker = unwind::stack_pointer();
    let Some(busy) = thread::enter(s) else {
        return real();
    };
    let t = busy.state();
    if !untrack(s, ptr) {
        timed(s, t, real);
        return;
    }
    if s.cfg.escape {
        escape::capture(s, t, marker);
    }
    {
        let _g = t.lock.owner(s.asym);
        // A free does not advance the counter (`seq`'s invariant).
        let seq = seq::current();
        // SAFETY: the lock is held, the thread is busy, and the capture above is this free's.
        unsafe { escape::with_frames(s, t, true, || append_free(s, t, seq, ptr as u64)) };
    }
    timed(s, t, real);
}

/// Records a realloc done by `real`. `realloc(NULL, n)` is recorded as an allocation of
/// `kind`; a null result for `size == 0` (glibc frees the block) as a free; any other null
/// result (failure) records nothing.
///
/// # Safety
/// `real` must perform the realloc of `ptr` to `size` bytes.
#[inline(always)]
pub unsafe fn record_realloc(
    ptr: *mut u8,
    size: usize,
    kind: AllocKind,
    real: impl FnOnce() -> *mut u8,
) -> *mut u8 {
    if ptr.is_null() {
        // SAFETY: forwarded contract.
        return unsafe { record_alloc(kind, size, 0, real) };
    }
    let Some(s) = running() else { return real() };
    let marker = unwind::stack_pointer();
    let Some(busy) = thread::enter(s) else {
        return real();
    };
    let t = busy.state();
    if s.sampling_rate() != 0 {
        // SAFETY: forwarded contract; the thread is busy.
        let p = unsafe { sampled_realloc(s, t, ptr, size, kind, marker, real) };
        return p;
    }
    let stack = stack_id(s, t, marker);
    let p = {
        let _g = t.lock.owner(s.asym);
        let free_seq = next_seq();
        let p = timed(s, t, real);
        if !p.is_null() {
            let seq = next_seq();
            // SAFETY: the lock is held, the thread is busy, and `stack_id` made the capture.
            unsafe {
                escape::with_frames(s, t, false, || {
                    append_realloc(
                        s,
                        t,
                        free_seq,
                        seq,
                        ptr as u64,
                        p as u64,
                        size as u64,
                        stack,
                        kind,
                    )
                })
            };
        } else if size == 0 {
            // SAFETY: as above.
            unsafe { escape::with_frames(s, t, true, || append_free(s, t, free_seq, ptr as u64)) };
        }
        p
    };
    p
}

/// Realloc in sampling mode: the old block counts if it was sampled, the new one if the
/// countdown says so; a realloc record needs both.
///
/// # Safety
/// As [`record_realloc`]; `t` is the calling thread's busy state.
unsafe fn sampled_realloc(
    s: &Session,
    t: &ThreadState,
    ptr: *mut u8,
    size: usize,
    kind: AllocKind,
    marker: u64,
    real: impl FnOnce() -> *mut u8,
) -> *mut u8 {
    let old = untrack(s, ptr);
    let new = size != 0 && sampled(s, t, size);
    if !old && !new {
        return timed(s, t, real);
    }
    let stack = if new { stack_id(s, t, marker) } else { 0 };
    let _g = t.lock.owner(s.asym);
    let free_seq = if old { next_seq() } else { 0 };
    let p = timed(s, t, real);
    if p.is_null() {
        if size == 0 && old {
            // SAFETY: the lock is held and the thread is busy.
            unsafe { append_free(s, t, free_seq, ptr as u64) };
        } else if old {
            // Failed: the old block lives on.
            track(s, ptr);
        }
        return p;
    }
    let new = new && track(s, p);
    match (old, new) {
        (true, true) => {
            let seq = next_seq();
            // SAFETY: the lock is held and the thread is busy.
            unsafe {
                append_realloc(
                    s,
                    t,
                    free_seq,
                    seq,
                    ptr as u64,
                    p as u64,
                    size as u64,
                    stack,
                    kind,
                )
            }
        }
        // SAFETY: as above.
        (true, false) => unsafe { append_free(s, t, free_seq, ptr as u64) },
        (false, true) => {
            let seq = next_seq();
            // SAFETY: as above.
            unsafe { append_alloc(s, t, seq, p as u64, size as u64, stack, kind, 0) }
        }
        (false, false) => {}
    }
    p
}

/// # Safety
/// The caller holds `t.lock` and is `t`'s busy owner.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn append_alloc(
    s: &Session,
    t: &ThreadState,
    seq: u64,
    addr: u64,
    size: u64,
    stack: u64,
    kind: AllocKind,
    align: u64,
) {
    // SAFETY: per the contract.
    let Some(b) = (unsafe { t.room(s) }) else {
        return;
    };
    // SAFETY: per the contract.
    let l = unsafe { t.locked() };
    wire::put_alloc(b, seq - l.last_seq, addr, size, stack, kind, align);
    b.dirty = true;
    l.last_seq = seq;
    Counters::bump(&t.counters.alloc_calls, 1);
    Counters::bump(&t.counters.alloc_bytes, size);
}

/// # Safety
/// As [`append_alloc`].
#[inline(always)]
unsafe fn append_free(s: &Session, t: &ThreadState, seq: u64, addr: u64) {
    // SAFETY: per the contract.
    let Some(b) = (unsafe { t.room(s) }) else {
        return;
    };
    // SAFETY: per the contract.
    let l = unsafe { t.locked() };
    wire::put_free(b, seq - l.last_seq, addr);
    b.dirty = true;
    l.last_seq = seq;
    Counters::bump(&t.counters.free_calls, 1);
}

/// # Safety
/// As [`append_alloc`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn append_realloc(
    s: &Session,
    t: &ThreadState,
    free_seq: u64,
    seq: u64,
    old: u64,
    new: u64,
    size: u64,
    stack: u64,
    kind: AllocKind,
) {
    // SAFETY: per the contract.
    let Some(b) = (unsafe { t.room(s) }) else {
        return;
    };
    // SAFETY: per the contract.
    let l = unsafe { t.locked() };
    wire::put_realloc(
        b,
        free_seq - l.last_seq,
        seq - free_seq,
        old,
        new,
        size,
        stack,
        kind,
    );
    b.dirty = true;
    l.last_seq = seq;
    Counters::bump(&t.counters.realloc_calls, 1);
    Counters::bump(&t.counters.alloc_bytes, size);
}

/// Records an allocation made before recording started (found by the preload library), with
/// `frames` (return addresses, innermost first) as its stack. Nothing when not recording.
pub fn record_early_alloc(kind: AllocKind, size: usize, addr: usize, frames: &[u64]) {
    let Some(s) = running() else { return };
    let Some(busy) = thread::enter(s) else { return };
    let t = busy.state();
    if s.sampling_rate() == 0 || sampled(s, t, size) {
        let stack = intern_frames(s, frames);
        let _g = t.lock.owner(s.asym);
        if track(s, addr as *mut u8) {
            let seq = next_seq();
            // SAFETY: the lock is held and the thread is busy.
            unsafe { append_alloc(s, t, seq, addr as u64, size as u64, stack, kind, 0) };
        }
    }
}

/// Counts `n` events that could not be recorded (in the trailer's `dropped_events`).
pub fn note_dropped(n: u64) {
    if let Some(s) = session::current() {
        s.dropped.fetch_add(n, Ordering::Relaxed);
    }
}

/// Records the free of `addr` made before recording started (after its
/// [`record_early_alloc`]).
pub fn record_early_free(addr: usize) {
    // SAFETY: the block is already gone; nothing is freed now.
    unsafe { record_free(addr as *mut u8, || {}) }
}

/// Longest message text [`message`] keeps: a record must fit the room every buffer guarantees
/// (`buffer::RECORD_MAX_BYTES`).
pub const MESSAGE_MAX_BYTES: usize = 80;

/// Writes a message into the profile (shown by every output under "recorder messages"), cut to
/// [`MESSAGE_MAX_BYTES`] at a character boundary. `level`: 0 info, 1 warning.
pub fn message(level: u8, text: &str) {
    let Some(s) = running() else { return };
    let Some(busy) = thread::enter(s) else { return };
    let t = busy.state();
    let mut end = text.len().min(MESSAGE_MAX_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    {
        let _g = t.lock.owner(s.asym);
        // SAFETY: the lock is held and the thread is busy.
        if let Some(b) = unsafe { t.room(s) } {
            format::put_message(b, level, &text[..end]);
            b.dirty = true;
        }
    }
}

#[cfg(test)]
mod tests;

/// True when the calling thread is inside the recorder right now, so an allocation it makes is
/// the recorder's own (it is passed through unrecorded). In-process wrappers use this to keep
/// the recorder's allocations out of their counters.
pub fn in_recorder() -> bool {
    session::current()
        .filter(|s| s.is_running())
        .is_some_and(thread::is_busy)
}

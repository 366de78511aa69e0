//! Frame addresses for escape analysis (`Config::escape`, `tidemark run --escape`).
//!
//! After every recorded allocation, realloc and free the thread buffer gets an `EVENT_FRAMES`
//! record (`docs/format.md` §3.6): the stack pointer of the hooked call's caller and the
//! canonical frame addresses (CFAs) of the first [`ESCAPE_FRAMES`] frames of its stack, as the
//! DWARF walk computed them. A frame's function is still running exactly while the stack
//! pointer stays below its CFA, so the analyzer can tell whether a block was freed while the
//! function that allocated it (or which of its callers) was still on the stack.
//!
//! ```text
//!  alloc/realloc: stack_id (walk) ─► lock ─► reserve(event + frames) ─► ALLOC ─► EVENT_FRAMES
//!  free:          capture (walk)  ─► lock ─► reserve(event + frames) ─► FREE  ─► EVENT_FRAMES
//! ```
//!
//! The event and its frames are reserved together so they land in the same buffer: the writer
//! attaches an `EVENT_FRAMES` record to the event just before it in that buffer
//! (`order::Orderer`). Frees are unwound only in this mode (their stacks are not interned).

use super::buffer::RECORD_MAX_BYTES;
use super::session::Session;
use super::thread::ThreadState;
use crate::format;
use crate::unwind::Skip;

/// Frame addresses recorded per event: enough to pass the allocator's own frames (`malloc`
/// wrappers, `__rust_alloc`, `RawVec` growth: up to ~6) and still see several callers of the
/// allocating function.
pub const ESCAPE_FRAMES: usize = 16;

/// Return addresses recorded per free: one more than CFAs (where the hooked call returns to).
const RETURNS: usize = ESCAPE_FRAMES + 1;

/// Room an event and its frames take together: the largest event, an `EVENT_FRAMES` record
/// (tag, stack pointer, count, one varint per frame) and an `EVENT_RETURNS` record (tag, length,
/// count, one varint per return address).
const EVENT_WITH_FRAMES_BYTES: usize =
    RECORD_MAX_BYTES + (1 + 10 + 1 + ESCAPE_FRAMES * 10) + (1 + 2 + 1 + RETURNS * 10);

/// Unwinds the calling thread for a free (allocations are unwound by `stack_id` anyway).
/// Frames at or below `marker_sp` (the hook's own) are left out, as for allocations.
#[inline(never)]
pub fn capture(s: &Session, t: &ThreadState, marker_sp: u64) {
    // SAFETY: called on the owning thread while busy.
    let o = unsafe { t.owned() };
    let Some(uw) = o.unwinder.as_mut() else {
        return;
    };
    uw.set_walk_cache(s.cfg.walk_cache);
    let c = uw.capture_hash(
        s.cfg.unwind,
        Skip {
            own_module: true,
            marker_sp,
        },
    );
    t.note_sp(&mut o.min_sp, c.sp);
}

/// Appends an event with `append`, followed by the frame addresses of the thread's last
/// capture when the session records them, and with `returns` (frees, whose stacks are not
/// interned) the return addresses of its first frames. Nothing is appended (the event is
/// counted as dropped) when no buffer has room for all.
///
/// # Safety
/// The caller holds `t.lock`, is `t`'s busy owner, and made the capture this event belongs to;
/// `append` writes exactly one event record into the current buffer.
#[inline(always)]
pub unsafe fn with_frames(s: &Session, t: &ThreadState, returns: bool, append: impl FnOnce()) {
    if !s.cfg.escape {
        return append();
    }
    // SAFETY: per the contract.
    if !unsafe { t.reserve(s, EVENT_WITH_FRAMES_BYTES) } {
        return;
    }
    append();
    // SAFETY: per the contract.
    unsafe { append_last(s, t, returns) };
}

/// Writes the `EVENT_FRAMES` record of the thread's last capture.
///
/// # Safety
/// As [`with_frames`], with room reserved.
#[inline(never)]
unsafe fn append_last(s: &Session, t: &ThreadState, returns: bool) {
    let mut cfas = [0u64; ESCAPE_FRAMES];
    let mut ips = [0u64; RETURNS];
    // SAFETY: the owning thread, busy.
    let o = unsafe { t.owned() };
    let (sp, n, m) = match o.unwinder.as_ref() {
        Some(uw) => (
            uw.last_sp(),
            uw.last_cfas(&mut cfas),
            if returns { uw.last_ips(&mut ips) } else { 0 },
        ),
        None => (0, 0, 0),
    };
    // SAFETY: per the contract (room was reserved: no rotation happens here).
    if let Some(b) = unsafe { t.room(s) } {
        format::put_event_frames(b, sp, &cfas[..n]);
        if returns {
            format::put_event_returns(b, &ips[..m]);
        }
        b.dirty = true;
    }
}

//! Every malloc-family event that happens before recording starts (other libraries'
//! constructors run before this library's), replayed into the profile when it starts, in order:
//! blocks freed before the start are counted too, and blocks still live have their later frees
//! matched. Their stack is unknown; they are recorded with one frame, `[before tidemark
//! started]`, instead of a guessed one.
//!
//! The log grows without a fixed cap: an array mapped with `mmap` (never malloc: this runs
//! inside the hooks), doubled when full, unmapped after the replay. Appends take a spin lock
//! (before `main`, threads are rare). When the system refuses memory the event is counted and
//! reported as unattributed.

use std::sync::atomic::{AtomicUsize, Ordering};
use tidemark::format::AllocKind;
use tidemark::sys::spin::SpinLock;

/// What happened.
#[derive(Clone, Copy)]
pub enum Event {
    /// A block of `size` requested bytes from entry point `kind`.
    Alloc {
        addr: usize,
        size: usize,
        kind: AllocKind,
    },
    /// A block was freed (or moved away by realloc).
    Free { addr: usize },
}

/// One logged event: `op` 1 = alloc, 2 = free; `kind` an `AllocKind`.
#[derive(Clone, Copy)]
#[repr(C)]
struct Entry {
    op: u32,
    kind: u32,
    addr: usize,
    size: usize,
}

struct Log {
    entries: *mut Entry,
    len: usize,
    cap: usize,
}

struct Shared {
    lock: SpinLock,
    log: std::cell::UnsafeCell<Log>,
}

// SAFETY: `log` is only accessed with `lock` held.
unsafe impl Sync for Shared {}

static LOG: Shared = Shared {
    lock: SpinLock::new(),
    log: std::cell::UnsafeCell::new(Log {
        entries: std::ptr::null_mut(),
        len: 0,
        cap: 0,
    }),
};

/// The thread running this library's constructor while it resolves symbols: its allocations
/// (dlsym's and dlerror's) are the library's own, not the program's.
static OWN_TID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Marks the calling thread's allocations as the library's own until [`own_end`].
pub fn own_begin() {
    // SAFETY: gettid has no preconditions.
    OWN_TID.store(unsafe { libc::gettid() } as u32, Ordering::Release);
}

/// Ends [`own_begin`].
pub fn own_end() {
    OWN_TID.store(0, Ordering::Release);
}

fn is_own() -> bool {
    let own = OWN_TID.load(Ordering::Acquire);
    // SAFETY: gettid has no preconditions.
    own != 0 && own == unsafe { libc::gettid() } as u32
}

/// Events that could not be logged (no memory).
static LOST: AtomicUsize = AtomicUsize::new(0);

/// Entries in the first mapping (96 KiB).
const FIRST_CAP: usize = 4096;

fn map(cap: usize) -> Option<*mut Entry> {
    // SAFETY: an anonymous private mapping; the result is checked.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            cap * std::mem::size_of::<Entry>(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some(p.cast())
}

/// Appends `e`.
pub fn push(e: Event) {
    if is_own() {
        return;
    }
    let entry = match e {
        Event::Alloc { addr, size, kind } => Entry {
            op: 1,
            kind: kind as u32,
            addr,
            size,
        },
        Event::Free { addr } => Entry {
            op: 2,
            kind: 0,
            addr,
            size: 0,
        },
    };
    let _g = LOG.lock.lock();
    // SAFETY: the lock is held.
    let log = unsafe { &mut *LOG.log.get() };
    if log.len == log.cap {
        let cap = (log.cap * 2).max(FIRST_CAP);
        let Some(bigger) = map(cap) else {
            LOST.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if !log.entries.is_null() {
            // SAFETY: both mappings hold at least `len` entries; the old one is unmapped after
            // the copy and never used again.
            unsafe {
                std::ptr::copy_nonoverlapping(log.entries, bigger, log.len);
                libc::munmap(log.entries.cast(), log.cap * std::mem::size_of::<Entry>());
            }
        }
        log.entries = bigger;
        log.cap = cap;
    }
    // SAFETY: `len < cap` entries are mapped.
    unsafe { log.entries.add(log.len).write(entry) };
    log.len += 1;
}

/// Hands every logged event to `f`, in order, then empties the log and returns its memory.
/// Returns how many events could not be logged.
pub fn drain(mut f: impl FnMut(Event)) -> usize {
    let log = {
        let _g = LOG.lock.lock();
        // SAFETY: the lock is held; the log is taken whole.
        std::mem::replace(
            unsafe { &mut *LOG.log.get() },
            Log {
                entries: std::ptr::null_mut(),
                len: 0,
                cap: 0,
            },
        )
    };
    for i in 0..log.len {
        // SAFETY: the first `len` entries were written by `push`.
        let e = unsafe { log.entries.add(i).read() };
        f(match e.op {
            1 => Event::Alloc {
                addr: e.addr,
                size: e.size,
                kind: AllocKind::from_u8(e.kind as u8).unwrap_or(AllocKind::Malloc),
            },
            _ => Event::Free { addr: e.addr },
        });
    }
    if !log.entries.is_null() {
        // SAFETY: the mapping is no longer referenced.
        unsafe { libc::munmap(log.entries.cast(), log.cap * std::mem::size_of::<Entry>()) };
    }
    LOST.swap(0, Ordering::Relaxed)
}

// A function without debug information whose symbol is the frame shown for events from before
// the start: symbolizers fall back to the symbol table and print this name.
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".pushsection .text.tidemark_before_start,\"ax\",@progbits",
    ".globl \"[before tidemark started]\"",
    ".hidden \"[before tidemark started]\"",
    ".type \"[before tidemark started]\",@function",
    "\"[before tidemark started]\":",
    "ud2",
    "ud2",
    ".size \"[before tidemark started]\", 4",
    ".popsection",
);

#[cfg(target_arch = "x86_64")]
extern "C" {
    #[link_name = "[before tidemark started]"]
    fn before_tidemark_started();
}

/// The stack given to events from before the start: one return address inside
/// `[before tidemark started]` (symbolizers look up `ip - 1`).
pub fn before_start_stack() -> [u64; 1] {
    #[cfg(target_arch = "x86_64")]
    let f = before_tidemark_started as *const () as u64;
    #[cfg(not(target_arch = "x86_64"))]
    let f = before_start_stack as *const () as u64;
    [f + 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_every_event_in_order_past_any_fixed_size() {
        let n = FIRST_CAP * 3 + 7;
        for i in 0..n {
            if i % 3 == 2 {
                push(Event::Free { addr: i });
            } else {
                push(Event::Alloc {
                    addr: i,
                    size: i * 2,
                    kind: AllocKind::Calloc,
                });
            }
        }
        let mut seen = 0;
        let lost = drain(|e| {
            match e {
                Event::Alloc { addr, size, kind } => {
                    assert_eq!((addr, size, kind), (seen, seen * 2, AllocKind::Calloc));
                    assert_ne!(seen % 3, 2);
                }
                Event::Free { addr } => assert_eq!((addr, seen % 3), (seen, 2)),
            }
            seen += 1;
        });
        assert_eq!((seen, lost), (n, 0));
        assert_eq!(drain(|_| panic!("drained twice")), 0);
    }
}

//! The writer's representation of one event of a pass ([`super::Orderer`]'s waiting events).

use crate::format::AllocKind;

/// One event of a pass, decoded from a thread buffer: 32 bytes, so that a pass's events (sorted,
/// then read once in order) move as little memory as they can. What does not fit (sizes or
/// stack ids of 32 bits or more, an alignment, attached frame records) is in [`Side`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Ev {
    /// Sort key: sequence number × 128, + [`KEY_FREE`] for frees, + [`KEY_OTHER`] for the other
    /// events (frees that read `S` without advancing the counter go before the event that took
    /// `S`, or the timeline sample, which takes its number the same way and is placed at
    /// `128 S + KEY_OTHER`: `record::seq`'s invariant). The
    /// other events' low bits say what they are (`What`) and their allocation kind: only one
    /// event takes each number, so these bits never decide their order.
    pub(super) key: u64,
    /// The block's address (a realloc's free half: the old block's).
    pub(super) addr: u64,
    /// Requested bytes ([`WIDE`]: in the side entry).
    pub(super) size: u32,
    /// Stack id ([`WIDE`]: in the side entry).
    pub(super) stack: u32,
    pub(super) tid: u32,
    /// Index of its [`Side`] entry in [`super::Orderer`]'s `side` ([`NO_SIDE`]: none).
    pub(super) side: u32,
}

/// The rarer parts of an event.
#[derive(Debug, Clone, Copy)]
pub(super) struct Side {
    pub(super) size: u64,
    pub(super) stack: u64,
    pub(super) align: u64,
    /// Where the records attached to it (`EVENT_FRAMES`, `EVENT_RETURNS`) start in
    /// [`super::Orderer`]'s `attached` ([`NO_FRAMES`]: none).
    pub(super) frames: u32,
}

/// Sequence number shift of [`Ev::key`].
pub(super) const KEY_SHIFT: u32 = 7;
/// [`Ev::key`]'s low bits of a free.
pub(super) const KEY_FREE: u64 = 32;
/// [`Ev::key`]'s low bits of the other events: + `What` × 16 + allocation kind.
pub(super) const KEY_OTHER: u64 = 64;

/// [`Ev::size`] or [`Ev::stack`] too large for 32 bits.
pub(super) const WIDE: u32 = u32::MAX;
/// [`Ev::side`] of an event without a side entry.
pub(super) const NO_SIDE: u32 = u32::MAX;

/// How many events ahead of the one being written a free's live-block slot is prefetched.
pub(super) const PREFETCH_AHEAD: usize = 8;

/// [`Side::frames`] of an event without frame records.
pub(super) const NO_FRAMES: u32 = u32::MAX;

/// What an event is (free or not is in the key already).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum What {
    Alloc = 0,
    /// The free half of a realloc; the allocation half follows on the same thread.
    ReallocFree = 1,
    ReallocAlloc = 2,
    Free = 3,
}

impl Ev {
    /// The sort key of a free read at `seq`.
    #[inline]
    pub(super) fn free_key(seq: u64) -> u64 {
        (seq << KEY_SHIFT) | KEY_FREE
    }

    /// The sort key of an event of kind `what` (not a free) that took `seq`.
    #[inline]
    pub(super) fn key(seq: u64, what: What, kind: AllocKind) -> u64 {
        (seq << KEY_SHIFT) | KEY_OTHER | (what as u64) << 4 | kind as u64
    }

    #[inline]
    pub(super) fn what(&self) -> What {
        if self.key & KEY_OTHER == 0 {
            return What::Free;
        }
        match (self.key >> 4) & 3 {
            0 => What::Alloc,
            1 => What::ReallocFree,
            _ => What::ReallocAlloc,
        }
    }

    #[inline]
    pub(super) fn kind(&self) -> AllocKind {
        AllocKind::ALL[(self.key & 15) as usize]
    }
}

// The size the sort and the write loop are tuned for.
const _: () = assert!(std::mem::size_of::<Ev>() == 32);

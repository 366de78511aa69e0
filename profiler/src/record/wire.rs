//! Event records as the hooks write them into the threads' buffers, for the writer alone: format
//! version 1's sequenced layout (`docs/format.md` §6: `ALLOC` = `seq_delta, addr, size,
//! stack_id, kind:u8, align`, …) with each block address as 8 bytes little-endian instead of a
//! uvarint. An address took a 6- or 7-byte uvarint, a byte at a time with a bounds check each,
//! in every hook call, and a 7-step loop to read back in the writer; as a fixed word it is one
//! store and one load. The records are written through [`Raw`] with no check per byte: the
//! buffer has room for [`RECORD_MAX_BYTES`] before each record, more than any of them takes.

use super::buffer::{Buffer, RECORD_MAX_BYTES};
use crate::format::{tag, AllocKind, Cursor, DecodeError};

/// Bytes an `ALLOC` takes at most: tag, four uvarints, an address and a kind.
const ALLOC_MAX: usize = 1 + 4 * 10 + 8 + 1;
/// Bytes a `REALLOC` takes at most: tag, four uvarints, two addresses and a kind.
const REALLOC_MAX: usize = 1 + 4 * 10 + 2 * 8 + 1;
const _: () = assert!(ALLOC_MAX <= RECORD_MAX_BYTES && REALLOC_MAX <= RECORD_MAX_BYTES);

/// How far ahead of the record just written its thread's buffer is made ready for writing.
/// The writer read the buffer last (buffers go round through the pool), so its lines sit in
/// the writer's core's cache: each first store to one waited for the line to come over (the C
/// churn's hook spent more time there than anywhere else, at the locked increment that comes
/// after the stores). Asking for the lines 512 bytes (eight lines) ahead with the intent to write
/// them hides that wait.
const PREFETCH_AHEAD: usize = 512;

/// Asks for the line at `p` with the intent to write it (`prefetchw`), where the processor has
/// the instruction (checked once: AMD64 has had it from the start, Intel from Broadwell).
#[inline(always)]
fn prefetch_for_write(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    if has_prefetchw() {
        // SAFETY: a prefetch is a hint: it never faults, whatever the address, and changes no
        // register or flag.
        unsafe {
            core::arch::asm!(
                "prefetchw [{0}]",
                in(reg) p,
                options(nostack, preserves_flags, readonly)
            )
        };
    }
    let _ = p;
}

/// Whether the processor has `prefetchw` (CPUID 0x8000_0001, ECX bit 8).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn has_prefetchw() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    /// 0: not asked yet, 1: no, 2: yes.
    static HAS: AtomicU8 = AtomicU8::new(0);
    match HAS.load(Ordering::Relaxed) {
        2 => true,
        1 => false,
        _ => {
            // Leaf 0x8000_0001 is within the extended range every x86_64 processor has.
            let ecx = core::arch::x86_64::__cpuid(0x8000_0001).ecx;
            let has = ecx & (1 << 8) != 0;
            HAS.store(if has { 2 } else { 1 }, Ordering::Relaxed);
            has
        }
    }
}

/// Where a record is written: [`RECORD_MAX_BYTES`] writable bytes from `p`, `n` written.
pub struct Raw {
    p: *mut u8,
    n: usize,
}

impl Raw {
    #[inline(always)]
    fn u8(&mut self, b: u8) {
        debug_assert!(self.n < RECORD_MAX_BYTES);
        // SAFETY: `p` has RECORD_MAX_BYTES writable bytes (`Raw`'s contract) and every record
        // below writes fewer (the assertions on ALLOC_MAX and REALLOC_MAX).
        unsafe { self.p.add(self.n).write(b) };
        self.n += 1;
    }

    #[inline(always)]
    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.u8(v as u8 | 0x80);
            v >>= 7;
        }
        self.u8(v as u8);
    }

    #[inline(always)]
    fn address(&mut self, a: u64) {
        debug_assert!(self.n + 8 <= RECORD_MAX_BYTES);
        // SAFETY: as in `u8`; an unaligned write of 8 bytes within the record's room.
        unsafe {
            self.p
                .add(self.n)
                .cast::<[u8; 8]>()
                .write_unaligned(a.to_le_bytes())
        };
        self.n += 8;
    }
}

/// What the records are written into: a thread's buffer, or (the orderer's tests) a vector.
pub trait Out {
    /// Appends the record `f` writes (at most [`RECORD_MAX_BYTES`]); nothing when there is no
    /// room for that many.
    fn record(&mut self, f: impl FnOnce(&mut Raw));
}

impl Out for Buffer {
    #[inline(always)]
    fn record(&mut self, f: impl FnOnce(&mut Raw)) {
        if let Some(room) = self.room_for_record() {
            let mut w = Raw {
                p: room.as_mut_ptr().cast(),
                n: 0,
            };
            f(&mut w);
            // SAFETY: `f` wrote `w.n` bytes of the room it was given.
            unsafe { self.commit(w.n) };
            prefetch_for_write(w.p.wrapping_add(PREFETCH_AHEAD));
        }
    }
}

#[cfg(test)]
impl Out for Vec<u8> {
    fn record(&mut self, f: impl FnOnce(&mut Raw)) {
        self.reserve(RECORD_MAX_BYTES);
        let room: &mut [std::mem::MaybeUninit<u8>] = self.spare_capacity_mut();
        let mut w = Raw {
            p: room.as_mut_ptr().cast(),
            n: 0,
        };
        f(&mut w);
        let n = self.len() + w.n;
        // SAFETY: the `w.n` bytes after the length were written, within the reserved room.
        unsafe { self.set_len(n) };
    }
}

/// Appends an allocation: `seq_delta` after the context's previous number.
#[inline(always)]
pub fn put_alloc(
    o: &mut impl Out,
    seq_delta: u64,
    addr: u64,
    size: u64,
    stack: u64,
    kind: AllocKind,
    align: u64,
) {
    o.record(|w| {
        w.u8(tag::ALLOC);
        w.uvarint(seq_delta);
        w.address(addr);
        w.uvarint(size);
        w.uvarint(stack);
        w.u8(kind as u8);
        w.uvarint(align);
    });
}

/// Appends a free.
#[inline(always)]
pub fn put_free(o: &mut impl Out, seq_delta: u64, addr: u64) {
    o.record(|w| {
        w.u8(tag::FREE);
        w.uvarint(seq_delta);
        w.address(addr);
    });
}

/// Appends a realloc: its free half `free_seq_delta` after the context's previous number, its
/// allocation half `alloc_seq_delta` after that.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn put_realloc(
    o: &mut impl Out,
    free_seq_delta: u64,
    alloc_seq_delta: u64,
    old_addr: u64,
    new_addr: u64,
    size: u64,
    stack: u64,
    kind: AllocKind,
) {
    o.record(|w| {
        w.u8(tag::REALLOC);
        w.uvarint(free_seq_delta);
        w.uvarint(alloc_seq_delta);
        w.address(old_addr);
        w.address(new_addr);
        w.uvarint(size);
        w.uvarint(stack);
        w.u8(kind as u8);
    });
}

/// Reads an address written by this module.
#[inline(always)]
pub fn address(c: &mut Cursor<'_>) -> Result<u64, DecodeError> {
    c.u64_le()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_and_never_pass_the_buffer_end() {
        let mut b = Buffer::alloc().unwrap();
        // SAFETY: `b` is a live buffer owned by this test.
        let buf = unsafe { b.as_mut() };
        // Round `i`'s records, the largest values where they fit.
        fn round(o: &mut impl Out, i: u64) {
            put_realloc(
                o,
                u64::MAX,
                1,
                u64::MAX,
                i,
                u64::MAX,
                u64::MAX,
                AllocKind::Realloc,
            );
            put_alloc(o, 1, i, i * 1000, 7, AllocKind::Calloc, 64);
            put_free(o, 0, 0x7fff_dead_beef);
        }
        let mut n = 0u64;
        while buf.has_room() {
            round(buf, n);
            n += 1;
        }
        assert!(buf.bytes().len() <= crate::record::buffer::BUFFER_BYTES);
        let mut v = Vec::new();
        for i in 0..n {
            round(&mut v, i);
        }
        // What fitted in the buffer is what the vector holds up to there.
        assert_eq!(buf.bytes(), &v[..buf.bytes().len()]);
        let mut c = Cursor::new(&v);
        for i in 0..n {
            assert_eq!(c.u8().unwrap(), tag::REALLOC);
            assert_eq!(c.uvarint().unwrap(), u64::MAX);
            assert_eq!(c.uvarint().unwrap(), 1);
            assert_eq!(address(&mut c).unwrap(), u64::MAX);
            assert_eq!(address(&mut c).unwrap(), i);
            assert_eq!(c.uvarint().unwrap(), u64::MAX);
            assert_eq!(c.uvarint().unwrap(), u64::MAX);
            assert_eq!(c.u8().unwrap(), AllocKind::Realloc as u8);
            assert_eq!(c.u8().unwrap(), tag::ALLOC);
            assert_eq!(c.uvarint().unwrap(), 1);
            assert_eq!(address(&mut c).unwrap(), i);
            assert_eq!(c.uvarint().unwrap(), i * 1000);
            assert_eq!(c.uvarint().unwrap(), 7);
            assert_eq!(c.u8().unwrap(), AllocKind::Calloc as u8);
            assert_eq!(c.uvarint().unwrap(), 64);
            assert_eq!(c.u8().unwrap(), tag::FREE);
            assert_eq!(c.uvarint().unwrap(), 0);
            assert_eq!(address(&mut c).unwrap(), 0x7fff_dead_beef);
        }
        assert!(c.is_empty());
        // SAFETY: `b` came from `Buffer::alloc` and is not used afterwards.
        unsafe { Buffer::free(b) };
    }
}

//! Decoding of the columns transform (see the parent module): the streams back into records.

use super::{
    body_end, is_event, makes_block, FreeModel, COPIES, COPY_OP, FREES, FREES_BY_THREAD,
    FREES_MODELED, FREES_PLAIN, KINDS, LANED, MAX_COPY_DISTANCE, OPS, OTHERS, PLACES, REST, SIZES,
    STACKS, STREAMS,
};
use crate::format::varint::{put_uvarint, Cursor, DecodeError};
use crate::format::{tag, MAX_CHUNK_PAYLOAD};

/// Reads the streams back.
struct Reading<'a> {
    /// The streams; the first [`LANED`] ones are the current lane's (codec 3).
    streams: [Cursor<'a>; STREAMS],
    /// Codec 3: the other lanes' cursors (the current one's are in `streams`), the current
    /// lane, and the lane of each thread switched to.
    lanes: Vec<[Cursor<'a>; LANED]>,
    lane: usize,
    lane_of: rustc_hash::FxHashMap<u64, usize>,
    /// The thread and lane switched away from last: two threads taking turns (a switch every
    /// few events) find each other's lane here, not in `lane_of`.
    prev: Option<(u64, usize)>,
    /// The current lane's thread.
    tid: Option<u64>,
    data: [&'a [u8]; STREAMS],
    /// Where the next record's fields start in the rest stream.
    rest_at: usize,
    /// Where the next record starts in the others stream.
    others_at: usize,
    /// After how many events the next record of the others stream goes (none: no more).
    next_place: Option<u64>,
    /// Events written so far.
    events: u64,
}

impl<'a> Reading<'a> {
    /// Copies a uvarint from stream `s`, byte by byte (most are one byte: a copy call costs more
    /// than the byte).
    #[inline]
    fn copy_varint(&mut self, s: usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let c = &mut self.streams[s];
        for _ in 0..10 {
            let b = c.u8()?;
            out.push(b);
            if b < 0x80 {
                return Ok(());
            }
        }
        Err(DecodeError("a varint longer than 10 bytes"))
    }
    fn copy_u8(&mut self, s: usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        out.push(self.streams[s].u8()?);
        Ok(())
    }

    /// The fields of a record with tag `t` from the rest stream.
    fn copy_rest(&mut self, t: u8, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let rest = self.data[REST];
        let end = body_end(t, rest, self.rest_at).ok_or(DecodeError("unknown record tag"))?;
        out.extend_from_slice(&rest[self.rest_at..end]);
        self.rest_at = end;
        Ok(())
    }

    /// A whole record from the others stream.
    fn copy_other(&mut self, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let others = self.data[OTHERS];
        let t = *others
            .get(self.others_at)
            .ok_or(DecodeError("the others stream ends early"))?;
        if is_event(t) {
            return Err(DecodeError("an event in the others stream"));
        }
        let end =
            body_end(t, others, self.others_at + 1).ok_or(DecodeError("unknown record tag"))?;
        out.extend_from_slice(&others[self.others_at..end]);
        if t == tag::CONTEXT && !self.lanes.is_empty() {
            let tid = Cursor::new(&others[self.others_at + 1..end]).uvarint()?;
            self.switch_to(tid)?;
        }
        self.others_at = end;
        Ok(())
    }

    /// Makes the lane of thread `tid` the current one (codec 3).
    fn switch_to(&mut self, tid: u64) -> Result<(), DecodeError> {
        let lane = match self.prev {
            Some((t, lane)) if t == tid => lane,
            _ => {
                let next = self.lane_of.len() + 1;
                *self.lane_of.entry(tid).or_insert(next)
            }
        };
        if self.tid != Some(tid) {
            self.prev = self.tid.map(|t| (t, self.lane));
            self.tid = Some(tid);
        }
        if lane >= self.lanes.len() {
            return Err(DecodeError(
                "more threads switched to than the chunk has lanes",
            ));
        }
        if lane != self.lane {
            // Save where the current lane's cursors stand, then take up the other lane's.
            for i in 0..LANED {
                self.lanes[self.lane][i] = self.streams[i].clone();
                self.streams[i] = self.lanes[lane][i].clone();
            }
            self.lane = lane;
        }
        Ok(())
    }

    /// Whether every lane's ops were read (the current one's included).
    fn all_ops_read(&self) -> bool {
        // The current lane's slot holds a stale copy: its cursors are in `streams`.
        self.streams[OPS].is_empty()
            && (self.lanes.iter().enumerate()).all(|(i, l)| i == self.lane || l[OPS].is_empty())
    }

    /// Reads the place of the next record of the others stream.
    fn read_place(&mut self) -> Result<(), DecodeError> {
        self.next_place = if self.streams[PLACES].is_empty() {
            None
        } else {
            let d = self.streams[PLACES].uvarint()?;
            Some(
                self.events
                    .checked_add(d)
                    .ok_or(DecodeError("a record's place overflows"))?,
            )
        };
        Ok(())
    }

    /// Writes the records of the others stream placed after the events written so far.
    fn place_others(&mut self, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        while self.next_place == Some(self.events) {
            self.copy_other(out)?;
            self.read_place()?;
        }
        Ok(())
    }
}

/// Records of a long copy decoded at once (between two looks at the piece size).
const COPY_BATCH: usize = 1 << 14;

/// Rebuilds the records of a transformed event chunk into `out` (cleared first); they must come
/// to `raw_len` bytes.
/// `laned`: codec 3 (lanes per thread), else codec 2.
pub fn decode(
    data: &[u8],
    laned: bool,
    raw_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    decode_with(data, laned, raw_len, out, &mut Vec::new())
}

/// [`decode`] with the event records' places in `starts` (scratch, kept by the caller across
/// chunks so that a large chunk does not allocate it again).
pub fn decode_with(
    data: &[u8],
    laned: bool,
    raw_len: usize,
    out: &mut Vec<u8>,
    starts: &mut Vec<(u32, u32)>,
) -> Result<(), DecodeError> {
    decode_pieces(data, laned, raw_len, out, starts, usize::MAX, &mut |_| true).map(|_| ())
}

/// [`decode_with`], handing `emit` the records decoded since its last call each time they
/// reach `every` bytes (at a record's end), and the last ones at the end: a reader on another
/// thread can start on a chunk's first records while the rest are decoded. `emit` returning
/// false stops the decoding (the result is then `Ok(false)`). The pieces together are the
/// chunk's records, in order; a damaged chunk may have given some before the error.
///
/// With pieces, `out` and `starts` keep a window, not the whole chunk: once a piece is handed
/// on, what lies before the last [`MAX_COPY_DISTANCE`] records (the farthest a copy reaches)
/// is dropped from both. A chunk decodes to up to 64 MiB and its places took 8 bytes a record:
/// kept whole, their first touches (a page fault, a zeroed page each) were a sixth of the
/// analyzer's time on a churn.
#[allow(clippy::too_many_arguments)]
pub fn decode_pieces(
    data: &[u8],
    laned: bool,
    raw_len: usize,
    out: &mut Vec<u8>,
    starts: &mut Vec<(u32, u32)>,
    every: usize,
    emit: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<bool, DecodeError> {
    let mut emitted = 0usize;
    // Bytes of the chunk's records dropped from the front of `out` (handed on in pieces).
    let mut dropped = 0usize;
    out.clear();
    let mut c = Cursor::new(data);
    let mut lens = [0usize; STREAMS];
    for l in &mut lens {
        *l = usize::try_from(c.uvarint()?).map_err(|_| DecodeError("stream too long"))?;
    }
    let mut at = c.position();
    let mut parts: [&[u8]; STREAMS] = [&[]; STREAMS];
    for (i, l) in lens.iter().enumerate() {
        parts[i] = data
            .get(at..at.checked_add(*l).ok_or(DecodeError("stream too long"))?)
            .ok_or(DecodeError("stream runs past the chunk"))?;
        at += l;
    }
    let mut lanes = Vec::new();
    if laned {
        lanes = split_lanes(&mut parts)?;
    }
    let mut rd = Reading {
        streams: parts.map(Cursor::new),
        lanes,
        lane: 0,
        lane_of: Default::default(),
        prev: None,
        tid: None,
        data: parts,
        rest_at: 0,
        others_at: 0,
        next_place: None,
        events: 0,
    };
    let (modeled, by_thread) = match rd.streams[FREES].u8() {
        Ok(FREES_MODELED) => (true, false),
        Ok(FREES_BY_THREAD) => (true, true),
        Ok(FREES_PLAIN) | Err(_) => (false, false),
        Ok(_) => return Err(DecodeError("unknown free stream layout")),
    };
    if raw_len > MAX_CHUNK_PAYLOAD {
        // Record places are kept as 32-bit offsets.
        return Err(DecodeError("implausible decoded length of an event chunk"));
    }
    starts.clear();
    // Only copies look back at earlier records: without any, their places are not kept.
    let copies = !parts[COPIES].is_empty();
    // In pieces, `out` holds about a piece and the copies' window at a time.
    out.reserve(raw_len.min(every.saturating_mul(4)));
    // At a record's end: the records since the last piece, when there are enough of them; then
    // what no copy can reach any more leaves `out` and `starts`.
    macro_rules! piece {
        () => {
            if out.len() - emitted >= every {
                if !emit(&out[emitted..]) {
                    return Ok(false);
                }
                let cut = match starts.len().checked_sub(MAX_COPY_DISTANCE) {
                    _ if !copies => out.len(),
                    Some(old) if old > 0 => starts[old].0 as usize,
                    _ => 0,
                };
                if cut > 0 {
                    out.drain(..cut);
                    let old = starts.len().saturating_sub(MAX_COPY_DISTANCE);
                    starts.drain(..old);
                    let c = cut as u32;
                    for s in starts.iter_mut() {
                        *s = (s.0 - c, s.1 - c);
                    }
                    dropped += cut;
                }
                emitted = out.len();
            }
        };
    }
    let mut model = FreeModel::new(by_thread);
    if by_thread {
        model.own.resize(rd.lanes.len().max(1), Default::default());
    }
    rd.read_place()?;
    loop {
        rd.place_others(out)?;
        if rd.streams[OPS].is_empty() {
            break;
        }
        let t = rd.streams[OPS].u8()?;
        if t == COPY_OP {
            let dist = rd.streams[COPIES].uvarint()? as usize;
            let count = rd.streams[COPIES].uvarint()? as usize;
            if dist == 0 || dist > starts.len() {
                return Err(DecodeError("a copy reaches before the chunk"));
            }
            // Writers never reach farther; a reader in pieces keeps no more.
            if dist > MAX_COPY_DISTANCE {
                return Err(DecodeError(
                    "a copy reaches farther back than 65,536 records",
                ));
            }
            if count > raw_len - (dropped + out.len()).min(raw_len) {
                return Err(DecodeError("columns decode past the chunk's length"));
            }
            // In runs between the records placed among its events. A run whose sources lie
            // back to back is a repeat of their bytes (of period `p` bytes when it is longer
            // than `dist` records: the sources then end where the run starts), copied a
            // doubling length at a time; a churn chunk is mostly such copies, which record by
            // record were most of its decoding. Otherwise record by record.
            let mut k = 0;
            while k < count {
                if k > 0 && rd.next_place == Some(rd.events) {
                    rd.place_others(out)?;
                }
                let n = starts.len();
                let first = n - dist;
                let mut m = (count - k).min(COPY_BATCH);
                if let Some(p) = rd.next_place.filter(|&p| p > rd.events) {
                    m = m.min(usize::try_from(p - rd.events).unwrap_or(usize::MAX));
                }
                let span = m.min(dist);
                let back_to_back = |j: usize| starts[j].1 == starts[j + 1].0;
                // The sources' first records that lie back to back are copied as one run: a
                // run cut at the first record placed among them (a thread switch, a sample)
                // ends there, and the next run starts after it. (Falling back to one record
                // whenever any pair in the span was apart rescanned the span for every
                // record: quadratic in the copy's length, 58% of sqlite3's `summary`.)
                match (first..first + span - 1).position(|j| !back_to_back(j)) {
                    Some(apart) => m = apart + 1,
                    // All back to back: a run longer than `dist` repeats them only when
                    // nothing was placed after the last of them.
                    None if m > dist && starts[n - 1].1 as usize != out.len() => m = dist,
                    None => {}
                }
                let repeat = m > 1;
                let from = starts[first].0 as usize;
                let p = out.len() - from;
                // Offsets fit: a chunk decodes to at most MAX_CHUNK_PAYLOAD bytes (checked below).
                let p32 = p as u32;
                for j in first..first + m {
                    let (a, b) = starts[j];
                    starts.push((a.wrapping_add(p32), b.wrapping_add(p32)));
                }
                let end = starts[starts.len() - 1].1 as usize;
                if end - out.len() > raw_len - (dropped + out.len()).min(raw_len) {
                    return Err(DecodeError("columns decode past the chunk's length"));
                }
                if !repeat {
                    // One record of a few bytes: byte by byte, too short for a copy call.
                    let (a, b) = starts[first];
                    for i in a as usize..b as usize {
                        let byte = out[i];
                        out.push(byte);
                    }
                } else {
                    while out.len() < end {
                        // From a whole number of periods back: the length doubles each time.
                        let src = from + (out.len() - from) % p;
                        let len = (end - out.len()).min(out.len() - src);
                        out.extend_from_within(src..src + len);
                    }
                }
                for &(a, _) in &starts[n..] {
                    if makes_block(out[a as usize]) {
                        model.next += 1;
                    }
                }
                rd.events += m as u64;
                k += m;
                piece!();
            }
            continue;
        }
        if !is_event(t) {
            return Err(DecodeError("an event chunk's op is not an event"));
        }
        let start = out.len();
        out.push(t);
        if matches!(t, tag::FREE | tag::REALLOC) {
            if modeled {
                let v = rd.streams[FREES].uvarint()?;
                if v == 0 {
                    out.push(0);
                    rd.copy_varint(FREES, out)?;
                } else {
                    put_uvarint(out, model.get(v, rd.lane)?);
                }
            } else {
                let back_at = out.len();
                rd.copy_varint(FREES, out)?;
                if out[back_at] == 0 {
                    rd.copy_varint(FREES, out)?;
                }
            }
        }
        match t {
            tag::ALLOC => {
                rd.copy_varint(SIZES, out)?;
                rd.copy_varint(STACKS, out)?;
                rd.copy_u8(KINDS, out)?;
                rd.copy_varint(KINDS, out)?;
                model.made(rd.lane);
            }
            tag::REALLOC => {
                rd.copy_varint(SIZES, out)?;
                rd.copy_varint(STACKS, out)?;
                rd.copy_u8(KINDS, out)?;
                model.made(rd.lane);
            }
            tag::FREE => {}
            _ => rd.copy_rest(t, out)?,
        }
        if copies {
            starts.push((start as u32, out.len() as u32));
        }
        rd.events += 1;
        if dropped + out.len() > raw_len {
            return Err(DecodeError("columns decode past the chunk's length"));
        }
        piece!();
    }
    if !rd.all_ops_read() {
        return Err(DecodeError(
            "a thread's ops go on after the chunk's last event",
        ));
    }
    if rd.next_place.is_some() {
        return Err(DecodeError(
            "a record is placed after the chunk's last event",
        ));
    }
    if dropped + out.len() != raw_len {
        return Err(DecodeError("columns do not decode to the chunk's length"));
    }
    Ok(emitted == out.len() || emit(&out[emitted..]))
}

/// Codec 3: splits each laned stream in `parts` into its lanes, leaving lane 0 in `parts`, and
/// returns every lane's cursors (lane 0's too, unused until it is switched back to).
fn split_lanes<'a>(
    parts: &mut [&'a [u8]; STREAMS],
) -> Result<Vec<[Cursor<'a>; LANED]>, DecodeError> {
    let mut count = None;
    let mut lanes: Vec<[&'a [u8]; LANED]> = Vec::new();
    for (i, part) in parts.iter_mut().take(LANED).enumerate() {
        let mut c = Cursor::new(part);
        let n = c.uvarint()?;
        // Every lane costs a length byte at least.
        if n == 0 || n > part.len() as u64 || count.is_some_and(|m| m != n) {
            return Err(DecodeError("the laned streams disagree on their lanes"));
        }
        count = Some(n);
        let mut lens = Vec::with_capacity(n as usize);
        for _ in 0..n {
            lens.push(usize::try_from(c.uvarint()?).map_err(|_| DecodeError("lane too long"))?);
        }
        let mut at = c.position();
        if i == 0 {
            lanes.resize(n as usize, [&[]; LANED]);
        }
        for (lane, len) in lanes.iter_mut().zip(lens) {
            let bytes = part
                .get(at..at.checked_add(len).ok_or(DecodeError("lane too long"))?)
                .ok_or(DecodeError("a lane runs past its stream"))?;
            lane[i] = bytes;
            at += len;
        }
        if at != part.len() {
            return Err(DecodeError("a laned stream is longer than its lanes"));
        }
        *part = lanes[0][i];
    }
    Ok(lanes.into_iter().map(|l| l.map(Cursor::new)).collect())
}

//! Decoding of the columns transform (see the parent module): the streams back into records.

use super::{
    body_end, is_event, makes_block, FreeModel, COPIES, COPY_OP, FREES, FREES_MODELED, FREES_PLAIN,
    KINDS, OPS, OTHERS, PLACES, REST, SIZES, STACKS, STREAMS,
};
use crate::format::varint::{put_uvarint, Cursor, DecodeError};
use crate::format::{tag, MAX_CHUNK_PAYLOAD};

/// Reads the streams back.
struct Reading<'a> {
    streams: [Cursor<'a>; STREAMS],
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
        self.others_at = end;
        Ok(())
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

/// Rebuilds the records of a transformed event chunk into `out` (cleared first); they must come
/// to `raw_len` bytes.
pub fn decode(data: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    decode_with(data, raw_len, out, &mut Vec::new())
}

/// [`decode`] with the event records' places in `starts` (scratch, kept by the caller across
/// chunks so that a large chunk does not allocate it again).
pub fn decode_with(
    data: &[u8],
    raw_len: usize,
    out: &mut Vec<u8>,
    starts: &mut Vec<(usize, usize)>,
) -> Result<(), DecodeError> {
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
    let mut rd = Reading {
        streams: parts.map(Cursor::new),
        data: parts,
        rest_at: 0,
        others_at: 0,
        next_place: None,
        events: 0,
    };
    let modeled = match rd.streams[FREES].u8() {
        Ok(FREES_MODELED) => true,
        Ok(FREES_PLAIN) | Err(_) => false,
        Ok(_) => return Err(DecodeError("unknown free stream layout")),
    };
    out.reserve(raw_len.min(MAX_CHUNK_PAYLOAD));
    starts.clear();
    // Only copies look back at earlier records: without any, their places are not kept.
    let copies = !parts[COPIES].is_empty();
    let mut model = FreeModel::default();
    rd.read_place()?;
    while !rd.streams[OPS].is_empty() {
        rd.place_others(out)?;
        let t = rd.streams[OPS].u8()?;
        if t == COPY_OP {
            let dist = rd.streams[COPIES].uvarint()? as usize;
            let count = rd.streams[COPIES].uvarint()? as usize;
            if dist == 0 || dist > starts.len() {
                return Err(DecodeError("a copy reaches before the chunk"));
            }
            for k in 0..count {
                if k > 0 && rd.next_place == Some(rd.events) {
                    rd.place_others(out)?;
                }
                let (from, to) = starts[starts.len() - dist];
                if to - from > raw_len - out.len().min(raw_len) {
                    return Err(DecodeError("columns decode past the chunk's length"));
                }
                if makes_block(out[from]) {
                    model.next += 1;
                }
                let start = out.len();
                // Byte by byte: records are a few bytes, too short for a copy call to pay (the
                // copy loop of a churn chunk is most of its decoding).
                for i in from..to {
                    let b = out[i];
                    out.push(b);
                }
                starts.push((start, out.len()));
                rd.events += 1;
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
                    put_uvarint(out, model.get(v)?);
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
                model.next += 1;
            }
            tag::REALLOC => {
                rd.copy_varint(SIZES, out)?;
                rd.copy_varint(STACKS, out)?;
                rd.copy_u8(KINDS, out)?;
                model.next += 1;
            }
            tag::FREE => {}
            _ => rd.copy_rest(t, out)?,
        }
        if copies {
            starts.push((start, out.len()));
        }
        rd.events += 1;
        if out.len() > raw_len {
            return Err(DecodeError("columns decode past the chunk's length"));
        }
    }
    rd.place_others(out)?;
    if rd.next_place.is_some() {
        return Err(DecodeError(
            "a record is placed after the chunk's last event",
        ));
    }
    if out.len() != raw_len {
        return Err(DecodeError("columns do not decode to the chunk's length"));
    }
    Ok(())
}

//! LEB128 variable-length integers, the building block of every record.

/// Destination for encoded bytes. Implemented for `Vec<u8>` (analyzer, tests) and for the
/// fixed-capacity buffers of the recorder, which must never allocate on the hot path.
pub trait Sink {
    /// Appends one byte.
    fn put_u8(&mut self, b: u8);
    /// Appends a slice.
    fn put_slice(&mut self, s: &[u8]) {
        for &b in s {
            self.put_u8(b);
        }
    }
}

impl Sink for Vec<u8> {
    #[inline]
    fn put_u8(&mut self, b: u8) {
        self.push(b);
    }
    #[inline]
    fn put_slice(&mut self, s: &[u8]) {
        self.extend_from_slice(s);
    }
}

/// Appends `v` as unsigned LEB128 (1–10 bytes).
#[inline]
pub fn put_uvarint<S: Sink + ?Sized>(s: &mut S, mut v: u64) {
    while v >= 0x80 {
        s.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    s.put_u8(v as u8);
}

/// `v` zigzag-encoded: small magnitudes of either sign become small numbers.
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// The signed value [`zigzag`] encoded as `u`.
#[inline]
pub fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Appends `v` zigzag-encoded (small magnitudes of either sign stay short).
#[inline]
pub fn put_ivarint<S: Sink + ?Sized>(s: &mut S, v: i64) {
    put_uvarint(s, zigzag(v));
}

/// Appends a length-prefixed byte string.
pub fn put_bytes<S: Sink + ?Sized>(s: &mut S, b: &[u8]) {
    put_uvarint(s, b.len() as u64);
    s.put_slice(b);
}

/// Error from decoding bytes inside a chunk whose checksum was correct: the writer and reader
/// disagree (a bug or a newer format), never a truncated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

/// A cursor over a byte slice.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// Starts at the beginning of `data`.
    #[inline]
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }
    /// True when every byte was consumed.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }
    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }
    /// The next byte, not consumed.
    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }
    /// Skips `n` bytes (at most to the end).
    #[inline]
    pub fn skip(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.data.len());
    }
    /// Reads one byte.
    #[inline]
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or(DecodeError("record runs past the end of its chunk"))?;
        self.pos += 1;
        Ok(b)
    }
    /// Reads a u64 written as 8 bytes little-endian.
    #[inline(always)]
    pub fn u64_le(&mut self) -> Result<u64, DecodeError> {
        let b = self
            .data
            .get(self.pos..self.pos + 8)
            .ok_or(DecodeError("record runs past the end of its chunk"))?;
        self.pos += 8;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    /// Reads an unsigned LEB128 value.
    #[inline]
    pub fn uvarint(&mut self) -> Result<u64, DecodeError> {
        // Most values of an event record (deltas, stack ids, small sizes) take one byte.
        match self.data.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            // Two bytes (sizes and stack ids up to 16383, blocks freed up to that far back).
            Some(&b) => match self.data.get(self.pos + 1) {
                Some(&c) if c < 0x80 => {
                    self.pos += 2;
                    Ok(u64::from(b & 0x7f) | u64::from(c) << 7)
                }
                _ => self.uvarint_long(),
            },
            None => self.uvarint_long(),
        }
    }
    /// [`Self::uvarint`] for values of more than one byte (and for errors).
    #[inline(never)]
    fn uvarint_long(&mut self) -> Result<u64, DecodeError> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let mut v: u64 = 0;
        // At most 10 bytes; the tenth holds bit 63 only.
        for (i, &b) in rest.iter().take(10).enumerate() {
            if i == 9 && b > 1 {
                return Err(DecodeError("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.pos += i + 1;
                return Ok(v);
            }
        }
        Err(DecodeError("record runs past the end of its chunk"))
    }
    /// Reads a zigzag-encoded signed value.
    pub fn ivarint(&mut self) -> Result<i64, DecodeError> {
        Ok(unzigzag(self.uvarint()?))
    }
    /// Reads a length-prefixed byte string.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.uvarint()?;
        let n = usize::try_from(n).map_err(|_| DecodeError("length does not fit in memory"))?;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or(DecodeError("string runs past the end of its chunk"))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    /// Reads a length-prefixed string, replacing invalid UTF-8.
    pub fn string(&mut self) -> Result<String, DecodeError> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_extremes() {
        let vals = [
            0u64,
            1,
            127,
            128,
            300,
            u32::MAX as u64,
            u64::MAX - 1,
            u64::MAX,
        ];
        let mut buf = Vec::new();
        for &v in &vals {
            put_uvarint(&mut buf, v);
        }
        for &v in &[0i64, -1, 1, i64::MIN, i64::MAX] {
            put_ivarint(&mut buf, v);
        }
        let mut c = Cursor::new(&buf);
        for &v in &vals {
            assert_eq!(c.uvarint().unwrap(), v);
        }
        for &v in &[0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(c.ivarint().unwrap(), v);
        }
        assert!(c.is_empty());
    }

    #[test]
    fn every_length_decodes_with_and_without_bytes_after_it() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for i in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Every bit length from 0 to 64.
            let v = x >> (i % 65).min(63) >> u32::from(i % 65 == 64);
            let mut buf = Vec::new();
            put_uvarint(&mut buf, v);
            let len = buf.len();
            for tail in [0usize, 1, 7, 9] {
                let mut b = buf.clone();
                b.extend(std::iter::repeat_n(0xffu8, tail));
                let mut c = Cursor::new(&b);
                assert_eq!(c.uvarint().unwrap(), v, "{v:#x} with {tail} bytes after");
                assert_eq!(c.position(), len);
            }
        }
    }

    #[test]
    fn truncated_and_overlong_are_errors() {
        assert!(Cursor::new(&[0x80]).uvarint().is_err());
        assert!(Cursor::new(&[0xff; 11]).uvarint().is_err());
        assert!(Cursor::new(&[5, b'a']).bytes().is_err());
    }
}

//! Streaming reader: header, then chunk by chunk. Memory is one chunk at a time.

use super::varint::{Cursor, DecodeError};
use super::{tag, AllocKind, Header, Module, Record, Segment, SymbolFrame};
use super::{CHUNK_HEADER_LEN, CHUNK_MAGIC, MAGIC, MAX_CHUNK_PAYLOAD, VERSION};
use std::io::{self, Read};

/// Why reading a profile failed outright (as opposed to ending early, see [`Truncation`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The file is empty.
    #[error("the file is empty: the profiled process wrote nothing (was it started?)")]
    Empty,
    /// The file does not start with the tidemark magic.
    #[error("not a tidemark profile (the first bytes are not \"TIDEMARK\")")]
    NotAProfile,
    /// The file was written by a newer format version.
    #[error("profile format version {0} is newer than this tidemark understands (version {VERSION}); upgrade tidemark")]
    UnsupportedVersion(u16),
    /// The header is cut short or fails its checksum.
    #[error("the profile header is damaged: {0}")]
    BadHeader(String),
    /// A chunk whose checksum is correct holds records this reader cannot decode.
    #[error("chunk at byte {offset} is malformed: {reason}")]
    BadRecord {
        /// File offset of the chunk.
        offset: u64,
        /// What was wrong.
        reason: &'static str,
    },
    /// An I/O error.
    #[error("read error: {0}")]
    Io(#[from] io::Error),
}

/// How a profile ended before its trailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// Byte offset of the first unreadable byte (the end of the last good chunk).
    pub offset: u64,
    /// What was found there.
    pub reason: String,
}

/// Reads a profile chunk by chunk.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let file = std::io::BufReader::new(std::fs::File::open("app.tmk")?);
/// let mut reader = tidemark::format::Reader::new(file)?;
/// while let Some(records) = reader.next_chunk()? {
///     for record in records {
///         println!("{:?}", record?);
///     }
/// }
/// if let Some(t) = reader.truncation() {
///     eprintln!("warning: truncated at byte {}: {}", t.offset, t.reason);
/// }
/// # Ok(()) }
/// ```
pub struct Reader<R> {
    inner: R,
    header: Header,
    offset: u64,
    payload: Vec<u8>,
    truncation: Option<Truncation>,
    trailing_damage: Option<Truncation>,
    saw_trailer: bool,
    finished: bool,
    chunk_offset: u64,
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: Read> Reader<R> {
    /// Reads and checks the header.
    pub fn new(mut inner: R) -> Result<Self, FormatError> {
        let mut fixed = [0u8; 16];
        let n = read_full(&mut inner, &mut fixed)?;
        if n == 0 {
            return Err(FormatError::Empty);
        }
        if n < 8 || fixed[..8] != MAGIC {
            return Err(FormatError::NotAProfile);
        }
        if n < 16 {
            return Err(FormatError::BadHeader(format!(
                "the file ends after {n} bytes, inside the header"
            )));
        }
        let version = u16::from_le_bytes([fixed[8], fixed[9]]);
        if version > VERSION || version == 0 {
            return Err(FormatError::UnsupportedVersion(version));
        }
        let body_len = u32::from_le_bytes([fixed[12], fixed[13], fixed[14], fixed[15]]) as usize;
        if body_len > MAX_CHUNK_PAYLOAD {
            return Err(FormatError::BadHeader(format!(
                "header length {body_len} is implausible"
            )));
        }
        let mut body = vec![0u8; body_len + 4];
        let got = read_full(&mut inner, &mut body)?;
        if got < body.len() {
            return Err(FormatError::BadHeader(
                "the file ends inside the header".to_owned(),
            ));
        }
        let crc = u32::from_le_bytes(body[body_len..].try_into().expect("4 bytes"));
        body.truncate(body_len);
        if crc32fast::hash(&body) != crc {
            return Err(FormatError::BadHeader("checksum mismatch".to_owned()));
        }
        let header = Header::decode_body(version, &body)
            .map_err(|e| FormatError::BadHeader(e.0.to_owned()))?;
        Ok(Reader {
            inner,
            header,
            offset: (16 + body_len + 4) as u64,
            payload: Vec::new(),
            truncation: None,
            trailing_damage: None,
            saw_trailer: false,
            finished: false,
            chunk_offset: 0,
        })
    }

    /// The profile header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Set once reading stopped early: the file ended or was damaged before a trailer. Records up
    /// to the last intact chunk were delivered.
    pub fn truncation(&self) -> Option<&Truncation> {
        self.truncation.as_ref()
    }

    /// Set when the profile ended cleanly (its trailer was read) but bytes after the trailer —
    /// chunks appended later, such as embedded symbols — are damaged and were skipped.
    pub fn trailing_damage(&self) -> Option<&Truncation> {
        self.trailing_damage.as_ref()
    }

    /// Bytes consumed so far (for progress reporting).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn stop(&mut self, reason: String) {
        self.finished = true;
        let t = Truncation {
            offset: self.offset,
            reason,
        };
        if !self.saw_trailer {
            self.truncation = Some(t);
        } else {
            self.trailing_damage = Some(t);
        }
    }

    /// The next intact chunk's records, or `None` at the end (check [`Reader::truncation`]).
    pub fn next_chunk(&mut self) -> Result<Option<RecordIter<'_>>, FormatError> {
        if self.finished {
            return Ok(None);
        }
        let mut head = [0u8; CHUNK_HEADER_LEN];
        let n = read_full(&mut self.inner, &mut head)?;
        if n == 0 {
            if self.saw_trailer {
                // A clean end.
                self.finished = true;
            } else {
                self.stop("the file ends without a trailer: the process was killed, crashed, or is still running".to_owned());
            }
            return Ok(None);
        }
        if n < CHUNK_HEADER_LEN {
            self.stop(format!("the file ends {n} bytes into a chunk header"));
            return Ok(None);
        }
        if head[..4] != CHUNK_MAGIC {
            self.stop("bytes that are not a chunk (damaged or overwritten data)".to_owned());
            return Ok(None);
        }
        let len = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        if len > MAX_CHUNK_PAYLOAD {
            self.stop(format!(
                "a chunk claims an implausible length of {len} bytes"
            ));
            return Ok(None);
        }
        // Grow with the data actually read, not the claimed length: a damaged length must not
        // allocate up to MAX_CHUNK_PAYLOAD for a file a few bytes long.
        self.payload.clear();
        self.payload.reserve(len.min(1 << 20));
        let got = (&mut self.inner)
            .take(len as u64)
            .read_to_end(&mut self.payload)?;
        if got < len {
            self.stop(format!(
                "the file ends inside a chunk ({got} of {len} bytes present)"
            ));
            return Ok(None);
        }
        if crc32fast::hash(&self.payload) != crc {
            self.stop("a chunk fails its checksum (damaged data)".to_owned());
            return Ok(None);
        }
        self.chunk_offset = self.offset;
        self.offset += (CHUNK_HEADER_LEN + len) as u64;
        // A trailer is always the last record of the last chunk.
        if self.payload.first() == Some(&tag::TRAILER) || contains_trailer(&self.payload) {
            self.saw_trailer = true;
        }
        Ok(Some(RecordIter {
            cursor: Cursor::new(&self.payload),
            tid: 0,
            prev_seq: 0,
            chunk_offset: self.chunk_offset,
            failed: false,
        }))
    }

    /// Reads every remaining record into `f`, chunk by chunk.
    pub fn for_each_record(
        &mut self,
        mut f: impl FnMut(Record) -> Result<(), FormatError>,
    ) -> Result<(), FormatError> {
        while let Some(it) = self.next_chunk()? {
            for r in it {
                f(r?)?;
            }
        }
        Ok(())
    }
}

/// Scans a payload for a trailer record (cheap: walks records without materializing them).
fn contains_trailer(payload: &[u8]) -> bool {
    let mut it = RecordIter {
        cursor: Cursor::new(payload),
        tid: 0,
        prev_seq: 0,
        chunk_offset: 0,
        failed: false,
    };
    // The writer puts the trailer in a chunk of its own at the end; check the last record.
    let mut last_is_trailer = false;
    for r in it.by_ref() {
        match r {
            Ok(Record::Trailer { .. }) => last_is_trailer = true,
            Ok(_) => last_is_trailer = false,
            Err(_) => return false,
        }
    }
    last_is_trailer
}

/// Iterator over the records of one chunk.
pub struct RecordIter<'a> {
    cursor: Cursor<'a>,
    tid: u32,
    prev_seq: u64,
    chunk_offset: u64,
    failed: bool,
}

impl RecordIter<'_> {
    fn decode(&mut self) -> Result<Option<Record>, DecodeError> {
        loop {
            if self.cursor.is_empty() {
                return Ok(None);
            }
            let c = &mut self.cursor;
            let t = c.u8()?;
            let rec = match t {
                tag::CONTEXT => {
                    self.tid = c.uvarint()? as u32;
                    self.prev_seq = c.uvarint()?;
                    continue;
                }
                tag::ALLOC => {
                    let seq = self.prev_seq.wrapping_add(c.uvarint()?);
                    self.prev_seq = seq;
                    let addr = c.uvarint()?;
                    let size = c.uvarint()?;
                    let stack = c.uvarint()?;
                    let kind = AllocKind::from_u8(c.u8()?)
                        .ok_or(DecodeError("unknown allocation kind"))?;
                    let align = c.uvarint()?;
                    Record::Alloc {
                        tid: self.tid,
                        seq,
                        addr,
                        size,
                        stack,
                        kind,
                        align,
                    }
                }
                tag::FREE => {
                    let seq = self.prev_seq.wrapping_add(c.uvarint()?);
                    self.prev_seq = seq;
                    Record::Free {
                        tid: self.tid,
                        seq,
                        addr: c.uvarint()?,
                    }
                }
                tag::REALLOC => {
                    let free_seq = self.prev_seq.wrapping_add(c.uvarint()?);
                    let seq = free_seq.wrapping_add(c.uvarint()?);
                    self.prev_seq = seq;
                    let old_addr = c.uvarint()?;
                    let new_addr = c.uvarint()?;
                    let size = c.uvarint()?;
                    let stack = c.uvarint()?;
                    let kind = AllocKind::from_u8(c.u8()?)
                        .ok_or(DecodeError("unknown allocation kind"))?;
                    Record::Realloc {
                        tid: self.tid,
                        free_seq,
                        seq,
                        old_addr,
                        new_addr,
                        size,
                        stack,
                        kind,
                    }
                }
                tag::STACK => {
                    let id = c.uvarint()?;
                    let n = c.uvarint()?;
                    if n > 4096 {
                        return Err(DecodeError("stack deeper than 4096 frames"));
                    }
                    let mut frames = Vec::with_capacity(n as usize);
                    let mut prev = 0u64;
                    for _ in 0..n {
                        prev = prev.wrapping_add(c.ivarint()? as u64);
                        frames.push(prev);
                    }
                    Record::Stack { id, frames }
                }
                tag::THREAD => Record::Thread {
                    tid: c.uvarint()? as u32,
                    name: c.string()?,
                    stack_lo: c.uvarint()?,
                    stack_hi: c.uvarint()?,
                },
                tag::THREAD_EXIT => Record::ThreadExit {
                    tid: c.uvarint()? as u32,
                    stack_high_water_bytes: c.uvarint()?,
                },
                tag::MODULES => {
                    let generation = c.uvarint()?;
                    let n = c.uvarint()?;
                    let mut modules = Vec::new();
                    for _ in 0..n {
                        let path = c.string()?;
                        let build_id = c.bytes()?.to_vec();
                        let base = c.uvarint()?;
                        let ns = c.uvarint()?;
                        let mut segments = Vec::new();
                        for _ in 0..ns {
                            segments.push(Segment {
                                start: c.uvarint()?,
                                size: c.uvarint()?,
                                flags: c.uvarint()? as u32,
                            });
                        }
                        modules.push(Module {
                            path,
                            build_id,
                            base,
                            segments,
                        });
                    }
                    Record::Modules {
                        generation,
                        modules,
                    }
                }
                tag::SAMPLE => {
                    let seq = c.uvarint()?;
                    let t_ns = c.uvarint()?;
                    let values = read_pairs(c)?;
                    Record::Sample { seq, t_ns, values }
                }
                tag::WATERMARK => Record::Watermark { seq: c.uvarint()? },
                tag::TRAILER => Record::Trailer {
                    values: read_pairs(c)?,
                },
                tag::MESSAGE => Record::Message {
                    level: c.u8()?,
                    text: c.string()?,
                },
                tag::SYMBOLS => {
                    let body = c.bytes()?;
                    let mut b = Cursor::new(body);
                    let n = b.uvarint()?;
                    let mut entries = Vec::new();
                    for _ in 0..n {
                        let ip = b.uvarint()?;
                        let m = b.uvarint()?;
                        let mut frames = Vec::new();
                        for _ in 0..m {
                            frames.push(SymbolFrame {
                                function: b.string()?,
                                file: b.string()?,
                                line: b.uvarint()? as u32,
                            });
                        }
                        entries.push((ip, frames));
                    }
                    Record::Symbols { entries }
                }
                t if t >= 64 => {
                    // Extensible record this version does not know: skip it.
                    c.bytes()?;
                    continue;
                }
                _ => return Err(DecodeError("unknown record tag")),
            };
            return Ok(Some(rec));
        }
    }
}

fn read_pairs(c: &mut Cursor<'_>) -> Result<Vec<(u64, u64)>, DecodeError> {
    let n = c.uvarint()?;
    if n > 1 << 16 {
        return Err(DecodeError("implausible number of values"));
    }
    let mut v = Vec::with_capacity(n as usize);
    for _ in 0..n {
        v.push((c.uvarint()?, c.uvarint()?));
    }
    Ok(v)
}

impl Iterator for RecordIter<'_> {
    type Item = Result<Record, FormatError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.decode() {
            Ok(r) => r.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(FormatError::BadRecord {
                    offset: self.chunk_offset,
                    reason: e.0,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    fn sample_profile(with_trailer: bool) -> Vec<u8> {
        let h = Header {
            version: VERSION,
            pid: 42,
            exe: "/bin/app".into(),
            cmdline: vec!["app".into(), "--x".into()],
            page_size: 4096,
            source: "preload".into(),
            ..Header::default()
        };
        let mut out = h.encode();
        let mut p = Vec::new();
        put_context(&mut p, 7, 100);
        put_alloc(&mut p, 1, 0x1000, 64, 3, AllocKind::Calloc, 0);
        put_free(&mut p, 2, 0x1000);
        put_realloc(&mut p, 1, 1, 0x2000, 0x3000, 128, 4, AllocKind::Realloc);
        put_stack(
            &mut p,
            3,
            &[0x55_0000_1234, 0x55_0000_1000, 0x7f00_0000_0000],
        );
        put_watermark(&mut p, 106);
        put_chunk(&mut out, &p);
        if with_trailer {
            let mut t = Vec::new();
            put_trailer(&mut t, &[(trailer_key::ALLOC_CALLS, 2)]);
            put_chunk(&mut out, &t);
        }
        out
    }

    fn read_all(bytes: &[u8]) -> (Vec<Record>, Option<Truncation>) {
        let mut r = Reader::new(bytes).unwrap();
        let mut v = Vec::new();
        r.for_each_record(|rec| {
            v.push(rec);
            Ok(())
        })
        .unwrap();
        (v, r.truncation().cloned())
    }

    #[test]
    fn roundtrip() {
        let bytes = sample_profile(true);
        let r = Reader::new(&bytes[..]).unwrap();
        assert_eq!(r.header().pid, 42);
        assert_eq!(r.header().cmdline, vec!["app", "--x"]);
        let (recs, trunc) = read_all(&bytes);
        assert!(trunc.is_none());
        assert_eq!(
            recs[0],
            Record::Alloc {
                tid: 7,
                seq: 101,
                addr: 0x1000,
                size: 64,
                stack: 3,
                kind: AllocKind::Calloc,
                align: 0
            }
        );
        assert_eq!(
            recs[1],
            Record::Free {
                tid: 7,
                seq: 103,
                addr: 0x1000
            }
        );
        assert_eq!(
            recs[2],
            Record::Realloc {
                tid: 7,
                free_seq: 104,
                seq: 105,
                old_addr: 0x2000,
                new_addr: 0x3000,
                size: 128,
                stack: 4,
                kind: AllocKind::Realloc
            }
        );
        assert_eq!(
            recs[3],
            Record::Stack {
                id: 3,
                frames: vec![0x55_0000_1234, 0x55_0000_1000, 0x7f00_0000_0000]
            }
        );
    }

    #[test]
    fn every_truncation_point_is_reported_not_fatal() {
        let bytes = sample_profile(true);
        let header_len = Reader::new(&bytes[..]).unwrap().offset() as usize;
        for cut in header_len..bytes.len() {
            let (_, trunc) = read_all(&bytes[..cut]);
            assert!(trunc.is_some(), "cut at {cut} not reported");
        }
        for cut in 1..header_len {
            assert!(Reader::new(&bytes[..cut]).is_err());
        }
        assert!(matches!(Reader::new(&[][..]), Err(FormatError::Empty)));
    }

    #[test]
    fn corruption_stops_at_last_good_chunk() {
        let mut bytes = sample_profile(true);
        let n = bytes.len();
        bytes[n - 2] ^= 0xff; // damage the trailer chunk
        let (recs, trunc) = read_all(&bytes);
        assert_eq!(recs.len(), 5);
        assert!(trunc.unwrap().reason.contains("checksum"));
        let (_, trunc) = read_all(&sample_profile(false));
        assert!(trunc.unwrap().reason.contains("without a trailer"));
        // Damage after the trailer: not a truncation, but reported.
        let mut bytes = sample_profile(true);
        let mut extra = Vec::new();
        put_chunk(&mut extra, b"\x0bxxxxxxxx");
        let n = extra.len();
        extra[n - 1] ^= 0xff;
        bytes.extend_from_slice(&extra);
        let mut r = Reader::new(&bytes[..]).unwrap();
        r.for_each_record(|_| Ok(())).unwrap();
        assert!(r.truncation().is_none());
        assert!(r.trailing_damage().unwrap().reason.contains("checksum"));
        let clean = sample_profile(true);
        let mut r = Reader::new(&clean[..]).unwrap();
        r.for_each_record(|_| Ok(())).unwrap();
        assert!(r.trailing_damage().is_none() && r.truncation().is_none());
    }
}

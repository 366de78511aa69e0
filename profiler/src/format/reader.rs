//! Streaming reader: header, then chunk by chunk. Memory is one chunk at a time.

use super::chunk::{ChunkCodec, ChunkKind};
use super::columns;
use super::decode::{ChunkBytes, OrderedState, RecordIter};
use super::varint::Cursor;
use super::{tag, Header, Record};
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
    /// Decompressed records of the current chunk (version 2, zstd).
    raw: Vec<u8>,
    /// The streams of an event chunk written as columns, before they are turned back into
    /// records.
    columns: Vec<u8>,
    /// Scratch of the columns' decoding.
    column_starts: Vec<(u32, u32)>,
    /// Whether the chunk in `columns` has lanes per thread (codec 3).
    columns_laned: bool,
    zstd: Option<zstd::bulk::Decompressor<'static>>,
    skip_events: bool,
    ordered: OrderedState,
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
            raw: Vec::new(),
            columns: Vec::new(),
            column_starts: Vec::new(),
            columns_laned: false,
            zstd: None,
            skip_events: false,
            ordered: OrderedState::default(),
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

    /// Takes the decoding buffers out of the reader (it reads on with fresh ones), so that
    /// whoever is done reading can free them elsewhere: a large profile's buffers take
    /// milliseconds to give back.
    pub fn take_buffers(&mut self) -> impl Send + 'static {
        (
            std::mem::take(&mut self.payload),
            std::mem::take(&mut self.raw),
            std::mem::take(&mut self.columns),
            std::mem::take(&mut self.column_starts),
        )
    }

    /// With `true`, [`Reader::next_chunk`] passes over version-2 event chunks without
    /// decompressing them: only definitions (stacks, modules), samples, messages, the trailer and
    /// appended symbols are delivered. Version-1 files have no chunk kinds and deliver everything.
    pub fn skip_events(&mut self, skip: bool) {
        self.skip_events = skip;
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

    /// [`Reader::advance`], with an event chunk's streams decoded into `raw` whole.
    fn advance_decoded(&mut self) -> Result<Step, FormatError> {
        match self.advance()? {
            Step::Columns(raw_len) => {
                self.decode_columns(raw_len, usize::MAX, &mut |_| true)?;
                Ok(Step::Raw)
            }
            step => Ok(step),
        }
    }

    /// Decodes the streams in `columns` into `raw`, handing `emit` the records decoded so far
    /// every `every` bytes or so and at the end (see [`columns::decode_pieces`]); false when
    /// `emit` asked to stop.
    fn decode_columns(
        &mut self,
        raw_len: usize,
        every: usize,
        emit: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<bool, FormatError> {
        columns::decode_pieces(
            &self.columns,
            self.columns_laned,
            raw_len,
            &mut self.raw,
            &mut self.column_starts,
            every,
            emit,
        )
        .map_err(|e| FormatError::BadRecord {
            offset: self.chunk_offset,
            reason: e.0,
        })
    }

    /// The next intact chunk's bytes, to decode elsewhere (on another thread, say) with
    /// [`ChunkBytes::records`], given to `send`: an event chunk stored as streams in pieces of
    /// about `every` decoded bytes as it is decoded (a churn's chunk holds millions of events,
    /// and the consumer need not wait for all of them), each piece a [`ChunkBytes`] that
    /// continues the one before; any other chunk whole. `reuse` gives the buffer for each (a
    /// [`ChunkBytes::into_buffer`] the consumer is done with), so memory is a few chunks however
    /// long the profile. False at the end (check [`Reader::truncation`]) or when `send`
    /// returned false.
    pub fn next_chunk_pieces(
        &mut self,
        every: usize,
        reuse: &mut dyn FnMut() -> Vec<u8>,
        send: &mut dyn FnMut(ChunkBytes) -> bool,
    ) -> Result<bool, FormatError> {
        loop {
            let version = self.header.version;
            let offset = self.chunk_offset;
            let (buf, from) = match self.advance()? {
                Step::End => return Ok(false),
                Step::Skipped => continue,
                Step::Payload(from) => (&mut self.payload, from),
                Step::Raw => (&mut self.raw, 0),
                Step::Columns(raw_len) => {
                    let mut first = true;
                    let mut emit = |records: &[u8]| {
                        let mut data = reuse();
                        data.clear();
                        data.extend_from_slice(records);
                        let piece = ChunkBytes::piece(data, version, offset, !first);
                        first = false;
                        send(piece)
                    };
                    return self.decode_columns(raw_len, every, &mut emit);
                }
            };
            let data = std::mem::replace(buf, reuse());
            return Ok(send(ChunkBytes::new(data, from, version, offset)));
        }
    }

    /// The next intact chunk's records, or `None` at the end (check [`Reader::truncation`]).
    pub fn next_chunk(&mut self) -> Result<Option<RecordIter<'_>>, FormatError> {
        loop {
            let version = self.header.version;
            let at = self.chunk_offset;
            return Ok(Some(match self.advance_decoded()? {
                Step::End => return Ok(None),
                Step::Skipped => continue,
                Step::Payload(from) if version < 2 => {
                    RecordIter::new(&self.payload[from..], version, at)
                }
                Step::Payload(from) => {
                    RecordIter::ordered(&self.payload[from..], version, &mut self.ordered, at)
                }
                Step::Raw | Step::Columns(_) => {
                    RecordIter::ordered(&self.raw, version, &mut self.ordered, at)
                }
            }));
        }
    }

    /// Reads the next chunk and says where its records are.
    fn advance(&mut self) -> Result<Step, FormatError> {
        if self.finished {
            return Ok(Step::End);
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
            return Ok(Step::End);
        }
        if n < CHUNK_HEADER_LEN {
            self.stop(format!("the file ends {n} bytes into a chunk header"));
            return Ok(Step::End);
        }
        if head[..4] != CHUNK_MAGIC {
            self.stop("bytes that are not a chunk (damaged or overwritten data)".to_owned());
            return Ok(Step::End);
        }
        let len = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        if len > MAX_CHUNK_PAYLOAD {
            self.stop(format!(
                "a chunk claims an implausible length of {len} bytes"
            ));
            return Ok(Step::End);
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
            return Ok(Step::End);
        }
        if crc32fast::hash(&self.payload) != crc {
            self.stop("a chunk fails its checksum (damaged data)".to_owned());
            return Ok(Step::End);
        }
        self.chunk_offset = self.offset;
        self.offset += (CHUNK_HEADER_LEN + len) as u64;
        let version = self.header.version;
        if version < 2 {
            // A trailer is always the last record of the last chunk.
            if contains_trailer(&self.payload) {
                self.saw_trailer = true;
            }
            return Ok(Step::Payload(0));
        }
        let bad = |reason| FormatError::BadRecord {
            offset: self.chunk_offset,
            reason,
        };
        let mut c = Cursor::new(&self.payload);
        let (kind, codec, raw_len) = match (c.u8(), c.u8(), c.uvarint()) {
            (Ok(k), Ok(codec), Ok(n)) => (ChunkKind::from_u8(k), codec, n),
            _ => return Err(bad("chunk framing cut short")),
        };
        if raw_len > MAX_CHUNK_PAYLOAD as u64 {
            return Err(bad("chunk claims an implausible decoded length"));
        }
        let data_at = c.position();
        if kind == ChunkKind::Trailer {
            self.saw_trailer = true;
        }
        if self.skip_events && kind == ChunkKind::Events {
            return Ok(Step::Skipped);
        }
        if codec == ChunkCodec::Stored as u8 {
            if raw_len as usize != self.payload.len() - data_at {
                return Err(bad("stored chunk length mismatch"));
            }
            Ok(Step::Payload(data_at))
        } else if codec == ChunkCodec::Zstd as u8 {
            let z = match &mut self.zstd {
                Some(z) => z,
                None => self.zstd.insert(zstd::bulk::Decompressor::new()?),
            };
            self.raw.clear();
            self.raw.reserve(raw_len as usize);
            match z.decompress_to_buffer(&self.payload[data_at..], &mut self.raw) {
                Ok(n) if n == raw_len as usize => {}
                _ => {
                    return Err(FormatError::BadRecord {
                        offset: self.chunk_offset,
                        reason: "compressed chunk does not decode to its stated length",
                    })
                }
            }
            Ok(Step::Raw)
        } else if kind == ChunkKind::Events
            && ((codec == ChunkCodec::Columns as u8 && version >= 3)
                || (codec == ChunkCodec::ColumnsByThread as u8 && version >= 4))
        {
            self.columns_laned = codec == ChunkCodec::ColumnsByThread as u8;
            let columns_len = match c.uvarint() {
                Ok(n) if n <= MAX_CHUNK_PAYLOAD as u64 => n as usize,
                _ => return Err(bad("implausible length of an event chunk's streams")),
            };
            let at = c.position();
            let z = match &mut self.zstd {
                Some(z) => z,
                None => self.zstd.insert(zstd::bulk::Decompressor::new()?),
            };
            self.columns.clear();
            self.columns.reserve(columns_len);
            match z.decompress_to_buffer(&self.payload[at..], &mut self.columns) {
                Ok(n) if n == columns_len => {}
                _ => return Err(bad("compressed chunk does not decode to its stated length")),
            }
            Ok(Step::Columns(raw_len as usize))
        } else {
            Err(bad(
                "unknown chunk codec (written by a newer tidemark? upgrade tidemark)",
            ))
        }
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

/// Where [`Reader::advance`] left the current chunk's records.
enum Step {
    /// No more chunks.
    End,
    /// An event chunk passed over ([`Reader::skip_events`]).
    Skipped,
    /// In `payload`, from this offset.
    Payload(usize),
    /// In `raw` (decompressed).
    Raw,
    /// An event chunk's streams in `columns`, decompressed, not decoded yet: the records come
    /// to this many bytes.
    Columns(usize),
}

/// Scans a payload for a trailer record (cheap: walks records without materializing them).
fn contains_trailer(payload: &[u8]) -> bool {
    if payload.first() == Some(&tag::TRAILER) {
        return true;
    }
    let mut it = RecordIter::new(payload, 1, 0);
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
        put_thread_switch(&mut p, 7);
        put_block_alloc(&mut p, 64, 3, AllocKind::Calloc, 0);
        put_block_free(&mut p, FreedBlock::Back(1));
        put_block_realloc(
            &mut p,
            FreedBlock::Unknown(0x2000),
            128,
            4,
            AllocKind::Realloc,
        );
        put_stack(
            &mut p,
            3,
            1,
            false,
            &[0x55_0000_1234, 0x55_0000_1000, 0x7f00_0000_0000],
        );
        put_watermark(&mut p, 106);
        put_chunk(&mut out, ChunkKind::Events, &p);
        if with_trailer {
            let mut t = Vec::new();
            put_trailer(&mut t, &[(trailer_key::ALLOC_CALLS, 2)]);
            put_chunk(&mut out, ChunkKind::Trailer, &t);
        }
        out
    }

    /// A version-1 file, byte by byte as version 1 wrote it.
    fn v1_profile() -> Vec<u8> {
        let h = Header {
            version: 1,
            pid: 9,
            ..Header::default()
        };
        let mut out = h.encode();
        out[8..10].copy_from_slice(&1u16.to_le_bytes());
        let mut p = Vec::new();
        put_context(&mut p, 7, 100);
        put_alloc(&mut p, 1, 0x1000, 64, 3, AllocKind::Malloc, 0);
        put_free(&mut p, 1, 0x1000);
        p.push(tag::STACK);
        put_uvarint(&mut p, 3);
        put_uvarint(&mut p, 2);
        put_ivarint(&mut p, 0x4000);
        put_ivarint(&mut p, -0x10);
        put_chunk_raw(&mut out, &p);
        let mut t = Vec::new();
        put_trailer(&mut t, &[(trailer_key::ALLOC_CALLS, 1)]);
        put_chunk_raw(&mut out, &t);
        out
    }

    #[test]
    fn reads_version_1() {
        let bytes = v1_profile();
        let (recs, trunc) = read_all(&bytes);
        assert!(trunc.is_none(), "{trunc:?}");
        assert_eq!(
            recs[..3],
            [
                Record::Alloc {
                    tid: 7,
                    seq: 101,
                    addr: 0x1000,
                    size: 64,
                    stack: 3,
                    kind: AllocKind::Malloc,
                    align: 0
                },
                Record::Free {
                    tid: 7,
                    seq: 102,
                    addr: 0x1000
                },
                Record::Stack {
                    id: 3,
                    generation: 0,
                    truncated: false,
                    frames: vec![0x4000, 0x3ff0],
                    base: 0,
                    keep: 0,
                    outer_omitted: false,
                }
            ]
        );
    }

    #[test]
    fn compressed_chunks_and_skipping_events() {
        let mut w = ChunkWriter::new(3).unwrap();
        let mut out = Header::default().encode();
        let mut p = Vec::new();
        put_thread_switch(&mut p, 1);
        for _ in 0..10_000u64 {
            put_block_alloc(&mut p, 48, 1, AllocKind::Malloc, 0);
            put_block_free(&mut p, FreedBlock::Back(1));
        }
        let raw = p.len();
        w.put(&mut out, ChunkKind::Events, &p).unwrap();
        let mut d = Vec::new();
        put_stack(&mut d, 1, 1, true, &[0x1234, 0x5678]);
        w.put(&mut out, ChunkKind::Definitions, &d).unwrap();
        let mut t = Vec::new();
        put_trailer(&mut t, &[(trailer_key::ALLOC_CALLS, 10_000)]);
        put_chunk(&mut out, ChunkKind::Trailer, &t);
        assert!(out.len() * 50 < raw, "{} of {raw} bytes", out.len());

        let (recs, trunc) = read_all(&out);
        assert!(trunc.is_none());
        assert_eq!(recs.len(), 20_000 + 2);
        assert_eq!(
            recs[19_999],
            Record::Free {
                tid: 1,
                seq: 19_999,
                addr: BLOCK_ID | 9_999
            }
        );
        assert_eq!(
            recs[19_998],
            Record::Alloc {
                tid: 1,
                seq: 19_998,
                addr: BLOCK_ID | 9_999,
                size: 48,
                stack: 1,
                kind: AllocKind::Malloc,
                align: 0
            }
        );
        let mut r = Reader::new(&out[..]).unwrap();
        r.skip_events(true);
        let mut kept = Vec::new();
        r.for_each_record(|rec| {
            kept.push(rec);
            Ok(())
        })
        .unwrap();
        assert!(r.truncation().is_none());
        assert_eq!(kept.len(), 2);
        assert!(matches!(
            kept[0],
            Record::Stack {
                truncated: true,
                ..
            }
        ));
        // A compressed chunk whose checksum holds but whose data does not decode is malformed.
        let mut bad = Header::default().encode();
        let mut z = Vec::new();
        w.put(&mut z, ChunkKind::Events, &p).unwrap();
        // (Its zstd frame's magic: any flipped byte in the frame may still decode.)
        let magic = z
            .windows(4)
            .position(|w| w == [0x28, 0xb5, 0x2f, 0xfd])
            .expect("a zstd frame");
        z[magic + 1] ^= 0x55;
        let len = z.len() - CHUNK_HEADER_LEN;
        let crc = crc32fast::hash(&z[CHUNK_HEADER_LEN..]);
        z[8..12].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(len, z.len() - 12);
        bad.extend_from_slice(&z);
        let mut r = Reader::new(&bad[..]).unwrap();
        let err = r.for_each_record(|_| Ok(()));
        assert!(matches!(err, Err(FormatError::BadRecord { .. })), "{err:?}");
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

    /// Chunks handed over as bytes and decoded with `visit`, one numbering state across them:
    /// the records iterating gives, for compressed and stored chunks, version 2 and version 1.
    #[test]
    fn chunk_bytes_and_visit_give_the_records_of_iterating() {
        let mut w = ChunkWriter::new(3).unwrap();
        let mut big = Header::default().encode();
        // The same events as columns (codec 2), which the reader hands over in pieces.
        let mut big_columns = Header::default().encode();
        for chunk in 0..3u64 {
            let mut p = Vec::new();
            put_thread_switch(&mut p, 1 + chunk as u32);
            for i in 0..1_000u64 {
                put_block_alloc(&mut p, 48 + i, 1, AllocKind::Malloc, 0);
                put_block_realloc(&mut p, FreedBlock::Back(1), 500 + i, 2, AllocKind::Realloc);
                put_block_free(&mut p, FreedBlock::Back(1 + chunk));
            }
            put_watermark(&mut p, 3_000 * (chunk + 1));
            w.put(&mut big, ChunkKind::Events, &p).unwrap();
            w.put_events(&mut big_columns, &p).unwrap();
            w.finish_events(&mut big_columns).unwrap();
        }
        for bytes in [big, big_columns, sample_profile(true), v1_profile()] {
            let (expect, trunc) = read_all(&bytes);
            let mut r = Reader::new(&bytes[..]).unwrap();
            let (mut got, mut state) = (Vec::new(), OrderedState::default());
            // Pieces of 4 KiB: the event chunks above (≈ 10 KB of records each) go in three,
            // the later ones in the thread of the chunk's first record.
            let mut send = |chunk: ChunkBytes| {
                chunk
                    .records(&mut state)
                    .visit(|rec| got.push(rec))
                    .unwrap();
                true
            };
            while r.next_chunk_pieces(4096, &mut Vec::new, &mut send).unwrap() {}
            assert_eq!(got, expect);
            assert_eq!(r.truncation().cloned(), trunc);
        }
    }

    #[test]
    fn visit_stops_at_a_malformed_record() {
        let mut p = Vec::new();
        put_thread_switch(&mut p, 1);
        put_block_alloc(&mut p, 64, 3, AllocKind::Malloc, 0);
        p.push(tag::ALLOC);
        p.push(0x80); // a varint cut short
        let mut state = OrderedState::default();
        let mut got = Vec::new();
        let err = RecordIter::ordered(&p, 2, &mut state, 77)
            .visit(|rec| got.push(rec))
            .unwrap_err();
        assert!(
            matches!(err, FormatError::BadRecord { offset: 77, .. }),
            "{err:?}"
        );
        assert_eq!(got.len(), 1);
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
                seq: 0,
                addr: BLOCK_ID,
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
                seq: 1,
                addr: BLOCK_ID
            }
        );
        assert_eq!(
            recs[2],
            Record::Realloc {
                tid: 7,
                free_seq: 2,
                seq: 3,
                old_addr: 0x2000,
                new_addr: BLOCK_ID | 1,
                size: 128,
                stack: 4,
                kind: AllocKind::Realloc
            }
        );
        assert_eq!(
            recs[3],
            Record::Stack {
                id: 3,
                generation: 1,
                truncated: false,
                frames: vec![0x55_0000_1234, 0x55_0000_1000, 0x7f00_0000_0000],
                base: 0,
                keep: 0,
                outer_omitted: false,
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
        put_chunk(&mut extra, ChunkKind::Appendix, b"\x0bxxxxxxxx");
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

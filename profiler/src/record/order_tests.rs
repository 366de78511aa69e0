//! The orderer carries each event's frame records (escape mode) through the reordering.

use super::*;
use crate::format::{self, ChunkKind, ChunkWriter, Header, Reader, Record};

/// Two threads' buffers whose events interleave in sequence order; each event has its frames.
fn buffers() -> (Vec<u8>, Vec<u8>) {
    let mut a = Vec::new();
    format::put_context(&mut a, 1, 0);
    wire::put_alloc(&mut a, 1, 0xa0, 16, 7, AllocKind::Malloc, 0); // seq 1
    format::put_event_frames(&mut a, 100, &[200, 300]);
    wire::put_free(&mut a, 3, 0xa0); // seq 4
    format::put_event_frames(&mut a, 150, &[300]);
    format::put_event_returns(&mut a, &[0x11, 0x22]);
    let mut b = Vec::new();
    format::put_context(&mut b, 2, 0);
    wire::put_alloc(&mut b, 2, 0xb0, 32, 8, AllocKind::Malloc, 0); // seq 2
    format::put_event_frames(&mut b, 1000, &[1100]);
    wire::put_free(&mut b, 1, 0xb0); // seq 3
    (a, b)
}

#[test]
fn frame_records_follow_their_event_in_global_order() {
    let (a, b) = buffers();
    let mut o = Orderer::default();
    let mut out = Vec::new();
    o.take_buffer(&a, &mut out);
    o.take_buffer(&b, &mut out);
    o.write_below(2, &mut out, usize::MAX, |_| Ok(())).unwrap();
    // The rest in a later pass: the waiting events keep their frames.
    o.write_below(10, &mut out, usize::MAX, |_| Ok(())).unwrap();
    let header = Header {
        version: 2,
        ..Header::default()
    };
    let mut file = header.encode();
    ChunkWriter::new(1)
        .unwrap()
        .put(&mut file, ChunkKind::Events, &out)
        .unwrap();
    let mut reader = Reader::new(&file[..]).unwrap();
    let recs: Vec<Record> = reader
        .next_chunk()
        .unwrap()
        .expect("one chunk")
        .map(|r| r.unwrap())
        .filter(|r| !matches!(r, Record::Watermark { .. }))
        .collect();
    let summary: Vec<String> = recs
        .iter()
        .map(|r| match r {
            Record::Alloc { tid, size, .. } => format!("alloc {tid} {size}"),
            Record::Free { tid, .. } => format!("free {tid}"),
            Record::EventFrames { tid, sp, cfas } => format!("frames {tid} {sp} {cfas:?}"),
            Record::EventReturns { tid, ips } => format!("returns {tid} {ips:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "alloc 1 16",
            "frames 1 100 [200, 300]",
            "alloc 2 32",
            "frames 2 1000 [1100]",
            "free 2",
            "free 1",
            "frames 1 150 [300]",
            "returns 1 [17, 34]",
        ]
    );
}

/// Merging the parts of a pass gives what a stable sort of them one after the other gives:
/// parts that overlap in runs (threads taking turns), parts that do not, equal keys across parts
/// (frees that read the same number), empty and one-event parts.
#[test]
fn merged_parts_are_the_stable_sort_of_their_copies() {
    let mut rng = super::synth::Rng(7);
    for round in 0..200 {
        let mut src: Vec<Ev> = Vec::new();
        let mut parts = Vec::new();
        let nparts = 1 + rng.below(if round % 2 == 0 { 6 } else { 60 }) as usize;
        for p in 0..nparts {
            let start = src.len();
            let mut key = rng.below(200);
            for _ in 0..rng.below(40) {
                // Small steps, so parts interleave; now and then the same key again.
                key += rng.below(if round % 3 == 0 { 2 } else { 12 });
                src.push(Ev {
                    key,
                    addr: (p as u64) << 32 | src.len() as u64,
                    size: 0,
                    stack: 0,
                    tid: p as u32,
                    side: 0,
                });
            }
            parts.push((start, src.len()));
        }
        parts.retain(|&(s, e)| s < e);
        let mut want: Vec<Ev> = parts
            .iter()
            .flat_map(|&(s, e)| src[s..e].to_vec())
            .collect();
        want.sort_by_key(|e| e.key);
        let (mut got, mut ready) = (Vec::new(), Vec::new());
        let slices: Vec<&[Ev]> = parts.iter().map(|&(s, e)| &src[s..e]).collect();
        merge_parts(&slices, &mut ready, &mut |batch: &[Ev]| {
            // Batches of about READY_BATCH (a few events in tests: their seams are tested).
            assert!(batch.len() < READY_BATCH + 40);
            got.extend_from_slice(batch);
            Ok(())
        })
        .unwrap();
        let ids = |v: &[Ev]| v.iter().map(|e| (e.key, e.addr)).collect::<Vec<_>>();
        assert_eq!(ids(&got), ids(&want), "round {round}");
    }
}

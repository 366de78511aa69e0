use super::*;
use crate::format::{
    put_block_alloc, put_block_free, put_block_realloc, put_sample, put_thread, put_thread_switch,
    put_watermark, AllocKind, FreedBlock,
};

fn round_trip(records: &[u8]) -> Vec<u8> {
    let mut c = Columns::default();
    let mut cols = Vec::new();
    c.encode(records, &mut cols)
        .expect("an event chunk's records");
    let mut back = Vec::new();
    decode(&cols, records.len(), &mut back).unwrap();
    assert_eq!(back, records);
    cols
}

/// The stream lengths at the start of the columns.
fn stream_lens(cols: &[u8]) -> [usize; STREAMS] {
    let mut c = Cursor::new(cols);
    [(); STREAMS].map(|_| c.uvarint().unwrap() as usize)
}

#[test]
fn a_loop_becomes_one_copy() {
    // A churn loop: malloc(32) and free it, 100,000 times, after a thread record.
    let mut r = Vec::new();
    put_thread(&mut r, 7, b"main", 0x1000, 0x9000);
    put_thread_switch(&mut r, 7);
    for _ in 0..100_000 {
        put_block_alloc(&mut r, 32, 1, AllocKind::Malloc, 0);
        put_block_free(&mut r, FreedBlock::Back(1));
    }
    put_watermark(&mut r, 200_000);
    let cols = round_trip(&r);
    // thread, context, 8 records before the first copy is possible... then one copy: a few
    // dozen bytes for 500 KB of records.
    assert!(cols.len() < 100, "{} bytes", cols.len());
    let lens = stream_lens(&cols);
    assert!(lens[COPIES] > 0 && lens[COPIES] <= 6, "{lens:?}");
}

#[test]
fn frees_of_old_blocks_are_written_as_differences() {
    // Each round makes 10 blocks and frees two made about 5,000 blocks before, whose distance
    // drifts by one every round: a ring being refilled.
    let mut r = Vec::new();
    put_thread_switch(&mut r, 1);
    for i in 0..20_000u64 {
        put_block_alloc(&mut r, 24 + i % 3, 2 + i % 5, AllocKind::Malloc, 0);
        if i % 5 == 4 && i > 6000 {
            put_block_free(&mut r, FreedBlock::Back(5000 + (i / 5) % 7));
        }
        if i % 7 == 0 {
            put_block_free(&mut r, FreedBlock::Back(1));
        }
    }
    put_block_realloc(
        &mut r,
        FreedBlock::Unknown(0xdead_beef),
        99,
        3,
        AllocKind::Realloc,
    );
    put_block_realloc(&mut r, FreedBlock::Back(4000), 100, 3, AllocKind::Realloc);
    put_sample(&mut r, 12, 3_000_000, &[(1, 4096), (2, 7)]);
    let cols = round_trip(&r);
    // The modeled free stream: its first byte says so.
    let lens = stream_lens(&cols);
    let at = cols.len() - lens.iter().sum::<usize>();
    let frees_at = at + lens[..FREES].iter().sum::<usize>();
    assert_eq!(cols[frees_at], FREES_MODELED);
}

#[test]
fn random_frees_stay_plain() {
    // Frees of random blocks far back: differences are no smaller than the distances.
    let mut r = Vec::new();
    put_thread_switch(&mut r, 1);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..5000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        put_block_alloc(
            &mut r,
            16 + x % 1000,
            1 + (x >> 20) % 50,
            AllocKind::Calloc,
            0,
        );
        put_block_free(&mut r, FreedBlock::Back(40 + (x >> 40) % 200));
    }
    let cols = round_trip(&r);
    let lens = stream_lens(&cols);
    let at = cols.len() - lens.iter().sum::<usize>();
    let frees_at = at + lens[..FREES].iter().sum::<usize>();
    assert_eq!(cols[frees_at], FREES_PLAIN);
}

#[test]
fn records_an_event_chunk_never_holds_are_refused() {
    let mut r = Vec::new();
    put_block_alloc(&mut r, 32, 1, AllocKind::Malloc, 0);
    crate::format::put_stack(&mut r, 1, 1, false, &[1, 2, 3]);
    assert!(Columns::default().encode(&r, &mut Vec::new()).is_none());
}

#[test]
fn damaged_columns_are_an_error_not_a_panic() {
    let mut r = Vec::new();
    put_thread_switch(&mut r, 3);
    for i in 0..3000u64 {
        put_block_alloc(&mut r, 8 + i % 4, 1, AllocKind::Malloc, 0);
        put_block_free(&mut r, FreedBlock::Back(1 + i % 2));
    }
    let cols = round_trip(&r);
    let mut out = Vec::new();
    for cut in [1, cols.len() / 2, cols.len() - 1] {
        assert!(decode(&cols[..cut], r.len(), &mut out).is_err());
    }
    for i in 0..cols.len() {
        let mut bad = cols.clone();
        bad[i] ^= 0x5a;
        // Anything but a panic or a wrong length passing as right.
        if decode(&bad, r.len(), &mut out).is_ok() {
            assert_eq!(out.len(), r.len());
        }
    }
}

#[test]
fn samples_and_frame_records_between_events_come_back_in_place() {
    // Escape mode: frame records after events; samples, watermarks and thread switches among
    // them, which must not break the copies of the loop around them.
    let mut r = Vec::new();
    let mut samples = crate::format::SampleDeltas::default();
    put_thread_switch(&mut r, 4);
    for i in 0..3000u64 {
        put_block_alloc(&mut r, 64, 9, AllocKind::Malloc, 0);
        crate::format::put_event_frames(&mut r, 0x7ff0_0000, &[0x7ff0_0010, 0x7ff0_0040]);
        put_block_free(&mut r, FreedBlock::Back(1));
        crate::format::put_event_frames(&mut r, 0x7ff0_0000, &[0x7ff0_0010]);
        crate::format::put_event_returns(&mut r, &[0x5555_0100, 0x5555_0200]);
        if i % 500 == 7 {
            // The first with its keys, the next ones without (the same keys).
            samples.put(&mut r, i * 1000, &[(1, i), (7, 4096)]);
            put_watermark(&mut r, i * 2);
        }
        if i % 700 == 3 {
            put_thread_switch(&mut r, 4 + (i % 2) as u32);
        }
    }
    put_sample(&mut r, 6000, 9_000_000, &[(1, 5), (2, 6)]);
    let cols = round_trip(&r);
    assert!(cols.len() < 400, "{} bytes", cols.len());
}

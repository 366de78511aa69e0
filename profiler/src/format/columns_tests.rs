use super::*;
use crate::format::{
    put_block_alloc, put_block_free, put_block_realloc, put_sample, put_thread, put_thread_switch,
    put_watermark, AllocKind, FreedBlock,
};

/// Codec 2's columns of `records`, after checking that they and codec 3's decode back to them.
fn round_trip(records: &[u8]) -> Vec<u8> {
    round_trip_laned(records);
    round_trip_as(records, false)
}

/// Codec 3's columns of `records`, checked as [`round_trip`] does.
fn round_trip_laned(records: &[u8]) -> Vec<u8> {
    round_trip_as(records, true)
}

fn round_trip_as(records: &[u8], laned: bool) -> Vec<u8> {
    let mut c = if laned {
        Columns::laned()
    } else {
        Columns::default()
    };
    let mut cols = Vec::new();
    c.encode(records, &mut cols)
        .expect("an event chunk's records");
    let mut back = Vec::new();
    decode(&cols, laned, records.len(), &mut back).unwrap();
    assert_eq!(back, records);
    // In pieces (a reader keeps only a window of the chunk then): the same records.
    for every in [1, 4096, 1 << 19] {
        assert_eq!(in_pieces(&cols, laned, records.len(), every), records);
    }
    // The encoder reused for a second chunk (lanes and threads from the first forgotten).
    let mut again = Vec::new();
    c.encode(records, &mut again).unwrap();
    decode(&again, laned, records.len(), &mut back).unwrap();
    assert_eq!(back, records);
    cols
}

/// The records of `cols` decoded in pieces of `every` bytes or more, put back together.
fn in_pieces(cols: &[u8], laned: bool, raw_len: usize, every: usize) -> Vec<u8> {
    let (mut out, mut starts, mut joined) = (Vec::new(), Vec::new(), Vec::new());
    let mut emit = |piece: &[u8]| {
        // Every piece but the last is at least `every` bytes.
        joined.push(piece.to_vec());
        true
    };
    assert!(decode_pieces(
        cols,
        laned,
        raw_len,
        &mut out,
        &mut starts,
        every,
        &mut emit
    )
    .unwrap());
    let n = joined.len();
    assert!(joined[..n.saturating_sub(1)]
        .iter()
        .all(|p| p.len() >= every));
    joined.concat()
}

/// Copies reaching as far back as a copy may (a period of [`MAX_COPY_DISTANCE`] records),
/// decoded in pieces much shorter than that: the window a reader in pieces keeps still holds
/// their sources, and what lies before it is dropped.
#[test]
fn copies_from_far_back_decode_in_pieces() {
    let mut r = Vec::new();
    put_thread_switch(&mut r, 3);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let period: Vec<u64> = (0..MAX_COPY_DISTANCE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            16 + x % 100_000
        })
        .collect();
    for _ in 0..3 {
        for &size in &period {
            put_block_alloc(&mut r, size, 1 + size % 7, AllocKind::Malloc, 0);
        }
    }
    let cols = round_trip(&r);
    // The second and third periods are copies of the first, from the farthest a copy reaches.
    assert!(
        cols.len() * 2 < r.len(),
        "{} of {} bytes",
        cols.len(),
        r.len()
    );
    let (mut out, mut starts) = (Vec::new(), Vec::new());
    let mut pieces = 0;
    decode_pieces(
        &cols,
        false,
        r.len(),
        &mut out,
        &mut starts,
        4096,
        &mut |_| {
            pieces += 1;
            true
        },
    )
    .unwrap();
    assert!(pieces > 100);
    assert!(
        out.len() < r.len() / 2,
        "{} of {} bytes kept",
        out.len(),
        r.len()
    );
    assert!(starts.len() < MAX_COPY_DISTANCE + 4096);
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
    assert!(Columns::laned().encode(&r, &mut Vec::new()).is_none());
}

#[test]
fn damaged_columns_are_an_error_not_a_panic() {
    let mut r = Vec::new();
    put_thread_switch(&mut r, 3);
    for i in 0..3000u64 {
        put_block_alloc(&mut r, 8 + i % 4, 1, AllocKind::Malloc, 0);
        put_block_free(&mut r, FreedBlock::Back(1 + i % 2));
    }
    put_thread_switch(&mut r, 4);
    for i in 0..3000u64 {
        put_block_alloc(&mut r, 9 + i % 4, 1, AllocKind::Malloc, 0);
        put_block_free(&mut r, FreedBlock::Back(1 + i % 2));
        if i % 3 == 0 {
            put_thread_switch(&mut r, 3 + (i % 2) as u32);
        }
    }
    for laned in [false, true] {
        let cols = round_trip_as(&r, laned);
        let mut out = Vec::new();
        for cut in [1, cols.len() / 2, cols.len() - 1] {
            assert!(decode(&cols[..cut], laned, r.len(), &mut out).is_err());
        }
        for i in 0..cols.len() {
            let mut bad = cols.clone();
            bad[i] ^= 0x5a;
            // Anything but a panic or a wrong length passing as right.
            if decode(&bad, laned, r.len(), &mut out).is_ok() {
                assert_eq!(out.len(), r.len());
            }
        }
    }
}

#[test]
fn each_threads_fields_go_to_a_lane_of_its_own() {
    // Two threads at once, each making blocks of 16, 17, … 271 bytes in turn (as the burst of
    // threads does), their events interleaved in runs of 1 to 6: the sizes stream of codec 2
    // mixes the two loops at random phases; codec 3's lanes each hold one loop.
    let mut r = Vec::new();
    let (mut i, mut j, mut x) = (0u64, 100u64, 0x2545_f491_4f6c_dd1du64);
    for _ in 0..4000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let (tid, n) = if x & 1 == 0 { (1, &mut i) } else { (2, &mut j) };
        put_thread_switch(&mut r, tid);
        for _ in 0..1 + (x >> 8) % 6 {
            put_block_alloc(&mut r, 16 + *n % 256, 1, AllocKind::Malloc, 0);
            put_block_free(&mut r, FreedBlock::Back(1 + (x >> 20) % 2));
            *n += 1;
        }
    }
    let plain = round_trip(&r);
    let laned = round_trip_laned(&r);
    let lens = stream_lens(&laned);
    // Three lanes: before the first switch (empty), thread 1, thread 2.
    let at = laned.len() - lens.iter().sum::<usize>();
    let sizes_at = at + lens[OPS];
    assert_eq!(laned[sizes_at], 3, "lanes of the sizes stream");
    let z = |c: &[u8]| zstd::bulk::compress(c, 1).unwrap().len();
    let sizes = |cols: &[u8]| {
        let lens = stream_lens(cols);
        let at = cols.len() - lens.iter().sum::<usize>() + lens[OPS];
        cols[at..at + lens[SIZES]].to_vec()
    };
    assert!(
        z(&sizes(&laned)) * 3 < z(&sizes(&plain)),
        "sizes laned {} bytes against {} compressed",
        z(&sizes(&laned)),
        z(&sizes(&plain))
    );
    assert!(
        z(&laned) * 3 < z(&plain) * 2,
        "laned {} bytes against {} compressed",
        z(&laned),
        z(&plain)
    );
}

#[test]
fn lanes_that_disagree_are_an_error() {
    let mut r = Vec::new();
    for t in [1u32, 2, 1, 3] {
        put_thread_switch(&mut r, t);
        put_block_alloc(&mut r, 40, 1, AllocKind::Malloc, 0);
    }
    let cols = round_trip_laned(&r);
    let mut out = Vec::new();
    // Codec 3's columns read as codec 2's, and the other way round.
    assert!(decode(&cols, false, r.len(), &mut out).is_err());
    assert!(decode(&round_trip(&r), true, r.len(), &mut out).is_err());
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

/// A loop whose copies' sources have records placed among them (samples, thread switches in
/// every other round): a copied run ends at each of them and the next run starts after it,
/// byte for byte, whether the record sits after the first, a middle or the last source.
#[test]
fn copies_whose_sources_have_records_placed_among_them() {
    let mut samples = crate::format::SampleDeltas::default();
    for gap in [1usize, 2, 7, 250, 499] {
        let mut r = Vec::new();
        put_thread_switch(&mut r, 3);
        for round in 0..200u64 {
            for i in 0..500u64 {
                put_block_alloc(&mut r, 16 + i * 8, 1 + i % 5, AllocKind::Malloc, 0);
                if round % 2 == 0 && i + 1 == gap as u64 {
                    samples.put(&mut r, round * 1000, &[(1, round), (7, 4096)]);
                }
                if round % 4 == 0 && i + 1 == (2 * gap as u64).min(500) {
                    put_thread_switch(&mut r, 3);
                }
            }
        }
        let cols = round_trip(&r);
        assert!(stream_lens(&cols)[COPIES] > 0, "gap {gap}: no copies");
        assert!(
            cols.len() * 10 < r.len(),
            "gap {gap}: {} of {} bytes",
            cols.len(),
            r.len()
        );
    }
}

/// The free stream's first byte and its length in `cols`.
fn frees_form(cols: &[u8]) -> (u8, usize) {
    let lens = stream_lens(cols);
    let at = cols.len() - lens.iter().sum::<usize>();
    let frees_at = at + lens[..FREES].iter().sum::<usize>();
    (cols[frees_at], lens[FREES])
}

/// Many threads at once, each freeing the block it made before its latest (the burst of 300
/// threads frees its latest): interleaved, the same free is a different `back` each time.
fn interleaved_threads(threads: u32, rounds: usize) -> Vec<u8> {
    let mut r = Vec::new();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    // Per thread: blocks made and not freed yet (numbers), of all blocks made so far.
    let mut mine: Vec<Vec<u64>> = vec![Vec::new(); threads as usize];
    let mut next = 0u64;
    for _ in 0..rounds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let t = (x % u64::from(threads)) as usize;
        put_thread_switch(&mut r, 10 + t as u32);
        for _ in 0..1 + (x >> 8) % 3 {
            put_block_alloc(&mut r, 16 + next % 256, 1 + t as u64, AllocKind::Malloc, 0);
            mine[t].push(next);
            next += 1;
            if mine[t].len() == 2 {
                let id = mine[t].remove(0);
                put_block_free(&mut r, FreedBlock::Back(next - id));
            }
        }
    }
    r
}

#[test]
fn frees_of_a_threads_own_latest_blocks_are_named_by_rank() {
    let r = interleaved_threads(40, 20_000);
    let laned = round_trip_laned(&r);
    let two = round_trip(&r);
    let (form, len) = frees_form(&laned);
    assert_eq!(form, FREES_BY_THREAD);
    let (form2, len2) = frees_form(&two);
    assert_ne!(form2, FREES_BY_THREAD);
    // Rank 2 of the thread's own blocks every time, against `back` values that move with the
    // other threads' events.
    let frees_stream = |cols: &[u8]| {
        let lens = stream_lens(cols);
        let at = cols.len() - lens.iter().sum::<usize>() + lens[..FREES].iter().sum::<usize>();
        cols[at..at + lens[FREES]].to_vec()
    };
    let z = |c: &[u8]| zstd::bulk::compress(c, 3).unwrap().len();
    let (a, b) = (z(&frees_stream(&laned)), z(&frees_stream(&two)));
    assert!(
        a * 4 < b,
        "thread form {a} ({len} raw), codec 2's {b} ({len2} raw)"
    );
}

#[test]
fn far_frees_alternating_between_two_regions_use_both_cursors() {
    // Each round frees a block of an old region and one of a newer region (a hash table's
    // entries torn down: its key made long ago, its value recently), both walking forward.
    let mut r = Vec::new();
    put_thread_switch(&mut r, 1);
    let mut next = 0u64;
    for _ in 0..30_000u64 {
        put_block_alloc(&mut r, 24, 2, AllocKind::Malloc, 0);
        next += 1;
    }
    for i in 0..8_000u64 {
        for id in [i * 2, 20_000 + i] {
            put_block_free(&mut r, FreedBlock::Back(next - id));
        }
        put_block_alloc(&mut r, 40, 3, AllocKind::Malloc, 0);
        next += 1;
    }
    let laned = round_trip_laned(&r);
    let two = round_trip(&r);
    let ((form, len), (_, len2)) = (frees_form(&laned), frees_form(&two));
    assert_eq!(form, FREES_BY_THREAD);
    // One byte a free (each cursor moves by 2 or 1) against the jumps between the regions.
    assert!(len <= 16_100, "thread form {len} bytes");
    assert!(len * 2 < len2, "thread form {len} bytes, codec 2's {len2}");
}

#[test]
fn a_free_naming_more_own_blocks_than_its_thread_made_is_an_error() {
    // Thread 2 made one block; a free of its rank 2 (value 8) is malformed.
    let mut r = Vec::new();
    put_thread_switch(&mut r, 1);
    put_block_alloc(&mut r, 24, 2, AllocKind::Malloc, 0);
    put_thread_switch(&mut r, 2);
    put_block_alloc(&mut r, 24, 2, AllocKind::Malloc, 0);
    put_block_free(&mut r, FreedBlock::Back(1));
    let mut cols = round_trip_laned(&r);
    let lens = stream_lens(&cols);
    let at = cols.len() - lens.iter().sum::<usize>() + lens[..FREES].iter().sum::<usize>();
    assert_eq!(&cols[at..at + lens[FREES]], &[FREES_BY_THREAD, 4]);
    cols[at + 1] = 8;
    let err = decode(&cols, true, r.len(), &mut Vec::new()).unwrap_err();
    assert!(err.0.contains("more of its thread's blocks"), "{}", err.0);
}

/// Threads switched to in every order (two taking turns, a third coming between them, one
/// coming back after many others) each find their own lane: each thread's sizes are its own, so
/// a record read from another thread's lane would not come back the same.
#[test]
fn threads_taking_turns_in_any_order_keep_their_lanes() {
    let mut r = Vec::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut tid = 10;
    for i in 0..20_000u64 {
        let t = match next(10) {
            // Mostly two threads taking turns, now and then any of six.
            0..=6 => 10 + (i % 2) as u32,
            _ => 10 + next(6) as u32,
        };
        if t != tid {
            put_thread_switch(&mut r, t);
            tid = t;
        }
        put_block_alloc(
            &mut r,
            u64::from(t) * 100 + next(3),
            1,
            AllocKind::Malloc,
            0,
        );
        put_block_free(&mut r, FreedBlock::Back(1));
    }
    round_trip_laned(&r);
}

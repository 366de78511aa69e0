//! With a session recording, `measure` names the sites that allocated inside the closure (this
//! file is one test binary: `Tracking<System>` with a session).

use std::alloc::System;
use std::hint::black_box;
use tidemark::{measure, Session, Tracking};

#[global_allocator]
static ALLOC: Tracking<System> = Tracking::new(System);

// Each box is one allocation of its own: the boxing is the point of the fixture.
#[allow(clippy::vec_box)]
#[inline(never)]
fn three_boxes_of_a_kilobyte() -> Vec<Box<[u8; 1024]>> {
    let mut v = Vec::with_capacity(3);
    for _ in 0..3 {
        v.push(black_box(Box::new([7u8; 1024])));
    }
    v
}

#[inline(never)]
fn one_small_string() -> String {
    black_box(String::with_capacity(40))
}

#[test]
fn measurement_names_its_top_sites_while_recording() {
    let path =
        std::env::temp_dir().join(format!("tidemark-measure-sites-{}.tmk", std::process::id()));
    let session = Session::start(&path).expect("session starts");
    let (kept, m) = measure(|| (three_boxes_of_a_kilobyte(), one_small_string()));
    assert_eq!(m.allocations, 5, "{m}");
    let first = m
        .top_sites
        .first()
        .unwrap_or_else(|| panic!("no sites named: {m}"));
    assert!(first.function.ends_with("three_boxes_of_a_kilobyte"), "{m}");
    assert_eq!(first.allocations, 4, "three boxes and the vector: {m}");
    assert_eq!(first.allocated_bytes, 3 * 1024 + 3 * 8, "{m}");
    assert!(
        m.top_sites
            .iter()
            .any(|s| s.function.ends_with("one_small_string") && s.allocated_bytes == 40),
        "{m}"
    );
    let text = m.to_string();
    assert!(
        text.contains("top sites:") && text.contains("three_boxes_of_a_kilobyte"),
        "{text}"
    );
    drop(kept);
    drop(session);
    let _ = std::fs::remove_file(&path);
}

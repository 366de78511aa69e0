//! Embedding tests against this test binary itself.

use super::*;
use crate::load::{load_path, LoadOptions};
use crate::symbolize::tests::{profile_with_self_module, temp_dir};

#[test]
fn embedded_symbols_travel_with_the_profile() {
    let dir = temp_dir("embed");
    let path = dir.join("p.tmk");
    std::fs::write(&path, profile_with_self_module(true)).unwrap();
    let report = embed_symbols(&path).unwrap();
    assert_eq!(report.addresses, 2);
    assert_eq!(report.resolved, 1, "0x10 lies in no module");
    assert!(report.bytes_written > 0);
    // Without reading any binary, the embedded names are used.
    let p = load_path(
        &path,
        &LoadOptions {
            symbolize: false,
            progress: false,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert!(p.truncated.is_none(), "{:?}", p.truncated);
    let lines = crate::render::folded(&p, crate::render::Metric::Allocated);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].contains("::marker_function_for_symbolization") && lines[0].ends_with(" 8"),
        "{lines:?}"
    );
    assert!(lines[0].starts_with("0x10;"), "{lines:?}");
    // A second call changes nothing.
    let again = embed_symbols(&path).unwrap();
    assert!(again.already_embedded);
    assert_eq!(again.bytes_written, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn embedding_into_a_truncated_profile_drops_the_unreadable_tail() {
    let dir = temp_dir("trunc");
    let path = dir.join("p.tmk");
    let mut bytes = profile_with_self_module(false);
    bytes.extend_from_slice(b"TMCK\x40\x00\x00\x00partial"); // a chunk cut short by a kill
    std::fs::write(&path, &bytes).unwrap();
    let report = embed_symbols(&path).unwrap();
    assert_eq!(report.resolved, 1);
    let p = load_path(
        &path,
        &LoadOptions {
            symbolize: false,
            progress: false,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert!(p.truncated.is_some(), "still truncated: no trailer");
    let lines = crate::render::folded(&p, crate::render::Metric::Allocated);
    assert!(
        lines[0].contains("marker_function_for_symbolization"),
        "{lines:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn embed_errors_name_the_file() {
    let dir = temp_dir("err");
    let e = embed_symbols(&dir.join("none.tmk")).unwrap_err();
    assert!(e.to_string().contains("none.tmk"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

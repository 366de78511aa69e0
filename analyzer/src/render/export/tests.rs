//! Exporter tests on a synthetic profile whose every number is known.

use std::io::Read;

use ::pprof::protos::Message;
use tidemark::format::trailer_key;

use super::*;
use crate::load::synthetic::{Builder, Ev};
use crate::load::{load_reader, LoadOptions};

/// Stacks: 1 = main;mid;leaf_a, 2 = main;mid;leaf_b with `inl` inlined into leaf_b, 3 = main;leaf_c.
/// Events (thread 1 unless said): +100 a (1), +10 b (2), sample, -b, +1000 c (3),
/// +5 d (1) [peak 1105 in 3 blocks], -c, thread 2: +7 e (2), realloc e → 20 f (2). End: a, d, f live = 125 bytes.
fn sample() -> Profile {
    let mut b = Builder::new();
    b.modules(0, &[("/bin/app", 0x1000, 0x1000)])
        .stacks(&[
            (1, &[0x1010, 0x1020, 0x1030]),
            (2, &[0x1011, 0x1020, 0x1030]),
            (3, &[0x1012, 0x1030]),
        ])
        .symbols(&[
            (0x1010, &[("leaf_a", "x.rs", 1)]),
            (0x1011, &[("inl", "x.rs", 2), ("leaf_b", "x.rs", 3)]),
            (0x1012, &[("leaf_c", "x.rs", 4)]),
            (0x1020, &[("mid", "x.rs", 5)]),
            (0x1030, &[("main", "x.rs", 6)]),
        ])
        .batch(
            1,
            &[
                Ev::Alloc(0, 0xa, 100, 1),
                Ev::Alloc(1, 0xb, 10, 2),
                Ev::Free(2, 0xb),
                Ev::Alloc(3, 0xc, 1000, 3),
                Ev::Alloc(4, 0xd, 5, 1),
                Ev::Free(5, 0xc),
            ],
        )
        .sample(2, 2_000_000, &[])
        .batch(
            2,
            &[Ev::Alloc(6, 0xe, 7, 2), Ev::Realloc(7, 8, 0xe, 0xf, 20, 2)],
        )
        .trailer(&[(trailer_key::END_NS, 10_000_000)]);
    load_reader(
        &b.bytes()[..],
        &LoadOptions {
            symbolize: false,
            block_groups: true,
            ..LoadOptions::default()
        },
    )
    .unwrap()
}

fn run(p: &Profile, format: ExportFormat, opts: ExportOptions) -> Vec<u8> {
    let mut out = Vec::new();
    export(p, format, &opts, &mut out).unwrap();
    out
}

fn pprof_of(p: &Profile, opts: ExportOptions) -> ::pprof::protos::Profile {
    let gz = run(p, ExportFormat::Pprof, opts);
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .unwrap();
    ::pprof::protos::Profile::decode(&raw[..]).unwrap()
}

fn column_sums(pb: &::pprof::protos::Profile) -> Vec<i64> {
    (0..pb.sample_type.len())
        .map(|i| pb.sample.iter().map(|s| s.value[i]).sum())
        .collect()
}

#[test]
fn pprof_columns_sum_to_the_totals_at_the_end_and_at_the_peak() {
    let p = sample();
    let t = &p.totals;
    assert_eq!((t.counts.allocations, t.counts.allocated_bytes), (6, 1142));
    assert_eq!(
        (t.counts.leaked_allocations, t.counts.leaked_bytes),
        (3, 125)
    );
    assert_eq!((t.counts.peak_bytes, t.peak_blocks), (1105, 3));

    let end = pprof_of(&p, ExportOptions::default());
    assert_eq!(end.string_table[0], "");
    let types: Vec<(&str, &str)> = end
        .sample_type
        .iter()
        .map(|v| {
            (
                end.string_table[v.ty as usize].as_str(),
                end.string_table[v.unit as usize].as_str(),
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes")
        ]
    );
    assert_eq!(column_sums(&end), [6, 1142, 3, 125]);
    assert_eq!(end.period, 0);
    assert_eq!(end.duration_nanos, 10_000_000);

    let peak = pprof_of(
        &p,
        ExportOptions {
            at: Some(At::Peak),
            ..ExportOptions::default()
        },
    );
    assert_eq!(column_sums(&peak), [6, 1142, 3, 1105]);
}

#[test]
fn pprof_locations_hold_inlined_frames_innermost_first_and_a_mapping() {
    let p = sample();
    let pb = pprof_of(&p, ExportOptions::default());
    let name = |fid: u64| {
        let f = pb.function.iter().find(|f| f.id == fid).unwrap();
        pb.string_table[f.name as usize].clone()
    };
    let loc = pb.location.iter().find(|l| l.address == 0x1011).unwrap();
    let names: Vec<String> = loc.line.iter().map(|l| name(l.function_id)).collect();
    assert_eq!(names, ["inl", "leaf_b"]);
    assert_eq!(loc.line[0].line, 2);
    let mapping = pb.mapping.iter().find(|m| m.id == loc.mapping_id).unwrap();
    assert_eq!(pb.string_table[mapping.filename as usize], "/bin/app");
    // Stack 3's sample: leaf first, `bytes` label with its single block size.
    let s = pb.sample.iter().find(|s| s.value[1] == 1000).unwrap();
    let leaf = pb
        .location
        .iter()
        .find(|l| l.id == s.location_id[0])
        .unwrap();
    assert_eq!(name(leaf.line[0].function_id), "leaf_c");
    assert_eq!(s.label.len(), 1);
    assert_eq!(pb.string_table[s.label[0].key as usize], "bytes");
    assert_eq!(s.label[0].num, 1000);
    // Stack 2 had sizes 10, 7 and 20: no single size, no label.
    let mixed = pb.sample.iter().find(|s| s.value[0] == 3).unwrap();
    assert!(mixed.label.is_empty());
}

#[test]
fn pprof_metric_picks_the_default_type_and_instant() {
    let p = sample();
    let pb = pprof_of(
        &p,
        ExportOptions {
            metric: Some(Metric::Peak),
            at: None,
        },
    );
    assert_eq!(
        pb.string_table[pb.default_sample_type as usize],
        "inuse_space"
    );
    assert_eq!(column_sums(&pb)[3], 1105);
    let pb = pprof_of(
        &p,
        ExportOptions {
            metric: Some(Metric::Allocations),
            at: None,
        },
    );
    assert_eq!(
        pb.string_table[pb.default_sample_type as usize],
        "alloc_objects"
    );
    for bad in [
        ExportOptions {
            metric: Some(Metric::Peak),
            at: Some(At::End),
        },
        ExportOptions {
            metric: Some(Metric::Temporary),
            at: None,
        },
    ] {
        let err = export(&p, ExportFormat::Pprof, &bad, Vec::new()).unwrap_err();
        assert!(matches!(err, ExportError::Options(_)), "{err}");
    }
}

#[test]
fn options_that_do_not_apply_are_refused() {
    let p = sample();
    let metric = ExportOptions {
        metric: Some(Metric::Leaked),
        at: None,
    };
    let at = ExportOptions {
        metric: None,
        at: Some(At::Peak),
    };
    for format in [
        ExportFormat::Firefox,
        ExportFormat::Dhat,
        ExportFormat::Json,
    ] {
        assert!(export(&p, format, &metric, Vec::new()).is_err());
        assert!(export(&p, format, &at, Vec::new()).is_err());
    }
    assert!(export(&p, ExportFormat::Folded, &at, Vec::new()).is_err());
}

#[test]
fn formats_that_need_block_groups_say_so() {
    let mut p = sample();
    p.block_groups = None;
    for format in [ExportFormat::Firefox, ExportFormat::Dhat] {
        let err = export(&p, format, &ExportOptions::default(), Vec::new()).unwrap_err();
        assert!(
            matches!(err, ExportError::MissingBlockGroups { .. }),
            "{err}"
        );
    }
}

#[test]
fn dhat_program_points_sum_to_the_totals() {
    let p = sample();
    let d: serde_json::Value =
        serde_json::from_slice(&run(&p, ExportFormat::Dhat, ExportOptions::default())).unwrap();
    assert_eq!(d["dhatFileVersion"], 2);
    assert_eq!(d["mode"], "heap");
    assert_eq!(d["ftbl"][0], "[root]");
    assert_eq!(d["te"], 10_000);
    let sum = |k: &str| -> u64 {
        d["pps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pp| pp[k].as_u64().unwrap())
            .sum()
    };
    assert_eq!(sum("tb"), 1142);
    assert_eq!(sum("tbk"), 6);
    assert_eq!(sum("gb"), 1105);
    assert_eq!(sum("gbk"), 3);
    assert_eq!(sum("eb"), 125);
    assert_eq!(sum("ebk"), 3);
    // Stack 1: 100 then 5 more, both live to the end: its own max is 105 bytes in 2 blocks.
    let pp1 = d["pps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|pp| pp["tb"] == 105)
        .unwrap();
    assert_eq!(
        (pp1["mb"].as_u64(), pp1["mbk"].as_u64()),
        (Some(105), Some(2))
    );
    // Frames innermost first: leaf_a, mid, main.
    let names: Vec<&str> = pp1["fs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| d["ftbl"][i.as_u64().unwrap() as usize].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "0x1010: leaf_a (x.rs:1)",
            "0x1020: mid (x.rs:5)",
            "0x1030: main (x.rs:6)",
            "[unwinding stopped]"
        ]
    );
    // Lifetimes: the events before the sample (seq 0..1) span 0..2 ms, those after it 2..10 ms.
    // Block a: seq 0 (0 ns) to the end (10 ms); block d: seq 4 to the end.
    let tl = pp1["tl"].as_u64().unwrap();
    assert!(tl > 10_000 && tl < 20_000, "tl {tl}");
}

#[test]
fn firefox_allocations_balance_to_the_leaks() {
    let p = sample();
    let v: serde_json::Value =
        serde_json::from_slice(&run(&p, ExportFormat::Firefox, ExportOptions::default())).unwrap();
    assert_eq!(
        v["meta"]["preprocessedProfileVersion"],
        firefox::PROCESSED_PROFILE_VERSION
    );
    let threads = v["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 2);
    // Each thread's track holds its own allocations and their frees; together they balance.
    let mut all: Vec<i64> = Vec::new();
    let mut tracks = 0;
    for thread in threads {
        let na = &thread["nativeAllocations"];
        let Some(weights) = na["weight"].as_array() else {
            continue;
        };
        tracks += 1;
        let w: Vec<i64> = weights.iter().map(|x| x.as_i64().unwrap()).collect();
        assert_eq!(na["memoryAddress"].as_array().unwrap().len(), w.len());
        let times: Vec<f64> = na["time"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        all.extend(w);
    }
    assert!(tracks >= 1);
    assert_eq!(all.iter().filter(|&&x| x > 0).sum::<i64>(), 1142);
    assert_eq!(all.iter().sum::<i64>(), 125);
}

#[test]
fn folded_and_json_carry_the_same_totals() {
    let p = sample();
    let folded = String::from_utf8(run(
        &p,
        ExportFormat::Folded,
        ExportOptions {
            metric: Some(Metric::Leaked),
            at: None,
        },
    ))
    .unwrap();
    assert_eq!(
        folded,
        "[unwinding stopped];main;mid;leaf_a 105\n[unwinding stopped];main;mid;leaf_b;inl 20\n"
    );
    let j: serde_json::Value =
        serde_json::from_slice(&run(&p, ExportFormat::Json, ExportOptions::default())).unwrap();
    assert_eq!(j["schema"], json::SCHEMA);
    assert_eq!(j["summary"]["allocated_bytes"], 1142);
    let stacks = j["stacks"].as_array().unwrap();
    assert_eq!(stacks.len(), 3);
    assert_eq!(stacks[0]["allocated_bytes"], 1000);
    assert_eq!(stacks[0]["frames"][0]["function"], "leaf_c");
    let leaked: u64 = stacks
        .iter()
        .map(|s| s["leaked_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(leaked, 125);
}

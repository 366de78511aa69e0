//! pprof of CPU samples (`--metric cpu`): a gzipped `profile.proto` as Go's CPU profiles are,
//! sample types `samples/count` and `cpu/nanoseconds`, period type `cpu/nanoseconds` with the
//! sampling period. One sample per recorded CPU stack; summed over samples, the columns equal the
//! profile's CPU sample count and CPU time. Locations, functions and mappings are built as for
//! the heap profile ([`super::pprof`]).

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use pprof::protos::{self, Message};

use super::pprof::{Locations, Mappings, StringTable};
use super::ExportError;
use crate::analysis::Metric;
use crate::model::Profile;

/// The CPU pprof message for `p` (ungzipped); an error when `p` has no CPU samples.
pub fn build(p: &Profile) -> Result<protos::Profile, ExportError> {
    Metric::Cpu.check_available(p)?;
    let Some(cpu) = p.cpu.as_ref() else {
        return Ok(protos::Profile::default());
    };
    let mut strings = StringTable::new();
    let cpu_type = protos::ValueType {
        ty: strings.id("cpu"),
        unit: strings.id("nanoseconds"),
    };
    let mut out = protos::Profile {
        sample_type: vec![
            protos::ValueType {
                ty: strings.id("samples"),
                unit: strings.id("count"),
            },
            cpu_type.clone(),
        ],
        period_type: Some(cpu_type.clone()),
        period: cpu.period_ns as i64,
        time_nanos: p.header.start_unix_ns as i64,
        duration_nanos: p.totals.duration_ns as i64,
        ..protos::Profile::default()
    };
    out.default_sample_type = cpu_type.ty;
    let mut comments = vec![format!(
        "tidemark CPU profile of {} (pid {}): {} samples, {} lost",
        p.header.exe,
        p.header.pid,
        cpu.sample_count(),
        cpu.lost_samples
    )];
    if let Some(t) = &p.truncated {
        comments.push(format!(
            "WARNING: truncated profile ({}); numbers cover the recorded part only",
            t.reason
        ));
    }
    out.comment = comments.iter().map(|c| strings.id(c)).collect();
    let mappings = Mappings::new(p, &mut strings);
    out.mapping = mappings.list.clone();
    let mut locations = Locations::default();
    for s in &cpu.stacks {
        if s.samples == 0 {
            continue;
        }
        let location_id = locations.ids(p, s.stack, &mut out, &mut strings, &mappings);
        out.sample.push(protos::Sample {
            location_id,
            value: vec![s.samples as i64, s.cpu_ns as i64],
            label: Vec::new(),
        });
    }
    out.string_table = strings.strings;
    Ok(out)
}

/// Writes the CPU samples of `p` as a gzipped pprof profile.
pub fn write<W: Write>(p: &Profile, out: W) -> Result<(), ExportError> {
    let bytes = build(p)?.encode_to_vec();
    let mut gz = GzEncoder::new(out, Compression::default());
    gz.write_all(&bytes)?;
    gz.finish()?.flush()?;
    Ok(())
}

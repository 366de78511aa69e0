//! The escape section of `summary` (text) and its JSON keys.

use std::fmt::Write as _;

use crate::analysis::escape::{Escape, ThreadStack};

use super::units::{bytes, count};

/// Sites listed per section of the text.
const TEXT_SITES: usize = 10;

/// The "stack" line, the "could live on the stack" list and the other escape classes.
pub fn escape_text(e: &Escape, threads: &[ThreadStack], top: usize) -> String {
    let mut w = String::new();
    let top = top.clamp(1, TEXT_SITES.max(top));
    if !threads.is_empty() {
        let parts: Vec<String> = threads
            .iter()
            .map(|t| {
                let name = if t.name.is_empty() {
                    format!("thread {}", t.tid)
                } else {
                    format!("{} ({})", t.name, t.tid)
                };
                match t.stack_peak_bytes {
                    Some(peak) => {
                        format!(
                            "{name} {} peak of {}",
                            bytes(peak),
                            bytes(t.stack_size_bytes)
                        )
                    }
                    None => format!(
                        "{name} peak not measured, stack {}",
                        bytes(t.stack_size_bytes)
                    ),
                }
            })
            .collect();
        let _ = writeln!(w, "stack        {}", parts.join(", "));
    }
    let _ = writeln!(
        w,
        "\ncould live on the stack (freed before their function returned, same thread, ≤ {}): \
         {} blocks, {}",
        bytes(e.stack_threshold_bytes),
        count(e.stack_eligible_blocks),
        bytes(e.stack_eligible_bytes)
    );
    for s in e
        .sites
        .iter()
        .filter(|s| s.stack_eligible_blocks > 0)
        .take(top)
    {
        let _ = writeln!(
            w,
            "  {:>10} blocks {:>10}  {}  {}  {:.0}% of its blocks — {}",
            count(s.stack_eligible_blocks),
            bytes(s.stack_eligible_bytes),
            s.function,
            location(&s.file, s.line),
            s.local_share * 100.0,
            s.hint
        );
    }
    let _ = writeln!(
        w,
        "\nescape classes per site (blocks: local / escaped to caller at depth k / other thread \
         / never freed):"
    );
    for s in e.sites.iter().take(top) {
        let depths: Vec<String> = s
            .caller_depths
            .iter()
            .map(|(k, n)| format!("depth {k}: {}", count(*n)))
            .collect();
        let depths = if depths.is_empty() {
            String::new()
        } else {
            format!(" ({})", depths.join(", "))
        };
        let unknown = if s.unknown > 0 {
            format!(", {} unclassified", count(s.unknown))
        } else {
            String::new()
        };
        let _ = writeln!(
            w,
            "  {}  {}\n      {} blocks: {} local, {} to callers{depths}, {} other thread, {} never \
             freed{unknown}",
            s.function,
            location(&s.file, s.line),
            count(s.blocks),
            count(s.local),
            count(s.caller),
            count(s.other_thread),
            count(s.never_freed),
        );
    }
    w
}

fn location(file: &str, line: u32) -> String {
    match (file.is_empty(), line) {
        (true, _) => String::new(),
        (false, 0) => super::text::short_path(file),
        (false, l) => format!("{}:{l}", super::text::short_path(file)),
    }
}

/// Adds the escape keys to a `summary --json` object: `escape_sites`, `stack_eligible_blocks`,
/// `stack_eligible_bytes` and `stack_threshold_bytes` (the summary itself lists the threads'
/// stack sizes and peaks, with or without `--escape`).
pub fn add_escape_json(v: &mut serde_json::Value, e: &Escape) {
    let Some(o) = v.as_object_mut() else {
        return;
    };
    o.insert("escape_sites".into(), serde_json::json!(e.sites));
    o.insert(
        "stack_eligible_blocks".into(),
        serde_json::json!(e.stack_eligible_blocks),
    );
    o.insert(
        "stack_eligible_bytes".into(),
        serde_json::json!(e.stack_eligible_bytes),
    );
    o.insert(
        "stack_threshold_bytes".into(),
        serde_json::json!(e.stack_threshold_bytes),
    );
}

//! tidemark-analyzer: loads tidemark profiles, symbolizes them, and answers where the heap went.
//!
//! ```text
//!  profile.tmk ─► load ─► symbolize ─► model ─► analysis ─► render ─► SVG / folded / text / JSON
//!  (format)      (replay   (a pass:      (stacks,  (summary,   (inferno,
//!                 by seq,   embedded      sites)    sites)      serde)
//!                 raw       symbols, then
//!                 addresses) binaries)
//!                                │
//!                                └──► embed (append Symbols chunks to the file)
//! ```
//!
//! Each stage is one module with one contract: the on-disk format (`tidemark::format`) → the
//! loaded [`model::Profile`] (raw addresses, [`load::read_path`]) → the symbolized profile
//! ([`symbolize::symbolize`]; [`load::load_path`] runs both) → analysis views → renderers.
//! [`progress`] is the one thing the stages share. The `tidemark` binary ([`cli`]) only wires
//! them.
//!
//! ```no_run
//! use tidemark_analyzer::{analysis, load, render};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let profile = load::load_path("app.tmk".as_ref(), &load::LoadOptions::default())?;
//! let summary = analysis::summary(&profile, 10);
//! let counts = &summary.counts; // every metric's value: analysis::Metric::of / of_summary
//! println!("{} allocation calls, peak {} bytes", counts.allocations, counts.peak_bytes);
//! for line in render::folded(&profile, render::Metric::Leaked) {
//!     println!("{line}");
//! }
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

/// Messages on stderr never fail a command: std's `eprintln!` panics when the write fails, and a
/// closed stderr (`tidemark run … 2>&1 | head -1`) is not an error of the command, nor a reason to
/// leave a profile unfinished. Every module below uses this one (textual scope).
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        // Nobody is left to tell when stderr itself is gone.
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod analysis;
pub mod cli;
pub mod embed;
pub mod load;
pub mod model;
pub mod progress;
pub mod render;
pub mod report;
pub mod symbolize;

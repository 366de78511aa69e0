//! The interactive page (`tidemark view`): one self-contained HTML file, with its data embedded
//! as compact JSON and its script and style inline. No network, works from `file://`.
//!
//! ```text
//!  Profile (+ TimeBuckets) ─► data::view_data (JSON) ─┐
//!  page.html + view.css + timeline.js + flame.js + tables.js ─► one .html
//! ```
//!
//! The Rust side aggregates (the page never gets per-event data); the page recomputes a brushed
//! time range's flamegraph, tables and histograms from the per-bucket sums.

pub mod data;

use std::io::Write;

pub use data::view_data;

use crate::model::Profile;
use crate::render::xml::escape as html_escape;
use crate::render::RenderError;

/// Default number of time buckets a page gets. Default: 200.
pub const DEFAULT_BUCKETS: usize = 200;

const PAGE: &str = include_str!("page.html");
const JS_COMMON: &str = include_str!("common.js");
const JS_TIMELINE: &str = include_str!("timeline.js");
/// The flamegraph component (also used by the comparison report).
pub const FLAME_JS: &str = include_str!("flame.js");
/// Number formatting and small DOM helpers the flamegraph component needs.
pub const FORMAT_JS: &str = include_str!("format.js");
/// The components' style.
pub const CSS: &str = include_str!("view.css");
const JS_FLAME_PAGE: &str = include_str!("flame_page.js");
const JS_TABLES: &str = include_str!("tables.js");
const JS_MAIN: &str = include_str!("main.js");

/// How the page is made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewOptions {
    /// Page title. Default: the profiled command line.
    pub title: Option<String>,
    /// Memory limit drawn on the timeline. Default: the recorder's, else the cgroup's.
    pub limit_bytes: Option<u64>,
    /// Keep the Rust runtime's start-up frames instead of folding them into one
    /// [`data::RUNTIME_FRAME`]. Default: `false`.
    pub keep_runtime_frames: bool,
}

/// JSON made safe inside `<script type="application/json">`: `</` cannot close the element.
pub fn script_json(v: &serde_json::Value) -> String {
    v.to_string().replace("</", "<\\/")
}

/// The default title: the command line, else the executable.
pub fn default_title(p: &Profile) -> String {
    let cmd = if p.header.cmdline.is_empty() {
        p.header.exe.clone()
    } else {
        p.header.cmdline.join(" ")
    };
    format!("tidemark view — {cmd} (pid {})", p.header.pid)
}

/// Writes the page for `p` into `out`. Load `p` with
/// [`crate::load::load_path_with_time_buckets`] so a time range can be selected.
pub fn write_view<W: Write>(
    p: &Profile,
    opts: &ViewOptions,
    mut out: W,
) -> Result<(), RenderError> {
    let title = opts.title.clone().unwrap_or_else(|| default_title(p));
    let data = view_data(p, &title, opts.limit_bytes, opts.keep_runtime_frames);
    let script = [
        FORMAT_JS,
        JS_COMMON,
        JS_TIMELINE,
        FLAME_JS,
        JS_FLAME_PAGE,
        JS_TABLES,
        JS_MAIN,
    ]
    .join("\n");
    let page = PAGE
        .replace("{{TITLE}}", &html_escape(&title))
        .replace("{{CSS}}", CSS)
        .replace("{{SCRIPT}}", &script)
        .replace("{{DATA}}", &script_json(&data));
    out.write_all(page.as_bytes())?;
    Ok(())
}

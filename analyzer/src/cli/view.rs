//! `tidemark view`: one self-contained interactive HTML page of a profile.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::{units, warn_truncated, write_output, LoadArgs};
use crate::load::load_path_with_time_buckets;
use crate::model::Profile;
use crate::render::view::{write_view, ViewOptions, DEFAULT_BUCKETS};

/// `tidemark view`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  tidemark view app.tmk -o app.html   # then open app.html in a browser (no network needed)"
)]
pub struct ViewArgs {
    /// Output file (`-` for stdout). Default: `<profile stem>.html` next to the profile.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Memory limit drawn on the timeline (`512MiB`, `1GB`); default: the one given at record
    /// time, else the cgroup's memory.max.
    #[arg(long, value_name = "SIZE", value_parser = units::parse_size)]
    pub limit: Option<u64>,
    /// Keep the Rust runtime's start-up frames (`_start`, `std::rt::lang_start…`,
    /// `catch_unwind…`) in the flamegraph and tables instead of folding them into one frame.
    #[arg(long)]
    pub keep_runtime_frames: bool,
    /// Loading options.
    #[command(flatten)]
    pub load: LoadArgs,
    /// The profile (.tmk).
    pub profile: PathBuf,
}

/// Loads `profile` with the time buckets the page needs.
pub(super) fn load_for_view(profile: &Path, load: &LoadArgs) -> anyhow::Result<Profile> {
    Ok(load_path_with_time_buckets(
        profile,
        &load.options()?,
        DEFAULT_BUCKETS,
    )?)
}

/// The page of `p` as bytes.
pub(super) fn page(
    p: &Profile,
    limit: Option<u64>,
    keep_runtime_frames: bool,
) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    write_view(
        p,
        &ViewOptions {
            title: None,
            limit_bytes: limit,
            keep_runtime_frames,
        },
        &mut out,
    )
    .context("cannot write the page")?;
    Ok(out)
}

/// Writes the page of the profile at `profile` to `out` (what `tidemark run` with no command adds
/// to its outputs).
pub(super) fn write_page_of(profile: &Path, out: &Path, limit: Option<u64>) -> anyhow::Result<()> {
    let opts = crate::load::LoadOptions {
        progress: false,
        ..Default::default()
    };
    let p = load_path_with_time_buckets(profile, &opts, DEFAULT_BUCKETS)?;
    write_output(out, &page(&p, limit, false)?)
}

pub(super) fn view(a: &ViewArgs) -> anyhow::Result<u8> {
    if let Some(ext) = a.output.as_ref().and_then(|o| o.extension()) {
        if ext != "html" && ext != "htm" {
            anyhow::bail!(
                "{}: the page is HTML; name the output *.html",
                a.output
                    .as_ref()
                    .map(|o| o.display().to_string())
                    .unwrap_or_default()
            );
        }
    }
    let p = load_for_view(&a.profile, &a.load)?;
    warn_truncated(&p, &a.profile);
    let out = a.output.clone().unwrap_or_else(|| {
        let stem = a
            .profile
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        a.profile.with_file_name(format!("{stem}.html"))
    });
    write_output(&out, &page(&p, a.limit, a.keep_runtime_frames)?)?;
    if out.as_os_str() != "-" {
        eprintln!("tidemark: interactive page written to {}", out.display());
    }
    Ok(super::EXIT_OK)
}

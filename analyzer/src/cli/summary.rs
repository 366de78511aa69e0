//! `tidemark summary`.

use std::io::Write;

use super::{load, warn_truncated, SummaryArgs, EXIT_OK};
use crate::analysis::summary as summarize;
use crate::render::{summary_text, write_summary_json};

pub(super) fn summary(a: &SummaryArgs) -> anyhow::Result<u8> {
    let p = load(&a.profile, &a.load)?;
    let s = summarize(&p, a.top);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    warn_truncated(&p, &a.profile);
    if a.json {
        write_summary_json(&s, &mut out)?;
    } else {
        writeln!(out, "profile      {}", a.profile.display())?;
        out.write_all(summary_text(&s).as_bytes())?;
    }
    out.flush()?;
    Ok(EXIT_OK)
}

//! Progress of long steps (loading, symbolizing), shared by the stages that report it: [`crate::load`]
//! and [`crate::symbolize`] both take a [`ProgressSink`] and neither imports the other for it.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Receives progress of a long step.
pub trait ProgressSink {
    /// A step starts; `total` is its size in the unit of [`ProgressSink::update`], when known.
    fn begin(&mut self, step: &str, total: Option<u64>);
    /// `done` units of the current step are complete.
    fn update(&mut self, done: u64);
    /// The current step is complete.
    fn finish(&mut self);
}

/// A snapshot of progress, for sinks that want one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// What is happening ("loading", "symbolizing").
    pub step: String,
    /// Units done.
    pub done: u64,
    /// Units in total, when known.
    pub total: Option<u64>,
}

impl Progress {
    /// Percentage done, when the total is known.
    pub fn percent(&self) -> Option<u64> {
        self.total
            .filter(|&t| t > 0)
            .map(|t| (self.done.min(t) * 100) / t)
    }
}

/// Only after this long does a non-terminal stderr get progress lines.
pub const PROGRESS_DELAY: Duration = Duration::from_secs(1);
/// Minimum time between two progress updates.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Minimum time between two progress lines when stderr is not a terminal.
pub const PROGRESS_EVERY_PIPE: Duration = Duration::from_secs(5);

/// Writes progress to stderr: a line rewritten in place on a terminal, occasional lines
/// otherwise, and nothing at all for steps that finish within [`PROGRESS_DELAY`] when stderr is
/// not a terminal.
#[derive(Debug)]
pub struct StderrProgress {
    label: String,
    tty: bool,
    state: Progress,
    started: Instant,
    last: Option<Instant>,
    shown: bool,
}

impl StderrProgress {
    /// A reporter whose lines name `label` (usually the profile path).
    pub fn new(label: &str) -> Self {
        StderrProgress {
            label: label.to_owned(),
            tty: std::io::stderr().is_terminal(),
            state: Progress {
                step: String::new(),
                done: 0,
                total: None,
            },
            started: Instant::now(),
            last: None,
            shown: false,
        }
    }

    fn line(&self) -> String {
        match self.state.percent() {
            Some(pc) => format!("tidemark: {} {}: {pc}%", self.state.step, self.label),
            None => format!(
                "tidemark: {} {}: {}",
                self.state.step, self.label, self.state.done
            ),
        }
    }
}

impl ProgressSink for StderrProgress {
    fn begin(&mut self, step: &str, total: Option<u64>) {
        self.state = Progress {
            step: step.to_owned(),
            done: 0,
            total,
        };
        self.started = Instant::now();
        self.last = None;
        self.shown = false;
    }

    fn update(&mut self, done: u64) {
        self.state.done = done;
        let now = Instant::now();
        if !self.tty && now.duration_since(self.started) < PROGRESS_DELAY {
            return;
        }
        let every = if self.tty {
            PROGRESS_EVERY
        } else {
            PROGRESS_EVERY_PIPE
        };
        if self.last.is_some_and(|l| now.duration_since(l) < every) {
            return;
        }
        self.last = Some(now);
        self.shown = true;
        let mut err = std::io::stderr().lock();
        // Progress is best effort: a closed stderr must not fail the load.
        let _ = if self.tty {
            write!(err, "\r{}\x1b[K", self.line())
        } else {
            writeln!(err, "{}", self.line())
        };
    }

    fn finish(&mut self) {
        if !self.shown {
            return;
        }
        if let Some(t) = self.state.total {
            self.state.done = t;
        }
        let mut err = std::io::stderr().lock();
        // Best effort, as above.
        let _ = if self.tty {
            writeln!(err, "\r{}\x1b[K", self.line())
        } else {
            writeln!(err, "{}", self.line())
        };
        self.shown = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_is_clamped() {
        let p = Progress {
            step: "loading".into(),
            done: 150,
            total: Some(100),
        };
        assert_eq!(p.percent(), Some(100));
        let p = Progress {
            total: Some(0),
            ..p
        };
        assert_eq!(p.percent(), None);
    }
}

//! CPU samples of a profile recorded with `--cpu` (`CPU_SAMPLE` records): per-stack CPU time and
//! the samples themselves, in file order.

use serde::Serialize;

use super::StackId;

/// CPU time of one recorded stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuStack {
    /// Leaf node: the sampled instruction, then its callers; `None` when the stack was empty or
    /// never defined (truncated file).
    #[serde(skip)]
    pub stack: Option<StackId>,
    /// Samples of this stack.
    pub samples: u64,
    /// CPU time those samples stand for, ns.
    pub cpu_ns: u64,
    /// The recorder cut this stack at its frame limit (shown under `[truncated]`).
    #[serde(skip)]
    pub truncated: bool,
}

/// One CPU sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CpuSample {
    /// Thread sampled.
    pub tid: u32,
    /// Time since the start of the process, ns.
    pub t_ns: u64,
    /// Index into [`CpuProfile::stacks`].
    pub stack: u32,
    /// CPU time it stands for, ns.
    pub weight_ns: u64,
}

/// Everything about CPU samples in a profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuProfile {
    /// Per recorded stack, in order of first sample.
    pub stacks: Vec<CpuStack>,
    /// Every sample, in file order.
    pub samples: Vec<CpuSample>,
    /// Sum of the samples' CPU time, ns.
    pub cpu_ns: u64,
    /// Samples the recorder took but could not store (trailer), when known.
    pub lost_samples: u64,
    /// Sampling period, ns of CPU time per sample (trailer; else the most common weight).
    pub period_ns: u64,
}

impl CpuProfile {
    /// Number of samples.
    pub fn sample_count(&self) -> u64 {
        self.samples.len() as u64
    }
}

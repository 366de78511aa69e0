//! Growth and pressure: is the heap growing, how fast, is it a leak, when does it hit the limit.
//!
//! Pure functions over a live-heap series; `docs/metrics.md` ("Growth and pressure") holds the
//! definitions these implement.

use serde::Serialize;

/// Fraction of the run treated as warm-up and left out of the growth fit. Default: 0.1.
pub const DEFAULT_WARMUP_FRACTION: f64 = 0.1;
/// Number of windows the steady part is cut into for the leak verdict. Default: 5.
pub const DEFAULT_VERDICT_WINDOWS: usize = 5;
/// Smallest trough-to-trough growth, in bytes, that can count as a leak. Default: 64 KiB.
pub const DEFAULT_MIN_LEAK_BYTES: f64 = 64.0 * 1024.0;

/// Options of [`growth`].
#[derive(Debug, Clone, Copy)]
pub struct GrowthOptions {
    /// Leading fraction of the run left out as warm-up. Default: [`DEFAULT_WARMUP_FRACTION`].
    pub warmup_fraction: f64,
    /// Windows for the trough test. Default: [`DEFAULT_VERDICT_WINDOWS`].
    pub windows: usize,
    /// Minimum net trough growth for a leak verdict, bytes; the effective threshold is the larger
    /// of this and 1% of the peak. Default: [`DEFAULT_MIN_LEAK_BYTES`].
    pub min_leak_bytes: f64,
}

impl Default for GrowthOptions {
    fn default() -> Self {
        GrowthOptions {
            warmup_fraction: DEFAULT_WARMUP_FRACTION,
            windows: DEFAULT_VERDICT_WINDOWS,
            min_leak_bytes: DEFAULT_MIN_LEAK_BYTES,
        }
    }
}

/// A least-squares line `y = intercept + slope * x`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LinearFit {
    /// Slope (y units per x unit).
    pub slope: f64,
    /// Value at x = 0.
    pub intercept: f64,
    /// Coefficient of determination, 0..=1 (1 when y is constant and the slope is 0).
    pub r2: f64,
}

/// Ordinary least squares over `(x, y)` points; `None` with fewer than two distinct x.
pub fn linear_fit(points: &[(f64, f64)]) -> Option<LinearFit> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for &(x, y) in points {
        let (dx, dy) = (x - mean_x, y - mean_y);
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let r2 = if syy <= 0.0 {
        1.0
    } else {
        (sxy * sxy / (sxx * syy)).clamp(0.0, 1.0)
    };
    Some(LinearFit {
        slope,
        intercept: mean_y - slope * mean_x,
        r2,
    })
}

/// Growth of the live heap over the steady part of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Growth {
    /// Least-squares slope of live heap bytes over time, bytes per second.
    pub growth_bytes_per_sec: f64,
    /// R² of that fit.
    pub growth_r2: f64,
    /// Sustained growth: the troughs of the live heap rise in (almost) every window.
    pub leak_verdict: bool,
    /// Start of the steady part, seconds since the start of the run.
    pub steady_from_sec: f64,
    /// Minimum live heap of each verdict window, bytes.
    pub window_troughs_bytes: Vec<f64>,
    /// Why the verdict is what it is, in one sentence.
    pub verdict_reason: String,
}

/// Fits the growth of `series` (`(seconds, live bytes)`, in time order).
///
/// Returns `None` when there are too few samples to say anything (fewer than 4 in the steady
/// part).
pub fn growth(series: &[(f64, f64)], opts: &GrowthOptions) -> Option<Growth> {
    let (&(t0, _), &(t_end, _)) = (series.first()?, series.last()?);
    let steady_from = t0 + (t_end - t0) * opts.warmup_fraction.clamp(0.0, 0.9);
    let steady: Vec<(f64, f64)> = series
        .iter()
        .copied()
        .filter(|p| p.0 >= steady_from)
        .collect();
    if steady.len() < 4 {
        return None;
    }
    let fit = linear_fit(&steady)?;
    let windows = opts.windows.clamp(2, steady.len());
    let (s0, s1) = (steady[0].0, steady[steady.len() - 1].0);
    let span = (s1 - s0).max(f64::MIN_POSITIVE);
    let mut troughs = vec![f64::INFINITY; windows];
    for &(t, y) in &steady {
        let w = (((t - s0) / span) * windows as f64) as usize;
        let w = w.min(windows - 1);
        troughs[w] = troughs[w].min(y);
    }
    // Empty windows (sparse samples) inherit their predecessor's trough.
    for i in 1..windows {
        if troughs[i].is_infinite() {
            troughs[i] = troughs[i - 1];
        }
    }
    if troughs[0].is_infinite() {
        troughs[0] = steady[0].1;
    }
    let peak = steady.iter().map(|p| p.1).fold(0.0, f64::max);
    let eps = (peak * 0.001).max(4096.0);
    let rises = troughs.windows(2).filter(|w| w[1] > w[0] + eps).count();
    let net = troughs[windows - 1] - troughs[0];
    let threshold = opts.min_leak_bytes.max(peak * 0.01);
    let needed = windows - 1 - (windows - 1) / 4; // all transitions, one spared per four
    let (leak, reason) = if fit.slope <= 0.0 {
        (
            false,
            "the live heap does not grow over the steady part".to_owned(),
        )
    } else if rises < needed {
        (
            false,
            format!(
                "the heap's troughs rose in only {rises} of {} windows (a plateau, step or sawtooth, not sustained growth)",
                windows - 1
            ),
        )
    } else if net < threshold {
        (
            false,
            if net < 0.0 {
                format!(
                    "the heap's troughs fell by {} overall: no growth",
                    crate::units::human_bytes(-net)
                )
            } else {
                format!(
                    "the troughs rose by only {}, below the {} threshold",
                    crate::units::human_bytes(net),
                    crate::units::human_bytes(threshold)
                )
            },
        )
    } else {
        (
            true,
            format!(
                "the heap's troughs rose in {rises} of {} windows, by {} in all",
                windows - 1,
                crate::units::human_bytes(net)
            ),
        )
    };
    Some(Growth {
        growth_bytes_per_sec: fit.slope,
        growth_r2: fit.r2,
        leak_verdict: leak,
        steady_from_sec: steady_from,
        window_troughs_bytes: troughs,
        verdict_reason: reason,
    })
}

/// Seconds until `live_bytes` growing at `slope_bytes_per_sec` reaches `limit_bytes`.
///
/// `Some(0.0)` when already at or over the limit, `None` when the heap is not growing or there is
/// no limit.
pub fn time_to_limit(live_bytes: f64, slope_bytes_per_sec: f64, limit_bytes: f64) -> Option<f64> {
    if limit_bytes <= 0.0 {
        return None;
    }
    if live_bytes >= limit_bytes {
        return Some(0.0);
    }
    if slope_bytes_per_sec <= 0.0 {
        return None;
    }
    Some((limit_bytes - live_bytes) / slope_bytes_per_sec)
}

/// Resident memory per live byte (`rss / live`); `None` when nothing is live.
pub fn fragmentation_ratio(rss_bytes: f64, live_bytes: f64) -> Option<f64> {
    (live_bytes > 0.0).then(|| rss_bytes / live_bytes)
}

/// An interval in which the allocator was unusually slow: the native counterpart of a GC pause.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySpike {
    /// End of the interval, seconds since start.
    pub at_sec: f64,
    /// Slowest allocator call in the interval, ns.
    pub max_ns: f64,
    /// Live heap at that moment, bytes.
    pub live_bytes: f64,
}

/// Intervals whose slowest call took more than `factor` times the run's median p50 and at least
/// `floor_ns`. Input: `(seconds, p50_ns, max_ns, live_bytes)` per interval.
pub fn latency_spikes(
    intervals: &[(f64, f64, f64, f64)],
    factor: f64,
    floor_ns: f64,
) -> Vec<LatencySpike> {
    let mut p50s: Vec<f64> = intervals.iter().map(|i| i.1).filter(|v| *v > 0.0).collect();
    if p50s.is_empty() {
        return Vec::new();
    }
    p50s.sort_by(f64::total_cmp);
    let median = p50s[p50s.len() / 2];
    let bar = (median * factor).max(floor_ns);
    intervals
        .iter()
        .filter(|i| i.2 > bar)
        .map(|&(t, _, max_ns, live)| LatencySpike {
            at_sec: t,
            max_ns,
            live_bytes: live,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(f: impl Fn(f64) -> f64, secs: f64, dt: f64) -> Vec<(f64, f64)> {
        let n = (secs / dt) as usize;
        (0..=n).map(|i| (i as f64 * dt, f(i as f64 * dt))).collect()
    }

    #[test]
    fn fit_recovers_a_known_line() {
        let pts = series(|t| 1000.0 + 250.0 * t, 10.0, 0.01);
        let f = linear_fit(&pts).unwrap();
        assert!((f.slope - 250.0).abs() < 1e-6);
        assert!((f.intercept - 1000.0).abs() < 1e-6);
        assert!((f.r2 - 1.0).abs() < 1e-9);
        assert!(linear_fit(&[(1.0, 2.0)]).is_none());
        assert!(linear_fit(&[(1.0, 2.0), (1.0, 3.0)]).is_none());
    }

    #[test]
    fn steady_growth_is_a_leak() {
        let rate = 8.0 * 1024.0 * 1024.0;
        let g = growth(&series(|t| rate * t, 2.0, 0.01), &GrowthOptions::default()).unwrap();
        assert!((g.growth_bytes_per_sec - rate).abs() / rate < 1e-9);
        assert!(g.leak_verdict, "{}", g.verdict_reason);
    }

    #[test]
    fn growth_with_a_start_up_burst_fits_the_steady_part() {
        let rate = 1.0e6;
        let s = series(
            |t| {
                if t < 0.05 {
                    5.0e7 * t
                } else {
                    2.5e6 + rate * t
                }
            },
            5.0,
            0.01,
        );
        let g = growth(&s, &GrowthOptions::default()).unwrap();
        assert!((g.growth_bytes_per_sec - rate).abs() / rate < 0.01);
        assert!(g.leak_verdict);
    }

    #[test]
    fn sawtooth_plateau_and_step_are_not_leaks() {
        let saw = series(|t| (t % 0.5) * 4.0e7, 5.0, 0.01);
        let g = growth(&saw, &GrowthOptions::default()).unwrap();
        assert!(!g.leak_verdict, "sawtooth: {}", g.verdict_reason);
        let plateau = series(|t| 3.0e7 + ((t * 37.0).sin() * 1.0e5), 5.0, 0.01);
        assert!(
            !growth(&plateau, &GrowthOptions::default())
                .unwrap()
                .leak_verdict
        );
        let step = series(|t| if t < 2.5 { 1.0e7 } else { 5.0e7 }, 5.0, 0.01);
        let g = growth(&step, &GrowthOptions::default()).unwrap();
        assert!(g.growth_bytes_per_sec > 0.0);
        assert!(!g.leak_verdict, "step: {}", g.verdict_reason);
    }

    #[test]
    fn sawtooth_with_rising_troughs_is_a_leak() {
        let s = series(|t| 2.0e6 * t + (t % 0.5) * 4.0e7, 5.0, 0.01);
        let g = growth(&s, &GrowthOptions::default()).unwrap();
        assert!(g.leak_verdict, "{}", g.verdict_reason);
    }

    #[test]
    fn too_few_samples_say_nothing() {
        assert!(growth(&[(0.0, 1.0), (1.0, 2.0)], &GrowthOptions::default()).is_none());
        assert!(growth(&[], &GrowthOptions::default()).is_none());
    }

    #[test]
    fn time_to_limit_cases() {
        assert_eq!(time_to_limit(100.0, 10.0, 200.0), Some(10.0));
        assert_eq!(time_to_limit(300.0, 10.0, 200.0), Some(0.0));
        assert_eq!(time_to_limit(100.0, 0.0, 200.0), None);
        assert_eq!(time_to_limit(100.0, 10.0, 0.0), None);
        assert_eq!(fragmentation_ratio(300.0, 100.0), Some(3.0));
        assert_eq!(fragmentation_ratio(300.0, 0.0), None);
    }

    #[test]
    fn spikes_stand_out_from_the_median() {
        let mut iv: Vec<_> = (0..100)
            .map(|i| (i as f64 * 0.01, 50.0, 400.0, 1e6))
            .collect();
        iv[40].2 = 2.0e6;
        let s = latency_spikes(&iv, 100.0, 100_000.0);
        assert_eq!(s.len(), 1);
        assert!((s[0].at_sec - 0.4).abs() < 1e-9);
    }
}

//! Statistics over repeated runs: mean with a 95% confidence interval, Welch's t-test.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Significance level under which a difference is reported as significant. Default: 0.05.
pub const DEFAULT_ALPHA: f64 = 0.05;

/// Mean of repeated measurements with its 95% confidence interval (Student's t).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// Number of runs.
    pub n: usize,
    /// Sample mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1 denominator); 0 for a single run.
    pub std_dev: f64,
    /// Lower end of the 95% confidence interval of the mean (the mean itself for one run).
    pub ci95_low: f64,
    /// Upper end of the 95% confidence interval of the mean (the mean itself for one run).
    pub ci95_high: f64,
}

/// Mean and 95% CI of `xs`; `None` when `xs` is empty.
pub fn estimate(xs: &[f64]) -> Option<Estimate> {
    let n = xs.len();
    if n == 0 {
        return None;
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Some(Estimate {
            n,
            mean,
            std_dev: 0.0,
            ci95_low: mean,
            ci95_high: mean,
        });
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let sd = var.sqrt();
    let half = t_quantile(0.975, (n - 1) as f64) * sd / (n as f64).sqrt();
    Some(Estimate {
        n,
        mean,
        std_dev: sd,
        ci95_low: mean - half,
        ci95_high: mean + half,
    })
}

/// Result of Welch's unequal-variance t-test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Welch {
    /// t statistic (positive when `b`'s mean is larger).
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// Welch's t-test of `a` against `b`; `None` unless both have at least two runs.
///
/// When both samples have zero variance the test degenerates: p = 1 for equal means, p = 0
/// otherwise (the runs are deterministic and differ).
pub fn welch_t_test(a: &[f64], b: &[f64]) -> Option<Welch> {
    let (ea, eb) = (estimate(a)?, estimate(b)?);
    if ea.n < 2 || eb.n < 2 {
        return None;
    }
    let (va, vb) = (
        ea.std_dev.powi(2) / ea.n as f64,
        eb.std_dev.powi(2) / eb.n as f64,
    );
    let se2 = va + vb;
    if se2 <= 0.0 {
        let same = ea.mean == eb.mean;
        return Some(Welch {
            t: if same {
                0.0
            } else {
                f64::INFINITY.copysign(eb.mean - ea.mean)
            },
            df: (ea.n + eb.n - 2) as f64,
            p_value: if same { 1.0 } else { 0.0 },
        });
    }
    let t = (eb.mean - ea.mean) / se2.sqrt();
    let df = se2.powi(2) / (va.powi(2) / (ea.n - 1) as f64 + vb.powi(2) / (eb.n - 1) as f64);
    let dist = StudentsT::new(0.0, 1.0, df).ok()?;
    let p = 2.0 * (1.0 - dist.cdf(t.abs()));
    Some(Welch {
        t,
        df,
        p_value: p.clamp(0.0, 1.0),
    })
}

fn t_quantile(p: f64, df: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df)
        .map(|d| d.inverse_cdf(p))
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn ci_matches_textbook_values() {
        // xs = 1..=5: mean 3, sd sqrt(2.5), t(0.975, 4) = 2.776445
        let e = estimate(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(e.mean, 3.0);
        assert!(close(e.std_dev, 2.5f64.sqrt(), 1e-12));
        let half = 2.776_445_105 * 2.5f64.sqrt() / 5f64.sqrt();
        assert!(close(e.ci95_low, 3.0 - half, 1e-6), "{e:?}");
        assert!(close(e.ci95_high, 3.0 + half, 1e-6));
        let one = estimate(&[7.0]).unwrap();
        assert_eq!((one.ci95_low, one.ci95_high), (7.0, 7.0));
        assert!(estimate(&[]).is_none());
    }

    #[test]
    fn welch_matches_a_known_case() {
        // a = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0,
        // 21.7, 21.4], b = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9,
        // 22.1, 22.9, 20.5, 24.4]: t = 2.46, df = 24.99, p = 0.021 (two-sided; scipy
        // ttest_ind(equal_var=False) gives t = -2.4554, p = 0.02135 for (a, b)).
        let a = [
            27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7,
            21.4,
        ];
        let b = [
            27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5,
            24.4,
        ];
        let w = welch_t_test(&a, &b).unwrap();
        assert!(close(w.t, 2.4554, 1e-3), "{w:?}");
        assert!(close(w.df, 24.988, 1e-2), "{w:?}");
        assert!(close(w.p_value, 0.02135, 1e-4), "{w:?}");
    }

    #[test]
    fn identical_and_deterministic_samples() {
        let w = welch_t_test(&[5.0, 5.0, 5.0], &[5.0, 5.0]).unwrap();
        assert_eq!(w.p_value, 1.0);
        let w = welch_t_test(&[5.0, 5.0, 5.0], &[6.0, 6.0]).unwrap();
        assert_eq!(w.p_value, 0.0);
        assert!(welch_t_test(&[1.0], &[2.0, 3.0]).is_none());
        let w = welch_t_test(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]).unwrap();
        assert!(close(w.p_value, 1.0, 1e-12));
    }
}

//! Summary statistics of repeated measurements.
//!
//! Percentiles use linear interpolation between closest ranks (Hyndman and
//! Fan's definition 7, the default of R and NumPy). The coefficient of
//! variation is the sample standard deviation (n - 1 in the denominator)
//! divided by the mean; it is 0 for fewer than two samples. Pure functions,
//! tested in this file.
//!
//! Layer: the bottom, beside `reference` and `error`: imports nothing of kiln,
//! and every layer may use it (tests/layers.rs checks the layers; README's
//! Layout lists them).

use serde::{Deserialize, Serialize};

/// The summary of one metric's samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// 50th percentile.
    pub median: f64,
    /// 5th percentile.
    pub p05: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Coefficient of variation: sample standard deviation / mean.
    pub cv: f64,
}

/// Summarises `samples`; `None` when there are none or one is not finite.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() || samples.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let mean = sorted.iter().sum::<f64>() / n as f64;
    let cv = if n < 2 || mean == 0.0 {
        0.0
    } else {
        let var = sorted.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        var.sqrt() / mean.abs()
    };
    Some(Summary {
        n,
        median: percentile_sorted(&sorted, 0.50),
        p05: percentile_sorted(&sorted, 0.05),
        p95: percentile_sorted(&sorted, 0.95),
        mean,
        cv,
    })
}

/// Percentile `q` (0..=1) of already sorted, non-empty samples.
pub fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    debug_assert!(!sorted.is_empty());
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Median of samples in any order; `None` when empty.
pub fn median(samples: &[f64]) -> Option<f64> {
    summarize(samples).map(|s| s.median)
}

/// Seconds into a run, as checks say them: with sub-second precision under
/// 10 s (a loss 0.4 s in is not "0 s"), whole seconds above.
pub fn secs(t: f64) -> String {
    if t.abs() < 10.0 {
        format!("{t:.2} s")
    } else {
        format!("{t:.0} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn percentiles_match_numpy_linear() {
        // numpy.percentile(range(1, 11), [5, 95]) == [1.45, 9.55]
        let xs: Vec<f64> = (1..=10).map(f64::from).collect();
        let s = summarize(&xs).expect("non-empty");
        assert!(close(s.p05, 1.45), "{}", s.p05);
        assert!(close(s.p95, 9.55), "{}", s.p95);
        assert!(close(s.median, 5.5));
        assert!(close(s.mean, 5.5));
    }

    #[test]
    fn cv_uses_sample_standard_deviation() {
        // values 2,4,4,4,5,5,7,9: mean 5, sample sd = sqrt(32/7)
        let s = summarize(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).expect("non-empty");
        assert!(close(s.cv, (32.0f64 / 7.0).sqrt() / 5.0), "{}", s.cv);
    }

    #[test]
    fn single_sample_and_constant_samples_have_zero_cv() {
        let one = summarize(&[7.0]).expect("non-empty");
        assert_eq!((one.median, one.p05, one.p95, one.cv), (7.0, 7.0, 7.0, 0.0));
        assert_eq!(summarize(&[3.0; 5]).expect("non-empty").cv, 0.0);
    }

    #[test]
    fn non_finite_samples_are_refused() {
        assert!(summarize(&[1.0, f64::NAN]).is_none());
        assert!(summarize(&[f64::INFINITY]).is_none());
    }

    #[test]
    fn order_does_not_matter() {
        let a = summarize(&[5.0, 1.0, 9.0, 3.0]).expect("non-empty");
        let b = summarize(&[9.0, 3.0, 1.0, 5.0]).expect("non-empty");
        assert_eq!(a, b);
    }
}

//! The peer rule: a device slower than the median of its same-model peers in
//! the same run by more than a tolerance is an outlier, even when it clears
//! the baseline floor.
//!
//! The median, not the mean or the best device, is the reference: with n
//! peers it stays a healthy device's value as long as fewer than half of them
//! are slow, so two bad GPUs of eight cannot drag the reference down and hide
//! each other (gpu-fryer compares with the fastest device, which flags noise;
//! a mean is pulled down by the very outliers it should expose). The rule
//! needs at least [`MIN_PEERS`] devices of a model; below that a "median"
//! is one of the two devices being compared.

use crate::stats;

/// Fewest same-model devices for the peer rule to apply.
pub const MIN_PEERS: usize = 3;

/// Default tolerance: 5 % below the peer median.
pub const DEFAULT_TOLERANCE: f64 = 0.05;

/// The outcome of the peer rule for one device and metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeerCheck {
    /// The peer median (over every device of the group, itself included).
    pub median: f64,
    /// The lowest value that passes: median x (1 - tolerance).
    pub threshold: f64,
    /// True when the value is at or above the threshold.
    pub pass: bool,
}

/// Applies the peer rule to `values` (one per device of a model, `None` when
/// a device has no value). Returns one entry per device, `None` where there
/// is no value or fewer than [`MIN_PEERS`] values exist.
pub fn check(values: &[Option<f64>], tolerance: f64) -> Vec<Option<PeerCheck>> {
    let present: Vec<f64> = values
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    if present.len() < MIN_PEERS {
        return vec![None; values.len()];
    }
    let Some(median) = stats::median(&present) else {
        return vec![None; values.len()];
    };
    let threshold = median * (1.0 - tolerance);
    values
        .iter()
        .map(|v| {
            v.filter(|x| x.is_finite()).map(|x| PeerCheck {
                median,
                threshold,
                pass: x >= threshold,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::gen;

    /// A seeded uniform number in [0, 1).
    fn u(seed: u64, i: u64) -> f64 {
        (gen::random_u64(seed, 77, i) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Healthy values: nominal x (1 +- 1 %).
    fn healthy(seed: u64, n: usize) -> Vec<Option<f64>> {
        (0..n)
            .map(|i| Some(1000.0 * (0.99 + 0.02 * u(seed, i as u64))))
            .collect()
    }

    #[test]
    fn no_device_within_tolerance_is_flagged() {
        // Property: healthy peers within +-1 % never trip a 5 % tolerance.
        for seed in 0..2000 {
            let n = 3 + (seed % 14) as usize;
            let vals = healthy(seed, n);
            for c in check(&vals, DEFAULT_TOLERANCE).into_iter().flatten() {
                assert!(c.pass, "seed {seed}: {c:?}");
            }
        }
    }

    #[test]
    fn any_one_device_below_tolerance_is_flagged() {
        // Property: one device scaled below (1 - tolerance) among healthy
        // peers is flagged, whichever it is and however many peers there are.
        for seed in 0..2000 {
            let n = 3 + (seed % 14) as usize;
            let mut vals = healthy(seed, n);
            let bad = (gen::random_u64(seed, 5, 0) % n as u64) as usize;
            let scale = 0.5 + 0.43 * u(seed, 99); // 0.50 .. 0.93
            vals[bad] = vals[bad].map(|v| v * scale);
            let out = check(&vals, DEFAULT_TOLERANCE);
            for (i, c) in out.iter().enumerate() {
                let c = c.expect("enough peers");
                assert_eq!(
                    c.pass,
                    i != bad,
                    "seed {seed}, device {i}, scale {scale}: {c:?}"
                );
            }
        }
    }

    #[test]
    fn two_bad_devices_of_eight_cannot_hide_each_other() {
        let mut vals = healthy(3, 8);
        vals[1] = Some(700.0);
        vals[6] = Some(600.0);
        let out = check(&vals, 0.05);
        let flagged: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_some_and(|c| !c.pass))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(flagged, vec![1, 6]);
    }

    #[test]
    fn too_few_peers_or_missing_values_are_skipped() {
        assert_eq!(check(&[Some(1.0), Some(0.1)], 0.05), vec![None, None]);
        let out = check(&[Some(1.0), None, Some(1.0), Some(1.0)], 0.05);
        assert!(out[1].is_none());
        assert!(out[0].is_some_and(|c| c.pass));
    }

    #[test]
    fn tolerance_is_respected_at_the_edge() {
        let vals = [
            Some(100.0),
            Some(100.0),
            Some(100.0),
            Some(95.0),
            Some(94.9),
        ];
        let out = check(&vals, 0.05);
        assert!(out[3].is_some_and(|c| c.pass), "exactly 5 % below passes");
        assert!(out[4].is_some_and(|c| !c.pass));
        let loose = check(&vals, 0.10);
        assert!(loose[4].is_some_and(|c| c.pass));
    }
}

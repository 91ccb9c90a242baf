//! The peer rule: a device slower than its same-model peers in the same run,
//! even when it clears the baseline floor.
//!
//! Testing each of some 24 metrics alone against a fixed tolerance flags a
//! device a few percent slow by chance: some metrics land over the line and
//! some under, differently every run. The rule here decides on evidence of
//! two kinds, and a metric fails only when both agree:
//!
//! 1. **The device as a whole, per workload.** For each metric, the
//!    deviation of the device from the reference, `r = value / reference -
//!    1`; for each workload (matmul, bandwidth, ...), the device's median
//!    deviation over that workload's metrics, `D`. A median over several
//!    metrics averages out per-metric noise, so a device slow by a given
//!    fraction has the same `D` run after run.
//! 2. **The metric itself, against its own noise and the number of tests.**
//!    Each figure is a median of timed iterations; its standard error is
//!    about `1.2533 x cv / sqrt(iterations)` (the median's efficiency under
//!    normal noise), combined with the reference's. The shortfall must be
//!    beyond `z* x` that error, where `z*` is the normal quantile of
//!    `1 - ALPHA / K` for the `K` (device, metric) tests of the group
//!    (Bonferroni): with 8 devices x 24 metrics and `ALPHA` = 0.001, `z*`
//!    is about 4.6, so a clean node trips it with probability under 0.1 %.
//!
//! A metric fails when it is significantly slow (2) and either its
//! workload's `D` is beyond the tolerance too (a device slow on a whole
//! workload) or the metric alone is beyond twice the tolerance (one path
//! broken, e.g. only fp8 slow).
//!
//! **The reference** is the median of the fastest consistent half, not of
//! all devices: with half the devices slow (two bad GPUs of four) the plain
//! median sits between the good and the bad ones and would hide both. So the
//! reference is found as: take the fastest value that has at least half the
//! group's devices (itself included) within the tolerance of it, and the
//! median of those devices. Two slow GPUs of four then face the two healthy
//! ones; one abnormally fast device (alone within its tolerance) cannot pull
//! the reference up and make its healthy peers look slow; a clean node's
//! devices all fall in one cluster, so the reference is their median. With
//! more than half the devices slow the slow ones are the majority and only
//! the baseline's floors can tell. The rule needs at least [`MIN_PEERS`]
//! devices of a model.

use crate::stats;

/// Fewest same-model devices for the peer rule to apply.
pub const MIN_PEERS: usize = 3;

/// Default tolerance: 5 % below the reference.
pub const DEFAULT_TOLERANCE: f64 = 0.05;

/// Family-wise false-alarm rate of the per-metric test over a whole group.
pub const ALPHA: f64 = 0.001;

/// The least relative standard error assumed for a figure (0.1 %), so that a
/// figure reported from one iteration (cv 0) is not infinitely precise.
pub const MIN_NOISE: f64 = 0.001;

/// One device's figure for a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// The reported value (median over iterations).
    pub value: f64,
    /// Coefficient of variation over its iterations.
    pub cv: f64,
    /// Timed iterations.
    pub iterations: usize,
}

impl Sample {
    /// Relative standard error of the median.
    fn noise(&self) -> f64 {
        let n = self.iterations.max(1) as f64;
        let cv = if self.cv.is_finite() {
            self.cv.abs()
        } else {
            0.0
        };
        (1.2533 * cv / n.sqrt()).max(MIN_NOISE)
    }
}

/// One metric of a group: its name, its workload (the unit of the device
/// level statistic), its tolerance, and one sample per device of the group.
#[derive(Debug, Clone)]
pub struct MetricInput {
    pub name: String,
    pub workload: String,
    pub tolerance: f64,
    pub samples: Vec<Option<Sample>>,
}

/// The outcome of the peer rule for one device and metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeerCheck {
    /// The reference: the median of the fastest consistent half.
    pub reference: f64,
    /// The lowest value that passes on the tolerance alone:
    /// reference x (1 - tolerance).
    pub threshold: f64,
    /// This device's deviation from the reference (-0.07: 7 % slower).
    pub deviation: f64,
    /// This device's median deviation over its workload's metrics.
    pub workload_deviation: f64,
    /// The shortfall the noise explains: z* x the combined standard error.
    pub noise_band: f64,
    /// Devices of the group that have this metric.
    pub devices: usize,
    /// True when the metric passes.
    pub pass: bool,
}

/// The normal quantile function (Acklam's rational approximation, relative
/// error under 1.2e-9 over (0, 1)).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let low = 0.02425;
    if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

/// The reference of a group's values (module documentation): the median of
/// the devices within `tolerance` of the fastest value that has at least
/// half the group within `tolerance` of it.
pub fn reference(values: &[f64], tolerance: f64) -> Option<f64> {
    let mut s: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(|a, b| b.total_cmp(a));
    let need = s.len().div_ceil(2);
    for &c in &s {
        let near: Vec<f64> = s
            .iter()
            .copied()
            .filter(|v| (v / c - 1.0).abs() <= tolerance)
            .collect();
        if near.len() >= need {
            return stats::median(&near);
        }
    }
    stats::median(&s)
}

/// Applies the peer rule to one group of same-model devices. Returns, per
/// metric of `metrics` (same order), one entry per device: `None` where the
/// device has no value or fewer than [`MIN_PEERS`] devices have one.
pub fn check_group(metrics: &[MetricInput]) -> Vec<Vec<Option<PeerCheck>>> {
    // Deviations and references per metric.
    let mut refs: Vec<Option<f64>> = Vec::with_capacity(metrics.len());
    let mut tests = 0usize;
    for m in metrics {
        let present: Vec<f64> = m
            .samples
            .iter()
            .flatten()
            .map(|s| s.value)
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        if present.len() < MIN_PEERS {
            refs.push(None);
            continue;
        }
        tests += present.len();
        refs.push(reference(&present, m.tolerance));
    }
    let z = normal_quantile(1.0 - ALPHA / tests.max(1) as f64);
    let deviation = |mi: usize, d: usize| -> Option<f64> {
        let r = refs[mi]?;
        let s = metrics[mi].samples.get(d).copied().flatten()?;
        (s.value.is_finite() && s.value > 0.0).then(|| s.value / r - 1.0)
    };
    // The device-level statistic: median deviation per (device, workload).
    let workload_dev = |d: usize, workload: &str| -> Option<f64> {
        let devs: Vec<f64> = metrics
            .iter()
            .enumerate()
            .filter(|(_, m)| m.workload == workload)
            .filter_map(|(mi, _)| deviation(mi, d))
            .collect();
        stats::median(&devs)
    };
    metrics
        .iter()
        .enumerate()
        .map(|(mi, m)| {
            let Some(reference) = refs[mi] else {
                return vec![None; m.samples.len()];
            };
            let present = m.samples.iter().flatten().count();
            // The reference's own noise: the typical noise of the group.
            let noises: Vec<f64> = m.samples.iter().flatten().map(Sample::noise).collect();
            let ref_noise = stats::median(&noises).unwrap_or(MIN_NOISE);
            (0..m.samples.len())
                .map(|d| {
                    let r = deviation(mi, d)?;
                    let s = m.samples[d]?;
                    let band = z * (s.noise().powi(2) + ref_noise.powi(2)).sqrt();
                    let w = workload_dev(d, &m.workload).unwrap_or(r);
                    let tol = m.tolerance;
                    let significant = r < -band;
                    let fail = significant && ((r < -tol && w < -tol) || r < -2.0 * tol);
                    Some(PeerCheck {
                        reference,
                        threshold: reference * (1.0 - tol),
                        deviation: r,
                        workload_deviation: w,
                        noise_band: band,
                        devices: present,
                        pass: !fail,
                    })
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::gen;

    /// A seeded uniform number in [0, 1).
    fn u(seed: u64, i: u64) -> f64 {
        (gen::random_u64(seed, 77, i) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A seeded standard normal (Box-Muller).
    fn normal(seed: u64, i: u64) -> f64 {
        let a = u(seed, 2 * i).max(1e-300);
        let b = u(seed, 2 * i + 1);
        (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
    }

    /// The workloads and metric counts of a simulated GPU quick run.
    const SHAPE: [(&str, usize); 5] = [
        ("matmul", 8),
        ("bandwidth", 4),
        ("hash", 1),
        ("memtest", 1),
        ("transfer", 3),
    ];

    /// One run of `n` devices shaped as the sim backend makes them (each
    /// device a fixed factor within +-1 %, each figure the median of 5
    /// iterations with 0.5 % noise), device `d` scaled by `scale(d)`.
    fn sim_run(seed: u64, n: usize, scale: impl Fn(usize) -> f64) -> Vec<MetricInput> {
        let factor: Vec<f64> = (0..n)
            .map(|d| 0.99 + 0.02 * u(seed, 1000 + d as u64))
            .collect();
        let mut out = Vec::new();
        let mut k = 0u64;
        for (workload, count) in SHAPE {
            for j in 0..count {
                let nominal = 100.0 * (j + 1) as f64;
                let samples = (0..n)
                    .map(|d| {
                        k += 1;
                        // The median of 5 draws of 0.5 % noise: about
                        // 0.28 % standard error.
                        let noise = 0.005 * 1.2533 / 5f64.sqrt() * normal(seed, k);
                        Some(Sample {
                            value: nominal * factor[d] * scale(d) * (1.0 + noise),
                            cv: 0.005 * (0.7 + 0.6 * u(seed, 5000 + k)),
                            iterations: 5,
                        })
                    })
                    .collect();
                out.push(MetricInput {
                    name: format!("{workload}_{j}"),
                    workload: workload.to_string(),
                    tolerance: DEFAULT_TOLERANCE,
                    samples,
                });
            }
        }
        out
    }

    /// The devices with a failing metric.
    fn flagged(metrics: &[MetricInput]) -> Vec<usize> {
        let out = check_group(metrics);
        let n = metrics[0].samples.len();
        (0..n)
            .filter(|&d| out.iter().any(|m| m[d].is_some_and(|c| !c.pass)))
            .collect()
    }

    #[test]
    fn the_normal_quantile_is_right() {
        assert!((normal_quantile(0.975) - 1.959964).abs() < 1e-6);
        assert!((normal_quantile(0.5)).abs() < 1e-12);
        assert!((normal_quantile(1.0 - 0.001 / 136.0) - 4.33).abs() < 0.01);
        assert!((normal_quantile(0.01) + 2.326348).abs() < 1e-6);
    }

    #[test]
    fn a_clean_node_is_never_flagged_in_a_thousand_runs() {
        for seed in 0..1000 {
            let f = flagged(&sim_run(seed, 8, |_| 1.0));
            assert!(f.is_empty(), "seed {seed}: {f:?}");
        }
    }

    #[test]
    fn a_device_seven_percent_slow_is_always_flagged_and_alone() {
        for seed in 0..1000 {
            let bad = (seed % 8) as usize;
            let f = flagged(&sim_run(seed, 8, |d| if d == bad { 0.93 } else { 1.0 }));
            assert_eq!(f, [bad], "seed {seed}");
        }
    }

    #[test]
    fn a_slow_fraction_gets_the_same_verdict_run_after_run() {
        // 2 % slow: inside the tolerance, never flagged; 10 %: always. (Near
        // the tolerance itself, 4-6 %, the device's own +-1 % factor decides,
        // as it would on hardware.)
        for seed in 0..500 {
            assert!(flagged(&sim_run(seed, 8, |d| if d == 2 { 0.98 } else { 1.0 })).is_empty());
            assert_eq!(
                flagged(&sim_run(seed, 8, |d| if d == 2 { 0.90 } else { 1.0 })),
                [2]
            );
        }
    }

    #[test]
    fn two_slow_devices_of_four_are_caught_by_their_own_figures() {
        for seed in 0..500 {
            let f = flagged(&sim_run(
                seed,
                4,
                |d| if d == 1 || d == 3 { 0.93 } else { 1.0 },
            ));
            assert_eq!(f, [1, 3], "seed {seed}");
        }
    }

    #[test]
    fn one_broken_path_alone_is_flagged() {
        // Only one matmul metric 15 % slow: the workload median is fine,
        // but the metric is beyond twice the tolerance.
        for seed in 0..200 {
            let mut run = sim_run(seed, 8, |_| 1.0);
            if let Some(s) = run[3].samples[5].as_mut() {
                s.value *= 0.85;
            }
            let out = check_group(&run);
            assert!(!out[3][5].expect("checked").pass, "seed {seed}");
            assert_eq!(flagged(&run), [5], "seed {seed}");
        }
    }

    #[test]
    fn one_fast_device_does_not_make_its_peers_slow() {
        for seed in 0..200 {
            let f = flagged(&sim_run(seed, 4, |d| if d == 0 { 1.4 } else { 1.0 }));
            assert!(f.is_empty(), "seed {seed}: {f:?}");
        }
        assert_eq!(reference(&[100.0, 100.0, 100.0, 140.0], 0.05), Some(100.0));
        assert_eq!(reference(&[93.0, 93.0, 100.0, 100.0], 0.05), Some(100.0));
        assert_eq!(reference(&[99.0, 100.0, 101.0], 0.05), Some(100.0));
    }

    #[test]
    fn too_few_peers_or_missing_values_are_skipped() {
        let mut run = sim_run(1, 2, |_| 1.0);
        assert!(check_group(&run).iter().flatten().all(Option::is_none));
        run = sim_run(1, 4, |_| 1.0);
        run[0].samples[1] = None;
        let out = check_group(&run);
        assert!(out[0][1].is_none());
        assert_eq!(out[0][0].expect("checked").devices, 3);
        assert_eq!(out[1][0].expect("checked").devices, 4);
    }
}

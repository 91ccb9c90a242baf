//! Burn-in analysis: what a one-minute benchmark cannot see.
//!
//! Over the cycles of a burn-in, per device: throughput decay (the median of
//! each metric over the first tenth of the cycles against the last tenth; a
//! drop larger than the metric's peer tolerance rejects with
//! `throughput_decay`), the time to the first throttle event, the temperature
//! plateau (median GPU temperature over the last quarter of the samples), the
//! first cycle in which a verification failed (an error that appears only
//! after N cycles), and the correctable-ECC rate over the run.

use serde::Serialize;

use crate::results::DeviceRun;
use crate::stats;
use crate::verdict::Check;
use crate::workload::WorkloadKind;

/// Fewest cycles for the analysis (and the decay rule) to apply.
pub const MIN_CYCLES: u32 = 3;

/// How one metric moved from the start of the burn-in to its end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decay {
    /// Metric name.
    pub metric: String,
    /// Unit of the two medians.
    pub unit: String,
    /// Median over the first tenth of the cycles (at least one).
    pub first: f64,
    /// Median over the last tenth of the cycles (at least one).
    pub last: f64,
    /// (last - first) / first, in percent.
    pub change_pct: f64,
}

/// The burn-in findings of one device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Burnin {
    /// Cycles analysed.
    pub cycles: u32,
    /// Per metric, first tenth against last tenth.
    pub decay: Vec<Decay>,
    /// Seconds into the run of the first sample with any throttle reason
    /// other than `gpu_idle`.
    pub first_throttle_s: Option<f64>,
    /// Median GPU temperature over the last quarter of the samples, C.
    pub temp_plateau_c: Option<f64>,
    /// First cycle in which a verification found errors, counted from 0 as
    /// every `cycle` field is.
    pub first_error_cycle: Option<u32>,
    /// Correctable ECC errors per hour over the run.
    pub ecc_corrected_per_hour: Option<f64>,
    /// Device-busy time (timed work) over the wall time of all its
    /// workload phases but the power pulses (idle half of the time by
    /// design), 0 to 1; `None` on simulated and virtual GPUs, whose
    /// time is modelled, and for journals that did not record busy time.
    pub duty_cycle: Option<f64>,
    /// The same per workload, by name.
    pub duty_by_workload: std::collections::BTreeMap<String, f64>,
}

/// The duty cycle a burn-in must hold to load a GPU the way production
/// (back-to-back GEMMs) does.
pub const MIN_DUTY_CYCLE: f64 = 0.95;

/// (overall, per workload) duty cycles of `dev`'s phases.
fn duty(dev: &DeviceRun) -> (Option<f64>, std::collections::BTreeMap<String, f64>) {
    let mut per: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
    if dev.info.simulated {
        return (None, Default::default());
    }
    for p in &dev.phases {
        let (Some(busy), wall) = (p.busy_s, p.end_s - p.start_s) else {
            continue;
        };
        if wall > 0.0 && busy.is_finite() {
            let e = per
                .entry(p.workload.name().to_string())
                .or_insert((0.0, 0.0));
            e.0 += busy.min(wall);
            e.1 += wall;
        }
    }
    // Pulses idle half of their phase by design: they are shown per
    // workload, but the load a burn-in held is that of the others.
    let (busy, wall) = per
        .iter()
        .filter(|(k, _)| k.as_str() != WorkloadKind::Pulse.name())
        .fold((0.0, 0.0), |a, (_, b)| (a.0 + b.0, a.1 + b.1));
    let overall = (wall > 0.0).then(|| busy / wall);
    (
        overall,
        per.into_iter().map(|(k, (b, w))| (k, b / w)).collect(),
    )
}

/// Analyses `dev` over `cycles` cycles and adds the decay checks.
pub fn analyse(
    dev: &DeviceRun,
    cycles: u32,
    tolerance: &dyn Fn(&str) -> f64,
    checks: &mut Vec<Check>,
) -> Burnin {
    let tenth = (cycles / 10).max(1);
    let mut names: Vec<(String, String)> = dev
        .metrics
        .iter()
        .map(|m| (m.name.clone(), m.unit.clone()))
        .collect();
    names.sort();
    names.dedup();
    let mut decay = Vec::new();
    for (name, unit) in names {
        let pick = |lo: u32, hi: u32| -> Vec<f64> {
            dev.metrics
                .iter()
                .filter(|m| m.name == name && m.cycle >= lo && m.cycle < hi)
                .map(|m| m.value)
                .collect()
        };
        let (Some(first), Some(last)) = (
            stats::median(&pick(0, tenth)),
            stats::median(&pick(cycles.saturating_sub(tenth), cycles)),
        ) else {
            continue;
        };
        if first <= 0.0 {
            continue;
        }
        let change = last / first - 1.0;
        let tol = tolerance(&name);
        let pass = change >= -tol;
        let end = dev
            .metrics
            .iter()
            .filter(|m| m.name == name)
            .map(|m| m.cycle)
            .max();
        checks.push(
            Check::new(
                "burnin",
                name.clone(),
                last,
                first * (1.0 - tol),
                pass,
                "throughput_decay",
                format!(
                    "{last:.1} {unit} over the last tenth of the cycles against {first:.1} {unit} over the first ({:+.1} %, tolerance {:.0} %)",
                    change * 100.0,
                    tol * 100.0
                ),
            )
            .at(end.and_then(|c| {
                dev.phases
                    .iter()
                    .filter(|p| p.cycle == c)
                    .map(|p| p.end_s)
                    .max_by(f64::total_cmp)
            })),
        );
        decay.push(Decay {
            metric: name,
            unit,
            first,
            last,
            change_pct: change * 100.0,
        });
    }
    let t = &dev.telemetry;
    let first_throttle_s = t
        .iter()
        .find(|s| s.throttle.iter().any(|r| r != "gpu_idle"))
        .map(|s| s.t_s);
    let temps: Vec<f64> = t[t.len() * 3 / 4..]
        .iter()
        .filter_map(|s| s.gpu_temp_c)
        .collect();
    let first_error_cycle = dev
        .integrity
        .iter()
        .filter(|i| i.errors > 0)
        .map(|i| i.cycle)
        .min();
    let ecc: Vec<(f64, u64)> = t
        .iter()
        .filter_map(|s| Some((s.t_s, s.ecc_corrected?)))
        .collect();
    let ecc_corrected_per_hour = match (ecc.first(), ecc.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => {
            Some(b.1.saturating_sub(a.1) as f64 / (b.0 - a.0) * 3600.0)
        }
        _ => None,
    };
    let (duty_cycle, duty_by_workload) = duty(dev);
    if let Some(d) = duty_cycle {
        let mut c = Check::new(
            "burnin",
            "duty_cycle",
            d,
            MIN_DUTY_CYCLE,
            true,
            "",
            format!(
                "the GPU was busy {:.1} % of its workload time ({}); a burn-in holds at least {:.0} %",
                100.0 * d,
                duty_by_workload
                    .iter()
                    .map(|(w, x)| format!("{w} {:.1} %", 100.0 * x))
                    .collect::<Vec<_>>()
                    .join(", "),
                100.0 * MIN_DUTY_CYCLE
            ),
        );
        if d < MIN_DUTY_CYCLE {
            // The harness could not load the GPU: a finding about the test,
            // never a fault of the GPU.
            c.warn = true;
            c.reason = "low_duty_cycle".into();
            c.detail = format!("the burn-in could not load this GPU: {}", c.detail);
        }
        checks.push(c);
    }
    Burnin {
        duty_cycle,
        duty_by_workload,
        cycles,
        decay,
        first_throttle_s,
        temp_plateau_c: stats::median(&temps),
        first_error_cycle,
        ecc_corrected_per_hour,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Integrity, Metric, WorkloadKind};

    fn dev(values: &[f64], bad_cycle: Option<u32>) -> DeviceRun {
        let metric = |cycle: u32, value: f64| Metric {
            workload: WorkloadKind::Matmul,
            name: "matmul_f32".into(),
            value,
            unit: "GFLOP/s".into(),
            median: value,
            p05: value,
            p95: value,
            cv: 0.0,
            iterations: 5,
            counted: String::new(),
            simulated: true,
            cycle,
        };
        DeviceRun {
            metrics: values
                .iter()
                .enumerate()
                .map(|(c, v)| metric(c as u32, *v))
                .collect(),
            integrity: (0..values.len() as u32)
                .map(|c| Integrity {
                    workload: WorkloadKind::Memtest,
                    check: "memtest".into(),
                    checked: 10,
                    errors: u64::from(bad_cycle.is_some_and(|b| c >= b)),
                    detail: String::new(),
                    first_bad_offsets: Vec::new(),
                    checksum: None,
                    cycle: c,
                })
                .collect(),
            ..DeviceRun::blank()
        }
    }

    /// A real device whose cycles each ran a matmul phase of 10 s wall
    /// time with `busy` seconds of timed work.
    fn loaded(busy: f64, simulated: bool) -> DeviceRun {
        let values = vec![100.0; 5];
        let mut d = dev(&values, None);
        d.info.simulated = simulated;
        d.phases = (0..5)
            .map(|c| crate::results::PhaseWindow {
                workload: WorkloadKind::Matmul,
                cycle: c,
                start_s: f64::from(c) * 10.0,
                end_s: f64::from(c) * 10.0 + 10.0,
                busy_s: Some(busy),
            })
            .collect();
        d
    }

    #[test]
    fn a_burn_in_that_could_not_load_the_gpu_says_so_without_rejecting_it() {
        let mut checks = Vec::new();
        let b = analyse(&loaded(6.0, false), 5, &|_| 0.05, &mut checks);
        assert_eq!(b.duty_cycle, Some(0.6));
        assert_eq!(b.duty_by_workload.get("matmul"), Some(&0.6));
        let c = checks
            .iter()
            .find(|c| c.metric == "duty_cycle")
            .expect("duty check");
        assert!(c.pass && c.warn && c.reason == "low_duty_cycle", "{c:?}");
        assert!(
            c.detail
                .contains("could not load this GPU: the GPU was busy 60.0 %"),
            "{c:?}"
        );

        let mut checks = Vec::new();
        let b = analyse(&loaded(9.8, false), 5, &|_| 0.05, &mut checks);
        assert_eq!(b.duty_cycle, Some(0.98));
        let c = checks
            .iter()
            .find(|c| c.metric == "duty_cycle")
            .expect("duty check");
        assert!(c.pass && !c.warn && c.reason.is_empty(), "{c:?}");
    }

    #[test]
    fn a_simulated_gpu_has_no_duty_cycle_its_time_is_modelled() {
        let mut checks = Vec::new();
        let b = analyse(&loaded(1.0, true), 5, &|_| 0.05, &mut checks);
        assert_eq!(b.duty_cycle, None);
        assert!(checks.iter().all(|c| c.metric != "duty_cycle"));
    }

    #[test]
    fn a_steady_device_shows_no_decay() {
        let values: Vec<f64> = (0..20).map(|i| 100.0 + (i % 3) as f64 * 0.5).collect();
        let mut checks = Vec::new();
        let b = analyse(&dev(&values, None), 20, &|_| 0.05, &mut checks);
        assert!(checks.iter().all(|c| c.pass), "{checks:?}");
        assert_eq!(b.first_error_cycle, None);
        assert!(b.decay[0].change_pct.abs() < 2.0);
    }

    #[test]
    fn a_device_that_slows_down_as_it_heats_is_rejected() {
        // 100 at the start, 90 by the end: -10 % against a 5 % tolerance.
        let values: Vec<f64> = (0..20).map(|i| 100.0 - i as f64 * 10.0 / 19.0).collect();
        let mut checks = Vec::new();
        let b = analyse(&dev(&values, None), 20, &|_| 0.05, &mut checks);
        let c = checks
            .iter()
            .find(|c| c.rule == "burnin")
            .expect("decay check");
        assert!(!c.pass && c.reason == "throughput_decay", "{c:?}");
        assert!(b.decay[0].change_pct < -8.0);
    }

    #[test]
    fn an_error_that_appears_late_is_dated() {
        let values = vec![100.0; 12];
        let mut checks = Vec::new();
        let b = analyse(&dev(&values, Some(7)), 12, &|_| 0.05, &mut checks);
        assert_eq!(
            b.first_error_cycle,
            Some(7),
            "cycles count from 0, as the integrity record's own cycle"
        );
    }
}

//! The telemetry rule: what the sensors saw during the run.
//!
//! Limits come from the device's baseline; with no baseline, kiln still
//! applies the limits that need no model knowledge (no new uncorrectable ECC
//! errors, no pending or failed row remapping, no XID event, no throttling
//! beyond the default tolerated reasons, the PCIe link at the device's own
//! maximum) and skips the temperature limits, which are model-specific.

use crate::results::DeviceRun;
use crate::telemetry::Sample;
use crate::verdict::baseline::{Baseline, Limits, DEFAULT_MIN_POWER_FRACTION, DEFAULT_TOLERATED};
use crate::verdict::Check;
use crate::workload::WorkloadKind;

/// The reason code of a throttle reason that is not tolerated.
pub fn throttle_reason(name: &str) -> &'static str {
    match name {
        "sw_thermal_slowdown" | "hw_thermal_slowdown" => "thermal_throttle",
        "hw_power_brake_slowdown" | "sw_power_cap" => "power_throttle",
        "hw_slowdown" => "hw_slowdown",
        _ => "throttle",
    }
}

fn max_of(samples: &[Sample], f: impl Fn(&Sample) -> Option<f64>) -> Option<(f64, f64)> {
    samples
        .iter()
        .filter_map(|s| f(s).map(|v| (v, s.t_s)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

fn delta(samples: &[Sample], f: impl Fn(&Sample) -> Option<u64>) -> Option<(u64, u64)> {
    let first = samples.iter().find_map(&f)?;
    let last = samples.iter().rev().find_map(&f).unwrap_or(first);
    Some((first, last))
}

/// Appends the telemetry checks of `dev` to `checks`.
pub fn checks(dev: &DeviceRun, base: Option<&Baseline>, checks: &mut Vec<Check>) {
    let samples = &dev.telemetry;
    if samples.is_empty() {
        return;
    }
    let default = Limits::default();
    let limits = base.map_or(&default, |b| &b.limits);
    let span = samples.last().map_or(0.0, |s| s.t_s) - samples.first().map_or(0.0, |s| s.t_s);
    let n = samples.len();

    for (metric, limit, get) in [
        (
            "gpu_temp_c",
            limits.max_gpu_temp_c,
            (|s: &Sample| s.gpu_temp_c) as fn(&Sample) -> Option<f64>,
        ),
        ("mem_temp_c", limits.max_mem_temp_c, |s: &Sample| {
            s.mem_temp_c
        }),
    ] {
        if let (Some(limit), Some((max, at))) = (limit, max_of(samples, get)) {
            let pass = max <= limit;
            checks.push(
                Check::new(
                    "telemetry",
                    metric,
                    max,
                    limit,
                    pass,
                    "over_temperature",
                    format!(
                        "hottest reading {max:.0} C{} (limit {limit:.0} C, {n} samples)",
                        if pass {
                            String::new()
                        } else {
                            format!(" at {}", super::secs(at))
                        }
                    ),
                )
                .at(samples
                    .iter()
                    .find(|s| get(s).is_some_and(|v| v > limit))
                    .map(|s| s.t_s)),
            );
        }
    }

    // Throttling: every reason seen that is not tolerated, each on its own.
    let tolerated: Vec<String> = if base.is_some() {
        limits.tolerated_throttle.clone()
    } else {
        DEFAULT_TOLERATED.iter().map(|s| s.to_string()).collect()
    };
    let mut seen: Vec<(String, usize, f64)> = Vec::new();
    for s in samples {
        for r in &s.throttle {
            match seen.iter_mut().find(|(n, _, _)| n == r) {
                Some(e) => e.1 += 1,
                None => seen.push((r.clone(), 1, s.t_s)),
            }
        }
    }
    let bad: Vec<&(String, usize, f64)> = seen
        .iter()
        .filter(|(r, _, _)| !tolerated.contains(r))
        .collect();
    if bad.is_empty() {
        checks.push(Check::new(
            "telemetry",
            "throttle",
            0.0,
            0.0,
            true,
            "",
            if seen.is_empty() {
                format!("no clock throttling in {n} samples")
            } else {
                let names: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
                format!(
                    "only tolerated throttle reasons seen ({})",
                    names.join(", ")
                )
            },
        ));
    }
    for (reason, count, first) in bad {
        checks.push(
            Check::new(
                "telemetry",
                format!("throttle:{reason}"),
                *count as f64,
                0.0,
                false,
                throttle_reason(reason),
                format!(
                    "{reason} in {count} of {n} samples, first at {}",
                    super::secs(*first)
                ),
            )
            .at(Some(*first)),
        );
    }

    if let Some((first, last)) = delta(samples, |s| s.ecc_uncorrected) {
        let new = last.saturating_sub(first);
        checks.push(
            Check::new(
                "telemetry",
                "ecc_uncorrected",
                new as f64,
                limits.max_ecc_uncorrectable as f64,
                new <= limits.max_ecc_uncorrectable,
                "ecc_uncorrectable",
                format!(
                "{new} new uncorrectable ECC errors during the run ({first} before, {last} after)"
            ),
            )
            .at(samples
                .iter()
                .find(|s| s.ecc_uncorrected.is_some_and(|v| v > first))
                .map(|s| s.t_s)),
        );
    }
    if let Some((first, last)) = delta(samples, |s| s.ecc_corrected) {
        let new = last.saturating_sub(first);
        let mut c = Check::new(
            "telemetry",
            "ecc_corrected",
            new as f64,
            0.0,
            true,
            "",
            format!("{new} new correctable ECC errors in {span:.0} s"),
        );
        if new > 0 {
            c.warn = true;
            c.reason = "ecc_correctable".into();
        }
        checks.push(c);
    }
    for (metric, limit, get) in [
        (
            "remapped_rows_pending",
            limits.max_remapped_rows_pending,
            (|s: &Sample| s.remapped_rows_pending) as fn(&Sample) -> Option<u64>,
        ),
        (
            "remapped_rows_failed",
            limits.max_remapped_rows_failed,
            |s: &Sample| s.remapped_rows_failed,
        ),
    ] {
        if let Some(max) = samples.iter().filter_map(get).max() {
            checks.push(
                Check::new(
                    "telemetry",
                    metric,
                    max as f64,
                    limit as f64,
                    max <= limit,
                    "row_remap",
                    format!("{max} {} (limit {limit})", metric.replace('_', " ")),
                )
                .at(samples
                    .iter()
                    .find(|s| get(s).is_some_and(|v| v > limit))
                    .map(|s| s.t_s)),
            );
        }
    }
    let has_xid_source = samples.iter().any(|s| s.xid.is_some());
    let xids: Vec<(u32, f64)> = samples
        .iter()
        .flat_map(|s| s.xid.iter().flatten().map(move |x| (*x, s.t_s)))
        .collect();
    let xid_detail = if xids.is_empty() {
        "no XID event".to_string()
    } else {
        let list: Vec<String> = xids
            .iter()
            .map(|(x, t)| format!("XID {x} at {}", super::secs(*t)))
            .collect();
        list.join(", ")
    };
    if has_xid_source {
        checks.push(
            Check::new(
                "telemetry",
                "xid",
                xids.len() as f64,
                limits.max_xid as f64,
                xids.len() as u64 <= limits.max_xid,
                "xid",
                xid_detail,
            )
            .at(xids.first().map(|x| x.1)),
        );
    }

    nvlink_checks(samples, limits, checks);
    power_checks(dev, limits, checks);

    // PCIe: the best link seen (GPUs downshift when idle) against what the
    // baseline expects, or the device's own maximum.
    let best = |f: fn(&Sample) -> Option<u32>| samples.iter().filter_map(f).max();
    // The fastest link seen, by its transfer rate (GT/s per lane x lanes).
    let rate = |g: u32| [2.5, 5.0, 8.0, 16.0, 32.0, 64.0, 128.0][(g.clamp(1, 7) - 1) as usize];
    // Only samples taken under load count: an idle GPU's link downshifts
    // (to Gen1 on NVIDIA's), so a device that never ran (untested, or lost
    // at once) has no link to judge. Under load means a utilisation above
    // 0, or, for a device without utilisation readings (NVML has none for a
    // GPU in MIG mode), a sample inside one of its workload phases.
    let has_util = samples.iter().any(|s| s.util_pct.is_some());
    let in_phase = |t: f64| dev.worked_phases().any(|p| p.start_s <= t && t <= p.end_s);
    let loaded: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            if has_util {
                s.util_pct.is_some_and(|u| u > 0.0)
            } else {
                in_phase(s.t_s)
            }
        })
        .collect();
    let link = loaded
        .iter()
        .filter_map(|s| Some((s.pcie_gen?, s.pcie_width?)))
        .max_by(|a, b| (rate(a.0) * f64::from(a.1)).total_cmp(&(rate(b.0) * f64::from(b.1))));
    if link.is_none() && has_util && samples.iter().any(|s| s.pcie_gen.is_some()) {
        let mut c = Check::new(
            "telemetry",
            "pcie_link",
            f64::NAN,
            f64::NAN,
            true,
            "",
            "skipped: no sample under load, and an idle GPU's link downshifts, so the link was not judged".into(),
        );
        c.skipped = true;
        checks.push(c);
    }
    if let Some((gen, width)) = link {
        let want_gen = limits.pcie_gen.or_else(|| best(|s| s.pcie_max_gen));
        let want_width = limits.pcie_width.or_else(|| best(|s| s.pcie_max_width));
        if let (Some(wg), Some(ww)) = (want_gen, want_width) {
            let pass = gen >= wg && width >= ww;
            checks.push(Check::new(
                "telemetry",
                "pcie_link",
                f64::from(gen),
                f64::from(wg),
                pass,
                "pcie_degraded",
                format!("PCIe link Gen{gen} x{width} (expected Gen{wg} x{ww})"),
            ));
        }
    }
}

/// Power under load: during its matmul phases a GPU must draw, at least
/// once, the baseline's fraction of its enforced power limit (`power_low`).
/// A device without power or limit readings (CPUs) or without a sample
/// inside a matmul phase is not judged, and says so.
pub fn power_checks(dev: &DeviceRun, limits: &Limits, checks: &mut Vec<Check>) {
    let windows: Vec<_> = dev
        .worked_phases()
        .filter(|p| p.workload == WorkloadKind::Matmul)
        .collect();
    if windows.is_empty() || !dev.telemetry.iter().any(|s| s.power_limit_w.is_some()) {
        return;
    }
    // A reading that averages over a window (NVML's 1 s) judges the load
    // only when the whole window lies in a matmul phase: one that starts in
    // the idle before it would read low on a healthy GPU.
    let settled = |s: &Sample| {
        let from = s.t_s - s.power_avg_s.unwrap_or(0.0);
        windows
            .iter()
            .any(|p| p.start_s <= from && s.t_s <= p.end_s)
    };
    let best = dev
        .telemetry
        .iter()
        .filter(|s| settled(s))
        .filter_map(|s| Some((s.power_w?, s.power_limit_w?, s.t_s)))
        .filter(|(_, limit, _)| *limit > 0.0)
        .max_by(|a, b| (a.0 / a.1).total_cmp(&(b.0 / b.1)));
    let want = limits
        .min_power_fraction
        .unwrap_or(DEFAULT_MIN_POWER_FRACTION);
    let Some((watts, limit, at)) = best else {
        let mut c = Check::new(
            "telemetry",
            "power_under_load",
            f64::NAN,
            want,
            true,
            "",
            format!(
                "skipped: no power reading whose window lies inside a matmul phase (the matmul phases lasted {}{}); a longer profile (standard, burnin) or a faster --sample-rate gives one",
                crate::stats::secs(windows.iter().map(|p| p.end_s - p.start_s).sum::<f64>()),
                match dev.telemetry.iter().find_map(|s| s.power_avg_s) {
                    Some(a) => format!(", and each power reading averages over {}", crate::stats::secs(a)),
                    None => String::new(),
                }
            ),
        );
        c.skipped = true;
        checks.push(c);
        return;
    };
    let fraction = watts / limit;
    let pass = fraction >= want;
    checks.push(
        Check::new(
            "telemetry",
            "power_under_load",
            fraction,
            want,
            pass,
            "power_low",
            format!(
                "drew at most {watts:.0} W under matmul, {:.0} % of its enforced limit of {limit:.0} W (at least {:.0} % expected)",
                100.0 * fraction,
                100.0 * want
            ),
        )
        .at(Some(at)),
    );
}

/// NVLink: every link the baseline expects active in every sample
/// (`nvlink_down`), no replay or recovery error during the run and CRC
/// errors under the baseline's rate (`nvlink_errors`).
fn nvlink_checks(samples: &[Sample], limits: &Limits, checks: &mut Vec<Check>) {
    let with: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.nvlink_links.is_some())
        .collect();
    if let Some(want) = limits.nvlink_links {
        match with
            .iter()
            .filter_map(|s| Some((s.nvlink_active?, s.t_s)))
            .min_by_key(|x| x.0)
        {
            Some((active, at)) => checks.push(
                Check::new(
                    "telemetry",
                    "nvlink_links",
                    f64::from(active),
                    f64::from(want),
                    active >= want,
                    "nvlink_down",
                    format!(
                        "{active} of {want} NVLinks active{}",
                        if active < want {
                            format!(" at {}", super::secs(at))
                        } else {
                            String::new()
                        }
                    ),
                )
                .at((active < want).then_some(at)),
            ),
            None if !samples.is_empty() => {
                let mut c = Check::new(
                    "telemetry",
                    "nvlink_links",
                    f64::NAN,
                    f64::from(want),
                    true,
                    "",
                    format!("skipped: the baseline expects {want} NVLinks, and the device reported no NVLink state"),
                );
                c.skipped = true;
                checks.push(c);
            }
            None => {}
        }
    }
    // Counters: the growth over the run, from the first sample that has
    // them to the last.
    let grow = |f: fn(&Sample) -> Option<u64>| {
        let v: Vec<(u64, f64)> = with.iter().filter_map(|s| Some((f(s)?, s.t_s))).collect();
        match (v.first(), v.last()) {
            (Some(a), Some(b)) => Some((
                b.0.saturating_sub(a.0),
                b.1 - a.1,
                v.iter().find(|x| x.0 > a.0).map(|x| x.1),
            )),
            _ => None,
        }
    };
    if let Some((replay, _, first)) = grow(|s| s.nvlink_replay) {
        checks.push(
            Check::new(
                "telemetry",
                "nvlink_replay",
                replay as f64,
                0.0,
                replay == 0,
                "nvlink_errors",
                format!(
                    "{replay} NVLink replay or recovery error(s) during the run (none tolerated)"
                ),
            )
            .at(first.filter(|_| replay > 0)),
        );
    }
    if let Some((crc, span, first)) = grow(|s| s.nvlink_crc) {
        let limit = limits
            .max_nvlink_crc_per_s
            .unwrap_or(crate::verdict::baseline::DEFAULT_NVLINK_CRC_PER_S);
        let rate = if span > 0.0 { crc as f64 / span } else { 0.0 };
        let pass = rate <= limit;
        checks.push(
            Check::new(
                "telemetry",
                "nvlink_crc",
                rate,
                limit,
                pass,
                "nvlink_errors",
                format!(
                    "{crc} NVLink CRC error(s) in {}: {rate:.1} per second (limit {limit})",
                    super::secs(span)
                ),
            )
            .at(first.filter(|_| !pass)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that ran one workload phase over the whole trace.
    fn dev(samples: Vec<Sample>) -> DeviceRun {
        DeviceRun {
            telemetry: samples,
            phases: vec![crate::results::PhaseWindow {
                workload: crate::workload::WorkloadKind::Matmul,
                cycle: 0,
                start_s: 0.0,
                end_s: 1e9,
                busy_s: None,
            }],
            done: vec![(crate::workload::WorkloadKind::Matmul, 0)],
            ..DeviceRun::blank()
        }
    }

    fn sample(t: f64) -> Sample {
        Sample {
            t_s: t,
            gpu_temp_c: Some(60.0),
            ecc_corrected: Some(10),
            ecc_uncorrected: Some(2),
            pcie_gen: Some(5),
            pcie_width: Some(16),
            pcie_max_gen: Some(5),
            pcie_max_width: Some(16),
            ..Sample::default()
        }
    }

    fn failed(samples: Vec<Sample>, base: Option<&Baseline>) -> Vec<String> {
        let mut c = Vec::new();
        checks(&dev(samples), base, &mut c);
        c.into_iter()
            .filter(|c| !c.pass)
            .map(|c| c.reason)
            .collect()
    }

    #[test]
    fn a_clean_trace_passes_and_old_errors_do_not_count() {
        // 2 uncorrectable errors from before the run are not new ones.
        assert!(failed(vec![sample(0.0), sample(1.0)], None).is_empty());
    }

    #[test]
    fn several_throttle_reasons_are_each_reported() {
        let mut s = sample(1.0);
        s.throttle = vec![
            "sw_power_cap".into(),
            "sw_thermal_slowdown".into(),
            "hw_power_brake_slowdown".into(),
            "hw_slowdown".into(),
        ];
        let r = failed(vec![sample(0.0), s], None);
        assert_eq!(r, vec!["thermal_throttle", "power_throttle", "hw_slowdown"]);
    }

    #[test]
    fn only_new_uncorrectable_ecc_errors_reject_and_correctable_ones_warn() {
        let mut later = sample(5.0);
        later.ecc_uncorrected = Some(3);
        later.ecc_corrected = Some(50);
        assert_eq!(
            failed(vec![sample(0.0), later.clone()], None),
            vec!["ecc_uncorrectable"]
        );
        let mut c = Vec::new();
        later.ecc_uncorrected = Some(2);
        checks(&dev(vec![sample(0.0), later]), None, &mut c);
        let corr = c
            .iter()
            .find(|c| c.metric == "ecc_corrected")
            .expect("check");
        assert!(corr.pass && corr.warn && corr.reason == "ecc_correctable");
    }

    #[test]
    fn pcie_uses_the_best_link_seen_against_the_maximum() {
        let mut idle = sample(0.0);
        idle.pcie_gen = Some(1); // idle GPUs downshift
        assert!(failed(vec![idle.clone(), sample(1.0)], None).is_empty());
        let mut narrow = sample(1.0);
        narrow.pcie_width = Some(8);
        assert_eq!(failed(vec![idle, narrow], None), vec!["pcie_degraded"]);
    }

    #[test]
    fn a_device_never_loaded_has_no_link_to_judge() {
        let mut idle = sample(0.0);
        idle.pcie_gen = Some(1);
        idle.util_pct = Some(0.0);
        let mut checks = Vec::new();
        super::checks(&dev(vec![idle.clone(), idle]), None, &mut checks);
        let c = checks
            .iter()
            .find(|c| c.metric == "pcie_link")
            .expect("pcie check");
        assert!(c.skipped && c.pass, "{c:?}");
        let mut busy = sample(1.0);
        busy.util_pct = Some(100.0);
        busy.pcie_gen = Some(4);
        let mut idle = sample(0.0);
        idle.util_pct = Some(0.0);
        assert_eq!(failed(vec![idle, busy], None), vec!["pcie_degraded"]);
    }

    #[test]
    fn a_device_that_never_ran_is_not_judged_on_its_idle_link() {
        // No utilisation readings (NVML has none in MIG mode) and no
        // workload phase: every sample is idle, and an idle link downshifts.
        let mut idle = sample(0.0);
        idle.util_pct = None;
        idle.pcie_gen = Some(1);
        let never_ran = DeviceRun {
            telemetry: vec![idle.clone()],
            ..DeviceRun::blank()
        };
        let mut c = Vec::new();
        checks(&never_ran, None, &mut c);
        assert!(c.iter().all(|c| c.pass), "{c:?}");
        // The same sample inside a phase is judged.
        assert_eq!(failed(vec![idle], None), vec!["pcie_degraded"]);
    }

    #[test]
    fn nvlinks_down_or_erroring_reject_and_healthy_ones_pass() {
        let base = crate::verdict::baseline::builtin()
            .into_iter()
            .find(|b| b.model.contains("H100") && b.limits.nvlink_links == Some(18))
            .expect("shipped H100 SXM baseline");
        let link = |t: f64, active: u32, replay: u64, crc: u64| Sample {
            nvlink_links: Some(18),
            nvlink_active: Some(active),
            nvlink_replay: Some(replay),
            nvlink_crc: Some(crc),
            ..sample(t)
        };
        // Healthy: every link up, old counts that do not grow, a few CRCs.
        let clean = vec![link(0.0, 18, 7, 100), link(10.0, 18, 7, 150)];
        assert!(failed(clean.clone(), Some(&base)).is_empty());
        // Without a baseline's expectation, link state is not judged.
        assert!(failed(vec![link(0.0, 12, 0, 0)], None).is_empty());
        assert_eq!(
            failed(vec![link(0.0, 18, 0, 0), link(1.0, 17, 0, 0)], Some(&base)),
            vec!["nvlink_down"]
        );
        assert_eq!(
            failed(vec![link(0.0, 18, 0, 0), link(1.0, 18, 1, 0)], Some(&base)),
            vec!["nvlink_errors"]
        );
        // 5000 CRC errors in 10 s: 500 per second, over the default 100.
        assert_eq!(
            failed(
                vec![link(0.0, 18, 0, 0), link(10.0, 18, 0, 5000)],
                Some(&base)
            ),
            vec!["nvlink_errors"]
        );
        // A GPU without NVLink (a PCIe card) has nothing to judge.
        assert!(failed(vec![sample(0.0), sample(1.0)], Some(&base)).is_empty());
    }

    #[test]
    fn a_gpu_that_cannot_draw_power_under_matmul_is_rejected_and_one_that_can_passes() {
        let with = |w: f64| Sample {
            power_w: Some(w),
            power_limit_w: Some(700.0),
            ..sample(5.0)
        };
        assert_eq!(
            failed(vec![sample(0.0), with(400.0)], None),
            vec!["power_low"]
        );
        assert!(failed(vec![sample(0.0), with(600.0)], None).is_empty());
        let mut base = crate::verdict::baseline::builtin()
            .into_iter()
            .find(|b| b.model.contains("H100"))
            .expect("shipped H100 baseline");
        base.limits.min_power_fraction = Some(0.9);
        assert_eq!(
            failed(vec![sample(0.0), with(600.0)], Some(&base)),
            vec!["power_low"]
        );
        // Outside matmul, power is not judged.
        let mut d = dev(vec![sample(0.0), with(100.0)]);
        d.phases[0].workload = WorkloadKind::Hash;
        d.done = vec![(WorkloadKind::Hash, 0)];
        let mut checks = Vec::new();
        super::checks(&d, None, &mut checks);
        assert!(
            checks.iter().all(|c| c.metric != "power_under_load"),
            "{checks:?}"
        );
        // Nor in a matmul that failed at once (a GPU busy elsewhere): the
        // device never worked.
        let mut d = dev(vec![sample(0.0), with(100.0)]);
        d.done.clear();
        let mut checks = Vec::new();
        super::checks(&d, None, &mut checks);
        assert!(
            checks.iter().all(|c| c.metric != "power_under_load"),
            "{checks:?}"
        );
    }

    /// NVML averages power over 1 s: a reading whose window starts before
    /// the matmul phase (in the idle before it) does not judge the GPU; one
    /// whose window lies inside does.
    #[test]
    fn an_averaged_power_reading_judges_only_a_window_inside_the_matmul_phase() {
        let avg = |t: f64, w: f64| Sample {
            power_w: Some(w),
            power_limit_w: Some(700.0),
            power_avg_s: Some(1.0),
            ..sample(t)
        };
        let run = |samples: Vec<Sample>| {
            let mut d = dev(samples);
            d.phases[0].start_s = 10.0;
            d.phases[0].end_s = 10.8;
            let mut checks = Vec::new();
            super::checks(&d, None, &mut checks);
            checks
                .into_iter()
                .find(|c| c.metric == "power_under_load")
                .expect("a power check")
        };
        // 0.8 s of matmul: the reading at its end still averages idle.
        let c = run(vec![avg(9.0, 70.0), avg(10.8, 300.0)]);
        assert!(c.skipped && c.pass, "{c:?}");
        assert!(c.detail.contains("averages over 1.00 s"), "{}", c.detail);
        assert!(c.detail.contains("lasted 0.80 s"), "{}", c.detail);
        // A longer phase: the settled reading is judged, both ways.
        let long = |w: f64| {
            let mut d = dev(vec![avg(10.5, 100.0), avg(12.0, w)]);
            d.phases[0].start_s = 10.0;
            d.phases[0].end_s = 12.0;
            let mut checks = Vec::new();
            super::checks(&d, None, &mut checks);
            checks
                .into_iter()
                .filter(|c| !c.pass)
                .map(|c| c.reason)
                .collect::<Vec<_>>()
        };
        assert!(long(650.0).is_empty());
        assert_eq!(long(400.0), vec!["power_low"]);
    }

    #[test]
    fn temperature_limits_need_a_baseline() {
        let mut hot = sample(1.0);
        hot.gpu_temp_c = Some(99.0);
        assert!(
            failed(vec![hot.clone()], None).is_empty(),
            "no model limit without a baseline"
        );
        let base = crate::verdict::baseline::builtin()
            .into_iter()
            .find(|b| b.model.contains("H100"))
            .expect("shipped H100 baseline");
        assert_eq!(failed(vec![hot], Some(&base)), vec!["over_temperature"]);
    }

    #[test]
    fn xid_events_and_row_remaps_reject() {
        let mut s = sample(2.0);
        s.xid = Some(vec![79]);
        s.remapped_rows_pending = Some(1);
        assert_eq!(failed(vec![sample(0.0), s], None), vec!["row_remap", "xid"]);
    }
}

//! The telemetry rule: what the sensors saw during the run.
//!
//! Limits come from the device's baseline; with no baseline, kiln still
//! applies the limits that need no model knowledge (no new uncorrectable ECC
//! errors, no pending or failed row remapping, no XID event, no throttling
//! beyond the default tolerated reasons, the PCIe link at the device's own
//! maximum) and skips the temperature limits, which are model-specific.

use crate::results::DeviceRun;
use crate::telemetry::Sample;
use crate::verdict::baseline::{Baseline, Limits, DEFAULT_TOLERATED};
use crate::verdict::Check;

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
            checks.push(Check::new(
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
                        format!(" at {at:.0} s")
                    }
                ),
            ));
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
        checks.push(Check::new(
            "telemetry",
            format!("throttle:{reason}"),
            *count as f64,
            0.0,
            false,
            throttle_reason(reason),
            format!("{reason} in {count} of {n} samples, first at {first:.0} s"),
        ));
    }

    if let Some((first, last)) = delta(samples, |s| s.ecc_uncorrected) {
        let new = last.saturating_sub(first);
        checks.push(Check::new(
            "telemetry",
            "ecc_uncorrected",
            new as f64,
            limits.max_ecc_uncorrectable as f64,
            new <= limits.max_ecc_uncorrectable,
            "ecc_uncorrectable",
            format!(
                "{new} new uncorrectable ECC errors during the run ({first} before, {last} after)"
            ),
        ));
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
            checks.push(Check::new(
                "telemetry",
                metric,
                max as f64,
                limit as f64,
                max <= limit,
                "row_remap",
                format!("{max} {} (limit {limit})", metric.replace('_', " ")),
            ));
        }
    }
    let xids: Vec<(u32, f64)> = samples
        .iter()
        .flat_map(|s| s.xid.iter().map(move |x| (*x, s.t_s)))
        .collect();
    let xid_detail = if xids.is_empty() {
        "no XID event".to_string()
    } else {
        let list: Vec<String> = xids
            .iter()
            .map(|(x, t)| format!("XID {x} at {t:.0} s"))
            .collect();
        list.join(", ")
    };
    checks.push(Check::new(
        "telemetry",
        "xid",
        xids.len() as f64,
        limits.max_xid as f64,
        xids.len() as u64 <= limits.max_xid,
        "xid",
        xid_detail,
    ));

    // PCIe: the best link seen (GPUs downshift when idle) against what the
    // baseline expects, or the device's own maximum.
    let best = |f: fn(&Sample) -> Option<u32>| samples.iter().filter_map(f).max();
    if let (Some(gen), Some(width)) = (best(|s| s.pcie_gen), best(|s| s.pcie_width)) {
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

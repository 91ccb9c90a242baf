//! Recording a baseline: derived from runs of known-good nodes, from the
//! devices the runs themselves accept, and written as TOML that parses back.

use std::collections::BTreeMap;

use super::parse::key_text;
use super::{builtin, DEFAULT_PEER_TOLERANCE, DEFAULT_TOLERATED};
use crate::error::KilnError;
use crate::results::RunResults;
use crate::stats;
use crate::verdict::{judge, BaselineChoice, Decision, DeviceVerdict};

/// Rounds to 4 significant digits (to nearest).
fn sig4(x: f64) -> f64 {
    format!("{x:.3e}").parse().unwrap_or(x)
}

/// Rounds down to 4 significant digits (never above `x`, for `x` > 0).
fn sig4_down(x: f64) -> f64 {
    let r = sig4(x);
    if r <= x || r <= 0.0 {
        return r;
    }
    let unit = 10f64.powi(r.log10().floor() as i32 - 3);
    let down = sig4(r - unit);
    if down <= x {
        down
    } else {
        x
    }
}

/// A float as a TOML float literal (always with a `.` or an exponent).
fn toml_float(x: f64) -> String {
    let s = format!("{x}");
    if s.contains(['.', 'e', 'E']) || !x.is_finite() {
        s
    } else {
        format!("{s}.0")
    }
}

/// Makes `s` safe inside a one-line `#` comment.
fn comment_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The values of one metric gathered by [`record`].
struct Series {
    unit: String,
    values: Vec<f64>,
}

/// Derives a baseline from runs of known-good nodes and returns it as TOML
/// text, ready to save in `baselines/` (it parses back with
/// [`parse`](super::parse())).
///
/// Which devices: only those the run itself accepts. Each run is judged as
/// `kiln report` judges it (the shipped baselines, the peer, integrity,
/// telemetry and liveness rules); a rejected, incomplete or untested device
/// is left out, and the header says which, with its verdict and reasons. A
/// "known-good node" with one bad GPU must not teach the baseline that GPU's
/// figures. Fewer than [`MIN_RECORD_DEVICES`] accepted devices is an error.
///
/// Which values: every accepted device whose name contains `model`
/// (case-insensitive) gives, per metric name, one value per run: the metric's
/// `value` (the median over its iterations), or the median over burn-in
/// cycles when the run has several. Values that are not finite or not above
/// 0 are left out.
///
/// The rule, per metric:
/// 1. outliers are discarded by Tukey's fences: values outside
///    [Q1 - 1.5 IQR, Q3 + 1.5 IQR] (quartiles by linear interpolation, as in
///    [`crate::stats`]);
/// 2. `expected` = the median of the values kept;
/// 3. `floor` = `expected` x (1 - 2 x [`DEFAULT_PEER_TOLERANCE`]) (90 % of
///    expected) rounded to 4 significant digits, but never above 0.98 x the
///    lowest value kept (rounded down to 4 significant digits), so that every
///    device the baseline was recorded from clears its own floor.
///
/// The text starts with a comment saying from how many runs and devices it
/// was derived, and the rule; each metric's comment says how many values
/// were kept and which were discarded. `[limits]` holds the defaults
/// ([`Limits::standard`]), to be completed by hand (temperatures, PCIe).
///
/// Errors ([`KilnError::Usage`]): `model` is empty, no device of the runs
/// matches it, the matching devices have no measurement, or one metric has
/// different units on different devices.
///
/// [`Limits::standard`]: super::Limits::standard
pub fn record(runs: &[RunResults], model: &str) -> Result<String, KilnError> {
    let shipped = builtin();
    let judged: Vec<Vec<DeviceVerdict>> = runs
        .iter()
        .map(|r| judge(r, BaselineChoice::Match(&shipped)).verdicts)
        .collect();
    record_judged(runs, &judged, model)
}

/// The fewest accepted devices a baseline is recorded from: with fewer,
/// one device's bad day is the model's "expected".
pub const MIN_RECORD_DEVICES: usize = 3;

/// One run as the baseline rule sees it: its host and, per device, its
/// identity, the verdict its run gave it and its measurements. Both
/// `kiln baseline record DIR...` ([`record_judged`], from journals) and
/// `kiln baseline record --from-db` (from the history database) build
/// these and hand them to [`record_from`], so the rule exists once.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordRun {
    /// Host name of the node.
    pub host: String,
    /// Its devices, in index order.
    pub devices: Vec<RecordDevice>,
}

/// One device of a [`RecordRun`].
#[derive(Debug, Clone, PartialEq)]
pub struct RecordDevice {
    /// Index in its run.
    pub index: usize,
    /// The driver's name of the device (matched against the model).
    pub name: String,
    /// The decision of its run and the reason codes; None when it was not
    /// judged (left out, as any device that is not accepted).
    pub verdict: Option<(Decision, Vec<String>)>,
    /// Every measurement, in journal order: (metric name, unit, value).
    /// Several values of one name (burn-in cycles) give their median.
    pub metrics: Vec<(String, String, f64)>,
}

/// [`record`], with each run's verdicts given (`verdicts[i]` for
/// `runs[i]`, one per device, by device index).
pub fn record_judged(
    runs: &[RunResults],
    verdicts: &[Vec<DeviceVerdict>],
    model: &str,
) -> Result<String, KilnError> {
    let inputs: Vec<RecordRun> = runs
        .iter()
        .enumerate()
        .map(|(k, run)| RecordRun {
            host: run.header.host.clone(),
            devices: run
                .devices
                .iter()
                .map(|dev| RecordDevice {
                    index: dev.info.index,
                    name: dev.info.name.clone(),
                    verdict: verdicts
                        .get(k)
                        .and_then(|vs| vs.iter().find(|v| v.device == dev.info.index))
                        .map(|v| (v.decision, v.reasons.clone())),
                    metrics: dev
                        .metrics
                        .iter()
                        .map(|m| (m.name.clone(), m.unit.clone(), m.value))
                        .collect(),
                })
                .collect(),
        })
        .collect();
    record_from(&inputs, model)
}

/// The rule of [`record`] over runs given as [`RecordRun`]s: the one
/// derivation behind both `kiln baseline record DIR...` and
/// `kiln baseline record --from-db`.
pub fn record_from(runs: &[RecordRun], model: &str) -> Result<String, KilnError> {
    let needle = model.trim().to_lowercase();
    if needle.is_empty() {
        return Err(KilnError::Usage(
            "the model to record a baseline for must not be empty".into(),
        ));
    }
    let mut series: BTreeMap<String, Series> = BTreeMap::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen: Vec<String> = Vec::new();
    let mut hosts: Vec<String> = Vec::new();
    let mut devices = 0usize;
    let mut runs_used = 0usize;
    let mut runs_matching = 0usize;
    let mut left_out: Vec<String> = Vec::new();
    for run in runs {
        let mut used = false;
        let mut matching = false;
        for dev in &run.devices {
            if !seen.contains(&dev.name) {
                seen.push(dev.name.clone());
            }
            if !dev.name.to_lowercase().contains(&needle) {
                continue;
            }
            matching = true;
            match &dev.verdict {
                Some((Decision::Accept, _)) => {}
                other => {
                    let what = match other {
                        Some((d, reasons)) if reasons.is_empty() => d.word().to_lowercase(),
                        Some((d, reasons)) => {
                            format!("{} ({})", d.word().to_lowercase(), reasons.join(", "))
                        }
                        None => "not judged".to_string(),
                    };
                    left_out.push(format!("device {} of {}: {what}", dev.index, run.host));
                    continue;
                }
            }
            used = true;
            devices += 1;
            *names.entry(dev.name.clone()).or_default() += 1;
            let mut per: BTreeMap<&str, (&str, Vec<f64>)> = BTreeMap::new();
            for (name, unit, value) in &dev.metrics {
                // The bandwidth to one particular peer (p2p_gpuJ) names a
                // position in one node; `p2p`, the slowest peer, is the
                // figure a model's baseline holds.
                if !(value.is_finite() && *value > 0.0) || name.starts_with("p2p_gpu") {
                    continue;
                }
                let slot = per.entry(name).or_insert((unit, Vec::new()));
                if slot.0 != unit {
                    return Err(unit_conflict(name, slot.0, unit));
                }
                slot.1.push(*value);
            }
            for (name, (unit, values)) in per {
                let Some(v) = stats::median(&values) else {
                    continue;
                };
                let s = series.entry(name.to_string()).or_insert_with(|| Series {
                    unit: unit.to_string(),
                    values: Vec::new(),
                });
                if s.unit != unit {
                    return Err(unit_conflict(name, &s.unit, unit));
                }
                s.values.push(v);
            }
        }
        if matching {
            runs_matching += 1;
        }
        if used {
            runs_used += 1;
            if !hosts.contains(&run.host) {
                hosts.push(run.host.clone());
            }
        }
    }
    if devices == 0 && left_out.is_empty() {
        return Err(KilnError::Usage(format!(
            "no device of the {} run(s) given is named like \"{}\"; device names seen: {}",
            runs.len(),
            model.trim(),
            if seen.is_empty() {
                "none".to_string()
            } else {
                seen.join(", ")
            }
        )));
    }
    if devices < MIN_RECORD_DEVICES {
        return Err(KilnError::Usage(format!(
            "only {devices} accepted device(s) named like \"{}\" in the {} run(s) given, and a baseline needs at least {MIN_RECORD_DEVICES}; left out: {}",
            model.trim(),
            runs.len(),
            if left_out.is_empty() {
                "none".to_string()
            } else {
                left_out.join("; ")
            }
        )));
    }
    if series.is_empty() {
        return Err(KilnError::Usage(format!(
            "the {devices} device(s) named like \"{}\" have no finished measurement to record",
            model.trim()
        )));
    }
    // The driver's name: the most common among the matching devices.
    let driver_name = names
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(n, _)| n.clone())
        .unwrap_or_else(|| model.trim().to_string());

    let tol = DEFAULT_PEER_TOLERANCE;
    let mut out = String::new();
    out.push_str(&format!(
        "# Baseline: {}. Recorded by kiln {} from {runs_used} run(s) of known-good nodes\n",
        comment_text(&driver_name),
        env!("CARGO_PKG_VERSION"),
    ));
    out.push_str(&format!(
        "# (hosts: {}), {devices} accepted device(s) whose name contains \"{}\", of {} run(s) with such devices.\n",
        comment_text(&hosts.join(", ")),
        comment_text(model.trim()),
        runs_matching,
    ));
    if left_out.is_empty() {
        out.push_str("# Left out: none (every matching device was accepted by its run).\n");
    } else {
        out.push_str(&format!(
            "# Left out, not accepted by their run: {} device(s): {}.\n",
            left_out.len(),
            comment_text(&left_out.join("; "))
        ));
    }
    out.push_str(
        "# Rule, per metric: one value per device per run (the median over burn-in cycles);\n\
         # values outside Tukey's fences [Q1 - 1.5 IQR, Q3 + 1.5 IQR] discarded;\n\
         # expected = median of the values kept;\n",
    );
    out.push_str(&format!(
        "# floor = expected x (1 - 2 x {tol}) to 4 significant digits, capped at 0.98 x the lowest value kept.\n\n"
    ));
    out.push_str("[model]\n");
    out.push_str(&format!(
        "name = {}\n",
        toml::Value::String(driver_name.clone())
    ));
    out.push_str(&format!(
        "match = [{}]\n",
        toml::Value::String(model.trim().to_string())
    ));
    out.push_str(&format!("peer_tolerance = {}\n", toml_float(tol)));

    for (name, s) in &series {
        let mut sorted = s.values.clone();
        sorted.sort_by(f64::total_cmp);
        let q1 = stats::percentile_sorted(&sorted, 0.25);
        let q3 = stats::percentile_sorted(&sorted, 0.75);
        let iqr = q3 - q1;
        let (lo, hi) = (q1 - 1.5 * iqr, q3 + 1.5 * iqr);
        let (kept, dropped): (Vec<f64>, Vec<f64>) =
            sorted.iter().partition(|&&v| v >= lo && v <= hi);
        let (Some(expected), Some(&min_kept)) = (stats::median(&kept), kept.first()) else {
            continue;
        };
        let floor = sig4(expected * (1.0 - 2.0 * tol)).min(sig4_down(min_kept * 0.98));
        out.push_str(&format!("\n[metrics.{}]\n", key_text(name)));
        out.push_str(&format!("unit = {}\n", toml::Value::String(s.unit.clone())));
        let discarded = if dropped.is_empty() {
            "none discarded".to_string()
        } else {
            let list: Vec<String> = dropped.iter().map(|v| format!("{v}")).collect();
            format!(
                "{} discarded as outliers: {}",
                dropped.len(),
                list.join(", ")
            )
        };
        out.push_str(&format!(
            "expected = {}   # median of {} of {} values ({discarded}); kept {} .. {}\n",
            toml_float(expected),
            kept.len(),
            sorted.len(),
            min_kept,
            kept.last().copied().unwrap_or(min_kept),
        ));
        out.push_str(&format!("floor = {}   # rule above\n", toml_float(floor)));
    }

    out.push_str(
        "\n[limits]\n\
         # kiln's defaults. Add max_gpu_temp_c, max_mem_temp_c, pcie_gen and pcie_width for this model.\n",
    );
    let tolerated: Vec<String> = DEFAULT_TOLERATED
        .iter()
        .map(|s| toml::Value::String(s.to_string()).to_string())
        .collect();
    out.push_str(&format!(
        "tolerated_throttle = [{}]\n",
        tolerated.join(", ")
    ));
    out.push_str(
        "max_ecc_uncorrectable = 0\n\
         max_xid = 0\n\
         max_remapped_rows_pending = 0\n\
         max_remapped_rows_failed = 0\n",
    );
    Ok(out)
}

fn unit_conflict(metric: &str, a: &str, b: &str) -> KilnError {
    KilnError::Usage(format!(
        "metric {metric} is measured in {a} on some devices and in {b} on others; record runs of one kind of device"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::baseline::parse::line_of;

    #[test]
    fn rounding_helpers() {
        assert_eq!(sig4(712.345), 712.3);
        assert_eq!(sig4(0.000123456), 0.0001235);
        assert_eq!(sig4(123456.0), 123500.0);
        assert_eq!(sig4_down(712.38), 712.3);
        assert_eq!(sig4_down(999.96), 999.0);
        assert_eq!(sig4_down(700.0), 700.0);
        for x in [1.23456, 98.7654, 3141.59, 0.0999999, 9999.9] {
            assert!(sig4_down(x) <= x, "{x}");
            assert!(sig4_down(x) > x * 0.998, "{x}");
        }
        assert_eq!(toml_float(790.0), "790.0");
        assert_eq!(toml_float(1e21), "1000000000000000000000.0");
        assert_eq!(toml_float(0.5), "0.5");
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }
}

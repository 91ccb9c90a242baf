//! Accept or reject: pure functions from a run's results (and baselines) to
//! a verdict per device, with every check that was made, passed or not, and
//! stable reason codes for the ones that failed. No I/O.
//!
//! Rules, in the order they are reported:
//! - **integrity**: corruption found by a workload's own verification
//!   (`sdc_matmul`, `copy_mismatch`, `hash_mismatch`, `memtest_errors`,
//!   `transfer_mismatch`, `sdc_pulse`);
//! - **absolute**: a figure below its baseline floor (`below_baseline`),
//!   or peer copies over PCIe on a model whose peers are all on NVLink
//!   (`p2p_over_pcie`); skipped, and said so, when no baseline matches the
//!   device;
//! - **peers**: a figure more than the tolerance below the median of the
//!   same-model devices of the run (`peer_outlier`), see [`peers`];
//! - **telemetry**: over-temperature, throttling that the baseline does not
//!   tolerate, new uncorrectable ECC errors, row remapping, XID events, a
//!   degraded PCIe link (`over_temperature`, `thermal_throttle`,
//!   `power_throttle`, `hw_slowdown`, `ecc_uncorrectable`, `row_remap`,
//!   `xid`, `pcie_degraded`); growing correctable ECC counts only warn;
//! - **fabric** (checks of the telemetry rule): the NVSwitch fabric unhealthy (`fabric_unhealthy`; not
//!   registered by the fabric manager is the node state
//!   `fabric_manager_down`) and NVLinks that end where they should not
//!   (`nvlink_wiring`), see [`fabric`];
//! - **burn-in** (runs of several cycles): throughput that decays from the
//!   first tenth of the run to the last by more than the peer tolerance
//!   (`throughput_decay`), see [`burnin`];
//! - **liveness**: a hung workload, a device that disappeared, a driver error
//!   (`hang`, `device_lost`, `device_error`);
//! - **completeness**: a device that did not finish every planned workload,
//!   and failed nothing, is `incomplete`.
//!
//! Every device that is not accepted gets a remedy class and one line of
//! diagnosis ([`remedy`]).
//!
//! Layer: above `results` and every layer below it; below `output` and
//! `commands`, which it must not import (tests/layers.rs checks it).

pub mod baseline;
pub mod burnin;
pub mod fabric;
pub mod fleet;
pub mod health;
pub mod peers;
pub mod remedy;
pub mod telemetry;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::ExitCode;
use crate::results::{DeviceRun, RunResults};
use crate::stats;
pub use crate::stats::secs;
use crate::workload::WorkloadKind;
use baseline::Baseline;

/// The decision about one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Every check passed and every workload finished.
    Accept,
    /// At least one check failed.
    Reject,
    /// Nothing failed, but not every workload finished.
    Incomplete,
    /// The device could not be tested because of the node's state (another
    /// process owns it, the fabric manager is down): a node problem to fix,
    /// never a reason to send the GPU back.
    Untested,
}

impl Decision {
    /// Upper-case word for tables and reports.
    pub fn word(self) -> &'static str {
        match self {
            Decision::Accept => "ACCEPT",
            Decision::Reject => "REJECT",
            Decision::Incomplete => "INCOMPLETE",
            Decision::Untested => "UNTESTED",
        }
    }
}

/// One check made on a device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// The rule: `integrity`, `absolute`, `peers`, `telemetry`, `liveness` or
    /// `completeness`.
    pub rule: &'static str,
    /// What was checked (a metric, an integrity check, a sensor).
    pub metric: String,
    /// The measured value.
    pub value: f64,
    /// The limit the value was held to.
    pub threshold: f64,
    /// True when the check passed.
    pub pass: bool,
    /// Stable reason code when it failed (or warned), empty otherwise.
    pub reason: String,
    /// Passed, but worth a look (e.g. growing correctable ECC).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub warn: bool,
    /// Not compared (e.g. a baseline floor for a figure the run did not
    /// measure): neither passed nor failed, and counted apart.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// When the failure was first seen, in seconds since the run started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_s: Option<f64>,
    /// What the check found, in words, with units.
    pub detail: String,
}

impl Check {
    /// A check that passes when `pass`, with `reason` when it does not.
    pub fn new(
        rule: &'static str,
        metric: impl Into<String>,
        value: f64,
        threshold: f64,
        pass: bool,
        reason: &str,
        detail: String,
    ) -> Self {
        Check {
            rule,
            metric: metric.into(),
            value,
            threshold,
            pass,
            reason: if pass {
                String::new()
            } else {
                reason.to_string()
            },
            warn: false,
            skipped: false,
            at_s: None,
            detail,
        }
    }

    /// The same check, failing first at `at_s` seconds into the run.
    pub fn at(mut self, at_s: Option<f64>) -> Self {
        if !self.pass {
            self.at_s = at_s;
        }
        self
    }
}

/// The verdict on one device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceVerdict {
    /// Device index.
    pub device: usize,
    /// Accept, reject or incomplete.
    pub decision: Decision,
    /// Distinct reason codes of the failed checks, in check order.
    pub reasons: Vec<String>,
    /// The baseline the device was held to, when one matched.
    pub baseline: Option<String>,
    /// Seconds into the run when the first failure was seen.
    pub time_to_fault_s: Option<f64>,
    /// What to do about a device that was not accepted ([`remedy`]).
    pub remedy: Option<remedy::Remedy>,
    /// One line that groups its reasons, with the remedy's advice.
    pub diagnosis: Option<String>,
    /// Burn-in analysis, for runs of several cycles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burnin: Option<burnin::Burnin>,
    /// Every check made.
    pub checks: Vec<Check>,
}

/// The verdicts of a run, with what a reader must know about how they were
/// reached.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judgement {
    /// One verdict per device, in device order.
    pub verdicts: Vec<DeviceVerdict>,
    /// Plain-words notes (no baseline, too few peers, ...).
    pub notes: Vec<String>,
}

/// Which baselines a run is judged against.
#[derive(Debug, Clone, Copy)]
pub enum BaselineChoice<'a> {
    /// Match each device among these (the shipped ones).
    Match(&'a [Baseline]),
    /// Hold every device to this one (`--baseline FILE`).
    Force(&'a Baseline),
}

impl<'a> BaselineChoice<'a> {
    fn for_device(self, dev: &DeviceRun) -> Option<&'a Baseline> {
        match self {
            BaselineChoice::Force(b) => Some(b),
            BaselineChoice::Match(all) => {
                baseline::find(all, &dev.info.name, dev.info.pci_device_id)
            }
        }
    }
}

/// The reason code of corruption found by a workload's verification.
pub fn integrity_reason(workload: WorkloadKind) -> &'static str {
    match workload {
        WorkloadKind::Matmul => "sdc_matmul",
        WorkloadKind::Bandwidth => "copy_mismatch",
        WorkloadKind::Hash => "hash_mismatch",
        WorkloadKind::Memtest => "memtest_errors",
        WorkloadKind::Transfer => "transfer_mismatch",
        WorkloadKind::Pulse => "sdc_pulse",
    }
}

/// Each metric's value for a device: the median over burn-in cycles.
pub fn device_values(dev: &DeviceRun) -> BTreeMap<String, (f64, String)> {
    let mut per: BTreeMap<String, (Vec<f64>, String)> = BTreeMap::new();
    for m in &dev.metrics {
        per.entry(m.name.clone())
            .or_insert_with(|| (Vec::new(), m.unit.clone()))
            .0
            .push(m.value);
    }
    per.into_iter()
        .filter_map(|(k, (v, unit))| stats::median(&v).map(|m| (k, (m, unit))))
        .collect()
}

/// Each metric of a device as the peer rule takes it: the value (median over
/// burn-in cycles), the median cv and the iterations over all cycles; with
/// its unit and workload.
fn device_samples(dev: &DeviceRun) -> BTreeMap<String, (peers::Sample, String, String)> {
    type Acc = (Vec<f64>, Vec<f64>, usize, String, String);
    let mut per: BTreeMap<String, Acc> = BTreeMap::new();
    for m in &dev.metrics {
        let e = per.entry(m.name.clone()).or_insert_with(|| {
            (
                Vec::new(),
                Vec::new(),
                0,
                m.unit.clone(),
                m.workload.name().to_string(),
            )
        });
        e.0.push(m.value);
        e.1.push(m.cv);
        e.2 += m.iterations;
    }
    per.into_iter()
        .filter_map(|(k, (values, cvs, iterations, unit, workload))| {
            let value = stats::median(&values)?;
            let cv = stats::median(&cvs).unwrap_or(0.0);
            Some((
                k,
                (
                    peers::Sample {
                        value,
                        cv,
                        iterations,
                    },
                    unit,
                    workload,
                ),
            ))
        })
        .collect()
}

fn integrity_checks(run: &RunResults, dev: &DeviceRun, checks: &mut Vec<Check>) {
    for i in &dev.integrity {
        let pass = i.errors == 0;
        let cycle = if run.cycles > 1 {
            format!(" (cycle {})", i.cycle + 1)
        } else {
            String::new()
        };
        let detail = if pass {
            format!("{} values checked, all correct{cycle}", i.checked)
        } else {
            format!(
                "{} of {} values wrong{cycle}: {}",
                i.errors, i.checked, i.detail
            )
        };
        checks.push(
            Check::new(
                "integrity",
                i.check.clone(),
                i.errors as f64,
                0.0,
                pass,
                integrity_reason(i.workload),
                detail,
            )
            .at(dev.phase_end(i.workload, i.cycle)),
        );
    }
}

/// The workload a metric name belongs to.
fn workload_of(metric: &str) -> Option<WorkloadKind> {
    Some(match metric {
        m if m.starts_with("matmul_") => WorkloadKind::Matmul,
        m if m.starts_with("bw_") => WorkloadKind::Bandwidth,
        "sha256d" => WorkloadKind::Hash,
        "memtest" => WorkloadKind::Memtest,
        "h2d" | "d2h" => WorkloadKind::Transfer,
        m if m == "p2p" || m.starts_with("p2p_") => WorkloadKind::Transfer,
        m if m.starts_with("pulse_") => WorkloadKind::Pulse,
        _ => return None,
    })
}

fn absolute_checks(
    values: &BTreeMap<String, (f64, String)>,
    base: &Baseline,
    planned: &[WorkloadKind],
    checks: &mut Vec<Check>,
) {
    // A floor of a workload that ran but a figure that was not measured
    // (a precision skipped, a transfer with no peer) is shown as skipped,
    // never silently dropped and never passed.
    for (name, b) in &base.metrics {
        if values.contains_key(name) || !workload_of(name).is_some_and(|w| planned.contains(&w)) {
            continue;
        }
        let mut c = Check::new(
            "absolute",
            name.clone(),
            f64::NAN,
            b.floor,
            true,
            "",
            format!(
                "skipped: {name} was not measured in this run, so its floor of {} {} ({}) was not compared",
                b.floor, b.unit, base.source
            ),
        );
        c.skipped = true;
        checks.push(c);
    }
    for (name, (value, unit)) in values {
        let Some(b) = base.metrics.get(name) else {
            continue;
        };
        let Some(value) = baseline::convert(*value, unit, &b.unit) else {
            // Not possible with a baseline that parsed (its units are
            // checked against kiln's), kept so that a floor is never
            // silently passed.
            let mut c = Check::new(
                "absolute",
                name.clone(),
                *value,
                b.floor,
                true,
                "",
                format!(
                    "skipped: measured in {unit}, baseline {} gives {}; not compared",
                    base.source, b.unit
                ),
            );
            c.skipped = true;
            checks.push(c);
            continue;
        };
        let value = &value;
        let unit = &b.unit;
        let pass = *value >= b.floor;
        checks.push(Check::new(
            "absolute",
            name.clone(),
            *value,
            b.floor,
            pass,
            "below_baseline",
            format!(
                "{value:.1} {unit} {} floor {:.1} {unit} (expected {:.1}, {:.0} % of it)",
                if pass { "clears" } else { "is below" },
                b.floor,
                b.expected,
                100.0 * value / b.expected.max(f64::MIN_POSITIVE)
            ),
        ));
    }
    // A model whose every peer is on NVLink (a p2p_nvlink floor and none
    // for PCIe): copies that went over PCIe mean NVLink peer-to-peer is
    // not working for this GPU, however fast PCIe was.
    if base.metrics.contains_key("p2p_nvlink") && !base.metrics.contains_key("p2p_pcie") {
        if let Some((value, unit)) = values.get("p2p_pcie") {
            checks.push(Check::new(
                "absolute",
                "p2p_pcie",
                *value,
                0.0,
                false,
                "p2p_over_pcie",
                format!(
                    "copies to peers went over PCIe ({value:.1} {unit} to the slowest of them; the p2p_gpuJ figures name each link), but every peer of a {} is on NVLink ({} has a p2p_nvlink floor and none for PCIe)",
                    base.model, base.source
                ),
            ));
        }
    }
}

fn liveness_checks(dev: &DeviceRun, checks: &mut Vec<Check>) {
    for h in &dev.hangs {
        checks.push(
            Check::new(
                "liveness",
                h.workload.name(),
                h.at_s,
                0.0,
                false,
                "hang",
                format!("hung at {} into the run: {}", secs(h.at_s), h.message),
            )
            .at(Some(h.at_s)),
        );
    }
    for (workload, code, message) in &dev.node_skips {
        checks.push(Check::new(
            "node",
            workload.name(),
            1.0,
            0.0,
            false,
            code,
            format!("could not test in full ({code}, a node problem, not the GPU's): {message}"),
        ));
    }
    for f in &dev.failures {
        if let Some(code) = &f.node_state {
            checks.push(
                Check::new(
                    "node",
                    f.workload.name(),
                    1.0,
                    0.0,
                    false,
                    code,
                    format!(
                        "could not test ({code}, a node problem, not the GPU's): {}",
                        f.message
                    ),
                )
                .at(f.at_s),
            );
            continue;
        }
        let reason = match (&f.code, f.lost) {
            (Some(code), _) => code.as_str(),
            (None, true) => "device_lost",
            (None, false) => "device_error",
        };
        checks.push(
            Check::new(
                "liveness",
                f.workload.name(),
                1.0,
                0.0,
                false,
                reason,
                match f.at_s {
                    Some(t) => format!(
                        "{} {} at {} into the run: {}",
                        f.workload,
                        if f.lost { "lost the device" } else { "failed" },
                        secs(t),
                        f.message
                    ),
                    None => format!("{} failed: {}", f.workload, f.message),
                },
            )
            .at(f.at_s),
        );
    }
    if dev.hangs.is_empty() && dev.failures.is_empty() {
        checks.push(Check::new(
            "liveness",
            "device",
            0.0,
            0.0,
            true,
            "",
            "answered every operation; no hang, no loss, no driver error".into(),
        ));
    }
}

/// Judges every device of `run`.
pub fn judge(run: &RunResults, baselines: BaselineChoice<'_>) -> Judgement {
    let mut notes = Vec::new();
    let values: Vec<_> = run.devices.iter().map(device_values).collect();
    let bases: Vec<Option<&Baseline>> = run
        .devices
        .iter()
        .map(|d| baselines.for_device(d))
        .collect();

    // Peer groups: devices of the same model name.
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, d) in run.devices.iter().enumerate() {
        groups.entry(d.info.name.as_str()).or_default().push(i);
    }
    let mut peer_checks: Vec<Vec<Check>> = vec![Vec::new(); run.devices.len()];
    for (model, members) in &groups {
        if members.len() < peers::MIN_PEERS {
            notes.push(format!(
                "peer comparison skipped for {model}: {} device(s) of that model in this run, {} needed",
                members.len(),
                peers::MIN_PEERS
            ));
            continue;
        }
        let samples: Vec<BTreeMap<String, (peers::Sample, String, String)>> = members
            .iter()
            .map(|&i| device_samples(&run.devices[i]))
            .collect();
        let mut names: Vec<&String> = samples.iter().flat_map(|m| m.keys()).collect();
        names.sort();
        names.dedup();
        let inputs: Vec<peers::MetricInput> = names
            .iter()
            .map(|name| peers::MetricInput {
                name: name.to_string(),
                workload: samples
                    .iter()
                    .find_map(|m| m.get(*name).map(|x| x.2.clone()))
                    .unwrap_or_default(),
                tolerance: bases[members[0]]
                    .map_or(peers::DEFAULT_TOLERANCE, |b| b.peer_tolerance_for(name)),
                samples: samples.iter().map(|m| m.get(*name).map(|x| x.0)).collect(),
            })
            .collect();
        for (input, outcome) in inputs.iter().zip(peers::check_group(&inputs)) {
            for (k, c) in outcome.into_iter().enumerate() {
                let Some(c) = c else { continue };
                let i = members[k];
                let Some((sample, unit, _)) = samples[k].get(&input.name) else {
                    continue;
                };
                let v = sample.value;
                peer_checks[i].push(Check::new(
                    "peers",
                    input.name.clone(),
                    v,
                    c.threshold,
                    c.pass,
                    "peer_outlier",
                    format!(
                        "{v:.1} {unit} is {:+.1} % from the upper quartile of {} {model} devices ({:.1} {unit}); its {} figures {:+.1} % in the median; tolerance {:.0} %, noise band {:.1} %",
                        100.0 * c.deviation,
                        c.devices,
                        c.reference,
                        input.workload,
                        100.0 * c.workload_deviation,
                        input.tolerance * 100.0,
                        100.0 * c.noise_band
                    ),
                ));
            }
        }
    }

    let mut cross = vec![Vec::new(); run.devices.len()];
    for members in groups.values() {
        cross_device_checks(run, members, &mut cross);
    }
    let mut wiring = vec![Vec::new(); run.devices.len()];
    fabric::wiring_checks(run, &mut wiring);

    let mut unmatched: Vec<&str> = Vec::new();
    let verdicts = run
        .devices
        .iter()
        .enumerate()
        .map(|(i, dev)| {
            let mut checks = Vec::new();
            integrity_checks(run, dev, &mut checks);
            checks.append(&mut cross[i]);
            match bases[i] {
                Some(b) => {
                    // Floors of the workloads the device finished: one
                    // that failed (could not be tested, lost, hung) says
                    // so in its own check, not as unmeasured floors.
                    let ran: Vec<WorkloadKind> = run
                        .header
                        .workloads
                        .iter()
                        .copied()
                        .filter(|w| dev.done.iter().any(|(d, _)| d == w))
                        .collect();
                    absolute_checks(&values[i], b, &ran, &mut checks)
                }
                None => {
                    if !unmatched.contains(&dev.info.name.as_str()) {
                        unmatched.push(&dev.info.name);
                    }
                }
            }
            checks.append(&mut peer_checks[i]);
            telemetry::checks(dev, bases[i], &mut checks);
            fabric::checks(dev, bases[i], &mut checks);
            checks.append(&mut wiring[i]);
            liveness_checks(dev, &mut checks);
            let burnin = (run.cycles >= burnin::MIN_CYCLES).then(|| {
                let tol = |m: &str| {
                    bases[i].map_or(peers::DEFAULT_TOLERANCE, |b| b.peer_tolerance_for(m))
                };
                burnin::analyse(dev, run.cycles, &tol, &mut checks)
            });
            let mut v = finish(run, dev, bases[i], checks);
            v.burnin = burnin;
            v
        })
        .collect();
    for name in unmatched {
        notes.push(format!(
            "no baseline for {name}: the absolute floors were skipped (integrity, peer, telemetry and liveness rules still apply); give one with --baseline FILE or make one with `kiln baseline record`"
        ));
    }
    Judgement { verdicts, notes }
}

/// Cross-device agreement: every device of a model computes the same
/// product from the same inputs, so their output checksums must agree. With
/// at least [`peers::MIN_PEERS`] devices and a strict majority on one value,
/// a device with another value computed a different answer (`sdc_matmul`),
/// even if it is self-consistent and within the rounding bound: a fault that
/// flips the same bit every time. Without a majority nothing is concluded.
fn cross_device_checks(run: &RunResults, members: &[usize], out: &mut [Vec<Check>]) {
    if members.len() < peers::MIN_PEERS {
        return;
    }
    let mut keys: Vec<(String, u32)> = members
        .iter()
        .flat_map(|&i| run.devices[i].integrity.iter())
        .filter(|x| x.checksum.is_some())
        .map(|x| (x.check.clone(), x.cycle))
        .collect();
    keys.sort();
    keys.dedup();
    for (check, cycle) in keys {
        let sums: Vec<(usize, &str)> = members
            .iter()
            .filter_map(|&i| {
                run.devices[i]
                    .integrity
                    .iter()
                    .find(|x| x.check == check && x.cycle == cycle)
                    .and_then(|x| x.checksum.as_deref())
                    .map(|c| (i, c))
            })
            .collect();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, c) in &sums {
            *counts.entry(c).or_insert(0) += 1;
        }
        let Some((&majority, &agree)) = counts.iter().max_by_key(|(_, n)| **n) else {
            continue;
        };
        if sums.len() < peers::MIN_PEERS || agree * 2 <= sums.len() {
            continue;
        }
        let workload = run.devices[sums[0].0]
            .integrity
            .iter()
            .find(|x| x.check == check)
            .map_or(WorkloadKind::Matmul, |x| x.workload);
        for (i, c) in sums {
            let pass = c == majority;
            let detail = if pass {
                format!(
                    "output checksum {c} agrees with {agree} of {} devices",
                    counts.values().sum::<usize>()
                )
            } else {
                format!(
                    "output checksum {c} differs from {majority}, which {agree} of {} devices computed from the same inputs",
                    counts.values().sum::<usize>()
                )
            };
            out[i].push(
                Check::new(
                    "integrity",
                    format!("{check} across devices"),
                    f64::from(u8::from(!pass)),
                    0.0,
                    pass,
                    integrity_reason(workload),
                    detail,
                )
                .at(run.devices[i].phase_end(workload, cycle)),
            );
        }
    }
}

fn finish(
    run: &RunResults,
    dev: &DeviceRun,
    base: Option<&Baseline>,
    mut checks: Vec<Check>,
) -> DeviceVerdict {
    let planned = &run.header.workloads;
    // Unreadable journal lines may have held this device's data: what it
    // finished cannot be known.
    let finished = dev.finished_all(planned, run.cycles) && !dev.damaged;
    let done = planned
        .iter()
        .filter(|w| (0..run.cycles).all(|c| dev.done.contains(&(**w, c))))
        .count();
    checks.push(Check::new(
        "completeness",
        "workloads",
        done as f64,
        planned.len() as f64,
        finished,
        "",
        if dev.damaged {
            format!(
                "{done} of {} planned workloads finished as far as the journal tells, but lines that may hold this device's data are unreadable ({})",
                planned.len(),
                run.damage_note().unwrap_or_default()
            )
        } else {
            format!("{done} of {} planned workloads finished", planned.len())
        },
    ));
    let mut reasons: Vec<String> = Vec::new();
    for c in &checks {
        if !c.pass && !c.reason.is_empty() && !reasons.contains(&c.reason) {
            reasons.push(c.reason.clone());
        }
    }
    let hardware = checks
        .iter()
        .any(|c| !c.pass && !c.reason.is_empty() && c.rule != "node");
    let decision = if hardware {
        Decision::Reject
    } else if !reasons.is_empty() {
        Decision::Untested
    } else if finished {
        Decision::Accept
    } else {
        Decision::Incomplete
    };
    let time_to_fault_s = checks
        .iter()
        .filter(|c| !c.pass)
        .filter_map(|c| c.at_s)
        .min_by(f64::total_cmp);
    let diagnosis = remedy::diagnose(dev, &checks, decision);
    DeviceVerdict {
        device: dev.info.index,
        decision,
        reasons,
        baseline: base.map(|b| b.source.clone()),
        time_to_fault_s,
        remedy: diagnosis.as_ref().map(|d| d.remedy),
        diagnosis: diagnosis.map(|d| d.line),
        burnin: None,
        checks,
    }
}

/// The process exit code of a judged run: 1 if any device was rejected (a
/// fault found is final even in a run cut short), else 5 if a device could
/// not be tested for a node reason, else 4 if the run is incomplete, else 0.
pub fn exit_code(run: &RunResults, verdicts: &[DeviceVerdict]) -> ExitCode {
    if verdicts.iter().any(|v| v.decision == Decision::Reject) {
        ExitCode::Rejected
    } else if verdicts.iter().any(|v| v.decision == Decision::Untested) {
        ExitCode::Untested
    } else if !run.complete() || verdicts.iter().any(|v| v.decision != Decision::Accept) {
        ExitCode::Incomplete
    } else {
        ExitCode::Accepted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(floors: &[(&str, f64)]) -> Baseline {
        let mut text = String::from("[model]\nname = \"NVIDIA H100 80GB HBM3\"\n");
        for (m, floor) in floors {
            text.push_str(&format!(
                "[metrics.{m}]\nunit = \"GB/s\"\nexpected = {}\nfloor = {floor}\n",
                floor / 0.9
            ));
        }
        baseline::parse("t.toml", &text).expect("the test baseline parses")
    }

    fn judged(values: &[(&str, f64)], b: &Baseline) -> Vec<Check> {
        let values = values
            .iter()
            .map(|(m, v)| (m.to_string(), (*v, "GB/s".to_string())))
            .collect();
        let mut checks = Vec::new();
        absolute_checks(&values, b, &[WorkloadKind::Transfer], &mut checks);
        checks
    }

    fn failed(checks: &[Check]) -> Vec<(&str, &str)> {
        checks
            .iter()
            .filter(|c| !c.pass)
            .map(|c| (c.metric.as_str(), c.reason.as_str()))
            .collect()
    }

    #[test]
    fn nvlink_and_pcie_peers_are_held_to_their_own_floors() {
        let both = base(&[("p2p_nvlink", 324.0), ("p2p_pcie", 40.0)]);
        // A mixed node: each class clears its own floor.
        assert!(failed(&judged(&[("p2p_nvlink", 350.0), ("p2p_pcie", 48.0)], &both)).is_empty());
        // A PCIe peer at NVLink's floor would fail; at its own it passes,
        // and a slow one fails its own.
        assert_eq!(
            failed(&judged(&[("p2p_nvlink", 350.0), ("p2p_pcie", 30.0)], &both)),
            [("p2p_pcie", "below_baseline")]
        );
        assert_eq!(
            failed(&judged(&[("p2p_nvlink", 200.0), ("p2p_pcie", 48.0)], &both)),
            [("p2p_nvlink", "below_baseline")]
        );
    }

    #[test]
    fn a_pcie_peer_on_an_all_nvlink_model_is_rejected_and_nvlink_peers_pass() {
        let sxm = base(&[("p2p_nvlink", 324.0)]);
        assert!(failed(&judged(&[("p2p_nvlink", 350.0)], &sxm)).is_empty());
        let checks = judged(&[("p2p_nvlink", 350.0), ("p2p_pcie", 50.0)], &sxm);
        assert_eq!(failed(&checks), [("p2p_pcie", "p2p_over_pcie")]);
        let c = checks.iter().find(|c| !c.pass).expect("the finding");
        assert!(
            c.detail.contains("went over PCIe (50.0 GB/s"),
            "{}",
            c.detail
        );
        // Every peer over PCIe: the NVLink floor is not measured (skipped,
        // said), and the PCIe copies reject.
        let checks = judged(&[("p2p_pcie", 50.0)], &sxm);
        assert_eq!(failed(&checks), [("p2p_pcie", "p2p_over_pcie")]);
        assert!(checks.iter().any(|c| c.metric == "p2p_nvlink" && c.skipped));
        // A file that names no link class judges neither.
        let old = base(&[("p2p", 324.0)]);
        assert!(failed(&judged(&[("p2p", 350.0), ("p2p_pcie", 50.0)], &old)).is_empty());
    }
}

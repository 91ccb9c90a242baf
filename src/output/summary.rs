//! The summary table printed at the end of a run, and the device table of
//! `kiln list`.

use std::fmt::Write as _;

use crate::device::DeviceInfo;
use crate::results::RunResults;
use crate::stats;
use crate::verdict::{Decision, DeviceVerdict};

/// Human size in GiB.
fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

/// (workload order, metric name).
type MetricKey = (u8, String);

fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let cut: String = s.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}~")
    }
}

/// The device table of `kiln list`.
pub fn devices(infos: &[DeviceInfo]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<4} {:<8} {:<34} {:>10}  {:<16} {:<14} UUID",
        "IDX", "BACKEND", "NAME", "MEMORY", "PCI BUS", "SERIAL"
    );
    for d in infos {
        let _ = writeln!(
            out,
            "{:<4} {:<8} {:<34} {:>10}  {:<16} {:<14} {}",
            d.index,
            d.backend.to_string(),
            fit(&d.name, 34),
            gib(d.memory_bytes),
            d.pci_bus_id.as_deref().unwrap_or("-"),
            d.serial.as_deref().unwrap_or("-"),
            d.uuid.as_deref().unwrap_or("-"),
        );
    }
    out
}

fn short(v: f64) -> String {
    if v >= 1e5 {
        format!("{v:.0}")
    } else if v >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The end-of-run summary: verdicts with reasons, then every metric per
/// device (the median over burn-in cycles when there are several).
pub fn render(run: &RunResults, verdicts: &[DeviceVerdict], notes: &[String]) -> String {
    let mut out = String::new();
    let state = if run.complete() {
        "complete"
    } else if run.interrupted {
        "STOPPED EARLY"
    } else {
        "INCOMPLETE"
    };
    let _ = writeln!(
        out,
        "kiln {} | {} | profile {} | backend {} | {} device(s) | {} | run {}",
        run.header.kiln_version,
        run.header.host,
        run.header.profile,
        run.header.backend,
        run.devices.len(),
        run.header.started_at,
        state
    );
    for n in notes {
        let _ = writeln!(out, "note: {n}");
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<4} {:<26} {:<10} {:<34} REASONS",
        "DEV", "NAME", "VERDICT", "CHECKS PASSED: INTEG ABS PEER TELEM LIVE"
    );
    for (d, v) in run.devices.iter().zip(verdicts) {
        let rule = |r: &str| {
            let all = v.checks.iter().filter(|c| c.rule == r).count();
            let ok = v
                .checks
                .iter()
                .filter(|c| c.rule == r && c.pass && !c.skipped)
                .count();
            if all == 0 {
                "-".to_string()
            } else {
                format!("{ok}/{all}")
            }
        };
        let counts = format!(
            "{:>20} {:>5} {:>5} {:>5} {:>5}",
            rule("integrity"),
            rule("absolute"),
            rule("peers"),
            rule("telemetry"),
            rule("liveness")
        );
        let why = if !v.reasons.is_empty() {
            let first = v
                .checks
                .iter()
                .find(|c| !c.pass && !c.reason.is_empty())
                .map(|c| c.detail.clone())
                .unwrap_or_default();
            format!("{} - {}", v.reasons.join(", "), fit(&first, 100))
        } else if v.decision == Decision::Incomplete {
            v.checks
                .iter()
                .find(|c| !c.pass)
                .map_or_else(String::new, |c| c.detail.clone())
        } else {
            let warns: Vec<&str> = v
                .checks
                .iter()
                .filter(|c| c.warn)
                .map(|c| c.detail.as_str())
                .collect();
            if warns.is_empty() {
                "-".to_string()
            } else {
                format!("warning: {}", warns.join("; "))
            }
        };
        let _ = writeln!(
            out,
            "{:<4} {:<26} {:<10} {:<34} {}",
            d.info.index,
            fit(&d.info.name, 26),
            v.decision.word(),
            counts,
            why
        );
    }
    // What to do, one line per device that was not accepted.
    let todo: Vec<String> = run
        .devices
        .iter()
        .zip(verdicts)
        .filter_map(|(d, v)| {
            let line = v.diagnosis.as_deref()?;
            let remedy = v.remedy.map_or("-", |r| r.name());
            Some(format!("dev {} [{remedy}]: {line}", d.info.index))
        })
        .collect();
    if !todo.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "DIAGNOSIS AND REMEDY");
        for t in todo {
            let _ = writeln!(out, "{t}");
        }
    }
    // Rows in the order the workloads produced them (workload, then first
    // appearance), one column per device: the median over burn-in cycles.
    let mut rows: Vec<(MetricKey, String, Vec<Option<f64>>)> = Vec::new();
    for (slot, d) in run.devices.iter().enumerate() {
        let mut per: Vec<(MetricKey, String, Vec<f64>)> = Vec::new();
        for m in &d.metrics {
            let key = (m.workload as u8, m.name.clone());
            match per.iter_mut().find(|p| p.0 == key) {
                Some(p) => p.2.push(m.value),
                None => per.push((key, m.unit.clone(), vec![m.value])),
            }
        }
        for (key, unit, vals) in per {
            let at = match rows.iter().position(|r| r.0 == key) {
                Some(i) => i,
                None => {
                    rows.push((key, unit, vec![None; run.devices.len()]));
                    rows.len() - 1
                }
            };
            rows[at].2[slot] = stats::median(&vals);
        }
    }
    // Stable: by workload, the peer matrix in device order after the other
    // transfer figures, `p2p` (the slowest peer) last.
    rows.sort_by_key(|r| {
        let name = r.0 .1.as_str();
        let peer = match name.strip_prefix("p2p_gpu") {
            Some(j) => 1 + j.parse::<usize>().unwrap_or(0),
            None if name == "p2p" => usize::MAX,
            None => 0,
        };
        (r.0 .0, peer)
    });
    if !rows.is_empty() {
        let width = rows.iter().map(|r| r.0 .1.len()).max().unwrap_or(0).max(12);
        let _ = writeln!(out);
        let _ = write!(out, "{:<width$} {:<8}", "METRIC", "UNIT");
        for d in &run.devices {
            let _ = write!(out, " {:>10}", format!("dev {}", d.info.index));
        }
        let _ = writeln!(out);
        for ((_, name), unit, vals) in &rows {
            let _ = write!(out, "{:<width$} {:<8}", name, unit);
            for v in vals {
                let _ = write!(out, " {:>10}", v.map_or("-".to_string(), short));
            }
            let _ = writeln!(out);
        }
        if rows.iter().any(|r| r.0 .1.starts_with("p2p_gpu")) {
            let _ = writeln!(
                out,
                "(p2p_gpuJ: copies from the column's device to device J; p2p: its slowest peer)"
            );
        }
    }
    load_rows(&mut out, run);
    let count = |x: Decision| verdicts.iter().filter(|v| v.decision == x).count();
    let skipped: Vec<String> = verdicts
        .iter()
        .flat_map(|v| {
            v.checks
                .iter()
                .filter(|c| c.skipped)
                .map(move |c| format!("{} on device {}", c.metric, v.device))
        })
        .collect();
    if !skipped.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{} check(s) skipped, not compared (not counted as passed): {}",
            skipped.len(),
            fit(&skipped.join(", "), 200)
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{} accepted, {} rejected, {} incomplete",
        count(Decision::Accept),
        count(Decision::Reject),
        count(Decision::Incomplete)
    );
    let untested = count(Decision::Untested);
    if untested > 0 {
        let _ = writeln!(
            out,
            "{untested} could not be tested because of the node's state (not a GPU fault): fix the node and run again"
        );
    }
    out
}

/// Per workload and device: the highest power as a percentage of the
/// enforced limit, the median SM clock, and the duty cycle (busy time over
/// wall time; `-` where the device's time is modelled or not recorded).
fn load_rows(out: &mut String, run: &RunResults) {
    let loads: Vec<Vec<crate::results::WorkloadLoad>> =
        run.devices.iter().map(|d| d.load_by_workload()).collect();
    let mut workloads: Vec<crate::workload::WorkloadKind> = Vec::new();
    for l in loads.iter().flatten() {
        if !workloads.contains(&l.workload) {
            workloads.push(l.workload);
        }
    }
    let any = |f: &dyn Fn(&crate::results::WorkloadLoad) -> bool| loads.iter().flatten().any(f);
    if workloads.is_empty()
        || !any(&|l| {
            l.power_fraction.is_some() || l.sm_clock_median_mhz.is_some() || l.duty_cycle.is_some()
        })
    {
        return;
    }
    let _ = writeln!(out);
    let _ = write!(out, "{:<28}", "LOAD");
    for d in &run.devices {
        let _ = write!(out, " {:>10}", format!("dev {}", d.info.index));
    }
    let _ = writeln!(out);
    type Pick = fn(&crate::results::WorkloadLoad) -> Option<String>;
    let rows: [(&str, Pick); 3] = [
        ("power % of limit", |l| {
            l.power_fraction.map(|f| format!("{:.0} %", 100.0 * f))
        }),
        ("SM clock MHz", |l| {
            l.sm_clock_median_mhz.map(|c| format!("{c:.0}"))
        }),
        ("duty cycle", |l| {
            l.duty_cycle.map(|d| format!("{:.1} %", 100.0 * d))
        }),
    ];
    for w in workloads {
        for (label, pick) in rows {
            let cells: Vec<String> = loads
                .iter()
                .map(|dl| {
                    dl.iter()
                        .find(|l| l.workload == w)
                        .and_then(pick)
                        .unwrap_or_else(|| "-".into())
                })
                .collect();
            if cells.iter().all(|c| c == "-") {
                continue;
            }
            let _ = write!(out, "{:<28}", format!("{} {label}", w.name()));
            for c in cells {
                let _ = write!(out, " {c:>10}");
            }
            let _ = writeln!(out);
        }
    }
}

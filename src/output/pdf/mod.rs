//! report.pdf: the acceptance report a technician attaches to the rack's
//! intake ticket, and the fleet summary across nodes. Bytes only, no I/O.
//!
//! Page 1 is readable at a glance: who, what, when, and a large ACCEPT or
//! REJECT per GPU with its reasons in words. Then the figures per workload
//! against the baseline floor and the peer median, the charts, the failure
//! details and a sign-off block. A simulated run carries a SIMULATED mark on
//! every page; an incomplete run says so on page 1.
//!
//! Written with `pdf-writer` (low level, seconds to build) and the bundled
//! DejaVu Sans, subset and embedded; see [`layout`].

pub mod layout;

use std::collections::BTreeMap;

use crate::output::charts::{self, Chart, MetricTable};
use crate::results::{DeviceRun, RunResults};
use crate::verdict::fleet::Fleet;
use crate::verdict::{Decision, DeviceVerdict, Judgement};
use layout::{
    Align, Cell, Color, Column, Doc, Weight, BLACK, CONTENT_W, GREEN, GREY, LIGHT, MARGIN, ORANGE,
    PALE, RED, WHITE,
};

/// A reason code in words.
pub fn reason_words(code: &str) -> &'static str {
    crate::verdict::remedy::words(code)
}

fn decision_color(d: Decision) -> Color {
    match d {
        Decision::Accept => GREEN,
        Decision::Reject => RED,
        Decision::Incomplete | Decision::Untested => ORANGE,
    }
}

fn opt(s: Option<&str>) -> String {
    s.filter(|s| !s.trim().is_empty())
        .unwrap_or("-")
        .to_string()
}

/// The verdict of a device in one line for page 1: its diagnosis (the
/// reasons grouped, and what to do) when it was not accepted; the full list
/// of reasons is in the details ([`verdict_words`]).
pub fn diagnosis_words(v: &DeviceVerdict) -> String {
    match (&v.diagnosis, v.decision) {
        (Some(d), Decision::Reject | Decision::Untested) => {
            format!("{d} [{}]", v.reasons.join(", "))
        }
        _ => verdict_words(v),
    }
}

/// The verdict of a device in a sentence: every reason in words, with its
/// code and the metrics or checks that failed it.
pub fn verdict_words(v: &DeviceVerdict) -> String {
    match v.decision {
        Decision::Reject => v
            .reasons
            .iter()
            .map(|code| {
                let mut what: Vec<&str> = v
                    .checks
                    .iter()
                    .filter(|c| !c.pass && c.reason == *code)
                    .map(|c| c.metric.as_str())
                    .collect();
                what.dedup();
                format!("{} ({code}): {}", reason_words(code), what.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; "),
        Decision::Untested => {
            let c = v.checks.iter().find(|c| !c.pass && c.rule == "node");
            format!("could not test: {}", c.map_or("", |c| c.detail.as_str()))
        }
        Decision::Incomplete => {
            let c = v.checks.iter().find(|c| !c.pass);
            format!(
                "not every workload finished: {}",
                c.map_or("", |c| c.detail.as_str())
            )
        }
        Decision::Accept => {
            let warns = v.checks.iter().filter(|c| c.warn).count();
            let mut s = format!("all {} checks passed", v.checks.len());
            if warns > 0 {
                s.push_str(&format!("; {warns} warning(s), see failure details"));
            }
            s
        }
    }
}

fn run_state(run: &RunResults) -> Option<String> {
    if run.complete() {
        return None;
    }
    Some(if run.finished_at.is_none() {
        "INCOMPLETE RUN: the run did not reach its end (killed or crashed); only the measurements that finished are reported".into()
    } else if run.interrupted {
        "INCOMPLETE RUN: stopped early by the user; only the measurements that finished are reported".into()
    } else {
        // One line, so that page 1 keeps room for sixteen GPUs.
        match unfinished(run) {
            (0, 0) => "INCOMPLETE RUN: not every device finished every planned workload".into(),
            (node, 0) => format!(
                "INCOMPLETE RUN: {node} GPU(s) could not be tested: the node's state, not the GPUs"
            ),
            (0, failed) => {
                format!("INCOMPLETE RUN: {failed} GPU(s) stopped on a failure (see the verdicts)")
            }
            (node, failed) => format!(
                "INCOMPLETE RUN: {node} GPU(s) untested (node state), {failed} stopped on a failure"
            ),
        }
    })
}

/// Of the devices that did not finish every planned workload: how many a
/// node state stopped, and how many a failure of their own (lost, hung,
/// a driver error).
pub fn unfinished(run: &RunResults) -> (usize, usize) {
    let short: Vec<_> = run
        .devices
        .iter()
        .filter(|d| !d.finished_all(&run.header.workloads, run.cycles))
        .collect();
    let node = short
        .iter()
        .filter(|d| d.failures.iter().any(|f| f.node_state.is_some()))
        .count();
    let failed = short
        .iter()
        .filter(|d| !d.hangs.is_empty() || d.failures.iter().any(|f| f.node_state.is_none()))
        .count()
        .min(short.len() - node);
    (node, failed)
}

fn banner(doc: &mut Doc, text: &str, color: Color) {
    let lines = doc.wrap(text, 10.0, Weight::Bold, CONTENT_W - 16.0);
    let h = lines.len() as f32 * 13.0 + 10.0;
    doc.ensure(h + 6.0);
    doc.gap(6.0);
    let top = doc.y;
    doc.rect(MARGIN, top, CONTENT_W, h, None, Some((color, 1.5)));
    for (i, l) in lines.iter().enumerate() {
        doc.text(
            MARGIN + 8.0,
            top + 17.0 + i as f32 * 13.0,
            10.0,
            Weight::Bold,
            color,
            l,
        );
    }
    doc.y = top + h;
}

fn baselines_used(judgement: &Judgement) -> String {
    let mut used: Vec<&str> = judgement
        .verdicts
        .iter()
        .filter_map(|v| v.baseline.as_deref())
        .collect();
    used.sort_unstable();
    used.dedup();
    if used.is_empty() {
        "none matched: absolute floors skipped".into()
    } else {
        used.join(", ")
    }
}

/// Key-value pairs in two columns.
fn facts(doc: &mut Doc, pairs: &[(&str, String)]) {
    let col_w = CONTENT_W / 2.0;
    let key_w = 78.0;
    for chunk in pairs.chunks(2) {
        let wrapped: Vec<Vec<String>> = chunk
            .iter()
            .map(|(_, v)| doc.wrap(v, 9.5, Weight::Regular, col_w - key_w - 8.0))
            .collect();
        let h = wrapped.iter().map(Vec::len).max().unwrap_or(1) as f32 * 12.5 + 3.0;
        doc.ensure(h);
        let top = doc.y;
        for (i, ((k, _), lines)) in chunk.iter().zip(&wrapped).enumerate() {
            let x = MARGIN + i as f32 * col_w;
            doc.text(x, top + 10.0, 9.0, Weight::Bold, GREY, k);
            for (j, l) in lines.iter().enumerate() {
                doc.text(
                    x + key_w,
                    top + 10.0 + j as f32 * 12.5,
                    9.5,
                    Weight::Regular,
                    BLACK,
                    l,
                );
            }
        }
        doc.y = top + h;
    }
}

/// Page 1: identity, state and the verdict of every GPU.
fn front_page(doc: &mut Doc, run: &RunResults, judgement: &Judgement) {
    let h = &run.header;
    doc.y += 10.0;
    doc.text(
        MARGIN,
        doc.y + 20.0,
        22.0,
        Weight::Bold,
        BLACK,
        "GPU acceptance report",
    );
    doc.y += 30.0;
    let node = doc.fit(&h.host, 14.0, Weight::Bold, CONTENT_W);
    doc.text(MARGIN, doc.y + 14.0, 14.0, Weight::Bold, GREY, &node);
    doc.y += 22.0;
    if run.simulated() {
        banner(
            doc,
            &format!(
                "SIMULATED RUN: {}. Not an acceptance of real hardware.",
                run.simulated_source()
            ),
            RED,
        );
    }
    if let Some(note) = run.damage_note() {
        banner(doc, &note, ORANGE);
    }
    if let Some(state) = run_state(run) {
        banner(doc, &state, ORANGE);
    }
    doc.gap(8.0);
    let count = |d: Decision| {
        judgement
            .verdicts
            .iter()
            .filter(|v| v.decision == d)
            .count()
    };
    let none = match h.backend {
        crate::device::BackendKind::Sim => "none (simulated devices)",
        crate::device::BackendKind::Cpu => "none (CPU backend)",
        crate::device::BackendKind::Cuda => "not recorded (NVML unavailable)",
    };
    let driver = h.driver.clone().unwrap_or_else(|| none.to_string());
    let cuda = h.cuda.clone().unwrap_or_else(|| none.to_string());
    facts(
        doc,
        &[
            ("Node", h.host.clone()),
            ("Asset / rack", opt(h.asset.as_deref())),
            ("Operator", opt(h.operator.as_deref())),
            ("Date", h.started_at.clone()),
            (
                "Finished",
                run.finished_at
                    .clone()
                    .unwrap_or_else(|| "did not finish".into()),
            ),
            ("kiln", h.kiln_version.clone()),
            (
                "Profile",
                format!("{} ({} cycle(s)), seed {}", h.profile, run.cycles, h.seed),
            ),
            ("Backend", h.backend.to_string()),
            ("Driver", driver.clone()),
            ("CUDA", cuda),
            ("Baseline", baselines_used(judgement)),
            (
                "Result",
                format!(
                    "{} GPU(s): {} accepted, {} rejected, {} incomplete{}",
                    run.devices.len(),
                    count(Decision::Accept),
                    count(Decision::Reject),
                    count(Decision::Incomplete),
                    match count(Decision::Untested) {
                        0 => String::new(),
                        n => format!(", {n} could not be tested (node state)"),
                    }
                ),
            ),
        ],
    );
    doc.heading("Verdict per GPU", 13.0, 40.0);
    if run.devices.is_empty() {
        doc.paragraph(
            "No device was tested in this run.",
            10.0,
            Weight::Regular,
            BLACK,
            0.0,
        );
        return;
    }
    // Up to 8 GPUs get roomy rows; more get one-line rows, so that 16 still
    // fit on page 1.
    let compact = run.devices.len() > 8;
    let id_w = if compact { 150.0 } else { 118.0 };
    let columns = [
        ("GPU", 34.0, Align::Center),
        ("serial / PCI bus", id_w, Align::Left),
        ("verdict", 92.0, Align::Center),
        (
            "diagnosis and what to do [reason codes]",
            CONTENT_W - 34.0 - id_w - 92.0,
            Align::Left,
        ),
    ]
    .map(|(title, width, align)| Column {
        title: title.into(),
        width,
        align,
    });
    let rows: Vec<Vec<Cell>> = run
        .devices
        .iter()
        .zip(&judgement.verdicts)
        .map(|(d, v)| {
            let color = decision_color(v.decision);
            let (serial, bus) = (
                opt(d.info.serial.as_deref()),
                opt(d.info.pci_bus_id.as_deref()),
            );
            let word_size = match (v.decision, compact) {
                (Decision::Incomplete | Decision::Untested, _) => 10.0,
                (_, true) => 12.0,
                (_, false) => 14.0,
            };
            vec![
                Cell {
                    size: if compact { 11.0 } else { 13.0 },
                    ..Cell::colored(d.info.index.to_string(), BLACK, true)
                },
                if compact {
                    Cell {
                        size: 7.5,
                        ..Cell::plain(format!("{serial} · {bus}"))
                    }
                } else {
                    Cell {
                        size: 8.5,
                        ..Cell::plain(format!("{serial}\n{bus}"))
                    }
                },
                Cell {
                    size: word_size,
                    fill: Some(color),
                    ..Cell::colored(v.decision.word(), WHITE, true)
                },
                Cell {
                    size: if compact { 7.5 } else { 8.5 },
                    ..Cell::colored(
                        diagnosis_words(v),
                        if v.decision == Decision::Accept {
                            BLACK
                        } else {
                            color
                        },
                        false,
                    )
                },
            ]
        })
        .collect();
    doc.table(&columns, &rows, 9.0);
    doc.gap(4.0);
    doc.paragraph(
        "ACCEPT: every check passed and every planned workload finished. REJECT: at least one check failed (reason codes in brackets). INCOMPLETE: nothing failed, but not every workload finished.",
        7.5,
        Weight::Regular,
        GREY,
        0.0,
    );
}

/// The figures of each workload: per device, the value against the
/// baseline floor and the peer median.
fn workload_tables(doc: &mut Doc, run: &RunResults, tables: &[MetricTable]) {
    doc.new_page();
    doc.heading("Results per workload", 15.0, 60.0);
    doc.paragraph(
        "Each figure is the median over timed iterations (over burn-in cycles, the median of the cycles). ✓: at or above the baseline floor and within the peer tolerance of the peer median; ✗: below either. verified: the workload's own check of its results.",
        8.0,
        Weight::Regular,
        GREY,
        0.0,
    );
    if tables.is_empty() {
        doc.paragraph(
            "No measurement finished in this run.",
            10.0,
            Weight::Regular,
            BLACK,
            0.0,
        );
        return;
    }
    let mut by_workload: Vec<(&str, Vec<&MetricTable>)> = Vec::new();
    for t in tables {
        match by_workload.last_mut() {
            Some((w, v)) if *w == t.workload => v.push(t),
            _ => by_workload.push((&t.workload, vec![t])),
        }
    }
    for (workload, all) in by_workload {
        // The peer matrix gets a table of its own (row: from, column: to).
        let (mut matrix, metrics): (Vec<&MetricTable>, Vec<&MetricTable>) = all
            .into_iter()
            .partition(|m| peer_target(&m.name).is_some());
        matrix.sort_by_key(|m| peer_target(&m.name));
        doc.heading(workload, 12.0, 50.0);
        let gpu_w = 66.0;
        let verified_w = 62.0;
        let col_w = ((CONTENT_W - gpu_w - verified_w) / metrics.len() as f32).min(150.0);
        let mut columns = vec![Column {
            title: "GPU".into(),
            width: gpu_w,
            align: Align::Center,
        }];
        for m in &metrics {
            columns.push(Column {
                title: format!("{} ({})", m.name, m.unit),
                width: col_w,
                align: Align::Right,
            });
        }
        columns.push(Column {
            title: "verified".into(),
            width: verified_w,
            align: Align::Center,
        });
        let mut rows: Vec<Vec<Cell>> = Vec::new();
        for (slot, d) in run.devices.iter().enumerate() {
            let mut row = vec![Cell::colored(d.info.index.to_string(), BLACK, true)];
            for m in &metrics {
                let c = &m.cells[slot];
                row.push(match c.value {
                    None => Cell::colored("no value", GREY, false),
                    Some(v) if c.fail => {
                        Cell::colored(format!("{} ✗", charts::short(v)), RED, true)
                    }
                    Some(v) => Cell::plain(format!("{} ✓", charts::short(v))),
                });
            }
            row.push(integrity_cell(d, workload));
            rows.push(row);
        }
        for (label, pick) in [("floor", 0usize), ("peer median", 1usize)] {
            let mut row = vec![Cell {
                size: 7.5,
                fill: Some(PALE),
                ..Cell::colored(label, GREY, true)
            }];
            for m in &metrics {
                let vals: Vec<f64> = m
                    .cells
                    .iter()
                    .filter_map(|c| if pick == 0 { c.floor } else { c.peer_median })
                    .collect();
                let text = match (vals.first(), vals.iter().all(|v| Some(v) == vals.first())) {
                    (None, _) => "-".to_string(),
                    (Some(v), true) => charts::short(*v),
                    (Some(_), false) => "per model".to_string(),
                };
                row.push(Cell {
                    fill: Some(PALE),
                    ..Cell::colored(text, GREY, false)
                });
            }
            row.push(Cell {
                fill: Some(PALE),
                ..Cell::plain("")
            });
            rows.push(row);
        }
        doc.table(&columns, &rows, 8.5);
        if !matrix.is_empty() {
            peer_matrix(doc, run, &matrix);
        }
    }
}

/// J of a `p2p_gpuJ` metric.
fn peer_target(name: &str) -> Option<usize> {
    name.strip_prefix("p2p_gpu")?.parse().ok()
}

/// The peer-to-peer bandwidth matrix: one row per sending GPU, one column
/// per receiving GPU.
fn peer_matrix(doc: &mut Doc, run: &RunResults, matrix: &[&MetricTable]) {
    doc.gap(4.0);
    let unit = matrix.first().map_or("GB/s", |m| m.unit.as_str());
    doc.paragraph(
        &format!("Peer-to-peer bandwidth ({unit}, bytes moved one way): row = from GPU, column = to GPU. p2p above is each row's slowest peer."),
        8.0,
        Weight::Regular,
        GREY,
        0.0,
    );
    let from_w = 66.0;
    let col_w = ((CONTENT_W - from_w) / matrix.len() as f32).min(80.0);
    let mut columns = vec![Column {
        title: "from \\ to".into(),
        width: from_w,
        align: Align::Center,
    }];
    for m in matrix {
        columns.push(Column {
            title: format!("GPU {}", peer_target(&m.name).unwrap_or(0)),
            width: col_w,
            align: Align::Right,
        });
    }
    let mut rows = Vec::new();
    for (slot, d) in run.devices.iter().enumerate() {
        let mut row = vec![Cell::colored(d.info.index.to_string(), BLACK, true)];
        for m in matrix {
            let c = &m.cells[slot];
            row.push(match c.value {
                None if peer_target(&m.name) == Some(d.info.index) => {
                    Cell::colored("-", GREY, false)
                }
                None => Cell::colored("no value", GREY, false),
                Some(v) if c.fail => Cell::colored(format!("{} ✗", charts::short(v)), RED, true),
                Some(v) => Cell::plain(charts::short(v)),
            });
        }
        rows.push(row);
    }
    doc.table(&columns, &rows, 8.5);
}

/// Per device and workload: the power reached, the clocks held and the
/// duty cycle (busy time over wall time).
fn load_table(doc: &mut Doc, run: &RunResults, judgement: &Judgement) {
    let loads: Vec<Vec<crate::results::WorkloadLoad>> =
        run.devices.iter().map(|d| d.load_by_workload()).collect();
    if loads.iter().flatten().all(|l| {
        l.power_fraction.is_none() && l.sm_clock_median_mhz.is_none() && l.duty_cycle.is_none()
    }) {
        return;
    }
    doc.heading("Load per workload", 12.0, 50.0);
    doc.paragraph(
        "Power: the highest reading inside the workload's phases, with its share of the enforced limit (red: power_low, under matmul below the baseline's fraction of the limit, default 75 %). Clock: the median SM clock. Duty: device-busy (timed) time over wall time of the phases; a burn-in holds at least 95 %. '-': not measured (simulated and virtual GPUs have modelled time, so no duty cycle).",
        8.0,
        Weight::Regular,
        GREY,
        0.0,
    );
    let columns = [
        ("GPU", 50.0, Align::Center),
        ("workload", 90.0, Align::Left),
        ("power", 120.0, Align::Right),
        ("SM clock", 90.0, Align::Right),
        ("duty", 80.0, Align::Right),
    ]
    .map(|(t, w, a)| Column {
        title: t.into(),
        width: w,
        align: a,
    });
    let mut rows = Vec::new();
    for (d, dl) in run.devices.iter().zip(&loads) {
        for l in dl {
            let power = match (l.power_max_w, l.power_fraction) {
                (Some(w), Some(f)) => format!("{w:.0} W ({:.0} %)", 100.0 * f),
                (Some(w), None) => format!("{w:.0} W"),
                _ => "-".into(),
            };
            let low = l.workload == crate::workload::WorkloadKind::Matmul
                && judgement.verdicts.iter().any(|v| {
                    v.device == d.info.index && v.reasons.iter().any(|r| r == "power_low")
                });
            rows.push(vec![
                Cell::colored(d.info.index.to_string(), BLACK, true),
                Cell::plain(l.workload.name()),
                if low {
                    Cell::colored(power, RED, true)
                } else {
                    Cell::plain(power)
                },
                Cell::plain(
                    l.sm_clock_median_mhz
                        .map_or("-".into(), |c| format!("{c:.0} MHz")),
                ),
                Cell::plain(
                    l.duty_cycle
                        .map_or("-".into(), |x| format!("{:.1} %", 100.0 * x)),
                ),
            ]);
        }
    }
    doc.table(&columns, &rows, 8.5);
}

fn integrity_cell(d: &DeviceRun, workload: &str) -> Cell {
    let checks: Vec<_> = d
        .integrity
        .iter()
        .filter(|i| i.workload.name() == workload)
        .collect();
    if checks.is_empty() {
        return Cell::colored("-", GREY, false);
    }
    let wrong: u64 = checks.iter().map(|i| i.errors).sum();
    if wrong == 0 {
        Cell::plain("ok ✓")
    } else {
        Cell::colored(format!("{wrong} wrong ✗"), RED, true)
    }
}

fn chart_pages(doc: &mut Doc, charts: &[Chart]) {
    if charts.is_empty() {
        return;
    }
    doc.new_page();
    doc.heading("Charts", 15.0, 260.0);
    for c in charts {
        let h = CONTENT_W * c.png_size.1 as f32 / c.png_size.0.max(1) as f32;
        doc.ensure(h + 24.0);
        doc.gap(6.0);
        if doc.image(&c.png, CONTENT_W) {
            doc.gap(2.0);
            let name = format!("charts/{}.png, .svg", c.name);
            doc.text_in(
                MARGIN,
                CONTENT_W,
                doc.y + 9.0,
                7.5,
                Weight::Regular,
                GREY,
                &name,
                Align::Right,
            );
            doc.gap(12.0);
        }
    }
}

fn hex_list(offsets: &[u64], max: usize) -> String {
    let mut s: Vec<String> = offsets
        .iter()
        .take(max)
        .map(|o| format!("{o:#x}"))
        .collect();
    if offsets.len() > max {
        s.push(format!("and {} more", offsets.len() - max));
    }
    s.join(", ")
}

/// Everything that went wrong, per device, in words.
fn failure_details(doc: &mut Doc, run: &RunResults, judgement: &Judgement) {
    doc.new_page();
    doc.heading("Failure details", 15.0, 40.0);
    let mut any = false;
    for (d, v) in run.devices.iter().zip(&judgement.verdicts) {
        let mut lines: Vec<(Color, String)> = Vec::new();
        for c in v.checks.iter().filter(|c| !c.pass && !c.reason.is_empty()) {
            lines.push((
                RED,
                format!("{} ({}, {}): {}", c.reason, c.rule, c.metric, c.detail),
            ));
        }
        for i in d
            .integrity
            .iter()
            .filter(|i| !i.first_bad_offsets.is_empty())
        {
            let mut offsets: Vec<u64> = Vec::new();
            for o in &i.first_bad_offsets {
                if !offsets.contains(o) {
                    offsets.push(*o);
                }
            }
            lines.push((
                RED,
                format!(
                    "{}: first corrupted addresses (byte offsets into the tested buffer) {}",
                    i.check,
                    hex_list(&offsets, 8)
                ),
            ));
        }
        for s in &d.telemetry {
            let Some(xid) = s.xid.as_ref().filter(|x| !x.is_empty()) else {
                continue;
            };
            let codes: Vec<String> = xid.iter().map(u32::to_string).collect();
            lines.push((RED, format!("XID {} at {:.1} s", codes.join(", "), s.t_s)));
        }
        for p in charts::throttled_periods(&d.telemetry) {
            lines.push((
                ORANGE,
                format!(
                    "throttled from {:.1} s to {:.1} s: {}",
                    p.from_s,
                    p.to_s,
                    p.reasons.join(", ")
                ),
            ));
        }
        for h in &d.hangs {
            lines.push((
                RED,
                format!(
                    "hang: {} (cycle {}) stopped answering; the watchdog gave up at {:.1} s: {}",
                    h.workload,
                    h.cycle + 1,
                    h.at_s,
                    h.message
                ),
            ));
        }
        for f in &d.failures {
            lines.push((
                RED,
                format!(
                    "{}: {} (cycle {}): {}",
                    if f.node_state.is_some() {
                        "could not test (node state)"
                    } else if f.lost {
                        "device lost"
                    } else {
                        "device error"
                    },
                    f.workload,
                    f.cycle + 1,
                    f.message
                ),
            ));
        }
        for c in v.checks.iter().filter(|c| c.warn) {
            lines.push((ORANGE, format!("warning ({}): {}", c.rule, c.detail)));
        }
        if v.decision == Decision::Incomplete {
            if let Some(c) = v.checks.iter().find(|c| !c.pass) {
                lines.push((ORANGE, format!("incomplete: {}", c.detail)));
            }
        }
        if lines.is_empty() {
            continue;
        }
        any = true;
        doc.ensure(60.0);
        doc.gap(8.0);
        doc.paragraph(
            &format!(
                "GPU {}: {} · {} · serial {} · bus {}",
                d.info.index,
                v.decision.word(),
                d.info.name,
                opt(d.info.serial.as_deref()),
                opt(d.info.pci_bus_id.as_deref()),
            ),
            10.5,
            Weight::Bold,
            decision_color(v.decision),
            0.0,
        );
        doc.gap(2.0);
        for (color, l) in lines {
            doc.paragraph(&format!("• {l}"), 8.5, Weight::Regular, color, 8.0);
        }
    }
    if !any {
        doc.paragraph(
            "No failures: every check passed on every GPU, no XID event, no throttling, no hang.",
            10.0,
            Weight::Regular,
            BLACK,
            0.0,
        );
    }
}

fn sign_off(doc: &mut Doc, operator: Option<&str>) {
    let h = 150.0;
    doc.ensure(h + 30.0);
    doc.heading("Sign-off", 13.0, h);
    let top = doc.y + 4.0;
    doc.rect(MARGIN, top, CONTENT_W, h, None, Some((LIGHT, 0.8)));
    let rows = [
        ("Tested by", operator.unwrap_or("")),
        ("Date", ""),
        ("Signature", ""),
        ("Accepted by", ""),
    ];
    for (i, (label, value)) in rows.iter().enumerate() {
        let y = top + 30.0 + i as f32 * 34.0;
        doc.text(MARGIN + 12.0, y, 10.0, Weight::Bold, BLACK, label);
        doc.line(
            (MARGIN + 100.0, y + 3.0),
            (MARGIN + CONTENT_W - 16.0, y + 3.0),
            GREY,
            0.6,
        );
        if !value.is_empty() {
            doc.text(MARGIN + 104.0, y - 1.0, 10.0, Weight::Regular, BLACK, value);
        }
    }
    doc.y = top + h;
}

/// report.pdf of a judged run, with its charts.
pub fn render(run: &RunResults, judgement: &Judgement, charts: &[Chart]) -> Vec<u8> {
    let h = &run.header;
    let mut header = format!("kiln acceptance report · {} · {}", h.host, h.started_at);
    if let Some(a) = h.asset.as_deref().filter(|a| !a.is_empty()) {
        header.push_str(&format!(" · asset {a}"));
    }
    let footer = format!(
        "kiln {} · profile {} · {} backend",
        h.kiln_version, h.profile, h.backend
    );
    let mut doc = Doc::new(
        &format!("kiln acceptance report: {}", h.host),
        header,
        footer,
        run.simulated(),
    );
    front_page(&mut doc, run, judgement);
    let tables = charts::metric_tables(run, judgement);
    workload_tables(&mut doc, run, &tables);
    load_table(&mut doc, run, judgement);
    chart_pages(&mut doc, charts);
    failure_details(&mut doc, run, judgement);
    sign_off(&mut doc, h.operator.as_deref());
    doc.finish()
}

/// The fleet summary: one line per node and GPU, across runs; with the
/// fleet's judgement (`kiln fleet`), first a line per node with its flags
/// and the fleet's medians per model.
pub fn render_fleet(nodes: &[(&RunResults, &Judgement)], fleet: Option<&Fleet>) -> Vec<u8> {
    let simulated = nodes.iter().any(|(r, _)| r.simulated());
    let mut doc = Doc::new(
        "kiln fleet acceptance summary",
        "kiln fleet acceptance summary".into(),
        format!("kiln {}", crate::VERSION),
        simulated,
    );
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, j) in nodes {
        for v in &j.verdicts {
            *counts.entry(v.decision.word()).or_default() += 1;
        }
    }
    let gpus: usize = nodes.iter().map(|(r, _)| r.devices.len()).sum();
    doc.y += 10.0;
    doc.text(
        MARGIN,
        doc.y + 20.0,
        22.0,
        Weight::Bold,
        BLACK,
        "Fleet acceptance summary",
    );
    doc.y += 34.0;
    doc.paragraph(
        &format!(
            "{} node(s), {gpus} GPU(s): {} accepted, {} rejected, {} incomplete",
            nodes.len(),
            counts.get("ACCEPT").unwrap_or(&0),
            counts.get("REJECT").unwrap_or(&0),
            counts.get("INCOMPLETE").unwrap_or(&0)
        ),
        12.0,
        Weight::Bold,
        GREY,
        0.0,
    );
    if simulated {
        banner(
            &mut doc,
            "SIMULATED: at least one run used kiln's sim backend or virtual GPUs; its figures come from a model, not from hardware.",
            RED,
        );
    }
    let incomplete: Vec<&str> = nodes
        .iter()
        .filter(|(r, _)| !r.complete())
        .map(|(r, _)| r.header.host.as_str())
        .collect();
    if !incomplete.is_empty() {
        banner(
            &mut doc,
            &format!("INCOMPLETE RUNS on: {}", incomplete.join(", ")),
            ORANGE,
        );
    }
    if let Some(f) = fleet {
        fleet_nodes(&mut doc, f);
        doc.heading("GPUs", 13.0, 40.0);
    }
    doc.gap(6.0);
    let columns = [
        ("node / asset", 110.0, Align::Left),
        ("date", 70.0, Align::Left),
        ("GPU", 28.0, Align::Center),
        ("serial / PCI bus", 92.0, Align::Left),
        ("verdict", 62.0, Align::Center),
        (
            "reasons",
            CONTENT_W - 110.0 - 70.0 - 28.0 - 92.0 - 62.0,
            Align::Left,
        ),
    ]
    .map(|(t, w, a)| Column {
        title: t.into(),
        width: w,
        align: a,
    });
    let mut rows = Vec::new();
    for (run, j) in nodes {
        for (d, v) in run.devices.iter().zip(&j.verdicts) {
            let color = decision_color(v.decision);
            rows.push(vec![
                {
                    let flags = fleet
                        .and_then(|f| f.nodes.iter().find(|n| n.node == run.header.host))
                        .filter(|n| n.flagged)
                        .map(|n| format!("\nNODE FLAGGED: {}", n.codes().join(", ")));
                    Cell {
                        size: 8.0,
                        color: if flags.is_some() { RED } else { BLACK },
                        ..Cell::plain(format!(
                            "{}\n{}{}",
                            run.header.host,
                            opt(run.header.asset.as_deref()),
                            flags.unwrap_or_default()
                        ))
                    }
                },
                Cell {
                    size: 7.5,
                    ..Cell::plain(run.header.started_at.replace('T', " "))
                },
                Cell::colored(d.info.index.to_string(), BLACK, true),
                Cell {
                    size: 7.5,
                    ..Cell::plain(format!(
                        "{}\n{}",
                        opt(d.info.serial.as_deref()),
                        opt(d.info.pci_bus_id.as_deref())
                    ))
                },
                Cell {
                    fill: Some(color),
                    size: 9.0,
                    ..Cell::colored(v.decision.word(), WHITE, true)
                },
                Cell {
                    size: 7.5,
                    ..Cell::colored(
                        diagnosis_words(v),
                        if v.decision == Decision::Accept {
                            BLACK
                        } else {
                            color
                        },
                        false,
                    )
                },
            ]);
        }
    }
    if rows.is_empty() {
        doc.paragraph(
            "No device in these runs.",
            10.0,
            Weight::Regular,
            BLACK,
            0.0,
        );
    } else {
        doc.table(&columns, &rows, 8.5);
    }
    doc.finish()
}

/// A figure with four significant digits at most, for tables.
fn figure(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let digits = if v.abs() >= 1000.0 {
        0
    } else if v.abs() >= 100.0 {
        1
    } else if v.abs() >= 10.0 {
        2
    } else {
        3
    };
    format!("{v:.digits$}")
}

/// A node's flags for the PDF, one line each; the fleet rule's flags of a
/// model in one line ("fleet_outlier: under the other nodes by 5.8 % on
/// bw_read, 6.0 % on sha256d (robust z 11.6 to 12.1)"). fleet.json has each.
fn node_flags_words(n: &crate::verdict::fleet::NodeVerdict) -> String {
    let mut lines: Vec<String> = n
        .flags
        .iter()
        .filter(|f| f.code != "fleet_outlier")
        .map(|f| format!("{}: {}", f.code, f.detail))
        .collect();
    let mut models: Vec<&str> = Vec::new();
    for f in n.flags.iter().filter(|f| f.code == "fleet_outlier") {
        let m = f.model.as_deref().unwrap_or("");
        if !models.contains(&m) {
            models.push(m);
        }
    }
    for model in models {
        let of: Vec<_> = n
            .flags
            .iter()
            .filter(|f| f.code == "fleet_outlier" && f.model.as_deref().unwrap_or("") == model)
            .collect();
        let by: Vec<String> = of
            .iter()
            .map(|f| {
                format!(
                    "{:.1} % on {}",
                    f.shortfall.unwrap_or(f64::NAN) * 100.0,
                    f.metric.as_deref().unwrap_or("?")
                )
            })
            .collect();
        let zs: Vec<f64> = of.iter().filter_map(|f| f.z).collect();
        let lo = zs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = zs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        lines.push(format!(
            "fleet_outlier ({model}): under the other nodes' median by {} (robust z {})",
            by.join(", "),
            if (hi - lo).abs() < 0.05 {
                format!("{lo:.1}")
            } else {
                format!("{lo:.1} to {hi:.1}")
            }
        ));
    }
    lines.join("\n")
}

/// `kiln fleet`'s part of the fleet summary: a line per node with its
/// verdict and flags, the fleet rule, and the fleet's medians per model.
fn fleet_nodes(doc: &mut Doc, f: &Fleet) {
    let outliers = f
        .nodes
        .iter()
        .filter(|n| n.codes().contains(&"fleet_outlier"))
        .count();
    let flagged = f.flagged();
    banner(
        doc,
        &if flagged == 0 {
            format!(
                "{} node(s), none flagged{}",
                f.nodes.len(),
                if f.models.iter().any(|m| m.rule_applied) {
                    ""
                } else {
                    " (the fleet rule was not applied: see below)"
                }
            )
        } else {
            format!(
                "{flagged} of {} node(s) FLAGGED ({outliers} by the fleet rule, fleet_outlier)",
                f.nodes.len()
            )
        },
        if flagged == 0 { GREEN } else { RED },
    );
    doc.heading("Nodes", 13.0, 40.0);
    let columns = [
        ("node", 100.0, Align::Left),
        ("fleet", 66.0, Align::Center),
        ("GPUs acc / rej / other", 70.0, Align::Center),
        ("flags", CONTENT_W - 100.0 - 66.0 - 70.0, Align::Left),
    ]
    .map(|(t, w, a)| Column {
        title: t.into(),
        width: w,
        align: a,
    });
    let rows: Vec<Vec<Cell>> = f
        .nodes
        .iter()
        .map(|n| {
            let (word, color) = if n.flagged {
                ("FLAGGED", RED)
            } else {
                ("OK", GREEN)
            };
            vec![
                Cell {
                    size: 8.0,
                    ..Cell::plain(format!("{}\n{}", n.node, n.started_at.replace('T', " ")))
                },
                Cell {
                    fill: Some(color),
                    size: 9.0,
                    ..Cell::colored(word, WHITE, true)
                },
                Cell::plain(format!(
                    "{} / {} / {}",
                    n.accepted,
                    n.rejected,
                    n.incomplete + n.untested
                )),
                Cell {
                    size: 7.5,
                    ..if n.flags.is_empty() {
                        Cell::plain(if n.comparisons.is_empty() {
                            "every GPU accepted; not compared with the fleet (fleet rule not applied)"
                        } else {
                            "every GPU accepted; within the fleet on every metric compared"
                        })
                    } else {
                        Cell::colored(node_flags_words(n), RED, false)
                    }
                },
            ]
        })
        .collect();
    doc.gap(4.0);
    doc.table(&columns, &rows, 8.5);
    doc.heading("Fleet medians", 13.0, 60.0);
    doc.paragraph(
        &format!("Fleet rule: {}.", f.rule.description),
        8.5,
        Weight::Regular,
        GREY,
        0.0,
    );
    for note in &f.notes {
        doc.paragraph(note, 8.5, Weight::Bold, ORANGE, 0.0);
    }
    for m in &f.models {
        doc.heading(
            &format!(
                "{}: {} GPU(s) on {} node(s){}",
                m.model,
                m.gpus,
                m.nodes,
                if m.rule_applied {
                    ""
                } else {
                    ", fleet rule NOT APPLIED"
                }
            ),
            10.0,
            40.0,
        );
        let columns = [
            ("metric", 100.0, Align::Left),
            ("unit", 55.0, Align::Left),
            ("median, accepted + rejected GPUs", 100.0, Align::Right),
            ("median, accepted GPUs", 90.0, Align::Right),
            ("median of node medians", 90.0, Align::Right),
            ("nodes", CONTENT_W - 435.0, Align::Center),
        ]
        .map(|(t, w, a)| Column {
            title: t.into(),
            width: w,
            align: a,
        });
        let rows: Vec<Vec<Cell>> = m
            .metrics
            .iter()
            .map(|x| {
                vec![
                    Cell::plain(x.metric.clone()),
                    Cell::plain(x.unit.clone()),
                    Cell::plain(format!("{} ({} GPUs)", figure(x.median), x.gpus)),
                    Cell::plain(x.median_accepted.map_or("-".into(), |v| {
                        format!("{} ({} GPUs)", figure(v), x.accepted_gpus)
                    })),
                    Cell::plain(figure(x.reference)),
                    Cell::plain(format!(
                        "{}{}",
                        x.nodes,
                        if x.applied { "" } else { " (not applied)" }
                    )),
                ]
            })
            .collect();
        doc.table(&columns, &rows, 8.0);
    }
}

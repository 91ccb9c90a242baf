//! Reading the history database: one GPU's runs ([`gpu_history`], with each
//! figure's change against its first accepted run, and [`render`] for the
//! terminal), the database's size ([`totals`]), and every run as the
//! baseline rule reads it ([`record_runs`]).

use std::collections::BTreeMap;

use rusqlite::params;
use serde::Serialize;

use super::{sql_error, Db};
use crate::error::{KilnError, Result};
use crate::stats;
use crate::verdict::baseline::{RecordDevice, RecordRun};
use crate::verdict::Decision;

/// One metric of one run of a GPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuMetric {
    /// Metric name, e.g. `sha256d`.
    pub name: String,
    /// Unit of `value`.
    pub unit: String,
    /// The figure: the run's value, or the median over burn-in cycles when
    /// it has several; null when it was not a number.
    pub value: Option<f64>,
    /// How many values the run has of it (burn-in cycles).
    pub values: usize,
    /// Change against the same metric of the GPU's first accepted run, in
    /// percent (`(value / reference - 1) x 100`; negative: slower); null
    /// when there is no accepted run, or it lacks the metric in this unit.
    pub change_pct: Option<f64>,
}

/// One run of a GPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuRun {
    /// The run's id (SHA-256 of its journal's start event).
    pub run_id: String,
    /// Host name of the node.
    pub host: String,
    /// RFC 3339 UTC start time.
    pub started_at: String,
    /// Profile run.
    pub profile: String,
    /// kiln's version.
    pub kiln_version: String,
    /// Backend.
    pub backend: String,
    /// The run reached its end and every device finished every workload.
    pub complete: bool,
    /// The GPU's index in that run.
    pub device: usize,
    /// Its name, as the driver gave it.
    pub model: String,
    /// Its serial.
    pub serial: Option<String>,
    /// Its UUID.
    pub uuid: Option<String>,
    /// `accept`, `reject`, `incomplete` or `untested`.
    pub verdict: String,
    /// Reason codes, in check order.
    pub reasons: Vec<String>,
    /// The remedy of a device not accepted (schema 2 on; null before).
    pub remedy: Option<String>,
    /// Its figures, in the order first measured.
    pub metrics: Vec<GpuMetric>,
}

/// A GPU's history, oldest run first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuHistory {
    /// What was looked up (a serial or a UUID).
    pub query: String,
    /// The database.
    pub database: String,
    /// Its runs, oldest first (by start time, then the order they were ingested in).
    pub runs: Vec<GpuRun>,
    /// Position in `runs` (0-based) of the first accepted run, the
    /// reference of every `change_pct`; null when none was accepted.
    pub reference: Option<usize>,
}

/// How many runs, devices and metrics the database holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Runs.
    pub runs: u64,
    /// Device rows (one per device per run).
    pub devices: u64,
    /// Metric rows.
    pub metrics: u64,
    /// Distinct serials.
    pub serials: u64,
}

/// Counts what the database holds.
pub fn totals(db: &Db) -> Result<Totals> {
    let q = |sql: &str| -> Result<u64> {
        db.conn
            .query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
            .map_err(|e| sql_error(&db.path, "counting its rows", e))
    };
    Ok(Totals {
        runs: q("SELECT count(*) FROM runs")?,
        devices: q("SELECT count(*) FROM devices")?,
        metrics: q("SELECT count(*) FROM metrics")?,
        serials: q("SELECT count(DISTINCT serial) FROM devices")?,
    })
}

/// The runs of the GPU whose serial (or UUID) is `key`, oldest first.
///
/// Errors: no device of the database has that serial or UUID
/// ([`KilnError::Usage`], naming a few serials it has).
pub fn gpu_history(db: &Db, key: &str) -> Result<GpuHistory> {
    let err = |e| sql_error(&db.path, "reading a GPU's history", e);
    let key = key.trim();
    let mut stmt = db
        .conn
        .prepare(
            "SELECT r.run_id, r.host, r.started_at, r.profile, r.kiln_version, r.backend, r.complete,
                    d.idx, d.model, d.serial, d.uuid, d.verdict, d.remedy
             FROM devices d JOIN runs r ON r.run_id = d.run_id
             WHERE d.serial = ?1 OR d.uuid = ?1
             ORDER BY r.started_at, r.rowid, d.idx",
        )
        .map_err(err)?;
    let mut runs: Vec<GpuRun> = stmt
        .query_map([key], |r| {
            Ok(GpuRun {
                run_id: r.get(0)?,
                host: r.get(1)?,
                started_at: r.get(2)?,
                profile: r.get(3)?,
                kiln_version: r.get(4)?,
                backend: r.get(5)?,
                complete: r.get(6)?,
                device: r.get::<_, i64>(7)?.max(0) as usize,
                model: r.get(8)?,
                serial: r.get(9)?,
                uuid: r.get(10)?,
                verdict: r.get(11)?,
                remedy: r.get(12)?,
                reasons: Vec::new(),
                metrics: Vec::new(),
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(err)?;
    if runs.is_empty() {
        let mut some = db
            .conn
            .prepare(
                "SELECT DISTINCT serial FROM devices WHERE serial IS NOT NULL ORDER BY serial LIMIT 6",
            )
            .map_err(err)?;
        let known: Vec<String> = some
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(err)?;
        let t = totals(db)?;
        return Err(KilnError::Usage(format!(
            "no GPU with serial or UUID \"{key}\" in {} ({} run(s), {} serial(s){})",
            db.path.display(),
            t.runs,
            t.serials,
            if known.is_empty() {
                String::new()
            } else {
                format!(
                    ", e.g. {}{}",
                    known.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                    if known.len() > 5 { ", ..." } else { "" }
                )
            }
        )));
    }
    for run in &mut runs {
        run.reasons = reasons(db, &run.run_id, run.device)?;
        run.metrics = metrics(db, &run.run_id, run.device)?;
    }
    let reference = runs.iter().position(|r| r.verdict == "accept");
    if let Some(k) = reference {
        let base: BTreeMap<(String, String), f64> = runs[k]
            .metrics
            .iter()
            .filter_map(|m| m.value.map(|v| ((m.name.clone(), m.unit.clone()), v)))
            .filter(|(_, v)| v.is_finite() && *v > 0.0)
            .collect();
        for run in &mut runs {
            for m in &mut run.metrics {
                m.change_pct = match (m.value, base.get(&(m.name.clone(), m.unit.clone()))) {
                    (Some(v), Some(b)) if v.is_finite() => Some((v / b - 1.0) * 100.0),
                    _ => None,
                };
            }
        }
    }
    Ok(GpuHistory {
        query: key.to_string(),
        database: db.path.display().to_string(),
        runs,
        reference,
    })
}

/// The reason codes of device `idx` of a run, in order.
fn reasons(db: &Db, run_id: &str, idx: usize) -> Result<Vec<String>> {
    let err = |e| sql_error(&db.path, "reading reason codes", e);
    let mut stmt = db
        .conn
        .prepare_cached("SELECT code FROM reasons WHERE run_id = ?1 AND idx = ?2 ORDER BY pos")
        .map_err(err)?;
    stmt.query_map(params![run_id, idx as i64], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(err)
}

/// Every measurement of device `idx` of a run, in journal order:
/// (name, unit, value, NaN for NULL).
fn raw_metrics(db: &Db, run_id: &str, idx: usize) -> Result<Vec<(String, String, f64)>> {
    let err = |e| sql_error(&db.path, "reading metrics", e);
    let mut stmt = db
        .conn
        .prepare_cached(
            "SELECT name, unit, value FROM metrics WHERE run_id = ?1 AND idx = ?2 ORDER BY seq",
        )
        .map_err(err)?;
    stmt.query_map(params![run_id, idx as i64], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get::<_, Option<f64>>(2)?.unwrap_or(f64::NAN),
        ))
    })
    .and_then(|rows| rows.collect())
    .map_err(err)
}

/// A device's figures, one per (name, unit) in the order first measured:
/// the median of its numeric values.
fn metrics(db: &Db, run_id: &str, idx: usize) -> Result<Vec<GpuMetric>> {
    let mut out: Vec<(GpuMetric, Vec<f64>)> = Vec::new();
    for (name, unit, value) in raw_metrics(db, run_id, idx)? {
        let slot = match out
            .iter()
            .position(|(m, _)| m.name == name && m.unit == unit)
        {
            Some(k) => k,
            None => {
                out.push((
                    GpuMetric {
                        name,
                        unit,
                        value: None,
                        values: 0,
                        change_pct: None,
                    },
                    Vec::new(),
                ));
                out.len() - 1
            }
        };
        out[slot].0.values += 1;
        if !value.is_nan() {
            out[slot].1.push(value);
        }
    }
    Ok(out
        .into_iter()
        .map(|(mut m, values)| {
            m.value = stats::median(&values);
            m
        })
        .collect())
}

/// The decision a stored verdict names.
fn decision(word: &str) -> Option<Decision> {
    [
        Decision::Accept,
        Decision::Reject,
        Decision::Incomplete,
        Decision::Untested,
    ]
    .into_iter()
    .find(|d| d.word().eq_ignore_ascii_case(word))
}

/// Every run of the database, oldest first (by start time, then the order they were ingested in),
/// each device with its stored verdict and every measurement: the input of
/// [`crate::verdict::baseline::record_from`], the rule `kiln baseline
/// record DIR...` uses.
pub fn record_runs(db: &Db) -> Result<Vec<RecordRun>> {
    let err = |e| sql_error(&db.path, "reading its runs", e);
    let mut stmt = db
        .conn
        .prepare("SELECT run_id, host FROM runs ORDER BY started_at, rowid")
        .map_err(err)?;
    let runs: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(err)?;
    let mut devs = db
        .conn
        .prepare("SELECT idx, model, verdict FROM devices WHERE run_id = ?1 ORDER BY idx")
        .map_err(err)?;
    let mut out = Vec::with_capacity(runs.len());
    for (run_id, host) in runs {
        let rows: Vec<(i64, String, String)> = devs
            .query_map([&run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(|rows| rows.collect())
            .map_err(err)?;
        let mut devices = Vec::with_capacity(rows.len());
        for (idx, name, verdict) in rows {
            let index = idx.max(0) as usize;
            let reasons = reasons(db, &run_id, index)?;
            devices.push(RecordDevice {
                index,
                name,
                verdict: decision(&verdict).map(|d| (d, reasons)),
                metrics: raw_metrics(db, &run_id, index)?,
            });
        }
        out.push(RecordRun { host, devices });
    }
    Ok(out)
}

/// A figure for the terminal.
fn figure(v: Option<f64>) -> String {
    match v {
        None => "n/a".to_string(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.1}"),
        Some(v) if v.abs() >= 1.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.4}"),
    }
}

/// Pads every column of `rows` to its widest cell.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, s)| format!("{s:<w$}", w = widths[c]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The history as text: the runs, then every figure per run with its
/// change against the first accepted run, then the latest run's worst
/// change.
pub fn render(h: &GpuHistory) -> String {
    let mut out = String::new();
    let first = &h.runs[0];
    let mut names: Vec<&str> = Vec::new();
    for r in &h.runs {
        if !names.contains(&r.model.as_str()) {
            names.push(&r.model);
        }
    }
    let mut uuids: Vec<&str> = Vec::new();
    for u in h.runs.iter().filter_map(|r| r.uuid.as_deref()) {
        if !uuids.contains(&u) {
            uuids.push(u);
        }
    }
    out.push_str(&format!(
        "GPU serial {} (UUID {}; {}): {} run(s) in {}, oldest first\n",
        first.serial.as_deref().unwrap_or("unknown"),
        if uuids.is_empty() {
            "unknown".to_string()
        } else {
            uuids.join(", ")
        },
        names.join(", "),
        h.runs.len(),
        h.database
    ));
    match h.reference {
        Some(k) => out.push_str(&format!(
            "change: each figure against run #{} ({}, {}), its first accepted run\n\n",
            k + 1,
            h.runs[k].started_at,
            h.runs[k].host
        )),
        None => out.push_str(
            "change: none of its runs was accepted, so there is no reference to compare with\n\n",
        ),
    }
    let mut rows = vec![vec![
        "#".to_string(),
        "STARTED".into(),
        "HOST".into(),
        "DEV".into(),
        "PROFILE".into(),
        "RUN".into(),
        "VERDICT".into(),
        "REASONS".into(),
    ]];
    for (k, r) in h.runs.iter().enumerate() {
        rows.push(vec![
            format!("{}", k + 1),
            r.started_at.clone(),
            r.host.clone(),
            r.device.to_string(),
            format!(
                "{}{}",
                r.profile,
                if r.complete { "" } else { " (incomplete run)" }
            ),
            r.run_id.chars().take(12).collect(),
            r.verdict.to_uppercase(),
            if r.reasons.is_empty() {
                "-".to_string()
            } else {
                r.reasons.join(", ")
            },
        ]);
    }
    out.push_str(&table(&rows));
    out.push('\n');
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for r in &h.runs {
        for m in &r.metrics {
            if !keys.contains(&(m.name.as_str(), m.unit.as_str())) {
                keys.push((&m.name, &m.unit));
            }
        }
    }
    let mut rows = vec![vec![
        "METRIC".to_string(),
        "UNIT".into(),
        "#".into(),
        "VALUE".into(),
        "CHANGE".into(),
    ]];
    for (name, unit) in &keys {
        let mut first_row = true;
        for (k, r) in h.runs.iter().enumerate() {
            let Some(m) = r
                .metrics
                .iter()
                .find(|m| m.name == *name && m.unit == *unit)
            else {
                continue;
            };
            let change = match (h.reference, m.change_pct) {
                (Some(rk), _) if rk == k => "reference".to_string(),
                (_, Some(p)) => format!("{p:+.1} %"),
                (Some(rk), None)
                    if !h.runs[rk]
                        .metrics
                        .iter()
                        .any(|b| b.name == *name && b.unit == *unit && b.value.is_some()) =>
                {
                    format!("- (none in #{})", rk + 1)
                }
                _ => "-".to_string(),
            };
            rows.push(vec![
                if first_row {
                    name.to_string()
                } else {
                    String::new()
                },
                if first_row {
                    unit.to_string()
                } else {
                    String::new()
                },
                format!("{}", k + 1),
                figure(m.value),
                change,
            ]);
            first_row = false;
        }
    }
    if keys.is_empty() {
        out.push_str("no figures were measured in these runs\n");
    } else {
        out.push_str(&table(&rows));
    }
    if let (Some(rk), Some(last)) = (h.reference, h.runs.len().checked_sub(1)) {
        if last != rk {
            let worst = h.runs[last]
                .metrics
                .iter()
                .filter_map(|m| m.change_pct.map(|p| (m, p)))
                .min_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((m, p)) = worst {
                out.push_str(&format!(
                    "\nlatest run #{} ({}): {}; worst against run #{}: {} {:+.1} % ({} against {} {})\n",
                    last + 1,
                    h.runs[last].started_at,
                    h.runs[last].verdict.to_uppercase(),
                    rk + 1,
                    m.name,
                    p,
                    figure(m.value),
                    figure(
                        h.runs[rk]
                            .metrics
                            .iter()
                            .find(|b| b.name == m.name && b.unit == m.unit)
                            .and_then(|b| b.value)
                    ),
                    m.unit
                ));
            }
        }
    }
    out
}

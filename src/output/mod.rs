//! Outputs of a judged run: results.json, results.csv, the summary table,
//! the charts (PNG and SVG under `charts/`) and report.pdf.
//!
//! Each format lives in its own file and turns the run into bytes without any
//! I/O; [`write_all`] alone owns the files, and replaces each atomically
//! (write to a temporary name, then rename), so a crash never leaves half a
//! file behind.
//!
//! Layer: above `verdict` and every layer below it; below `commands` alone,
//! which it must not import (tests/layers.rs checks it).

pub mod charts;
pub mod csv;
pub mod fleet;
pub mod json;
pub mod pdf;
pub mod prometheus;
pub mod summary;
pub mod telemetry_csv;

use std::path::Path;

use crate::error::{KilnError, Result};
use crate::results::RunResults;
use crate::verdict::Judgement;

/// Writes results.json, results.csv, every chart under `charts/` and
/// report.pdf into `dir`.
pub fn write_all(dir: &Path, run: &RunResults, judgement: &Judgement) -> Result<()> {
    write_atomic(&dir.join("results.json"), &json::render(run, judgement)?)?;
    write_atomic(
        &dir.join("results.csv"),
        &csv::render(run, &judgement.verdicts)?,
    )?;
    write_atomic(&dir.join("telemetry.csv"), &telemetry_csv::render(run)?)?;
    let charts = charts::render(run, judgement)?;
    let chart_dir = dir.join("charts");
    std::fs::create_dir_all(&chart_dir).map_err(|e| KilnError::output(&chart_dir, e))?;
    for c in &charts {
        write_atomic(&chart_dir.join(format!("{}.png", c.name)), &c.png)?;
        write_atomic(&chart_dir.join(format!("{}.svg", c.name)), c.svg.as_bytes())?;
    }
    write_atomic(
        &dir.join("report.pdf"),
        &pdf::render(run, judgement, &charts),
    )?;
    Ok(())
}

/// Writes the fleet summary of several judged runs to `path`.
pub fn write_fleet(path: &Path, nodes: &[(&RunResults, &Judgement)]) -> Result<()> {
    write_atomic(path, &pdf::render_fleet(nodes, None))
}

/// Writes `kiln fleet`'s fleet.json, fleet.csv and fleet.pdf into `dir`
/// (created when missing). `nodes` are the runs the fleet judged.
pub fn write_fleet_dir(
    dir: &Path,
    nodes: &[(&RunResults, &Judgement)],
    judged: &crate::verdict::fleet::Fleet,
    generated_at: &str,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| KilnError::output(dir, e))?;
    write_atomic(&dir.join("fleet.json"), &fleet::json(judged, generated_at)?)?;
    write_atomic(&dir.join("fleet.csv"), &fleet::csv(judged)?)?;
    write_atomic(
        &dir.join("fleet.pdf"),
        &pdf::render_fleet(nodes, Some(judged)),
    )
}

/// Writes a Prometheus textfile (from [`prometheus`]) to `path`: a
/// temporary file in the same folder (`.NAME.tmp`, which node_exporter's
/// `*.prom` glob does not read), then renamed over it, so the collector
/// never reads half a file.
pub fn write_prometheus(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| KilnError::output(path, "expected a file name, e.g. kiln.prom"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            KilnError::output(path, e)
        })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| KilnError::output(path, e))
}

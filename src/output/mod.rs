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
pub mod json;
pub mod pdf;
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
    write_atomic(path, &pdf::render_fleet(nodes))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| KilnError::output(path, e))
}

//! Outputs of a judged run: results.json, results.csv and the summary table.
//!
//! Each format lives in its own file and turns the run into bytes without any
//! I/O; [`write_all`] alone owns the files, and replaces each atomically
//! (write to a temporary name, then rename), so a crash never leaves half a
//! file behind.

pub mod csv;
pub mod json;
pub mod summary;

use std::path::Path;

use crate::error::{KilnError, Result};
use crate::results::RunResults;
use crate::verdict::Judgement;

/// Writes results.json and results.csv into `dir`.
pub fn write_all(dir: &Path, run: &RunResults, judgement: &Judgement) -> Result<()> {
    write_atomic(&dir.join("results.json"), &json::render(run, judgement)?)?;
    write_atomic(
        &dir.join("results.csv"),
        &csv::render(run, &judgement.verdicts)?,
    )?;
    Ok(())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| KilnError::output(path, e))
}

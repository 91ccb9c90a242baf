//! `kiln db ingest`: one run folder into the history database, in one
//! transaction.
//!
//! The run is read from its journal (as `kiln report` reads it) and judged
//! by [`crate::verdict::judge`] against the shipped baselines, or the
//! `--baseline FILE` given, as `kiln report` judges it. When the folder's
//! results.json holds other verdicts (the run was judged against another
//! baseline, or by another kiln), the run is refused rather than stored
//! with a verdict its own report does not show.
//!
//! A run is known by its id, the SHA-256 of its journal's start event: the
//! same run ingested again, from any path, changes nothing. A run whose
//! journal has grown since (it was still going) is replaced whole, in the
//! same transaction.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rusqlite::{params, TransactionBehavior};
use sha2::{Digest, Sha256};

use super::{sql_error, Db};
use crate::error::{KilnError, Result};
use crate::results::{self, RunResults};
use crate::run::journal;
use crate::verdict::{self, baseline, baseline::Baseline, BaselineChoice, DeviceVerdict};

/// Test hook: milliseconds to sleep inside the transaction after each
/// device is written, so that a test can kill an ingest while a run is half
/// written. For tests only; unset in production.
pub const DELAY_ENV: &str = "KILN_DB_INGEST_DELAY_MS";

/// What [`ingest`] did with one run folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// The run was new: stored with this many devices and metrics.
    New {
        run_id: String,
        devices: usize,
        metrics: usize,
    },
    /// The run was there with a shorter journal (it was still going):
    /// replaced whole.
    Updated {
        run_id: String,
        devices: usize,
        metrics: usize,
    },
    /// The run was there already, from the same journal: nothing changed.
    Already { run_id: String },
}

/// Fails unless `dir` is a folder holding a run's journal.
pub fn check_run_folder(dir: &Path) -> Result<()> {
    crate::results::check_folder(dir)?;
    if !dir.join(journal::FILE_NAME).is_file() {
        return Err(KilnError::input(
            dir,
            format!(
                "not a run folder: it has no {}; expected the folder of a kiln run (the --out of `kiln run`)",
                journal::FILE_NAME
            ),
        ));
    }
    Ok(())
}

/// Stores the run in `dir` in `db`, in one transaction (see the module's
/// doc). `forced`: the baseline every device is held to (`--baseline`),
/// else the shipped one matching its model.
pub fn ingest(db: &mut Db, dir: &Path, forced: Option<&Baseline>) -> Result<Ingested> {
    check_run_folder(dir)?;
    let journal_path = dir.join(journal::FILE_NAME);
    let run = results::load(dir)?;
    let bytes =
        std::fs::read(&journal_path).map_err(|e| KilnError::input(&journal_path, e.to_string()))?;
    let start_line = bytes
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .find(|l| !l.iter().all(u8::is_ascii_whitespace))
        .unwrap_or_default();
    let run_id = hex(&Sha256::digest(start_line));
    let journal_digest = hex(&Sha256::digest(&bytes));

    let shipped = baseline::builtin();
    let choice = match forced {
        Some(b) => BaselineChoice::Force(b),
        None => BaselineChoice::Match(&shipped),
    };
    let judgement = verdict::judge(&run, choice);
    agrees_with_results_json(dir, &judgement.verdicts, forced.is_some())?;

    let delay = std::env::var(DELAY_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis);
    let source = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let path = db.path.clone();
    let err = |e| sql_error(&path, "ingesting a run", e);
    let tx = db
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    let stored: Option<String> = match tx.query_row(
        "SELECT journal_sha256 FROM runs WHERE run_id = ?1",
        [&run_id],
        |r| r.get(0),
    ) {
        Ok(d) => Some(d),
        Err(rusqlite::Error::QueryReturnedNoRows) => None,
        Err(e) => return Err(err(e)),
    };
    if stored.as_deref() == Some(journal_digest.as_str()) {
        return Ok(Ingested::Already { run_id });
    }
    if stored.is_some() {
        tx.execute("DELETE FROM runs WHERE run_id = ?1", [&run_id])
            .map_err(err)?;
    }
    tx.execute(
        "INSERT INTO runs (run_id, host, started_at, finished_at, profile, kiln_version, backend, seed, complete, journal_sha256, source_dir, ingested_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            run_id,
            run.header.host,
            run.header.started_at,
            run.finished_at,
            run.header.profile.to_string(),
            run.header.kiln_version,
            run.header.backend.to_string(),
            // SQLite integers are signed 64-bit: the seed's bits, as i64.
            run.header.seed as i64,
            run.complete(),
            journal_digest,
            source.to_string_lossy(),
            humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        ],
    )
    .map_err(err)?;
    let metrics = write_devices(&tx, &run_id, &run, &judgement.verdicts, delay).map_err(err)?;
    tx.commit().map_err(err)?;
    let devices = run.devices.len();
    Ok(if stored.is_some() {
        Ingested::Updated {
            run_id,
            devices,
            metrics,
        }
    } else {
        Ingested::New {
            run_id,
            devices,
            metrics,
        }
    })
}

/// Writes every device of `run` with its verdict, reasons and metrics;
/// returns the number of metrics written.
fn write_devices(
    tx: &rusqlite::Transaction<'_>,
    run_id: &str,
    run: &RunResults,
    verdicts: &[DeviceVerdict],
    delay: Option<Duration>,
) -> rusqlite::Result<usize> {
    let mut device = tx.prepare(
        "INSERT INTO devices (run_id, idx, model, serial, uuid, pci_bus_id, verdict, remedy)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut reason =
        tx.prepare("INSERT INTO reasons (run_id, idx, pos, code) VALUES (?1, ?2, ?3, ?4)")?;
    let mut metric = tx.prepare(
        "INSERT INTO metrics (run_id, idx, seq, workload, name, cycle, value, unit)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut count = 0;
    for dev in &run.devices {
        let idx = dev.info.index as i64;
        let v = verdicts.iter().find(|v| v.device == dev.info.index);
        let decision = v.map_or(verdict::Decision::Incomplete, |v| v.decision);
        device.execute(params![
            run_id,
            idx,
            dev.info.name,
            dev.info.serial,
            dev.info.uuid,
            dev.info.pci_bus_id,
            decision.word().to_lowercase(),
            v.and_then(|v| v.remedy).map(|r| r.name()),
        ])?;
        for (pos, code) in v.map_or(&[][..], |v| &v.reasons[..]).iter().enumerate() {
            reason.execute(params![run_id, idx, pos as i64, code])?;
        }
        for (seq, m) in dev.metrics.iter().enumerate() {
            // SQLite stores NaN as NULL; read back as "not a number".
            let value = (!m.value.is_nan()).then_some(m.value);
            metric.execute(params![
                run_id,
                idx,
                seq as i64,
                m.workload.to_string(),
                m.name,
                m.cycle,
                value,
                m.unit
            ])?;
            count += 1;
        }
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
    }
    Ok(count)
}

/// Refuses a run whose results.json holds other verdicts than `verdicts`.
/// A folder without results.json (a run killed before its end) passes.
fn agrees_with_results_json(dir: &Path, verdicts: &[DeviceVerdict], forced: bool) -> Result<()> {
    let path = dir.join("results.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(KilnError::input(&path, e.to_string())),
    };
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        KilnError::input(
            &path,
            format!(
                "line {}: not JSON ({e}); rebuild it with `kiln report {}`",
                e.line(),
                dir.display()
            ),
        )
    })?;
    let Some(devices) = doc.get("devices").and_then(|d| d.as_array()) else {
        return Err(KilnError::input(
            &path,
            "has no \"devices\" list: not a kiln results.json",
        ));
    };
    for d in devices {
        let (Some(index), Some(written)) = (
            d.get("index").and_then(|i| i.as_u64()),
            d.get("verdict").and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        let Some(v) = verdicts.iter().find(|v| v.device as u64 == index) else {
            continue;
        };
        let now = v.decision.word().to_lowercase();
        if now != written {
            let was_against = d
                .get("baseline")
                .and_then(|b| b.as_str())
                .unwrap_or("no baseline");
            return Err(KilnError::input(
                &path,
                format!(
                    "device {index} is \"{written}\" here (judged against {was_against}) but \"{now}\" when judged now (against {}); {}",
                    v.baseline.as_deref().unwrap_or("no baseline"),
                    if forced {
                        "ingest with the --baseline the run was judged against, or rebuild results.json with `kiln report DIR --baseline FILE`"
                    } else {
                        "ingest with --baseline FILE when the run was judged against one, or rebuild results.json with `kiln report DIR`"
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// Lower-case hexadecimal.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

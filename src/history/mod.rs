//! Every GPU's history by serial: an embedded SQLite database of every run
//! of every GPU (`kiln db ingest`), one GPU's figures and verdicts across
//! its runs (`kiln history SERIAL`), and the accepted history as the input
//! of a baseline (`kiln baseline record --from-db`).
//!
//! The database is one file (`--db PATH`, else `$KILN_DB`, else
//! [`DEFAULT_PATH`] in the current folder), SQLite compiled into kiln
//! (rusqlite's `bundled`), so nothing is installed on the node. Its parts:
//!
//! - [`schema`]: the tables, versioned by `PRAGMA user_version` and grown by
//!   an ordered list of migrations ([`MIGRATIONS`]); a database newer than
//!   this binary is refused, one that is not kiln's is refused;
//! - [`ingest`](ingest()): one run folder in one transaction, judged by the
//!   same code as `kiln report` (so the stored verdict is results.json's),
//!   idempotent (a run is known by the digest of its journal's start event);
//! - [`query`]: a GPU's history, with each figure's change against its
//!   first accepted run, and the runs as the baseline rule reads them.
//!
//! Durability: SQLite's default rollback journal with `synchronous=FULL`.
//! A kill at any moment leaves every committed run whole and the
//! uncommitted one absent (the next open rolls its hot journal back). WAL is
//! not used: it needs shared memory beside the file, which a database on an
//! NFS share (where a fleet keeps it) does not have, and ingest has one
//! writer at a time anyway (others wait, up to [`BUSY_TIMEOUT`]).
//!
//! Layer: beside `output`, above `verdict` (which judges each run and holds
//! the baseline rule) and every layer below; only `commands` uses it
//! (tests/layers.rs checks the layers; README's Layout lists them).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::KilnError;

mod ingest;
pub mod query;
pub mod schema;

pub use ingest::{check_run_folder, ingest, Ingested, DELAY_ENV};
pub use query::{gpu_history, record_runs, render, totals, GpuHistory, GpuMetric, GpuRun, Totals};
pub use schema::{open, Access, Db, Migration, APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION};

/// The database file when neither `--db` nor `$KILN_DB` names one, relative
/// to the current folder.
pub const DEFAULT_PATH: &str = "kiln.db";

/// The environment variable naming the database when `--db` is not given.
pub const DB_ENV: &str = "KILN_DB";

/// How long a command waits for another kiln that is writing the database.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The database to use: `flag` (`--db`), else `$KILN_DB` when set and not
/// empty, else [`DEFAULT_PATH`].
pub fn db_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os(DB_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_PATH),
    }
}

/// An SQLite error on `path` as a one-line kiln error: a file that is no
/// database, or a damaged one, is bad input (exit 2) and says so.
pub(crate) fn sql_error(path: &Path, doing: &str, e: rusqlite::Error) -> KilnError {
    use rusqlite::ErrorCode;
    let code = e.sqlite_error_code();
    let what = e.to_string();
    match code {
        Some(ErrorCode::NotADatabase) => KilnError::input(
            path,
            format!("not an SQLite database ({what}): not kiln's history database, or damaged beyond repair; give another --db"),
        ),
        Some(ErrorCode::DatabaseCorrupt) => KilnError::input(
            path,
            format!("the history database is damaged ({what}) while {doing}; restore it from a copy, or re-ingest the run folders into a new one"),
        ),
        Some(ErrorCode::CannotOpen) => KilnError::output(
            path,
            format!("{what} while {doing} (does its folder exist, and may kiln write there?)"),
        ),
        Some(ErrorCode::ReadOnly) | Some(ErrorCode::PermissionDenied) => {
            KilnError::output(path, format!("{what} while {doing} (the file or its folder is read-only)"))
        }
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => KilnError::output(
            path,
            format!(
                "{what} while {doing}: another kiln held it for over {} s; try again",
                BUSY_TIMEOUT.as_secs()
            ),
        ),
        Some(ErrorCode::DiskFull) => KilnError::output(path, format!("{what} while {doing}")),
        _ => KilnError::input(path, format!("{what} while {doing}")),
    }
}

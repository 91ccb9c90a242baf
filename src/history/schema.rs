//! The history database's tables, their version and their migrations.
//!
//! The schema's version is SQLite's `PRAGMA user_version` (0 for a new,
//! empty file). [`MIGRATIONS`] lists the steps in order; step N takes a
//! database from version N-1 to N, and runs in one transaction with the
//! version's update, so a kill during a migration leaves the database at
//! the version before it. [`open`] applies the steps a database lacks, and
//! refuses a database newer than this binary (naming both versions) and an
//! SQLite file that is not kiln's (`PRAGMA application_id` is
//! [`APPLICATION_ID`] once step 1 has run).
//!
//! A new step is appended, never edited once released: databases in the
//! field are at every version.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::{sql_error, BUSY_TIMEOUT};
use crate::error::{KilnError, Result};

/// `PRAGMA application_id` of a kiln history database: "kiln" in ASCII.
pub const APPLICATION_ID: i32 = 0x6b69_6c6e;

/// One step of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The version the step leads to.
    pub version: u32,
    /// What it adds, in words (for messages).
    pub what: &'static str,
    /// The SQL, run in one transaction with `PRAGMA user_version`.
    pub sql: &'static str,
}

/// The steps, in order: `MIGRATIONS[i].version == i + 1`.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        what: "runs, devices, reason codes and metrics",
        sql: "
        PRAGMA application_id = 1802071150;
        -- One row per run: run_id is the SHA-256 of its journal's start
        -- event (host, start time, seed, devices), so the same run has the
        -- same id wherever its folder is; journal_sha256 is the digest of
        -- the whole journal when ingested (a run still going grows it).
        CREATE TABLE runs (
            run_id         TEXT PRIMARY KEY,
            host           TEXT NOT NULL,
            started_at     TEXT NOT NULL,
            finished_at    TEXT,
            profile        TEXT NOT NULL,
            kiln_version   TEXT NOT NULL,
            backend        TEXT NOT NULL,
            seed           INTEGER NOT NULL,
            complete       INTEGER NOT NULL,
            journal_sha256 TEXT NOT NULL,
            source_dir     TEXT NOT NULL,
            ingested_at    TEXT NOT NULL
        ) STRICT;
        -- One row per device of a run: its identity and verdict.
        CREATE TABLE devices (
            run_id     TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
            idx        INTEGER NOT NULL,
            model      TEXT NOT NULL,
            serial     TEXT,
            uuid       TEXT,
            pci_bus_id TEXT,
            verdict    TEXT NOT NULL
                       CHECK (verdict IN ('accept', 'reject', 'incomplete', 'untested')),
            PRIMARY KEY (run_id, idx)
        ) STRICT;
        -- The reason codes of a device's verdict, in check order.
        CREATE TABLE reasons (
            run_id TEXT NOT NULL,
            idx    INTEGER NOT NULL,
            pos    INTEGER NOT NULL,
            code   TEXT NOT NULL,
            PRIMARY KEY (run_id, idx, pos),
            FOREIGN KEY (run_id, idx) REFERENCES devices(run_id, idx) ON DELETE CASCADE
        ) STRICT;
        -- Every measurement of a device, in journal order (seq); value is
        -- NULL for a figure that was not a number.
        CREATE TABLE metrics (
            run_id   TEXT NOT NULL,
            idx      INTEGER NOT NULL,
            seq      INTEGER NOT NULL,
            workload TEXT NOT NULL,
            name     TEXT NOT NULL,
            cycle    INTEGER NOT NULL,
            value    REAL,
            unit     TEXT NOT NULL,
            PRIMARY KEY (run_id, idx, seq),
            FOREIGN KEY (run_id, idx) REFERENCES devices(run_id, idx) ON DELETE CASCADE
        ) STRICT;
        ",
    },
    Migration {
        version: 2,
        what: "each device's remedy, and look-up by serial and UUID",
        sql: "
        ALTER TABLE devices ADD COLUMN remedy TEXT;
        CREATE INDEX devices_serial ON devices(serial);
        CREATE INDEX devices_uuid ON devices(uuid);
        CREATE INDEX runs_started ON runs(started_at);
        ",
    },
];

/// The schema version this binary writes: the last step's.
pub const SCHEMA_VERSION: u32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// How [`open`] treats a file that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Create it (`kiln db ingest`).
    Create,
    /// It must exist (`kiln history`, `baseline record --from-db`).
    Existing,
}

/// An open history database at [`SCHEMA_VERSION`].
pub struct Db {
    /// The connection.
    pub conn: Connection,
    /// Its file, for messages.
    pub path: PathBuf,
    /// The version it had when opened (0: new).
    pub opened_at_version: u32,
}

/// Opens the history database at `path`, creating it with
/// [`Access::Create`], and brings it to [`SCHEMA_VERSION`].
///
/// Errors, each one line naming the file: it does not exist
/// ([`Access::Existing`]), it is a folder, its folder does not exist or is
/// not writable, it is not an SQLite database or not kiln's, or its schema
/// is newer than this binary's.
pub fn open(path: &Path, access: Access) -> Result<Db> {
    if path.is_dir() {
        return Err(KilnError::input(
            path,
            "is a folder; expected the history database file (e.g. kiln.db)",
        ));
    }
    if access == Access::Existing && !path.exists() {
        return Err(KilnError::input(
            path,
            "no history database here; `kiln db ingest DIR...` creates it (or give --db PATH, or set KILN_DB)",
        ));
    }
    if access == Access::Create && !path.exists() {
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !parent.is_dir() {
            return Err(KilnError::output(
                path,
                format!(
                    "its folder {} does not exist (kiln creates the database file, not its folder)",
                    parent.display()
                ),
            ));
        }
    }
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if access == Access::Create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn =
        Connection::open_with_flags(path, flags).map_err(|e| sql_error(path, "opening it", e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .and_then(|()| conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;"))
        .map_err(|e| sql_error(path, "opening it", e))?;
    let version = user_version(&conn, path)?;
    let app: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(|e| sql_error(path, "reading its application id", e))?;
    if version > 0 && app != APPLICATION_ID {
        return Err(KilnError::input(
            path,
            format!("an SQLite database, but not kiln's history (application_id {app:#x}, expected {APPLICATION_ID:#x}); give another --db"),
        ));
    }
    if version == 0 {
        let objects: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(|e| sql_error(path, "reading its tables", e))?;
        if objects > 0 {
            return Err(KilnError::input(
                path,
                format!("an SQLite database with {objects} table(s) or index(es) of its own and no kiln schema version: not kiln's history database; give another --db"),
            ));
        }
    }
    check_version(path, version)?;
    let mut db = Db {
        conn,
        path: path.to_path_buf(),
        opened_at_version: version,
    };
    migrate(&mut db)?;
    Ok(db)
}

/// `PRAGMA user_version`.
fn user_version(conn: &Connection, path: &Path) -> Result<u32> {
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| sql_error(path, "reading its schema version", e))?;
    u32::try_from(v).map_err(|_| {
        KilnError::input(
            path,
            format!("schema version {v} is not one kiln writes; not kiln's history database"),
        )
    })
}

/// Refuses a database newer than this binary.
fn check_version(path: &Path, version: u32) -> Result<()> {
    if version > SCHEMA_VERSION {
        return Err(KilnError::input(
            path,
            format!(
                "the history database is at schema version {version}, newer than this kiln's {SCHEMA_VERSION} (kiln {}); use a newer kiln (the database was left untouched)",
                crate::VERSION
            ),
        ));
    }
    Ok(())
}

/// Applies every step the database lacks, each in its own transaction.
fn migrate(db: &mut Db) -> Result<()> {
    if db.opened_at_version == SCHEMA_VERSION {
        return Ok(());
    }
    let path = db.path.clone();
    for m in MIGRATIONS {
        let doing = format!("migrating it to schema version {} ({})", m.version, m.what);
        let tx = db
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| sql_error(&path, &doing, e))?;
        // Read again under the write lock: another kiln may have migrated
        // it meanwhile.
        let now = user_version(&tx, &path)?;
        check_version(&path, now)?;
        if now >= m.version {
            continue;
        }
        tx.execute_batch(m.sql)
            .and_then(|()| tx.pragma_update(None, "user_version", m.version))
            .and_then(|()| tx.commit())
            .map_err(|e| sql_error(&path, &doing, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_lead_from_one_version_to_the_next_and_build_a_kiln_database() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.what);
        }
        let dir = std::env::temp_dir().join(format!("kiln-schema-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("h.db");
        let _ = std::fs::remove_file(&path);
        let db = open(&path, Access::Create).unwrap();
        assert_eq!(db.opened_at_version, 0);
        assert_eq!(user_version(&db.conn, &path).unwrap(), SCHEMA_VERSION);
        let app: i32 = db
            .conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .unwrap();
        assert_eq!(app, APPLICATION_ID);
        drop(db);
        let again = open(&path, Access::Existing).unwrap();
        assert_eq!(again.opened_at_version, SCHEMA_VERSION);
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

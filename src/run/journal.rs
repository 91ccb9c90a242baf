//! The journal: `journal.jsonl`, one JSON event per line, appended and synced
//! to disk as each measurement finishes.
//!
//! It is the run's source of truth: results.json and every other output are
//! rebuilt from it, so a run killed halfway (SIGKILL, power loss) keeps every
//! measurement that finished. A torn last line (the write the kill
//! interrupted) is skipped when reading; a bad line anywhere else is an error
//! that names the line.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::device::{BackendKind, DeviceInfo};
use crate::error::{KilnError, Result};
use crate::telemetry::Sample;
use crate::workload::{Integrity, Metric, Profile, WorkloadKind};

/// File name of the journal inside a run folder.
pub const FILE_NAME: &str = "journal.jsonl";

/// Version of the journal's event format.
pub const JOURNAL_VERSION: u32 = 1;

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// First line: what the run is.
    Start(RunHeader),
    /// A finished measurement of a device.
    Metric { device: usize, metric: Metric },
    /// A finished verification of a device.
    Integrity { device: usize, integrity: Integrity },
    /// A workload of a device finished (all its records are above).
    WorkloadDone {
        device: usize,
        workload: WorkloadKind,
        cycle: u32,
    },
    /// A workload of a device failed with a device or driver error.
    DeviceError {
        device: usize,
        workload: WorkloadKind,
        cycle: u32,
        message: String,
        /// The device is gone (fell off the bus).
        #[serde(default)]
        lost: bool,
        /// Seconds since the run started.
        #[serde(default)]
        at_s: Option<f64>,
        /// The node-state reason code when the device could not be tested
        /// for a reason outside it (`gpu_busy`, `fabric_manager_down`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node_state: Option<String>,
        /// The reason code when it is not `device_lost` or `device_error`
        /// (e.g. `ecc_uncorrectable`, from the driver's error).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
    /// When a device ran a workload, in seconds since the run started.
    Phase {
        device: usize,
        workload: WorkloadKind,
        cycle: u32,
        start_s: f64,
        end_s: f64,
        /// Device-busy seconds inside the phase: the sum of its timed
        /// windows (event-timed on GPUs); absent in journals before it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        busy_s: Option<f64>,
    },
    /// A workload could not run on this node (a library is missing); the
    /// device is judged on the others.
    Skipped {
        device: usize,
        workload: WorkloadKind,
        cycle: u32,
        reason: String,
        /// True when only part of the workload was skipped (one matmul
        /// precision, one peer pair) and the rest ran; the workload is then
        /// finished by its own WorkloadDone.
        #[serde(default)]
        partial: bool,
        /// The node-state code when the node's software is the cause
        /// (`library_missing`): the device could not be tested in full.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node_state: Option<String>,
    },
    /// The watchdog found a device hung in a workload and gave up on it.
    Hang {
        device: usize,
        workload: WorkloadKind,
        cycle: u32,
        /// Seconds since the run started.
        at_s: f64,
        message: String,
    },
    /// A reading of a device's sensors.
    Telemetry { device: usize, sample: Sample },
    /// Last line of a run that ended by itself or by Ctrl-C.
    End {
        finished_at: String,
        interrupted: bool,
        cycles: u32,
    },
}

/// What a run is: the journal's first line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunHeader {
    /// Version of the journal format.
    pub journal_version: u32,
    /// kiln's version.
    pub kiln_version: String,
    /// The node's name (`--node-name`, by default the host name).
    pub host: String,
    /// RFC 3339 UTC start time.
    pub started_at: String,
    /// Profile run.
    pub profile: Profile,
    /// Backend used.
    pub backend: BackendKind,
    /// Seed of the inputs.
    pub seed: u64,
    /// Burn-in duration in seconds, when a burn-in.
    pub duration_s: Option<f64>,
    /// Workload families planned, in order.
    pub workloads: Vec<WorkloadKind>,
    /// Devices tested.
    pub devices: Vec<DeviceInfo>,
    /// Notes for the reader (e.g. why `auto` fell back to the CPU).
    pub notes: Vec<String>,
    /// Who ran the test (`--operator`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// Asset or rack tag of the node (`--asset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// NVIDIA driver version (CUDA runs with NVML).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// CUDA version the driver supports (CUDA runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda: Option<String>,
}

/// Appends events to a journal, syncing each to disk.
pub struct JournalWriter {
    file: File,
    path: PathBuf,
}

impl JournalWriter {
    /// Creates `dir/journal.jsonl`; fails if it already exists, so an earlier
    /// run is never overwritten.
    pub fn create(dir: &Path) -> Result<Self> {
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    KilnError::Usage(format!(
                        "{} already holds a run ({FILE_NAME} exists); choose another --out",
                        dir.display()
                    ))
                } else {
                    KilnError::output(&path, e)
                }
            })?;
        Ok(JournalWriter { file, path })
    }

    /// Appends one event and syncs it to disk.
    pub fn append(&mut self, event: &Event) -> Result<()> {
        let mut line =
            serde_json::to_string(event).map_err(|e| KilnError::output(&self.path, e))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|e| KilnError::output(&self.path, e))
    }
}

/// A journal read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Journal {
    /// Every event, in order.
    pub events: Vec<Event>,
    /// Set when the last line was torn and skipped.
    pub torn_tail: bool,
    /// Lines (1-based) before the last that could not be read and were
    /// skipped, each with the device it names when that can be told
    /// (None: unknown, so any device's data may be missing).
    pub damaged: Vec<(usize, Option<usize>)>,
}

/// The device a damaged line names (`"device":N`), if its text still says.
fn device_of(line: &str) -> Option<usize> {
    let at = line.find("\"device\":")? + "\"device\":".len();
    let digits: String = line[at..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Reads `dir/journal.jsonl`.
pub fn read(dir: &Path) -> Result<Journal> {
    let path = dir.join(FILE_NAME);
    let file = File::open(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            KilnError::input(
                &path,
                format!(
                    "no journal here; expected the folder of a kiln run ({FILE_NAME} is missing)"
                ),
            )
        } else {
            KilnError::input(&path, e.to_string())
        }
    })?;
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<std::io::Result<_>>()
        .map_err(|e| KilnError::input(&path, e.to_string()))?;
    let last = lines.iter().rposition(|l| !l.trim().is_empty());
    let mut events = Vec::new();
    let mut torn_tail = false;
    let mut damaged = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(line) {
            Ok(e) => events.push(e),
            // The last line, whatever its last character: a write cut short
            // by a kill (a line cut just after a nested object ends in '}'
            // too).
            Err(_) if Some(i) == last => torn_tail = true,
            // The run's header: without it there is nothing to judge.
            Err(e) if events.is_empty() => {
                return Err(KilnError::input(
                    &path,
                    format!("line {}: not a kiln journal event: {e}", i + 1),
                ))
            }
            // Damage inside the file: skipped and reported, never a reason
            // to refuse the whole run.
            Err(_) => damaged.push((i + 1, device_of(line))),
        }
    }
    match events.first() {
        Some(Event::Start(h)) if h.journal_version == JOURNAL_VERSION => {}
        Some(Event::Start(h)) => {
            return Err(KilnError::input(
                &path,
                format!(
                    "line 1: journal version {} is not supported by kiln {} (expected {JOURNAL_VERSION})",
                    h.journal_version,
                    crate::VERSION
                ),
            ))
        }
        _ => {
            return Err(KilnError::input(
                &path,
                "line 1: expected the run's start event; the journal is empty or not kiln's",
            ))
        }
    }
    Ok(Journal {
        events,
        torn_tail,
        damaged,
    })
}

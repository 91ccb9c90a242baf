//! A run, rebuilt from its journal.
//!
//! `kiln run` and `kiln report` both come through here, so a finished run, a
//! run stopped by Ctrl-C and a run killed halfway are read the same way.

use std::path::Path;

use crate::device::{BackendKind, DeviceInfo};
use crate::error::Result;
use crate::run::journal::{self, Event, RunHeader};
use crate::telemetry::Sample;
use crate::workload::{Integrity, Metric, WorkloadKind};

/// A device or driver failure during a workload.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeviceFailure {
    /// The workload that failed.
    pub workload: WorkloadKind,
    /// Burn-in cycle.
    pub cycle: u32,
    /// What the device or driver said.
    pub message: String,
    /// The device is gone (fell off the bus).
    pub lost: bool,
}

/// A workload the watchdog found hung.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HangRecord {
    /// The workload that never finished.
    pub workload: WorkloadKind,
    /// Burn-in cycle.
    pub cycle: u32,
    /// Seconds into the run when the watchdog gave up.
    pub at_s: f64,
    /// What the watchdog saw.
    pub message: String,
}

/// Everything one device produced.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRun {
    /// Identity.
    pub info: DeviceInfo,
    /// Finished measurements, in journal order.
    pub metrics: Vec<Metric>,
    /// Finished verifications, in journal order.
    pub integrity: Vec<Integrity>,
    /// Device or driver failures.
    pub failures: Vec<DeviceFailure>,
    /// (workload, cycle) pairs that finished.
    pub done: Vec<(WorkloadKind, u32)>,
    /// Workloads the watchdog found hung.
    pub hangs: Vec<HangRecord>,
    /// Sensor readings, in time order.
    pub telemetry: Vec<Sample>,
}

impl DeviceRun {
    /// True when every planned workload finished in every cycle of the run.
    pub fn finished_all(&self, planned: &[WorkloadKind], cycles: u32) -> bool {
        (0..cycles.max(1)).all(|c| planned.iter().all(|w| self.done.contains(&(*w, c))))
    }
}

/// A whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResults {
    /// The journal's start event.
    pub header: RunHeader,
    /// End time, when the run reached its end (normally or by Ctrl-C).
    pub finished_at: Option<String>,
    /// True when the run was stopped by the user.
    pub interrupted: bool,
    /// Burn-in cycles run (1 for other profiles).
    pub cycles: u32,
    /// One entry per tested device, in index order.
    pub devices: Vec<DeviceRun>,
    /// True when the journal's last line was torn (the run was killed).
    pub torn_tail: bool,
}

impl RunResults {
    /// True when the run ended by itself and every device finished every
    /// planned workload.
    pub fn complete(&self) -> bool {
        self.finished_at.is_some()
            && !self.interrupted
            && self
                .devices
                .iter()
                .all(|d| d.finished_all(&self.header.workloads, self.cycles))
    }

    /// The backend of the run.
    pub fn backend(&self) -> BackendKind {
        self.header.backend
    }

    /// True when the devices are simulated.
    pub fn simulated(&self) -> bool {
        self.header.backend == BackendKind::Sim
    }
}

/// Reads the run in `dir`.
pub fn load(dir: &Path) -> Result<RunResults> {
    from_journal(journal::read(dir)?)
}

/// Builds a run from journal events (the first must be the start event).
pub fn from_journal(j: journal::Journal) -> Result<RunResults> {
    let mut events = j.events.into_iter();
    let header = match events.next() {
        Some(Event::Start(h)) => h,
        _ => unreachable!("journal::read checks the first event"),
    };
    let mut devices: Vec<DeviceRun> = header
        .devices
        .iter()
        .map(|info| DeviceRun {
            info: info.clone(),
            metrics: Vec::new(),
            integrity: Vec::new(),
            failures: Vec::new(),
            done: Vec::new(),
            hangs: Vec::new(),
            telemetry: Vec::new(),
        })
        .collect();
    let mut finished_at = None;
    let mut interrupted = false;
    let mut cycles = 0;
    let slot = |devices: &mut Vec<DeviceRun>, index: usize| {
        devices.iter().position(|d| d.info.index == index)
    };
    for e in events {
        match e {
            Event::Start(_) => {}
            Event::Metric { device, metric } => {
                if let Some(s) = slot(&mut devices, device) {
                    devices[s].metrics.push(metric);
                }
            }
            Event::Integrity { device, integrity } => {
                if let Some(s) = slot(&mut devices, device) {
                    devices[s].integrity.push(integrity);
                }
            }
            Event::WorkloadDone {
                device,
                workload,
                cycle,
            } => {
                cycles = cycles.max(cycle + 1);
                if let Some(s) = slot(&mut devices, device) {
                    devices[s].done.push((workload, cycle));
                }
            }
            Event::DeviceError {
                device,
                workload,
                cycle,
                message,
                lost,
            } => {
                if let Some(s) = slot(&mut devices, device) {
                    devices[s].failures.push(DeviceFailure {
                        workload,
                        cycle,
                        message,
                        lost,
                    });
                }
            }
            Event::Hang {
                device,
                workload,
                cycle,
                at_s,
                message,
            } => {
                if let Some(s) = slot(&mut devices, device) {
                    devices[s].hangs.push(HangRecord {
                        workload,
                        cycle,
                        at_s,
                        message,
                    });
                }
            }
            Event::Telemetry { device, sample } => {
                if let Some(s) = slot(&mut devices, device) {
                    devices[s].telemetry.push(sample);
                }
            }
            Event::End {
                finished_at: f,
                interrupted: i,
                cycles: c,
            } => {
                finished_at = Some(f);
                interrupted = i;
                cycles = cycles.max(c);
            }
        }
    }
    Ok(RunResults {
        header,
        finished_at,
        interrupted,
        cycles: cycles.max(1),
        devices,
        torn_tail: j.torn_tail,
    })
}

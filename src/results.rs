//! A run, rebuilt from its journal.
//!
//! `kiln run` and `kiln report` both come through here, so a finished run, a
//! run stopped by Ctrl-C and a run killed halfway are read the same way.
//!
//! Layer: above `run` (whose journal it reads) and every layer below it; below
//! `verdict`, `output` and `commands`, which it must not import
//! (tests/layers.rs checks it).

use std::path::Path;

use crate::device::{BackendKind, DeviceInfo};
use crate::error::{KilnError, Result};
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
    /// Seconds into the run.
    pub at_s: Option<f64>,
    /// The node-state reason code when the device could not be tested for
    /// a reason outside it.
    pub node_state: Option<String>,
    /// The reason code when the error names one (`ecc_uncorrectable`);
    /// otherwise `device_lost` or `device_error` by `lost`.
    pub code: Option<String>,
}

/// When a device ran a workload.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PhaseWindow {
    /// The workload.
    pub workload: WorkloadKind,
    /// Burn-in cycle.
    pub cycle: u32,
    /// Start, seconds since the run started.
    pub start_s: f64,
    /// End, seconds since the run started.
    pub end_s: f64,
    /// Device-busy seconds inside the phase (its timed windows); `None`
    /// for journals written before kiln recorded it.
    pub busy_s: Option<f64>,
}

impl PhaseWindow {
    /// The duty cycle: device-busy time over the phase's wall time, 0 to 1.
    /// Busy time counts each timed window once (a window that repeats a
    /// short launch counts one launch), so it never overstates the load.
    pub fn duty_cycle(&self) -> Option<f64> {
        let wall = self.end_s - self.start_s;
        let busy = self.busy_s?;
        (wall > 0.0 && busy.is_finite()).then(|| (busy / wall).clamp(0.0, 1.0))
    }
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
    /// When each workload ran.
    pub phases: Vec<PhaseWindow>,
    /// Workloads skipped because they cannot run on this node, with why.
    pub skipped: Vec<(WorkloadKind, String)>,
    /// Of those, the ones whose cause is the node's software (workload,
    /// node-state code such as `library_missing`, the first message): the
    /// device could not be tested in full.
    pub node_skips: Vec<(WorkloadKind, String, String)>,
    /// Lines of the journal that may have held this device's data could
    /// not be read: what it finished cannot be known, so it is incomplete
    /// (unless a rule already rejected it).
    pub damaged: bool,
}

impl DeviceRun {
    /// A device that produced nothing yet, for unit tests of the rules.
    #[cfg(test)]
    pub(crate) fn blank() -> Self {
        DeviceRun {
            info: DeviceInfo {
                index: 0,
                name: "GPU".into(),
                uuid: None,
                serial: None,
                pci_bus_id: None,
                pci_device_id: None,
                memory_bytes: 0,
                compute_units: 1,
                backend: crate::device::BackendKind::Sim,
                simulated: true,
            },
            damaged: false,
            metrics: Vec::new(),
            integrity: Vec::new(),
            failures: Vec::new(),
            done: Vec::new(),
            hangs: Vec::new(),
            telemetry: Vec::new(),
            phases: Vec::new(),
            skipped: Vec::new(),
            node_skips: Vec::new(),
        }
    }

    /// When `workload` of `cycle` ended, in seconds since the run started.
    pub fn phase_end(&self, workload: WorkloadKind, cycle: u32) -> Option<f64> {
        self.phases
            .iter()
            .find(|p| p.workload == workload && p.cycle == cycle)
            .map(|p| p.end_s)
    }
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
    /// Lines (1-based) inside the journal that could not be read and were
    /// skipped.
    pub damaged_lines: Vec<usize>,
}

impl RunResults {
    /// "journal damaged: lines 12, 40 unreadable", when lines were.
    pub fn damage_note(&self) -> Option<String> {
        if self.damaged_lines.is_empty() {
            return None;
        }
        let lines: Vec<String> = self.damaged_lines.iter().map(|l| l.to_string()).collect();
        Some(format!(
            "journal damaged: line{} {} unreadable (skipped); the devices whose data may have been there are incomplete unless a rule rejected them",
            if lines.len() == 1 { "" } else { "s" },
            lines.join(", ")
        ))
    }
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

    /// True when the devices are simulated: the sim backend, or virtual
    /// GPUs (vgpu) behind the CUDA backend.
    pub fn simulated(&self) -> bool {
        self.header.backend == BackendKind::Sim || self.virtual_gpus()
    }

    /// True when the CUDA devices are virtual GPUs (vgpu: kernels run in a
    /// PTX interpreter, figures come from its timing model).
    pub fn virtual_gpus(&self) -> bool {
        self.header.backend == BackendKind::Cuda && self.devices.iter().any(|d| d.info.simulated)
    }

    /// One sentence on where a simulated run's figures come from.
    pub fn simulated_source(&self) -> &'static str {
        if self.virtual_gpus() {
            "performance figures come from the virtual GPU's timing model (vgpu), not from hardware; kiln's real CUDA path and kernels ran, in a PTX interpreter, and every verification ran for real on small data"
        } else {
            "performance figures come from the sim backend's model, not from hardware; verifications ran for real on small data"
        }
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
            phases: Vec::new(),
            skipped: Vec::new(),
            node_skips: Vec::new(),
            damaged: false,
        })
        .collect();
    for (_, dev) in &j.damaged {
        for d in devices.iter_mut() {
            if dev.is_none_or(|i| i == d.info.index) {
                d.damaged = true;
            }
        }
    }
    let damaged_lines: Vec<usize> = j.damaged.iter().map(|(l, _)| *l).collect();
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
                at_s,
                node_state,
                code,
            } => {
                if let Some(s) = slot(&mut devices, device) {
                    devices[s].failures.push(DeviceFailure {
                        workload,
                        cycle,
                        message,
                        lost,
                        at_s,
                        node_state,
                        code,
                    });
                }
            }
            Event::Skipped {
                device,
                workload,
                cycle,
                reason,
                partial,
                node_state,
            } => {
                cycles = cycles.max(cycle + 1);
                if let Some(s) = slot(&mut devices, device) {
                    if let Some(code) = node_state {
                        let known = devices[s]
                            .node_skips
                            .iter()
                            .any(|(w, c, _)| *w == workload && *c == code);
                        if !known {
                            devices[s].node_skips.push((workload, code, reason.clone()));
                        }
                    }
                    // A skipped workload is done: it cannot run here. A
                    // partly skipped one is done when it says so.
                    if !partial {
                        devices[s].done.push((workload, cycle));
                    }
                    let known = devices[s]
                        .skipped
                        .iter()
                        .any(|(w, r)| *w == workload && (*r == reason || !partial));
                    if !known {
                        devices[s].skipped.push((workload, reason));
                    }
                }
            }
            Event::Phase {
                device,
                workload,
                cycle,
                start_s,
                end_s,
                busy_s,
            } => {
                if let Some(s) = slot(&mut devices, device) {
                    devices[s].phases.push(PhaseWindow {
                        workload,
                        cycle,
                        start_s,
                        end_s,
                        busy_s,
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
        damaged_lines,
    })
}

/// Minimum, median and maximum of a sensor over a phase.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Range {
    /// Lowest reading.
    pub min: f64,
    /// Median reading.
    pub median: f64,
    /// Highest reading.
    pub max: f64,
}

/// What the sensors said while a device ran one workload.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PhaseTelemetry {
    /// The workload.
    pub workload: WorkloadKind,
    /// Burn-in cycle.
    pub cycle: u32,
    /// Start and end, seconds since the run started.
    pub start_s: f64,
    /// End, seconds since the run started.
    pub end_s: f64,
    /// Samples taken during the phase.
    pub samples: usize,
    /// GPU temperature, C.
    pub gpu_temp_c: Option<Range>,
    /// Power draw, W.
    pub power_w: Option<Range>,
    /// SM (core) clock, MHz.
    pub sm_clock_mhz: Option<Range>,
    /// Enforced power limit, W (the highest seen in the phase).
    pub power_limit_w: Option<f64>,
    /// Device-busy seconds (timed windows) over wall seconds, 0 to 1;
    /// `None` on simulated and virtual GPUs, whose time is modelled.
    pub duty_cycle: Option<f64>,
    /// Seconds spent with each throttle reason active (a sample's reasons
    /// count until the next sample).
    pub throttled_s: std::collections::BTreeMap<String, f64>,
}

fn range(values: Vec<f64>) -> Option<Range> {
    let s = crate::stats::summarize(&values)?;
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some(Range {
        min,
        median: s.median,
        max,
    })
}

/// How hard a device worked in one workload, over all its phases (burn-in
/// cycles): the power reached, the clocks held and the duty cycle.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorkloadLoad {
    /// The workload.
    pub workload: WorkloadKind,
    /// Highest power reading inside its phases, W.
    pub power_max_w: Option<f64>,
    /// Enforced power limit, W.
    pub power_limit_w: Option<f64>,
    /// `power_max_w` over `power_limit_w`, 0 to 1.
    pub power_fraction: Option<f64>,
    /// Median SM clock over the readings inside its phases, MHz.
    pub sm_clock_median_mhz: Option<f64>,
    /// Device-busy seconds over wall seconds of its phases, 0 to 1; `None`
    /// on simulated and virtual GPUs, whose time is modelled.
    pub duty_cycle: Option<f64>,
}

impl DeviceRun {
    /// The phases whose workload finished without a device failure: the
    /// windows in which the device really worked (a workload that failed at
    /// once, e.g. on a GPU busy elsewhere, still has a short window).
    pub fn worked_phases(&self) -> impl Iterator<Item = &PhaseWindow> {
        self.phases.iter().filter(|p| {
            self.done.contains(&(p.workload, p.cycle))
                && !self
                    .failures
                    .iter()
                    .any(|f| f.workload == p.workload && f.cycle == p.cycle)
        })
    }

    /// Per workload, in the order first run: the power reached, the clocks
    /// held and the duty cycle, over the phases in which the device worked
    /// ([`DeviceRun::worked_phases`]): a workload that failed at once (a
    /// GPU that could not be tested, one lost) loaded nothing to report.
    pub fn load_by_workload(&self) -> Vec<WorkloadLoad> {
        let mut order: Vec<WorkloadKind> = Vec::new();
        for p in self.worked_phases() {
            if !order.contains(&p.workload) {
                order.push(p.workload);
            }
        }
        order
            .into_iter()
            .map(|w| {
                let phases: Vec<&PhaseWindow> =
                    self.worked_phases().filter(|p| p.workload == w).collect();
                let inside: Vec<&Sample> = self
                    .telemetry
                    .iter()
                    .filter(|s| {
                        phases
                            .iter()
                            .any(|p| p.start_s <= s.t_s && s.t_s <= p.end_s)
                    })
                    .collect();
                let power_max_w = inside.iter().filter_map(|s| s.power_w).reduce(f64::max);
                let power_limit_w = inside
                    .iter()
                    .filter_map(|s| s.power_limit_w)
                    .reduce(f64::max);
                let clocks: Vec<f64> = inside.iter().filter_map(|s| s.sm_clock_mhz).collect();
                let (busy, wall) = phases.iter().fold((0.0, 0.0), |(b, t), p| {
                    let wall = (p.end_s - p.start_s).max(0.0);
                    (b + p.busy_s.unwrap_or(f64::NAN).min(wall), t + wall)
                });
                WorkloadLoad {
                    workload: w,
                    power_max_w,
                    power_limit_w,
                    power_fraction: match (power_max_w, power_limit_w) {
                        (Some(p), Some(l)) if l > 0.0 => Some(p / l),
                        _ => None,
                    },
                    sm_clock_median_mhz: crate::stats::median(&clocks),
                    duty_cycle: (!self.info.simulated && wall > 0.0 && busy.is_finite())
                        .then(|| (busy / wall).clamp(0.0, 1.0)),
                }
            })
            .collect()
    }

    /// The telemetry of each phase, summarised.
    pub fn phase_telemetry(&self) -> Vec<PhaseTelemetry> {
        let t = &self.telemetry;
        self.phases
            .iter()
            .map(|p| {
                let inside: Vec<usize> = (0..t.len())
                    .filter(|&i| t[i].t_s >= p.start_s && t[i].t_s <= p.end_s)
                    .collect();
                let pick = |f: fn(&Sample) -> Option<f64>| {
                    range(inside.iter().filter_map(|&i| f(&t[i])).collect())
                };
                let mut throttled_s = std::collections::BTreeMap::new();
                for &i in &inside {
                    let until = t.get(i + 1).map_or(p.end_s, |n| n.t_s.min(p.end_s));
                    for r in &t[i].throttle {
                        *throttled_s.entry(r.clone()).or_insert(0.0) += (until - t[i].t_s).max(0.0);
                    }
                }
                PhaseTelemetry {
                    workload: p.workload,
                    cycle: p.cycle,
                    start_s: p.start_s,
                    end_s: p.end_s,
                    samples: inside.len(),
                    gpu_temp_c: pick(|s| s.gpu_temp_c),
                    power_w: pick(|s| s.power_w),
                    sm_clock_mhz: pick(|s| s.sm_clock_mhz),
                    power_limit_w: inside
                        .iter()
                        .filter_map(|&i| t[i].power_limit_w)
                        .reduce(f64::max),
                    // A simulated or virtual GPU's time is modelled, so
                    // its busy time over real wall time means nothing.
                    duty_cycle: if self.info.simulated {
                        None
                    } else {
                        p.duty_cycle()
                    },
                    throttled_s,
                }
            })
            .collect()
    }
}

/// Fails unless `dir` exists and is a folder, in the words every command
/// that reads run folders uses.
pub fn check_folder(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Err(KilnError::input(
            dir,
            "does not exist; expected the folder of a kiln run (the --out of `kiln run`)",
        ));
    }
    if !dir.is_dir() {
        return Err(KilnError::input(
            dir,
            "not a folder; expected the folder of a kiln run (the --out of `kiln run`)",
        ));
    }
    Ok(())
}

//! The runner: every selected device in its own thread, each workload phase
//! started on all devices together (a real burn-in loads the whole node at
//! once), every record journaled the moment it is known.
//!
//! Device threads never write files: they send records over a channel to the
//! calling thread, which owns the journal and the progress display.

pub mod journal;
pub mod progress;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Barrier;
use std::time::{Instant, SystemTime};

use crate::device::{BackendKind, Device, Discovery};
use crate::error::{KilnError, Result};
use crate::plan::Plan;
use crate::workload::{self, Context, Record, WorkloadError, WorkloadKind, WorkloadSpec};
use journal::{Event, JournalWriter, RunHeader, JOURNAL_VERSION};
use progress::Progress;

/// RFC 3339 UTC time, to the second.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Picks the devices `plan` selects from `discovery`.
pub fn select(plan: &Plan, discovery: Discovery) -> Result<Vec<Box<dyn Device>>> {
    let Discovery {
        backend, devices, ..
    } = discovery;
    if devices.is_empty() {
        return Err(KilnError::NoDevice(format!(
            "the {backend} backend found no device"
        )));
    }
    let Some(wanted) = &plan.devices else {
        return Ok(devices);
    };
    let count = devices.len();
    if let Some(bad) = wanted.iter().find(|&&i| i >= count) {
        return Err(KilnError::Usage(format!(
            "--devices: there is no device {bad}; the {backend} backend has {} (see `kiln list --backend {backend}`)",
            if count == 1 { "only device 0".to_string() } else { format!("devices 0 to {}", count - 1) }
        )));
    }
    Ok(devices
        .into_iter()
        .filter(|d| wanted.contains(&d.info().index))
        .collect())
}

/// Makes sure the output folder exists and can take a new run.
pub fn prepare_out(plan: &Plan) -> Result<JournalWriter> {
    std::fs::create_dir_all(&plan.out).map_err(|e| KilnError::output(&plan.out, e))?;
    JournalWriter::create(&plan.out)
}

enum Msg {
    Event(usize, Event),
    Started {
        slot: usize,
        cycle: u32,
        step: usize,
        workload: WorkloadKind,
    },
    Progress {
        slot: usize,
        cycle: u32,
        step: usize,
        fraction: f64,
        label: String,
    },
}

/// Keeps the device threads in step: every phase starts on all of them
/// together, and they agree on whether to start it at all.
struct PhaseSync {
    barrier: Barrier,
    go: AtomicBool,
}

impl PhaseSync {
    fn decide(&self, decide: impl FnOnce() -> bool) -> bool {
        if self.barrier.wait().is_leader() {
            self.go.store(decide(), Ordering::SeqCst);
        }
        self.barrier.wait();
        self.go.load(Ordering::SeqCst)
    }
}

/// What the journal says about a run besides the plan.
#[derive(Debug, Clone)]
pub struct About {
    /// The backend the devices belong to.
    pub backend: BackendKind,
    /// Host name of the node.
    pub host: String,
    /// Notes for the reader (e.g. why `auto` fell back to the CPU).
    pub notes: Vec<String>,
    /// No progress output at all (library use and tests).
    pub quiet: bool,
}

/// Runs `plan` on `devices`, journaling into the plan's output folder.
/// Returns the folder. `stop` ends the run early (Ctrl-C).
pub fn execute(
    plan: &Plan,
    mut journal: JournalWriter,
    mut devices: Vec<Box<dyn Device>>,
    about: About,
    stop: &AtomicBool,
) -> Result<PathBuf> {
    let About {
        backend,
        host,
        notes,
        quiet,
    } = about;
    let infos: Vec<_> = devices.iter().map(|d| d.info().clone()).collect();
    journal.append(&Event::Start(RunHeader {
        journal_version: JOURNAL_VERSION,
        kiln_version: crate::VERSION.to_string(),
        host,
        started_at: timestamp(SystemTime::now()),
        profile: plan.profile,
        backend,
        seed: plan.seed,
        duration_s: plan.duration.map(|d| d.as_secs_f64()),
        workloads: plan.workloads.clone(),
        devices: infos.clone(),
        notes,
    }))?;
    let progress = if quiet {
        Progress::Silent
    } else {
        Progress::new(&infos, plan.workloads.len())
    };
    let sync = PhaseSync {
        barrier: Barrier::new(devices.len()),
        go: AtomicBool::new(false),
    };
    let started = Instant::now();
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut write_error = None;
    let mut cycles = 0u32;
    std::thread::scope(|s| {
        for (slot, device) in devices.iter_mut().enumerate() {
            let tx = tx.clone();
            let sync = &sync;
            s.spawn(move || device_thread(slot, device.as_mut(), plan, sync, started, stop, &tx));
        }
        drop(tx);
        for msg in rx {
            match msg {
                Msg::Started {
                    slot,
                    cycle,
                    step,
                    workload,
                } => {
                    progress.started(slot, cycle, workload);
                    progress.update(slot, cycle, step, 0.0, workload.name());
                }
                Msg::Progress {
                    slot,
                    cycle,
                    step,
                    fraction,
                    label,
                } => progress.update(slot, cycle, step, fraction, &label),
                Msg::Event(slot, event) => {
                    match &event {
                        Event::Metric { metric, .. } => progress.metric(slot, metric),
                        Event::Integrity { integrity, .. } if integrity.errors > 0 => progress
                            .warn(
                                slot,
                                &format!(
                                    "{}: {} errors: {}",
                                    integrity.check, integrity.errors, integrity.detail
                                ),
                            ),
                        Event::DeviceError {
                            workload, message, ..
                        } => progress.warn(slot, &format!("{workload} failed: {message}")),
                        Event::WorkloadDone { cycle, .. } => cycles = cycles.max(cycle + 1),
                        _ => {}
                    }
                    if write_error.is_none() {
                        if let Err(e) = journal.append(&event) {
                            // Without a journal nothing can be kept: stop.
                            stop.store(true, Ordering::SeqCst);
                            write_error = Some(e);
                        }
                    }
                }
            }
        }
    });
    progress.finish();
    if let Some(e) = write_error {
        return Err(e);
    }
    journal.append(&Event::End {
        finished_at: timestamp(SystemTime::now()),
        interrupted: stop.load(Ordering::SeqCst),
        cycles,
    })?;
    Ok(plan.out.clone())
}

fn device_thread(
    slot: usize,
    device: &mut dyn Device,
    plan: &Plan,
    sync: &PhaseSync,
    started: Instant,
    stop: &AtomicBool,
    tx: &mpsc::Sender<Msg>,
) {
    let index = device.info().index;
    let send = |e: Event| {
        // The receiver lives until every device thread is done.
        let _ = tx.send(Msg::Event(slot, e));
    };
    let mut cycle = 0u32;
    loop {
        let more = sync.decide(|| {
            !stop.load(Ordering::SeqCst)
                && match plan.duration {
                    None => cycle == 0,
                    Some(d) => cycle == 0 || started.elapsed() < d,
                }
        });
        if !more {
            break;
        }
        for (step, &kind) in plan.workloads.iter().enumerate() {
            if !sync.decide(|| !stop.load(Ordering::SeqCst)) {
                return;
            }
            let spec = WorkloadSpec::for_device(kind, plan.profile, device.info());
            let _ = tx.send(Msg::Started {
                slot,
                cycle,
                step,
                workload: kind,
            });
            let mut sink = |r: Record| match r {
                Record::Metric(metric) => send(Event::Metric {
                    device: index,
                    metric,
                }),
                Record::Integrity(integrity) => send(Event::Integrity {
                    device: index,
                    integrity,
                }),
            };
            let mut report = |fraction: f64, label: &str| {
                let _ = tx.send(Msg::Progress {
                    slot,
                    cycle,
                    step,
                    fraction,
                    label: label.to_string(),
                });
            };
            let mut ctx = Context {
                stop,
                sink: &mut sink,
                progress: &mut report,
                cycle,
                seed: plan.seed,
            };
            match workload::execute(device, &spec, &mut ctx) {
                Ok(()) => send(Event::WorkloadDone {
                    device: index,
                    workload: kind,
                    cycle,
                }),
                Err(WorkloadError::Interrupted) => {}
                Err(WorkloadError::Device(e)) => send(Event::DeviceError {
                    device: index,
                    workload: kind,
                    cycle,
                    message: e.to_string(),
                }),
            }
        }
        cycle += 1;
    }
}

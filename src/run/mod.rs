//! The runner: every selected device in its own thread, each workload phase
//! started on all devices together (a real burn-in loads the whole node at
//! once), every record journaled the moment it is known.
//!
//! Device threads never write files: they send records over a channel to the
//! calling thread (the coordinator), which owns the journal, the progress
//! display, the telemetry sampling and the watchdog.
//!
//! The watchdog: a device is hung when it has not finished a workload
//! [`WATCHDOG_MIN`] and [`WATCHDOG_FACTOR`] times after the slowest of its
//! peers took to finish the same workload, or, when no peer has finished it,
//! after a per-profile ceiling ([`ceiling`]). A hung device is journaled as
//! such, dropped from the phase gate so the others carry on, and its thread
//! is abandoned (a hung GPU kernel cannot be cancelled from the host).
//!
//! Layer: above `plan`, `workload`, `device` and the layers below them; below
//! `results`, `verdict`, `output` and `commands`, which it must not import
//! (tests/layers.rs checks it).

pub mod gate;
pub mod journal;
pub mod progress;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use crate::device::{BackendKind, Device, Discovery};
use crate::error::{KilnError, Result};
use crate::plan::Plan;
use crate::telemetry::Sensor;
use crate::workload::{self, Context, Profile, Record, WorkloadError, WorkloadKind, WorkloadSpec};
use gate::{Gate, Phase};
use journal::{Event, JournalWriter, RunHeader, JOURNAL_VERSION};
use progress::Progress;

/// Shortest time a device may lag its peers on a workload before it is hung.
pub const WATCHDOG_MIN: Duration = Duration::from_secs(20);

/// How many times the slowest peer's time a device may take on a workload.
pub const WATCHDOG_FACTOR: u32 = 5;

/// The longest one workload may take when no peer has finished it.
pub fn ceiling(profile: Profile) -> Duration {
    match profile {
        Profile::Quick => Duration::from_secs(10 * 60),
        Profile::Standard | Profile::Burnin => Duration::from_secs(30 * 60),
    }
}

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
            if count == 1 {
                "only device 0".to_string()
            } else {
                format!("devices 0 to {}", count - 1)
            }
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

/// What the journal says about a run besides the plan.
#[derive(Debug, Clone)]
pub struct About {
    /// The backend the devices belong to.
    pub backend: BackendKind,
    /// The node's name (`--node-name`, by default the host name).
    pub host: String,
    /// Notes for the reader (e.g. why `auto` fell back to the CPU).
    pub notes: Vec<String>,
    /// No progress output at all (library use and tests).
    pub quiet: bool,
    /// Who ran the test.
    pub operator: Option<String>,
    /// Asset or rack tag of the node.
    pub asset: Option<String>,
    /// NVIDIA driver version.
    pub driver: Option<String>,
    /// CUDA version the driver supports.
    pub cuda: Option<String>,
}

enum Msg {
    Event(usize, Box<Event>),
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
    Finished {
        slot: usize,
        cycle: u32,
        step: usize,
        /// Device-busy seconds of the workload (its timed windows).
        busy_s: f64,
    },
    Exit(usize),
}

/// What the coordinator knows about one device thread.
struct Slot {
    index: usize,
    sensor: Option<Arc<dyn Sensor>>,
    running: Option<(u32, usize, WorkloadKind, Instant)>,
    /// (cycle, step) -> time taken, for the watchdog.
    took: Vec<((u32, usize), Duration)>,
    abandoned: bool,
    exited: bool,
}

/// Runs `plan` on `devices`, journaling into the plan's output folder.
/// Returns the folder. `stop` ends the run early (Ctrl-C).
pub fn execute(
    plan: &Plan,
    mut journal: JournalWriter,
    devices: Vec<Box<dyn Device>>,
    about: About,
    stop: Arc<AtomicBool>,
) -> Result<PathBuf> {
    let About {
        backend,
        host,
        notes,
        quiet,
        operator,
        asset,
        driver,
        cuda,
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
        operator,
        asset,
        driver,
        cuda,
    }))?;
    let progress = if quiet {
        Progress::Silent
    } else {
        Progress::new(&infos, plan.workloads.len())
    };
    let started = Instant::now();
    let gate = Arc::new(Gate::new(devices.len(), stop.clone(), plan.duration));
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut slots: Vec<Slot> = devices
        .iter()
        .map(|d| Slot {
            index: d.info().index,
            sensor: d.sensor(),
            running: None,
            took: Vec::new(),
            abandoned: false,
            exited: false,
        })
        .collect();
    let mut state = Coordinator {
        journal: &mut journal,
        write_error: None,
        cycles: 0,
        stop: &stop,
    };
    state.sample_all(&slots, started);
    // The peers of the transfers: the devices that can run work (a GPU seen
    // only on the PCI bus has no CUDA ordinal to copy to).
    let members: Vec<usize> = devices
        .iter()
        .filter(|d| d.untestable().is_none())
        .map(|d| d.info().index)
        .collect();
    for (slot, device) in devices.into_iter().enumerate() {
        let members = members.clone();
        let tx = tx.clone();
        let gate = gate.clone();
        let plan = plan.clone();
        let stop = stop.clone();
        // Not joined: a hung device's thread is abandoned (see module docs).
        std::thread::spawn(move || {
            device_thread(slot, device, &plan, &members, &gate, &stop, &tx);
            let _ = tx.send(Msg::Exit(slot));
        });
    }
    drop(tx);
    let mut last_sample = Instant::now();
    while slots.iter().any(|s| !s.exited && !s.abandoned) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(msg) => state.handle(msg, &mut slots, &progress, started),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if last_sample.elapsed() >= plan.sample_interval {
            last_sample = Instant::now();
            state.sample_all(&slots, started);
        }
        state.watchdog(&mut slots, &gate, plan.profile, started, &progress);
    }
    progress.finish();
    state.sample_all(&slots, started);
    if let Some(e) = state.write_error.take() {
        return Err(e);
    }
    let cycles = state.cycles;
    journal.append(&Event::End {
        finished_at: timestamp(SystemTime::now()),
        interrupted: stop.load(Ordering::SeqCst),
        cycles,
    })?;
    Ok(plan.out.clone())
}

struct Coordinator<'a> {
    journal: &'a mut JournalWriter,
    write_error: Option<KilnError>,
    cycles: u32,
    stop: &'a AtomicBool,
}

impl Coordinator<'_> {
    fn append(&mut self, event: &Event) {
        if self.write_error.is_none() {
            if let Err(e) = self.journal.append(event) {
                // Without a journal nothing can be kept: stop.
                self.stop.store(true, Ordering::SeqCst);
                self.write_error = Some(e);
            }
        }
    }

    fn sample_all(&mut self, slots: &[Slot], started: Instant) {
        let t = started.elapsed().as_secs_f64();
        for s in slots {
            if let Some(sensor) = &s.sensor {
                let sample = sensor.sample(t);
                self.append(&Event::Telemetry {
                    device: s.index,
                    sample,
                });
            }
        }
    }

    fn handle(&mut self, msg: Msg, slots: &mut [Slot], progress: &Progress, started: Instant) {
        match msg {
            Msg::Started {
                slot,
                cycle,
                step,
                workload,
            } => {
                if let Some(s) = slots.get_mut(slot) {
                    s.running = Some((cycle, step, workload, Instant::now()));
                }
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
            Msg::Finished {
                slot,
                cycle,
                step,
                busy_s,
            } => {
                let mut phase = None;
                let mut sample = None;
                if let Some(s) = slots.get_mut(slot) {
                    if let Some((_, _, workload, t)) = s.running.take() {
                        s.took.push(((cycle, step), t.elapsed()));
                        if !s.abandoned {
                            let end_s = started.elapsed().as_secs_f64();
                            // Every phase gets a reading as it ends, so
                            // that a phase shorter than the sampling period
                            // still has its power and clocks under load.
                            sample = s.sensor.as_ref().map(|sensor| Event::Telemetry {
                                device: s.index,
                                sample: sensor.sample(end_s),
                            });
                            phase = Some(Event::Phase {
                                device: s.index,
                                workload,
                                cycle,
                                start_s: end_s - t.elapsed().as_secs_f64(),
                                end_s,
                                busy_s: Some(busy_s),
                            });
                        }
                    }
                }
                if let Some(p) = sample {
                    self.append(&p);
                }
                if let Some(p) = phase {
                    self.append(&p);
                }
            }
            Msg::Exit(slot) => {
                if let Some(s) = slots.get_mut(slot) {
                    s.exited = true;
                    s.running = None;
                }
                progress.cycle_done(slot);
            }
            Msg::Event(slot, event) => {
                if slots.get(slot).is_some_and(|s| s.abandoned) {
                    return;
                }
                match event.as_ref() {
                    Event::Metric { metric, .. } => progress.metric(slot, metric),
                    Event::Integrity { integrity, .. } if integrity.errors > 0 => progress.warn(
                        slot,
                        &format!(
                            "{}: {} errors: {}",
                            integrity.check, integrity.errors, integrity.detail
                        ),
                    ),
                    Event::DeviceError {
                        workload, message, ..
                    } => progress.warn(slot, &format!("{workload} failed: {message}")),
                    Event::WorkloadDone { cycle, .. } => self.cycles = self.cycles.max(cycle + 1),
                    _ => {}
                }
                self.append(&event);
            }
        }
    }

    fn watchdog(
        &mut self,
        slots: &mut [Slot],
        gate: &Gate,
        profile: Profile,
        started: Instant,
        progress: &Progress,
    ) {
        for i in 0..slots.len() {
            let Some((cycle, step, workload, since)) = slots[i].running else {
                continue;
            };
            if slots[i].abandoned {
                continue;
            }
            let peers = slots
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .filter_map(|(_, s)| {
                    s.took
                        .iter()
                        .find(|(k, _)| *k == (cycle, step))
                        .map(|(_, d)| *d)
                })
                .max();
            let limit = match peers {
                Some(p) => WATCHDOG_MIN.max(p * WATCHDOG_FACTOR),
                None => ceiling(profile),
            };
            let lag = since.elapsed();
            if lag > limit {
                let s = &mut slots[i];
                s.abandoned = true;
                s.running = None;
                gate.exclude(i);
                let message = format!(
                    "{workload} did not finish within {:.0} s (watchdog: {})",
                    lag.as_secs_f64(),
                    match peers {
                        Some(p) => format!(
                            "peers took at most {:.1} s; limit max({} s, {WATCHDOG_FACTOR} x that)",
                            p.as_secs_f64(),
                            WATCHDOG_MIN.as_secs()
                        ),
                        None => format!("no peer finished it; limit {} s", limit.as_secs()),
                    }
                );
                progress.warn(i, &message);
                let at = started.elapsed().as_secs_f64();
                self.append(&Event::Hang {
                    device: s.index,
                    workload,
                    cycle,
                    at_s: at,
                    message,
                });
            }
        }
    }
}

fn device_thread(
    slot: usize,
    mut device: Box<dyn Device>,
    plan: &Plan,
    members: &[usize],
    gate: &Gate,
    stop: &AtomicBool,
    tx: &mpsc::Sender<Msg>,
) {
    let index = device.info().index;
    // The receiver lives until every live device thread is done; a send to a
    // coordinator that gave up on this thread is dropped.
    let send = |e: Event| {
        let _ = tx.send(Msg::Event(slot, Box::new(e)));
    };
    device.run_started(gate.started_at());
    // After a cycle, once every device has finished it (the wait for slower
    // peers included), and at the end of the run: is the device still
    // there? One lost or failing then must not be accepted on its earlier
    // figures.
    let end_of_cycle = |device: &mut Box<dyn Device>, cycle: u32| -> bool {
        match device.health() {
            Ok(()) => true,
            Err(e) => {
                send(Event::DeviceError {
                    device: index,
                    workload: plan
                        .workloads
                        .last()
                        .copied()
                        .unwrap_or(WorkloadKind::Matmul),
                    cycle,
                    message: format!(
                        "the end-of-cycle check, after the last workload, found: {}",
                        e.message
                    ),
                    lost: e.lost,
                    at_s: Some(gate.elapsed_s()),
                    node_state: e.node_state.map(String::from),
                    code: e.code.map(String::from),
                });
                !(e.lost || e.node_state.is_some())
            }
        }
    };
    let mut cycle = 0u32;
    loop {
        let more = gate.arrive(slot, Phase::Cycle(cycle));
        if cycle > 0 && !end_of_cycle(&mut device, cycle - 1) {
            gate.exclude(slot);
            return;
        }
        if !more {
            return;
        }
        for (step, &kind) in plan.workloads.iter().enumerate() {
            if !gate.arrive(slot, Phase::Workload) {
                return;
            }
            let mut spec = WorkloadSpec::for_device(kind, plan.profile, device.info());
            if let WorkloadSpec::Transfer { run, .. } = &mut spec {
                *run = members.to_vec();
            }
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
                Record::Skipped {
                    workload,
                    reason,
                    node_state,
                } => send(Event::Skipped {
                    device: index,
                    workload,
                    cycle,
                    reason,
                    partial: true,
                    node_state: node_state.map(String::from),
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
                busy_s: 0.0,
                sustain_s: workload::sustain_for(kind, plan.profile, device.info()),
            };
            let outcome = workload::execute(device.as_mut(), &spec, &mut ctx);
            let busy_s = ctx.busy_s;
            let _ = tx.send(Msg::Finished {
                slot,
                cycle,
                step,
                busy_s,
            });
            match outcome {
                Ok(()) => send(Event::WorkloadDone {
                    device: index,
                    workload: kind,
                    cycle,
                }),
                Err(WorkloadError::Interrupted) => {}
                Err(WorkloadError::Device(e)) if e.unsupported => send(Event::Skipped {
                    device: index,
                    workload: kind,
                    cycle,
                    reason: e.message.clone(),
                    partial: false,
                    node_state: e
                        .code
                        .filter(|c| workload::NODE_SKIP_CODES.contains(c))
                        .map(String::from),
                }),
                Err(WorkloadError::Device(e)) => {
                    send(Event::DeviceError {
                        device: index,
                        workload: kind,
                        cycle,
                        message: e.message.clone(),
                        lost: e.lost,
                        at_s: Some(gate.elapsed_s()),
                        node_state: e.node_state.map(String::from),
                        code: e.code.map(String::from),
                    });
                    if e.lost || e.node_state.is_some() {
                        // Nothing more can run on a device that is gone, or
                        // that the node will not let kiln use.
                        gate.exclude(slot);
                        return;
                    }
                }
            }
        }
        cycle += 1;
    }
}

//! What kiln runs on a device, how big, and how each result is checked.
//!
//! One file per workload family: [`matmul`], [`bandwidth`], [`hash`] and
//! [`transfer`]; the memory test's patterns are pure definitions in
//! [`crate::reference::memtest`] and its driver is here. Each owns its sizes,
//! what it counts (FLOPs, bytes, hashes) and its verification; backends in
//! [`crate::device`] only execute. The
//! shared driver here does warm-up, repetition, timing statistics and turns
//! everything into [`Record`]s, which the runner journals as they arrive.
//!
//! Layer: above `device` and what `device` may import (`reference`, `stats`,
//! `error`, `telemetry`); below `cli`, `plan`, `run`, `results`, `verdict`,
//! `output` and `commands`, which it must not import (tests/layers.rs checks
//! it). The pure definitions the backends share (inputs, patterns, SHA-256,
//! expected values) are in [`crate::reference`]; [`WorkloadKind`] is
//! re-exported from there.

pub mod bandwidth;
pub mod hash;
pub mod matmul;
pub mod pulse;
pub mod selftest;
pub mod transfer;

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::device::{BackendKind, Device, DeviceError, DeviceInfo, MatmulVariant};
use crate::reference::hash::{HashJob, ScanResult};
use crate::reference::memtest;
use crate::reference::transfer::size_text;
use crate::stats;

/// The workload families: defined with the reference definitions (the
/// simulated backend gates its faults by family), used everywhere from here.
pub use crate::reference::WorkloadKind;

/// How much work a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// About a minute on a 2-core machine with no GPU: every workload, small.
    Quick,
    /// A few minutes: larger sizes and more repetitions.
    Standard,
    /// Cycles the standard workloads until --duration has passed.
    Burnin,
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Profile::Quick => "quick",
            Profile::Standard => "standard",
            Profile::Burnin => "burnin",
        })
    }
}

/// The workloads a profile runs when `--workloads` is not given: every
/// family, except the minute-long power pulses in `quick`.
pub fn default_workloads(profile: Profile) -> Vec<WorkloadKind> {
    WorkloadKind::ALL
        .into_iter()
        .filter(|k| profile != Profile::Quick || *k != WorkloadKind::Pulse)
        .collect()
}

/// Sizes and repetitions of one workload on one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "workload", rename_all = "lowercase")]
pub enum WorkloadSpec {
    /// Square GEMMs of size `n`, one per variant (precision and engine).
    Matmul {
        n: usize,
        variants: Vec<MatmulVariant>,
        warmup: u32,
        iterations: u32,
    },
    /// Three buffers of `elements` f64 each.
    Bandwidth {
        elements: usize,
        warmup: u32,
        iterations: u32,
    },
    /// `nonces` double SHA-256 nonces per iteration.
    Hash {
        nonces: u32,
        target_zero_bits: u32,
        sample_every: u32,
        warmup: u32,
        iterations: u32,
    },
    /// `words` 64-bit words through the pattern algorithm.
    Memtest {
        words: usize,
        walking_bits: Vec<u32>,
        random_passes: u32,
    },
    /// Copies of `words` 64-bit words: host to device, device to host, and
    /// to every peer in `run` (the kiln indices of the run's devices, filled
    /// in by the runner).
    Transfer {
        words: usize,
        warmup: u32,
        iterations: u32,
        #[serde(default)]
        run: Vec<usize>,
    },
    /// `pulses` bursts of back-to-back GEMMs of size `n`, each at least
    /// `on_ms` long (one product when 0), with `off_ms` of idle after each;
    /// the first of `variants` the device can run.
    Pulse {
        n: usize,
        variants: Vec<MatmulVariant>,
        on_ms: u32,
        off_ms: u32,
        pulses: u32,
    },
}

impl WorkloadSpec {
    /// Which family this spec belongs to.
    pub fn kind(&self) -> WorkloadKind {
        match self {
            WorkloadSpec::Matmul { .. } => WorkloadKind::Matmul,
            WorkloadSpec::Bandwidth { .. } => WorkloadKind::Bandwidth,
            WorkloadSpec::Hash { .. } => WorkloadKind::Hash,
            WorkloadSpec::Memtest { .. } => WorkloadKind::Memtest,
            WorkloadSpec::Transfer { .. } => WorkloadKind::Transfer,
            WorkloadSpec::Pulse { .. } => WorkloadKind::Pulse,
        }
    }

    /// The spec of `kind` for `profile` on a device.
    ///
    /// Simulated devices run the same algorithms on small data (their timing
    /// comes from a model); real devices are sized to their memory.
    pub fn for_device(kind: WorkloadKind, profile: Profile, info: &DeviceInfo) -> WorkloadSpec {
        let big = profile != Profile::Quick;
        if info.simulated {
            return small_spec(kind, info.backend);
        }
        let mem = info.memory_bytes.max(1 << 30);
        match kind {
            // GPUs: n = 8192 fills an H100 (an fp64 product takes about
            // 20 ms, a bf16 one under 2 ms) and is a multiple of 128, as
            // kiln's mma kernel needs; CPUs: what a few cores do in seconds.
            WorkloadKind::Matmul if info.backend == BackendKind::Cuda => WorkloadSpec::Matmul {
                n: 8192,
                variants: MatmulVariant::GPU.to_vec(),
                warmup: 2,
                iterations: if big { 20 } else { 10 },
            },
            WorkloadKind::Matmul => WorkloadSpec::Matmul {
                n: if big { 4096 } else { 2048 },
                variants: MatmulVariant::CPU.to_vec(),
                warmup: 1,
                iterations: if big { 8 } else { 5 },
            },
            WorkloadKind::Bandwidth => {
                // Three buffers, each at least 4x a 32 MiB last-level cache,
                // and together at most an eighth of the memory.
                let per_buffer: u64 = if big { 512 << 20 } else { 128 << 20 };
                let per_buffer = per_buffer.min(mem / 24).max(16 << 20);
                WorkloadSpec::Bandwidth {
                    elements: (per_buffer / 8) as usize,
                    warmup: 2,
                    iterations: if big { 40 } else { 15 },
                }
            }
            WorkloadKind::Hash => WorkloadSpec::Hash {
                nonces: if big { 1 << 24 } else { 1 << 21 },
                target_zero_bits: 16,
                sample_every: 1 << 14,
                warmup: 1,
                iterations: if big { 8 } else { 5 },
            },
            // 256 MiB (quick) or 512 MiB (standard) each way, pinned: big
            // enough that a copy takes milliseconds on PCIe Gen5 and NVLink.
            WorkloadKind::Transfer => {
                let bytes: u64 = if big { 512 << 20 } else { 256 << 20 };
                let bytes = bytes.min(mem / 16);
                WorkloadSpec::Transfer {
                    words: (bytes / 8) as usize,
                    warmup: 2,
                    iterations: if big { 20 } else { 10 },
                    run: Vec::new(),
                }
            }
            // 2.5 pulses a second: 200 ms of back-to-back GEMMs, 200 ms of
            // idle. The load steps from idle to the board's limit and back
            // each time, as DCGM's pulse test does; a weak power stage or
            // cable fails there first. A minute in standard, 20 s in each
            // burn-in cycle, 10 s when asked for in quick.
            WorkloadKind::Pulse => WorkloadSpec::Pulse {
                n: if info.backend == BackendKind::Cuda {
                    8192
                } else {
                    1024
                },
                variants: pulse::VARIANTS.to_vec(),
                on_ms: 200,
                off_ms: 200,
                pulses: match profile {
                    Profile::Quick => 25,
                    Profile::Standard => 150,
                    Profile::Burnin => 50,
                },
            },
            WorkloadKind::Memtest => {
                // GPUs: quick tests 4 GiB; standard and burn-in test most
                // of the free memory (the driver clamps the whole memory to
                // what Device::memtest_capacity allows). CPUs: a slice of
                // the host's memory.
                // GPUs in quick: 4 GiB (at most an eighth of the memory),
                // so that each step's single timed launch (the moving
                // inversions cannot be repeated in one window) holds over a
                // millisecond of work on the fastest HBM and the launch gap
                // stays under 0.5 % of it.
                let bytes: u64 = match (big, info.backend) {
                    (true, BackendKind::Cuda) => mem,
                    (false, BackendKind::Cuda) => (4 << 30u64).min(mem / 8),
                    (true, _) => (2 << 30u64).min(mem / 8),
                    (false, _) => (512 << 20u64).min(mem / 8),
                };
                WorkloadSpec::Memtest {
                    words: (bytes / 8) as usize,
                    walking_bits: if big {
                        (0..64).collect()
                    } else {
                        vec![0, 7, 15, 23, 31, 39, 47, 63]
                    },
                    random_passes: if big { 4 } else { 1 },
                }
            }
        }
    }
}

/// The sizes simulated devices compute for real (small, so eight of them run
/// in well under a second of CPU time). Virtual GPUs (the CUDA backend on
/// vgpu, whose kernels run in a PTX interpreter) get the same sizes, except
/// that a matmul is one whole 128 x 128 tile of kiln's mma kernel.
fn small_spec(kind: WorkloadKind, backend: BackendKind) -> WorkloadSpec {
    match kind {
        WorkloadKind::Matmul => WorkloadSpec::Matmul {
            n: if backend == BackendKind::Cuda {
                128
            } else {
                64
            },
            variants: MatmulVariant::GPU.to_vec(),
            warmup: 1,
            iterations: 5,
        },
        WorkloadKind::Bandwidth => WorkloadSpec::Bandwidth {
            elements: 1 << 14,
            warmup: 1,
            iterations: 5,
        },
        WorkloadKind::Hash => WorkloadSpec::Hash {
            nonces: 1 << 12,
            target_zero_bits: 8,
            sample_every: 1 << 8,
            warmup: 1,
            iterations: 5,
        },
        WorkloadKind::Transfer => WorkloadSpec::Transfer {
            words: 1 << 14,
            warmup: 1,
            iterations: 5,
            run: Vec::new(),
        },
        WorkloadKind::Memtest => WorkloadSpec::Memtest {
            words: 1 << 14,
            walking_bits: vec![0, 31, 63],
            random_passes: 1,
        },
        // One product per burst and a millisecond of idle: the steps, the
        // checks and the faults, without a minute of modelled load.
        WorkloadKind::Pulse => WorkloadSpec::Pulse {
            n: if backend == BackendKind::Cuda {
                128
            } else {
                64
            },
            variants: pulse::VARIANTS.to_vec(),
            on_ms: 0,
            off_ms: 1,
            pulses: 10,
        },
    }
}

/// One measured figure, as journaled and reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Workload family.
    pub workload: WorkloadKind,
    /// Metric name, e.g. `matmul_f32`, `bw_copy`.
    pub name: String,
    /// The reported figure: the median over iterations.
    pub value: f64,
    /// Unit of value, median, p05 and p95, e.g. "GFLOP/s".
    pub unit: String,
    /// Median over iterations.
    pub median: f64,
    /// 5th percentile over iterations.
    pub p05: f64,
    /// 95th percentile over iterations.
    pub p95: f64,
    /// Coefficient of variation over iterations.
    pub cv: f64,
    /// Timed iterations (warm-up excluded).
    pub iterations: usize,
    /// How the figure was counted, in words.
    pub counted: String,
    /// True when the figure comes from the sim backend's model.
    pub simulated: bool,
    /// Burn-in cycle (0 for single-pass profiles).
    #[serde(default)]
    pub cycle: u32,
}

/// The outcome of one verification of a workload's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Integrity {
    /// Workload family.
    pub workload: WorkloadKind,
    /// What was checked, e.g. `matmul_f32`, `bw_copy`, `memtest`.
    pub check: String,
    /// Number of values checked.
    pub checked: u64,
    /// Number of values found wrong.
    pub errors: u64,
    /// Empty when clean; otherwise what went wrong, in words.
    pub detail: String,
    /// Byte offsets of the first bad words (memory test only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub first_bad_offsets: Vec<u64>,
    /// Hash of every output bit (matmul), in hex: every device of a model
    /// computes the same product, so the checksums must agree across devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Burn-in cycle (0 for single-pass profiles).
    #[serde(default)]
    pub cycle: u32,
}

/// What a workload produces, in order, as soon as each piece is known.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A finished measurement.
    Metric(Metric),
    /// A finished verification.
    Integrity(Integrity),
    /// Part of a workload cannot run on this node (e.g. fp8 on a GPU
    /// without fp8 tensor cores); the rest of it ran.
    Skipped {
        /// Workload family.
        workload: WorkloadKind,
        /// Why, in one line.
        reason: String,
        /// The node-state code when the cause is the node's software, not
        /// the device (`library_missing`: cuBLASLt not installed), so that
        /// the device is "could not test", never accepted untested.
        node_state: Option<&'static str>,
    },
}

/// Why a workload stopped before the end.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The device or its driver failed.
    #[error("device error: {0}")]
    Device(#[from] DeviceError),
    /// The user interrupted the run.
    #[error("interrupted")]
    Interrupted,
}

/// What the shared driver needs from the runner.
pub struct Context<'a> {
    /// Set when the run must stop (Ctrl-C).
    pub stop: &'a AtomicBool,
    /// Receives every record as soon as it is known.
    pub sink: &'a mut dyn FnMut(Record),
    /// Told the fraction done (0..=1) of the current workload and a label.
    pub progress: &'a mut dyn FnMut(f64, &str),
    /// Burn-in cycle stamped on every record.
    pub cycle: u32,
    /// Seed of every input.
    pub seed: u64,
    /// Device-busy seconds of this workload so far: the sum of its timed
    /// (event-timed on GPUs) windows, for the phase's duty cycle.
    pub busy_s: f64,
    /// Seconds the timed loop of a repeatable workload keeps the device
    /// busy back to back, beyond its iteration count ([`sustain_for`]).
    pub sustain_s: f64,
}

/// Codes of a skip that the node's software causes (a device that could not
/// run part of its work for them could not be tested in full).
pub const NODE_SKIP_CODES: [&str; 1] = ["library_missing"];

/// Most timed iterations one sustained loop keeps (their rates are kept).
const MAX_SUSTAINED: u32 = 1 << 20;

/// How long the timed loop of `kind` runs back to back: in `burnin`, on
/// real hardware, long enough that set-up and host verification between
/// workloads are a few percent of the phase (a duty cycle of at least
/// 95 %, as gpu-burn's back-to-back GEMMs load a GPU). On real GPUs the
/// GEMMs of `quick` and `standard` also hold the load for 8 s and 16 s
/// (their iteration counts alone take about a second on an H100): long
/// enough for NVML's 1 s power average to read the load (`power_low`) and
/// for the clocks to settle. 0 otherwise (the iteration count rules).
/// Simulated and virtual GPUs keep their iteration counts: their time is
/// modelled.
pub fn sustain_for(kind: WorkloadKind, profile: Profile, info: &DeviceInfo) -> f64 {
    if info.simulated {
        return 0.0;
    }
    if profile != Profile::Burnin {
        return match (kind, info.backend, profile) {
            (WorkloadKind::Matmul, BackendKind::Cuda, Profile::Quick) => 8.0,
            (WorkloadKind::Matmul, BackendKind::Cuda, _) => 16.0,
            _ => 0.0,
        };
    }
    match kind {
        WorkloadKind::Matmul => 40.0,
        WorkloadKind::Bandwidth | WorkloadKind::Hash => 20.0,
        // The memory test's verify-and-write steps cannot be repeated, and
        // copies are bounded by the link: their counts rule. Pulses idle
        // half of the time on purpose.
        WorkloadKind::Memtest | WorkloadKind::Transfer | WorkloadKind::Pulse => 0.0,
    }
}

impl Context<'_> {
    /// True while a timed loop started at `since` should run iteration
    /// `it`: until `iterations` are done and, when sustained, until its
    /// `share` of [`Context::sustain_s`] has passed.
    pub fn keep_timing(
        &self,
        it: u32,
        iterations: u32,
        since: std::time::Instant,
        share: f64,
    ) -> bool {
        it < iterations
            || (it < MAX_SUSTAINED && since.elapsed().as_secs_f64() < self.sustain_s * share)
    }

    /// The fraction done of a timed loop (0..=1), by count or by time.
    pub fn timed_fraction(
        &self,
        it: u32,
        iterations: u32,
        since: std::time::Instant,
        share: f64,
    ) -> f64 {
        let by_count = f64::from(it) / f64::from(iterations.max(1));
        let want = self.sustain_s * share;
        let by_time = if want > 0.0 {
            since.elapsed().as_secs_f64() / want
        } else {
            1.0
        };
        by_count.min(by_time).min(1.0)
    }

    /// Counts `t` seconds of timed device work towards the duty cycle.
    pub fn busy(&mut self, t: crate::device::Seconds) {
        if t.is_finite() && t > 0.0 {
            self.busy_s += t;
        }
    }

    /// Sends the metric of per-iteration `rates`, when there are any.
    pub fn metric(
        &mut self,
        workload: WorkloadKind,
        name: &str,
        unit: &str,
        counted: String,
        rates: &[f64],
        simulated: bool,
    ) {
        if let Some(m) =
            metric_from_rates(workload, name, unit, counted, rates, simulated, self.cycle)
        {
            (self.sink)(Record::Metric(m));
        }
    }

    /// Sends the outcome of a verification.
    pub fn integrity(
        &mut self,
        workload: WorkloadKind,
        check: impl Into<String>,
        checked: u64,
        errors: u64,
        detail: String,
    ) {
        self.send_integrity(Integrity {
            workload,
            check: check.into(),
            checked,
            errors,
            detail,
            first_bad_offsets: Vec::new(),
            checksum: None,
            cycle: 0,
        });
    }

    /// Says that part of a workload was skipped, and why.
    pub fn skipped(&mut self, workload: WorkloadKind, reason: String) {
        (self.sink)(Record::Skipped {
            workload,
            reason,
            node_state: None,
        });
    }

    /// Says that part of a workload could not run, and why: the device's
    /// `error`, whose code, when it is a node state such as
    /// `library_missing`, makes the device "could not test".
    pub fn skipped_for(&mut self, workload: WorkloadKind, error: DeviceError) {
        let node_state = error.code.filter(|c| NODE_SKIP_CODES.contains(c));
        (self.sink)(Record::Skipped {
            workload,
            reason: error.message,
            node_state,
        });
    }

    /// Sends a verification record, stamped with the current cycle.
    pub fn send_integrity(&mut self, mut record: Integrity) {
        record.cycle = self.cycle;
        (self.sink)(Record::Integrity(record));
    }

    /// Fails with [`WorkloadError::Interrupted`] once a stop was requested.
    pub fn check_stop(&self) -> Result<(), WorkloadError> {
        if self.stop.load(Ordering::Relaxed) {
            Err(WorkloadError::Interrupted)
        } else {
            Ok(())
        }
    }
}

/// Runs one workload on one device, sending records to `ctx.sink`.
pub fn execute(
    device: &mut dyn Device,
    spec: &WorkloadSpec,
    ctx: &mut Context<'_>,
) -> Result<(), WorkloadError> {
    match spec {
        WorkloadSpec::Matmul {
            n,
            variants,
            warmup,
            iterations,
        } => matmul::execute(device, *n, variants, *warmup, *iterations, ctx),
        WorkloadSpec::Bandwidth {
            elements,
            warmup,
            iterations,
        } => bandwidth::execute(device, *elements, *warmup, *iterations, ctx),
        WorkloadSpec::Hash {
            nonces,
            target_zero_bits,
            sample_every,
            warmup,
            iterations,
        } => {
            let job = HashJob::from_seed(ctx.seed, *target_zero_bits, *sample_every);
            hash_driver(device, &job, *nonces, *warmup, *iterations, ctx)
        }
        WorkloadSpec::Memtest {
            words,
            walking_bits,
            random_passes,
        } => memtest_driver(device, *words, walking_bits, *random_passes, ctx),
        WorkloadSpec::Transfer {
            words,
            warmup,
            iterations,
            run,
        } => transfer::execute(device, *words, *warmup, *iterations, run, ctx),
        WorkloadSpec::Pulse {
            n,
            variants,
            on_ms,
            off_ms,
            pulses,
        } => pulse::execute(
            device,
            *n,
            variants,
            std::time::Duration::from_millis(u64::from(*on_ms)),
            std::time::Duration::from_millis(u64::from(*off_ms)),
            *pulses,
            ctx,
        ),
    }
}

/// Builds a [`Metric`] from per-iteration rates.
pub fn metric_from_rates(
    workload: WorkloadKind,
    name: &str,
    unit: &str,
    counted: String,
    rates: &[f64],
    simulated: bool,
    cycle: u32,
) -> Option<Metric> {
    let s = stats::summarize(rates)?;
    Some(Metric {
        workload,
        name: name.to_string(),
        value: s.median,
        unit: unit.to_string(),
        median: s.median,
        p05: s.p05,
        p95: s.p95,
        cv: s.cv,
        iterations: s.n,
        counted,
        simulated,
        cycle,
    })
}

/// Seconds of a duration, never zero (a zero time would give an infinite rate).
pub fn seconds(d: crate::device::Seconds) -> f64 {
    if d.is_finite() && d > 0.0 {
        d
    } else {
        1e-15
    }
}

fn hash_driver(
    device: &mut dyn Device,
    job: &HashJob,
    nonces: u32,
    warmup: u32,
    iterations: u32,
    ctx: &mut Context<'_>,
) -> Result<(), WorkloadError> {
    let simulated = device.info().simulated;
    let mut op = device.hasher(job)?;
    for _ in 0..warmup {
        ctx.check_stop()?;
        op.scan(0, nonces)?;
    }
    let mut rates = Vec::new();
    let mut check = hash::HashCheck {
        checked: 0,
        errors: 0,
        detail: String::new(),
    };
    let mut first: Option<ScanResult> = None;
    let since = std::time::Instant::now();
    let mut i = 0;
    while ctx.keep_timing(i, iterations, since, 1.0) {
        ctx.check_stop()?;
        let done = ctx.timed_fraction(i, iterations, since, 1.0);
        (ctx.progress)(done, "double sha-256");
        let it = i;
        i += 1;
        let (result, time) = op.scan(0, nonces)?;
        ctx.busy(time);
        rates.push(result.nonces as f64 / seconds(time) / 1e6);
        let c = hash::verify_scan(job, 0, nonces, &result);
        check.checked += c.checked;
        check.errors += c.errors;
        if check.detail.is_empty() {
            check.detail = c.detail;
        }
        // Self-consistency: the same range must give the same fold every time.
        match &first {
            None => first = Some(result),
            Some(f) => {
                check.checked += 1;
                if f.fold != result.fold || f.hit_count != result.hit_count {
                    check.errors += 1;
                    if check.detail.is_empty() {
                        check.detail = format!(
                            "iteration {it}: digest fold or hit count differs from iteration 0 over the same nonces"
                        );
                    }
                }
            }
        }
    }
    let counted = format!(
        "double SHA-256 nonces per second (2 compressions each, midstate precomputed), {nonces} nonces per iteration"
    );
    ctx.metric(
        WorkloadKind::Hash,
        "sha256d",
        "MH/s",
        counted,
        &rates,
        simulated,
    );
    ctx.integrity(
        WorkloadKind::Hash,
        "sha256d",
        check.checked,
        check.errors,
        check.detail,
    );
    Ok(())
}

/// How many bad words a memory test keeps the address of.
pub const MEMTEST_KEEP: usize = 16;

/// The least memory a GPU's memory test accepts to run on.
const MEMTEST_MIN_BYTES: u64 = 64 << 20;

fn memtest_driver(
    device: &mut dyn Device,
    words: usize,
    walking_bits: &[u32],
    random_passes: u32,
    ctx: &mut Context<'_>,
) -> Result<(), WorkloadError> {
    let simulated = device.info().simulated;
    let words = match device.memtest_capacity() {
        Some(bytes) if bytes < MEMTEST_MIN_BYTES => {
            return Err(DeviceError::failed(format!(
                "only {} of device memory is free for the memory test (at least {} needed): another process holds the GPU's memory",
                size_text(bytes as usize),
                size_text(MEMTEST_MIN_BYTES as usize)
            ))
            .into())
        }
        Some(bytes) => words.min((bytes / 8) as usize),
        None => words,
    };
    let mut op = device.memtest(words)?;
    let steps = memtest::algorithm(walking_bits, random_passes, ctx.seed);
    let mut errors = memtest::MemErrors::default();
    let mut bytes = 0u64;
    let mut time = 0.0;
    let total = steps.len().max(1);
    for (i, (label, step)) in steps.iter().enumerate() {
        ctx.check_stop()?;
        (ctx.progress)(i as f64 / total as f64, label);
        let w = op.words() as u64 * 8;
        let (e, t) = match *step {
            memtest::Step::Fill(p) => {
                bytes += w;
                (memtest::MemErrors::default(), op.fill(p)?)
            }
            memtest::Step::Verify(p) => {
                bytes += w;
                op.verify(p, MEMTEST_KEEP)?
            }
            memtest::Step::VerifyAndWrite {
                expect,
                next,
                descending,
            } => {
                bytes += 2 * w;
                op.verify_and_write(expect, next, descending, MEMTEST_KEEP)?
            }
        };
        errors.merge(e, MEMTEST_KEEP);
        time += t;
    }
    ctx.busy(time);
    let rate = bytes as f64 / seconds(time) / 1e9;
    let counted = format!(
        "bytes written + read by {} pattern steps over {}",
        steps.len(),
        size_text(words * 8)
    );
    ctx.metric(
        WorkloadKind::Memtest,
        "memtest",
        "GB/s",
        counted,
        &[rate],
        simulated,
    );
    let detail = if errors.errors == 0 {
        String::new()
    } else {
        let first: Vec<String> = errors
            .first_bad
            .iter()
            .take(4)
            .map(|b| {
                format!(
                    "offset {:#x}: expected {:#018x}, read {:#018x}",
                    b.index * 8,
                    b.expected,
                    b.actual
                )
            })
            .collect();
        format!(
            "{} bad words ({} flipped bits); first: {}",
            errors.errors,
            errors.bit_flips,
            first.join("; ")
        )
    };
    ctx.send_integrity(Integrity {
        workload: WorkloadKind::Memtest,
        check: "memtest".into(),
        checked: errors.checked,
        errors: errors.errors,
        detail,
        first_bad_offsets: errors.first_bad.iter().map(|b| b.index * 8).collect(),
        checksum: None,
        cycle: 0,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{Engine, MatmulVariant};

    fn gpu(memory_gib: u64) -> DeviceInfo {
        DeviceInfo {
            index: 0,
            name: "NVIDIA H100 80GB HBM3".into(),
            uuid: None,
            serial: None,
            pci_bus_id: None,
            pci_device_id: None,
            memory_bytes: memory_gib << 30,
            compute_units: 132,
            backend: BackendKind::Cuda,
            simulated: false,
        }
    }

    #[test]
    fn gpus_run_every_variant_at_a_size_that_fills_them_in_whole_mma_tiles() {
        for profile in [Profile::Quick, Profile::Standard] {
            let WorkloadSpec::Matmul { n, variants, .. } =
                WorkloadSpec::for_device(WorkloadKind::Matmul, profile, &gpu(80))
            else {
                panic!("a matmul spec");
            };
            assert_eq!(n, 8192);
            assert_eq!(n % 128, 0, "kiln's mma kernel takes whole 128 x 128 tiles");
            assert_eq!(variants, MatmulVariant::GPU);
            assert!(variants.iter().any(|v| v.engine == Engine::Mma));
            // The three fp64 matrices fit with room to spare.
            assert!(3 * n * n * 8 < (80usize << 30) / 8);
        }
    }

    #[test]
    fn gpu_memory_tests_cover_the_memory_beyond_the_quick_profile() {
        let words =
            |profile| match WorkloadSpec::for_device(WorkloadKind::Memtest, profile, &gpu(80)) {
                WorkloadSpec::Memtest { words, .. } => words as u64 * 8,
                other => panic!("{other:?}"),
            };
        // 4 GiB: each step's one launch holds over a millisecond of work.
        assert_eq!(words(Profile::Quick), 4 << 30);
        // The whole memory as the bound: the driver clamps it to the free
        // memory less the margin (Device::memtest_capacity).
        assert_eq!(words(Profile::Standard), 80 << 30);
        assert_eq!(words(Profile::Burnin), 80 << 30);
    }

    #[test]
    fn real_gpus_hold_their_gemms_long_enough_to_read_the_power() {
        let gpu = gpu(80);
        let sustain = |kind, profile| sustain_for(kind, profile, &gpu);
        assert_eq!(sustain(WorkloadKind::Matmul, Profile::Quick), 8.0);
        assert_eq!(sustain(WorkloadKind::Matmul, Profile::Standard), 16.0);
        assert_eq!(sustain(WorkloadKind::Matmul, Profile::Burnin), 40.0);
        assert_eq!(sustain(WorkloadKind::Hash, Profile::Quick), 0.0);
        assert_eq!(sustain(WorkloadKind::Pulse, Profile::Burnin), 0.0);
        let mut cpu = gpu.clone();
        cpu.backend = BackendKind::Cpu;
        assert_eq!(sustain_for(WorkloadKind::Matmul, Profile::Quick, &cpu), 0.0);
        let mut virt = gpu.clone();
        virt.simulated = true;
        assert_eq!(
            sustain_for(WorkloadKind::Matmul, Profile::Burnin, &virt),
            0.0
        );
    }

    #[test]
    fn quick_leaves_the_pulses_out_and_the_others_run_them() {
        assert!(!default_workloads(Profile::Quick).contains(&WorkloadKind::Pulse));
        assert_eq!(default_workloads(Profile::Quick).len(), 5);
        for p in [Profile::Standard, Profile::Burnin] {
            assert_eq!(default_workloads(p), WorkloadKind::ALL.to_vec());
        }
        let pulses = |p| match WorkloadSpec::for_device(WorkloadKind::Pulse, p, &gpu(80)) {
            WorkloadSpec::Pulse {
                on_ms,
                off_ms,
                pulses,
                n,
                ..
            } => (n, f64::from(pulses) * f64::from(on_ms + off_ms) / 1000.0),
            other => panic!("{other:?}"),
        };
        // About a minute in standard, 20 s per burn-in cycle.
        assert_eq!(pulses(Profile::Standard), (8192, 60.0));
        assert_eq!(pulses(Profile::Burnin), (8192, 20.0));
    }

    #[test]
    fn cpus_run_their_native_precisions() {
        let mut cpu = gpu(16);
        cpu.backend = BackendKind::Cpu;
        let WorkloadSpec::Matmul { variants, .. } =
            WorkloadSpec::for_device(WorkloadKind::Matmul, Profile::Quick, &cpu)
        else {
            panic!("a matmul spec");
        };
        assert_eq!(variants, MatmulVariant::CPU);
    }

    /// The CPU with a GPU's memory-test capacity.
    struct Capped(crate::device::cpu::CpuDevice, u64);

    impl Device for Capped {
        fn info(&self) -> &DeviceInfo {
            self.0.info()
        }
        fn matmul(
            &mut self,
            s: crate::device::MatmulShape,
        ) -> crate::device::DeviceResult<Box<dyn crate::device::MatmulOp + '_>> {
            self.0.matmul(s)
        }
        fn stream(
            &mut self,
            l: usize,
            s: u64,
        ) -> crate::device::DeviceResult<Box<dyn crate::device::StreamOp + '_>> {
            self.0.stream(l, s)
        }
        fn hasher(
            &mut self,
            j: &HashJob,
        ) -> crate::device::DeviceResult<Box<dyn crate::device::HashOp + '_>> {
            self.0.hasher(j)
        }
        fn memtest(
            &mut self,
            w: usize,
        ) -> crate::device::DeviceResult<Box<dyn crate::device::MemtestOp + '_>> {
            self.0.memtest(w)
        }
        fn memtest_capacity(&mut self) -> Option<u64> {
            Some(self.1)
        }
    }

    fn memtest_on(capacity: u64) -> (Result<(), WorkloadError>, Vec<Record>) {
        let mut dev = Capped(crate::device::cpu::CpuDevice::new(0), capacity);
        let stop = AtomicBool::new(false);
        let mut records = Vec::new();
        let mut sink = |r: Record| records.push(r);
        let mut progress = |_: f64, _: &str| {};
        let mut ctx = Context {
            stop: &stop,
            sink: &mut sink,
            progress: &mut progress,
            cycle: 0,
            seed: 3,
            busy_s: 0.0,
            sustain_s: 0.0,
        };
        let r = memtest_driver(&mut dev, 32 << 20, &[0], 1, &mut ctx);
        (r, records)
    }

    #[test]
    fn the_memory_test_takes_what_the_device_can_spare() {
        let (r, records) = memtest_on(80 << 20);
        assert!(r.is_ok());
        let counted = records.iter().find_map(|r| match r {
            Record::Metric(m) => Some(m.counted.clone()),
            _ => None,
        });
        assert!(counted.is_some_and(|c| c.ends_with("over 80 MiB")));
        let (r, records) = memtest_on(10 << 20);
        let e = r.expect_err("too little memory");
        assert!(
            e.to_string()
                .contains("only 10 MiB of device memory is free"),
            "{e}"
        );
        assert!(records.is_empty());
    }

    #[test]
    fn transfers_are_sized_to_the_memory() {
        let words = |gib, profile| match WorkloadSpec::for_device(
            WorkloadKind::Transfer,
            profile,
            &gpu(gib),
        ) {
            WorkloadSpec::Transfer { words, run, .. } => {
                assert!(run.is_empty(), "the runner fills in the run's devices");
                words
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(words(80, Profile::Quick) * 8, 256 << 20);
        assert_eq!(words(80, Profile::Standard) * 8, 512 << 20);
        // A 4 GiB card copies at most a sixteenth of its memory.
        assert_eq!(words(4, Profile::Standard) * 8, 256 << 20);
    }
}

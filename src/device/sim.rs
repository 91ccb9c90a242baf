//! The simulated backend: N GPUs that exist only in software.
//!
//! It exists to test the multi-GPU pipeline, the verdicts and the reports on
//! any machine, and to demo kiln. Every verification runs for real: each op
//! computes its workload with the CPU backend's code on small data, so that a
//! corrupted output is caught by the same checks as on hardware. Only the
//! *time* is modelled, and every figure it yields is marked `simulated`.
//!
//! The performance model: time = work / (nominal rate x device factor x
//! noise), where the nominal rates are those of an H100 SXM5 80GB (see
//! [`NOMINAL`]), the device factor is a fixed per-device offset within
//! +-1 % (silicon and cooling differ between boards), and the noise is drawn
//! per iteration from a seeded approximately normal distribution with a
//! standard deviation of 0.5 %. The same `--seed` gives the same figures.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::device::cpu::{CpuMatmul, CpuMemtest, CpuStream};
use crate::device::{
    BackendKind, BufferDigest, Device, DeviceError, DeviceInfo, DeviceResult, Direction, Engine,
    HashOp, MatmulOp, MatmulShape, MatmulVariant, MemtestOp, PeerLink, PeerOp, Precision, Seconds,
    SimOptions, StreamBuffer, StreamKernel, StreamOp, TransferOp,
};
use crate::reference::gen;
use crate::reference::hash::{self, HashJob, ScanResult};
use crate::reference::memtest::{MemErrors, Pattern};
use crate::reference::transfer::{self, CopyCheck};
use crate::reference::WorkloadKind;
use crate::telemetry::fabric::{self, Changed, Fabric, FabricState, LinkEnd};
use crate::telemetry::{Sample, Sensor};

/// Nominal rates of a simulated GPU, each with where the figure comes from.
#[derive(Debug, Clone, Copy)]
pub struct Nominal {
    /// GEMMs through the library, TFLOP/s: bf16, fp16, tf32, fp8, fp32,
    /// fp64. H100 SXM5 datasheet dense peaks (half the "with sparsity"
    /// figures): 989 bf16/fp16, 495 tf32, 1979 fp8, 67 fp32 (SIMT), 67 fp64
    /// (tensor core); reached at 75 %, 75 %, 75 %, 65 %, 75 % and 80 %.
    pub matmul: [f64; 6],
    /// kiln's mma.sync kernel, bf16 and fp16, TFLOP/s: about half of the
    /// library's, the first target for it.
    pub matmul_mma: f64,
    /// Host to device and device to host, pinned memory, GB/s one way:
    /// PCIe Gen5 x16 carries 63 GB/s before protocol overhead.
    pub h2d: f64,
    /// Device to host, GB/s.
    pub d2h: f64,
    /// Peer to peer, GB/s one way: NVLink 4 through NVSwitch, 450 GB/s each
    /// way, at 80 %.
    pub p2p: f64,
    /// Peer to peer over PCIe Gen5 x16 when no NVLink is up, GB/s one way
    /// (as host copies: 63 GB/s before protocol overhead, at 80 %).
    pub p2p_pcie: f64,
    /// HBM3 read, GB/s. Datasheet 3.35 TB/s; about 95 % reachable.
    pub bw_read: f64,
    /// HBM3 write, GB/s (about 90 % of 3.35 TB/s).
    pub bw_write: f64,
    /// HBM3 copy, bytes read + written, GB/s (about 90 %).
    pub bw_copy: f64,
    /// HBM3 triad, bytes read + written, GB/s (about 91 %).
    pub bw_triad: f64,
    /// Double SHA-256 nonces, MH/s: about 10 G SHA-256 compressions/s.
    pub sha256d: f64,
    /// Memory test pattern traffic, GB/s (about half of copy bandwidth).
    pub memtest: f64,
}

/// The model of every simulated GPU: an H100 SXM5 80GB HBM3.
pub const NOMINAL: Nominal = Nominal {
    matmul: [742.0, 742.0, 371.0, 1286.0, 50.3, 53.6],
    matmul_mma: 371.0,
    h2d: 53.0,
    d2h: 53.0,
    p2p: 360.0,
    p2p_pcie: 50.0,
    bw_read: 3_200.0,
    bw_write: 3_000.0,
    bw_copy: 3_000.0,
    bw_triad: 3_050.0,
    sha256d: 5_000.0,
    memtest: 1_500.0,
};

impl Nominal {
    /// The nominal rate of a GEMM variant, TFLOP/s.
    pub fn matmul_tflops(&self, v: MatmulVariant) -> f64 {
        if v.engine == Engine::Mma {
            return self.matmul_mma;
        }
        self.matmul[match v.precision {
            Precision::Bf16 => 0,
            Precision::Fp16 => 1,
            Precision::Tf32 => 2,
            Precision::Fp8 => 3,
            Precision::Fp32 => 4,
            Precision::Fp64 => 5,
        }]
    }
}

/// PCI bus ids of the eight GPUs of an HGX H100 board, in order.
const HGX_BUS: [u8; 8] = [0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb];

/// The simulated GPUs for `opts`.
pub fn devices(opts: &SimOptions) -> Vec<SimDevice> {
    (0..opts.gpus)
        .map(|i| {
            // The fabric manager is the node's: whichever GPU it is injected
            // into, every GPU shows it.
            let faults = opts
                .faults
                .iter()
                .filter(|f| f.device == i || f.fault == Fault::Fabric(FabricFault::ManagerDown))
                .map(|f| (f.fault.clone(), f.at_s))
                .collect();
            let mut d = SimDevice::new(i, opts.seed, faults);
            d.name_node(&opts.node);
            d.pace = opts.pace;
            d
        })
        .collect()
}

/// A fault the sim backend can inject into one device (`--inject`).
///
/// Corruption faults corrupt the real data that kiln's verification then
/// checks; telemetry faults change what the device's sensors report. The
/// verdict comes from detection, never from the injector.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// `sdc`: matrix multiply outputs get a flipped exponent bit, at a
    /// different element every product.
    Sdc,
    /// `membit`: a memory-test word gets a flipped bit after every fill.
    MemBit,
    /// `hashbit`: the SHA-256 midstate has a flipped bit, so digests are wrong.
    HashBit,
    /// `copybit`: the bandwidth copy's output gets a flipped bit.
    CopyBit,
    /// `xferbit`: every host/device and peer copy lands with a flipped bit.
    XferBit,
    /// `slow=F`: throughput multiplied by F (0 < F <= 1).
    Slow(f64),
    /// `throttle=thermal|power|hw`: the clocks throttle for that reason.
    Throttle(ThrottleKind),
    /// `hot=T`: the GPU reports T degrees Celsius.
    Hot(f64),
    /// `ecc=N`: N new uncorrectable ECC errors.
    Ecc(u64),
    /// `xid=N`: an XID event with code N.
    Xid(u32),
    /// `pcie=GEN:WIDTH`: the PCIe link trained at GEN xWIDTH (max 5 x16).
    Pcie(u32, u32),
    /// `hang=WORKLOAD`: that workload never returns.
    Hang(WorkloadKind),
    /// `lost=SECONDS`: the device falls off the bus after SECONDS.
    Lost(f64),
    /// `nvlinkdown=N`: N of the 18 NVLinks inactive.
    NvlinkDown(u32),
    /// `nvlinkerr=R`: NVLink replay errors at R per second.
    NvlinkErrors(f64),
    /// `powerlow=F`: under load the GPU draws only F of its enforced power
    /// limit (a failing power stage or cable: clocks and throughput look
    /// normal at first).
    PowerLow(f64),
    /// `fabric=unhealthy|degraded|fm_down`: the NVSwitch fabric's health
    /// mask reports a route unhealthy or degraded bandwidth, or the node's
    /// fabric manager is not running (every GPU's registration not started,
    /// and CUDA refuses work with CUDA_ERROR_SYSTEM_NOT_READY).
    Fabric(FabricFault),
    /// `nvlinkwire=LINK`: that NVLink is seated on the wrong NVSwitch (it
    /// ends on the next one), as a mis-seated board or cable leaves it.
    NvlinkWire(u32),
    /// `persistence=off`: persistence mode disabled.
    PersistenceOff,
    /// `mig=on`: MIG mode enabled; the GPU cannot be tested whole
    /// (`mig_enabled`, as on the CUDA backend).
    MigOn,
    /// `pulse=lost|error|sdc`: the board's power delivery fails under the
    /// power pulses only, from their third load step on: the GPU falls off
    /// the bus (XID 79), a launch fails, or products come out with a
    /// flipped bit. Steady load is unaffected.
    Pulse(PulseFault),
}

/// How a simulated GPU's power delivery fails under the power pulses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PulseFault {
    /// Falls off the bus.
    Lost,
    /// A launch fails.
    Error,
    /// A flipped output bit.
    Sdc,
}

/// The load step of the pulses at which a `pulse=` fault strikes (each of
/// a simulated pulse's bursts is one product).
const PULSE_FAULT_STEP: usize = 3;

/// What is wrong with a simulated GPU's NVSwitch fabric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FabricFault {
    /// Health mask: route unhealthy; summary unhealthy.
    Unhealthy,
    /// Health mask: bandwidth degraded; summary limited capacity.
    Degraded,
    /// The fabric manager is not running: registration not started.
    ManagerDown,
}

/// The four NVSwitches of the simulated HGX board, by PCI bus id; link L
/// of every GPU ends on switch L mod 4 (5, 5, 4 and 4 links).
pub const SIM_NVSWITCH_BUS: [&str; 4] = [
    "00000000:05:00.0",
    "00000000:06:00.0",
    "00000000:07:00.0",
    "00000000:08:00.0",
];

/// NVLinks of the simulated GPU (NVLink 4, H100 SXM).
const SIM_NVLINKS: u32 = 18;

/// Why a simulated GPU throttles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleKind {
    /// Thermal slowdown (`sw_thermal_slowdown`).
    Thermal,
    /// Power brake (`hw_power_brake_slowdown`).
    Power,
    /// Hardware slowdown (`hw_slowdown`): clocks halved or worse, e.g. by
    /// an external signal the board asserts.
    Hw,
}

/// One `--inject DEVICE:FAULT[@START]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Injection {
    /// Device index.
    pub device: usize,
    /// The fault.
    pub fault: Fault,
    /// Seconds after the run starts when the fault begins (0: from the start).
    pub at_s: f64,
}

const FAULT_HELP: &str = "expected DEVICE:FAULT[@START], FAULT one of sdc, membit, hashbit, copybit, xferbit, slow=F, throttle=thermal|power|hw, hot=T, ecc=N, xid=N, pcie=GEN:WIDTH, hang=WORKLOAD, lost=SECONDS, nvlinkdown=N, nvlinkerr=PER_S, powerlow=F, fabric=unhealthy|degraded|fm_down, nvlinkwire=LINK, persistence=off, mig=on, pulse=lost|error|sdc; START e.g. 60s";

/// Parses one `--inject` value, e.g. `2:slow=0.85`, `5:membit@90s`.
pub fn parse_injection(text: &str) -> Result<Injection, String> {
    let bad = |why: String| format!("--inject {text:?}: {why}; {FAULT_HELP}");
    let (dev, rest) = text
        .split_once(':')
        .ok_or_else(|| bad("no device index".into()))?;
    let device: usize = dev
        .trim()
        .parse()
        .map_err(|_| bad(format!("{dev:?} is not a device index")))?;
    let (fault, at_s) = match rest.rsplit_once('@') {
        Some((f, at)) => {
            let d = humantime::parse_duration(at.trim())
                .map_err(|_| bad(format!("start {at:?} is not a duration")))?;
            (f, d.as_secs_f64())
        }
        None => (rest, 0.0),
    };
    let (name, value) = match fault.split_once('=') {
        Some((n, v)) => (n.trim(), Some(v.trim())),
        None => (fault.trim(), None),
    };
    let need = || value.ok_or_else(|| bad(format!("{name} needs a value ({name}=...)")));
    let number = |_: Option<&str>| -> Result<f64, String> {
        let v = need()?;
        v.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| bad(format!("{name}={v}: not a number")))
    };
    let count = |_: Option<&str>| -> Result<u64, String> {
        let v = need()?;
        v.parse::<u64>()
            .map_err(|_| bad(format!("{name}={v}: not a whole number")))
    };
    let fault = match name {
        "sdc" | "membit" | "hashbit" | "copybit" | "xferbit" if value.is_some() => {
            return Err(bad(format!("{name} takes no value")))
        }
        "sdc" => Fault::Sdc,
        "membit" => Fault::MemBit,
        "hashbit" => Fault::HashBit,
        "copybit" => Fault::CopyBit,
        "xferbit" => Fault::XferBit,
        "slow" => {
            let f = number(value)?;
            if !(f > 0.0 && f <= 1.0) {
                return Err(bad(format!(
                    "slow={f}: the factor must be above 0 and at most 1"
                )));
            }
            Fault::Slow(f)
        }
        "throttle" => match need()? {
            "thermal" => Fault::Throttle(ThrottleKind::Thermal),
            "power" => Fault::Throttle(ThrottleKind::Power),
            "hw" => Fault::Throttle(ThrottleKind::Hw),
            other => {
                return Err(bad(format!(
                    "throttle={other}: expected thermal, power or hw"
                )))
            }
        },
        "hot" => Fault::Hot(number(value)?),
        "ecc" => Fault::Ecc(count(value)?),
        "xid" => {
            Fault::Xid(u32::try_from(count(value)?).map_err(|_| bad("xid code too large".into()))?)
        }
        "pcie" => {
            let v = need()?;
            let parsed = v
                .split_once(':')
                .and_then(|(g, w)| Some((g.parse::<u32>().ok()?, w.parse::<u32>().ok()?)));
            match parsed {
                Some((g, w)) if (1..=6).contains(&g) && [1, 2, 4, 8, 16].contains(&w) => {
                    Fault::Pcie(g, w)
                }
                _ => {
                    return Err(bad(format!(
                        "pcie={v}: expected GEN:WIDTH, e.g. 4:16 or 5:8"
                    )))
                }
            }
        }
        "nvlinkdown" => {
            let n = count(value)?;
            if !(1..=u64::from(SIM_NVLINKS)).contains(&n) {
                return Err(bad(format!(
                    "nvlinkdown={n}: expected 1 to {SIM_NVLINKS} links"
                )));
            }
            Fault::NvlinkDown(n as u32)
        }
        "powerlow" => {
            let f = number(value)?;
            if !(f > 0.0 && f < 1.0) {
                return Err(bad(format!(
                    "powerlow={f}: expected the fraction of the power limit drawn, above 0 and below 1"
                )));
            }
            Fault::PowerLow(f)
        }
        "nvlinkerr" => {
            let r = number(value)?;
            if !(r > 0.0 && r <= 1e6) {
                return Err(bad(format!(
                    "nvlinkerr={r}: expected errors per second, more than 0"
                )));
            }
            Fault::NvlinkErrors(r)
        }
        "fabric" => match need()? {
            "unhealthy" => Fault::Fabric(FabricFault::Unhealthy),
            "degraded" => Fault::Fabric(FabricFault::Degraded),
            "fm_down" => Fault::Fabric(FabricFault::ManagerDown),
            other => {
                return Err(bad(format!(
                    "fabric={other}: expected unhealthy, degraded or fm_down"
                )))
            }
        },
        "nvlinkwire" => {
            let l = count(value)?;
            if l >= u64::from(SIM_NVLINKS) {
                return Err(bad(format!(
                    "nvlinkwire={l}: expected a link from 0 to {}",
                    SIM_NVLINKS - 1
                )));
            }
            Fault::NvlinkWire(l as u32)
        }
        "persistence" => match need()? {
            "off" => Fault::PersistenceOff,
            other => return Err(bad(format!("persistence={other}: expected off"))),
        },
        "pulse" => match need()? {
            "lost" => Fault::Pulse(PulseFault::Lost),
            "error" => Fault::Pulse(PulseFault::Error),
            "sdc" => Fault::Pulse(PulseFault::Sdc),
            other => return Err(bad(format!("pulse={other}: expected lost, error or sdc"))),
        },
        "mig" => match need()? {
            "on" => Fault::MigOn,
            other => return Err(bad(format!("mig={other}: expected on"))),
        },
        "hang" => {
            let v = need()?;
            let w = WorkloadKind::ALL
                .into_iter()
                .find(|k| k.name() == v)
                .ok_or_else(|| {
                    bad(format!(
                        "hang={v}: expected matmul, bandwidth, hash, memtest, transfer or pulse"
                    ))
                })?;
            Fault::Hang(w)
        }
        "lost" => {
            let s = number(value)?;
            if s < 0.0 {
                return Err(bad(format!("lost={s}: seconds cannot be negative")));
            }
            Fault::Lost(s)
        }
        other => return Err(bad(format!("unknown fault {other:?}"))),
    };
    Ok(Injection {
        device,
        fault,
        at_s,
    })
}

/// One simulated GPU.
pub struct SimDevice {
    info: DeviceInfo,
    model: Model,
    state: Arc<SimState>,
    /// Wall time each workload preparation takes at least.
    pace: std::time::Duration,
}

/// What a simulated GPU's ops and its sensor share.
#[derive(Debug)]
struct SimState {
    faults: Vec<(Fault, f64)>,
    started: Mutex<Option<Instant>>,
    xid_reported: AtomicBool,
    /// The XID 79 of a lost GPU was reported.
    lost_xid_reported: AtomicBool,
    seed: u64,
    /// The NVLink endpoints last journaled.
    links: Changed<Vec<LinkEnd>>,
    /// Seconds into the run when a `pulse=lost` fault struck.
    pulse_lost_at: Mutex<Option<f64>>,
}

impl SimState {
    /// Seconds since the run's start (the instant the runner gave, shared by
    /// every device and the journal), or since the first operation when no
    /// run set it (selftest, benches).
    fn elapsed(&self) -> Option<f64> {
        let s = self.started.lock().ok()?;
        s.map(|t| t.elapsed().as_secs_f64())
    }

    fn mark_started(&self) {
        if let Ok(mut s) = self.started.lock() {
            s.get_or_insert_with(Instant::now);
        }
    }

    /// The faults active now.
    fn active(&self) -> impl Iterator<Item = &Fault> {
        let now = self.elapsed();
        self.faults
            .iter()
            .filter(move |(_, at)| now.is_some_and(|t| t >= *at))
            .map(|(f, _)| f)
    }

    fn has(&self, want: impl Fn(&Fault) -> bool) -> bool {
        self.active().any(want)
    }

    /// Throughput factor of the active slow and throttle faults.
    fn speed(&self) -> f64 {
        self.active()
            .map(|f| match f {
                Fault::Slow(x) => *x,
                // A throttled GPU is a little slower; the telemetry rule,
                // not the peer rule, is what must catch it.
                Fault::Throttle(_) => 0.98,
                _ => 1.0,
            })
            .product()
    }

    /// Host-link throughput factor: a link trained below Gen5 x16 carries
    /// proportionally less (per-lane rates 0.25, 0.5, 0.985, 1.969, 3.938,
    /// 7.563 GB/s for Gen1 to Gen6).
    fn link(&self) -> f64 {
        const LANE: [f64; 6] = [0.25, 0.5, 0.985, 1.969, 3.938, 7.563];
        self.active()
            .find_map(|f| match f {
                Fault::Pcie(g, w) => {
                    let lane = LANE[(*g as usize).clamp(1, 6) - 1];
                    Some((lane * f64::from(*w) / (LANE[4] * 16.0)).min(1.0))
                }
                _ => None,
            })
            .unwrap_or(1.0)
    }

    /// Fails when the device is lost; never returns when `workload` hangs.
    fn gate(&self, workload: WorkloadKind) -> DeviceResult<()> {
        self.mark_started();
        // Node states, as the CUDA backend meets them: cuInit or the
        // context answers CUDA_ERROR_SYSTEM_NOT_READY without the fabric
        // manager; a GPU in MIG mode is not tested whole.
        if self.has(|f| *f == Fault::Fabric(FabricFault::ManagerDown)) {
            return Err(DeviceError::node_state(
                "fabric_manager_down",
                "simulated CUDA_ERROR_SYSTEM_NOT_READY (802): the NVIDIA fabric manager is not running on this NVSwitch node: start it (systemctl start nvidia-fabricmanager) and run again",
            ));
        }
        if self.has(|f| *f == Fault::MigOn) {
            return Err(DeviceError::node_state(
                "mig_enabled",
                "the simulated GPU is in MIG mode, and kiln tests whole GPUs: disable MIG (nvidia-smi -i <gpu> -mig 0, then reset the GPU) and run again",
            ));
        }
        if let Some(t) = self.lost_after() {
            if self.elapsed().is_some_and(|e| e >= t) {
                return Err(DeviceError::lost(format!(
                    "simulated GPU fell off the bus {} into the run",
                    crate::stats::secs(t)
                )));
            }
        }
        if self.has(|f| *f == Fault::Hang(workload)) {
            // A hung kernel: this thread never comes back. The runner's
            // watchdog rejects the device and the others finish the run.
            loop {
                std::thread::park();
            }
        }
        Ok(())
    }

    /// The end-of-cycle check: a device that fell off the bus after its
    /// last workload is gone all the same.
    fn health(&self) -> DeviceResult<()> {
        match self.lost_after() {
            Some(t) if self.elapsed().is_some_and(|e| e >= t) => Err(DeviceError::lost(format!(
                "simulated GPU fell off the bus {} into the run",
                crate::stats::secs(t)
            ))),
            _ => Ok(()),
        }
    }

    /// Where each of the first `active` NVLinks ends: link L on NVSwitch
    /// L mod 4, a mis-seated one (`nvlinkwire`) on the next switch. The
    /// wiring is the board's: it shows from the start, whatever the
    /// fault's start time.
    fn link_ends(&self, active: u32) -> Vec<LinkEnd> {
        (0..active)
            .map(|l| {
                let mut k = (l % 4) as usize;
                if self.faults.iter().any(|(f, _)| *f == Fault::NvlinkWire(l)) {
                    k = (k + 1) % 4;
                }
                LinkEnd {
                    link: l,
                    remote_bus: SIM_NVSWITCH_BUS[k].into(),
                    remote: fabric::REMOTE_NVSWITCH.into(),
                }
            })
            .collect()
    }

    fn lost_after(&self) -> Option<f64> {
        let planned = self.faults.iter().find_map(|(f, at)| match f {
            Fault::Lost(s) => Some(s + at),
            _ => None,
        });
        let struck = self.pulse_lost_at.lock().ok().and_then(|t| *t);
        match (planned, struck) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What a `pulse=` fault does to the `runs`-th product of the pulses:
    /// an error to return, or whether to flip an output bit.
    fn pulse_fault(&self, runs: usize) -> DeviceResult<bool> {
        if runs < PULSE_FAULT_STEP {
            return Ok(false);
        }
        let Some(kind) = self.active().find_map(|f| match f {
            Fault::Pulse(k) => Some(*k),
            _ => None,
        }) else {
            return Ok(false);
        };
        match kind {
            PulseFault::Lost => {
                let now = self.elapsed().unwrap_or(0.0);
                if let Ok(mut t) = self.pulse_lost_at.lock() {
                    t.get_or_insert(now);
                }
                Err(DeviceError::lost(format!(
                    "simulated GPU fell off the bus at load step {runs} of the power pulses, {} into the run",
                    crate::stats::secs(now)
                )))
            }
            PulseFault::Error => Err(DeviceError::failed(format!(
                "simulated CUDA_ERROR_LAUNCH_FAILED (719) at load step {runs} of the power pulses: the board's power delivery faltered"
            ))),
            PulseFault::Sdc => Ok(true),
        }
    }
}

impl Sensor for SimState {
    fn sample(&self, t_s: f64) -> Sample {
        let busy = self.elapsed().is_some();
        let noise = (gen::random_u64(self.seed, 31, (t_s * 10.0) as u64) >> 11) as f64
            / (1u64 << 53) as f64;
        let mut s = Sample {
            t_s,
            gpu_temp_c: Some(if busy { 61.0 + 4.0 * noise } else { 34.0 }),
            mem_temp_c: Some(if busy { 68.0 + 3.0 * noise } else { 40.0 }),
            power_w: Some(if busy { 640.0 + 30.0 * noise } else { 72.0 }),
            power_limit_w: Some(700.0),
            // The model's power is the load's at once.
            power_avg_s: None,
            sm_clock_mhz: Some(if busy { 1980.0 } else { 345.0 }),
            mem_clock_mhz: Some(2619.0),
            util_pct: Some(if busy { 100.0 } else { 0.0 }),
            throttle: if busy {
                vec![]
            } else {
                vec!["gpu_idle".into()]
            },
            ecc_corrected: Some(0),
            ecc_uncorrected: Some(0),
            remapped_rows_pending: Some(0),
            remapped_rows_failed: Some(0),
            xid: Some(Vec::new()),
            pcie_gen: Some(5),
            pcie_width: Some(16),
            pcie_max_gen: Some(5),
            pcie_max_width: Some(16),
            nvlink_links: Some(SIM_NVLINKS),
            nvlink_active: Some(SIM_NVLINKS),
            nvlink_replay: Some(0),
            nvlink_crc: Some(0),
            fabric: Some(Fabric {
                state: FabricState::Completed,
                status: 0,
                health_mask: Some(fabric::HEALTHY_MASK),
                health_summary: Some(1),
                // A single-node HGX board belongs to no multi-node cluster.
                clique_id: 0,
                cluster_uuid: fabric::ZERO_UUID.into(),
            }),
            nvlink_remote: None,
            persistence: Some(true),
            mig: Some(false),
        };
        if let Some(t) = self.lost_after() {
            if self.elapsed().is_some_and(|e| e >= t) {
                // A GPU that fell off the bus answers nothing, but the
                // driver has logged why: XID 79 (GPU has fallen off the
                // bus), once, as NVML's event set delivers it.
                let xid = (!self.lost_xid_reported.swap(true, Ordering::SeqCst)).then(|| vec![79]);
                return Sample {
                    t_s,
                    xid,
                    ..Sample::default()
                };
            }
        }
        // The PCIe link is trained at boot, and the fabric, persistence and
        // MIG modes are the node's from boot: they show before the first
        // operation too.
        for (f, _) in self.faults.iter().filter(|(_, at)| *at == 0.0) {
            if let Fault::Pcie(g, w) = f {
                s.pcie_gen = Some(*g);
                s.pcie_width = Some(*w);
            }
            node_state(f, &mut s);
        }
        for f in self.active() {
            match f {
                Fault::Throttle(ThrottleKind::Thermal) => {
                    s.throttle.push("sw_thermal_slowdown".into());
                    s.sm_clock_mhz = Some(1410.0);
                    s.gpu_temp_c = Some(86.0);
                }
                Fault::Throttle(ThrottleKind::Power) => {
                    s.throttle.push("hw_power_brake_slowdown".into());
                    s.sm_clock_mhz = Some(1095.0);
                }
                Fault::Throttle(ThrottleKind::Hw) => {
                    s.throttle.push("hw_slowdown".into());
                    s.sm_clock_mhz = Some(990.0);
                }
                Fault::Hot(t) => s.gpu_temp_c = Some(*t),
                Fault::Ecc(n) => {
                    // Each uncorrectable error leaves a row remapping
                    // pending until the GPU is reset (A100 and later).
                    s.ecc_uncorrected = Some(*n);
                    s.remapped_rows_pending = Some(*n);
                }
                Fault::Xid(code) if !self.xid_reported.swap(true, Ordering::SeqCst) => {
                    s.xid.get_or_insert_with(Vec::new).push(*code);
                }
                Fault::Pcie(g, w) => {
                    s.pcie_gen = Some(*g);
                    s.pcie_width = Some(*w);
                }
                Fault::NvlinkDown(n) => s.nvlink_active = Some(SIM_NVLINKS - n),
                Fault::PowerLow(f) if self.elapsed().is_some() => {
                    s.power_w = s.power_limit_w.map(|l| l * f);
                }
                Fault::NvlinkErrors(r) => {
                    let t = self.elapsed().unwrap_or(0.0);
                    s.nvlink_replay = Some((r * t).ceil() as u64);
                }
                Fault::Fabric(_) | Fault::PersistenceOff | Fault::MigOn => node_state(f, &mut s),
                _ => {}
            }
        }
        s.nvlink_remote = self
            .links
            .report(self.link_ends(s.nvlink_active.unwrap_or(0)));
        s
    }
}

/// What a fabric, persistence or MIG fault makes the sensors report.
fn node_state(fault: &Fault, s: &mut Sample) {
    match fault {
        Fault::Fabric(kind) => {
            if let Some(f) = s.fabric.as_mut() {
                match kind {
                    FabricFault::Unhealthy => {
                        f.health_mask = Some((fabric::HEALTHY_MASK & !(0x3 << 4)) | (1 << 4));
                        f.health_summary = Some(2);
                    }
                    FabricFault::Degraded => {
                        f.health_mask = Some((fabric::HEALTHY_MASK & !0x3) | 1);
                        f.health_summary = Some(3);
                    }
                    FabricFault::ManagerDown => {
                        f.state = FabricState::NotStarted;
                        f.health_mask = Some(0);
                        f.health_summary = Some(0);
                    }
                }
            }
        }
        Fault::PersistenceOff => s.persistence = Some(false),
        Fault::MigOn => s.mig = Some(true),
        _ => {}
    }
}

/// Seeded timing model of one device.
#[derive(Debug, Clone)]
struct Model {
    seed: u64,
    counter: u64,
    device_factor: f64,
}

impl Model {
    fn uniform(&mut self) -> f64 {
        self.counter += 1;
        (gen::random_u64(self.seed, 21, self.counter) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Device time of `work` units at `nominal` units per second, slowed by
    /// `speed` (1 for a healthy device).
    fn time(&mut self, work: f64, nominal: f64, speed: f64) -> Seconds {
        // Irwin-Hall: the sum of 12 uniforms minus 6 has mean 0 and sd 1.
        let z: f64 = (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0;
        let rate = nominal * speed * self.device_factor * (1.0 + 0.005 * z);
        work / rate.max(1e-9)
    }
}

impl SimDevice {
    /// Simulated GPU `index`; `seed` drives its noise; `faults` are injected
    /// with their start times in seconds.
    pub fn new(index: usize, seed: u64, faults: Vec<(Fault, f64)>) -> Self {
        let (uuid, serial) = identity(node_id_seed(""), index);
        let bus = HGX_BUS.get(index).map_or_else(
            || format!("00000001:{:02x}:00.0", index),
            |b| format!("00000000:{b:02x}:00.0"),
        );
        let device_seed = gen::mix64(seed ^ (index as u64).wrapping_mul(gen::GOLDEN));
        let mut model = Model {
            seed: device_seed,
            counter: 0,
            device_factor: 1.0,
        };
        model.device_factor = 1.0 + 0.02 * (model.uniform() - 0.5);
        SimDevice {
            info: DeviceInfo {
                index,
                name: "Simulated H100 80GB HBM3".into(),
                uuid: Some(uuid),
                serial: Some(serial),
                pci_bus_id: Some(bus),
                pci_device_id: None,
                memory_bytes: 80 << 30,
                compute_units: 132,
                backend: BackendKind::Sim,
                simulated: true,
            },
            model,
            state: Arc::new(SimState {
                faults,
                started: Mutex::new(None),
                xid_reported: AtomicBool::new(false),
                lost_xid_reported: AtomicBool::new(false),
                seed: device_seed,
                links: Changed::default(),
                pulse_lost_at: Mutex::new(None),
            }),
            pace: std::time::Duration::ZERO,
        }
    }
}

/// The identity seed of the simulated GPUs of node `node`: FNV-1a of its
/// name, so that every node (`--node-name`) has its own serials and UUIDs,
/// the same on every run and every machine. The empty name (a library
/// caller that names no node) keeps kiln's original identities.
fn node_id_seed(node: &str) -> u64 {
    const LEGACY: u64 = 0x5151;
    if node.is_empty() {
        return LEGACY;
    }
    let hash = node.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    gen::mix64(LEGACY ^ hash)
}

/// The UUID and serial of simulated GPU `index` under identity seed `ids`.
fn identity(ids: u64, index: usize) -> (String, String) {
    let id = gen::random_u64(ids, 1, index as u64);
    let id2 = gen::random_u64(ids, 2, index as u64);
    let uuid = format!(
        "GPU-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        id >> 32,
        (id >> 16) & 0xffff,
        id & 0xffff,
        id2 >> 48,
        id2 & 0xffff_ffff_ffff
    );
    (uuid, format!("SIM{:010}", id2 % 10_000_000_000))
}

impl SimDevice {
    /// A prepared product of the `phase` workload, after `pace` of wall time.
    fn product(
        &mut self,
        shape: MatmulShape,
        phase: WorkloadKind,
        pace: std::time::Duration,
    ) -> DeviceResult<Box<dyn MatmulOp + '_>> {
        self.state.gate(phase)?;
        std::thread::sleep(pace);
        if !shape.variant.is_valid() {
            return Err(DeviceError::unsupported(format!(
                "{}: no {} matmul",
                self.info.name,
                shape.variant.name()
            )));
        }
        Ok(Box::new(SimMatmul {
            inner: CpuMatmul::new(shape),
            model: &mut self.model,
            state: &self.state,
            nominal_tflops: NOMINAL.matmul_tflops(shape.variant),
            runs: 0,
            phase,
        }))
    }

    /// Gives the GPU the serial and UUID it has in node `node` (see
    /// [`SimOptions::node`]); its figures do not change.
    pub fn name_node(&mut self, node: &str) {
        let (uuid, serial) = identity(node_id_seed(node), self.info.index);
        self.info.uuid = Some(uuid);
        self.info.serial = Some(serial);
    }
}

impl Device for SimDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn run_started(&mut self, at: Instant) {
        if let Ok(mut s) = self.state.started.lock() {
            *s = Some(at);
        }
    }

    fn health(&mut self) -> DeviceResult<()> {
        self.state.health()
    }

    fn matmul(&mut self, shape: MatmulShape) -> DeviceResult<Box<dyn MatmulOp + '_>> {
        // The matmul workload prepares one product per variant: together
        // they take the pace of one workload.
        let pace = self.pace / MatmulVariant::GPU.len() as u32;
        self.product(shape, WorkloadKind::Matmul, pace)
    }

    fn pulse(&mut self, shape: MatmulShape) -> DeviceResult<Box<dyn MatmulOp + '_>> {
        let pace = self.pace;
        self.product(shape, WorkloadKind::Pulse, pace)
    }

    fn stream(&mut self, len: usize, seed: u64) -> DeviceResult<Box<dyn StreamOp + '_>> {
        self.state.gate(WorkloadKind::Bandwidth)?;
        std::thread::sleep(self.pace);
        Ok(Box::new(SimStream {
            inner: CpuStream::new(len, seed),
            model: &mut self.model,
            state: &self.state,
        }))
    }

    fn hasher(&mut self, job: &HashJob) -> DeviceResult<Box<dyn HashOp + '_>> {
        self.state.gate(WorkloadKind::Hash)?;
        std::thread::sleep(self.pace);
        Ok(Box::new(SimHash {
            job: job.clone(),
            mid: hash::midstate(&job.header),
            model: &mut self.model,
            state: &self.state,
        }))
    }

    fn memtest(&mut self, words: usize) -> DeviceResult<Box<dyn MemtestOp + '_>> {
        self.state.gate(WorkloadKind::Memtest)?;
        std::thread::sleep(self.pace);
        Ok(Box::new(SimMemtest {
            inner: CpuMemtest::new(words),
            model: &mut self.model,
            state: &self.state,
        }))
    }

    fn transfer(&mut self, words: usize, seed: u64) -> DeviceResult<Box<dyn TransferOp + '_>> {
        self.state.gate(WorkloadKind::Transfer)?;
        std::thread::sleep(self.pace / 2);
        let host: Vec<u64> = (0..words as u64)
            .map(|i| transfer::word(seed, transfer::H2D_STREAM, i))
            .collect();
        let dev_src: Vec<u64> = (0..words as u64)
            .map(|i| transfer::word(seed, transfer::D2H_STREAM, i))
            .collect();
        Ok(Box::new(SimTransfer {
            seed,
            host,
            dev_src,
            dev_dst: vec![0; words],
            host_dst: vec![0; words],
            model: &mut self.model,
            state: &self.state,
        }))
    }

    fn peer(
        &mut self,
        words: usize,
        seed: u64,
        peers: &[usize],
    ) -> DeviceResult<Box<dyn PeerOp + '_>> {
        self.state.gate(WorkloadKind::Transfer)?;
        std::thread::sleep(self.pace / 2);
        let src: Vec<u64> = (0..words as u64)
            .map(|i| transfer::word(seed, transfer::P2P_STREAM, i))
            .collect();
        Ok(Box::new(SimPeer {
            seed,
            peers: peers.to_vec(),
            dst: vec![0; words],
            src,
            model: &mut self.model,
            state: &self.state,
        }))
    }

    fn sensor(&self) -> Option<Arc<dyn Sensor>> {
        Some(self.state.clone())
    }

    fn sensor_inventory(&self) -> Vec<String> {
        vec!["simulated: temperatures, power, clocks, throttle reasons, ECC, row remapping, XID, PCIe link, NVLink endpoints, NVSwitch fabric, persistence and MIG modes".into()]
    }
}

struct SimMatmul<'a> {
    inner: CpuMatmul,
    model: &'a mut Model,
    state: &'a SimState,
    nominal_tflops: f64,
    runs: usize,
    /// The workload the product belongs to: `sdc` acts in matmul, the
    /// `pulse=` faults in the power pulses.
    phase: WorkloadKind,
}

impl MatmulOp for SimMatmul<'_> {
    fn run(&mut self) -> DeviceResult<Seconds> {
        self.state.gate(self.phase)?;
        self.inner.compute();
        self.runs += 1;
        let n = self.inner.n();
        let flip = match self.phase {
            WorkloadKind::Pulse => self.state.pulse_fault(self.runs)?,
            _ => self.state.has(|f| *f == Fault::Sdc),
        };
        if flip {
            // An intermittent fault: a different element each product.
            let index = (self.runs * 7919) % (n * n).max(1);
            self.inner.flip_output_bit(index, 29);
        }
        let flops = 2.0 * (n as f64).powi(3);
        Ok(self
            .model
            .time(flops, self.nominal_tflops * 1e12, self.state.speed()))
    }

    fn read(&mut self, positions: &[(usize, usize)]) -> DeviceResult<Vec<f64>> {
        self.inner.read(positions)
    }

    fn checksum(&mut self) -> DeviceResult<u64> {
        self.inner.checksum()
    }
}

/// Host/device copies between two pairs of host vectors.
struct SimTransfer<'a> {
    seed: u64,
    host: Vec<u64>,
    dev_src: Vec<u64>,
    dev_dst: Vec<u64>,
    host_dst: Vec<u64>,
    model: &'a mut Model,
    state: &'a SimState,
}

/// Flips a bit of a copy's destination when `xferbit` is active.
fn corrupt_copy(state: &SimState, dst: &mut [u64]) {
    if state.has(|f| *f == Fault::XferBit) {
        let i = dst.len() / 2;
        if let Some(w) = dst.get_mut(i) {
            *w ^= 1 << 33;
        }
    }
}

impl TransferOp for SimTransfer<'_> {
    fn words(&self) -> usize {
        self.host.len()
    }

    fn run(&mut self, dir: Direction) -> DeviceResult<Seconds> {
        self.state.gate(WorkloadKind::Transfer)?;
        let dst = match dir {
            Direction::HostToDevice => {
                self.dev_dst.copy_from_slice(&self.host);
                &mut self.dev_dst
            }
            Direction::DeviceToHost => {
                self.host_dst.copy_from_slice(&self.dev_src);
                &mut self.host_dst
            }
        };
        corrupt_copy(self.state, dst);
        let nominal = match dir {
            Direction::HostToDevice => NOMINAL.h2d,
            Direction::DeviceToHost => NOMINAL.d2h,
        };
        let bytes = (self.host.len() * 8) as f64;
        Ok(self
            .model
            .time(bytes, nominal * 1e9 * self.state.link(), self.state.speed()))
    }

    fn check(&mut self, dir: Direction) -> DeviceResult<CopyCheck> {
        let (stream, data) = match dir {
            Direction::HostToDevice => (transfer::H2D_STREAM, &self.dev_dst),
            Direction::DeviceToHost => (transfer::D2H_STREAM, &self.host_dst),
        };
        Ok(transfer::check_words(self.seed, stream, data))
    }
}

/// Peer copies: every simulated GPU of the run is a peer over NVLink.
struct SimPeer<'a> {
    seed: u64,
    peers: Vec<usize>,
    src: Vec<u64>,
    dst: Vec<u64>,
    model: &'a mut Model,
    state: &'a SimState,
}

impl PeerOp for SimPeer<'_> {
    fn targets(&self) -> (Vec<usize>, Vec<(usize, String)>) {
        (self.peers.clone(), Vec::new())
    }

    fn run(&mut self, target: usize) -> DeviceResult<Seconds> {
        self.state.gate(WorkloadKind::Transfer)?;
        if !self.peers.contains(&target) {
            return Err(DeviceError::failed(format!(
                "device {target} is not a peer of this run"
            )));
        }
        self.dst.copy_from_slice(&self.src);
        corrupt_copy(self.state, &mut self.dst);
        let bytes = (self.src.len() * 8) as f64;
        let nominal = match self.link(target) {
            PeerLink::Pcie => NOMINAL.p2p_pcie,
            _ => NOMINAL.p2p,
        };
        Ok(self.model.time(bytes, nominal * 1e9, self.state.speed()))
    }

    /// NVLink while any of the GPU's links is up (NVSwitches reach every
    /// peer); PCIe once every link is down.
    fn link(&self, _target: usize) -> PeerLink {
        if self.state.has(|f| *f == Fault::NvlinkDown(SIM_NVLINKS)) {
            PeerLink::Pcie
        } else {
            PeerLink::Nvlink
        }
    }

    fn check(&mut self, _target: usize) -> DeviceResult<CopyCheck> {
        Ok(transfer::check_words(
            self.seed,
            transfer::P2P_STREAM,
            &self.dst,
        ))
    }
}

struct SimStream<'a> {
    inner: CpuStream,
    model: &'a mut Model,
    state: &'a SimState,
}

impl StreamOp for SimStream<'_> {
    fn len(&self) -> usize {
        self.inner.len()
    }

    fn run(&mut self, kernel: StreamKernel) -> DeviceResult<(Seconds, Option<f64>)> {
        self.state.gate(WorkloadKind::Bandwidth)?;
        let sum = self.inner.pass(kernel);
        if kernel == StreamKernel::Copy && self.state.has(|f| *f == Fault::CopyBit) {
            let c = self.inner.buffer_mut(StreamBuffer::C);
            let i = c.len() / 3;
            if let Some(x) = c.get_mut(i) {
                *x = f64::from_bits(x.to_bits() ^ (1 << 20));
            }
        }
        let nominal = match kernel {
            StreamKernel::Read => NOMINAL.bw_read,
            StreamKernel::Write => NOMINAL.bw_write,
            StreamKernel::Copy => NOMINAL.bw_copy,
            StreamKernel::Triad => NOMINAL.bw_triad,
        };
        let bytes = kernel.bytes_per_element() as f64 * self.inner.len() as f64;
        Ok((
            self.model.time(bytes, nominal * 1e9, self.state.speed()),
            sum,
        ))
    }

    fn digest(&mut self, buffer: StreamBuffer) -> DeviceResult<BufferDigest> {
        self.inner.digest(buffer)
    }

    fn read(&mut self, buffer: StreamBuffer, indices: &[usize]) -> DeviceResult<Vec<f64>> {
        StreamOp::read(&mut self.inner, buffer, indices)
    }
}

struct SimHash<'a> {
    job: HashJob,
    mid: hash::Midstate,
    model: &'a mut Model,
    state: &'a SimState,
}

impl HashOp for SimHash<'_> {
    fn scan(&mut self, start: u32, count: u32) -> DeviceResult<(ScanResult, Seconds)> {
        self.state.gate(WorkloadKind::Hash)?;
        let mut mid = self.mid;
        if self.state.has(|f| *f == Fault::HashBit) {
            // A faulty SHA unit: one bit of the midstate is wrong.
            mid.state[3] ^= 1 << 7;
        }
        let r = hash::scan_range(&self.job, &mid, start, count);
        let t = self
            .model
            .time(r.nonces as f64, NOMINAL.sha256d * 1e6, self.state.speed());
        Ok((r, t))
    }
}

struct SimMemtest<'a> {
    inner: CpuMemtest,
    model: &'a mut Model,
    state: &'a SimState,
}

impl SimMemtest<'_> {
    fn time(&mut self, passes: f64) -> Seconds {
        let bytes = passes * self.inner.words() as f64 * 8.0;
        self.model
            .time(bytes, NOMINAL.memtest * 1e9, self.state.speed())
    }
}

impl MemtestOp for SimMemtest<'_> {
    fn words(&self) -> usize {
        self.inner.words()
    }

    fn fill(&mut self, pattern: Pattern) -> DeviceResult<Seconds> {
        self.state.gate(WorkloadKind::Memtest)?;
        self.inner.fill(pattern)?;
        if self.state.has(|f| *f == Fault::MemBit) {
            // A weak cell: one bit does not hold what was written.
            let w = self.inner.words() / 3;
            self.inner.flip_bit(w, 17);
        }
        Ok(self.time(1.0))
    }

    fn verify(&mut self, pattern: Pattern, keep: usize) -> DeviceResult<(MemErrors, Seconds)> {
        self.state.gate(WorkloadKind::Memtest)?;
        let (e, _) = self.inner.verify(pattern, keep)?;
        Ok((e, self.time(1.0)))
    }

    fn verify_and_write(
        &mut self,
        expect: Pattern,
        next: Pattern,
        descending: bool,
        keep: usize,
    ) -> DeviceResult<(MemErrors, Seconds)> {
        let (e, _) = self
            .inner
            .verify_and_write(expect, next, descending, keep)?;
        Ok((e, self.time(2.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_times_count_from_the_run_start_not_the_first_operation() {
        // A GPU whose first operation comes 10 s into the run (it waited for
        // its peers) with a loss injected at 5 s is already gone then.
        let opts = SimOptions {
            gpus: 1,
            seed: 1,
            faults: vec![parse_injection("0:lost=5").expect("fault")],
            pace: std::time::Duration::ZERO,
            node: String::new(),
        };
        let mut dev = devices(&opts).remove(0);
        dev.run_started(Instant::now() - std::time::Duration::from_secs(10));
        let e = dev.health().expect_err("lost");
        assert!(e.lost && e.message.contains("5.00 s into the run"), "{e}");
        assert!(dev.stream(16, 1).is_err());
        // Without a run start (selftest), the clock starts at the first
        // operation, so nothing is lost yet.
        let mut fresh = devices(&opts).remove(0);
        assert!(fresh.health().is_ok());
    }

    #[test]
    fn each_node_has_its_own_serials_and_uuids_the_same_every_run() {
        let node = |name: &str| {
            let opts = SimOptions {
                gpus: 4,
                seed: 1,
                faults: Vec::new(),
                pace: std::time::Duration::ZERO,
                node: name.to_string(),
            };
            devices(&opts)
                .iter()
                .map(|d| (d.info.serial.clone(), d.info.uuid.clone()))
                .collect::<Vec<_>>()
        };
        let (a, b) = (node("rack1-n01"), node("rack1-n02"));
        assert_eq!(a, node("rack1-n01"), "same node, same identities");
        let serials: std::collections::BTreeSet<_> = a.iter().chain(&b).map(|x| &x.0).collect();
        let uuids: std::collections::BTreeSet<_> = a.iter().chain(&b).map(|x| &x.1).collect();
        assert_eq!(
            (serials.len(), uuids.len()),
            (8, 8),
            "every serial and UUID differs: {a:?} {b:?}"
        );
        // The figures are the node's seed's, not its name's.
        let rate = |name: &str| {
            let opts = SimOptions {
                gpus: 1,
                seed: 1,
                faults: Vec::new(),
                pace: std::time::Duration::ZERO,
                node: name.to_string(),
            };
            devices(&opts).remove(0).model.device_factor
        };
        assert_eq!(rate("rack1-n01"), rate("rack1-n02"));
    }
}

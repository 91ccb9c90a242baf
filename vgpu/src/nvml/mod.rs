//! NVML on the virtual node: installed as `libnvidia-ml.so.1` (the same
//! library file as the driver), the GPUs' identity, sensors, counters and
//! events as NVIDIA's management library reports them.
//!
//! Written from the NVML API reference (docs.nvidia.com/deploy/nvml-api,
//! `nvml.h`), with the C signatures and struct layouts of nvml-wrapper-sys
//! 0.10's bindings, never from a caller's code:
//!
//! - [`result`]: `nvmlReturn_t` codes, names and texts.
//! - this module: the node as NVML sees it, the sensor model and the fault
//!   timeline, in safe Rust.
//! - [`api`]: the exported `extern "C"` functions.
//! - [`unsupported`]: every other entry point nvml-wrapper 0.13 can load,
//!   answering NVML_ERROR_NOT_SUPPORTED with its name in the log.
//!
//! # Identity
//!
//! NVML enumerates the physical GPUs of the configuration (never the MIG
//! instances CUDA sees), in PCI bus order, whatever CUDA_VISIBLE_DEVICES
//! says (it reorders CUDA's ordinals only). UUIDs are the driver's
//! (`cuDeviceGetUuid`'s 16 bytes, written `GPU-xxxxxxxx-xxxx-xxxx-xxxx-
//! xxxxxxxxxxxx`), bus ids are written as nvml.h's
//! `NVML_DEVICE_PCI_BUS_ID_FMT` ("%08X:%02X:%02X.0", upper case), and the
//! PCI id combines the device id (upper 16 bits) with NVIDIA's vendor id
//! 0x10de (`nvmlPciInfo_t::pciDeviceId`).
//!
//! # Sensors
//!
//! A GPU is *busy* while its modelled device work advances: NVML reads the
//! driver's stream clocks (the sum over the GPU's streams, which grows
//! exactly when work is queued) at each query, and a GPU whose sum grew
//! since the previous query counts as busy from `HOLD_S` (1 s, NVML's
//! longest utilisation sample period) before that query, or since the
//! previous one if later, until `HOLD_S` after it. Temperature, memory
//! temperature and power follow first-order lags of *host wall time*
//! (the [`crate::clock`]) toward their idle or loaded values:
//!
//! | sensor | idle | loaded | time constant |
//! |---|---|---|---|
//! | GPU temperature | 32 C | 68 C | 3 s |
//! | memory temperature | 30 C | 56 C | 5 s |
//! | power | 70 W | 600 W (x `clocks_low`) | 0.5 s |
//!
//! The enforced power limit is 700 W. Clocks: SM and graphics 1980 MHz when
//! busy (times `clocks_low`), 345 MHz idle with the GPU_IDLE reason; memory
//! 2619 MHz. Utilisation: 100 % (memory 50 %) busy, 0 idle. The PCIe link
//! runs at its trained generation when busy and at Gen1 when idle (the
//! nvidia-smi documentation: current link generation and width "may be
//! reduced when the GPU is not in use"); its width stays as trained.
//!
//! # Faults
//!
//! From the GPU's `faults` ([`crate::config::Faults`]), on the shared
//! [`crate::clock::fault_time_s`]. An event (an XID, the uncorrectable ECC
//! error, XID 79 of a lost GPU) reaches an event set only if the set was
//! registered for it before it happened, as on a real node.

pub mod api;
pub mod result;
pub mod unsupported;

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::clock::fault_time_s;
use crate::config::{parse_bus_id, parse_uuid, Config, Gpu};
use crate::driver::log;
use result::*;

pub type R<T> = Result<T, nvmlReturn_t>;

/// Logs `why` and returns `code`.
pub fn refuse<T>(code: nvmlReturn_t, why: impl AsRef<str>) -> R<T> {
    log(&format!("{}: {}", name(code), why.as_ref()));
    Err(code)
}

/// The driver version NVML reports: an R570 driver, the branch of CUDA
/// 12.8, the CUDA version the driver half reports.
pub const DRIVER_VERSION: &str = "570.124.06";
/// NVML's own version (CUDA major, then the driver's).
pub const NVML_VERSION: &str = "12.570.124.06";
/// The VBIOS version every virtual GPU reports.
pub const VBIOS_VERSION: &str = "96.00.5E.00.01";
/// NVIDIA's PCI vendor id.
pub const VENDOR_ID: u32 = 0x10de;
/// NVLinks per GPU (nvml.h NVML_NVLINK_MAX_LINKS; 18 on Hopper SXM).
pub const NVLINKS: u32 = 18;
/// PCIe maximum generation and width (Hopper SXM: Gen5 x16).
pub const PCIE_MAX_GEN: u32 = 5;
pub const PCIE_MAX_WIDTH: u32 = 16;
/// The NVSwitch a link reaches on an HGX node: device id of a Hopper-
/// generation NVSwitch.
pub const NVSWITCH_DEVICE_ID: u32 = 0x22a3;

/// Busy hold, seconds (see the module documentation).
pub const HOLD_S: f64 = 1.0;
pub const IDLE_C: f64 = 32.0;
pub const LOADED_C: f64 = 68.0;
pub const TAU_C_S: f64 = 3.0;
pub const IDLE_MEM_C: f64 = 30.0;
pub const LOADED_MEM_C: f64 = 56.0;
pub const TAU_MEM_S: f64 = 5.0;
pub const IDLE_W: f64 = 70.0;
pub const LOADED_W: f64 = 600.0;
pub const TAU_W_S: f64 = 0.5;
pub const POWER_LIMIT_MW: u32 = 700_000;
pub const SM_BOOST_MHZ: f64 = 1980.0;
pub const SM_IDLE_MHZ: u32 = 345;
pub const MEM_MHZ: u32 = 2619;
pub const VIDEO_MHZ: u32 = 1545;

/// nvml.h clock event reason: nothing runs, the clocks drop to idle.
pub const REASON_GPU_IDLE: u64 = 0x1;

/// nvml.h event types (`nvmlEventType*`) this model delivers.
pub const EVENT_DOUBLE_BIT_ECC: u64 = 0x2;
pub const EVENT_XID: u64 = 0x8;
pub const SUPPORTED_EVENTS: u64 = EVENT_DOUBLE_BIT_ECC | EVENT_XID;

/// The XID a GPU that fell off the bus reports.
pub const XID_GPU_LOST: u64 = 79;

/// A first-order lag toward one of two values.
#[derive(Debug, Clone)]
pub struct Sensor {
    /// Fault time of the last update, seconds.
    pub t_s: f64,
    /// The driver activity seen then (sum of stream clocks, ns).
    pub activity: f64,
    /// Busy until this fault time.
    pub busy_until: f64,
    pub temp_c: f64,
    pub mem_c: f64,
    pub power_w: f64,
}

impl Sensor {
    pub fn idle(t_s: f64, activity: f64) -> Sensor {
        Sensor {
            t_s,
            activity,
            busy_until: f64::NEG_INFINITY,
            temp_c: IDLE_C,
            mem_c: IDLE_MEM_C,
            power_w: IDLE_W,
        }
    }

    fn step(&mut self, dt: f64, busy: bool, loaded_w: f64) {
        if dt <= 0.0 {
            return;
        }
        let lag =
            |x: &mut f64, target: f64, tau: f64| *x += (target - *x) * (1.0 - (-dt / tau).exp());
        let (c, m, w) = if busy {
            (LOADED_C, LOADED_MEM_C, loaded_w)
        } else {
            (IDLE_C, IDLE_MEM_C, IDLE_W)
        };
        lag(&mut self.temp_c, c, TAU_C_S);
        lag(&mut self.mem_c, m, TAU_MEM_S);
        lag(&mut self.power_w, w, TAU_W_S);
    }

    /// Brings the sensor to fault time `now`, seeing driver activity
    /// `activity`; `loaded_w` is the power a busy GPU draws.
    pub fn advance(&mut self, now: f64, activity: f64, loaded_w: f64) {
        let prev = self.t_s;
        let now = now.max(prev);
        // Busy through the hold of earlier activity ...
        let held = self.busy_until.clamp(prev, now);
        self.step(held - prev, true, loaded_w);
        if activity > self.activity {
            // ... and, for new activity, the hold before this reading.
            let from = (now - HOLD_S).max(held);
            self.step(from - held, false, loaded_w);
            self.step(now - from, true, loaded_w);
            self.busy_until = now + HOLD_S;
            self.activity = activity;
        } else {
            self.step(now - held, false, loaded_w);
        }
        self.t_s = now;
    }

    pub fn busy(&self) -> bool {
        self.t_s < self.busy_until
    }
}

/// One GPU as NVML sees it.
#[derive(Debug, Clone)]
pub struct NvGpu {
    /// Its ordinal in the configuration (`[[gpus]] ordinal`).
    pub ordinal: usize,
    pub config: Gpu,
    pub uuid: [u8; 16],
    /// (domain, bus, device, function).
    pub bus: (u32, u32, u32, u32),
    pub sensor: Sensor,
}

/// One fault event of a GPU: (fault time, event type, event data).
pub type FaultEvent = (f64, u64, u64);

impl NvGpu {
    /// `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    pub fn uuid_string(&self) -> String {
        let h: String = self.uuid.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "GPU-{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }

    /// nvml.h NVML_DEVICE_PCI_BUS_ID_FMT.
    pub fn bus_id(&self) -> String {
        let (d, b, dev, f) = self.bus;
        format!("{d:08X}:{b:02X}:{dev:02X}.{f:X}")
    }

    /// nvml.h NVML_DEVICE_PCI_BUS_ID_LEGACY_FMT.
    pub fn bus_id_legacy(&self) -> String {
        let (d, b, dev, f) = self.bus;
        format!("{:04X}:{b:02X}:{dev:02X}.{f:X}", d & 0xffff)
    }

    /// The board serial: derived from the configuration ordinal.
    pub fn serial(&self) -> String {
        format!("{}", 1_654_922_000_000u64 + self.ordinal as u64)
    }

    pub fn lost(&self, now: f64) -> bool {
        self.config.faults.lost_at_s.is_some_and(|t| now >= t)
    }

    /// Whether the uncorrectable ECC error has happened.
    pub fn ecc_uncorrectable(&self, now: f64) -> bool {
        self.config
            .faults
            .ecc_uncorrectable_at_s
            .is_some_and(|t| now >= t)
    }

    /// Correctable ECC errors so far.
    pub fn ecc_correctable(&self, now: f64) -> u64 {
        (self.config.faults.ecc_correctable_per_s * now).floor() as u64
    }

    /// The power a busy GPU draws (lower with low clocks).
    pub fn loaded_w(&self) -> f64 {
        IDLE_W + (LOADED_W - IDLE_W) * self.config.faults.clocks_low.unwrap_or(1.0)
    }

    /// The SM (and graphics) clock, MHz.
    pub fn sm_mhz(&self) -> u32 {
        if self.sensor.busy() {
            (SM_BOOST_MHZ * self.config.faults.clocks_low.unwrap_or(1.0)).round() as u32
        } else {
            SM_IDLE_MHZ
        }
    }

    /// The clock event reasons now.
    pub fn clock_reasons(&self) -> u64 {
        let fault = self.config.faults.clocks_low_reason.map_or(0, |r| r.bits());
        if self.sensor.busy() {
            fault
        } else {
            fault | REASON_GPU_IDLE
        }
    }

    pub fn pcie_gen(&self) -> u32 {
        if self.sensor.busy() {
            self.config.faults.pcie_gen.unwrap_or(PCIE_MAX_GEN)
        } else {
            1
        }
    }

    pub fn pcie_width(&self) -> u32 {
        self.config.faults.pcie_width.unwrap_or(PCIE_MAX_WIDTH)
    }

    pub fn link_up(&self, link: u32) -> bool {
        !self.config.faults.nvlink_down.contains(&link)
    }

    /// The events this GPU's faults raise, in time order.
    pub fn events(&self) -> Vec<FaultEvent> {
        let f = &self.config.faults;
        let mut out = Vec::new();
        if let Some(x) = f.xid {
            out.push((f.xid_at_s, EVENT_XID, u64::from(x)));
        }
        if let Some(t) = f.ecc_uncorrectable_at_s {
            out.push((t, EVENT_DOUBLE_BIT_ECC, 0));
        }
        if let Some(t) = f.lost_at_s {
            out.push((t, EVENT_XID, XID_GPU_LOST));
        }
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

/// A registration of an event set: GPU (NVML index), event types, and the
/// fault time it was made at.
#[derive(Debug, Clone)]
pub struct Registration {
    pub gpu: usize,
    pub mask: u64,
    pub since_s: f64,
}

#[derive(Debug, Default)]
pub struct EventSet {
    pub registrations: Vec<Registration>,
    /// (GPU, index into its `events()`) already delivered.
    pub delivered: HashSet<(usize, usize)>,
}

/// What a wait on an event set finds.
pub enum Pending {
    /// This event (GPU, type, data), now delivered.
    Event(usize, u64, u64),
    /// Nothing yet; the next one falls due at this fault time, if any.
    Later(Option<f64>),
    /// Nothing, and every GPU of the set is lost.
    Lost,
}

/// The node as NVML sees it.
pub struct Node {
    /// By NVML index: PCI bus order.
    pub gpus: Vec<NvGpu>,
    pub nvswitch: bool,
    pub fabric_manager: bool,
    /// nvmlInit calls not yet matched by nvmlShutdown.
    pub inits: u32,
    pub sets: HashMap<u64, EventSet>,
    next_set: u64,
}

static NODE: OnceLock<Result<Mutex<Node>, String>> = OnceLock::new();

impl Node {
    fn new(c: Config) -> Node {
        let now = fault_time_s();
        let mut gpus: Vec<NvGpu> = c
            .gpus
            .into_iter()
            .enumerate()
            .map(|(ordinal, g)| NvGpu {
                ordinal,
                uuid: parse_uuid(&g.uuid).unwrap_or_default(),
                bus: parse_bus_id(&g.pci_bus_id).unwrap_or_default(),
                config: g,
                sensor: Sensor::idle(now, 0.0),
            })
            .collect();
        gpus.sort_by_key(|g| g.bus);
        let mut node = Node {
            gpus,
            nvswitch: c.nvswitch,
            fabric_manager: c.fabric_manager,
            inits: 0,
            sets: HashMap::new(),
            next_set: 1,
        };
        // Work the driver did before NVML started is not load.
        let activity = node.activity();
        for (g, a) in node.gpus.iter_mut().zip(activity) {
            g.sensor.activity = a;
        }
        node
    }

    /// The driver's activity per GPU (NVML order); 0 before cuInit.
    fn activity(&self) -> Vec<f64> {
        let map = crate::driver::state::State::for_nvml()
            .map(|s| s.device_activity_ns())
            .unwrap_or_default();
        self.gpus
            .iter()
            .map(|g| {
                map.get(&g.config.pci_bus_id.to_ascii_lowercase())
                    .copied()
                    .unwrap_or(0.0)
            })
            .collect()
    }

    /// Brings GPU `i`'s sensors to now.
    pub fn sense(&mut self, i: usize) -> &NvGpu {
        let a = self.activity()[i];
        let now = fault_time_s();
        let g = &mut self.gpus[i];
        let w = g.loaded_w();
        g.sensor.advance(now, a, w);
        &self.gpus[i]
    }

    pub fn new_set(&mut self) -> u64 {
        let id = self.next_set;
        self.next_set += 1;
        self.sets.insert(id, EventSet::default());
        id
    }

    /// The earliest undelivered event of set `id` that has happened.
    pub fn take_event(&mut self, id: u64) -> Pending {
        let now = fault_time_s();
        let Some(set) = self.sets.get(&id) else {
            return Pending::Later(None);
        };
        let mut due: Option<(f64, usize, usize, u64, u64)> = None;
        let mut next: Option<f64> = None;
        for r in &set.registrations {
            for (k, (at, ty, data)) in self.gpus[r.gpu].events().into_iter().enumerate() {
                if r.mask & ty == 0 || at < r.since_s || set.delivered.contains(&(r.gpu, k)) {
                    continue;
                }
                if at <= now {
                    if due.is_none_or(|d| at < d.0) {
                        due = Some((at, r.gpu, k, ty, data));
                    }
                } else if next.is_none_or(|n| at < n) {
                    next = Some(at);
                }
            }
        }
        if let Some((_, gpu, k, ty, data)) = due {
            if let Some(set) = self.sets.get_mut(&id) {
                set.delivered.insert((gpu, k));
            }
            return Pending::Event(gpu, ty, data);
        }
        let regs = &self.sets[&id].registrations;
        if !regs.is_empty() && next.is_none() && regs.iter().all(|r| self.gpus[r.gpu].lost(now)) {
            return Pending::Lost;
        }
        Pending::Later(next)
    }
}

/// nvmlInit: reads the configuration once, counts the calls.
pub fn init(call: &str) -> R<()> {
    let node = NODE.get_or_init(|| Config::from_env().map(|c| Mutex::new(Node::new(c))));
    match node {
        Ok(m) => {
            let mut n = m.lock().unwrap_or_else(|p| p.into_inner());
            n.inits += 1;
            Ok(())
        }
        Err(e) => refuse(NVML_ERROR_UNKNOWN, format!("{call}: {e}")),
    }
}

/// nvmlShutdown.
pub fn shutdown() -> R<()> {
    let mut n = node("nvmlShutdown")?;
    n.inits -= 1;
    Ok(())
}

/// The node, once nvmlInit succeeded (and until the matching shutdown).
pub fn node(call: &str) -> R<MutexGuard<'static, Node>> {
    match NODE.get() {
        Some(Ok(m)) => {
            let n = m.lock().unwrap_or_else(|p| p.into_inner());
            if n.inits == 0 {
                drop(n);
                return refuse(
                    NVML_ERROR_UNINITIALIZED,
                    format!("{call}: NVML was shut down (nvmlShutdown as often as nvmlInit)"),
                );
            }
            Ok(n)
        }
        Some(Err(_)) => Err(NVML_ERROR_UNINITIALIZED),
        None => refuse(
            NVML_ERROR_UNINITIALIZED,
            format!("{call}: an NVML call before nvmlInit"),
        ),
    }
}

const DEVICE_BASE: usize = 0x6e76_6d6c_0000;
const SET_BASE: usize = 0x6e76_6573_0000;

/// The `nvmlDevice_t` of GPU `i`.
pub fn device_handle(i: usize) -> usize {
    DEVICE_BASE | ((i + 1) << 4)
}

/// The `nvmlEventSet_t` of set `id`.
pub fn set_handle(id: u64) -> usize {
    SET_BASE | ((id as usize) << 4)
}

impl Node {
    /// The GPU behind handle `h`, which must not be lost.
    pub fn gpu(&self, h: usize, call: &str) -> R<usize> {
        let i = self.gpu_any(h, call)?;
        let now = fault_time_s();
        if self.gpus[i].lost(now) {
            return refuse(
                NVML_ERROR_GPU_IS_LOST,
                format!(
                    "{call}: GPU {} fell off the bus at {:.1} s (faults.lost_at_s)",
                    self.gpus[i].bus_id(),
                    self.gpus[i].config.faults.lost_at_s.unwrap_or(0.0)
                ),
            );
        }
        Ok(i)
    }

    /// The GPU behind handle `h`, lost or not.
    pub fn gpu_any(&self, h: usize, call: &str) -> R<usize> {
        let i = (h & !0xffff == DEVICE_BASE && h & 0xf == 0)
            .then(|| ((h & 0xffff) >> 4).wrapping_sub(1))
            .filter(|i| *i < self.gpus.len());
        i.map_or_else(
            || {
                refuse(
                    NVML_ERROR_INVALID_ARGUMENT,
                    format!("{call}: {h:#x} is not a device handle"),
                )
            },
            Ok,
        )
    }

    /// The event set behind handle `h`.
    pub fn set(&self, h: usize, call: &str) -> R<u64> {
        let id = (h & !0xffff == SET_BASE && h & 0xf == 0).then_some(((h & 0xffff) >> 4) as u64);
        match id {
            Some(id) if self.sets.contains_key(&id) => Ok(id),
            Some(_) => refuse(
                NVML_ERROR_INVALID_ARGUMENT,
                format!("{call}: event set {h:#x} was freed (nvmlEventSetFree)"),
            ),
            None => refuse(
                NVML_ERROR_INVALID_ARGUMENT,
                format!("{call}: {h:#x} is not an event set"),
            ),
        }
    }

    /// Whether GPU `i` has NVLinks: it reaches its peers directly
    /// (`peer_access`) through NVSwitches or other GPUs.
    pub fn has_nvlink(&self, i: usize) -> bool {
        self.gpus[i].config.peer_access && (self.nvswitch || self.gpus.len() > 1)
    }

    /// The (domain, bus, device, function) and PCI id at the far end of
    /// link `link` of GPU `i`: an NVSwitch (four per HGX board, each GPU's
    /// 18 links spread over them, 5, 5, 4 and 4; NVIDIA's HGX H100 boards
    /// split them 5, 4, 4, 5) or, without switches, the other GPUs in turn.
    /// A link in `nvlink_miswired` ends on the next NVSwitch.
    pub fn remote(&self, i: usize, link: u32) -> ((u32, u32, u32, u32), u32) {
        if self.nvswitch {
            let moved = self.gpus[i].config.faults.nvlink_miswired.contains(&link);
            let k = (link + u32::from(moved)) % 4;
            ((0, 0x05 + k, 0, 0), (NVSWITCH_DEVICE_ID << 16) | VENDOR_ID)
        } else {
            let others: Vec<&NvGpu> = self
                .gpus
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, g)| g)
                .collect();
            let g = others[link as usize % others.len()];
            (g.bus, (u32::from(g.config.pci_device_id) << 16) | VENDOR_ID)
        }
    }
}

/// Errors of NVLink counter `counter` (nvml.h nvmlNvLinkErrorCounter_t:
/// 0 DL_REPLAY, 1 DL_RECOVERY, 2 DL_CRC_FLIT, 3 DL_CRC_DATA, 4 DL_ECC_DATA)
/// on an active link after `now` seconds.
pub fn nvlink_errors(g: &NvGpu, link: u32, counter: u32, now: f64) -> u64 {
    if !g.link_up(link) || counter == 4 {
        return 0;
    }
    (g.config.faults.nvlink_errors_per_s * now).floor() as u64
}
